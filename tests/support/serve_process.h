#pragma once
// `crmsync serve` as a real process for end-to-end tests: started on a free loopback port
// (read from its first line), its log appended to a file, signed webhooks posted to it.
#include <fcntl.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "digest.h"

namespace testing {

struct ServeProcess {
    pid_t pid = 0;
    int port = 0;
    ~ServeProcess() { kill_now(); }
    void kill_now() {
        if (pid > 0) {
            kill(pid, SIGKILL);
            waitpid(pid, nullptr, 0);
            pid = 0;
        }
    }
    // SIGTERM, then its exit code once it ended (-1 when it did not within 10 s).
    int terminate() {
        kill(pid, SIGTERM);
        int status = 0;
        for (int i = 0; i < 200 && waitpid(pid, &status, WNOHANG) == 0; ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        if (waitpid(pid, &status, WNOHANG) == 0 && !WIFEXITED(status)) return -1;
        pid = 0;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
};

// Starts `crmsync serve` for `home` with `env` ("NAME=value") added; stderr goes to `log`.
inline std::unique_ptr<ServeProcess> start_serve(const std::string& home, const std::string& log,
                                                 const std::vector<std::string>& env, std::vector<std::string> args = {}) {
    int out[2];
    REQUIRE(pipe(out) == 0);
    auto p = std::make_unique<ServeProcess>();
    args.insert(args.begin(), {CRMSYNC_BIN, "serve", "--listen", "127.0.0.1:0"});
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> environment = env;
    environment.push_back(std::string("CRMSYNC_PLUGIN_PATH=") + CRMSYNC_PLUGIN_DIR + ":" + CRMSYNC_TEST_PLUGIN_DIR);
    environment.push_back("CRMSYNC_HOME=" + home);
    p->pid = fork();
    if (p->pid == 0) {
        dup2(out[1], STDOUT_FILENO);
        int err = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (err >= 0) dup2(err, STDERR_FILENO);
        for (auto& e : environment) putenv(e.data());
        unsetenv("CRMSYNC_LOG");
        execv(CRMSYNC_BIN, argv.data());
        _exit(127);
    }
    close(out[1]);
    char line[128] = {};
    ssize_t n = read(out[0], line, sizeof line - 1);
    close(out[0]);
    REQUIRE(n > 0);
    std::string text(line, static_cast<size_t>(n));
    p->port = std::stoi(text.substr(text.rfind(':') + 1));
    return p;
}

// POSTs `body` to /hooks/MODULE signed with `secret` (X-Crmsync-Timestamp/-Signature),
// its timestamp `skew_s` seconds off; unsigned when `sign` is false.
inline httplib::Result post_hook(int port, const std::string& module, const std::string& body, const std::string& secret,
                                 int64_t skew_s = 0, bool sign = true) {
    httplib::Client client("127.0.0.1", port);
    httplib::Headers headers;
    if (sign) {
        std::string ts = std::to_string(
            std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count() +
            skew_s);
        headers.emplace("X-Crmsync-Timestamp", ts);
        headers.emplace("X-Crmsync-Signature", "sha256=" + crmsync::hmac_sha256_hex(secret, ts + "." + body));
    }
    return client.Post(("/hooks/" + module).c_str(), headers, body, "application/json");
}

// A webhook event for test-ops: one Event upserted under `key`.
inline std::string event_body(const std::string& key) {
    return R"({"id": ")" + key + R"(", "ops": [{"object": "Event", "action": "upsert", "key": ")" + key +
           R"(", "fields": {"Subject": "webhook", "StartDateTime": "2026-11-20T01:00:00Z", "DurationInMinutes": 5}}]})";
}

}  // namespace testing
