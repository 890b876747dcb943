// product-analytics as an operator runs it: report rows onto the fields of any CRM object,
// each matched by its key — from CSV exports and from the analytics tool's API (a fake on
// loopback), through the crmsync executable against mock-crm.
#include <catch2/catch.hpp>

#include "fake_analytics.h"
#include "test_support.h"

using testing::Process;
using testing::TempDir;
using testing::write_file;
namespace fs = std::filesystem;

namespace {

// A home whose commands see every built plugin.
struct Home {
    TempDir dir;
    Process crmsync(std::vector<std::string> args) { return testing::crmsync_at(dir.str(), std::move(args), CRMSYNC_PLUGIN_DIR); }
    // A mock-crm connection `name` seeded with these Leads and their usage fields; `extra`:
    // more of its config, ending in a comma.
    void crm(const std::string& name, const std::string& leads_json, const std::string& extra = "") {
        write_file(dir / (name + "-seed.json"), R"({"Lead": )" + leads_json + "}");
        write_file(dir / ("manifests/" + name + ".json"),
                   R"({"connection": ")" + name + R"(", "plugin": {"id": "mock-crm", "version": "^1.0"}, "config": {)" + extra +
                       R"(
                       "database": ")" +
                       dir / ("var/" + name + ".db") + R"(", "seed": ")" + dir / (name + "-seed.json") + R"(",
                       "schema": {"Lead": {"fields": {"WalkMe_First_Login__c": {"type": "datetime"},
                                                      "WalkMe_Logins_last_30_days__c": {"type": "double"}}}}}})");
    }
};

}  // namespace

