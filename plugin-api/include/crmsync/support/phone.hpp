#pragma once
// crmsync's one phone rule, shared by the host (related-to resolution) and the CRM plugins
// (indexing and searching phones): two numbers are the same when their canonical digits
// are equal. Canonical is the country code followed by the national number, digits only:
// with country code 81, "03-1234-5678", "+81 3 1234 5678", "0081 3 1234 5678",
// "81312345678" and "312345678" are all "81312345678"; with country code 1,
// "(212) 555-1234" and "+1 212 555 1234" are both "12125551234".
// Header-only C++17, so a plugin built out of tree can use it.
#include <string>
#include <string_view>
#include <vector>

namespace crmsync::support {

// The digits of a phone as written, nothing else.
inline std::string phone_digits(std::string_view phone) {
    std::string digits;
    for (char c : phone)
        if (c >= '0' && c <= '9') digits += c;
    return digits;
}

// Country code + national number. A number written with "+" or the "00" international
// prefix is taken as international; one with a leading trunk 0 is national; digits that
// already start with the country code and are long enough to hold a national number after
// it are kept; any other digits are national without a trunk prefix. Without a country
// code, the digits as written.
inline std::string phone_canonical(std::string_view phone, std::string_view country_code) {
    std::string digits = phone_digits(phone);
    if (digits.empty()) return digits;
    auto plus = phone.find('+');
    auto first_digit = phone.find_first_of("0123456789");
    if (plus != std::string_view::npos && plus < first_digit) return digits;
    if (digits.size() > 2 && digits.compare(0, 2, "00") == 0) return digits.substr(2);
    if (country_code.empty()) return digits;
    std::string cc(country_code);
    if (digits[0] == '0') return cc + digits.substr(1);
    if (digits.compare(0, cc.size(), cc) == 0 && digits.size() > cc.size() + 8) return digits;
    return cc + digits;
}

// The digit strings one number may be stored as in a CRM that keeps phones as typed: as
// written, canonical, and national with a trunk 0 — what a search by phone looks for.
inline std::vector<std::string> phone_forms(std::string_view phone, std::string_view country_code) {
    std::vector<std::string> forms;
    auto add = [&](std::string form) {
        if (form.empty()) return;
        for (const auto& f : forms)
            if (f == form) return;
        forms.push_back(std::move(form));
    };
    add(phone_digits(phone));
    std::string canonical = phone_canonical(phone, country_code);
    add(canonical);
    if (!country_code.empty() && canonical.compare(0, country_code.size(), country_code) == 0)
        add(std::string(1, '0').append(canonical, country_code.size()));
    return forms;
}

}  // namespace crmsync::support
