#pragma once
// What the benchmarks share: child processes (the Salesforce emulator, crmsync serve) started
// with their first line of output read, and a home's salesforce connection to the emulator.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

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

}  // namespace bench
