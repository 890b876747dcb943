// The crmsync executable as an operator runs it: flags, output, exit codes.
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "test_support.h"

using testing::Process;
using testing::TempDir;
using testing::write_file;
namespace fs = std::filesystem;

namespace {

struct Home {
    TempDir dir;
    TempDir plugins;  // a private copy of the plugins, so tests may damage them
    Home() {
        for (const char* id : {"mock-crm", "example-jsonl"})
            fs::copy(std::string(CRMSYNC_PLUGIN_DIR) + "/" + id, plugins.path() / id, fs::copy_options::recursive);
        write_file(dir / "manifests/crm.json", testing::mock_connection(dir / "var/crm.db"));
        write_file(dir / "in/a.jsonl", R"({"id": "a-1", "subject": "First", "status": "Completed"}
{"id": "a-2", "subject": "Second", "status": "Bogus"}
{"id": "a-3", "subject": "Third, with \"quotes\""}
)");
        module("tasks", dir / "in");
    }
    void module(const std::string& name, const std::string& folder, const std::string& plugin = "example-jsonl") {
        write_file(dir / ("manifests/" + name + ".json"), R"({"module": ")" + name + R"(", "plugin": {"id": ")" + plugin +
                                                              R"(", "version": "^1.0"}, "crm": "mock",
                       "schedule": {"every": "4h"},
                       "config": {"folder": ")" + folder + R"(", "object": "Task", "key_prefix": ")" +
                                                              name + R"(",
                                  "fields": {"Subject": "subject", "Status": "status"}}})");
    }
    Process crmsync(std::vector<std::string> args) { return testing::crmsync_at(dir.str(), std::move(args), plugins.str()); }
};

}  // namespace

TEST_CASE("cli: run lands records, reports record errors with exit 1, and query shows them") {
    Home home;
    auto run = home.crmsync({"run", "tasks"});
    CHECK(run.status == 1);
    CHECK_THAT(run.out, Catch::Contains("tasks: partial — fetched 3, created 2, updated 0, unchanged 0, ignored 0, failed 1"));
    auto query = home.crmsync({"crm", "query", "SELECT Id, Subject FROM Task ORDER BY Subject"});
    CHECK(query.status == 0);
    CHECK_THAT(query.out, Catch::Contains("First") && Catch::Contains("(2 records)"));
    auto json_query = home.crmsync({"crm", "query", "SELECT COUNT() FROM Task", "--json"});
    CHECK_THAT(json_query.out, Catch::Contains("\"totalSize\":2"));
    auto again = home.crmsync({"run", "--all"});
    CHECK(again.status == 0);
}

TEST_CASE("cli: errors export as CSV with the CRM's code, fields and entity id") {
    Home home;
    home.crmsync({"run", "tasks"});
    auto csv = home.crmsync({"errors", "tasks", "--since", "365d", "--format", "csv"});
    CHECK(csv.status == 0);
    CHECK_THAT(csv.out, Catch::StartsWith("id,run_id,module,occurred_at,entity_id,key,object,exception_type,message,fields,"
                                          "payload,connection,state,closed_reason,closed_at\r\n"));
    CHECK_THAT(csv.out, Catch::Contains(",a-2,tasks:a-2,Task,INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST,") &&
                            Catch::Contains("\"Task.Status: \"\"Bogus\"\" is not a value of this restricted picklist\",Status,"));
    auto table = home.crmsync({"errors"});
    CHECK_THAT(table.out, Catch::Contains("a-2"));
    auto bad = home.crmsync({"errors", "--since", "forever"});
    CHECK(bad.status == 2);
    CHECK_THAT(bad.err, Catch::Contains("--since \"forever\" is not a duration"));
}

TEST_CASE("cli: a dry run writes nothing and lists what it would do") {
    Home home;
    auto dry = home.crmsync({"run", "tasks", "--dry-run"});
    CHECK_THAT(dry.out, Catch::Contains("dry run — nothing was written") && Catch::Contains("would create Task (key tasks:a-1"));
    auto count = home.crmsync({"crm", "query", "SELECT COUNT() FROM Task"});
    CHECK_THAT(count.out, Catch::StartsWith("0"));
}

