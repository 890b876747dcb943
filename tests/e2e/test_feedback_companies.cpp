// feedback-companies as an operator runs it: the run turned round (ABI 1.1) — CRM Accounts or
// Opportunities, read through mock-crm, become companies in a feedback tool (a fake of its
// API on loopback, or an export folder), through the crmsync executable.
#include <catch2/catch.hpp>

#include "engine/engine.h"
#include "fake_feedback.h"
#include "test_support.h"

using testing::Process;
using testing::TempDir;
using testing::write_file;
namespace json = boost::json;

namespace {

struct Home {
    TempDir dir;
    fakes::FakeFeedback tool{"fb-token-secret"};
    Home() {
        tool.define_field("industry", "single_select", {"Technology"});
        tool.define_field("revenue", "number");
        tool.define_field("employees", "number");
        tool.start();
        write_file(dir / "secrets/token", "fb-token-secret");
        std::filesystem::create_directories(dir / "var");
        write_file(dir / "manifests/crm.json",
                   R"({"connection": "crm", "plugin": {"id": "mock-crm", "version": "^1.0"},
                       "config": {"database": ")" +
                       dir / "var/crm.db" + R"("}})");
    }
    // The mock org, opened beside crmsync as an admin would work in it.
    template <class Fn>
    auto org(Fn&& fn, std::function<int64_t()> clock = nullptr) {
        mockcrm::EngineOptions o;
        o.database = dir / "var/crm.db";
        o.now_ms = std::move(clock);
        mockcrm::Engine engine(o);
        return fn(engine);
    }
    // `extra`: more of the module manifest, ending in a comma.
    void module(const std::string& config, const std::string& destination = "", const std::string& extra = "") {
        write_file(dir / "manifests/companies.json",
                   R"({"module": "companies", "plugin": {"id": "feedback-companies", "version": "^0.1"}, "crm": "crm",)" + extra +
                       R"("schedule": {"every": "4h"},
                       "credentials": {"api_token": {"file": "../secrets/token"}},
                       "config": {"destination": )" +
                       (destination.empty() ? R"({"base_url": ")" + tool.base_url() + R"("})" : destination) + ", " + config +
                       "}}");
    }
    Process crmsync(std::vector<std::string> args) { return testing::crmsync_at(dir.str(), std::move(args), CRMSYNC_PLUGIN_DIR); }
};

const char* kAccounts = R"({"Account": [
    {"_ref": "a1", "Name": "Acme KK", "Industry": "Technology", "Type": "Customer - Direct", "AnnualRevenue": 5000000, "NumberOfEmployees": 120},
    {"_ref": "a2", "Name": "Beta KK", "Industry": "Finance", "Type": "Customer - Channel", "AnnualRevenue": 1000000},
    {"_ref": "a3", "Name": "Gamma KK", "Industry": "Retail", "Type": "Prospect", "AnnualRevenue": 9000000},
    {"_ref": "a4", "Name": "Delta KK", "Industry": "Technology", "Type": "Customer - Direct", "AnnualRevenue": 200000},
    {"_ref": "a5", "Name": "Epsilon KK", "Type": "Customer - Direct"}]})";

const char* kCustomers = R"("object": "Account",
    "filters": [{"field": "Type", "op": "in", "value": ["Customer - Direct", "Customer - Channel"]},
                {"field": "AnnualRevenue", "op": "at_least", "value": 500000}],
    "fields": {"industry": {"from": "Industry", "type": "single_select"},
               "revenue": {"from": "AnnualRevenue", "type": "number"},
               "employees": {"from": "NumberOfEmployees", "type": "number"}})";

std::string id_of(Home& home, const std::string& name) {
    return home.org([&](mockcrm::Engine& e) {
        return std::string(e.query("SELECT Id FROM Account WHERE Name = '" + name + "'").rows.at(0).at("Id").as_string());
    });
}

}  // namespace

