// The host services, one rule per test, through the real loader against mock-crm.
#include <catch2/catch.hpp>

#include "catalog.h"
#include "engine/engine.h"
#include "pipeline.h"
#include "module_runner.h"
#include "test_support.h"

using namespace crmsync;
using testing::TempDir;
using testing::write_file;

namespace {

struct Org {
    TempDir home;
    testing::ModuleRunner runner{home.str()};
    std::string module_extra;

    // seed: mock-crm seed records; licenses: e.g. {"Salesforce Integration": 0}
    explicit Org(const std::string& seed = "{}",
                 const std::string& licenses = R"({"Salesforce": 10, "Salesforce Integration": 5})",
                 int64_t daily_api_limit = 100000) {
        write_file(home / "seed.json", seed);
        connect(licenses, daily_api_limit);
    }
    void connect(const std::string& licenses, int64_t daily_api_limit) {
        write_file(home / "manifests/crm.json",
                   testing::mock_connection(home / "var/crm.db", daily_api_limit,
                                            R"(, "seed": ")" + (home / "seed.json") + R"(", "licenses": )" + licenses));
    }
    // Each record is {"id": ..., "ops": [...]}; `extra` adds manifest keys (services, mappings).
    RunReport run(const std::vector<std::string>& records, const std::string& extra = "", const std::string& defaults = "{}",
                  const std::string& config_extra = "", bool full = true) {
        std::string lines;
        for (const auto& r : records) lines += r + "\n";
        write_file(home / "ops.jsonl", lines);
        write_file(home / "manifests/m.json",
                   R"({"module": "m", "plugin": {"id": "test-ops"}, "crm": "mock", "retry": {"base_ms": 1},
                       "config": {"file": ")" +
                       (home / "ops.jsonl") + R"(", "defaults": )" + defaults + config_extra + "}" + extra + "}");
        RunOptions options;
        options.full = full;
        return runner.run("m", options);
    }
    mockcrm::Engine crm() {
        mockcrm::EngineOptions o;
        o.database = home / "var/crm.db";
        o.schema = json::parse(R"({"Event": {"fields": {"CrmSync_Key__c": {"type": "string", "external_id": true}}},
                                   "Task": {"fields": {"CrmSync_Key__c": {"type": "string", "external_id": true}}},
                                   "ContentVersion": {"fields": {"CrmSync_Key__c": {"type": "string", "external_id": true}}}})")
                       .as_object();
        return mockcrm::Engine(o);
    }
    json::object event(const std::string& key) {
        auto rows =
            crm()
                .query("SELECT Id, WhoId, WhatId, OwnerId, EventWhoIds, Type, Subject FROM Event WHERE CrmSync_Key__c = '" + key +
                       "'")
                .rows;
        REQUIRE(rows.size() == 1);
        return rows[0];
    }
    std::string id_of(const std::string& soql) {
        auto rows = crm().query(soql).rows;
        REQUIRE(rows.size() == 1);
        return std::string(rows[0].at("Id").as_string());
    }
    json::value jid(const std::string& soql) { return json::value(id_of(soql)); }
    std::vector<ErrorRow> errors() { return open_sqlite_store(home / "var/state.db").value()->errors(std::nullopt, 0); }
};

// One Event operation with the given directives (JSON members, leading comma).
std::string event_record(const std::string& key, const std::string& directives) {
    return R"({"id": ")" + key + R"(", "ops": [{"object": "Event", "action": "upsert", "key": ")" + key +
           R"(", "fields": {"Subject": "Call", "StartDateTime": "2026-11-20T01:00:00Z", "DurationInMinutes": 30})" + directives +
           "}]}";
}

std::string contacts_seed(int n, const std::string& email, const std::string& extra = "") {
    std::string list;
    for (int i = 0; i < n; ++i) {
        char created[32];
        std::snprintf(created, sizeof created, "2020-01-01T00:%02d:%02dZ", i / 60, i % 60);
        list += (i ? "," : "") + std::string(R"({"_ref": "c)") + std::to_string(i) + R"(", "LastName": "C)" + std::to_string(i) +
                R"(", "Email": ")" + email + R"(", "CreatedDate": ")" + created + "\"}";
    }
    return R"({"Contact": [)" + list + "]" + extra + "}";
}

