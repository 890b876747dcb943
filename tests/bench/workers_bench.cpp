// crmsync_workers_bench: records/s with 1, 2 and 3 `crmsync serve` workers sharing a
// PostgreSQL state store, beside one worker on its SQLite file — the baseline, measured in
// the same sitting. Each sitting: a fresh emulator (with WAN latency), `--modules` modules of
// `--records` records each, written through the real salesforce plugin; the clock runs
// from the workers' start until the emulator holds every record. A figure, not a test.
//   crmsync_workers_bench [--modules 6] [--records 2000] [--latency-ms 100]
#include <SQLiteCpp/SQLiteCpp.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <thread>

#include "bench_support.h"
#include "test_postgres.h"
#include "test_support.h"

namespace {

struct Sitting {
    std::string name;
    int workers = 1;
    bool postgres = false;
};

// Busy and total CPU ticks of the whole machine so far (/proc/stat), to tell a sitting bound
// by its cores from one bound by waiting.
std::pair<long long, long long> machine_ticks() {
    std::ifstream stat("/proc/stat");
    std::string cpu;
    long long user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0;
    stat >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq;
    const long long busy = user + nice + system + irq + softirq;
    return {busy, busy + idle + iowait};
}

struct Figures {
    double seconds = -1;       // until the emulator held every record; negative: not within 10 minutes
    double emulator_cpu = 0;  // CPU seconds the emulator spent meanwhile
    double machine_busy = 0;  // the share of all the machine's cores in use meanwhile
};

Figures run_sitting(const Sitting& s, int modules, int records, int latency_ms) {
    testing::TempDir home;
    testing::write_file(home / "schema.json",
                        R"({"Task": {"fields": {"CrmSync_Key__c": {"type": "string", "length": 255, "external_id": true}}}})");
    bench::Emulator emulator({"--database", home / "sf.db", "--schema", home / "schema.json", "--daily-limit", "100000000",
                              "--latency-ms", std::to_string(latency_ms)});
    bench::salesforce_connection(home, "sf", emulator.url, "never");
    for (int m = 0; m < modules; ++m)
        testing::write_file(home / ("manifests/gen" + std::to_string(m) + ".json"),
                            R"({"module": "gen)" + std::to_string(m) +
                                R"(", "plugin": {"id": "test-source"}, "crm": "sf", "schedule": {"every": "1h"},
                                "config": {"count": )" +
                                std::to_string(records) + R"(, "key_prefix": "gen)" + std::to_string(m) + R"("}})");
    std::vector<std::string> env{std::string("CRMSYNC_PLUGIN_PATH=") + CRMSYNC_PLUGIN_DIR + ":" + CRMSYNC_TEST_PLUGIN_DIR,
                                 "CRMSYNC_HOME=" + home.str(), "CRMSYNC_LOG=warn"};
    if (s.postgres) {
        testing::write_file(home / "manifests/state.json", R"({"state": {"postgres": {"env": "BENCH_STATE_DB"}}})");
        env.push_back("BENCH_STATE_DB=" + testing::fresh_postgres_database());
    }
    const auto started = std::chrono::steady_clock::now();
    const auto ticks_before = machine_ticks();
    std::vector<pid_t> workers;
    for (int w = 0; w < s.workers; ++w) {
        std::string line;
        workers.push_back(bench::spawn({CRMSYNC_BIN, "serve", "--listen", "127.0.0.1:0"}, env, line));
    }
    const int64_t total = static_cast<int64_t>(modules) * records;
    Figures f;
    for (int waited = 0; waited < 6000; ++waited) {
        int64_t landed = 0;
        try {
            SQLite::Database db(home / "sf.db", SQLite::OPEN_READONLY, testing::kReadBusyTimeoutMs);
            landed = db.execAndGet("SELECT COUNT(*) FROM Task").getInt64();
        } catch (const std::exception&) {
        }
        if (landed >= total) {
            f.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
            f.emulator_cpu = emulator.cpu_seconds();
            const auto ticks = machine_ticks();
            f.machine_busy = static_cast<double>(ticks.first - ticks_before.first) /
                             static_cast<double>(std::max(1LL, ticks.second - ticks_before.second));
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    for (pid_t w : workers) kill(w, SIGTERM);
    for (pid_t w : workers) waitpid(w, nullptr, 0);
    return f;
}

}  // namespace

int main(int argc, char** argv) {
    int modules = 6, records = 2000, latency_ms = 100;
    for (int i = 1; i + 1 < argc; ++i) {
        if (std::strcmp(argv[i], "--modules") == 0) modules = std::atoi(argv[i + 1]);
        if (std::strcmp(argv[i], "--records") == 0) records = std::atoi(argv[i + 1]);
        if (std::strcmp(argv[i], "--latency-ms") == 0) latency_ms = std::atoi(argv[i + 1]);
    }
    const std::vector<Sitting> sittings{{"1 worker, SQLite (baseline)", 1, false},
                                        {"1 worker, PostgreSQL", 1, true},
                                        {"2 workers, PostgreSQL", 2, true},
                                        {"3 workers, PostgreSQL", 3, true}};
    std::printf("%d modules x %d records through the salesforce plugin, %d ms added to each request\n", modules, records,
                latency_ms);
    std::fflush(stdout);
    double baseline = 0;
    for (const auto& s : sittings) {
        const Figures f = run_sitting(s, modules, records, latency_ms);
        const double seconds = f.seconds;
        if (seconds <= 0) {
            std::printf("  %-30s did not finish within 10 minutes\n", s.name.c_str());
            std::fflush(stdout);
            continue;
        }
        const double rate = static_cast<double>(modules) * records / seconds;
        if (baseline == 0) baseline = rate;
        // Goals: the shared store costs a single worker little; each added worker adds at least
        // three quarters of one (the emulator answers under one lock, which caps what it takes).
        const double goal = s.postgres ? (s.workers == 1 ? 0.8 : 0.75 * s.workers) : 0;
        std::string verdict =
            goal > 0 ? "goal >= " + std::to_string(goal).substr(0, 4) + "x: " + (rate / baseline >= goal ? "met" : "MISSED") : "";
        std::printf("  %-30s %8.0f records/s  %5.2fx the baseline  (machine %3.0f%% busy, emulator %3.0f%% of a core)  %s\n",
                    s.name.c_str(), rate, rate / baseline, 100 * f.machine_busy, 100 * f.emulator_cpu / seconds,
                    verdict.c_str());
        std::fflush(stdout);
    }
    return 0;
}
