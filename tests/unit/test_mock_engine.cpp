#include <catch2/catch.hpp>

#include "engine/engine.h"
#include "test_support.h"

using namespace mockcrm;

namespace {
json::object key_field() {
    return json::parse(R"({"Task": {"fields": {"CrmSync_Key__c": {"type": "string", "length": 255, "external_id": true}}},
                           "Event": {"fields": {"CrmSync_Key__c": {"type": "string", "length": 255, "external_id": true}}}})")
        .as_object();
}

struct Org {
    testing::TempDir dir;
    Engine engine;
    explicit Org(std::map<std::string, int64_t> licenses = {{"Salesforce", 10}, {"Salesforce Integration", 1}})
        : engine([&] {
              EngineOptions o;
              o.database = dir / "org.db";
              o.schema = key_field();
              o.licenses = licenses;
              return o;
          }()) {}
    std::string contact(const std::string& last, const std::string& email = "") {
        json::object f{{"LastName", last}};
        if (!email.empty()) f["Email"] = email;
        auto r = engine.create("Contact", f);
        REQUIRE(r.success);
        return r.id;
    }
};
}  // namespace

TEST_CASE("mock-crm: upsert on the external id creates once, then updates in place") {
    Org org;
    auto first = org.engine.upsert("Task", "CrmSync_Key__c", "k-1", json::object{{"Subject", "Call"}});
    REQUIRE(first.success);
    CHECK(first.created);
    auto second = org.engine.upsert("Task", "crmsync_key__c", "k-1", json::object{{"Subject", "Call again"}});
    REQUIRE(second.success);
    CHECK_FALSE(second.created);
    CHECK(second.id == first.id);
    auto rows = org.engine.query("SELECT Subject, Status, Priority FROM Task");
    REQUIRE(rows.rows.size() == 1);
    CHECK(rows.rows[0].at("Subject").as_string() == "Call again");
    CHECK(rows.rows[0].at("Status").as_string() == "Not Started");  // defaulted on create
}

