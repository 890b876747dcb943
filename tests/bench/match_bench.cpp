// crmsync_match_bench: figures, not tests. The product-analytics job at its daily size — a
// report of N rows (default 100,000) onto Leads matched by Email — through the salesforce
// plugin against the emulator, beside a careful hand-written batched client doing the same
// job in the same sitting (per 100 rows one IN query for the Leads, per 200 one sObject
// Collections update; plain libcurl, no state). Each side gets its own emulator, seeded
// alike. Prints API calls per 1,000 rows, rows per second and crmsync's peak RSS, each
// beside its goal and as a ratio to the baseline.
//   crmsync_match_bench [--rows N]
#include <crmsync/support/csv.hpp>
#include <crmsync/support/text.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "bench_support.h"
#include "plain_client.h"
#include "catalog.h"
#include "pipeline.h"

using namespace crmsync;

namespace {

std::string email(int64_t i) { return "user-" + std::to_string(i) + "@a-customer-domain.example.com"; }

// Every row's key is a Lead but 2%, and every tenth row is written in another case.
std::string report_csv(int64_t rows) {
    std::string csv = "email,last_login,logins_30d\n";
    for (int64_t i = 0; i < rows; ++i) {
        std::string e = i % 50 == 49 ? "nobody-" + std::to_string(i) + "@elsewhere.example" : email(i);
        if (i % 10 == 0) e[0] = 'U';
        csv += e + ",2026-11-20T09:00:00Z," + std::to_string(i % 40) + "\n";
    }
    return csv;
}

std::unique_ptr<bench::Emulator> seeded_emulator(const testing::TempDir& home, const std::string& name) {
    return std::make_unique<bench::Emulator>(std::vector<std::string>{"--database", home / (name + ".db"), "--schema",
                                                                      home / "schema.json", "--seed", home / "seed.json",
                                                                      "--daily-limit", "100000000", "--bulk-polls", "0"});
}

// ---- the baseline: a careful hand-written client --------------------------------------

struct Baseline : bench::PlainClient {
    // Logs in, then per 200 rows: two IN queries of 100 emails (a GET stays under the
    // URI limit) and one Collections update of the Leads found. Returns rows written.
    int64_t run(const std::string& url, const std::vector<std::vector<std::string>>& rows) {
        const std::string data = login(url);
        int64_t written = 0;
        for (size_t start = 1; start < rows.size(); start += 200) {
            const size_t end = std::min(rows.size(), start + 200);
            std::map<std::string, std::string> id_of;  // lower-case email -> Id
            for (size_t q = start; q < end; q += 100) {
                std::string in;
                for (size_t r = q; r < std::min(end, q + 100); ++r) in += (in.empty() ? "'" : ",'") + rows[r][0] + "'";
                auto found = call("GET", data + "/query?q=" + encode("SELECT Id, Email FROM Lead WHERE Email IN (" + in + ")"),
                                  "", "application/json");
                for (const auto& rec : found.at("records").as_array())
                    id_of[support::ascii_lower(std::string(rec.at("Email").as_string()))] = std::string(rec.at("Id").as_string());
            }
            json::array records;
            for (size_t r = start; r < end; ++r) {
                auto it = id_of.find(support::ascii_lower(rows[r][0]));
                if (it == id_of.end()) continue;
                records.push_back(json::object{{"attributes", json::object{{"type", "Lead"}}},
                                               {"Id", it->second},
                                               {"WalkMe_Last_Login__c", rows[r][1]},
                                               {"WalkMe_Logins_last_30_days__c", std::stoll(rows[r][2])}});
            }
            if (records.empty()) continue;
            auto results = call("PATCH", data + "/composite/sobjects",
                                json::serialize(json::object{{"allOrNone", false}, {"records", records}}), "application/json");
            for (const auto& r : results.as_array()) written += r.at("success").as_bool() ? 1 : 0;
        }
        return written;
    }
};

}  // namespace