TEST_CASE("cli: flipping one byte of a plugin library refuses that module for its hash, the others stay usable") {
    Home home;
    TempDir other_in;
    write_file(other_in / "x.jsonl", R"({"id": "1", "subject": "kept working"})");
    // A second copy of the source plugin under another id would need a rebuild; instead the
    // damaged plugin is the CRM-less example, and the CRM plugin itself stays intact.
    auto lib = home.plugins / "example-jsonl/example-jsonl.so";
    std::string bytes = testing::read_file(lib);
    bytes[bytes.size() / 3] ^= 0x20;
    write_file(lib, bytes);
    auto modules = home.crmsync({"modules"});
    CHECK(modules.status == 2);  // something is refused: say so in the exit code too
    CHECK_THAT(modules.out,
               Catch::Contains("REFUSED") && Catch::Contains("sha256 of") && Catch::Contains("rebuild or reinstall the plugin"));
    auto run = home.crmsync({"run", "tasks"});
    CHECK(run.status == 2);
    // The CRM plugin beside it still loads and answers.
    auto query = home.crmsync({"crm", "query", "SELECT COUNT() FROM User"});
    CHECK(query.status == 0);
    CHECK_THAT(query.out, Catch::StartsWith("1"));
}

TEST_CASE("cli: modules lists plugin, version, ABI, schedule, last run and names bad manifests") {
    Home home;
    write_file(home.dir / "manifests/zz-bad.json",
               R"({"module": "bad", "plugin": "example-jsonl", "crm": "mock", "schedule": {"every": "4x"}})");
    home.crmsync({"run", "tasks"});
    auto json = home.crmsync({"modules", "--json"});
    CHECK_THAT(json.out,
               Catch::Contains(
                   R"("module":"tasks","plugin":"example-jsonl","version":"1.1.0","abi":"1.1","enabled":true,"verified":true,)"
                   R"("signature":{"state":"untrusted","key_id":"75C76E7DFF7F514C",)"));
    CHECK_THAT(json.out, Catch::Contains(R"("isolation":"in-process","schedule":"every 4h")"));
    CHECK_THAT(json.out, Catch::Contains(R"("signatures":{"policy":"off","trust_manifest":""})"));
    CHECK_THAT(json.out, Catch::Contains(R"("status":"partial")"));
    CHECK_THAT(json.out, Catch::Contains("zz-bad.json: \\\"schedule.every\\\": \\\"4x\\\" is not a duration"));
    // The descriptor's one line, in both forms.
    const std::string line = "Template source plugin: JSON Lines exports -> one CRM upsert per record";
    CHECK_THAT(json.out, Catch::Contains(R"("description":")" + line + "\""));
    CHECK_THAT(home.crmsync({"modules"}).out, Catch::Contains("example-jsonl        " + line));
}

TEST_CASE(
    "cli: with a trust manifest that requires signatures, modules shows who signed each plugin and run refuses an unsigned one") {
    Home home;
    write_file(home.dir / "manifests/trust.json",
               R"({"trust": "plugins", "policy": "require", "keys": [{"name": "crmsync test key", "file": ")" +
                   std::string(CRMSYNC_SOURCE_DIR) + R"(/packaging/signing/crmsync-test.pub"}]})");
    // One module runs isolated: modules says so, and reads its plugin from a runner.
    auto manifest = testing::read_file(home.dir / "manifests/tasks.json");
    manifest.insert(manifest.rfind('}'), R"(, "isolation": "process")");
    write_file(home.dir / "manifests/tasks.json", manifest);
    auto modules = home.crmsync({"modules"});
    CHECK(modules.status == 0);
    CHECK_THAT(modules.out, Catch::Contains("SIGNATURE") && Catch::Contains("ISOLATION") &&
                                Catch::Contains("trusted (crmsync test key)") && Catch::Contains("process") &&
                                Catch::Contains("plugin signatures: policy require"));
    auto run = home.crmsync({"run", "tasks"});
    CHECK(run.status == 1);  // partial: one record's own status value is bad
    CHECK_THAT(run.out, Catch::Contains("created 2"));

    fs::remove(home.plugins.path() / "example-jsonl/example-jsonl.so.minisig");
    auto refused = home.crmsync({"run", "tasks"});
    CHECK(refused.status == 2);
    CHECK_THAT(refused.out + refused.err,
               Catch::Contains("plugin example-jsonl 1.1.0 is unsigned") && Catch::Contains("requires a trusted signature"));
    CHECK_THAT(home.crmsync({"modules"}).out, Catch::Contains("REFUSED"));
}

