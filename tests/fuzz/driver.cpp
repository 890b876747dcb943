// A small stand-in for libFuzzer's driver, so the fuzz targets run in the suite's GCC
// sanitizer build (libFuzzer needs clang): it replays the seed corpus, then feeds random
// mutations of it (bit flips, byte edits, cut and repeated ranges, splices, JSON and HTTP
// tokens) until a time or run budget is spent. No coverage feedback: this is a bounded random
// search around the seeds, not a replacement for libFuzzer, which builds the same targets
// with -DCRMSYNC_LIBFUZZER=ON (see tests/fuzz/README.md).
//
//   fuzz_<target> CORPUS_DIR [--seconds N] [--runs N] [--seed N]
//
// A sanitizer finding aborts the process; the input that caused it is written first to
// ./crash-<target>-<run> so that `fuzz_<target> --replay FILE` reproduces it.
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define CRMSYNC_FUZZ_DEATH_CALLBACK 1
#endif

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

// The input being run, for the death callback. Never freed: a leak report at exit runs the
// callback after static destructors, and then there is no input to keep.
std::string& g_current = *new std::string;
bool g_running = false;
std::string g_target;
int64_t g_run = 0;

void write_crash() {
    if (!g_running) return;
    std::string name = "crash-" + g_target + "-" + std::to_string(g_run);
    if (FILE* f = std::fopen(name.c_str(), "wb")) {
        std::fwrite(g_current.data(), 1, g_current.size(), f);
        std::fclose(f);
        std::fprintf(stderr, "fuzz: the input is in %s (replay: --replay %s)\n", name.c_str(), name.c_str());
    }
}

std::string read_file(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

void run_one(const std::string& input) {
    g_current = input;
    ++g_run;
    g_running = true;
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(g_current.data()), g_current.size());
    g_running = false;
}

const char* const kTokens[] = {"\"",
                               "{",
                               "}",
                               "[",
                               "]",
                               ",",
                               ":",
                               "\\",
                               "\\u0000",
                               "\\ud800",
                               "null",
                               "true",
                               "false",
                               "-1",
                               "0",
                               "1e308",
                               "-0",
                               "99999999999999999999",
                               "9223372036854775807",
                               "1.5",
                               "\"\"",
                               "{}",
                               "[]",
                               "\r\n",
                               "\n",
                               "\r\n\r\n",
                               " ",
                               "\t",
                               "\xff",
                               "\xc3\xa9",
                               "\xe6\x97\xa5",
                               "Content-Length: ",
                               "Transfer-Encoding: chunked\r\n",
                               "0\r\n\r\n",
                               "HTTP/1.1",
                               "/hooks/",
                               "GET ",
                               "POST ",
                               "env",
                               "file",
                               "module",
                               "plugin",
                               "schedule",
                               "every",
                               "daily_at"};

std::string mutate(std::string s, const std::vector<std::string>& pool, std::mt19937_64& rng) {
    auto pick = [&](size_t n) { return n == 0 ? size_t{0} : static_cast<size_t>(rng() % n); };
    int edits = 1 + static_cast<int>(pick(6));
    for (int e = 0; e < edits; ++e) {
        switch (pick(9)) {
            case 0:
                if (!s.empty()) s[pick(s.size())] ^= static_cast<char>(1u << pick(8));
                break;
            case 1:
                if (!s.empty()) s[pick(s.size())] = static_cast<char>(rng());
                break;
            case 2: s.insert(pick(s.size() + 1), 1, static_cast<char>(rng())); break;
            case 3:
                if (!s.empty()) {
                    size_t at = pick(s.size());
                    s.erase(at, 1 + pick(std::min<size_t>(64, s.size() - at)));
                }
                break;
            case 4:
                if (!s.empty()) {
                    size_t at = pick(s.size()), n = 1 + pick(std::min<size_t>(256, s.size() - at));
                    std::string part = s.substr(at, n);
                    for (size_t times = 1 + pick(8); times > 0; --times) s.insert(pick(s.size() + 1), part);
                }
                break;
            case 5: s.insert(pick(s.size() + 1), kTokens[pick(std::size(kTokens))]); break;
            case 6:
                if (!pool.empty()) {
                    const std::string& other = pool[pick(pool.size())];
                    size_t at = pick(other.size() + 1);
                    s = s.substr(0, pick(s.size() + 1)) + other.substr(at);
                }
                break;
            case 7: s.resize(pick(s.size() + 1)); break;
            case 8: {
                // A digit run made long: numbers from outside must have a range.
                size_t at = pick(s.size() + 1);
                s.insert(at, std::string(1 + pick(40), static_cast<char>('0' + pick(10))));
                break;
            }
        }
    }
    if (s.size() > 256 * 1024) s.resize(256 * 1024);
    return s;
}

}  // namespace

int main(int argc, char** argv) {
    g_target = std::filesystem::path(argv[0]).filename().string();
    std::string corpus;
    double seconds = 10;
    int64_t runs = -1;
    uint64_t seed = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    std::vector<std::string> replay;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--seconds" && i + 1 < argc) seconds = std::atof(argv[++i]);
        else if (a == "--runs" && i + 1 < argc) runs = std::atoll(argv[++i]);
        else if (a == "--seed" && i + 1 < argc) seed = std::strtoull(argv[++i], nullptr, 10);
        else if (a == "--replay" && i + 1 < argc) replay.push_back(argv[++i]);
        else corpus = a;
    }
#ifdef CRMSYNC_FUZZ_DEATH_CALLBACK
    __sanitizer_set_death_callback(write_crash);  // a sanitizer finding: keep the input
#endif
    // A target's own check fails with abort(): keep that input too (best effort: the process is going down).
    std::signal(SIGABRT, [](int) {
        std::signal(SIGABRT, SIG_DFL);
        write_crash();
        std::raise(SIGABRT);
    });
    if (!replay.empty()) {
        for (const auto& file : replay) run_one(read_file(file));
        std::printf("fuzz %s: replayed %zu input(s), no findings\n", g_target.c_str(), replay.size());
        return 0;
    }
    std::vector<std::string> seeds;
    if (!corpus.empty())
        for (const auto& entry : std::filesystem::directory_iterator(corpus))
            if (entry.is_regular_file()) seeds.push_back(read_file(entry.path()));
    std::sort(seeds.begin(), seeds.end());
    if (seeds.empty()) seeds.push_back("");
    for (const auto& s : seeds) run_one(s);  // every seed as it is first
    std::mt19937_64 rng(seed);
    std::vector<std::string> pool = seeds;  // seeds and some mutants, to mutate further
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    int64_t done = 0;
    while ((runs < 0 || done < runs) && std::chrono::steady_clock::now() < deadline) {
        std::string input = mutate(pool[rng() % pool.size()], pool, rng);
        run_one(input);
        if (++done % 16 == 0) {
            if (pool.size() < 512) pool.push_back(std::move(input));
            else pool[seeds.size() + rng() % (pool.size() - seeds.size())] = std::move(input);
        }
    }
    std::printf("fuzz %s: %lld inputs from %zu seeds (seed %llu), no findings\n", g_target.c_str(),
                static_cast<long long>(done + static_cast<int64_t>(seeds.size())), seeds.size(),
                static_cast<unsigned long long>(seed));
    return 0;
}