TEST_CASE("product-analytics: report rows update the Lead each key matches, no match, several, a bad value, unchanged") {
    Home home;
    write_file(home.dir / "seed.json", R"({"Lead": [
        {"LastName": "Tanaka", "Company": "Customer KK", "Email": "tanaka@customer.jp"},
        {"LastName": "Dup", "Company": "One", "Email": "dup@customer.jp"},
        {"LastName": "Dup", "Company": "Two", "Email": "dup@customer.jp"},
        {"LastName": "Suzuki", "Company": "Customer KK", "Email": "suzuki@customer.jp"}]})");
    write_file(home.dir / "manifests/analytics-crm.json",
               R"({"connection": "analytics-crm", "plugin": {"id": "mock-crm", "version": "^1.0"}, "config": {
                   "database": ")" +
                   home.dir / "var/analytics.db" + R"(", "seed": ")" + home.dir / "seed.json" + R"(",
                   "schema": {"Lead": {"fields": {"WalkMe_First_Login__c": {"type": "datetime"},
                                                  "WalkMe_Logins_last_30_days__c": {"type": "double"}}}}}})");
    write_file(home.dir / "reports/logins-2026-11-20.csv",
               "email,first_login,logins_30d,nps\n"
               "TANAKA@Customer.jp,2026-11-01T09:00:00Z,12,\n"  // the Email field compares case-insensitively
               "nobody@customer.jp,2026-11-02T09:00:00Z,3,\n"
               "dup@customer.jp,2026-11-03T09:00:00Z,5,\n"
               "suzuki@customer.jp,2026-11-04T09:00:00Z,n/a,\n");
    auto manifest = [&](const std::string& extra_column) {
        write_file(home.dir / "manifests/logins.json",
                   R"({"module": "logins", "plugin": {"id": "product-analytics"}, "crm": "analytics-crm",
                       "schedule": {"daily_at": "08:00"}, "config": {"folder": ")" +
                       home.dir / "reports" + R"(", "report": "Logins", "object": "Lead",
                       "key": {"column": "email", "field": "Email"},
                       "columns": {"first_login": {"field": "WalkMe_First_Login__c", "type": "datetime"},
                                   "logins_30d": {"field": "WalkMe_Logins_last_30_days__c", "type": "number"})" +
                       extra_column + "}}}");
    };
    manifest(R"(, "nps": {"field": "WalkMe_NPS__c", "type": "number"})");
    auto check = home.crmsync({"check", "logins"});
    CHECK(check.status == 2);
    CHECK_THAT(check.out,
               Catch::Contains("Lead.WalkMe_NPS__c does not exist in the CRM") && Catch::Contains("as a Number field"));
    CHECK_THAT(check.out, !Catch::Contains("CrmSync_Key__c"));  // rows update Leads found by Email: no key field needed

    manifest(R"(, "email2": {"field": "Email"})");  // a second report column on the key's field
    auto refused = home.crmsync({"run", "logins"});
    CHECK(refused.status != 0);
    CHECK_THAT(refused.out + refused.err, Catch::Contains("Lead.Email is matched by the key column \"email\""));

    manifest("");
    CHECK(home.crmsync({"check", "logins"}).status == 0);
    auto run = home.crmsync({"run", "logins"});
    INFO(run.out << run.err);
    CHECK(run.status == 1);
    CHECK_THAT(run.out, Catch::Contains("fetched 4, created 0, updated 1") && Catch::Contains("failed 2, no match 1"));
    auto tanaka = home.crmsync({"crm", "query",
                                "SELECT WalkMe_Logins_last_30_days__c, WalkMe_First_Login__c FROM Lead WHERE LastName = 'Tanaka'",
                                "--crm", "analytics-crm", "--json"});
    CHECK_THAT(tanaka.out, Catch::Contains("\"WalkMe_Logins_last_30_days__c\":1.2E1") ||
                               Catch::Contains("\"WalkMe_Logins_last_30_days__c\":12"));
    CHECK_THAT(tanaka.out, Catch::Contains("2026-11-01T09:00:00.000+0000"));
    auto errors = home.crmsync({"errors", "logins", "--format", "csv"});
    CHECK_THAT(errors.out, Catch::Contains("DUPLICATE_MATCH") && Catch::Contains("2 Lead records have Email = dup@customer.jp"));
    CHECK_THAT(errors.out, Catch::Contains("suzuki@customer.jp") && Catch::Contains("INVALID_TYPE_ON_FIELD_IN_RECORD"));
    auto log = home.crmsync({"log", "1"});  // the refused config never started a run
    CHECK_THAT(log.out, Catch::Contains("no match: no Lead has Email = nobody@customer.jp"));
    // The rows without a record, to export and fix: the run's list, as a table or CSV.
    CHECK_THAT(home.crmsync({"unmatched", "logins"}).out, Catch::Contains("nobody@customer.jp") && Catch::Contains("Email"));
    auto unmatched = home.crmsync({"unmatched", "logins", "--run", "1", "--format", "csv"});
    CHECK(unmatched.status == 0);
    CHECK(unmatched.out.rfind("run_id,at,object,fields,key,source_id\r\n1,", 0) == 0);
    CHECK_THAT(unmatched.out, Catch::Contains(",Lead,Email,nobody@customer.jp,nobody@customer.jp\r\n"));
    CHECK(home.crmsync({"unmatched", "logins", "--run", "99"}).status == 2);
    CHECK_THAT(log.out, Catch::Contains("report Logins -> Lead (by email = Email): reading logins-2026-11-20.csv, 4 row(s)"));

    auto again = home.crmsync({"run", "logins", "--full"});
    CHECK_THAT(again.out, Catch::Contains("updated 0, unchanged 1"));  // Tanaka's row did not change: no write

    // A dry run shows, per field, what a changed row would change.
    write_file(home.dir / "reports/logins-2026-11-20.csv",
               "email,first_login,logins_30d,nps\nTANAKA@Customer.jp,2026-11-01T09:00:00Z,13,\n");
    auto dry = home.crmsync({"run", "logins", "--full", "--dry-run"});
    CHECK_THAT(dry.out, Catch::Contains("(source TANAKA@Customer.jp): WalkMe_Logins_last_30_days__c: 12 -> 13"));
    CHECK_THAT(dry.out, !Catch::Contains("WalkMe_First_Login__c:"));  // the same instant, written differently
}

TEST_CASE("product-analytics: the demo's walkme-logins module puts the Logins report on the demo org's Leads by Email") {
    TempDir home;
    const std::string source = CRMSYNC_SOURCE_DIR;
    fs::create_directories(home.path() / "manifests");
    fs::create_directories(home.path() / "samples");
    for (const char* m : {"mock-crm.json", "product-analytics.json"})
        fs::copy(source + "/manifests/" + m, home.path() / "manifests" / m);
    fs::copy(source + "/plugins/crms/mock-crm/samples", home.path() / "samples/mock-crm", fs::copy_options::recursive);
    fs::copy(source + "/plugins/sources/product-analytics/samples", home.path() / "samples/product-analytics",
             fs::copy_options::recursive);
    auto crmsync = [&](std::vector<std::string> args) {
        return testing::crmsync_at(home.str(), std::move(args), CRMSYNC_PLUGIN_DIR);
    };
    CHECK(crmsync({"check", "walkme-logins"}).status == 0);
    auto run = crmsync({"run", "walkme-logins"});
    INFO(run.out << run.err);
    CHECK(run.status == 0);
    CHECK_THAT(run.out, Catch::Contains("fetched 4, created 0, updated 3") && Catch::Contains("no match 1"));
    auto leads = crmsync({"crm", "query", "SELECT LastName, WalkMe_Logins_last_30_days__c FROM Lead WHERE LastName = 'Sato'"});
    CHECK_THAT(leads.out, Catch::Contains("Sato") && Catch::Contains("18"));
}

