#pragma once
// A PostgreSQL server a test starts for itself in a temporary folder (initdb + pg_ctl, on a
// Unix socket in that folder, no TCP) and stops when done: never a server the test did not
// start. PostgreSQL refuses to run as root, so under root (as in CI) the server runs as the
// `postgres` user that Debian's package creates.
#include <catch2/catch.hpp>
#include <pwd.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "test_support.h"

namespace testing {

class TestPostgres {
public:
    TestPostgres() {
        bin_ = server_bin();
        REQUIRE_FALSE(bin_.empty());  // scripts/setup installs Debian's postgresql
        if (geteuid() == 0) {
            passwd* pg = getpwnam("postgres");
            REQUIRE(pg);
            std::filesystem::permissions(dir_.path(), std::filesystem::perms::all);
            REQUIRE(chown(dir_.path().c_str(), pg->pw_uid, pg->pw_gid) == 0);
            as_ = {"/usr/sbin/runuser", "-u", "postgres", "--"};
        }
        auto init = server({bin_ + "/initdb", "-D", dir_ / "data", "-A", "trust", "-U", "crmsync", "-E", "UTF8", "--no-sync"});
        INFO(init.out + init.err);
        REQUIRE(init.status == 0);
        auto started = server({bin_ + "/pg_ctl", "-D", dir_ / "data", "-l", dir_ / "server.log", "-w", "-t", "60", "-o",
                               "-k " + dir_.str() + " -c listen_addresses='' -c fsync=off -c max_connections=50", "start"});
        INFO(started.out + started.err + read_file(dir_ / "server.log"));
        REQUIRE(started.status == 0);
        running_ = true;
    }
    ~TestPostgres() {
        if (running_) server({bin_ + "/pg_ctl", "-D", dir_ / "data", "-m", "immediate", "-w", "stop"});
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

}  // namespace testing
