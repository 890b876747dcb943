// The run pipeline end to end in one process: real plugins through the real loader,
// writing into mock-crm, with the state store on disk.
#include <catch2/catch.hpp>

#include <SQLiteCpp/SQLiteCpp.h>

#include <atomic>
#include <set>
#include <thread>

#include "catalog.h"
#include "clock.h"
#include "engine/engine.h"
#include "pipeline.h"
#include "module_runner.h"
#include "test_support.h"

using namespace crmsync;
using testing::TempDir;
using testing::write_file;

namespace {

struct Harness {
    TempDir home;
    testing::ModuleRunner runner{home.str()};

    explicit Harness(int64_t daily_limit = 100000) {
        write_file(home / "manifests/crm.json", testing::mock_connection(home / "var/crm.db", daily_limit));
    }
    void module(const std::string& name, const std::string& plugin, const std::string& config, const std::string& extra = "") {
        write_file(home / ("manifests/" + name + ".json"), R"({"module": ")" + name + R"(", "plugin": {"id": ")" + plugin +
                                                               R"(", "version": "^1.0"}, "crm": "mock",
                      "retry": {"base_ms": 1, "cap_ms": 5}, "config": )" +
                                                               config + extra + "}");
    }
    RunReport run(const std::string& name, RunOptions options = {}) { return runner.run(name, options); }
    std::unique_ptr<mockcrm::Engine> crm() {
        mockcrm::EngineOptions o;
        o.database = home / "var/crm.db";
        o.schema =
            json::parse(R"({"Task": {"fields": {"CrmSync_Key__c": {"type": "string", "external_id": true}}}})").as_object();
        return std::make_unique<mockcrm::Engine>(o);
    }
    std::unique_ptr<StateStore> store() { return std::move(open_sqlite_store(home / "var/state.db").value()); }
    int64_t tasks() { return crm()->query("SELECT COUNT() FROM Task").total; }
    // The Subject of the one Task written under `key`, "" when there is none.
    std::string subject(const std::string& key) {
        auto rows = crm()->query("SELECT Subject FROM Task WHERE CrmSync_Key__c = '" + key + "'").rows;
        REQUIRE(rows.size() <= 1);
        return rows.empty() ? std::string() : std::string(rows.at(0).at("Subject").as_string());
    }
};

std::string jsonl_config(const std::string& folder) {
    return R"({"folder": ")" + folder + R"(", "object": "Task", "key_prefix": "t",
               "fields": {"Subject": "subject", "Status": "status", "ActivityDate": "due"}})";
}

}  // namespace

TEST_CASE("pipeline: records land once, a rerun fetches nothing new, an edit updates in place") {
    Harness h;
    write_file(h.home / "in/a.jsonl", R"({"id": "1", "subject": "One", "status": "Completed", "due": "2026-11-01"}
{"id": "2", "subject": "Two", "status": "Not Started", "due": "2026-11-02"}
)");
    h.module("tasks", "example-jsonl", jsonl_config(h.home / "in"));
    auto first = h.run("tasks");
    CHECK(first.status == RunStatus::succeeded);
    CHECK(first.counts.fetched == 2);
    CHECK(first.counts.created == 2);
    CHECK(h.tasks() == 2);

    auto again = h.run("tasks");
    CHECK(again.counts.fetched == 0);
    CHECK(again.counts.api_calls == 0);

    // The export gains an edited copy of record 1: it updates the same Task.
    write_file(h.home / "in/b.jsonl", R"J({"id": "1", "subject": "One (edited)", "status": "Completed", "due": "2026-11-01"})J");
    auto edit = h.run("tasks");
    CHECK(edit.counts.updated == 1);
    CHECK(edit.counts.created == 0);
    CHECK(h.tasks() == 2);
    CHECK(h.subject("t:1") == "One (edited)");
}

TEST_CASE("pipeline: a full rerun of unchanged records costs no API call") {
    Harness h;
    h.module("gen", "test-source", R"({"count": 450})");
    REQUIRE(h.run("gen").counts.created == 450);
    RunOptions full;
    full.full = true;
    auto rerun = h.run("gen", full);
    CHECK(rerun.counts.fetched == 450);
    CHECK(rerun.counts.unchanged == 450);
    CHECK(rerun.counts.api_calls == 0);
    CHECK(h.tasks() == 450);
}

