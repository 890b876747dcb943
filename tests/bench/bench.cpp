// crmsync_bench: figures, not tests. Seeds a CRM with 20 users and a set of contacts,
// pushes N operations (each with an owner and a related-to directive) through the full
// pipeline, and prints API calls per 1,000 records, records per second and peak RSS, each
// beside its target. One configuration per process, so peak RSS is that run's own.
//   crmsync_bench [--crm mock|salesforce] [--records N] [--contacts N] [--bulk auto|always|never]
// With --crm salesforce the real plugin talks HTTP to a salesforce-emulator process.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "catalog.h"
#include "pipeline.h"
#include "bench_support.h"
#include "test_support.h"

using namespace crmsync;

int main(int argc, char** argv) {
    int64_t records = 10'000;
    int customers = 3000;
    std::string crm = "mock", bulk = "auto";
    for (int i = 1; i + 1 < argc; ++i) {
        if (std::strcmp(argv[i], "--records") == 0) records = std::atoll(argv[i + 1]);
        if (std::strcmp(argv[i], "--contacts") == 0) customers = std::atoi(argv[i + 1]);
        if (std::strcmp(argv[i], "--crm") == 0) crm = argv[i + 1];
        if (std::strcmp(argv[i], "--bulk") == 0) bulk = argv[i + 1];
    }
    const int users = 20;
    testing::TempDir home;

    json::object seed{
        {"UserLicense", json::array{json::object{{"_ref", "lic"}, {"Name", "Sales Cloud"}, {"TotalLicenses", 100}}}},
        {"Profile", json::array{json::object{{"_ref", "p"}, {"Name", "Sales"}, {"UserLicenseId", "@lic"}}}}};
    json::array user_list, contact_list;
    for (int u = 0; u < users; ++u)
        user_list.push_back(json::object{{"Username", "agent" + std::to_string(u) + "@bench.example.org"},
                                         {"LastName", "Agent " + std::to_string(u)},
                                         {"Email", "agent" + std::to_string(u) + "@bench.example"},
                                         {"Alias", "ag" + std::to_string(u)},
                                         {"TimeZoneSidKey", "Asia/Tokyo"},
                                         {"LocaleSidKey", "ja_JP"},
                                         {"EmailEncodingKey", "UTF-8"},
                                         {"LanguageLocaleKey", "ja"},
                                         {"ProfileId", "@p"}});
    for (int c = 0; c < customers; ++c)
        contact_list.push_back(json::object{{"LastName", "Customer " + std::to_string(c)},
                                            {"Email", "customer" + std::to_string(c) + "@client.example"}});
    seed["User"] = user_list;
    seed["Contact"] = contact_list;
    testing::write_file(home / "seed.json", json::serialize(seed));
    std::unique_ptr<bench::Emulator> emulator;
    if (crm == "salesforce") {
        testing::write_file(
            home / "schema.json",
            R"({"Event": {"fields": {"CrmSync_Key__c": {"type": "string", "length": 255, "external_id": true}}}})");
        emulator = std::make_unique<bench::Emulator>(std::vector<std::string>{"--database", home / "sf.db", "--schema",
                                                                              home / "schema.json", "--seed", home / "seed.json",
                                                                              "--daily-limit", "10000000", "--bulk-polls", "0"});
        bench::salesforce_connection(home, "mock", emulator->url, bulk);
    } else {
        testing::write_file(
            home / "manifests/crm.json",
            testing::mock_connection(home / "var/crm.db", 100'000'000, R"(, "seed": ")" + (home / "seed.json") + "\"", bulk));
    }
    {
        std::ofstream ops(home / "ops.jsonl");
        for (int64_t i = 0; i < records; ++i) {
            json::object op{
                {"object", "Event"},
                {"action", "upsert"},
                {"key", "bench:" + std::to_string(i)},
                {"fields", json::object{{"Subject", "【メール】Bench " + std::to_string(i)},
                                        {"StartDateTime", "2026-11-20T01:00:00Z"},
                                        {"DurationInMinutes", 15}}},
                {"owner", json::object{{"email", "agent" + std::to_string(i % users) + "@bench.example"},
                                       {"if_missing", json::array{"connection_user"}}}},
                {"related", json::object{{"emails", json::array{"customer" + std::to_string(i % customers) + "@client.example"}},
                                         {"prefer", json::array{"Contact", "Lead"}}}}};
            ops << json::serialize(json::object{{"id", "src-" + std::to_string(i)}, {"ops", json::array{op}}}) << "\n";
        }
    }
    testing::write_file(home / "manifests/bench.json",
                        R"({"module": "bench", "plugin": {"id": "test-ops"}, "crm": "mock", "config": {"file": ")" +
                            (home / "ops.jsonl") + R"("}})");

    auto timed = bench::run_module(home, "bench");
    if (!timed) return 2;
    const auto& report = timed->report;
    const double seconds = timed->seconds;
    double per_thousand = report.counts.fetched ? 1000.0 * report.counts.api_calls / report.counts.fetched : 0;
    emulator.reset();
    std::printf("%s (bulk %s): %lld operations, %d owners, %d customer emails\n", crm.c_str(), bulk.c_str(), (long long)records,
                users, customers);
    std::printf("  status                 %s (created %lld, failed %lld)\n", std::string(run_status_name(report.status)).c_str(),
                (long long)report.counts.created, (long long)report.counts.failed);
    std::printf("  API calls              %lld\n", (long long)report.counts.api_calls);
    std::printf("  API calls / 1,000 rec  %.1f   (target <= 20: %s)\n", per_thousand, per_thousand <= 20 ? "met" : "MISSED");
    double rate = report.counts.fetched / seconds, rss = bench::peak_rss_mb();
    std::printf("  records / s            %.0f   (target >= 5,000 end to end on 2 cores: %s)\n", rate,
                rate >= 5000 ? "met" : "MISSED");
    std::printf("  peak RSS               %.1f MB   (target < 200 MB at 100,000 records%s)\n", rss,
                records >= 100'000 ? (rss < 200 ? ": met" : ": MISSED") : "; run with --records 100000 to judge");
    return report.status == RunStatus::succeeded ? 0 : 1;
}