const std::string kRelated =
    R"(, "related": {"emails": ["shared@customer.jp"], "prefer": ["Contact", "Lead"], "max_contacts": 50})";

}  // namespace

TEST_CASE("related: no matching contact leaves the Who empty and the record still lands") {
    Org org(contacts_seed(0, "x@y.jp"));
    auto report = org.run({event_record("k0", kRelated)});
    CHECK(report.counts.created == 1);
    CHECK(org.event("k0").at("WhoId").is_null());
}

TEST_CASE("related: one matching contact becomes the Who") {
    Org org(contacts_seed(1, "Shared@Customer.jp"));
    org.run({event_record("k1", kRelated)});
    auto e = org.event("k1");
    CHECK(e.at("WhoId") == org.jid("SELECT Id FROM Contact WHERE LastName = 'C0'"));
    CHECK(e.at("EventWhoIds").as_array().size() == 1);
}

TEST_CASE("related: an update sends the whole list, so a contact no longer matched is no longer related") {
    Org org(contacts_seed(2, "shared@customer.jp"));
    org.run({event_record("k", kRelated)});
    CHECK(org.event("k").at("EventWhoIds").as_array().size() == 2);
    // The source now names one contact's address only (the other one changed theirs).
    org.crm().update("Contact", org.id_of("SELECT Id FROM Contact WHERE LastName = 'C1'"),
                     json::object{{"Email", "moved@customer.jp"}});
    org.run({event_record("k", R"(, "related": {"emails": ["shared@customer.jp", "x@y.jp"], "prefer": ["Contact"]})")});
    auto e = org.event("k");
    CHECK(e.at("EventWhoIds") == json::array{org.jid("SELECT Id FROM Contact WHERE LastName = 'C0'")});
}

TEST_CASE("related: 50 matching contacts are all related") {
    Org org(contacts_seed(50, "shared@customer.jp"));
    org.run({event_record("k50", kRelated)});
    CHECK(org.event("k50").at("EventWhoIds").as_array().size() == 50);
}

TEST_CASE("related: 51 matching contacts relate the first 50, oldest first") {
    Org org(contacts_seed(51, "shared@customer.jp"));
    auto report = org.run({event_record("k51", kRelated)});
    CHECK(report.counts.created == 1);
    auto e = org.event("k51");
    auto ids = e.at("EventWhoIds").as_array();
    REQUIRE(ids.size() == 50);
    CHECK(e.at("WhoId") == org.jid("SELECT Id FROM Contact WHERE LastName = 'C0'"));
    CHECK(std::find(ids.begin(), ids.end(), json::value(org.id_of("SELECT Id FROM Contact WHERE LastName = 'C50'"))) ==
          ids.end());
}

TEST_CASE("related: when contacts and a lead both match, only the contacts are related") {
    Org org(contacts_seed(2, "shared@customer.jp",
                          R"(, "Lead": [{"LastName": "L", "Company": "Co", "Email": "shared@customer.jp"}])"));
    org.run({event_record("k", kRelated)});
    auto e = org.event("k");
    CHECK(e.at("EventWhoIds").as_array().size() == 2);
    CHECK(std::string(e.at("WhoId").as_string()).rfind("003", 0) == 0);
}

TEST_CASE("related: with two matching leads and no contact, the older unconverted lead is related alone") {
    Org org(R"({"Lead": [
        {"LastName": "Converted", "Company": "Co", "Email": "shared@customer.jp", "IsConverted": true, "CreatedDate": "2019-01-01T00:00:00Z"},
        {"LastName": "Newer", "Company": "Co", "Email": "shared@customer.jp", "CreatedDate": "2021-01-01T00:00:00Z"},
        {"LastName": "Older", "Company": "Co", "Email": "shared@customer.jp", "CreatedDate": "2020-01-01T00:00:00Z"}]})");
    org.run({event_record("k", kRelated)});
    auto e = org.event("k");
    CHECK(e.at("WhoId") == org.jid("SELECT Id FROM Lead WHERE LastName = 'Older'"));
    CHECK(e.at("EventWhoIds").as_array().size() == 1);
}

