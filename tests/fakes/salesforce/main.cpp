// salesforce-emulator: the emulator as a program, for manual runs and the benchmark.
//   salesforce-emulator --database FILE [...] [--error-rate R] [--lock-rate R] [--slow-ms MS]
//                       [--token-ttl S] [--error-after-apply-rate R]   (see kUsage)
// so QA can reproduce each fault without writing C++. Prints "listening on http://127.0.0.1:PORT" and serves until interrupted.
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "emulator.h"

namespace {
std::string read(const char* path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}
volatile std::sig_atomic_t g_stop = 0;
extern "C" void on_signal(int) { g_stop = 1; }
}  // namespace

const char* const kUsage =
    "usage: salesforce-emulator --database FILE [--schema FILE] [--seed FILE] [--jwt-public-key FILE]\n"
    "       [--daily-limit N] [--bulk-polls N (a bulk job answers InProgress N times first; default 2)]\n"
    "       faults: [--error-rate R (503s)] [--lock-rate R (UNABLE_TO_LOCK_ROW per record)]\n"
    "               [--slow-ms MS [--slow-rate R (default 1)]] [--token-ttl SECONDS]\n"
    "               [--latency-ms MS (added to every request, as a WAN round trip)]\n"
    "               [--error-after-apply-rate R (writes answered 500 after they were applied)]\n"
    "               [--budget-gone-at ENDPOINT:N (the day's API budget is used up at call N to query, composite...)]\n"
    "       R is a share from 0 to 1.\n";

// A number flag in its range, or a usage error naming the flag.
template <class T>
bool number(const std::string& flag, const char* text, T low, T high, T& out) {
    std::istringstream in(text);
    T value{};
    if (!(in >> value) || !in.eof() || value < low || value > high) {
        std::ostringstream range;
        range << low << " to " << high;
        std::fprintf(stderr, "salesforce-emulator: %s must be a number from %s, not \"%s\"\n%s", flag.c_str(),
                     range.str().c_str(), text, kUsage);
        return false;
    }
    out = value;
    return true;
}

int main(int argc, char** argv) {
    sfemu::Settings settings;
    sfemu::Faults faults;
    for (int i = 1; i < argc; i += 2) {
        std::string flag = argv[i];
        if (i + 1 >= argc) {
            std::fprintf(stderr, "salesforce-emulator: %s needs a value\n%s", flag.c_str(), kUsage);
            return 2;
        }
        const char* value = argv[i + 1];
        bool ok = true;
        if (flag == "--database") settings.database = value;
        else if (flag == "--schema") settings.schema = boost::json::parse(read(value)).as_object();
        else if (flag == "--seed") settings.seed = boost::json::parse(read(value)).as_object();
        else if (flag == "--jwt-public-key") settings.jwt_public_key_pem = read(value);
        else if (flag == "--daily-limit") ok = number<int64_t>(flag, value, 1, 1'000'000'000, settings.daily_api_limit);
        else if (flag == "--bulk-polls") ok = number<int>(flag, value, 0, 1000, settings.bulk_polls_before_complete);
        else if (flag == "--error-rate") ok = number<double>(flag, value, 0, 1, faults.error_503_rate);
        else if (flag == "--lock-rate") ok = number<double>(flag, value, 0, 1, faults.lock_rate);
        else if (flag == "--slow-ms") {
            ok = number<int64_t>(flag, value, 0, 600'000, faults.slow_ms);
            if (faults.slow_rate == 0) faults.slow_rate = 1;
        } else if (flag == "--slow-rate") ok = number<double>(flag, value, 0, 1, faults.slow_rate);
        else if (flag == "--latency-ms") ok = number<int64_t>(flag, value, 0, 10'000, faults.latency_ms);
        else if (flag == "--token-ttl") ok = number<int64_t>(flag, value, 0, 86'400 * 365, faults.token_ttl_s);
        else if (flag == "--error-after-apply-rate") ok = number<double>(flag, value, 0, 1, faults.error_after_apply_rate);
        else if (flag == "--budget-gone-at") {
            std::string v = value;
            auto colon = v.find(':');
            faults.budget_gone_on = v.substr(0, colon);
            ok = colon != std::string::npos && !faults.budget_gone_on.empty() &&
                 number<int64_t>(flag, v.c_str() + colon + 1, 1, 1'000'000'000, faults.budget_gone_at);
            if (!ok && colon == std::string::npos)
                std::fprintf(stderr, "salesforce-emulator: --budget-gone-at takes ENDPOINT:N, e.g. query:7\n%s", kUsage);
        } else {
            std::fprintf(stderr, "salesforce-emulator: unknown flag %s\n%s", flag.c_str(), kUsage);
            return 2;
        }
        if (!ok) return 2;
    }
    if (settings.database.empty()) {
        std::fprintf(stderr, "%s", kUsage);
        return 2;
    }
    sfemu::Emulator emulator(settings);
    emulator.set_faults(faults);
    emulator.start();
    std::printf("listening on %s\n", emulator.base_url().c_str());
    std::fflush(stdout);
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    while (!g_stop) pause();
    // What a client spent, by endpoint: a benchmark's API calls, explained.
    std::string spent;
    for (const auto& [endpoint, n] : emulator.calls()) spent += " " + endpoint + " " + std::to_string(n);
    std::fprintf(stderr, "salesforce-emulator: calls by endpoint:%s\n", spent.c_str());
    return 0;
}