TEST_CASE("product-analytics: a custom object by a GUID key that compares exactly") {
    Home home;
    write_file(home.dir / "seed.json", R"({"Product_User__c": [
        {"Name": "Upper", "User_Guid__c": "AbC-123"}, {"Name": "Lower", "User_Guid__c": "abc-123"}]})");
    write_file(home.dir / "manifests/guid-crm.json",
               R"({"connection": "guid-crm", "plugin": {"id": "mock-crm", "version": "^1.0"}, "config": {
                   "database": ")" +
                   home.dir / "var/guid.db" + R"(", "seed": ")" + home.dir / "seed.json" + R"(",
                   "schema": {"Product_User__c": {"fields": {"User_Guid__c": {"type": "string", "length": 64},
                                                             "Logins__c": {"type": "double"}}}}}})");
    write_file(home.dir / "reports/usage.csv", "guid,logins\nAbC-123,7\n");
    auto manifest = [&](const std::string& compare) {
        write_file(home.dir / "manifests/usage.json",
                   R"({"module": "usage", "plugin": {"id": "product-analytics"}, "crm": "guid-crm", "config": {"folder": ")" +
                       home.dir / "reports" + R"(", "report": "Usage", "object": "Product_User__c",
                       "key": {"column": "guid", "field": "User_Guid__c")" +
                       compare + R"(},
                       "columns": {"logins": {"field": "Logins__c", "type": "number"}}}})");
    };
    manifest("");  // as Salesforce compares text: two candidates, nothing guessed
    auto ambiguous = home.crmsync({"run", "usage"});
    CHECK_THAT(ambiguous.out, Catch::Contains("failed 1"));
    CHECK_THAT(home.crmsync({"errors", "usage"}).out, Catch::Contains("DUPLICATE_MATCH"));
    manifest(R"(, "compare": "exact")");
    auto exact = home.crmsync({"run", "usage", "--full"});
    INFO(exact.out << exact.err);
    CHECK_THAT(exact.out, Catch::Contains("updated 1") && Catch::Contains("failed 0"));
    auto rows =
        home.crmsync({"crm", "query", "SELECT Name, Logins__c FROM Product_User__c WHERE Logins__c = 7", "--crm", "guid-crm"});
    CHECK_THAT(rows.out, Catch::Contains("Upper") && !Catch::Contains("Lower"));
    CHECK_THAT(home.crmsync({"errors", "usage"}).out, Catch::Contains("no open errors"));  // the same row landed
}

