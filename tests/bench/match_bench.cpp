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
#include <curl/curl.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "bench_support.h"
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

size_t collect(char* data, size_t size, size_t n, void* out) {
    static_cast<std::string*>(out)->append(data, size * n);
    return size * n;
}

struct Baseline {
    CURL* curl = curl_easy_init();
    std::string instance, token;
    int64_t calls = 0;
    ~Baseline() { curl_easy_cleanup(curl); }

    json::value call(const std::string& method, const std::string& url, const std::string& body, const char* type) {
        std::string answer;
        curl_slist* headers = nullptr;
        headers = curl_slist_append(headers, (std::string("Content-Type: ") + type).c_str());
        if (!token.empty()) headers = curl_slist_append(headers, ("Authorization: Bearer " + token).c_str());
        curl_easy_reset(curl);
        curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
        if (!body.empty()) curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, &answer);
        curl_easy_perform(curl);
        curl_slist_free_all(headers);
        ++calls;
        boost::system::error_code ec;
        auto parsed = json::parse(answer, ec);
        return ec ? json::value() : parsed;
    }

    std::string encode(const std::string& s) {
        char* e = curl_easy_escape(curl, s.c_str(), static_cast<int>(s.size()));
        std::string out(e);
        curl_free(e);
        return out;
    }

    // Logs in, then per 200 rows: two IN queries of 100 emails (a GET stays under the
    // URI limit) and one Collections update of the Leads found. Returns rows written.
    int64_t run(const std::string& url, const std::vector<std::vector<std::string>>& rows) {
        auto login = call("POST", url + "/services/oauth2/token",
                          "grant_type=client_credentials&client_id=test-client-id&client_secret=test-client-secret",
                          "application/x-www-form-urlencoded");
        instance = std::string(login.at("instance_url").as_string());
        token = std::string(login.at("access_token").as_string());
        const std::string data = instance + "/services/data/v62.0";
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
    int64_t rows = 100'000;
    for (int i = 1; i + 1 < argc; ++i)
        if (std::strcmp(argv[i], "--rows") == 0) rows = std::atoll(argv[i + 1]);
    testing::TempDir home;
    testing::write_file(home / "schema.json", R"({"Lead": {"fields": {"WalkMe_Logins_last_30_days__c": {"type": "double"},
                                                                   "WalkMe_Last_Login__c": {"type": "datetime"}}}})");
    // The org's Leads and the report, made in a child so that this process's peak memory is
    // crmsync's own.
    if (pid_t maker = fork(); maker == 0) {
        json::array leads;
        for (int64_t i = 0; i < rows; ++i)
            if (i % 50 != 49)
                leads.push_back(json::object{{"LastName", "L" + std::to_string(i)}, {"Company", "C"}, {"Email", email(i)}});
        testing::write_file(home / "seed.json", json::serialize(json::object{{"Lead", leads}}));
        testing::write_file(home / "reports/logins.csv", report_csv(rows));
        _exit(0);
    } else {
        waitpid(maker, nullptr, 0);
    }

    // The baseline first, on its own emulator, in a child process so its memory is its own.
    double base_rate = 0, base_calls = 0;
    {
        auto emulator = seeded_emulator(home, "baseline");
        int out[2];
        if (pipe(out) != 0) return 2;
        pid_t child = fork();
        if (child == 0) {
            close(out[0]);
            auto parsed = support::csv::parse(testing::read_file(home / "reports/logins.csv"));
            Baseline client;
            auto started = std::chrono::steady_clock::now();
            int64_t written = client.run(emulator->url, parsed);
            double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
            std::string line = std::to_string(written) + " " + std::to_string(seconds) + " " + std::to_string(client.calls);
            if (write(out[1], line.data(), line.size()) < 0) _exit(1);
            _exit(0);
        }
        close(out[1]);
        char buf[128] = {};
        ssize_t n = read(out[0], buf, sizeof buf - 1);
        close(out[0]);
        waitpid(child, nullptr, 0);
        long long written = 0, calls = 0;
        double seconds = 0;
        if (n <= 0 || std::sscanf(buf, "%lld %lf %lld", &written, &seconds, &calls) != 3) {
            std::fprintf(stderr, "match bench: the baseline client failed\n");
            return 2;
        }
        base_rate = rows / seconds;
        base_calls = 1000.0 * calls / rows;
        std::printf("baseline (batched client, libcurl): %lld of %lld rows written, %lld API calls, %.1f s\n", written,
                    (long long)rows, calls, seconds);
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
    Environment env;
    env.home = home.str();
    env.manifest_dirs = {home / "manifests"};
    env.plugin_dirs = {CRMSYNC_PLUGIN_DIR};
    SystemClock clock;
    std::atomic<bool> cancel{false};
    Diagnostics quiet(nullptr, Level::error);
    Catalog catalog(env, quiet, clock);
    auto instances = catalog.instantiate_module("logins");
    if (!instances) {
        std::fprintf(stderr, "match bench: %s\n", instances.status().message().c_str());
        return 2;
    }
    auto store = catalog.open_store();
    auto& mi = instances.value();
    Pipeline pipeline(*store.value(), ModuleBinding{*mi.module, *mi.connection, *mi.source, *mi.crm}, clock, cancel, quiet);
    RunOptions options;
    options.lease_holder = "bench";
    auto started = std::chrono::steady_clock::now();
    auto report = pipeline.run(options);
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    const double per_thousand = report.counts.fetched ? 1000.0 * report.counts.api_calls / report.counts.fetched : 0;
    const double rate = report.counts.fetched / seconds, rss = usage.ru_maxrss / 1024.0;
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