TEST_CASE("pipeline: a record the CRM rejects is logged with code, message, fields and entity, the rest land") {
    Harness h;
    write_file(h.home / "in/a.jsonl", R"({"id": "ok-1", "subject": "Fine", "status": "Completed"}
{"id": "bad-1", "subject": "Bad status", "status": "Someday"}
not json at all
{"id": "ok-2", "subject": "Also fine"}
)");
    h.module("tasks", "example-jsonl", jsonl_config(h.home / "in"));
    auto report = h.run("tasks");
    CHECK(report.status == RunStatus::partial);
    CHECK(report.counts.created == 2);
    CHECK(report.counts.failed == 2);
    auto errors = h.store()->errors(std::string("tasks"), 0);
    REQUIRE(errors.size() == 2);
    CHECK(errors[0].entity_id == "a.jsonl:3");
    CHECK(errors[0].code == "MAPPING_FAILED");
    CHECK_THAT(errors[0].message, Catch::Contains("a.jsonl:3: not a JSON object"));
    CHECK(errors[1].entity_id == "bad-1");
    CHECK(errors[1].code == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST");
    CHECK(errors[1].fields == std::vector<std::string>{"Status"});
    CHECK_THAT(errors[1].payload, Catch::Contains("Someday"));
    // The record kept to be tried again is the line as the plugin emitted it, byte for byte:
    // map() had it as it came, and it is not written out again from parsed values.
    auto kept = h.store()->due_records({"tasks", "mock"}, INT64_MAX, "", 10);
    REQUIRE(kept);
    std::map<std::string, std::string> records;
    for (const auto& f : *kept) records[f.source_id] = f.record;
    CHECK(records["bad-1"] == R"({"id": "bad-1", "subject": "Bad status", "status": "Someday"})");
}

TEST_CASE("pipeline: a JSON Lines record keeps its id as written, and a line without a usable id fails alone") {
    Harness h;
    // A line that is an object with an id goes to the host as its own text (not serialized
    // again); the others are made into items that name file and line.
    write_file(h.home / "in/a.jsonl", R"({"id": "quo\"te\\1", "subject": "Quoted id"}
{"id": 24, "subject": "Numeric id"}
{"subject": "No id"}
{"id": "", "subject": "Empty id"}
  {"id": "spaced", "subject": "Spaces around"}   )"
                                      "\n");
    h.module("tasks", "example-jsonl", jsonl_config(h.home / "in"));
    auto report = h.run("tasks");
    CHECK(report.status == RunStatus::partial);
    CHECK(report.counts.created == 3);
    CHECK(report.counts.failed == 2);
    std::set<std::string> sources;
    for (const auto& link : h.store()->all_links("tasks", std::nullopt, 10)) sources.insert(link.source_id);
    CHECK(sources == std::set<std::string>{"quo\"te\\1", "#24", "spaced"});
    auto errors = h.store()->errors(std::string("tasks"), 0);
    REQUIRE(errors.size() == 2);
    CHECK(errors[0].entity_id == "a.jsonl:3");
    CHECK_THAT(errors[0].message, Catch::Contains("no \"id\""));
    CHECK(errors[1].entity_id == "a.jsonl:4");
}

TEST_CASE("pipeline: a dry run writes nothing and says what it would do") {
    Harness h;
    h.module("gen", "test-source", R"({"count": 5, "bad_every": 3})");
    RunOptions dry;
    dry.dry_run = true;
    auto report = h.run("gen", dry);
    REQUIRE(report.dry_run.size() == 5);
    CHECK(report.dry_run[0] == "create Task (key test:1, source rec-1)");
    CHECK_THAT(report.dry_run[4],
               Catch::StartsWith("fail Task (key test:3, source rec-3): INVALID_FIELD Task.No_Such_Field__c does not exist"));
    CHECK(h.tasks() == 0);
    CHECK(h.crm()->api_calls("write") == 0);
    CHECK_FALSE(h.store()->cursor({"gen", "mock"}).value().has_value());
    CHECK(h.store()->errors(std::nullopt, 0).empty());
}

TEST_CASE("pipeline: a transient fetch failure is retried with backoff, then the run goes on") {
    Harness h;
    h.module("flaky", "test-source", R"({"count": 3, "retry_first_fetches": 2})");
    auto report = h.run("flaky");
    CHECK(report.status == RunStatus::succeeded);
    CHECK(report.counts.retries == 2);
    CHECK(h.tasks() == 3);
    bool logged = false;
    for (const auto& line : h.store()->run_log(report.run_id))
        logged = logged || line.message.find("retrying") != std::string::npos;
    CHECK(logged);
}

TEST_CASE("pipeline: a source that keeps failing fails the run after the retry cap, saving nothing") {
    Harness h;
    h.module("down", "test-source", R"({"count": 3, "retry_first_fetches": 100})");
    auto report = h.run("down");
    CHECK(report.status == RunStatus::failed);
    CHECK(report.unreachable);
    CHECK_THAT(report.message, Catch::Contains("gave up after 5 attempts"));
    CHECK(h.tasks() == 0);
}

