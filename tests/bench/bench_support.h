#pragma once
// What the benchmarks share: child processes (the Salesforce emulator, crmsync serve) started
// with their first line of output read, and a home's salesforce connection to the emulator.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "catalog.h"
#include "pipeline.h"
#include "plain_client.h"
#include "process.h"
#include "test_support.h"

namespace bench {

// Starts argv with extra environment; `first_line` gets the first output it prints.
inline pid_t spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env, std::string& first_line) {
    int out[2];
    if (pipe(out) != 0) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(out[1], STDOUT_FILENO);
        for (const auto& e : env) putenv(const_cast<char*>(e.c_str()));
        std::vector<char*> args;
        for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        execv(args[0], args.data());
        _exit(127);
    }
    close(out[1]);
    char line[256] = {};
    ssize_t n = read(out[0], line, sizeof line - 1);
    close(out[0]);
    first_line = n > 0 ? std::string(line, static_cast<size_t>(n)) : "";
    return pid;
}

// The salesforce-emulator program, stopped when this goes out of scope.
struct Emulator {
    pid_t pid = -1;
    std::string url;  // http://127.0.0.1:PORT
    explicit Emulator(std::vector<std::string> args) {
        args.insert(args.begin(), CRMSYNC_EMULATOR_BIN);
        std::string line;
        pid = spawn(args, {}, line);
        auto at = line.find("http");
        url = at == std::string::npos ? "" : line.substr(at);
        while (!url.empty() && (url.back() == '\n' || url.back() == '\r')) url.pop_back();
    }
    // CPU seconds the emulator has spent so far (user and system), from /proc.
    double cpu_seconds() const {
        std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
        std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
        auto close = text.rfind(')');  // the command name may hold spaces
        if (close == std::string::npos) return 0;
        std::istringstream fields(text.substr(close + 1));
        std::string field;
        long long ticks = 0;
        for (int n = 3; n <= 15 && fields >> field; ++n)  // utime is field 14, stime 15
            if (n >= 14) ticks += std::stoll(field);
        return static_cast<double>(ticks) / static_cast<double>(sysconf(_SC_CLK_TCK));
    }
    // Seconds the emulator's one lock has been held so far: its engine does one request's
    // work at a time, so records / these seconds is the most any client gets through it.
    double engine_held_seconds() const {
        PlainClient client;
        auto stats = client.call("GET", url + "/emulator/stats", "");
        const auto* held = stats.is_object() ? stats.as_object().if_contains("engine_held_seconds") : nullptr;
        return held && held->is_number() ? held->to_number<double>() : 0;
    }
    ~Emulator() {
        if (pid <= 0) return;
        kill(pid, SIGTERM);
        waitpid(pid, nullptr, 0);
    }
    Emulator(const Emulator&) = delete;
    Emulator& operator=(const Emulator&) = delete;
};

// manifests/NAME.json: a salesforce connection to the emulator with its test client.
inline void salesforce_connection(const testing::TempDir& home, const std::string& name, const std::string& url,
                                  const std::string& bulk = "auto") {
    testing::write_file(home / "secrets/id", "test-client-id");
    testing::write_file(home / "secrets/secret", "test-client-secret");
    testing::write_file(home / ("manifests/" + name + ".json"),
                        R"({"connection": ")" + name + R"(", "plugin": {"id": "salesforce"}, "bulk": {"mode": ")" + bulk +
                            R"("}, "config": {"login_url": ")" + url + R"(", "auth": "client_credentials"},
                            "credentials": {"client_id": {"file": "../secrets/id"}, "client_secret": {"file": "../secrets/secret"}}})");
}

// One module of the home run in this process, as `crmsync run` runs it, and how long it took.
struct Timed {
    crmsync::RunReport report;
    double seconds = 0;
};
inline std::optional<Timed> run_module(const testing::TempDir& home, const std::string& module) {
    crmsync::keep_freed_memory();  // as crmsync's main does first thing
    crmsync::Environment env;
    env.home = home.str();
    env.manifest_dirs = {home / "manifests"};
    env.plugin_dirs = {CRMSYNC_PLUGIN_DIR, CRMSYNC_TEST_PLUGIN_DIR};
    crmsync::SystemClock clock;
    std::atomic<bool> cancel{false};
    crmsync::Diagnostics quiet(nullptr, crmsync::Level::error);
    crmsync::Catalog catalog(env, quiet, clock);
    auto instances = catalog.instantiate_module(module);
    auto store = catalog.open_store();
    if (!instances || !store) {
        std::fprintf(stderr, "bench: %s\n", (!instances ? instances.status() : store.status()).message().c_str());
        return std::nullopt;
    }
    auto& mi = instances.value();
    crmsync::Pipeline pipeline(*store.value(), crmsync::ModuleBinding{*mi.module, *mi.connection, *mi.source, *mi.crm}, clock,
                               cancel, quiet);
    crmsync::RunOptions options;
    options.lease_holder = "bench";
    auto started = std::chrono::steady_clock::now();
    Timed timed{pipeline.run(options), 0};
    timed.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    return timed;
}

// This process's peak resident memory so far, in MB.
inline double peak_rss_mb() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return usage.ru_maxrss / 1024.0;
}

// Runs `make` in a child process and waits for it: inputs made there (a large seed file)
// leave this process's peak memory to crmsync.
inline void make_in_child(const std::function<void()>& make) {
    pid_t child = fork();
    if (child == 0) {
        make();
        _exit(0);
    }
    waitpid(child, nullptr, 0);
}

// What a baseline run in a child process reports back: so that its memory is its own.
struct ChildFigures {
    int64_t records = 0;
    double seconds = 0;
    int64_t calls = 0;
    double cpu_seconds = 0;  // user + system time of the work (filled in by in_child)
};

// This process's CPU time so far in the kernel (system), in seconds.
inline double system_cpu_seconds() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return usage.ru_stime.tv_sec + usage.ru_stime.tv_usec / 1e6;
}
// This process's page faults so far that the kernel met without I/O (fresh memory first
// touched): each costs the kernel several microseconds on a virtual machine.
inline int64_t minor_faults() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return usage.ru_minflt;
}
// This process's CPU time so far (user + system), in seconds.
inline double cpu_seconds() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return usage.ru_utime.tv_sec + usage.ru_stime.tv_sec + (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}
inline std::optional<ChildFigures> in_child(const std::function<ChildFigures()>& work) {
    int out[2];
    if (pipe(out) != 0) return std::nullopt;
    pid_t child = fork();
    if (child == 0) {
        close(out[0]);
        const double cpu_before = cpu_seconds();
        ChildFigures f = work();
        std::string line = std::to_string(f.records) + " " + std::to_string(f.seconds) + " " + std::to_string(f.calls) + " " +
                           std::to_string(cpu_seconds() - cpu_before);
        _exit(write(out[1], line.data(), line.size()) < 0 ? 1 : 0);
    }
    close(out[1]);
    char buf[128] = {};
    ssize_t n = read(out[0], buf, sizeof buf - 1);
    close(out[0]);
    int status = 0;
    waitpid(child, &status, 0);
    ChildFigures f;
    long long records = 0, calls = 0;
    if (n <= 0 || std::sscanf(buf, "%lld %lf %lld %lf", &records, &f.seconds, &calls, &f.cpu_seconds) != 4 || f.seconds <= 0)
        return std::nullopt;
    f.records = records;
    f.calls = calls;
    return f;
}

}  // namespace bench
