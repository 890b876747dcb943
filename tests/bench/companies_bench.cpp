// crmsync_companies_bench: figures, not tests. The feedback-companies job turned round: the
// first import of N Accounts (default 100,000) through the salesforce plugin against the
// emulator into the module's export folder, then a run with nothing changed — beside a plain
// script doing the same import in the same sitting (one query, its pages of 2,000 followed,
// each Account written as a JSON line). Prints records/s and API calls per 1,000 of the
// import, and the API calls of the idle run, each beside its goal and as a ratio.
//   crmsync_companies_bench [--accounts N]
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "bench_support.h"
#include "plain_client.h"

using namespace crmsync;

namespace {

std::unique_ptr<bench::Emulator> seeded_emulator(const testing::TempDir& home, const std::string& name) {
    return std::make_unique<bench::Emulator>(std::vector<std::string>{"--database", home / (name + ".db"), "--seed",
                                                                      home / "seed.json", "--daily-limit", "100000000"});
}

// The plain script: every Account, a page of 2,000 at a time, each as a line in a file.
bench::ChildFigures plain_import(const std::string& url, const std::string& file) {
    bench::PlainClient client;
    const std::string data = client.login(url);
    std::ofstream out(file);
    int64_t written = 0;
    auto page = client.call(
        "GET", data + "/query?q=" + client.encode("SELECT Id, Name, Industry, AnnualRevenue, NumberOfEmployees FROM Account"),
        "");
    for (;;) {
        for (const auto& r : page.at("records").as_array()) {
            out << json::serialize(r) << "\n";
            ++written;
        }
        auto* next = page.as_object().if_contains("nextRecordsUrl");
        if (!next || !next->is_string()) break;
        page = client.call("GET", url + std::string(next->get_string()), "");
    }
    return bench::ChildFigures{written, 0, client.calls};
}

}  // namespace

int main(int argc, char** argv) {
    crmsync::restart_with_heap_on_huge_pages(argv);  // as crmsync's main does first thing
    int64_t accounts = 100'000;
    for (int i = 1; i + 1 < argc; ++i)
        if (std::strcmp(argv[i], "--accounts") == 0) accounts = std::atoll(argv[i + 1]);
    testing::TempDir home;
    bench::make_in_child([&] {  // made in a child: this process's memory is crmsync's
        json::array list;
        const char* industries[] = {"Technology", "Finance", "Manufacturing", "Retail", "Other"};
        for (int64_t i = 0; i < accounts; ++i)
            list.push_back(json::object{{"Name", "Account " + std::to_string(i)},
                                        {"Industry", industries[i % 5]},
                                        {"Type", i % 4 ? "Customer - Direct" : "Prospect"},
                                        {"AnnualRevenue", 100'000 * (i % 97)},
                                        {"NumberOfEmployees", i % 500}});
        testing::write_file(home / "seed.json", json::serialize(json::object{{"Account", list}}));
    });

    double base_rate = 0, base_calls = 0;
    {
        auto emulator = seeded_emulator(home, "baseline");
        auto figures = bench::in_child([&] {
            auto started = std::chrono::steady_clock::now();
            auto figures = plain_import(emulator->url, home / "baseline.jsonl");
            figures.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
            return figures;
        });
        if (!figures) {
            std::fprintf(stderr, "companies bench: the plain script failed\n");
            return 2;
        }
        base_rate = figures->records / figures->seconds;
        base_calls = 1000.0 * figures->calls / figures->records;
        std::printf("baseline (plain script, libcurl): %lld Accounts read and written, %lld API calls, %.1f s\n",
                    (long long)figures->records, (long long)figures->calls, figures->seconds);
    }

    auto emulator = seeded_emulator(home, "crmsync");
    bench::salesforce_connection(home, "sf", emulator->url);
    testing::write_file(home / "manifests/companies.json",
                        R"({"module": "companies", "plugin": {"id": "feedback-companies"}, "crm": "sf",
                            "config": {"object": "Account", "destination": {"folder": ")" +
                            home / "export" + R"("},
                              "filters": [{"field": "Type", "op": "not_equals", "value": "Prospect"}],
                              "fields": {"industry": {"from": "Industry", "type": "single_select"},
                                         "revenue": {"from": "AnnualRevenue", "type": "number"},
                                         "employees": {"from": "NumberOfEmployees", "type": "number"}}}})");
    auto first = bench::run_module(home, "companies");
    if (!first) return 2;
    const auto& report = first->report;
    const double rate = report.counts.fetched / first->seconds, rss = bench::peak_rss_mb();
    const double per_thousand = report.counts.fetched ? 1000.0 * report.counts.api_calls / report.counts.fetched : 0;
    auto idle = bench::run_module(home, "companies");
    if (!idle) return 2;
    const int64_t idle_calls = idle->report.counts.api_calls;
    std::printf("crmsync (salesforce plugin -> feedback-companies): first import of %lld Accounts\n", (long long)accounts);
    std::printf("  status                 %s (fetched %lld, created %lld, failed %lld)\n",
                std::string(run_status_name(report.status)).c_str(), (long long)report.counts.fetched,
                (long long)report.counts.created, (long long)report.counts.failed);
    std::printf("  records / s            %.0f   (baseline %.0f: %.2fx)\n", rate, base_rate,
                base_rate > 0 ? rate / base_rate : 0);
    std::printf("  API calls / 1,000 rec  %.2f   (baseline %.2f: %.2fx)\n", per_thousand, base_calls,
                base_calls > 0 ? per_thousand / base_calls : 0);
    std::printf("  idle run API calls     %lld   (goal <= 2: %s)\n", (long long)idle_calls, idle_calls <= 2 ? "met" : "MISSED");
    std::printf("  peak RSS               %.1f MB\n", rss);
    return report.status == RunStatus::succeeded && idle->report.status == RunStatus::succeeded ? 0 : 1;
}