TEST_CASE("cli: runs and log show the history of a run") {
    Home home;
    home.crmsync({"run", "tasks"});
    auto runs = home.crmsync({"runs", "--json"});
    CHECK_THAT(runs.out, Catch::Contains(R"("id":1,"module":"tasks","connection":"mock","trigger":"manual")"));
    auto log = home.crmsync({"log", "1"});
    CHECK(log.status == 0);
    CHECK_THAT(log.out, Catch::Contains("run started") && Catch::Contains("run partial"));
    CHECK(home.crmsync({"log", "99"}).status == 2);
}

TEST_CASE("cli: usage errors exit 2 with a clear line") {
    Home home;
    auto none = home.crmsync({"run"});
    CHECK(none.status == 2);
    CHECK_THAT(none.err, Catch::Contains("name one MODULE or pass --all"));
    auto unknown = home.crmsync({"run", "nope"});
    CHECK(unknown.status == 2);
    CHECK_THAT(unknown.err, Catch::Contains("no module \"nope\"") && Catch::Contains("known: tasks"));
    CHECK(home.crmsync({"frobnicate"}).status == 2);
}

TEST_CASE("cli: check finds a missing external-id field and a mapped field the CRM lacks") {
    Home home;
    write_file(home.dir / "manifests/crm.json",
               R"({"connection": "mock", "plugin": {"id": "mock-crm"}, "config": {"database": ")" + (home.dir / "var/crm.db") +
                   R"("}})");
    write_file(home.dir / "manifests/tasks.json",
               R"({"module": "tasks", "plugin": {"id": "example-jsonl"}, "crm": "mock",
                   "config": {"folder": "in", "object": "Task", "fields": {"Subject": "subject", "Mood__c": "mood"}}})");
    auto check = home.crmsync({"check", "tasks"});
    CHECK(check.status == 2);
    CHECK_THAT(check.out, Catch::Contains("Task has no field CrmSync_Key__c") && Catch::Contains("Task.Mood__c does not exist"));
}

TEST_CASE("cli: swapping a module's CRM connection writes everything to the new CRM, reset starts a module afresh") {
    Home home;
    // A second CRM, as QA's mock-crm stands beside the org it stands in for.
    std::string other = testing::mock_connection(home.dir / "var/other.db");
    other.replace(other.find("\"connection\": \"mock\""), 20, "\"connection\": \"org2\"");
    write_file(home.dir / "manifests/org2.json", other);
    auto tasks_in = [&](const std::string& db) {
        auto q = home.crmsync({"crm", "query", "SELECT COUNT() FROM Task", "--crm", db, "--json"});
        auto at = q.out.find("\"totalSize\":");
        if (at == std::string::npos) UNSCOPED_INFO("crm query on " << db << " exited " << q.status << ": " << q.err);
        return at == std::string::npos ? -1 : std::stoi(q.out.substr(at + 12));
    };
    auto swap_to = [&](const std::string& connection) {
        std::string manifest = testing::read_file(home.dir / "manifests/tasks.json");
        auto at = manifest.find("\"crm\": \"");
        manifest.replace(at, manifest.find('"', at + 8) - at + 1, "\"crm\": \"" + connection + "\"");
        write_file(home.dir / "manifests/tasks.json", manifest);
    };

    CHECK(home.crmsync({"run", "tasks"}).status == 1);  // 2 land, 1 has a bad Status
    CHECK(tasks_in("mock") == 2);
    swap_to("org2");
    auto swapped = home.crmsync({"run", "tasks"});
    CHECK_THAT(swapped.out, Catch::Contains("fetched 3, created 2, updated 0, unchanged 0"));
    CHECK(tasks_in("org2") == 2);
    auto links = home.crmsync({"links", "tasks"});
    CHECK_THAT(links.out, Catch::Contains("CONNECTION") && Catch::Contains("mock") && Catch::Contains("org2"));
    auto only = home.crmsync({"links", "tasks", "--connection", "org2", "--json"});
    CHECK_THAT(only.out, Catch::Contains("\"connection\":\"org2\"") && !Catch::Contains("\"connection\":\"mock\""));
    CHECK_THAT(home.crmsync({"runs", "tasks"}).out, Catch::Contains("org2"));

    swap_to("mock");  // and back: its state was kept, nothing new to write
    auto back = home.crmsync({"run", "tasks"});
    CHECK_THAT(back.out, Catch::Contains("fetched 0"));
    CHECK(tasks_in("mock") == 2);

    auto refused = home.crmsync({"reset", "tasks"});
    CHECK(refused.status == 2);
    CHECK_THAT(refused.err, Catch::Contains("--yes"));
    auto reset = home.crmsync({"reset", "tasks", "--yes"});
    CHECK(reset.status == 0);
    CHECK_THAT(reset.out, Catch::Contains("reset tasks on mock: 2 link(s)"));
    auto afresh = home.crmsync({"run", "tasks"});
    CHECK_THAT(afresh.out, Catch::Contains("fetched 3, created 0, updated 2"));  // upserts: nothing duplicated
    CHECK(tasks_in("mock") == 2);
    CHECK(tasks_in("org2") == 2);
}