TEST_CASE("mock-crm: Salesforce's error codes for bad records") {
    Org org;
    auto missing = org.engine.create("Contact", json::object{{"FirstName", "No last name"}});
    REQUIRE_FALSE(missing.success);
    CHECK(missing.errors[0].code == "REQUIRED_FIELD_MISSING");
    CHECK(missing.errors[0].fields == std::vector<std::string>{"LastName"});

    auto picklist = org.engine.create("Task", json::object{{"Status", "Someday"}});
    CHECK(picklist.errors.at(0).code == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST");

    auto too_long = org.engine.create("Task", json::object{{"Subject", std::string(256, 'x')}});
    CHECK(too_long.errors.at(0).code == "STRING_TOO_LONG");
    CHECK(org.engine.create("Task", json::object{{"Subject", std::string(255, 'x')}}).success);

    auto unknown = org.engine.create("Task", json::object{{"Nope__c", 1}});
    CHECK(unknown.errors.at(0).code == "INVALID_FIELD");

    auto wrong_type = org.engine.create("Task", json::object{{"ActivityDate", "next tuesday"}});
    CHECK(wrong_type.errors.at(0).code == "INVALID_TYPE_ON_FIELD_IN_RECORD");

    auto bad_ref = org.engine.create("Task", json::object{{"WhoId", "003000000000999AAA"}});
    CHECK(bad_ref.errors.at(0).code == "INVALID_CROSS_REFERENCE_KEY");
}

TEST_CASE("mock-crm: an Event needs an end unless it is all-day, and the end follows the duration") {
    Org org;
    auto no_end = org.engine.create("Event", json::object{{"Subject", "Visit"}, {"StartDateTime", "2026-11-20T01:00:00Z"}});
    REQUIRE_FALSE(no_end.success);
    CHECK(no_end.errors[0].code == "REQUIRED_FIELD_MISSING");
    CHECK(no_end.errors[0].fields == std::vector<std::string>{"DurationInMinutes"});

    auto with_duration = org.engine.create(
        "Event", json::object{{"Subject", "Visit"}, {"StartDateTime", "2026-11-20T10:00:00+09:00"}, {"DurationInMinutes", 30}});
    REQUIRE(with_duration.success);
    auto row = org.engine.query("SELECT StartDateTime, EndDateTime, ActivityDate FROM Event").rows.at(0);
    CHECK(row.at("StartDateTime").as_string() == "2026-11-20T01:00:00.000+0000");
    CHECK(row.at("EndDateTime").as_string() == "2026-11-20T01:30:00.000+0000");

    auto with_end = org.engine.create(
        "Event", json::object{{"StartDateTime", "2026-11-20T01:00:00Z"}, {"EndDateTime", "2026-11-20T01:45:00Z"}});
    REQUIRE(with_end.success);
    auto all_day = org.engine.create("Event", json::object{{"IsAllDayEvent", true}, {"ActivityDate", "2026-11-20"}});
    CHECK(all_day.success);
    // A duration no clock could add (or past Salesforce's 14 days) is refused, not overflowed.
    for (int64_t minutes : {int64_t{4611686018427387904}, int64_t{20161}, int64_t{-1}}) {
        auto huge =
            org.engine.create("Event", json::object{{"StartDateTime", "2026-11-20T01:00:00Z"}, {"DurationInMinutes", minutes}});
        REQUIRE_FALSE(huge.success);
        CHECK(huge.errors[0].code == "FIELD_INTEGRITY_EXCEPTION");
        CHECK(huge.errors[0].fields == std::vector<std::string>{"DurationInMinutes"});
    }
}

TEST_CASE("mock-crm: Shared Activities relate up to 50 contacts, or one lead alone") {
    Org org;
    json::array fifty, fifty_one;
    for (int i = 0; i < 51; ++i) {
        auto id = org.contact("C" + std::to_string(i));
        if (i < 50) fifty.emplace_back(id);
        fifty_one.emplace_back(id);
    }
    auto ok = org.engine.create("Task", json::object{{"Subject", "x"}, {"TaskWhoIds", fifty}});
    REQUIRE(ok.success);
    auto stored = org.engine.query("SELECT WhoId, TaskWhoIds FROM Task").rows.at(0);
    CHECK(stored.at("TaskWhoIds").as_array().size() == 50);
    CHECK(stored.at("WhoId") == fifty[0]);
    CHECK(org.engine.create("Task", json::object{{"TaskWhoIds", fifty_one}}).errors.at(0).code == "FIELD_INTEGRITY_EXCEPTION");

    auto lead = org.engine.create("Lead", json::object{{"LastName", "L"}, {"Company", "Co"}});
    REQUIRE(lead.success);
    CHECK(org.engine.create("Task", json::object{{"TaskWhoIds", json::array{lead.id}}}).success);
    auto mixed = org.engine.create("Task", json::object{{"TaskWhoIds", json::array{lead.id, fifty[0]}}});
    CHECK(mixed.errors.at(0).code == "FIELD_INTEGRITY_EXCEPTION");
}

TEST_CASE("mock-crm: WhoId alone relates its record and, on an update, replaces only the primary relation") {
    Org org;
    auto a = org.contact("A"), b = org.contact("B"), c = org.contact("C");
    auto created = org.engine.create(
        "Event",
        json::object{{"Subject", "x"}, {"StartDateTime", "2026-11-20T01:00:00Z"}, {"DurationInMinutes", 5}, {"WhoId", a}});
    REQUIRE(created.success);
    auto whos = [&] { return org.engine.query("SELECT WhoId, EventWhoIds FROM Event").rows.at(0); };
    CHECK(whos().at("EventWhoIds") == json::array{json::value(a)});
    REQUIRE(org.engine.update("Event", created.id, json::object{{"EventWhoIds", json::array{a, b}}}).success);
    REQUIRE(org.engine.update("Event", created.id, json::object{{"WhoId", c}}).success);
    auto after = whos();
    CHECK(after.at("WhoId") == json::value(c));
    CHECK(after.at("EventWhoIds") == json::array{json::value(c), json::value(b)});
}

TEST_CASE("mock-crm: integration-licence users are limited by the licence count") {
    Org org;  // one Salesforce Integration licence
    auto profile = org.engine.query("SELECT Id FROM Profile WHERE Name = 'Minimum Access - API Only Integrations'").rows.at(0);
    auto user = [&](const std::string& name) {
        return org.engine.create("User", json::object{{"Username", name + "@int.example"},
                                                      {"LastName", name},
                                                      {"Email", name + "@example.jp"},
                                                      {"Alias", name.substr(0, 8)},
                                                      {"TimeZoneSidKey", "Asia/Tokyo"},
                                                      {"LocaleSidKey", "ja_JP"},
                                                      {"EmailEncodingKey", "UTF-8"},
                                                      {"LanguageLocaleKey", "ja"},
                                                      {"ProfileId", profile.at("Id")}});
    };
    CHECK(user("first").success);
    auto second = user("second");
    REQUIRE_FALSE(second.success);
    CHECK(second.errors[0].code == "LICENSE_LIMIT_EXCEEDED");
    CHECK(user("first").errors.at(0).code == "DUPLICATE_USERNAME");
}

TEST_CASE("mock-crm: the daily API counter stops calls at the limit and counts by kind") {
    testing::TempDir dir;
    EngineOptions o;
    o.database = dir / "org.db";
    o.daily_api_limit = 3;
    Engine engine(o);
    engine.spend_api_call("read");
    engine.spend_api_call("write");
    engine.spend_api_call("write");
    CHECK(engine.api_used_today() == 3);
    CHECK(engine.api_calls("write") == 2);
    CHECK_THROWS_AS(engine.spend_api_call("read"), CrmError);
}

TEST_CASE("mock-crm: a restricted picklist takes a new value once an admin adds it") {
    Org org;
    CHECK_FALSE(
        org.engine.create("Event", json::object{{"Type", "メール"}, {"IsAllDayEvent", true}, {"ActivityDate", "2026-11-20"}})
            .success);
    org.engine.add_picklist_value("Event", "Type", "メール");
    CHECK(org.engine.create("Event", json::object{{"Type", "メール"}, {"IsAllDayEvent", true}, {"ActivityDate", "2026-11-20"}})
              .success);
    auto described = org.engine.describe("Event");
    bool found = false;
    for (const auto& f : described.at("fields").as_array())
        if (f.at("name") == "Type")
            for (const auto& v : f.at("picklistValues").as_array()) found = found || v.at("value") == "メール";
    CHECK(found);
}

TEST_CASE("mock-crm: seeds refer to earlier records by _ref and may set CreatedDate") {
    Org org;
    org.engine.seed(json::parse(R"({"Account": [{"_ref": "a", "Name": "Acme"}],
        "Contact": [{"LastName": "Old", "AccountId": "@a", "CreatedDate": "2020-01-01T00:00:00Z"},
                    {"LastName": "New", "AccountId": "@a"}]})")
                        .as_object());
    auto rows = org.engine.query("SELECT LastName, Account.Name FROM Contact ORDER BY CreatedDate ASC").rows;
    REQUIRE(rows.size() == 2);
    CHECK(rows[0].at("LastName") == "Old");
    CHECK(rows[0].at("Account").at("Name") == "Acme");
    CHECK_THROWS_WITH(org.engine.seed(json::parse(R"({"Contact": [{"LastName": "x", "AccountId": "@nobody"}]})").as_object()),
                      Catch::Contains("seed.Contact[0].AccountId") && Catch::Contains("nobody"));
}