TEST_CASE("related: Leads are not related when the module allows Contacts only") {
    Org org(R"({"Lead": [{"LastName": "L", "Company": "Co", "Email": "shared@customer.jp"}]})");
    org.run({event_record("k", R"(, "related": {"emails": ["shared@customer.jp"], "prefer": ["Contact"]})")});
    CHECK(org.event("k").at("WhoId").is_null());
}

TEST_CASE("related: phones match by digits in every format under the module's country code") {
    Org org(
        R"({"Contact": [{"LastName": "Tanaka", "Phone": "03-1234-5678"}, {"LastName": "Mobile", "MobilePhone": "+81 90 1111 2222"}]})");
    std::vector<std::string> records;
    int i = 0;
    for (const char* phone : {"03-1234-5678", "+81 3 1234 5678", "0312345678", "+81-3-1234-5678"})
        records.push_back(
            event_record("p" + std::to_string(i++), R"(, "related": {"phones": [")" + std::string(phone) + R"("]})"));
    records.push_back(event_record("mobile", R"(, "related": {"phones": ["090-1111-2222"]})"));
    org.run(records, R"(, "services": {"default_country_code": "81"})");
    auto tanaka = org.id_of("SELECT Id FROM Contact WHERE LastName = 'Tanaka'");
    for (int k = 0; k < 4; ++k) CHECK(org.event("p" + std::to_string(k)).at("WhoId") == json::value(tanaka));
    CHECK(org.event("mobile").at("WhoId") == org.jid("SELECT Id FROM Contact WHERE LastName = 'Mobile'"));
}

TEST_CASE("related: open_opportunity relates the contact's most recently modified open opportunity") {
    Org org(R"({"Account": [{"_ref": "a", "Name": "Acme"}],
        "Contact": [{"_ref": "c", "LastName": "Tanaka", "Email": "t@acme.jp", "AccountId": "@a"}],
        "Opportunity": [
          {"_ref": "old", "Name": "Old", "StageName": "Prospecting", "CloseDate": "2027-01-01", "LastModifiedDate": "2026-01-01T00:00:00Z"},
          {"_ref": "new", "Name": "New", "StageName": "Qualification", "CloseDate": "2027-01-01", "LastModifiedDate": "2026-06-01T00:00:00Z"},
          {"_ref": "won", "Name": "Won", "StageName": "Closed Won", "CloseDate": "2026-01-01", "LastModifiedDate": "2026-09-01T00:00:00Z"}],
        "OpportunityContactRole": [{"OpportunityId": "@old", "ContactId": "@c"}, {"OpportunityId": "@new", "ContactId": "@c"},
                                   {"OpportunityId": "@won", "ContactId": "@c"}]})");
    org.run({event_record("k", R"(, "related": {"emails": ["t@acme.jp"], "open_opportunity": true})")});
    CHECK(org.event("k").at("WhatId") == org.jid("SELECT Id FROM Opportunity WHERE Name = 'New'"));
}

namespace {
const std::string kUsers = R"({"User": [
  {"Username": "agent@example.jp.org", "LastName": "Agent", "Email": "agent@example.jp", "Alias": "agent", "TimeZoneSidKey": "Asia/Tokyo",
   "LocaleSidKey": "ja_JP", "EmailEncodingKey": "UTF-8", "LanguageLocaleKey": "ja", "ProfileId": "@std"},
  {"Username": "gone@example.jp.org", "LastName": "Gone", "Email": "gone@example.jp", "Alias": "gone", "TimeZoneSidKey": "Asia/Tokyo",
   "LocaleSidKey": "ja_JP", "EmailEncodingKey": "UTF-8", "LanguageLocaleKey": "ja", "ProfileId": "@std", "IsActive": false}],
  "Profile": [{"_ref": "std", "Name": "Sales", "UserLicenseId": "@lic"}],
  "UserLicense": [{"_ref": "lic", "Name": "Sales Cloud", "TotalLicenses": 10}]})";