TEST_CASE("cli: errors shows open errors by default, --all the history, dismiss gives up on a record") {
    Home home;
    CHECK(home.crmsync({"run", "tasks"}).status == 1);  // a-2 has a bad Status
    auto open = home.crmsync({"errors", "tasks"});
    CHECK(open.status == 0);
    CHECK_THAT(open.out, Catch::Contains("STATE") && Catch::Contains("a-2") && Catch::Contains("open"));

    auto nothing = home.crmsync({"errors", "dismiss"});
    CHECK(nothing.status == 2);
    CHECK_THAT(nothing.err, Catch::Contains("--all MODULE"));
    CHECK(home.crmsync({"errors", "dismiss", "no-such-record"}).status == 2);
    auto dismissed = home.crmsync({"errors", "dismiss", "a-2"});
    CHECK(dismissed.status == 0);
    CHECK_THAT(dismissed.out, Catch::Contains("dismissed 1 error(s)"));

    CHECK_THAT(home.crmsync({"errors", "tasks"}).out, Catch::Contains("no open errors"));
    auto history = home.crmsync({"errors", "tasks", "--all", "--format", "csv"});
    CHECK_THAT(history.out, Catch::Contains(",closed,dismissed,"));
    auto json = home.crmsync({"errors", "--all", "--format", "json"});
    CHECK_THAT(json.out, Catch::Contains(R"("state":"closed","closed_reason":"dismissed")"));

    // Dismissed: not tried again, even when it is due.
    write_file(home.dir / "manifests/tasks.json",
               testing::read_file(home.dir / "manifests/tasks.json").insert(1, R"("failed_records": {"backoff": "0s"}, )"));
    auto rerun = home.crmsync({"run", "tasks"});
    CHECK(rerun.status == 0);
    CHECK_THAT(rerun.out, !Catch::Contains("retried"));
}

TEST_CASE("cli: a failed record is tried again by the next run and the summary says so") {
    Home home;
    write_file(home.dir / "manifests/tasks.json",
               testing::read_file(home.dir / "manifests/tasks.json").insert(1, R"("failed_records": {"backoff": "0s"}, )"));
    CHECK(home.crmsync({"run", "tasks"}).status == 1);
    auto again = home.crmsync({"run", "tasks"});
    CHECK(again.status == 1);  // still bad: tried, failed again
    CHECK_THAT(again.out, Catch::Contains("fetched 0") && Catch::Contains("failed 1, retried 1 (0 recovered, 0 given up)"));
    CHECK_THAT(home.crmsync({"errors", "tasks", "--all"}).out, Catch::Contains("closed: tried again"));
}

