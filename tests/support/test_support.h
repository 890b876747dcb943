#pragma once
// Helpers for tests: a temporary home folder, file writing, and running the crmsync
// executable as an operator would (a real child process, its output captured).
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace testing {

namespace fs = std::filesystem;

// How long a test reading a SQLite file that a running crmsync writes waits on its lock
// (WAL readers can still meet a brief SQLITE_BUSY while the writer checkpoints).
inline constexpr int kReadBusyTimeoutMs = 10'000;

class TempDir {
public:
    TempDir() {
        std::random_device rd;
        path_ = fs::temp_directory_path() / ("crmsync-test-" + std::to_string(getpid()) + "-" + std::to_string(rd()));
        fs::create_directories(path_);
    }
    ~TempDir() {
        std::error_code ec;
        if (!std::getenv("CRMSYNC_KEEP_TEST_DIRS")) fs::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    const fs::path& path() const { return path_; }
    std::string str() const { return path_.string(); }
    std::string operator/(const std::string& p) const { return (path_ / p).string(); }

private:
    fs::path path_;
};

inline void write_file(const std::string& path, const std::string& text) {
    fs::create_directories(fs::path(path).parent_path());
    std::ofstream(path, std::ios::binary) << text;
}

inline std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

// A mock-crm connection manifest with the crmsync key field on Task and Event. Batches
// stay at 200 unless a test asks for bulk loading (bulk_mode "auto" or "always").
inline std::string mock_connection(const std::string& database, int64_t daily_limit = 100000,
                                   const std::string& extra_config = "", const std::string& bulk_mode = "never") {
    return R"({"connection": "mock", "plugin": {"id": "mock-crm", "version": "^1.0"}, "bulk": {"mode": ")" + bulk_mode + R"("},
      "config": {"database": ")" +
           database + R"(", "daily_api_limit": )" + std::to_string(daily_limit) + extra_config + R"(,
        "schema": {"Task": {"fields": {"CrmSync_Key__c": {"type": "string", "length": 255, "external_id": true, "unique": true}}},
                   "Event": {"fields": {"CrmSync_Key__c": {"type": "string", "length": 255, "external_id": true, "unique": true}}},
                   "ContentVersion": {"fields": {"CrmSync_Key__c": {"type": "string", "length": 255, "external_id": true, "unique": true}}}}}})";
}

struct Process {
    int status = -1;  // exit code, or -signal when killed
    std::string out, err;
};

// Runs a command with extra environment, capturing stdout and stderr.
inline Process run_command(const std::vector<std::string>& argv, const std::vector<std::string>& env = {}) {
    TempDir tmp;
    std::string out_path = tmp / "out", err_path = tmp / "err";
    std::fflush(nullptr);  // else the child's freopen writes what this process had buffered a second time
    pid_t pid = fork();
    if (pid < 0) return Process{-1, "", std::string("fork failed: ") + std::strerror(errno)};
    if (pid == 0) {
        for (const auto& e : env) putenv(const_cast<char*>(e.c_str()));
        FILE* o = freopen(out_path.c_str(), "w", stdout);
        FILE* r = freopen(err_path.c_str(), "w", stderr);
        (void)o;
        (void)r;
        std::vector<char*> args;
        for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        execv(args[0], args.data());
        std::fprintf(stderr, "cannot run %s: %s\n", args[0], std::strerror(errno));
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return Process{-1, "", std::string("waitpid failed: ") + std::strerror(errno)};
    Process p;
    p.status = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    p.out = read_file(out_path);
    p.err = read_file(err_path);
    return p;
}

inline std::string crmsync_bin() { return CRMSYNC_BIN; }

// `crmsync ARGS --home HOME` as an operator runs it, seeing the plugins in `plugin_path` only
// (none of the build's shipped ones) and no home or manifest folder from the environment.
inline Process crmsync_at(const std::string& home, std::vector<std::string> args, const std::string& plugin_path,
                          std::vector<std::string> env = {}) {
    args.insert(args.begin(), crmsync_bin());
    args.push_back("--home");
    args.push_back(home);
    env.insert(env.end(),
               {"CRMSYNC_PLUGIN_PATH=" + plugin_path, "CRMSYNC_PLUGIN_SYSTEM_PATH=", "CRMSYNC_HOME=", "CRMSYNC_MANIFEST_PATH="});
    return run_command(args, env);
}

}  // namespace testing