TEST_CASE("pipeline: the run stops cleanly under the API reserve, and a later run finishes the rest") {
    Harness h(40);  // a daily limit of 40 calls; the default reserve keeps the last 4
    h.module("gen", "test-source", R"({"count": 10000})");
    auto report = h.run("gen");
    CHECK(report.status == RunStatus::stopped);
    CHECK_THAT(report.message, Catch::Contains("daily API budget"));
    int64_t landed = h.tasks();
    CHECK(landed > 0);
    CHECK(landed < 10000);
    CHECK(h.store()->cursor({"gen", "mock"}).value().has_value());

    // A new day (here: a higher limit) and the rest lands, nothing twice.
    write_file(h.home / "manifests/crm.json", testing::mock_connection(h.home / "var/crm.db", 100000));
    h.runner.a_day_passes_for_the_api_budget();
    auto rest = h.run("gen");
    CHECK(rest.status == RunStatus::succeeded);
    CHECK(h.tasks() == 10000);
    CHECK(h.crm()->query("SELECT COUNT() FROM Task WHERE CrmSync_Key__c = 'test:9999'").total == 1);
}

TEST_CASE("pipeline: cancellation finishes the batch in hand, saves it, and stops") {
    Harness h;
    h.module("gen", "test-source", R"({"count": 1000})");
    RunOptions options;
    int64_t saved_then = 0;  // what was saved when the cancellation came
    options.progress = [&](const RunCounts& c) {
        if (c.fetched >= 400 && !h.runner.cancel.exchange(true)) saved_then = c.fetched;
    };
    auto report = h.run("gen", options);
    CHECK(report.status == RunStatus::stopped);
    // A batch is saved while the next one is written: that one, in hand, lands and is saved too.
    REQUIRE(saved_then == 400);
    CHECK(report.counts.fetched == 600);
    CHECK(h.tasks() == 600);
    CHECK(h.store()->cursor({"gen", "mock"}).value() == std::optional<std::string>("600"));
    h.runner.cancel.store(false);
    CHECK(h.run("gen").counts.created == 400);
    CHECK(h.tasks() == 1000);
}