TEST_CASE("cli: helpdesk-tickets events as an operator runs them — scheduled sends, calls in either order, typos named") {
    Home home;
    fs::copy(std::string(CRMSYNC_PLUGIN_DIR) + "/helpdesk-tickets", home.plugins.path() / "helpdesk-tickets",
             fs::copy_options::recursive);
    const std::string agent = R"("agent": {"email": "admin@crmsync.mock"}, "subject": "件名")";
    const std::string call =
        R"("started_at": "2026-11-20T06:00:00Z", "ended_at": "2026-11-20T06:12:00Z", "number": "0312345678")";
    write_file(
        home.dir / "events/1.jsonl",
        R"({"event_id": "r1", "channel": "mail", "action": "reserved", )" + agent +
            R"(, "mail": {"draft_saved_at": "2026-11-20T01:00:00Z", "reserved_at": "2026-11-20T01:30:00Z", "reserved_for": "2026-11-21T00:00:00Z"}}
{"event_id": "k1", "channel": "call", "action": "memo_recorded", )" +
            agent + R"(, "call": {"call_id": "c-9", "first": true, "call_ended": false, "memo_recorded": true, )" + call + R"(}}
{"event_id": "k2", "channel": "call", "action": "call_ended", )" +
            agent + R"(, "call": {"call_id": "c-9", "call_ended": true, "memo_recorded": true, "memo": "m", )" + call + R"(}}
{"event_id": "k3", "channel": "call", "action": "memo_recorded", )" +
            agent +
            R"(, "call": {"call_id": "c-9", "first": false, "call_ended": true, "memo_recorded": true, "memo": "edited", )" +
            call + R"(}}
{"event_id": "f1", "channel": "messenger", "action": "closed", )" +
            agent + R"(, "chat": {"sent": true, "opened_at": "2026-11-20T02:00:00Z", "closed_at": "2026-11-20T02:05:00Z"}}
{"event_id": "t1", "channel": "instagram_dm", "action": "closed", )" +
            agent + R"(, "chat": {"sent": true}}
)");
    write_file(home.dir / "manifests/helpdesk.json",
               R"({"module": "helpdesk", "plugin": {"id": "helpdesk-tickets", "version": "^1.1"}, "crm": "mock",
                   "config": {"folder": ")" +
                   home.dir / "events" + R"("}})");
    auto run = home.crmsync({"run", "helpdesk"});
    INFO(run.out << run.err);
    CHECK(run.status == 1);
    CHECK_THAT(run.out, Catch::Contains("fetched 6, created 3") && Catch::Contains("failed 1"));
    auto events =
        home.crmsync({"crm", "query", "SELECT Subject, EndDateTime, Description FROM Event ORDER BY Subject", "--json"});
    CHECK_THAT(events.out, Catch::Contains("【Messenger for Business】件名") &&
                               Catch::Contains("\"EndDateTime\":\"2026-11-20T01:30:00.000+0000\"") &&
                               Catch::Contains("\"Description\":\"m\"") && !Catch::Contains("edited"));
    auto errors = home.crmsync({"errors", "helpdesk"});
    CHECK_THAT(errors.out, Catch::Contains("instagram_dm"));
}

TEST_CASE("cli: check names each missing field with the type to create it as, and a field of the wrong type") {
    Home home;
    fs::copy(std::string(CRMSYNC_TEST_PLUGIN_DIR) + "/test-ops", home.plugins.path() / "test-ops", fs::copy_options::recursive);
    write_file(home.dir / "ops.jsonl", "");
    // A plugin that updates Leads it finds by Email (so Lead needs no crmsync key field) and
    // writes usage figures, as the product-analytics module does.
    write_file(home.dir / "manifests/usage.json",
               R"({"module": "usage", "plugin": {"id": "test-ops"}, "crm": "mock",
                   "config": {"file": ")" +
                   home.dir / "ops.jsonl" + R"(", "targets": [{"object": "Lead", "by_match": true,
                     "fields": ["Email", "First_Login__c", "Logins_30d__c", "Company"],
                     "types": {"Email": "text", "First_Login__c": "datetime", "Logins_30d__c": "number", "Company": "number"}}]}})");
    auto check = home.crmsync({"check", "usage"});
    INFO(check.out << check.err);
    CHECK(check.status == 2);
    CHECK_THAT(check.out, Catch::Contains("Lead.First_Login__c does not exist in the CRM") &&
                              Catch::Contains("create the field as a Date/Time field"));
    CHECK_THAT(check.out, Catch::Contains("Lead.Logins_30d__c does not exist") && Catch::Contains("as a Number field"));
    CHECK_THAT(check.out, Catch::Contains("Lead.Company is a string field; the module writes number values into it"));
    CHECK_THAT(check.out, !Catch::Contains("Lead.Email") && !Catch::Contains("Lead has no field CrmSync_Key__c"));
}