TEST_CASE("feedback-companies: Accounts meeting the filters become companies, first in full, then only what changed") {
    Home home;
    home.org([](mockcrm::Engine& e) {
        e.seed(json::parse(kAccounts).as_object());
        return 0;
    });
    home.module(kCustomers);
    auto check = home.crmsync({"check", "companies"});
    INFO(check.out << check.err);
    CHECK(check.status == 0);
    CHECK_THAT(check.out, Catch::Contains("reads Account from the CRM") && Catch::Contains("1 picklist(s) followed"));

    // A dry run says what would be created and which options set, and writes nothing.
    auto dry = home.crmsync({"run", "companies", "--dry-run"});
    CHECK_THAT(dry.out, Catch::Contains("create company (key " + id_of(home, "Acme KK")) &&
                            Catch::Contains("set the options of industry to Account.Industry's values"));
    CHECK(home.tool.company_count() == 0);
    CHECK(home.tool.requests("options") == 0);

    auto first = home.crmsync({"run", "companies"});
    INFO(first.out << first.err);
    CHECK(first.status == 0);
    CHECK_THAT(first.out, Catch::Contains("first sync completed: 2 Account record(s) written"));
    CHECK(home.tool.company_count() == 2);  // Acme and Beta; Gamma is a prospect, Delta too small, Epsilon unknown
    auto acme = home.tool.company(id_of(home, "Acme KK"));
    CHECK(acme.at("name") == "Acme KK");
    CHECK(acme.at("custom_fields").at("industry") == "Technology");
    CHECK(acme.at("custom_fields").at("revenue") == 5000000);
    CHECK(acme.at("custom_fields").at("employees") == 120);
    CHECK(home.tool.company(id_of(home, "Beta KK")).at("custom_fields").at("employees").is_null());
    // The tool's select options follow the CRM picklist: every value, before any company needs it.
    auto options = home.tool.options("industry");
    CHECK(options == std::vector<std::string>{"Technology", "Finance", "Manufacturing", "Retail", "Other"});
    CHECK_THAT(home.crmsync({"log", "2"}).out, Catch::Contains("連携が完了しました"));  // run 1 was the dry run

    // Nothing changed: nothing read, nothing written, not even the options.
    const int upserts = home.tool.requests("upsert"), option_calls = home.tool.requests("options");
    auto idle = home.crmsync({"run", "companies"});
    CHECK_THAT(idle.out, Catch::Contains("fetched 0") && !Catch::Contains("first sync"));
    CHECK(home.tool.requests("upsert") == upserts);
    CHECK(home.tool.requests("options") == option_calls);

    // One Account changes: only it is read and written, the tool's rate limit waited out.
    home.org([&](mockcrm::Engine& e) {
        return e.update("Account", id_of(home, "Beta KK"), json::object{{"NumberOfEmployees", 40}});
    });
    home.tool.throttle(1);
    auto changed = home.crmsync({"run", "companies"});
    CHECK(home.tool.throttled() == 1);
    CHECK_THAT(changed.out, Catch::Contains("fetched 1, created 0, updated 1"));
    CHECK(home.tool.company(id_of(home, "Beta KK")).at("custom_fields").at("employees") == 40);

    // A field more in the mapping: every Account is read again; only what changed is written.
    home.tool.define_field("phone", "text");
    home.module(std::string(kCustomers)
                    .replace(std::string(kCustomers).rfind('}'), 1, R"(, "phone": {"from": "Phone", "type": "text"}})"));
    const int before_reread = home.tool.requests("upsert");
    auto reread = home.crmsync({"run", "companies"});
    INFO(reread.out);
    CHECK_THAT(reread.out, Catch::Contains("fetched 5, created 0, updated 2"));
    CHECK(home.tool.requests("upsert") == before_reread + 2);
    CHECK(home.tool.company(id_of(home, "Acme KK")).at("custom_fields").as_object().contains("phone"));
    home.module(kCustomers);
    home.crmsync({"run", "companies"});

    // A picklist value added in the CRM is added to the tool; one deactivated stays there.
    home.org([](mockcrm::Engine& e) {
        e.add_picklist_value("Account", "Industry", "Healthcare");
        e.deactivate_picklist_value("Account", "Industry", "Other");
        return 0;
    });
    home.crmsync({"run", "companies"});
    options = home.tool.options("industry");
    CHECK(std::count(options.begin(), options.end(), "Healthcare") == 1);
    CHECK(std::count(options.begin(), options.end(), "Other") == 1);

    // Acme stops meeting the filters: by default its company stays as it is.
    home.org([&](mockcrm::Engine& e) { return e.update("Account", id_of(home, "Acme KK"), json::object{{"Type", "Prospect"}}); });
    home.crmsync({"run", "companies"});
    CHECK(home.tool.company(id_of(home, "Acme KK")).at("archived") == false);
    // With "on_leave": "archive", a company whose Account leaves is archived.
    home.module(std::string(kCustomers) + R"(, "on_leave": "archive")");
    home.org([&](mockcrm::Engine& e) {
        return e.update("Account", id_of(home, "Acme KK"), json::object{{"Phone", "03-0000-0000"}});
    });
    auto left = home.crmsync({"run", "companies"});
    INFO(left.out);
    CHECK(home.tool.company(id_of(home, "Acme KK")).at("archived") == true);
    // Gamma never met them: nothing was written for it, so nothing is archived.
    home.org([&](mockcrm::Engine& e) { return e.update("Account", id_of(home, "Gamma KK"), json::object{{"Phone", "03-1"}}); });
    home.crmsync({"run", "companies"});
    CHECK(home.tool.company(id_of(home, "Gamma KK")).empty());

    // An Account deleted (or merged) in the CRM: its company is archived.
    const std::string beta = id_of(home, "Beta KK");
    home.org([&](mockcrm::Engine& e) {
        e.remove("Account", beta);
        return 0;
    });
    auto deleted = home.crmsync({"run", "companies"});
    INFO(deleted.out);
    CHECK(home.tool.company(beta).at("archived") == true);
}