std::string owner(const std::string& email) {
    return R"(, "owner": {"email": ")" + email + R"(", "if_missing": ["create_integration_user", "connection_user"]})";
}
std::string seed_in_order(const std::string& users) {
    // Profiles and licences must exist before users refer to them: reorder the seed.
    auto o = json::parse(users).as_object();
    json::object ordered{{"UserLicense", o["UserLicense"]}, {"Profile", o["Profile"]}, {"User", o["User"]}};
    return json::serialize(ordered);
}
}  // namespace

TEST_CASE("owner: the active user with the email is the owner, whatever the email's case") {
    Org org(seed_in_order(kUsers));
    org.run({event_record("k", owner("AGENT@Example.JP"))});
    CHECK(org.event("k").at("OwnerId") == org.jid("SELECT Id FROM User WHERE Username = 'agent@example.jp.org'"));
}

TEST_CASE("owner: an inactive user does not count, so an integration user is created for the email") {
    Org org(seed_in_order(kUsers));
    auto report = org.run({event_record("k", owner("gone@example.jp"))});
    auto created = org.id_of("SELECT Id FROM User WHERE Username = 'gone@example.jp.crmsync'");
    CHECK(org.event("k").at("OwnerId") == json::value(created));
    auto user = org.crm().query("SELECT Alias, IsActive, Profile.Name FROM User WHERE Id = '" + created + "'").rows.at(0);
    CHECK(user.at("Profile").at("Name") == "Minimum Access - API Only Integrations");
    CHECK(user.at("Alias").as_string().size() <= 8);
    CHECK(report.counts.extra.at("owner_integration_users_created") == 1);
}

TEST_CASE("owner: a missing user gets one integration user, reused for the whole run") {
    Org org(seed_in_order(kUsers));
    auto report = org.run({event_record("a", owner("new@example.jp")), event_record("b", owner("new@example.jp"))});
    CHECK(report.counts.created == 2);
    CHECK(org.event("a").at("OwnerId") == org.event("b").at("OwnerId"));
    CHECK(org.crm().query("SELECT COUNT() FROM User WHERE Email = 'new@example.jp'").total == 1);
}

TEST_CASE("owner: with the integration licences used up, the connection's user owns the record") {
    Org org(seed_in_order(kUsers), R"({"Salesforce": 10, "Salesforce Integration": 0})");
    auto report = org.run({event_record("k", owner("new@example.jp"))});
    CHECK(org.event("k").at("OwnerId") == org.jid("SELECT Id FROM User WHERE Username = 'admin@crmsync.mock'"));
    CHECK(report.counts.extra.at("owner_connection_user_fallbacks") == 1);
}

TEST_CASE("owner: if_missing error fails the record, naming the email") {
    Org org(seed_in_order(kUsers));
    auto report = org.run({event_record("k", R"(, "owner": {"email": "nobody@example.jp", "if_missing": ["error"]})")});
    CHECK(report.counts.failed == 1);
    REQUIRE(org.errors().size() == 1);
    CHECK(org.errors()[0].code == "OWNER_NOT_FOUND");
    CHECK_THAT(org.errors()[0].message, Catch::Contains("nobody@example.jp"));
}