TEST_CASE("cli: exit codes - a missing credential variable is a configuration error (2), a dry run with failures is 0") {
    Home home;
    auto manifest = testing::read_file(home.dir / "manifests/tasks.json");
    write_file(home.dir / "manifests/tasks.json",
               manifest.substr(0, manifest.rfind('}')) + R"(, "credentials": {"token": {"env": "CRMSYNC_TEST_NEVER_SET"}}})");
    auto missing = home.crmsync({"run", "tasks"});
    CHECK(missing.status == 2);
    CHECK_THAT(missing.out, Catch::Contains("environment variable CRMSYNC_TEST_NEVER_SET is not set"));
    write_file(home.dir / "manifests/tasks.json", manifest);
    // The dry run sees the record that would fail (a-2's Status) but wrote nothing: not "partial", not exit 1.
    auto dry = home.crmsync({"run", "tasks", "--dry-run"});
    CHECK(dry.status == 0);
    CHECK_THAT(dry.out, Catch::Contains("tasks: succeeded") && Catch::Contains("dry run: 1 record(s) failed would fail"));
    auto runs = home.crmsync({"runs", "tasks", "--json"});
    CHECK_THAT(runs.out, Catch::Contains("\"dry-run\"") && !Catch::Contains("\"partial\""));
}

TEST_CASE("cli: an unknown module or a missing home is an error with the likely name, and creates nothing") {
    Home home;
    auto typo = home.crmsync({"runs", "taks"});
    CHECK(typo.status == 2);
    CHECK_THAT(typo.err, Catch::Contains("no module \"taks\"") && Catch::Contains("did you mean \"tasks\"?"));
    for (const char* command : {"links", "errors", "unmatched", "reset"}) {
        auto unknown = home.crmsync({command, "nobody"});
        CHECK(unknown.status == 2);
        CHECK_THAT(unknown.err, Catch::Contains("no module \"nobody\""));
    }
    CHECK_FALSE(fs::exists(home.dir / "var/state.db"));
    const std::string nowhere = home.dir / "no-such-home";
    auto missing = testing::crmsync_at(nowhere, {"runs"}, home.plugins.str());
    CHECK(missing.status == 2);
    CHECK_THAT(missing.err, Catch::Contains("home " + nowhere + " does not exist"));
    CHECK_FALSE(fs::exists(nowhere));
}

TEST_CASE("cli: --version names the host, its plugin ABI and the plugins it finds") {
    Home home;
    auto version = testing::run_command({testing::crmsync_bin(), "--version"}, {"CRMSYNC_PLUGIN_PATH=" + home.plugins.str()});
    CHECK(version.status == 0);
    CHECK_THAT(version.out, Catch::StartsWith("crmsync ") && Catch::Contains("(plugin ABI 1.") &&
                                Catch::Contains("example-jsonl 1.") && Catch::Contains("mock-crm 1."));
}

TEST_CASE("cli: CRMSYNC_PLUGIN_PATH adds folders before the shipped plugins, CRMSYNC_PLUGIN_SYSTEM_PATH replaces those") {
    Home home;
    fs::remove_all(home.plugins.path() / "mock-crm");  // the operator's folder holds example-jsonl only
    const std::string path = "CRMSYNC_PLUGIN_PATH=" + home.plugins.str();
    auto added = testing::run_command({testing::crmsync_bin(), "--version"}, {path});
    CHECK_THAT(added.out, Catch::Contains(home.plugins.str() + "/example-jsonl/") && Catch::Contains("salesforce 1.") &&
                              Catch::Contains("mock-crm 1."));
    auto only = testing::run_command({testing::crmsync_bin(), "--version"}, {path, "CRMSYNC_PLUGIN_SYSTEM_PATH="});
    CHECK_THAT(only.out, Catch::Contains("example-jsonl 1.") && !Catch::Contains("salesforce") && !Catch::Contains("mock-crm"));

    // The operator's copy is first on the path; damaged, it is refused and the run says which one it uses instead.
    std::ofstream(home.plugins.path() / "example-jsonl/example-jsonl.so", std::ios::app) << "tampered";
    auto run = testing::run_command({testing::crmsync_bin(), "run", "tasks", "--home", home.dir.str()},
                                    {path, "CRMSYNC_HOME=", "CRMSYNC_MANIFEST_PATH="});
    CHECK(run.status == 1);  // the planted record error, nothing worse
    CHECK_THAT(run.err, Catch::Contains("plugin \"example-jsonl\": using " + std::string(CRMSYNC_PLUGIN_DIR) +
                                        "/example-jsonl/example-jsonl.plugin.json because") &&
                            Catch::Contains("sha256"));
}

