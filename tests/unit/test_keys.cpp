// Operation keys as the CRM's external-id field holds them (crm_key_for): keys that differ
// in case, or in anything a case-insensitive comparison folds, stay apart.
#include <catch2/catch.hpp>

#include <crmsync/support/text.hpp>

#include <set>

#include "engine/engine.h"
#include "operation.h"
#include "test_support.h"

using namespace crmsync;

using crmsync::support::ascii_lower;

TEST_CASE("keys: a plain key is its own CRM value, others are percent-encoded in lowercase") {
    CHECK(crm_key_for("helpdesk-tickets:m1") == "helpdesk-tickets:m1");
    CHECK(crm_key_for("t:act-1001/x.y_z@w") == "t:act-1001/x.y_z@w");
    CHECK(crm_key_for("t:CaseA") == "t:%43ase%41");
    CHECK(crm_key_for("t:50%") == "t:50%25");
    CHECK(crm_key_for("t:a b") == "t:a%20b");
    CHECK(crm_key_for("t:日") == "t:%e6%97%a5");
}

TEST_CASE("keys: different keys never compare equal case-insensitively in the CRM") {
    std::vector<std::string> keys{"t:CaseA",
                                  "t:casea",
                                  "t:CASEA",
                                  "t:caseA",
                                  "t:%43ase%41",
                                  "t:%43ASE%41",
                                  "t:24",
                                  "t:#24",
                                  "t:Ä",
                                  "t:ä",
                                  "t:%c3%84",
                                  std::string(255, 'A'),
                                  std::string(254, 'A') + "a",
                                  std::string(255, 'a')};
    std::set<std::string> values;
    for (const auto& k : keys) {
        auto v = crm_key_for(k);
        CHECK(v.size() <= 255);
        values.insert(ascii_lower(v));  // as a case-insensitive external id compares
    }
    CHECK(values.size() == keys.size());
}

TEST_CASE("keys: mock-crm's case-insensitive external id keeps case-different keys as two records") {
    testing::TempDir dir;
    mockcrm::EngineOptions o;
    o.database = dir / "crm.db";
    o.schema =
        json::parse(R"({"Task": {"fields": {"K__c": {"type": "string", "length": 255, "external_id": true}}}})").as_object();
    mockcrm::Engine crm(o);
    for (const char* key : {"t:CaseA", "t:casea"})
        REQUIRE(crm.upsert("Task", "K__c", crm_key_for(key), json::object{{"Subject", key}}).success);
    CHECK(crm.query("SELECT COUNT() FROM Task").total == 2);
    // Without the encoding the two are one record, as the issue saw.
    REQUIRE(crm.upsert("Task", "K__c", "raw:CaseA", json::object{{"Subject", "x"}}).success);
    CHECK(crm.upsert("Task", "K__c", "raw:casea", json::object{{"Subject", "y"}}).created == false);
}