TEST_CASE("product-analytics: several key pairs must all match, and each identifier field is matched by one key only") {
    Home home;
    home.crm("crm", R"([{"LastName": "Kept", "Company": "Customer KK", "Email": "shared@customer.jp"},
                        {"LastName": "Other", "Company": "Other KK", "Email": "shared@customer.jp"}])");
    write_file(home.dir / "reports/logins.csv", "email,company,logins_30d\nshared@customer.jp,other kk,9\n");
    auto manifest = [&](const std::string& keys) {
        write_file(home.dir / "manifests/logins.json",
                   R"({"module": "logins", "plugin": {"id": "product-analytics"}, "crm": "crm", "config": {"folder": ")" +
                       home.dir / "reports" + R"(", "report": "Logins", "object": "Lead", "key": )" + keys + R"(,
                       "columns": {"logins_30d": {"field": "WalkMe_Logins_last_30_days__c", "type": "number"}}}})");
    };
    // As the seed says: one Salesforce identifier field, one report key per integration.
    manifest(R"([{"column": "email", "field": "Email"}, {"column": "company", "field": "email"}])");
    auto refused = home.crmsync({"check", "logins"});
    CHECK(refused.status == 2);
    CHECK_THAT(refused.out, Catch::Contains("Lead.email is matched by both \"email\" and \"company\"") &&
                                Catch::Contains("only one report key per integration"));
    // Email alone finds two Leads: nothing guessed. Email and Company find one.
    manifest(R"({"column": "email", "field": "Email"})");
    CHECK_THAT(home.crmsync({"run", "logins"}).out, Catch::Contains("failed 1"));
    manifest(R"([{"column": "email", "field": "Email"}, {"column": "company", "field": "Company"}])");
    auto run = home.crmsync({"run", "logins", "--full"});
    INFO(run.out << run.err);
    CHECK_THAT(run.out, Catch::Contains("updated 1") && Catch::Contains("failed 0"));
    auto leads = home.crmsync({"crm", "query", "SELECT LastName FROM Lead WHERE WalkMe_Logins_last_30_days__c = 9", "--json"});
    CHECK_THAT(leads.out, Catch::Contains("Other") && !Catch::Contains("Kept"));
    // A pair that finds nothing is listed with every key it looked for.
    write_file(home.dir / "reports/logins.csv", "email,company,logins_30d\nshared@customer.jp,Nowhere KK,4\n");
    home.crmsync({"run", "logins", "--full"});
    CHECK_THAT(home.crmsync({"unmatched", "logins"}).out, Catch::Contains("Email = shared@customer.jp and Company = Nowhere KK"));
}

TEST_CASE("product-analytics: from the analytics API — tagged reports only, pages, 429, a new token, each refresh read again") {
    fakes::FakeAnalytics api("pa-client", "pa-secret-value");
    api.start();
    const std::vector<std::string> columns{"email", "first_login", "logins_30d"};
    api.put_report("rpt-1", "Logins", {"integrations_salesforce"}, columns,
                   {{"tanaka@customer.jp", "2026-11-01T09:00:00Z", "12"},
                    {"suzuki@customer.jp", "2026-11-02T09:00:00Z", "3"},
                    {"sato@customer.jp", "2026-11-03T09:00:00Z", "7"},
                    {"ito@customer.jp", "2026-11-04T09:00:00Z", "1"},
                    {"nobody@customer.jp", "2026-11-05T09:00:00Z", "5"}});
    api.put_report("rpt-2", "NPS", {"integrations_salesforce", "survey"}, {"email", "nps"}, {});
    api.put_report("rpt-3", "Revenue by user", {"finance"}, {"email", "revenue"}, {});
    Home home;
    home.crm("crm", R"([{"LastName": "Tanaka", "Company": "C", "Email": "tanaka@customer.jp"},
                        {"LastName": "Suzuki", "Company": "C", "Email": "suzuki@customer.jp"},
                        {"LastName": "Sato", "Company": "C", "Email": "sato@customer.jp"},
                        {"LastName": "Ito", "Company": "C", "Email": "ito@customer.jp"}])");
    write_file(home.dir / "secrets/id", "pa-client");
    write_file(home.dir / "secrets/secret", "pa-secret-value");
    auto manifest = [&](const std::string& report) {
        write_file(home.dir / "manifests/logins.json",
                   R"({"module": "logins", "plugin": {"id": "product-analytics"}, "crm": "crm",
                       "schedule": {"daily_at": "08:00"},
                       "credentials": {"client_id": {"file": "../secrets/id"}, "client_secret": {"file": "../secrets/secret"}},
                       "config": {"api": {"base_url": ")" +
                       api.base_url() + R"(", "page_size": 2}, "report": ")" + report + R"(", "object": "Lead",
                       "key": {"column": "email", "field": "Email"},
                       "columns": {"first_login": {"field": "WalkMe_First_Login__c", "type": "datetime"},
                                   "logins_30d": {"field": "WalkMe_Logins_last_30_days__c", "type": "number"}}}})");
    };
    // check lists the reports offered to integrations and refuses any other.
    manifest("Logins");
    auto check = home.crmsync({"check", "logins"});
    INFO(check.out << check.err);
    CHECK(check.status == 0);
    CHECK_THAT(check.out, Catch::Contains("reports offered to integrations (tag integrations_salesforce): Logins, NPS"));
    manifest("Revenue by user");
    CHECK_THAT(home.crmsync({"check", "logins"}).out,
               Catch::Contains("report \"Revenue by user\" is not tagged integrations_salesforce"));
    manifest("Churn");
    auto unknown = home.crmsync({"run", "logins"});
    CHECK(unknown.status == 2);
    CHECK_THAT(unknown.out + unknown.err,
               Catch::Contains("no report \"Churn\" is offered to integrations") && Catch::Contains("offered: Logins, NPS"));

    // Pages of two rows; the first request over the rate limit is waited out.
    manifest("Logins");
    api.throttle(1);
    const auto rows_before = api.requests("rows");  // check read a first page of its own
    auto run = home.crmsync({"run", "logins"});
    INFO(run.out << run.err);
    CHECK(run.status == 0);
    CHECK_THAT(run.out, Catch::Contains("fetched 5, created 0, updated 4") && Catch::Contains("no match 1"));
    CHECK(api.throttled() == 1);
    CHECK(api.requests("rows") - rows_before == 3);
    CHECK_THAT(home.crmsync({"unmatched", "logins"}).out, Catch::Contains("nobody@customer.jp"));
    auto sato =
        home.crmsync({"crm", "query", "SELECT WalkMe_Logins_last_30_days__c FROM Lead WHERE LastName = 'Sato'", "--json"});
    CHECK_THAT(sato.out, Catch::Contains("\"WalkMe_Logins_last_30_days__c\":7"));

    // The same refresh again: nothing to read. An expired token is renewed once.
    api.expire_tokens();
    const int tokens = api.requests("token");
    auto same = home.crmsync({"run", "logins"});
    CHECK(same.status == 0);
    CHECK_THAT(same.out, Catch::Contains("fetched 0"));
    CHECK(api.requests("token") >= tokens + 1);

    // Tomorrow's refresh is read whole; only the row that changed is written.
    api.put_report("rpt-1", "Logins", {"integrations_salesforce"}, columns,
                   {{"tanaka@customer.jp", "2026-11-01T09:00:00Z", "13"},
                    {"suzuki@customer.jp", "2026-11-02T09:00:00Z", "3"},
                    {"sato@customer.jp", "2026-11-03T09:00:00Z", "7"},
                    {"ito@customer.jp", "2026-11-04T09:00:00Z", "1"},
                    {"nobody@customer.jp", "2026-11-05T09:00:00Z", "5"}});
    auto next_day = home.crmsync({"run", "logins"});
    INFO(next_day.out << next_day.err);
    CHECK_THAT(next_day.out, Catch::Contains("fetched 5, created 0, updated 1, unchanged 3"));

    // Wrong credentials: said so, the secret never printed.
    write_file(home.dir / "secrets/secret", "not-the-secret");
    auto refused = home.crmsync({"run", "logins"});
    CHECK(refused.status != 0);
    CHECK_THAT(refused.out + refused.err,
               Catch::Contains("refused the client credentials") && !Catch::Contains("not-the-secret"));
}