int main(int argc, char** argv) {
    crmsync::restart_with_heap_on_huge_pages(argv);  // as crmsync's main does first thing
    int64_t rows = 100'000;
    for (int i = 1; i + 1 < argc; ++i)
        if (std::strcmp(argv[i], "--rows") == 0) rows = std::atoll(argv[i + 1]);
    testing::TempDir home;
    testing::write_file(home / "schema.json", R"({"Lead": {"fields": {"WalkMe_Logins_last_30_days__c": {"type": "double"},
                                                                   "WalkMe_Last_Login__c": {"type": "datetime"}}}})");
    // The org's Leads and the report, made in a child so that this process's peak memory is
    // crmsync's own.
    bench::make_in_child([&] {
        json::array leads;
        for (int64_t i = 0; i < rows; ++i)
            if (i % 50 != 49)
                leads.push_back(json::object{{"LastName", "L" + std::to_string(i)}, {"Company", "C"}, {"Email", email(i)}});
        testing::write_file(home / "seed.json", json::serialize(json::object{{"Lead", leads}}));
        testing::write_file(home / "reports/logins.csv", report_csv(rows));
    });

    // The baseline first, on its own emulator, in a child process so its memory is its own.
    double base_rate = 0, base_calls = 0;
    {
        auto emulator = seeded_emulator(home, "baseline");
        auto figures = bench::in_child([&] {
            auto parsed = support::csv::parse(testing::read_file(home / "reports/logins.csv"));
            Baseline client;
            auto started = std::chrono::steady_clock::now();
            int64_t written = client.run(emulator->url, parsed);
            double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
            return bench::ChildFigures{written, seconds, client.calls};
        });
        if (!figures) {
            std::fprintf(stderr, "match bench: the baseline client failed\n");
            return 2;
        }
        base_rate = rows / figures->seconds;
        base_calls = 1000.0 * figures->calls / rows;
        std::printf("baseline (batched client, libcurl): %lld of %lld rows written, %lld API calls, %.1f s\n",
                    (long long)figures->records, (long long)rows, (long long)figures->calls, figures->seconds);
    }

    // crmsync: the product-analytics module through the salesforce plugin.
    auto emulator = seeded_emulator(home, "crmsync");
    bench::salesforce_connection(home, "sf", emulator->url);
    testing::write_file(home / "manifests/logins.json",
                        R"({"module": "logins", "plugin": {"id": "product-analytics"}, "crm": "sf", "config": {"folder": ")" +
                            home / "reports" + R"(", "report": "Logins", "object": "Lead",
                            "key": {"column": "email", "field": "Email"},
                            "columns": {"last_login": {"field": "WalkMe_Last_Login__c", "type": "datetime"},
                                        "logins_30d": {"field": "WalkMe_Logins_last_30_days__c", "type": "number"}}}})");
    auto timed = bench::run_module(home, "logins");
    if (!timed) return 2;
    const auto& report = timed->report;
    const double seconds = timed->seconds;
    const double per_thousand = report.counts.fetched ? 1000.0 * report.counts.api_calls / report.counts.fetched : 0;
    const double rate = report.counts.fetched / seconds, rss = bench::peak_rss_mb();
    std::printf("crmsync (product-analytics -> salesforce plugin): %lld rows onto Leads by Email\n", (long long)rows);
    std::printf("  status                 %s (updated %lld, no match %lld, failed %lld)\n",
                std::string(run_status_name(report.status)).c_str(), (long long)report.counts.updated,
                (long long)report.counts.no_match, (long long)report.counts.failed);
    std::printf("  API calls / 1,000 rows %.2f   (goal <= 3: %s; baseline %.1f, %.2fx of it)\n", per_thousand,
                per_thousand <= 3 ? "met" : "MISSED", base_calls, base_calls > 0 ? per_thousand / base_calls : 0);
    std::printf("  rows / s               %.0f   (baseline %.0f: %.2fx)\n", rate, base_rate,
                base_rate > 0 ? rate / base_rate : 0);
    std::printf("  peak RSS               %.1f MB   (goal < 150 MB at 100,000 rows%s)\n", rss,
                rows >= 100'000 ? (rss < 150 ? ": met" : ": MISSED") : "; run with --rows 100000 to judge");
    return report.status == RunStatus::succeeded ? 0 : 1;
}