TEST_CASE("pipeline: a module already running elsewhere is not run twice") {
    Harness h;
    h.module("gen", "test-source", R"({"count": 3})");
    REQUIRE(h.store()->acquire_lease("gen", "other-host:42", h.runner.clock.now_ms(), 60'000).value());
    auto report = h.run("gen");
    CHECK(report.status == RunStatus::busy);
    CHECK_THAT(report.message, Catch::Contains("other-host:42"));
    CHECK(h.tasks() == 0);
}

TEST_CASE("pipeline: a plugin emitting broken JSON or too many records fails cleanly") {
    Harness h;
    h.module("broken", "test-source", R"({"count": 3, "mode": "emit_invalid_json"})");
    auto report = h.run("broken");
    CHECK(report.counts.fetched == 0);
    bool logged = false;
    for (const auto& line : h.store()->run_log(report.run_id))
        logged = logged || line.message.find("not JSON") != std::string::npos;
    CHECK(logged);
    h.module("greedy", "test-source", R"({"count": 500, "mode": "emit_too_many"})");
    auto greedy = h.run("greedy");
    CHECK(h.tasks() <= 500);
    CHECK(greedy.status != RunStatus::succeeded);
}

TEST_CASE("pipeline: a large run is gathered into one bulk batch per object, and lands once") {
    Harness h;
    write_file(h.home / "manifests/crm.json", testing::mock_connection(h.home / "var/crm.db", 100000, "", "auto"));
    h.module("gen", "test-source", R"({"count": 5000})");
    auto report = h.run("gen");
    CHECK(report.status == RunStatus::succeeded);
    CHECK(report.counts.created == 5000);
    CHECK(h.crm()->api_calls("write") == 1);  // 5,000 upserts, one bulk load
    bool logged = false;
    for (const auto& line : h.store()->run_log(report.run_id))
        logged = logged || line.message.find("in bulk") != std::string::npos;
    CHECK(logged);
    CHECK(h.tasks() == 5000);
}

TEST_CASE("pipeline: under the bulk threshold, operations still go 200 a call") {
    Harness h;
    write_file(h.home / "manifests/crm.json", testing::mock_connection(h.home / "var/crm.db", 100000, "", "auto"));
    h.module("gen", "test-source", R"({"count": 1000})");
    REQUIRE(h.run("gen").counts.created == 1000);
    CHECK(h.crm()->api_calls("write") == 5);
}

TEST_CASE("pipeline: error-log entries are kept 365 days, then the next run removes them and says so in its log") {
    Harness h;
    ManualClock clock(0);
    int64_t start = 0;
    REQUIRE(parse_iso8601("2026-01-10T00:00:00Z", start));
    clock.set(start);
    h.runner.time = &clock;
    write_file(h.home / "in/a.jsonl", R"({"id": "bad-1", "subject": "Bad status", "status": "Someday"}
)");
    // Given up at once, so later runs do not try it again and the one entry just ages.
    h.module("tasks", "example-jsonl", jsonl_config(h.home / "in"), R"(, "failed_records": {"max_attempts": 1})");
    REQUIRE(h.run("tasks").counts.failed == 1);
    REQUIRE(h.store()->errors(std::string("tasks"), 0).size() == 1);

    const int64_t day = 24LL * 3600 * 1000;
    clock.advance(364 * day);
    h.run("tasks");
    CHECK(h.store()->errors(std::string("tasks"), 0).size() == 1);

    clock.advance(2 * day);
    auto later = h.run("tasks");
    CHECK(h.store()->errors(std::string("tasks"), 0).empty());
    bool said = false;
    for (const auto& line : h.store()->run_log(later.run_id))
        said = said || line.message.find("removed 1 error-log entries older than 365 days") != std::string::npos;
    CHECK(said);
}

TEST_CASE("pipeline: a run keeps its lease through a page slower than the lease's time to live") {
    Harness h;
    ManualClock clock(1'000'000);
    h.runner.time = &clock;
    h.module("gen", "test-source", R"({"count": 400, "page_delay_ms": 1500})");
    RunOptions options;
    options.lease_ttl_ms = 900;  // renewed every 300 ms of real time, against the run's clock
    std::atomic<bool> done{false};
    RunReport report;
    std::thread run([&] {
        report = h.run("gen", options);
        done = true;
    });
    auto store = h.store();
    auto held = [&]() -> std::optional<LeaseRow> {
        auto lease = store->lease("gen");
        return lease && *lease && (*lease)->holder == "test" ? **lease : std::optional<LeaseRow>();
    };
    while (!done && !held()) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    // Time jumps past the lease's expiry while the run is inside a page (a long bulk job, a
    // backoff): only a renewal keeps the lease the run's.
    clock.advance(60'000);
    bool renewed = false;
    size_t saved_when_renewed = 0;  // renewed inside the first page, not by its commit
    while (!done && !renewed) {
        auto lease = held();
        renewed = lease && lease->expires_ms > clock.now_ms();
        if (renewed) saved_when_renewed = store->all_links("gen", std::nullopt, 1000).size();
        else std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    auto intruder = store->acquire_lease("gen", "intruder", clock.now_ms(), 60'000);
    const bool intruded = intruder && *intruder;
    run.join();
    CHECK(renewed);
    CHECK(saved_when_renewed == 0);
    CHECK_FALSE(intruded);
    CHECK(report.status == RunStatus::succeeded);
    CHECK(report.counts.created == 400);
}

TEST_CASE("pipeline: a run whose lease was taken over saves nothing more, the next run completes it once") {
    Harness h;
    h.module("gen", "test-source", R"({"count": 600, "page_delay_ms": 150})");
    std::atomic<bool> done{false};
    RunReport report;
    std::thread run([&] {
        report = h.run("gen");
        done = true;
    });
    auto store = h.store();
    // As a second worker would once it judged the first dead: take the lease from it.
    bool stolen = false;
    while (!done && !stolen) {
        if (auto held = store->lease("gen"); held && *held && (*held)->holder == "test")
            stolen = store->take_over_lease("gen", "test", "thief", h.runner.clock.now_ms(), 60'000).value().has_value();
        else std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    run.join();
    REQUIRE(stolen);
    CHECK(report.status == RunStatus::stopped);
    CHECK_THAT(report.message, Catch::Contains("lease was taken over"));
    CHECK(store->all_links("gen", std::nullopt, 1000).size() < 600);
    CHECK(store->lease("gen").value()->holder == "thief");  // the loser does not release what is not its own

    REQUIRE(store->release_lease("gen", "thief"));
    auto next = h.run("gen");
    CHECK(next.status == RunStatus::succeeded);
    CHECK(h.tasks() == 600);  // written again where needed, never twice
    CHECK(store->all_links("gen", std::nullopt, 1000).size() == 600);
}

TEST_CASE("pipeline: a batch written while the one before could not be saved is not saved either, and lands once later") {
    Harness h;
    h.module("gen", "test-source", R"({"count": 1000})");
    auto store = h.store();
    RunOptions options;
    // Batch 1 is saved while batch 2 is written; then the lease goes to another holder. Batch
    // 2 cannot be saved when its turn comes (while batch 3 is written): batch 3 is not saved
    // either, and the run stops there.
    options.progress = [&](const RunCounts& c) {
        if (c.fetched == 200)
            REQUIRE(store->take_over_lease("gen", "test", "thief", h.runner.clock.now_ms(), 60'000).value().has_value());
    };
    auto report = h.run("gen", options);
    CHECK(report.status == RunStatus::stopped);
    CHECK_THAT(report.message, Catch::Contains("lease was taken over"));
    CHECK(report.counts.fetched == 200);  // what the run saved
    CHECK(store->cursor({"gen", "mock"}).value() == std::optional<std::string>("200"));
    CHECK(store->all_links("gen", std::nullopt, 1000).size() == 200);
    CHECK(h.tasks() == 600);  // batches 2 and 3 reached the CRM all the same

    REQUIRE(store->release_lease("gen", "thief"));
    auto next = h.run("gen");
    CHECK(next.status == RunStatus::succeeded);
    CHECK(next.counts.updated == 400);  // batches 2 and 3 again, by their keys: the same records
    CHECK(next.counts.created == 400);
    CHECK(h.tasks() == 1000);
    CHECK(store->all_links("gen", std::nullopt, 2000).size() == 1000);
}

TEST_CASE("pipeline: once a batch could not be saved, no batch after it is, and the next run writes them all once") {
    Harness h;
    h.module("gen", "test-source", R"({"count": 1000})");
    h.store();  // the state store, made
    auto state = [&] { return SQLite::Database(h.home / "var/state.db", SQLite::OPEN_READWRITE); };
    // The store refuses the link of record 250, in the second batch (as a full disk would).
    state().exec(
        "CREATE TRIGGER refuse BEFORE INSERT ON links WHEN NEW.key = 'test:250' "
        "BEGIN SELECT RAISE(ABORT, 'no room left (injected)'); END");
    auto report = h.run("gen");
    CHECK(report.status == RunStatus::failed);
    CHECK_THAT(report.message, Catch::Contains("no room left (injected)"));
    auto store = h.store();
    // The third batch was written while the second was being saved; the store would take
    // it, but it comes after one that is not saved: the cursor stays after the first.
    CHECK(store->cursor({"gen", "mock"}).value() == std::optional<std::string>("200"));
    CHECK(store->all_links("gen", std::nullopt, 2000).size() == 200);
    CHECK(h.tasks() == 600);

    state().exec("DROP TRIGGER refuse");
    auto next = h.run("gen");
    CHECK(next.status == RunStatus::succeeded);
    CHECK(next.counts.updated == 400);
    CHECK(next.counts.created == 400);
    CHECK(h.tasks() == 1000);
    CHECK(store->all_links("gen", std::nullopt, 2000).size() == 1000);
}

namespace {

// A home whose clock the test moves, with one module over a JSONL folder.
struct RetryHarness : Harness {
    ManualClock clock{0};
    explicit RetryHarness(const std::string& failed_records = "") {
        int64_t start = 0;
        REQUIRE(parse_iso8601("2026-11-20T00:00:00Z", start));
        clock.set(start);
        runner.time = &clock;
        module("tasks", "example-jsonl", jsonl_config(home / "in"),
               failed_records.empty() ? "" : R"(, "failed_records": )" + failed_records);
    }
    std::vector<ErrorRow> open_errors() { return store()->errors(std::string("tasks"), 0); }
    std::vector<ErrorRow> all_errors() { return store()->errors(std::string("tasks"), 0, true); }
};

constexpr int64_t kMinute = 60'000;

}  // namespace

TEST_CASE("pipeline: a record that failed for its own reasons is tried again after its backoff and lands once fixed") {
    RetryHarness h;
    write_file(h.home / "in/a.jsonl", R"({"id": "good-1", "subject": "Fine", "status": "Completed"}
{"id": "bad-1", "subject": "Not yet", "status": "Someday"}
)");
    auto first = h.run("tasks");
    CHECK(first.counts.created == 1);
    CHECK(first.counts.failed == 1);
    REQUIRE(h.open_errors().size() == 1);
    CHECK(h.open_errors()[0].state == "open");

    h.crm()->add_picklist_value("Task", "Status", "Someday");  // the admin fixes the cause in the CRM
    auto early = h.run("tasks");                               // before the backoff: not yet
    CHECK(early.counts.retried == 0);
    CHECK(h.tasks() == 1);

    h.clock.advance(5 * kMinute);
    auto again = h.run("tasks");
    CHECK(again.status == RunStatus::succeeded);
    CHECK(again.counts.fetched == 0);  // the cursor had passed it: it came from the failed list
    CHECK(again.counts.retried == 1);
    CHECK(again.counts.recovered == 1);
    CHECK(again.counts.created == 1);
    CHECK(h.tasks() == 2);
    CHECK(h.open_errors().empty());
    auto history = h.all_errors();
    REQUIRE(history.size() == 1);
    CHECK(history[0].state == "closed");
    CHECK(history[0].closed_reason == "landed");

    h.clock.advance(60 * kMinute);
    CHECK(h.run("tasks").counts.retried == 0);  // landed: not in the failed list any more
    CHECK(h.tasks() == 2);
}

TEST_CASE("pipeline: a failing record's backoff doubles, and after the module's max_attempts it gives up") {
    RetryHarness h(R"({"max_attempts": 3, "backoff": "1m"})");
    write_file(h.home / "in/a.jsonl", R"({"id": "bad-1", "subject": "Never", "status": "Someday"}
)");
    CHECK(h.run("tasks").counts.failed == 1);  // attempt 1; next after 1 minute
    h.clock.advance(kMinute);
    auto second = h.run("tasks");  // attempt 2; next after 2 minutes
    CHECK(second.counts.retried == 1);
    CHECK(second.counts.failed == 1);
    h.clock.advance(kMinute);
    CHECK(h.run("tasks").counts.retried == 0);
    h.clock.advance(kMinute);
    auto third = h.run("tasks");  // attempt 3: the last
    CHECK(third.counts.retried == 1);
    CHECK(third.counts.gave_up == 1);
    h.clock.advance(24 * 60 * kMinute);
    CHECK(h.run("tasks").counts.retried == 0);

    auto open = h.open_errors();
    REQUIRE(open.size() == 1);  // one open row per record, however often it was tried
    CHECK(open[0].state == "gave_up");
    auto history = h.all_errors();
    REQUIRE(history.size() == 3);
    CHECK(history[0].closed_reason == "tried again");
    CHECK(history[1].closed_reason == "tried again");
}

TEST_CASE("pipeline: a newer version of a failed record supersedes it and closes its error") {
    RetryHarness h;
    write_file(h.home / "in/a.jsonl", R"({"id": "bad-1", "subject": "Typo", "status": "Someday"}
)");
    CHECK(h.run("tasks").counts.failed == 1);
    write_file(h.home / "in/b.jsonl", R"({"id": "bad-1", "subject": "Fixed", "status": "Completed"}
)");
    auto fixed = h.run("tasks");
    CHECK(fixed.counts.fetched == 1);
    CHECK(fixed.counts.created == 1);
    CHECK(h.open_errors().empty());
    h.clock.advance(60 * kMinute);
    auto later = h.run("tasks");
    CHECK(later.counts.retried == 0);  // the old version is not tried again
    CHECK(h.crm()->query("SELECT Subject FROM Task").rows.at(0).at("Subject").as_string() == "Fixed");
}

TEST_CASE("pipeline: source ids that differ in case, or in number versus string, stay different CRM records") {
    Harness h;
    write_file(h.home / "in/a.jsonl", R"({"id": "CaseA", "subject": "upper", "status": "Completed"}
{"id": "casea", "subject": "lower", "status": "Completed"}
{"id": 24, "subject": "number", "status": "Completed"}
{"id": "24", "subject": "string", "status": "Completed"}
{"id": 2.5, "subject": "not an id", "status": "Completed"}
)");
    h.module("tasks", "example-jsonl", jsonl_config(h.home / "in"));
    auto first = h.run("tasks");
    CHECK(first.counts.created == 4);
    CHECK(first.counts.failed == 1);
    CHECK(h.tasks() == 4);
    auto errors = h.store()->errors(std::string("tasks"), 0);
    REQUIRE(errors.size() == 1);
    CHECK_THAT(errors[0].message, Catch::Contains("\"id\" must be a string or an integer, not 2.5"));
    std::set<std::string> subjects;
    for (const auto& row : h.crm()->query("SELECT Subject FROM Task").rows)
        subjects.insert(std::string(row.at("Subject").as_string()));
    CHECK(subjects == std::set<std::string>{"upper", "lower", "number", "string"});

    write_file(h.home / "in/b.jsonl", R"({"id": "casea", "subject": "lower, edited", "status": "Completed"}
)");
    auto edit = h.run("tasks");
    CHECK(edit.counts.updated == 1);
    CHECK(h.crm()->query("SELECT COUNT() FROM Task WHERE Subject = 'upper'").total == 1);
    CHECK(h.tasks() == 4);
}

TEST_CASE(
    "pipeline: a record on the next page too, read ahead while the page before it wrote, is unchanged or updated, never new") {
    Harness h;
    // One write call at a time: a page of 200, the next one read and mapped while it writes.
    auto connection = testing::mock_connection(h.home / "var/crm.db");
    connection.insert(1, R"("max_parallel_requests": 1, )");
    write_file(h.home / "manifests/crm.json", connection);
    std::string lines;
    auto line = [&](int id, const std::string& subject) {
        lines += R"({"id": ")" + std::to_string(id) + R"(", "subject": ")" + subject +
                 R"(", "status": "Completed", "due": "2026-11-01"})" + "\n";
    };
    for (int i = 1; i <= 200; ++i) line(i, "Task " + std::to_string(i));
    for (int i = 151; i <= 200; ++i) line(i, "Task " + std::to_string(i));  // again, as it was
    for (int i = 101; i <= 150; ++i) line(i, "Task " + std::to_string(i) + " (edited)");
    for (int i = 201; i <= 300; ++i) line(i, "Task " + std::to_string(i));
    write_file(h.home / "in/a.jsonl", lines);
    h.module("tasks", "example-jsonl", jsonl_config(h.home / "in"));
    auto report = h.run("tasks");
    CHECK(report.status == RunStatus::succeeded);
    CHECK(report.counts.fetched == 400);
    CHECK(report.counts.created == 300);
    CHECK(report.counts.unchanged == 50);
    CHECK(report.counts.updated == 50);
    CHECK(h.tasks() == 300);
    CHECK(h.subject("t:120") == "Task 120 (edited)");
    CHECK(h.subject("t:180") == "Task 180");
}

TEST_CASE("pipeline: an older version of a record never overwrites a newer one, in one batch or across runs") {
    Harness h;
    h.module("deals", "example-jsonl",
             R"({"folder": ")" + h.home / "in" + R"(", "object": "Task", "key_prefix": "d", "version_property": "updated_at",
                 "fields": {"Subject": "subject"}})");
    write_file(h.home / "in/1.jsonl", R"({"id": "deal-1", "subject": "Deal LOST", "updated_at": "2026-11-20T10:05:00Z"}
{"id": "deal-2", "subject": "v3", "updated_at": 3}
{"id": "deal-2", "subject": "v2", "updated_at": 2}
)");
    auto first = h.run("deals");
    CHECK(first.counts.created == 2);
    CHECK(first.counts.extra.at("older_versions_skipped").as_int64() == 1);  // v2 after v3 in one batch
    // A late or replayed older version of deal-1 arrives later.
    write_file(h.home / "in/2.jsonl", R"({"id": "deal-1", "subject": "Deal WON", "updated_at": "2026-11-20T10:00:00+00:00"}
)");
    auto late = h.run("deals");
    CHECK(late.counts.updated == 0);
    CHECK(late.counts.extra.at("older_versions_skipped").as_int64() == 1);
    CHECK(h.subject("d:deal-1") == "Deal LOST");
    CHECK(h.subject("d:deal-2") == "v3");
    // A newer one still lands.
    write_file(h.home / "in/3.jsonl", R"({"id": "deal-1", "subject": "Deal reopened", "updated_at": "2026-11-21T09:00:00+09:00"}
)");
    CHECK(h.run("deals").counts.updated == 1);
    CHECK(h.subject("d:deal-1") == "Deal reopened");
}

TEST_CASE("pipeline: a NUL inside a text value fails that record, naming the field, instead of writing it cut short") {
    Harness h;
    write_file(h.home / "in/a.jsonl", R"({"id": "n1", "subject": "before\u0000after", "status": "Completed"}
{"id": "n2", "subject": "clean", "status": "Completed", "note": "x\u0000y"}
{"id": "n3", "subject": "fine", "status": "Completed"}
)");
    h.module("tasks", "example-jsonl", jsonl_config(h.home / "in"),
             R"(, "mappings": [{"source": "note", "field": "Description", "type": "text"}])");
    auto run = h.run("tasks");
    CHECK(run.counts.created == 1);
    CHECK(run.counts.failed == 2);
    auto errors = h.store()->errors(std::string("tasks"), 0);
    REQUIRE(errors.size() == 2);
    std::map<std::string, std::string> by_record;
    for (const auto& e : errors) by_record[e.entity_id] = e.message;
    CHECK_THAT(by_record["n1"], Catch::Contains("field Subject holds a NUL character (U+0000) at byte 6"));
    CHECK_THAT(by_record["n2"], Catch::Contains("Description") && Catch::Contains("NUL character"));
    CHECK(h.crm()->query("SELECT Subject FROM Task").rows.at(0).at("Subject").as_string() == "fine");
}

TEST_CASE("pipeline: the error log keeps at most 64 KiB of a huge failed record, with its full size") {
    Harness h;
    const std::string huge(3 << 20, 'z');
    write_file(h.home / "in/a.jsonl",
               R"({"id": "big", "subject": ")" + huge + R"(", "status": "Completed", "due": "not a date"})" + "\n");
    h.module("tasks", "example-jsonl", jsonl_config(h.home / "in"));
    auto run = h.run("tasks");
    CHECK(run.counts.failed == 1);
    auto errors = h.store()->errors(std::string("tasks"), 0);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].payload.size() <= ErrorRow::kMaxPayloadBytes + 200);
    auto kept = json::parse(errors[0].payload).as_object();
    CHECK(kept.at("cut").as_bool());
    CHECK(kept.at("bytes").to_number<int64_t>() > int64_t{3 << 20});
    CHECK(errors[0].message.size() <= ErrorRow::kMaxMessageBytes + 64);
}

TEST_CASE("pipeline: a JSON Lines record longer than 16 MiB fails with its size, unread, and the lines around it land") {
    Harness h;
    std::string huge = R"({"id": "huge", "subject": ")" + std::string((16 << 20) + 10, 'h') + R"(", "status": "Completed"})";
    write_file(h.home / "in/a.jsonl", R"({"id": "before", "subject": "b", "status": "Completed"})"
                                      "\n" +
                                          huge + "\n" + R"({"id": "after", "subject": "a", "status": "Completed"})" + "\n");
    h.module("tasks", "example-jsonl", jsonl_config(h.home / "in"));
    auto run = h.run("tasks");
    CHECK(run.counts.created == 2);
    CHECK(run.counts.failed == 1);
    auto errors = h.store()->errors(std::string("tasks"), 0);
    REQUIRE(errors.size() == 1);
    CHECK_THAT(errors[0].message, Catch::Contains("a.jsonl:2: a line of " + std::to_string(huge.size()) + " bytes") &&
                                      Catch::Contains("more than the 16 MiB a record may have"));
}

namespace {

// Module "tasks" with one record, never run, and what a scheduled run of its first slot
// (reckoned from no start at all) is given.
RunOptions first_slot_of_tasks(Harness& h) {
    write_file(h.home / "in/a.jsonl", R"({"id": "1", "subject": "One", "status": "Completed", "due": "2026-11-01"})");
    h.module("tasks", "example-jsonl", jsonl_config(h.home / "in"));
    RunOptions slot;
    slot.trigger = "schedule";
    slot.claim_after_start = -1;
    return slot;
}

}  // namespace

TEST_CASE("pipeline: a scheduled slot claimed by one worker is not run again by another that reckoned it too") {
    Harness h;
    // Both workers saw a module that never ran, so both reckon its first slot due now.
    RunOptions slot = first_slot_of_tasks(h);
    auto first = h.run("tasks", slot);
    CHECK(first.status == RunStatus::succeeded);
    CHECK(first.counts.created == 1);
    auto second = h.run("tasks", slot);
    CHECK(second.status == RunStatus::busy);
    CHECK_THAT(second.message, Catch::Contains("already ran for this slot"));
    CHECK(h.store()->runs("tasks", 10).size() == 1);  // no run row for the slot it let be
    CHECK_FALSE(h.store()->lease("tasks").value().has_value());
    // Reckoned from the start the first one made, the next slot runs.
    slot.claim_after_start = h.store()->last_scheduled_start("tasks");
    CHECK(h.run("tasks", slot).status == RunStatus::succeeded);
}

TEST_CASE("pipeline: a run taken up as abandoned is not run again when its worker finished it meanwhile") {
    Harness h;
    RunOptions slot = first_slot_of_tasks(h);
    REQUIRE(h.run("tasks", slot).status == RunStatus::succeeded);
    // Another worker read the module while that run was going ("running", its lease free by
    // the time it looked again, because the run had finished and let it go).
    RunOptions take_up = slot;
    take_up.claim_after_start = h.store()->last_scheduled_start("tasks");
    take_up.take_up = true;
    auto late = h.run("tasks", take_up);
    CHECK(late.status == RunStatus::busy);
    CHECK_THAT(late.message, Catch::Contains("last run is succeeded") && Catch::Contains("nothing to take up"));
    CHECK(h.store()->runs("tasks", 10).size() == 1);  // the slot ran once
    CHECK_FALSE(h.store()->lease("tasks").value().has_value());

    // A run its worker truly left (still "running", the lease free) is taken up.
    write_file(h.home / "in/b.jsonl", R"({"id": "2", "subject": "Two", "status": "Completed", "due": "2026-11-02"})");
    const int64_t left_at = *take_up.claim_after_start + 1000;
    const int64_t left = h.store()->start_run({"tasks", "mock"}, "schedule", left_at).value();
    take_up.claim_after_start = left_at;
    auto taken = h.run("tasks", take_up);
    CHECK(taken.status == RunStatus::succeeded);
    CHECK(taken.counts.created == 1);
    CHECK(h.store()->run(left)->status == "interrupted");
}

TEST_CASE("pipeline: a newer reading of the org's daily budget by another worker stops a run at the reserve") {
    Harness h(100000);
    h.module("gen", "test-source", R"({"count": 5000})", R"(, "api_reserve_percent": 10)");
    // Time moves by hand, so that the other worker's reading is newer than every one this
    // run's own calls bring (in an org the shared budget would show in those too).
    ManualClock clock(SystemClock().now_ms());
    h.runner.time = &clock;
    // While this run writes, another worker's run through the same connection sees the org's
    // budget at 95,000 of 100,000 calls, and keeps that reading in the shared store.
    auto other = h.store();
    RunOptions options;
    options.progress = [&](const RunCounts& c) {
        if (c.fetched >= 400 && c.fetched < 600) REQUIRE(other->note_api_usage({"mock", 95'000, 100'000, clock.now_ms() + 1}));
    };
    auto report = h.run("gen", options);
    CHECK(report.status == RunStatus::stopped);
    CHECK_THAT(report.message, Catch::Contains("daily API budget is down to 5000 of 100000 calls") &&
                                   Catch::Contains("as a run through connection mock saw it at"));
    const int64_t landed = h.tasks();
    CHECK(landed >= 400);
    CHECK(landed < 5000);
    // Until a newer reading says otherwise, every run through the connection stops there, before writing.
    auto blocked = h.run("gen");
    CHECK(blocked.status == RunStatus::stopped);
    CHECK(blocked.counts.fetched == 0);
    CHECK(h.tasks() == landed);
    // A new day: a worker's call sees the budget afresh, and the next run goes on to the end.
    clock.advance(10);
    REQUIRE(other->note_api_usage({"mock", 1'000, 100'000, clock.now_ms()}));
    auto rest = h.run("gen");
    CHECK(rest.status == RunStatus::succeeded);
    CHECK(h.tasks() == 5000);
}