TEST_CASE("product-analytics: a CRM plugin without lookup is asked in short SOQL queries, with the same outcome") {
    Home home;
    home.crm("crm", R"([{"LastName": "Tanaka", "Company": "C", "Email": "tanaka@customer.jp"},
                        {"LastName": "Dup1", "Company": "C", "Email": "dup@customer.jp"},
                        {"LastName": "Dup2", "Company": "C", "Email": "dup@customer.jp"}])",
             R"("abi_1_0_requests": true,)");  // its plugin answering as one built before ABI 1.1: no `lookup`
    write_file(home.dir / "reports/logins.csv",
               "email,logins_30d\nTANAKA@customer.jp,12\ndup@customer.jp,3\nnobody@customer.jp,1\n");
    write_file(home.dir / "manifests/logins.json",
               R"({"module": "logins", "plugin": {"id": "product-analytics"}, "crm": "crm", "config": {"folder": ")" +
                   home.dir / "reports" +
                   R"(", "report": "Logins", "object": "Lead", "key": {"column": "email", "field": "Email"},
                   "columns": {"logins_30d": {"field": "WalkMe_Logins_last_30_days__c", "type": "number"}}}})");
    auto run = home.crmsync({"run", "logins"});
    INFO(run.out << run.err);
    CHECK_THAT(run.out, Catch::Contains("fetched 3, created 0, updated 1") && Catch::Contains("failed 1, no match 1"));
    CHECK_THAT(home.crmsync({"errors", "logins", "--format", "csv"}).out, Catch::Contains("DUPLICATE_MATCH"));
}
