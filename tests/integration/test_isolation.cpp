// Plugins that run isolated ("isolation": "process"): the same results as in process, and a
// plugin that crashes, aborts, hangs or eats memory in any entry point fails its run with a
// message saying so, with the run finished, the lease free and nothing lost or doubled —
// while this process, the host, goes on.
#include <catch2/catch.hpp>

#include "catalog.h"
#include "engine/engine.h"
#include "module_runner.h"
#include "pipeline.h"
#include "test_support.h"

using namespace crmsync;
using testing::TempDir;
using testing::write_file;

namespace {

const std::string kIsolated = R"(, "isolation": {"mode": "process", "timeout_seconds": 2, "memory_mb": 256})";

struct Harness {
    TempDir home;
    testing::ModuleRunner runner{home.str()};

    explicit Harness(bool isolated_crm = false) {
        std::string connection = testing::mock_connection(home / "var/crm.db");
        if (isolated_crm) connection.insert(connection.rfind('}'), R"(, "isolation": "process")");
        write_file(home / "manifests/crm.json", connection);
    }
    void module(const std::string& plugin, const std::string& config, const std::string& isolation = kIsolated) {
        write_file(home / "manifests/gen.json", R"({"module": "gen", "plugin": {"id": ")" + plugin +
                                                    R"(", "version": "^1.0"}, "crm": "mock",
                      "retry": {"base_ms": 1, "cap_ms": 5}, "config": )" +
                                                    config + isolation + "}");
    }
    int64_t tasks() {
        mockcrm::EngineOptions o;
        o.database = home / "var/crm.db";
        return mockcrm::Engine(o).query("SELECT COUNT() FROM Task").total;
    }
    std::unique_ptr<StateStore> store() { return std::move(open_sqlite_store(home / "var/state.db").value()); }
};

// The message a run that lost its plugin ends with.
std::string died(const std::string& how, const std::string& entry) {
    return "plugin test-source " + how + " in " + entry + "; the run stopped; nothing after the last commit was written";
}

#if defined(__SANITIZE_ADDRESS__)
const std::string kSegv = "crashed (SIGABRT)";  // ASan turns the fault into its report and an abort
#else
const std::string kSegv = "crashed (SIGSEGV)";
#endif

}  // namespace

TEST_CASE("isolation: a module and its CRM connection both isolated sync exactly what they do in process") {
    Harness h(true);
    h.module("test-source", R"({"count": 450})");
    auto first = h.runner.run("gen");
    INFO(first.message);
    CHECK(first.status == RunStatus::succeeded);
    CHECK(first.counts.created == 450);
    CHECK(h.tasks() == 450);
    auto again = h.runner.run("gen");
    CHECK(again.status == RunStatus::succeeded);
    CHECK(again.counts.fetched == 0);
    CHECK(h.tasks() == 450);
}

TEST_CASE(
    "isolation: a plugin that crashes in map fails the run, keeps what was committed, and the next run lands the rest once") {
    Harness h;
    // Records 0..199 are one committed batch; the 251st map call crashes the runner.
    h.module("test-source", R"({"count": 450, "misbehave": {"in": "map", "how": "crash", "after": 250}})");
    auto crashed = h.runner.run("gen");
    CHECK(crashed.status == RunStatus::failed);
    CHECK_THAT(crashed.message, Catch::Contains(died(kSegv, "map")));
    CHECK(h.tasks() == 200);
    auto last = h.store()->last_run("gen");
    REQUIRE(last);
    CHECK(last->status == "failed");
    CHECK(h.store()->errors(std::string("gen"), 0, true).empty());  // the crash is nobody's record error

    // The plugin fixed: the next run takes the lease the crashed one gave back and lands the
    // other 250, none twice.
    h.module("test-source", R"({"count": 450})");
    auto fixed = h.runner.run("gen");
    INFO(fixed.message);
    CHECK(fixed.status == RunStatus::succeeded);
    CHECK(fixed.counts.created == 250);
    CHECK(h.tasks() == 450);
}

TEST_CASE("isolation: a crash in create, authenticate or fetch is reported with its entry point") {
    std::string entry = GENERATE(as<std::string>{}, "create", "authenticate", "fetch");
    Harness h;
    h.module("test-source", R"({"count": 5, "misbehave": {"in": ")" + entry + R"(", "how": "crash"}})");
    if (entry == "create") {
        Catalog catalog(h.runner.environment(), h.runner.quiet, h.runner.clock);
        auto instances = catalog.instantiate_module("gen");
        REQUIRE_FALSE(instances);
        CHECK_THAT(instances.status().message(),
                   Catch::Contains("could not be created: plugin test-source " + kSegv + " in create"));
        return;
    }
    auto report = h.runner.run("gen");
    CHECK(report.status == RunStatus::failed);
    CHECK_THAT(report.message, Catch::Contains("plugin test-source " + kSegv + " in " + entry));
    CHECK(h.tasks() == 0);
    CHECK(h.store()->last_run("gen")->status == "failed");
}

