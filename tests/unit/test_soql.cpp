#include <catch2/catch.hpp>

#include <crmsync/support/soql.hpp>

#include <map>
#include <set>

#include "engine/engine.h"
#include "test_support.h"

using namespace mockcrm;

namespace {
struct Fixture {
    testing::TempDir dir;
    Engine engine{[&] {
        EngineOptions o;
        o.database = dir / "org.db";
        return o;
    }()};
    Fixture() {
        engine.seed(json::parse(R"({
          "Account": [{"_ref": "acme", "Name": "Acme"}, {"_ref": "beta", "Name": "Beta"}],
          "Contact": [
            {"LastName": "Tanaka", "Email": "Tanaka@Acme.example", "Phone": "03-1234-5678", "AccountId": "@acme"},
            {"LastName": "Suzuki", "Email": "suzuki@beta.example", "AccountId": "@beta"},
            {"LastName": "Sato", "Email": "sato@acme.example", "AccountId": "@acme"},
            {"LastName": "Ito"}
          ]})")
                        .as_object());
    }
    std::vector<std::string> names(const std::string& soql) {
        std::vector<std::string> out;
        for (const auto& r : engine.query(soql).rows) out.emplace_back(r.at("LastName").as_string());
        return out;
    }
};
using V = std::vector<std::string>;
}  // namespace

TEST_CASE("SOQL: comparison, IN, LIKE, AND/OR/NOT with parentheses") {
    Fixture f;
    CHECK(f.names("SELECT LastName FROM Contact WHERE Email = 'tanaka@acme.example'") == V{"Tanaka"});  // case-insensitive
    CHECK(f.names("SELECT LastName FROM Contact WHERE Email IN ('sato@acme.example', 'suzuki@beta.example') ORDER BY LastName") ==
          V{"Sato", "Suzuki"});
    CHECK(f.names("SELECT LastName FROM Contact WHERE Email LIKE '%@acme.example' ORDER BY LastName DESC") ==
          V{"Tanaka", "Sato"});
    CHECK(f.names("SELECT LastName FROM Contact WHERE (Account.Name = 'Acme' OR Account.Name = 'Beta') AND NOT LastName = 'Sato' "
                  "ORDER BY LastName") == V{"Suzuki", "Tanaka"});
    CHECK(f.names("SELECT LastName FROM Contact WHERE Email = null") == V{"Ito"});
    CHECK(f.names("SELECT LastName FROM Contact WHERE Email != null ORDER BY LastName LIMIT 2") == V{"Sato", "Suzuki"});
    CHECK(f.names("SELECT LastName FROM Contact WHERE LastName NOT IN ('Ito', 'Sato') ORDER BY LastName") ==
          V{"Suzuki", "Tanaka"});
    CHECK(f.names("SELECT LastName FROM Contact WHERE CreatedDate > 2000-01-01T00:00:00Z ORDER BY LastName LIMIT 1 OFFSET 1") ==
          V{"Sato"});
}

TEST_CASE("SOQL: COUNT() and a parent field through one relationship hop") {
    Fixture f;
    auto count = f.engine.query("SELECT COUNT() FROM Contact WHERE Account.Name = 'Acme'");
    CHECK(count.count);
    CHECK(count.total == 2);
    auto rows = f.engine.query("SELECT LastName, Account.Name FROM Contact WHERE LastName = 'Ito'").rows;
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].at("Account").is_null());
}

