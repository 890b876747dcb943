// salesforce-emulator: the emulator as a program, for manual runs and the benchmark.
//   salesforce-emulator --database FILE [--schema FILE] [--seed FILE] [--jwt-public-key FILE]
// Prints "listening on http://127.0.0.1:PORT" and serves until interrupted.
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

int main(int argc, char** argv) {
    sfemu::Settings settings;
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string flag = argv[i];
        if (flag == "--database") settings.database = argv[i + 1];
        else if (flag == "--schema") settings.schema = boost::json::parse(read(argv[i + 1])).as_object();
        else if (flag == "--seed") settings.seed = boost::json::parse(read(argv[i + 1])).as_object();
        else if (flag == "--jwt-public-key") settings.jwt_public_key_pem = read(argv[i + 1]);
        else if (flag == "--daily-limit") settings.daily_api_limit = std::atoll(argv[i + 1]);
        else if (flag == "--bulk-polls") settings.bulk_polls_before_complete = std::atoi(argv[i + 1]);
    }
    if (settings.database.empty()) {
        std::fprintf(stderr,
                     "usage: salesforce-emulator --database FILE [--schema FILE] [--seed FILE] [--jwt-public-key FILE]\n"
                     "       [--daily-limit N] [--bulk-polls N (a bulk job answers InProgress N times first; default 2)]\n");
        return 2;
    }
    sfemu::Emulator emulator(settings);
    emulator.start();
    std::printf("listening on %s\n", emulator.base_url().c_str());
    std::fflush(stdout);
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    while (!g_stop) pause();
    return 0;
}