TEST_CASE("feedback-companies: records sharing a SystemModstamp across a page boundary are each written once") {
    Home home;
    // All saved at one instant: the page boundary (2,000 a page) falls inside a tie.
    home.org(
        [](mockcrm::Engine& e) {
            json::array accounts;
            for (int i = 0; i < 2'100; ++i)
                accounts.push_back(json::object{{"Name", "Account " + std::to_string(i)}, {"Type", "Customer - Direct"}});
            e.seed(json::object{{"Account", accounts}});
            return 0;
        },
        [] { return int64_t{1'795'000'000'000}; });
    CHECK(home.org([](mockcrm::Engine& e) {
        return e.database().execAndGet("SELECT COUNT(DISTINCT SystemModstamp) FROM Account").getInt64();
    }) == 1);
    home.module(R"("object": "Account", "fields": {"industry": {"from": "Industry", "type": "single_select"}})");
    auto run = home.crmsync({"run", "companies"});
    INFO(run.out << run.err);
    CHECK(run.status == 0);
    CHECK_THAT(run.out, Catch::Contains("fetched 2100, created 2100"));
    CHECK(home.tool.company_count() == 2'100);
    CHECK(home.tool.requests("upsert") == 2'100);  // none twice
    CHECK_THAT(home.crmsync({"run", "companies"}).out, Catch::Contains("fetched 0"));
}

TEST_CASE("feedback-companies: Opportunities with their Account's fields, one→many and unknown types refused, a folder") {
    Home home;
    home.org([](mockcrm::Engine& e) {
        e.seed(json::parse(R"({"Account": [{"_ref": "acme", "Name": "Acme KK", "Industry": "Retail"}],
                               "Opportunity": [{"Name": "Renewal_Acme KK", "StageName": "Prospecting", "CloseDate": "2026-12-01",
                                                "Amount": 30000, "AccountId": "@acme"}]})")
                   .as_object());
        return 0;
    });
    // An Account has many Opportunities: no one value for its company.
    home.module(R"("object": "Account", "fields": {"deal": {"from": "Opportunities.Amount", "type": "number"}})");
    auto one_to_many = home.crmsync({"check", "companies"});
    CHECK(one_to_many.status == 2);
    CHECK_THAT(one_to_many.out, Catch::Contains("Opportunities, which is one→many"));
    home.module(R"("object": "Account", "fields": {"vip": {"from": "IsVip__c", "type": "boolean"}})");
    CHECK_THAT(home.crmsync({"check", "companies"}).out,
               Catch::Contains("config.fields.vip: type \"boolean\" is not one the feedback tool's custom fields take"));
    home.module(R"("object": "Account", "fields": {"deal": {"from": "NoSuchField__c", "type": "number"}})");
    CHECK_THAT(home.crmsync({"check", "companies"}).out,
               Catch::Contains("the connection's user cannot read Account.NoSuchField__c"));

    // From Opportunities, the Account's Industry is many→one: allowed. check warns about names.
    home.module(R"("object": "Opportunity",
                   "fields": {"industry": {"from": "Account.Industry", "type": "single_select"},
                              "stage": {"from": "StageName", "type": "single_select"},
                              "amount": {"from": "Amount", "type": "number"},
                              "close": {"from": "CloseDate", "type": "date"}})",
                R"({"folder": ")" + home.dir / "export" + R"("})");
    auto check = home.crmsync({"check", "companies"});
    INFO(check.out << check.err);
    CHECK(check.status == 0);
    CHECK_THAT(check.out, Catch::Contains("companies are named after Opportunity names"));
    auto run = home.crmsync({"run", "companies"});
    INFO(run.out << run.err);
    CHECK(run.status == 0);
    auto lines = testing::read_file(home.dir / "export/companies.jsonl");
    CHECK_THAT(lines, Catch::Contains(R"("name":"Renewal_Acme KK")") && Catch::Contains(R"("industry":"Retail")") &&
                          Catch::Contains(R"("amount":30000)") && Catch::Contains(R"("close":"2026-12-01")"));
    // The Opportunity's own picklist and its Account's, reached many→one, are both followed.
    auto options = testing::read_file(home.dir / "export/options.jsonl");
    CHECK_THAT(options, Catch::Contains(R"("field":"stage")") && Catch::Contains(R"("field":"industry")"));
}

TEST_CASE("feedback-companies: a select field the tool lacks fails until it is created, then its errors close") {
    Home home;
    home.org([](mockcrm::Engine& e) {
        e.seed(json::parse(kAccounts).as_object());
        return 0;
    });
    // The tool has no "segment" field yet: its options and the companies carrying it fail.
    home.module(R"("object": "Account", "filters": [{"field": "Name", "op": "equals", "value": "Acme KK"}],
                   "fields": {"segment": {"from": "Type", "type": "single_select"}})",
                "", R"("failed_records": {"backoff": "0s"},)");
    auto failing = home.crmsync({"run", "companies"});
    INFO(failing.out << failing.err);
    CHECK(failing.status == 1);
    auto errors = home.crmsync({"errors", "companies", "--format", "csv"});
    CHECK_THAT(errors.out, Catch::Contains("UNKNOWN_FIELD") && Catch::Contains("Account.Type"));
    CHECK_THAT(errors.out, Catch::Contains("create it as a select field first"));
    // Created in the tool: the next run sets its options and lands the company; nothing stays open.
    home.tool.define_field("segment", "single_select");
    auto fixed = home.crmsync({"run", "companies"});
    INFO(fixed.out << fixed.err);
    CHECK(fixed.status == 0);
    CHECK(home.tool.company(id_of(home, "Acme KK")).at("custom_fields").at("segment") == "Customer - Direct");
    CHECK_THAT(home.crmsync({"errors", "companies"}).out, Catch::Contains("no open errors"));
}