TEST_CASE("picklists: a value outside a restricted picklist fails the record before any write") {
    Org org;
    auto report = org.run({event_record(
        "k",
        R"(, "fields": {"Subject": "x", "StartDateTime": "2026-11-20T01:00:00Z", "DurationInMinutes": 5, "Type": "メール"})")});
    CHECK(report.counts.failed == 1);
    CHECK(org.errors().at(0).code == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST");
    CHECK(org.crm().api_calls("write") == 0);
}

TEST_CASE("picklists: create_missing adds the value once, then every record with it lands") {
    Org org;
    std::string directives =
        R"(, "fields": {"Subject": "x", "StartDateTime": "2026-11-20T01:00:00Z", "DurationInMinutes": 5, "Type": "メール"}, "picklists": {"Type": "create_missing"})";
    auto report = org.run({event_record("a", directives), event_record("b", directives)});
    CHECK(report.counts.created == 2);
    CHECK(org.event("a").at("Type") == "メール");
    auto values = org.crm().picklist_values("Event", "Type");
    CHECK(std::count(values.begin(), values.end(), "メール") == 1);
}

TEST_CASE("describe: a missing required field and an unknown field fail the record without an API call") {
    Org org;
    auto report = org.run(
        {R"({"id": "r", "ops": [{"object": "Event", "action": "upsert", "key": "k", "fields": {"Subject": "no end", "StartDateTime": "2026-11-20T01:00:00Z"}}]})",
         R"({"id": "s", "ops": [{"object": "Contact", "action": "upsert", "key": "c", "fields": {"FirstName": "no last name"}}]})",
         R"({"id": "t", "ops": [{"object": "Task", "action": "upsert", "key": "t", "fields": {"Mood__c": "happy"}}]})"},
        "", R"({"Event": ["Subject", "StartDateTime"]})");
    (void)report;
    auto errors = org.errors();
    REQUIRE(errors.size() == 3);
    CHECK(errors[1].code == "REQUIRED_FIELD_MISSING");
    CHECK(errors[1].fields == std::vector<std::string>{"LastName"});
    CHECK(errors[2].code == "INVALID_FIELD");
    CHECK(org.crm().api_calls("write") <= 1);
}

TEST_CASE("describe: an Event without an end fails with REQUIRED_FIELD_MISSING on DurationInMinutes") {
    Org org;
    write_file(org.home / "x", "");
    std::string defaults = R"({"Event": ["Subject", "StartDateTime"]})";
    org.module_extra = "";
    auto report = org.run(
        {R"({"id": "r", "ops": [{"object": "Event", "action": "upsert", "key": "k", "fields": {"Subject": "no end", "StartDateTime": "2026-11-20T01:00:00Z"}}]})"},
        "", defaults);
    CHECK(report.counts.failed == 1);
    REQUIRE(org.errors().size() == 1);
    CHECK(org.errors()[0].code == "REQUIRED_FIELD_MISSING");
    CHECK(org.errors()[0].fields == std::vector<std::string>{"DurationInMinutes"});
}

TEST_CASE("mapping: a custom mapping onto one of the plugin's fixed fields stops the run, naming the field") {
    Org org;
    auto report = org.run({event_record("k", "")}, R"(, "mappings": [{"source": "title", "field": "Subject"}])",
                          R"({"Event": ["Subject", "StartDateTime"]})");
    CHECK(report.status == RunStatus::failed);
    CHECK_THAT(report.message, Catch::Contains("\"Subject\" on Event is one of plugin test-ops's fixed fields"));
    CHECK(org.crm().query("SELECT COUNT() FROM Event").total == 0);
}

TEST_CASE("mapping: a date-only value stays a date and a local time converts from the source timezone") {
    Org org;
    std::string record =
        R"({"id": "r", "when": "2026-11-20T09:30:00", "due": "2026-11-20", "ops": [{"object": "Event", "action": "upsert", "key": "k", "fields": {"Subject": "mapped", "DurationInMinutes": 30}}]})";
    auto report = org.run({record}, R"(, "mappings": [
        {"source": "when", "field": "StartDateTime", "type": "datetime", "timezone": "Asia/Tokyo"},
        {"source": "due", "field": "ActivityDate", "type": "date", "timezone": "Asia/Tokyo"}])");
    INFO(report.message);
    REQUIRE(report.counts.created == 1);
    auto row = org.crm().query("SELECT StartDateTime FROM Event WHERE CrmSync_Key__c = 'k'").rows.at(0);
    CHECK(row.at("StartDateTime") == "2026-11-20T00:30:00.000+0000");
}

TEST_CASE("match: zero, one and two records with the key") {
    Org org(
        R"({"Account": [{"Name": "One", "AccountNumber": "A-1"}, {"Name": "Dup1", "AccountNumber": "A-2"}, {"Name": "Dup2", "AccountNumber": "A-2"}]})");
    auto update = [](const std::string& id, const std::string& value) {
        return R"({"id": ")" + id + R"(", "ops": [{"object": "Account", "action": "update", "key": "acct:)" + value +
               R"(", "fields": {"Description": "usage 42"}, "match": {"field": "AccountNumber", "value": ")" + value + R"("}}]})";
    };
    auto report = org.run({update("r0", "A-0"), update("r1", "A-1"), update("r2", "A-2")});
    CHECK(report.counts.no_match == 1);
    CHECK(report.counts.updated == 1);
    CHECK(report.counts.failed == 1);
    CHECK(org.crm().query("SELECT Description FROM Account WHERE AccountNumber = 'A-1'").rows.at(0).at("Description") ==
          "usage 42");
    CHECK(org.crm().query("SELECT COUNT() FROM Account WHERE Description = 'usage 42'").total == 1);
    auto errors = org.errors();
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].code == "DUPLICATE_MATCH");
    CHECK_THAT(errors[0].message, Catch::Contains("2 Account records have AccountNumber = A-2") && Catch::Contains("001"));
}

