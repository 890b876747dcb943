// The plugins' CSV helper (plugin-api/include/crmsync/support/csv.hpp), which the salesforce
// plugin's bulk loads and product-analytics' reports read and write.
#include <catch2/catch.hpp>
#include <crmsync/support/csv.hpp>

#include <random>

namespace csv = crmsync::support::csv;
using Rows = std::vector<std::vector<std::string>>;

TEST_CASE("csv: quoted fields, doubled quotes, CRLF, empty cells and a last row without its line end") {
    CHECK(csv::parse("a,b\r\n\"x, y\",\"say \"\"hi\"\"\"\n,\n\"line\nbreak\",z") ==
          Rows{{"a", "b"}, {"x, y", "say \"hi\""}, {"", ""}, {"line\nbreak", "z"}});
    CHECK(csv::parse("") == Rows{});
    CHECK(csv::parse("\r") == Rows{});
    CHECK(csv::parse("\n") == Rows{{""}});
    CHECK(csv::parse("\"\"") == Rows{{""}});
}

TEST_CASE("csv: a reader gives the rows one at a time in one vector, however many cells each has") {
    csv::Reader reader("a,b,c\nd\n\"e,f\",g\n");
    std::vector<std::string> row;
    REQUIRE(reader.next(row));
    CHECK(row == std::vector<std::string>{"a", "b", "c"});
    REQUIRE(reader.next(row));
    CHECK(row == std::vector<std::string>{"d"});
    REQUIRE(reader.next(row));
    CHECK(row == std::vector<std::string>{"e,f", "g"});
    CHECK_FALSE(reader.next(row));
    CHECK_FALSE(reader.next(row));
}

TEST_CASE("csv: whatever a cell holds, a written row reads back as it was") {
    std::mt19937 random(7);
    const std::string alphabet = "ab,\"\r\n \xe3\x81\x82";
    Rows rows;
    std::string text;
    for (int r = 0; r < 200; ++r) {
        std::vector<std::string> row(1 + random() % 5);
        for (auto& cell : row)
            for (size_t n = random() % 8; n > 0; --n) cell += alphabet[random() % alphabet.size()];
        text += csv::row(row);
        rows.push_back(row);
    }
    CHECK(csv::parse(text) == rows);
    CHECK(csv::field("plain") == "plain");
    CHECK(csv::field("a\"b") == "\"a\"\"b\"");
}