TEST_CASE("cli: counts on the command line have a readable range, and errors takes --json") {
    Home home;
    auto zero = home.crmsync({"run", "tasks", "--limit", "0"});
    CHECK(zero.status == 2);
    CHECK_THAT(zero.err, Catch::Contains("--limit: Value 0 not in range 1 to 1000000000"));
    CHECK(zero.err.size() < 200);
    home.crmsync({"run", "tasks"});
    auto errors = home.crmsync({"errors", "tasks", "--json"});
    CHECK(errors.status == 0);
    auto parsed = boost::json::parse(errors.out);
    REQUIRE(parsed.is_array());
    CHECK(parsed.as_array().size() == 1);
}

TEST_CASE("cli: modules checks all it can without the network, and exits 2 when a module would not run") {
    Home home;
    auto healthy = home.crmsync({"modules"});
    CHECK(healthy.status == 0);
    write_file(home.dir / "manifests/bad-config.json", R"({"module": "bad-config", "plugin": "example-jsonl", "crm": "mock",
        "config": {"folder": 42, "object": "Task"}})");
    write_file(home.dir / "manifests/no-crm.json", R"({"module": "no-crm", "plugin": "example-jsonl", "crm": "elsewhere",
        "config": {"folder": "/tmp", "object": "Task"}})");
    auto modules = home.crmsync({"modules"});
    CHECK(modules.status == 2);
    CHECK_THAT(modules.out, Catch::Contains("bad-config: ") &&
                                Catch::Contains("config does not match plugin example-jsonl's schema") &&
                                Catch::Contains("\"config.folder\""));
    CHECK_THAT(modules.out, Catch::Contains("no-crm: ") && Catch::Contains("no connection manifest named \"elsewhere\""));
    CHECK_THAT(modules.out, Catch::Contains("tasks") && !Catch::Contains("tasks: "));
}

TEST_CASE("cli: check reads a first page from the source and keeps nothing, so a missing export folder shows") {
    Home home;
    auto ready = home.crmsync({"check", "tasks"});
    CHECK(ready.status == 0);
    CHECK_THAT(ready.out, Catch::Contains("source: read; 1 record(s) on a first page of one (nothing kept)"));
    auto runs = home.crmsync({"runs", "tasks"});
    CHECK_THAT(runs.out, Catch::Contains("no runs yet"));  // nothing was committed
    home.module("lost", home.dir / "no-such-folder");
    auto lost = home.crmsync({"check", "lost"});
    CHECK(lost.status == 2);
    CHECK_THAT(lost.out, Catch::Contains("problem: the source could not be read: export folder") &&
                             Catch::Contains("no-such-folder not found"));
    // --all: every enabled module in turn, the worst exit code.
    auto all = home.crmsync({"check", "--all"});
    CHECK(all.status == 2);
    CHECK_THAT(all.out, Catch::Contains("ok: tasks is ready to run") && Catch::Contains("checking module lost"));
    auto run = home.crmsync({"run", "tasks"});
    CHECK_THAT(run.out, Catch::Contains("fetched 3"));  // check moved no cursor
}

TEST_CASE("cli: help on any command, and a mistyped command named with the one meant") {
    Home home;
    auto typo = home.crmsync({"rnu", "tasks"});
    CHECK(typo.status == 2);
    CHECK_THAT(typo.err, Catch::Contains("\"rnu\" is not a command (did you mean \"run\"?)"));
    auto top = testing::run_command({testing::crmsync_bin(), "help"});
    CHECK(top.status == 0);
    CHECK_THAT(top.out, Catch::Contains("Usage: crmsync") && Catch::Contains("Exit status:") &&
                            Catch::Contains("4  stopped by Ctrl-C or SIGTERM") && Catch::Contains("CRMSYNC_PLUGIN_PATH") &&
                            Catch::Contains("Examples:"));
    auto nested = testing::run_command({testing::crmsync_bin(), "help", "errors", "dismiss"});
    CHECK(nested.status == 0);
    CHECK_THAT(nested.out, Catch::Contains("Usage: crmsync errors dismiss") && Catch::Contains("Also: --home DIR"));
    CHECK(testing::run_command({testing::crmsync_bin(), "help", "nope"}).status == 2);
    // --help of any command says where --home is (it belongs to crmsync, before or after the command).
    CHECK_THAT(testing::run_command({testing::crmsync_bin(), "links", "--help"}).out, Catch::Contains("Also: --home DIR"));
}