TEST_CASE("mock-crm: a seed refers to the org's built-in records and may set the audit dates") {
    Org org;
    org.engine.seed(json::parse(R"({"User": [{"_ref": "sato", "Username": "sato@org.example", "LastName": "Sato",
        "Email": "sato@org.example", "Alias": "sato", "TimeZoneSidKey": "GMT", "LocaleSidKey": "en_US",
        "EmailEncodingKey": "UTF-8", "LanguageLocaleKey": "en_US", "ProfileId": "@profile:standard",
        "CreatedDate": "2020-01-01T00:00:00Z", "LastModifiedDate": "2021-06-01T00:00:00Z"}]})")
                        .as_object());
    auto rows =
        org.engine.query("SELECT Id, Profile.Name, CreatedDate, LastModifiedDate FROM User WHERE Username = 'sato@org.example'")
            .rows;
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].at("CreatedDate") == "2020-01-01T00:00:00.000+0000");
    CHECK(rows[0].at("LastModifiedDate") == "2021-06-01T00:00:00.000+0000");
    // A later seed finds records of an earlier one, and the built-in admin.
    org.engine.seed(
        json::parse(
            R"({"Task": [{"Subject": "hand over", "OwnerId": "@sato"}, {"Subject": "review", "OwnerId": "@user:admin"}]})")
            .as_object());
    CHECK(org.engine.query("SELECT COUNT() FROM Task").total == 2);
    try {
        org.engine.seed(json::parse(R"({"User": [{"LastName": "X", "ProfileId": "@profile:nobody"}]})").as_object());
        FAIL("a missing _ref was accepted");
    } catch (const CrmError& e) {
        CHECK_THAT(e.what(), Catch::Contains("seed.User[0].ProfileId: no earlier record has _ref \"profile:nobody\"") &&
                                 Catch::Contains("profile:standard"));
    }
}