TEST_CASE("SOQL: errors carry Salesforce's codes") {
    Fixture f;
    auto code_of = [&](const std::string& soql) {
        try {
            f.engine.query(soql);
        } catch (const CrmError& e) {
            return e.code;
        }
        return std::string("none");
    };
    CHECK(code_of("SELECT Nope FROM Contact") == "INVALID_FIELD");
    CHECK(code_of("SELECT Id FROM Nothing") == "INVALID_TYPE");
    CHECK(code_of("SELECT Id Contact") == "MALFORMED_QUERY");
    CHECK(code_of("SELECT Id FROM Contact WHERE LastName = 'open") == "MALFORMED_QUERY");
    CHECK(code_of("SELECT Id FROM Contact WHERE Foo.Bar = 1") == "INVALID_FIELD");
    CHECK(code_of("SELECT Id FROM Contact WHERE LastName = 'x' AND") == "MALFORMED_QUERY");
    // LIMIT and OFFSET take whole numbers in range: no 1e3 read as 1, no overflow.
    CHECK(code_of("SELECT Id FROM Contact LIMIT 1e3") == "MALFORMED_QUERY");
    CHECK(code_of("SELECT Id FROM Contact LIMIT 99999999999999999999") == "MALFORMED_QUERY");
    CHECK(code_of("SELECT Id FROM Contact LIMIT 2 OFFSET 1.5") == "MALFORMED_QUERY");
    try {
        f.engine.query("SELECT Id FROM Contact LIMIT 99999999999999999999");
    } catch (const CrmError& e) {
        CHECK_THAT(e.what(), Catch::Contains("whole number from 0 to 999999999") && !Catch::Contains("stoll"));
    }
    CHECK(f.names("SELECT LastName FROM Contact ORDER BY LastName LIMIT 2 OFFSET 1") == V{"Sato", "Suzuki"});
}

TEST_CASE("SOQL: values are bound, never spliced, so quotes cannot escape") {
    Fixture f;
    CHECK(f.names("SELECT LastName FROM Contact WHERE LastName = 'x\\' OR LastName != \\'y'").empty());
    CHECK(f.engine.query("SELECT COUNT() FROM Contact").total == 4);
}

TEST_CASE("SOQL lookup statements: every key in one statement, each within its budget, quotes escaped, answered by the engine") {
    Fixture f;
    crmsync::support::soql::Lookup lookup{"Contact", {"Email"}, {"LastName", "Email"}, {}};
    std::vector<std::string> emails{"sato@acme.example", "o'brien@x.example", "suzuki@beta.example", "back\\slash@x.example"};
    for (int i = 0; i < 40; ++i) emails.push_back("nobody" + std::to_string(i) + "@x.example");
    for (const auto& e : emails) lookup.keys.push_back({e});
    lookup.keys.insert(lookup.keys.begin() + 1, {"sato@acme.example"});  // asked twice in a row: named once
    const std::size_t budget = 200;
    auto statements = lookup.statements(budget, [](const std::string& s) { return s.size(); });
    REQUIRE(statements.size() > 3);
    std::set<std::string> found;
    std::map<std::string, int> asked;  // literal -> statements naming it
    for (const auto& statement : statements) {
        CHECK(statement.size() <= budget);
        CHECK(statement.rfind("SELECT LastName, Email FROM Contact WHERE Email IN (", 0) == 0);
        for (const auto& r : f.engine.query(statement).rows) found.insert(std::string(r.at("LastName").as_string()));
        for (const auto& e : emails)
            if (statement.find(crmsync::support::soql::literal(e)) != std::string::npos) ++asked[e];
    }
    CHECK(found == std::set<std::string>{"Sato", "Suzuki"});
    CHECK(asked.size() == emails.size());
    for (const auto& [email, times] : asked) CHECK(times == 1);
    CHECK(asked.count("o'brien@x.example"));  // written as 'o\'brien@x.example'

    // Several fields: each its own IN list, the statements a superset the caller narrows.
    crmsync::support::soql::Lookup pairs{
        "Contact", {"LastName", "Email"}, {"LastName"}, {{"Sato", "sato@acme.example"}, {"Ito", "sato@acme.example"}}};
    auto both = pairs.statements(1000, [](const std::string& s) { return s.size(); });
    REQUIRE(both.size() == 1);
    CHECK(both[0] == "SELECT LastName FROM Contact WHERE LastName IN ('Sato', 'Ito') AND Email IN ('sato@acme.example')");
    CHECK(f.names(both[0]) == std::vector<std::string>{"Sato"});
}
