#pragma once
// A PostgreSQL server a test (or a benchmark) starts for itself in a temporary folder
// (initdb + pg_ctl, on a Unix socket in that folder, no TCP) and stops when done: never a
// server the test did not start. PostgreSQL refuses to run as root, so under root (as in CI)
// the server runs as the `postgres` user that Debian's package creates. A step that fails
// throws, with what the server said (a test reports it as its failure).
#include <pwd.h>
#include <unistd.h>

#include <filesystem>
#include <stdexcept>
#include <string>

#include "test_support.h"

namespace testing {

class TestPostgres {
public:
    TestPostgres() {
        bin_ = server_bin();
        must(!bin_.empty(), "no PostgreSQL server in /usr/lib/postgresql (scripts/setup installs Debian's postgresql)");
        if (geteuid() == 0) {
            passwd* pg = getpwnam("postgres");
            must(pg != nullptr, "no postgres user to run the server as (Debian's postgresql package makes it)");
            std::filesystem::permissions(dir_.path(), std::filesystem::perms::all);
            must(chown(dir_.path().c_str(), pg->pw_uid, pg->pw_gid) == 0, "cannot hand the test folder to postgres");
            as_ = {"/usr/sbin/runuser", "-u", "postgres", "--"};
        }
        auto init = server({bin_ + "/initdb", "-D", dir_ / "data", "-A", "trust", "-U", "crmsync", "-E", "UTF8", "--no-sync"});
        must(init.status == 0, "initdb failed: " + init.out + init.err);
        start();
    }
    ~TestPostgres() {
        if (running_) server({bin_ + "/pg_ctl", "-D", dir_ / "data", "-m", "immediate", "-w", "stop"});
    }
    // Starts the server (again, after stop()), on the same socket.
    void start() {
        auto started = server({bin_ + "/pg_ctl", "-D", dir_ / "data", "-l", dir_ / "server.log", "-w", "-t", "60", "-o",
                               "-k " + dir_.str() + " -c listen_addresses='' -c fsync=off -c max_connections=80", "start"});
        must(started.status == 0, "pg_ctl start failed: " + started.out + started.err + read_file(dir_ / "server.log"));
        running_ = true;
    }
    // Stops the server as a crash or failover would for its clients: their connections end.
    void stop() {
        auto stopped = server({bin_ + "/pg_ctl", "-D", dir_ / "data", "-m", "fast", "-w", "stop"});
        must(stopped.status == 0, "pg_ctl stop failed: " + stopped.out + stopped.err);
        running_ = false;
    }
    TestPostgres(const TestPostgres&) = delete;
    TestPostgres& operator=(const TestPostgres&) = delete;

    // A libpq connection string to database `dbname` (made on first use).
    std::string conninfo(const std::string& dbname = "postgres") {
        if (dbname != "postgres") {
            auto made = server({bin_ + "/createdb", "-h", dir_.str(), "-U", "crmsync", dbname});
            (void)made;  // already there is fine
        }
        return "host=" + dir_.str() + " user=crmsync dbname=" + dbname;
    }

private:
    static void must(bool ok, const std::string& why) {
        if (!ok) throw std::runtime_error("test PostgreSQL: " + why);
    }
    // The newest server Debian installed: /usr/lib/postgresql/<major>/bin.
    static std::string server_bin() {
        std::string best;
        int best_major = 0;
        std::error_code ec;
        for (const auto& entry : std::filesystem::directory_iterator("/usr/lib/postgresql", ec)) {
            int major = std::atoi(entry.path().filename().c_str());
            if (major > best_major && std::filesystem::exists(entry.path() / "bin/initdb")) {
                best_major = major;
                best = (entry.path() / "bin").string();
            }
        }
        return best;
    }
    Process server(std::vector<std::string> argv) {
        argv.insert(argv.begin(), as_.begin(), as_.end());
        return run_command(argv);
    }
    TempDir dir_;
    std::string bin_;
    std::vector<std::string> as_;
    bool running_ = false;
};

// One server for the whole test process, started on first use; each caller gets a database
// of its own on it.
inline TestPostgres& shared_postgres() {
    static TestPostgres server;
    return server;
}
inline std::string fresh_postgres_database() {
    static int made = 0;
    return shared_postgres().conninfo("t" + std::to_string(++made));
}

}  // namespace testing