TEST_CASE("isolation: a crash in write (a module's write-back) fails the run after its batch is saved, not its records") {
    Harness h;
    write_file(h.home / "in.jsonl", R"({"id": "a", "ops": [{"object": "Task", "action": "upsert", "key": "t:a", )"
                                    R"("fields": {"Subject": "A"}, "writeback": true}]})"
                                    "\n");
    h.module("test-ops", R"({"file": ")" + (h.home / "in.jsonl") + R"(", "writeback_file": ")" + (h.home / "wb.jsonl") +
                             R"(", "misbehave": {"in": "write", "how": "abort"}})");
    auto report = h.runner.run("gen");
    CHECK(report.status == RunStatus::failed);
    CHECK_THAT(report.message, Catch::Contains("plugin test-ops crashed (SIGABRT) in write"));
    CHECK(h.store()->errors(std::string("gen"), 0, true).empty());
    // The Task reached the CRM before the write-back, and its batch was saved: not written again.
    CHECK(h.tasks() == 1);
    h.module("test-ops", R"({"file": ")" + (h.home / "in.jsonl") + R"("})");
    auto again = h.runner.run("gen");
    CHECK(again.status == RunStatus::succeeded);
    CHECK(again.counts.fetched == 0);
    CHECK(h.tasks() == 1);
}

TEST_CASE("isolation: an abort, a hang past the deadline and a memory blow-up in map are each survived and named") {
    Harness h;
    SECTION("abort") {
        h.module("test-source", R"({"count": 5, "misbehave": {"in": "map", "how": "abort"}})");
        auto report = h.runner.run("gen");
        CHECK(report.status == RunStatus::failed);
        CHECK_THAT(report.message, Catch::Contains(died("crashed (SIGABRT)", "map")));
    }
    SECTION("hang") {
        h.module("test-source", R"({"count": 5, "misbehave": {"in": "map", "how": "hang"}})");
        auto report = h.runner.run("gen");
        CHECK(report.status == RunStatus::failed);
        CHECK_THAT(report.message, Catch::Contains(died("did not answer for 2 s (hung?) and was stopped", "map")));
    }
    SECTION("memory") {
        h.module("test-source", R"({"count": 5, "misbehave": {"in": "map", "how": "hog"}})");
        auto report = h.runner.run("gen");
        CHECK(report.status == RunStatus::failed);
#if defined(__SANITIZE_ADDRESS__)
        // ASan builds bound the runner by its RSS (hard_rss_limit_mb): ASan reports and aborts.
        CHECK_THAT(report.message, Catch::Contains(died("crashed (SIGABRT)", "map")));
#else
        CHECK_THAT(report.message, Catch::Contains(died("ran out of memory (its limit is 256 MiB)", "map")));
#endif
    }
    CHECK(h.tasks() == 0);
    // Whatever killed the plugin, the lease is free and the module runs again at once.
    h.module("test-source", R"({"count": 5})");
    CHECK(h.runner.run("gen").counts.created == 5);
}

TEST_CASE("isolation: map calls sent ahead keep each record's own outcome, a refused item's included") {
    Harness h(true);
    std::string lines;
    for (int i = 1; i <= 300; ++i) {
        std::string id = std::to_string(i);
        // Record 150 emits an item that is no operation (not even an object): it fails alone.
        std::string op = i == 150 ? R"("not an operation")"
                                  : R"({"object": "Task", "action": "upsert", "key": "t:)" + id +
                                        R"(", "fields": {"Subject": "S)" + id + R"("}})";
        lines += R"({"id": ")" + id + R"(", "ops": [)" + op + "]}\n";
    }
    write_file(h.home / "in.jsonl", lines);
    h.module("test-ops", R"({"file": ")" + (h.home / "in.jsonl") + R"("})");
    auto report = h.runner.run("gen");
    INFO(report.message);
    CHECK(report.counts.created == 299);
    CHECK(h.tasks() == 299);
    mockcrm::EngineOptions o;
    o.database = h.home / "var/crm.db";
    CHECK(mockcrm::Engine(o).query("SELECT COUNT() FROM Task WHERE Subject = 'S151'").total == 1);
    CHECK(mockcrm::Engine(o).query("SELECT COUNT() FROM Task WHERE Subject = 'S150'").total == 0);
}

TEST_CASE("isolation: the sandbox refuses a plugin its own network socket and programs, and can be turned off") {
    std::string how = GENERATE(as<std::string>{}, "network", "exec");
    Harness h;
    const std::string config = R"({"count": 1, "misbehave": {"in": "map", "how": ")" + how + R"("}})";
    h.module("test-source", config, R"(, "isolation": "process")");
    auto sandboxed = h.runner.run("gen");
    CHECK(sandboxed.status == RunStatus::partial);  // the plugin's own refusal: that record's error
    auto errors = h.store()->errors(std::string("gen"), 0);
    REQUIRE(errors.size() == 1);
    CHECK_THAT(errors[0].message, Catch::Contains(how == "network" ? "socket(AF_INET): Permission denied"
                                                                   : "posix_spawn(/bin/true): Permission denied"));
    CHECK(h.tasks() == 0);

    h.module("test-source", config, R"(, "isolation": {"mode": "process", "sandbox": false})");
    RunOptions again;
    again.full = true;
    auto open = h.runner.run("gen", again);
    INFO(open.message);
    CHECK(h.tasks() == 1);
}