TEST_CASE("cli: shell completion and the man page come from the command line's own definition") {
    TempDir dir;
    auto bash = testing::run_command({testing::crmsync_bin(), "completion", "bash"});
    REQUIRE(bash.status == 0);
    write_file(dir / "crmsync.bash", bash.out);
    // bash loads it and completes as a user typing would.
    auto complete = [&](const std::string& words, int cword) {
        return testing::run_command({"/bin/bash", "-c",
                                     "source '" + (dir / "crmsync.bash") + "'; COMP_WORDS=(" + words +
                                         "); COMP_CWORD=" + std::to_string(cword) + "; _crmsync; echo \"${COMPREPLY[*]}\""})
            .out;
    };
    CHECK(complete("crmsync run --d", 2) == "--dry-run\n");
    CHECK(complete("crmsync errors dis", 2) == "dismiss\n");
    CHECK(complete("crmsync --home /x errors dismiss --a", 5) == "--all\n");
    CHECK(complete("crmsync che", 1) == "check\n");
    auto zsh = testing::run_command({testing::crmsync_bin(), "completion", "zsh"});
    CHECK(zsh.status == 0);
    CHECK_THAT(zsh.out, Catch::StartsWith("#compdef crmsync\n") && Catch::Contains("\"crm query\") cmd_words="));
    CHECK(testing::run_command({testing::crmsync_bin(), "completion", "fish"}).status == 2);
    auto man = testing::run_command({testing::crmsync_bin(), "man"});
    CHECK(man.status == 0);
    CHECK_THAT(man.out, Catch::StartsWith(".TH CRMSYNC 1") && Catch::Contains(".B crmsync errors dismiss KEY") &&
                            Catch::Contains(".SH EXIT STATUS") && Catch::Contains(".SH ENVIRONMENT") &&
                            Catch::Contains("\\-\\-dry\\-run"));
}

TEST_CASE("cli: run, check and log take --json, and crm query names the connections to choose from") {
    Home home;
    auto run = home.crmsync({"run", "tasks", "--json"});
    CHECK(run.status == 1);
    auto runs = boost::json::parse(run.out).at("runs").as_array();
    REQUIRE(runs.size() == 1);
    CHECK(runs[0].at("module") == "tasks");
    CHECK(runs[0].at("status") == "partial");
    CHECK(runs[0].at("counts").at("failed") == 1);
    auto log = home.crmsync({"log", std::to_string(runs[0].at("run").as_int64()), "--json"});
    CHECK(log.status == 0);
    auto parsed = boost::json::parse(log.out).as_object();
    CHECK(parsed.at("module") == "tasks");
    CHECK(parsed.at("status") == "partial");
    CHECK_FALSE(parsed.at("log").as_array().empty());

    home.module("broken", home.dir / "no-such-folder");
    auto check = home.crmsync({"check", "--all", "--json"});
    CHECK(check.status == 2);
    auto checks = boost::json::parse(check.out).at("checks").as_array();
    REQUIRE(checks.size() == 2);
    CHECK(checks[0].at("module") == "broken");
    CHECK(checks[0].at("ok") == false);
    CHECK_THAT(boost::json::serialize(checks[0].at("problems")), Catch::Contains("the source could not be read"));
    CHECK(checks[1].at("module") == "tasks");
    CHECK(checks[1].at("ok") == true);
    CHECK_THAT(boost::json::serialize(checks[1].at("notes")), Catch::Contains("Task: 2 field(s) checked"));

    write_file(home.dir / "manifests/crm2.json", R"({"connection": "mock2", "plugin": "mock-crm", "config": {"database": ")" +
                                                     (home.dir / "var/crm2.db") + R"("}})");
    auto query = home.crmsync({"crm", "query", "SELECT Id FROM Task"});
    CHECK(query.status == 2);
    CHECK_THAT(query.err, Catch::Contains("choose a CRM connection with --crm NAME: mock, mock2"));
}