TEST_CASE("writeback: the CRM id of each written record goes back to the source, once per change") {
    Org org;
    std::string records =
        R"({"id": "act-1", "ops": [{"object": "Task", "action": "upsert", "key": "t1", "writeback": true, "fields": {"Subject": "One"}}]}
{"id": "act-2", "ops": [{"object": "Task", "action": "upsert", "key": "t2", "fields": {"Subject": "No write-back asked"}}]})";
    std::string writeback = R"(, "writeback_file": ")" + (org.home / "writebacks.jsonl") + "\"";
    auto report = org.run({records}, "", "{}", writeback);
    CHECK(report.counts.created == 2);
    auto lines = testing::read_file(org.home / "writebacks.jsonl");
    auto task = org.crm().query("SELECT Id FROM Task WHERE CrmSync_Key__c = 't1'").rows.at(0).at("Id");
    CHECK_THAT(lines, Catch::Contains(R"("key":"t1")") && Catch::Contains(R"("source_id":"act-1")") &&
                          Catch::Contains(std::string(R"("id":")") + std::string(task.as_string()) + "\"") &&
                          !Catch::Contains("t2"));
    // Unchanged on the next full run: nothing is written, so nothing is written back.
    org.run({records}, "", "{}", writeback);
    CHECK(std::count(lines.begin(), lines.end(), '\n') == 1);
    CHECK(testing::read_file(org.home / "writebacks.jsonl") == lines);
}

