// crmsync_webhook_bench: webhook-to-CRM latency. Starts the Salesforce emulator and
// `crmsync serve` (the real salesforce plugin between them), posts signed events at a
// steady rate, and reads from the emulator's store when each landed. Prints p50/p99
// beside the goal (p99 < 1 s at 200 events/s). A figure, not a test.
//   crmsync_webhook_bench [--rate 50] [--seconds 20]
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <SQLiteCpp/SQLiteCpp.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>

#include "clock.h"
#include "digest.h"
#include "bench_support.h"
#include "test_support.h"

namespace {

int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

int main(int argc, char** argv) {
    int rate = 50, seconds = 20;
    for (int i = 1; i + 1 < argc; ++i) {
        if (std::strcmp(argv[i], "--rate") == 0) rate = std::atoi(argv[i + 1]);
        if (std::strcmp(argv[i], "--seconds") == 0) seconds = std::atoi(argv[i + 1]);
    }
    testing::TempDir home;
    testing::write_file(home / "schema.json",
                        R"({"Event": {"fields": {"CrmSync_Key__c": {"type": "string", "length": 255, "external_id": true}}}})");
    bench::Emulator emulator({"--database", home / "sf.db", "--schema", home / "schema.json", "--daily-limit", "10000000"});
    testing::write_file(home / "empty.jsonl", "");
    bench::salesforce_connection(home, "sf", emulator.url);
    std::string line;
    testing::write_file(home / "manifests/hooks.json",
                        R"({"module": "hooks", "plugin": {"id": "test-ops"}, "crm": "sf", "schedule": "realtime",
                            "webhook": {"secret": {"env": "BENCH_HOOK_SECRET"}}, "config": {"file": ")" +
                            (home / "empty.jsonl") + R"("}})");
    pid_t serve = bench::spawn({CRMSYNC_BIN, "serve", "--listen", "127.0.0.1:0"},
                               {std::string("CRMSYNC_PLUGIN_PATH=") + CRMSYNC_PLUGIN_DIR + ":" + CRMSYNC_TEST_PLUGIN_DIR,
                                "CRMSYNC_HOME=" + home.str(), "BENCH_HOOK_SECRET=bench-secret", "CRMSYNC_LOG=warn"},
                               line);
    int port = std::stoi(line.substr(line.rfind(':') + 1));

    httplib::Client client("127.0.0.1", port);
    const int total = rate * seconds;
    std::map<std::string, int64_t> sent;
    auto start = std::chrono::steady_clock::now();
    int rejected = 0;
    for (int i = 0; i < total; ++i) {
        std::this_thread::sleep_until(start + std::chrono::microseconds(1'000'000LL * i / rate));
        std::string key = "bench-" + std::to_string(i);
        std::string body =
            R"({"id": ")" + key + R"(", "ops": [{"object": "Event", "action": "upsert", "key": ")" + key +
            R"(", "fields": {"Subject": "latency", "StartDateTime": "2026-11-20T01:00:00Z", "DurationInMinutes": 5}}]})";
        std::string ts = std::to_string(now_ms() / 1000);
        httplib::Headers headers{{"X-Crmsync-Timestamp", ts},
                                 {"X-Crmsync-Signature", "sha256=" + crmsync::hmac_sha256_hex("bench-secret", ts + "." + body)}};
        sent[key] = now_ms();
        auto res = client.Post("/hooks/hooks", headers, body, "application/json");
        if (!res || res->status != 202) ++rejected;
    }
    // Wait for everything to land (bounded), then read when each record was created.
    std::vector<double> latencies;
    for (int wait = 0; wait < 600; ++wait) {
        latencies.clear();
        SQLite::Database db(home / "sf.db", SQLite::OPEN_READONLY, testing::kReadBusyTimeoutMs);
        db.setBusyTimeout(5000);
        SQLite::Statement q(db, "SELECT CrmSync_Key__c, CreatedDate FROM Event");
        while (q.executeStep()) {
            int64_t created = 0;
            std::string text = q.getColumn(1).getString();
            text.replace(text.size() - 5, 5, "Z");  // "+0000" -> "Z"
            if (!crmsync::parse_iso8601(text, created)) continue;
            auto it = sent.find(q.getColumn(0).getString());
            if (it != sent.end()) latencies.push_back((created - it->second) / 1000.0);
        }
        if (static_cast<int>(latencies.size()) >= total - rejected) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    kill(serve, SIGTERM);
    waitpid(serve, nullptr, 0);
    std::sort(latencies.begin(), latencies.end());
    auto pct = [&](double p) {
        return latencies.empty() ? 0.0 : latencies[std::min(latencies.size() - 1, static_cast<size_t>(p * latencies.size()))];
    };
    std::printf("webhooks -> serve -> salesforce plugin -> emulator: %d events at %d/s\n", total, rate);
    std::printf("  landed                 %zu of %d (%d rejected)\n", latencies.size(), total, rejected);
    std::printf("  latency p50            %.2f s\n", pct(0.50));
    std::printf("  latency p99            %.2f s   (goal < 1 s at 200 events/s: %s)\n", pct(0.99),
                pct(0.99) < 1 && latencies.size() == static_cast<size_t>(total) ? "met" : "MISSED");
    return 0;
}
