// crmsync's one phone rule (plugin-api/include/crmsync/support/phone.hpp), which the host's
// related-to resolution, mock-crm and the salesforce plugin all use.
#include <catch2/catch.hpp>
#include <crmsync/support/phone.hpp>

using crmsync::support::phone_canonical;
using crmsync::support::phone_forms;

TEST_CASE("phone: with country code 81 every way of writing a Tokyo number is one number") {
    for (const char* written :
         {"03-1234-5678", "+81 3 1234 5678", "+81-3-1234-5678", "0081 3 1234 5678", "81312345678", "312345678", "(03) 1234 5678"})
        CHECK(phone_canonical(written, "81") == "81312345678");
}

TEST_CASE("phone: a number without a trunk prefix gets its country code, as in North America") {
    CHECK(phone_canonical("(212) 555-1234", "1") == "12125551234");
    CHECK(phone_canonical("+1 212 555 1234", "1") == "12125551234");
    CHECK(phone_canonical("1-212-555-1234", "1") == "12125551234");
}

TEST_CASE("phone: an international number keeps its own country code whatever the configured one") {
    CHECK(phone_canonical("+44 20 7946 0958", "81") == "442079460958");
    CHECK(phone_canonical("0044 20 7946 0958", "81") == "442079460958");
}

TEST_CASE("phone: without a country code the digits are compared as written") {
    CHECK(phone_canonical("03-1234-5678", "") == "0312345678");
    CHECK(phone_canonical("no digits", "81").empty());
}

TEST_CASE("phone: a search looks for the number as written, canonical and national") {
    CHECK(phone_forms("+81 3 1234 5678", "81") == std::vector<std::string>{"81312345678", "0312345678"});
    CHECK(phone_forms("03-1234-5678", "81") == std::vector<std::string>{"0312345678", "81312345678"});
}