TEST_CASE("refs and blobs: a file lands on the Task written before it, its content fetched only at write time") {
    Org org;
    // "aGVsbG8=" is "hello"; the Task comes after the file in source order on purpose.
    std::string records =
        R"({"id": "act-1", "ops": [ {"object": "ContentVersion", "action": "upsert", "key": "t1:f1", "fields": {"Title": "notes.txt", "PathOnClient": "notes.txt"}, "refs": {"FirstPublishLocationId": "t1"}, "blobs": {"VersionData": "f1"}}, {"object": "Task", "action": "upsert", "key": "t1", "fields": {"Subject": "One"}}]}
{"id": "act-2", "ops": [{"object": "ContentVersion", "action": "upsert", "key": "t9:f2", "fields": {"Title": "a.txt", "PathOnClient": "a.txt"}, "refs": {"FirstPublishLocationId": "t9"}, "blobs": {"VersionData": "f1"}}]}
{"id": "act-3", "ops": [{"object": "Task", "action": "upsert", "key": "t3", "fields": {"Subject": "Three"}}, {"object": "ContentVersion", "action": "upsert", "key": "t3:gone", "fields": {"Title": "b.txt", "PathOnClient": "b.txt"}, "refs": {"FirstPublishLocationId": "t3"}, "blobs": {"VersionData": "gone"}}]})";
    std::string blobs = R"(, "blobs": {"f1": "aGVsbG8="})";
    auto report = org.run({records}, "", "{}", blobs);
    CHECK(report.counts.created == 3);
    CHECK(report.counts.failed == 2);
    auto task = org.id_of("SELECT Id FROM Task WHERE CrmSync_Key__c = 't1'");
    auto files = org.crm().query("SELECT Title, FirstPublishLocationId, ContentSize FROM ContentVersion").rows;
    REQUIRE(files.size() == 1);
    CHECK(files[0].at("FirstPublishLocationId") == json::value(task));
    CHECK(files[0].at("ContentSize") == 5);

    auto errors = org.errors();
    REQUIRE(errors.size() == 2);
    std::map<std::string, ErrorRow> by_source;
    for (auto& e : errors) by_source[e.entity_id] = e;
    CHECK(by_source["act-2"].code == "REFERENCE_NOT_SYNCED");
    CHECK_THAT(by_source["act-2"].message, Catch::Contains("FirstPublishLocationId refers to t9"));
    CHECK(by_source["act-3"].code == "BLOB_UNAVAILABLE");
    CHECK_THAT(by_source["act-3"].message, Catch::Contains("VersionData") && Catch::Contains("no blob \"gone\""));
    // The error log keeps the operation as mapped, never a file's content.
    for (auto& e : errors) CHECK_THAT(e.payload, !Catch::Contains("aGVsbG8="));

    // The next run: the file and its Task are unchanged and skipped; the missing blob is
    // there now, and its Task (written by the earlier run) is found through the links.
    auto again = org.run({records}, "", "{}", R"(, "blobs": {"f1": "aGVsbG8=", "gone": "aGk="})");
    CHECK(again.counts.created == 1);
    CHECK(again.counts.unchanged == 3);
    auto three = org.id_of("SELECT Id FROM Task WHERE CrmSync_Key__c = 't3'");
    CHECK(org.crm().query("SELECT Id FROM ContentVersion WHERE FirstPublishLocationId = '" + three + "'").rows.size() == 1);
    CHECK(org.crm().query("SELECT Id FROM ContentVersion").rows.size() == 2);

    // A renamed file updates its title; its content, name on disk and first home are
    // create-only, so the update leaves them out and never asks the source for the content.
    std::string renamed = records;
    renamed.replace(renamed.find(R"("Title": "notes.txt")"), std::string(R"("Title": "notes.txt")").size(),
                    R"("Title": "minutes.txt")");
    auto third = org.run({renamed}, "", "{}", R"(, "blobs": {"gone": "aGk="})");
    CHECK(third.counts.updated == 1);
    CHECK(third.counts.failed == 1);  // act-2's parent still does not exist
    auto file = org.crm()
                    .query("SELECT Title, ContentSize, FirstPublishLocationId FROM ContentVersion WHERE CrmSync_Key__c = 't1:f1'")
                    .rows;
    REQUIRE(file.size() == 1);
    CHECK(file[0].at("Title") == "minutes.txt");
    CHECK(file[0].at("ContentSize") == 5);
    CHECK(file[0].at("FirstPublishLocationId") == json::value(task));
}

TEST_CASE(
    "budget: a daily limit that runs out during the lookups stops the batch, nothing fails and the next run writes each once") {
    // Each limit runs out at a different one of the first calls: the user lookup, the
    // connection user, the Contact/Lead lookup, the describe.
    for (int64_t limit = 1; limit <= 4; ++limit) {
        DYNAMIC_SECTION("daily limit " << limit) {
            Org org(R"({"Contact": [{"LastName": "C", "Email": "c@x.jp"}]})",
                    R"({"Salesforce": 10, "Salesforce Integration": 5})", limit);
            std::vector<std::string> records;
            for (int i = 0; i < 3; ++i)
                records.push_back(event_record("ev-" + std::to_string(i),
                                               R"(, "owner": {"email": "nobody@x.jp", "if_missing": ["connection_user"]}, )"
                                               R"("related": {"emails": ["c@x.jp"]})"));
            auto first = org.run(records, "", "{}", "", false);
            CHECK(first.status == RunStatus::stopped);
            CHECK(first.counts.failed == 0);
            CHECK(org.errors().empty());
            CHECK(org.crm().query("SELECT COUNT() FROM Event").total == 0);

            org.connect(R"({"Salesforce": 10, "Salesforce Integration": 5})", 100000);  // a new day's budget
            org.runner.a_day_passes_for_the_api_budget();
            auto next = org.run(records, "", "{}", "", false);
            INFO(next.message);
            CHECK(next.status == RunStatus::succeeded);
            CHECK(next.counts.created == 3);
            CHECK(org.errors().empty());
            CHECK(org.crm().query("SELECT COUNT() FROM Event").total == 3);
            CHECK(org.crm().query("SELECT COUNT() FROM Event WHERE WhoId != null").total == 3);
        }
    }
}
