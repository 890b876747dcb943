// Exactly once under SIGKILL: kill `crmsync run` at random moments, run again, and count.
#include <signal.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <random>
#include <thread>

#include <SQLiteCpp/SQLiteCpp.h>

#include "engine/engine.h"
#include "test_support.h"

using testing::TempDir;
using testing::write_file;
namespace fs = std::filesystem;

namespace {

// Waits until the run of `pid` has committed a batch (a cursor is saved): it is under way,
// its signal handlers are set. False when the process ended first or 60 s went by.
bool wait_for_first_commit(const std::string& state_db, pid_t pid) {
    for (int waited = 0; waited < 1200; ++waited) {
        try {
            SQLite::Database state(state_db, SQLite::OPEN_READONLY, testing::kReadBusyTimeoutMs);
            if (state.execAndGet("SELECT COUNT(*) FROM cursors").getInt64() > 0) return true;
        } catch (const std::exception&) {
            // not created yet
        }
        if (waitpid(pid, nullptr, WNOHANG) == pid) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
}

}  // namespace

TEST_CASE("a run killed with SIGKILL at random moments, then rerun, leaves every record exactly once") {
    const bool small = std::getenv("CRMSYNC_TEST_SCALE") && std::string(std::getenv("CRMSYNC_TEST_SCALE")) == "small";
    const int64_t total = small ? 2000 : 10000;
    TempDir home;
    write_file(home / "manifests/crm.json", testing::mock_connection(home / "var/crm.db"));
    // A short pause per page keeps the run long enough to be killed part-way.
    write_file(home / "manifests/gen.json",
               R"({"module": "gen", "plugin": {"id": "test-source"}, "crm": "mock",
                   "config": {"count": )" +
                   std::to_string(total) + R"(, "page_delay_ms": 15}})");
    std::string plugin_path = std::string("CRMSYNC_PLUGIN_PATH=") + CRMSYNC_PLUGIN_DIR + ":" + CRMSYNC_TEST_PLUGIN_DIR;
    std::string home_env = "CRMSYNC_HOME=" + home.str();

    std::mt19937 random(std::random_device{}());
    int killed = 0;
    for (int attempt = 0; attempt < 4; ++attempt) {
        pid_t pid = fork();
        if (pid == 0) {
            putenv(const_cast<char*>(plugin_path.c_str()));
            putenv(const_cast<char*>(home_env.c_str()));
            FILE* o = freopen("/dev/null", "w", stdout);
            (void)o;
            execl(CRMSYNC_BIN, CRMSYNC_BIN, "run", "gen", static_cast<char*>(nullptr));
            _exit(127);
        }
        // Wait until the run is under way (slow under sanitizers), then kill it at a random moment.
        int status = 0;
        bool exited = false;
        for (int waited = 0; waited < 400; ++waited) {
            bool running = false;
            try {
                SQLite::Database state(home / "var/state.db", SQLite::OPEN_READONLY, testing::kReadBusyTimeoutMs);
                running = state.execAndGet("SELECT COUNT(*) FROM runs WHERE status = 'running'").getInt64() > 0;
            } catch (const std::exception&) {}
            if (running) break;
            if (waitpid(pid, &status, WNOHANG) == pid) {
                exited = true;
                break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        if (!exited) {
            std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 600)(random)));
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
        }
        if (WIFSIGNALED(status)) ++killed;
        else REQUIRE(WEXITSTATUS(status) == 0);
    }
    CHECK(killed > 0);  // at least one kill landed mid-run

    auto final_run = testing::run_command({CRMSYNC_BIN, "run", "gen"}, {plugin_path, home_env});
    REQUIRE(final_run.status == 0);
    CHECK_THAT(final_run.out, Catch::Contains("gen: succeeded"));

    mockcrm::EngineOptions o;
    o.database = home / "var/crm.db";
    o.schema =
        boost::json::parse(R"({"Task": {"fields": {"CrmSync_Key__c": {"type": "string", "external_id": true}}}})").as_object();
    mockcrm::Engine crm(o);
    CHECK(crm.query("SELECT COUNT() FROM Task").total == total);
    auto distinct = crm.database().execAndGet("SELECT COUNT(DISTINCT CrmSync_Key__c) FROM Task").getInt64();
    CHECK(distinct == total);
    // The interrupted runs are visible as such.
    auto runs = testing::run_command({CRMSYNC_BIN, "runs", "--json"}, {plugin_path, home_env});
    CHECK_THAT(runs.out, Catch::Contains("\"status\":\"interrupted\""));
}

TEST_CASE("SIGTERM finishes the batch in hand, saves it, exits 4, and the next run goes on from there") {
    TempDir home;
    write_file(home / "manifests/crm.json", testing::mock_connection(home / "var/crm.db"));
    write_file(home / "manifests/gen.json",
               R"({"module": "gen", "plugin": {"id": "test-source"}, "crm": "mock",
                   "config": {"count": 5000, "page_delay_ms": 40}})");
    std::string plugin_path = std::string("CRMSYNC_PLUGIN_PATH=") + CRMSYNC_PLUGIN_DIR + ":" + CRMSYNC_TEST_PLUGIN_DIR;
    std::string home_env = "CRMSYNC_HOME=" + home.str();
    std::string out_path = home / "out.txt";
    pid_t pid = fork();
    if (pid == 0) {
        putenv(const_cast<char*>(plugin_path.c_str()));
        putenv(const_cast<char*>(home_env.c_str()));
        FILE* o = freopen(out_path.c_str(), "w", stdout);
        (void)o;
        execl(CRMSYNC_BIN, CRMSYNC_BIN, "run", "gen", static_cast<char*>(nullptr));
        _exit(127);
    }
    REQUIRE(wait_for_first_commit(home / "var/state.db", pid));
    kill(pid, SIGTERM);
    int status = 0;
    waitpid(pid, &status, 0);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 4);  // stopped, not finished: its own exit code (README)
    auto out = testing::read_file(out_path);
    CHECK_THAT(out, Catch::Contains("gen: stopped") && Catch::Contains("interrupted; everything before this point is saved"));

    auto rest = testing::run_command({CRMSYNC_BIN, "run", "gen"}, {plugin_path, home_env});
    CHECK(rest.status == 0);
    mockcrm::EngineOptions o;
    o.database = home / "var/crm.db";
    o.schema =
        boost::json::parse(R"({"Task": {"fields": {"CrmSync_Key__c": {"type": "string", "external_id": true}}}})").as_object();
    CHECK(mockcrm::Engine(o).query("SELECT COUNT() FROM Task").total == 5000);
}
