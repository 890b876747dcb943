// crmsync serve as an operator runs it: a real process, real HTTP on 127.0.0.1.
#include <fcntl.h>
#include <httplib.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <SQLiteCpp/SQLiteCpp.h>
#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <regex>
#include <thread>

#include "digest.h"
#include "emulator.h"
#include "loopback_client.h"
#include "engine/engine.h"
#include "serve_process.h"
#include "test_support.h"

using testing::TempDir;
using testing::write_file;

namespace {

const char* kSecret = "hook-secret-for-tests";

using testing::ServeProcess;

struct Home {
    TempDir dir;
    Home() {
        write_file(dir / "manifests/crm.json", testing::mock_connection(dir / "var/crm.db"));
        write_file(dir / "empty.jsonl", "");
        write_file(dir / "manifests/hooks.json",
                   R"({"module": "hooks", "plugin": {"id": "test-ops"}, "crm": "mock", "schedule": "realtime",
                       "webhook": {"secret": {"env": "CRMSYNC_TEST_HOOK_SECRET"}},
                       "config": {"file": ")" +
                       (dir / "empty.jsonl") + R"("}})");
    }
    // crmsync serve on a free port; its log (stderr) goes to log_path().
    std::unique_ptr<ServeProcess> serve(std::vector<std::string> args = {}) {
        return testing::start_serve(dir.str(), log_path(), {std::string("CRMSYNC_TEST_HOOK_SECRET=") + kSecret}, std::move(args));
    }
    int64_t events(const std::string& soql) {
        mockcrm::EngineOptions o;
        o.database = dir / "var/crm.db";
        o.schema = boost::json::parse(R"({"Event": {"fields": {"CrmSync_Key__c": {"type": "string", "external_id": true}}}})")
                       .as_object();
        return mockcrm::Engine(o).query(soql).total;
    }
    std::string log_path() const { return dir / "serve.log"; }
    std::string log() const { return testing::read_file(log_path()); }
    // A module that takes webhooks, like "hooks" (test-ops reading an empty file).
    void hook_module(const std::string& name, const std::string& secret_env = "CRMSYNC_TEST_HOOK_SECRET") {
        write_file(dir / ("manifests/" + name + ".json"),
                   R"({"module": ")" + name + R"(", "plugin": {"id": "test-ops"}, "crm": "mock", "schedule": "realtime",
                       "webhook": {"secret": {"env": ")" +
                       secret_env + R"("}}, "config": {"file": ")" + (dir / "empty.jsonl") + R"("}})");
    }
    int64_t inbox_depth() {
        SQLite::Database state(dir / "var/state.db", SQLite::OPEN_READONLY, testing::kReadBusyTimeoutMs);
        return state.execAndGet("SELECT COUNT(*) FROM inbox WHERE done = 0").getInt64();
    }
};

using testing::event_body;

httplib::Result post(int port, const std::string& module, const std::string& body, const std::string& secret = kSecret,
                     int64_t skew_s = 0, bool sign = true) {
    return testing::post_hook(port, module, body, secret, skew_s, sign);
}

bool eventually(const std::function<bool()>& condition, int seconds = 20) {
    for (int i = 0; i < seconds * 20; ++i) {
        if (condition()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return condition();
}

// A strict reader of the Prometheus text format: every line a comment or a sample.
std::map<std::string, double> parse_prometheus(const std::string& text) {
    static const std::regex help(R"(# HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*)");
    static const std::regex type(R"(# TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (counter|gauge|histogram|summary|untyped))");
    static const std::regex sample(
        R"(([a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})?) (-?[0-9.eE+-]+|\+Inf|NaN))");
    std::map<std::string, double> out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        std::smatch m;
        if (std::regex_match(line, help) || std::regex_match(line, type)) continue;
        if (!std::regex_match(line, m, sample)) throw std::runtime_error("not Prometheus text: " + line);
        out[m[1]] = std::stod(m[5]);
    }
    return out;
}

}  // namespace

TEST_CASE("serve: every webhook rejection is answered and changes nothing") {
    Home home;
    auto serve = home.serve();
    std::string body = event_body("x1");
    CHECK(post(serve->port, "hooks", body, kSecret, 0, false)->status == 401);          // unsigned
    CHECK(post(serve->port, "hooks", body, "wrong-secret")->status == 401);             // badly signed
    CHECK(post(serve->port, "hooks", body, kSecret, -600)->status == 401);              // stale
    CHECK(post(serve->port, "nobody", body)->status == 404);                            // unknown module
    CHECK(post(serve->port, "hooks", std::string((1 << 20) + 1, ' '))->status == 413);  // over 1 MiB
    CHECK(post(serve->port, "hooks", "[1, 2]")->status == 400);                         // not one event
    CHECK(home.inbox_depth() == 0);
    httplib::Client client("127.0.0.1", serve->port);
    auto metrics = parse_prometheus(client.Get("/metrics")->body);
    CHECK(metrics.at(R"(crmsync_webhook_rejects_total{reason="unsigned"})") == 1);
    CHECK(metrics.at(R"(crmsync_webhook_rejects_total{reason="bad_signature"})") == 1);
    CHECK(metrics.at(R"(crmsync_webhook_rejects_total{reason="stale"})") == 1);
    CHECK(metrics.at(R"(crmsync_webhook_rejects_total{reason="unknown_module"})") == 1);
    CHECK(metrics.at(R"(crmsync_webhook_rejects_total{reason="too_large"})") >= 1);
    CHECK(home.events("SELECT COUNT() FROM Event") == 0);
}

// An open TCP connection to 127.0.0.1:port that has sent `text` and then goes quiet.
struct SlowClient {
    int fd = -1;
    SlowClient(int port, const std::string& text) : fd(testing::connect_loopback(port)) {
        REQUIRE(fd >= 0);
        REQUIRE(send(fd, text.data(), text.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(text.size()));
    }
    ~SlowClient() { close(fd); }
};

TEST_CASE("serve: 64 slow connections do not hold off a signed webhook or /healthz") {
    Home home;
    auto serve = home.serve();
    std::vector<std::unique_ptr<SlowClient>> slow;
    for (int i = 0; i < 32; ++i) slow.push_back(std::make_unique<SlowClient>(serve->port, "POST /hooks/hooks HTTP/1.1\r\nHo"));
    for (int i = 0; i < 32; ++i)
        slow.push_back(std::make_unique<SlowClient>(
            serve->port, "POST /hooks/hooks HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"id\":"));
    // Every one of them is open and waiting on the server, header or body half sent. The
    // webhook must be answered while they stay so: a thread-per-connection server with
    // fewer threads than slow clients answers it only once they time out, seconds later.
    httplib::Client client("127.0.0.1", serve->port);
    client.set_connection_timeout(1);
    client.set_read_timeout(1);
    const std::string body = event_body("under-load");
    const std::string ts = std::to_string(std::time(nullptr));
    httplib::Headers headers{{"X-Crmsync-Timestamp", ts},
                             {"X-Crmsync-Signature", "sha256=" + crmsync::hmac_sha256_hex(kSecret, ts + "." + body)}};
    auto accepted = client.Post("/hooks/hooks", headers, body, "application/json");
    REQUIRE(accepted);
    CHECK(accepted->status == 202);
    auto health = client.Get("/healthz");
    REQUIRE(health);
    CHECK(health->status == 200);
    CHECK(eventually([&] { return home.events("SELECT COUNT() FROM Event WHERE CrmSync_Key__c = 'under-load'") == 1; }));
}

TEST_CASE("serve: a captured signed webhook replayed within its window is a duplicate, not applied again") {
    Home home;
    auto serve = home.serve();
    const std::string body = event_body("r1");
    // The same request, byte for byte, as an attacker who captured it would send it.
    httplib::Headers headers;
    const std::string ts = std::to_string(std::time(nullptr));
    headers.emplace("X-Crmsync-Timestamp", ts);
    headers.emplace("X-Crmsync-Signature", "sha256=" + crmsync::hmac_sha256_hex(kSecret, ts + "." + body));
    httplib::Client client("127.0.0.1", serve->port);
    auto first = client.Post("/hooks/hooks", headers, body, "application/json");
    REQUIRE(first);
    CHECK(first->status == 202);
    CHECK(eventually([&] { return home.events("SELECT COUNT() FROM Event") == 1 && home.inbox_depth() == 0; }));
    for (int i = 0; i < 3; ++i) {
        auto replay = client.Post("/hooks/hooks", headers, body, "application/json");
        REQUIRE(replay);
        CHECK(replay->status == 200);
        CHECK_THAT(replay->body, Catch::Contains("\"duplicate\""));
    }
    CHECK(home.inbox_depth() == 0);
    auto metrics = parse_prometheus(client.Get("/metrics")->body);
    CHECK(metrics.at(R"(crmsync_webhook_rejects_total{reason="duplicate"})") == 3);
    // A timestamp no clock could hold is refused, not overflowed.
    httplib::Headers huge{{"X-Crmsync-Timestamp", "99999999999999999"}, {"X-Crmsync-Signature", "sha256=00"}};
    auto refused = client.Post("/hooks/hooks", huge, body, "application/json");
    REQUIRE(refused);
    CHECK(refused->status == 401);
    CHECK(home.events("SELECT COUNT() FROM Event") == 1);
}

TEST_CASE("serve: an accepted event lands in the CRM, and /metrics and /healthz say so") {
    Home home;
    auto serve = home.serve();
    auto accepted = post(serve->port, "hooks", event_body("e1"));
    REQUIRE(accepted);
    CHECK(accepted->status == 202);
    CHECK(eventually([&] { return home.events("SELECT COUNT() FROM Event WHERE CrmSync_Key__c = 'e1'") == 1; }));
    // The CRM has the record before the run commits and finishes: wait for the run too.
    httplib::Client client("127.0.0.1", serve->port);
    std::map<std::string, double> metrics;
    // Any run (a poll at start) fills the duration histogram: wait for this event's own
    // counters instead.
    CHECK(eventually([&] {
        metrics = parse_prometheus(client.Get("/metrics")->body);
        auto created = metrics.find(R"(crmsync_records_total{module="hooks",outcome="created"})");
        auto depth = metrics.find(R"(crmsync_inbox_depth{module="hooks"})");
        return created != metrics.end() && created->second == 1 && depth != metrics.end() && depth->second == 0;
    }));
    CHECK(metrics.at(R"(crmsync_records_total{module="hooks",outcome="created"})") == 1);
    CHECK(metrics.at(R"(crmsync_inbox_depth{module="hooks"})") == 0);
    CHECK(metrics.count(R"(crmsync_run_duration_seconds_count{module="hooks"})") == 1);
    auto health = client.Get("/healthz");
    CHECK(health->status == 200);
    CHECK_THAT(health->body, Catch::Contains("\"store_writable\":true") && Catch::Contains("\"hooks\""));
    CHECK(serve->terminate() == 0);
}

TEST_CASE("serve: a Salesforce connection signs in once and describes once for many realtime runs") {
    Home home;
    sfemu::Settings settings;
    settings.database = home.dir / "salesforce.db";
    settings.schema = boost::json::parse(R"({"Event": {"fields": {"CrmSync_Key__c": {"type": "string", "length": 255,
                                                                                      "external_id": true}}}})")
                          .as_object();
    sfemu::Emulator sf(settings);
    sf.start();
    write_file(home.dir / "secrets/client_id", "test-client-id");
    write_file(home.dir / "secrets/client_secret", "test-client-secret");
    write_file(home.dir / "manifests/crm.json",
               R"({"connection": "mock", "plugin": {"id": "salesforce"},
                   "config": {"login_url": ")" +
                   sf.base_url() + R"(", "auth": "client_credentials"},
                   "credentials": {"client_id": {"file": "../secrets/client_id"},
                                   "client_secret": {"file": "../secrets/client_secret"}}})");
    auto serve = home.serve();
    auto landed = [&] { return sf.with_engine([](mockcrm::Engine& e) { return e.query("SELECT COUNT() FROM Event").total; }); };
    for (int i = 0; i < 5; ++i) {  // one event a run: each waits for the one before to land
        auto accepted = post(serve->port, "hooks", event_body("s" + std::to_string(i)));
        REQUIRE(accepted);
        CHECK(accepted->status == 202);
        CHECK(eventually([&] { return landed() == i + 1; }));
    }
    CHECK(sf.calls("collections") >= 5);
    // A login and a describe a run would spend the org's allowance of logins at realtime rates.
    CHECK(sf.calls("token") == 1);
    CHECK(sf.calls("describe") == 1);
    CHECK(serve->terminate() == 0);
}

TEST_CASE("serve: an event accepted just before SIGKILL lands exactly once after a restart") {
    Home home;
    {
        auto serve = home.serve();
        for (int i = 0; i < 20; ++i) REQUIRE(post(serve->port, "hooks", event_body("k" + std::to_string(i)))->status == 202);
        serve->kill_now();  // right after the last 202
    }
    auto again = home.serve();
    CHECK(eventually([&] { return home.events("SELECT COUNT() FROM Event") == 20 && home.inbox_depth() == 0; }));
    // A redelivered event (signed anew, so not a replay of the first request) updates the
    // same record, never a second one.
    REQUIRE(post(again->port, "hooks", event_body("k0"), kSecret, -120)->status == 202);
    CHECK(eventually([&] { return home.inbox_depth() == 0; }));
    CHECK(home.events("SELECT COUNT() FROM Event") == 20);
    CHECK(again->terminate() == 0);
}

TEST_CASE("serve: schedules run on time and their due times survive a restart") {
    Home home;
    write_file(home.dir / "manifests/gen.json",
               R"({"module": "gen", "plugin": {"id": "test-source"}, "crm": "mock", "schedule": {"every": "1h"},
                   "config": {"count": 3}})");
    {
        auto serve = home.serve();
        CHECK(eventually([&] {
            SQLite::Database state(home.dir / "var/state.db", SQLite::OPEN_READONLY, testing::kReadBusyTimeoutMs);
            return state.execAndGet("SELECT COUNT(*) FROM runs WHERE module = 'gen' AND status = 'succeeded'").getInt64() == 1;
        }));
        CHECK(serve->terminate() == 0);
    }
    // A module that has never run is due at once: once the restarted serve has run it, its
    // scheduler has been through the due times (modules in name order, gen first), so gen
    // would have run again by then were it due.
    write_file(home.dir / "manifests/zz-probe.json",
               R"({"module": "zz-probe", "plugin": {"id": "test-source"}, "crm": "mock", "schedule": {"every": "1h"},
                   "config": {"count": 1}})");
    auto again = home.serve();
    auto runs_of = [&](const std::string& module) {
        SQLite::Database state(home.dir / "var/state.db", SQLite::OPEN_READONLY, testing::kReadBusyTimeoutMs);
        return state.execAndGet("SELECT COUNT(*) FROM runs WHERE module = '" + module + "' AND status != 'running'").getInt64();
    };
    CHECK(eventually([&] { return runs_of("zz-probe") == 1; }));
    CHECK(runs_of("gen") == 1);  // next due in an hour
}

TEST_CASE("serve: a second runner reports who holds the lease instead of running the module twice") {
    Home home;
    write_file(home.dir / "manifests/slow.json",
               R"({"module": "slow", "plugin": {"id": "test-source"}, "crm": "mock", "schedule": {"every": "1h"},
                   "config": {"count": 600, "page_delay_ms": 1500}})");
    // Watched by a notification, through a stand-in for sendmail that keeps what it is given.
    const std::string sendmail = home.dir / "sendmail";
    write_file(sendmail, "#!/bin/sh\ncat >> \"$0.mail\"\n");
    chmod(sendmail.c_str(), 0755);
    write_file(home.dir / "manifests/ops.json",
               R"({"notification": "ops", "email": {"to": ["ops@example.com"], "from": "crmsync@example.com", "sendmail": ")" +
                   sendmail + R"("}})");
    auto serve = home.serve();
    CHECK(eventually([&] {
        SQLite::Database state(home.dir / "var/state.db", SQLite::OPEN_READONLY, testing::kReadBusyTimeoutMs);
        return state.execAndGet("SELECT COUNT(*) FROM leases WHERE module = 'slow'").getInt64() == 1;
    }));
    auto second =
        testing::run_command({CRMSYNC_BIN, "run", "slow", "--home", home.dir.str()},
                             {std::string("CRMSYNC_PLUGIN_PATH=") + CRMSYNC_PLUGIN_DIR + ":" + CRMSYNC_TEST_PLUGIN_DIR});
    CHECK(second.status == 3);
    CHECK_THAT(second.out, Catch::Contains("slow: busy") && Catch::Contains("lease held by"));
    CHECK(serve->terminate() == 0);  // SIGTERM finishes the batch in hand and exits 0
    // Stopped because serve was asked to stop: logged as that, not as an error, and nobody
    // is told the module failed (nor, after the next run, that it recovered).
    const std::string log = home.log();
    CHECK_THAT(
        log, Catch::Contains(" info slow: stopped — ") && Catch::Contains("interrupted; everything before this point is saved"));
    CHECK_THAT(log, !Catch::Contains(" error slow:"));
    CHECK_FALSE(std::filesystem::exists(sendmail + ".mail"));
}

TEST_CASE("serve: helpdesk-tickets events arriving by webhook land as Events, and actions that create nothing do not") {
    Home home;
    write_file(home.dir / "manifests/helpdesk.json",
               R"({"module": "helpdesk", "plugin": {"id": "helpdesk-tickets"}, "crm": "mock", "schedule": "realtime",
                   "webhook": {"secret": {"env": "CRMSYNC_TEST_HOOK_SECRET"}}, "config": {}})");
    auto serve = home.serve();
    std::string sent =
        R"({"event_id": "w1", "channel": "mail", "action": "sent", "subject": "お見積り", "agent": {"email": "admin@crmsync.mock"},
        "mail": {"draft_saved_at": "2026-11-20T01:00:00Z", "sent_at": "2026-11-20T01:05:00Z", "to": ["someone@customer.jp"]}})";
    std::string cancelled =
        R"({"event_id": "w2", "channel": "mail", "action": "cancelled", "subject": "x", "agent": {"email": "admin@crmsync.mock"}, "mail": {}})";
    REQUIRE(post(serve->port, "helpdesk", sent)->status == 202);
    REQUIRE(post(serve->port, "helpdesk", cancelled)->status == 202);
    CHECK(eventually([&] {
        return home.inbox_depth() == 0 && home.events("SELECT COUNT() FROM Event WHERE Subject = '【メール】お見積り'") == 1;
    }));
    CHECK(home.events("SELECT COUNT() FROM Event") == 1);
    CHECK(serve->terminate() == 0);
}

TEST_CASE("serve: a cs-timeline activity posted in realtime lands as a Task with its file, and its id is written back") {
    Home home;
    write_file(home.dir / "timeline/files/notes.txt", "meeting notes");
    write_file(home.dir / "manifests/timeline.json",
               R"({"module": "timeline", "plugin": {"id": "cs-timeline"}, "crm": "mock", "schedule": "realtime",
                   "webhook": {"secret": {"env": "CRMSYNC_TEST_HOOK_SECRET"}},
                   "config": {"sync_to": "Task", "status": "Completed", "priority": "Normal", "activity_types": ["Meeting"],
                              "sync_attachments": {"since": "2026-11-01T00:00:00Z"},
                              "folder": ")" +
                   (home.dir / "timeline") + R"(", "writeback_file": ")" + (home.dir / "ids.jsonl") + R"("}})");
    auto serve = home.serve();
    std::string activity =
        R"({"id": "rt-1", "type": "Meeting", "subject": "Realtime kick-off", "activity_date": "2026-11-20T10:00:00+09:00",
        "author": {"email": "admin@crmsync.mock"}, "modified_at": "2026-11-20T01:30:00Z",
        "attachments": [{"id": "f1", "name": "notes.txt", "size": 13, "added_at": "2026-11-20T01:00:00Z", "path": "files/notes.txt"}]})";
    REQUIRE(post(serve->port, "timeline", activity)->status == 202);
    CHECK(eventually([&] { return home.inbox_depth() == 0 && home.events("SELECT COUNT() FROM ContentVersion") == 1; }));
    CHECK(home.events("SELECT COUNT() FROM Task WHERE Subject = 'Realtime kick-off' AND Status = 'Completed'") == 1);
    CHECK(eventually([&] {
        return testing::read_file(home.dir / "ids.jsonl").find(R"("activity_id":"rt-1","object":"Task")") != std::string::npos;
    }));
    CHECK(serve->terminate() == 0);
}

TEST_CASE("serve: logs with time and level, each module and problem at start, and one line per run") {
    Home home;
    home.hook_module("no-secret", "CRMSYNC_TEST_UNSET_SECRET");
    auto serve = home.serve();
    REQUIRE(post(serve->port, "hooks", event_body("logged"))->status == 202);
    CHECK(eventually([&] { return home.log().find("hooks: succeeded — fetched 1, created 1") != std::string::npos; }));
    const std::string time = R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z)";
    const std::string log = home.log();
    CHECK(std::regex_search(log, std::regex(time + " info module hooks: schedule realtime, webhooks at POST /hooks/hooks\n")));
    CHECK(std::regex_search(
        log, std::regex(time + " warning no-secret: webhook secret variable CRMSYNC_TEST_UNSET_SECRET is not set")));
    CHECK(std::regex_search(
        log, std::regex(time + " info hooks: succeeded — fetched 1, created 1, .* \\(run \\d+\\) \\[webhook\\]\n")));
    CHECK(std::regex_search(log, std::regex(time + " info listening on http://127.0.0.1:" + std::to_string(serve->port))));
    CHECK(serve->terminate() == 0);
    CHECK_THAT(home.log(), Catch::EndsWith(" info stopped\n"));
}

TEST_CASE("serve: --log-format json writes one object per line, a run's module, status and counts as fields") {
    Home home;
    auto serve = home.serve({"--log-format", "json"});
    REQUIRE(post(serve->port, "hooks", event_body("as-json"))->status == 202);
    boost::json::object run_line;
    CHECK(eventually([&] {
        std::string text = home.log();
        text.erase(text.rfind('\n') + 1);  // a line still being written is read next time
        std::istringstream in(text);
        for (std::string line; std::getline(in, line);) {
            auto o = boost::json::parse(line).as_object();  // every line is one JSON object
            REQUIRE(o.at("time").is_string());
            REQUIRE(o.at("level").is_string());
            REQUIRE(o.at("message").is_string());
            if (o.contains("run") && o.at("counts").at("created") == 1) run_line = o;
        }
        return !run_line.empty();
    }));
    CHECK(run_line.at("module") == "hooks");
    CHECK(run_line.at("status") == "succeeded");
    CHECK(run_line.at("trigger") == "webhook");
    CHECK(run_line.at("level") == "info");
    CHECK(serve->terminate() == 0);
}

namespace {
// The environment a process started with, as the kernel shows it (after any exec).
std::map<std::string, std::string> environment_of(pid_t pid) {
    std::map<std::string, std::string> out;
    std::string all = testing::read_file("/proc/" + std::to_string(pid) + "/environ");
    for (size_t at = 0; at < all.size();) {
        size_t end = all.find('\0', at);
        if (end == std::string::npos) end = all.size();
        std::string entry = all.substr(at, end - at);
        if (auto eq = entry.find('='); eq != std::string::npos) out[entry.substr(0, eq)] = entry.substr(eq + 1);
        at = end + 1;
    }
    return out;
}
}  // namespace

TEST_CASE("serve: its heap is on huge pages when the kernel gives them on request, and an operator's tunables are kept") {
    Home home;
    {
        auto serve = home.serve();
        REQUIRE(post(serve->port, "hooks", event_body("heap"))->status == 202);
        CHECK(eventually([&] { return home.events("SELECT COUNT() FROM Event WHERE CrmSync_Key__c = 'heap'") == 1; }));
        auto env = environment_of(serve->pid);
        // Started again or not, it goes by its own name for ps, top and pkill.
        CHECK(testing::read_file("/proc/" + std::to_string(serve->pid) + "/comm") == "crmsync\n");
#if defined(__SANITIZE_ADDRESS__)
        CHECK(env.count("GLIBC_TUNABLES") == 0);  // its own allocator: nothing to ask glibc
#else
        const std::string thp = testing::read_file("/sys/kernel/mm/transparent_hugepage/enabled");
        if (thp.find("[madvise]") == std::string::npos) {
            WARN("this kernel gives huge pages to all memory or to none: nothing for crmsync to ask");
            CHECK(env.count("GLIBC_TUNABLES") == 0);
        } else {
            CHECK(env["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=1");
            // glibc asked for its heap in huge pages: the kernel marks that memory "hg".
            std::string smaps = testing::read_file("/proc/" + std::to_string(serve->pid) + "/smaps");
            CHECK(std::regex_search(smaps, std::regex("VmFlags:[a-z ]* hg")));
        }
#endif
        CHECK(serve->terminate() == 0);
    }
    auto serve =
        testing::start_serve(home.dir.str(), home.log_path(),
                             {std::string("CRMSYNC_TEST_HOOK_SECRET=") + kSecret, "GLIBC_TUNABLES=glibc.malloc.hugetlb=0"});
    CHECK(environment_of(serve->pid)["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=0");
    CHECK(serve->terminate() == 0);
}

TEST_CASE("serve: SIGHUP reads the manifests again, so a module added after start takes webhooks without a restart") {
    Home home;
    auto serve = home.serve();
    REQUIRE(post(serve->port, "later", event_body("x"))->status == 404);
    // One event accepted and waiting when the reload comes is not dropped by it.
    REQUIRE(post(serve->port, "hooks", event_body("before-reload"))->status == 202);
    home.hook_module("later");
    REQUIRE(kill(serve->pid, SIGHUP) == 0);
    CHECK(eventually([&] {
        return home.log().find("SIGHUP: manifests and plugins read again: 2 module(s); added later") != std::string::npos;
    }));
    auto accepted = post(serve->port, "later", event_body("after-reload"));
    REQUIRE(accepted);
    CHECK(accepted->status == 202);
    CHECK(eventually(
        [&] { return home.events("SELECT COUNT() FROM Event WHERE CrmSync_Key__c IN ('before-reload', 'after-reload')") == 2; }));
    // Removed again: its webhooks are refused, the rest goes on.
    std::filesystem::remove(home.dir / "manifests/later.json");
    REQUIRE(kill(serve->pid, SIGHUP) == 0);
    CHECK(eventually([&] { return home.log().find("removed later") != std::string::npos; }));
    CHECK(post(serve->port, "later", event_body("y"))->status == 404);
    CHECK(post(serve->port, "hooks", event_body("still"))->status == 202);
    CHECK(serve->terminate() == 0);
}

TEST_CASE(
    "serve: /healthz names a module whose last run failed and one overdue, ?strict answers 503, /metrics has last success") {
    Home home;
    // "nightly" cannot be loaded (its config fails the plugin's schema), so it never starts;
    // its last scheduled run was three hours ago, every hour: overdue.
    write_file(home.dir / "manifests/nightly.json",
               R"({"module": "nightly", "plugin": {"id": "test-ops"}, "crm": "mock", "schedule": {"every": "1h"},
                   "config": {"file": "x", "unknown": true}})");
    write_file(home.dir / "manifests/broken.json",
               R"({"module": "broken", "plugin": {"id": "test-ops"}, "crm": "mock", "config": {"file": "x"}})");
    auto serve = home.serve();
    httplib::Client client("127.0.0.1", serve->port);
    const int64_t now_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    {
        SQLite::Database state(home.dir / "var/state.db", SQLite::OPEN_READWRITE, testing::kReadBusyTimeoutMs);
        SQLite::Statement add(
            state, "INSERT INTO runs (module, trigger, started_ms, finished_ms, status, message) VALUES (?, ?, ?, ?, ?, ?)");
        auto row = [&](const char* module, const char* trigger, int64_t started, const char* status, const char* message) {
            add.reset();
            add.bind(1, module), add.bind(2, trigger), add.bind(3, started), add.bind(4, started + 1000), add.bind(5, status),
                add.bind(6, message);
            add.exec();
        };
        row("nightly", "schedule", now_ms - 3 * 3600 * 1000, "succeeded", "");
        row("broken", "manual", now_ms - 7200 * 1000, "succeeded", "");
        row("broken", "manual", now_ms - 600 * 1000, "failed", "the CRM refused the credentials");
    }
    auto health = client.Get("/healthz");
    REQUIRE(health);
    CHECK(health->status == 200);  // the process is alive and its store writable
    auto body = boost::json::parse(health->body).as_object();
    CHECK(body.at("status") == "degraded");
    CHECK(body.at("modules").at("nightly").at("state") == "overdue");
    CHECK(body.at("modules").at("broken").at("state") == "failing");
    CHECK(body.at("modules").at("broken").at("last_success").is_string());
    CHECK_THAT(
        boost::json::serialize(body.at("problems")),
        Catch::Contains("broken: last run failed: the CRM refused the credentials") && Catch::Contains("nightly: due since"));
    auto strict = client.Get("/healthz?strict");
    REQUIRE(strict);
    CHECK(strict->status == 503);
    auto metrics = parse_prometheus(client.Get("/metrics")->body);
    auto success = metrics.find(R"(crmsync_last_success_timestamp_seconds{module="broken"})");
    REQUIRE(success != metrics.end());
    CHECK(std::abs(success->second - (now_ms - 7200 * 1000 + 1000) / 1000.0) < 1);
    CHECK(serve->terminate() == 0);
}

TEST_CASE("serve: an isolated module whose plugin crashes fails its run, and serve goes on with the others") {
    Home home;
    // "crashy" (first by name) crashes in map; "gen" after it syncs; webhooks still land.
    write_file(home.dir / "manifests/crashy.json",
               R"({"module": "crashy", "plugin": {"id": "test-source"}, "crm": "mock", "schedule": {"every": "1h"},
                   "isolation": "process", "config": {"count": 3, "misbehave": {"in": "map", "how": "crash"}}})");
    write_file(home.dir / "manifests/gen.json",
               R"({"module": "gen", "plugin": {"id": "test-source"}, "crm": "mock", "schedule": {"every": "1h"},
                   "config": {"count": 3}})");
    auto serve = home.serve();
    auto status_of = [&](const std::string& module) -> std::string {
        SQLite::Database state(home.dir / "var/state.db", SQLite::OPEN_READONLY, testing::kReadBusyTimeoutMs);
        SQLite::Statement q(state, "SELECT status FROM runs WHERE module = ? AND status != 'running' ORDER BY id DESC LIMIT 1");
        q.bind(1, module);
        return q.executeStep() ? q.getColumn(0).getString() : "";
    };
    CHECK(eventually([&] { return status_of("gen") == "succeeded"; }));
    CHECK(status_of("crashy") == "failed");
    CHECK_THAT(home.log(), Catch::Contains("plugin test-source crashed (") && Catch::Contains(") in map; the run stopped"));
    REQUIRE(post(serve->port, "hooks", event_body("after-crash"))->status == 202);
    CHECK(eventually([&] { return home.events("SELECT COUNT() FROM Event WHERE CrmSync_Key__c = 'after-crash'") == 1; }));
    CHECK(serve->terminate() == 0);
}

TEST_CASE("serve: a webhook drain that stopped waits before the next, instead of starting again every tick") {
    Home home;
    // The org allows 100 calls a day and the module keeps 99 in reserve: its first calls stop its drain.
    write_file(home.dir / "manifests/crm.json", testing::mock_connection(home.dir / "var/crm.db", 100));
    write_file(home.dir / "manifests/hooks.json",
               R"({"module": "hooks", "plugin": {"id": "test-ops"}, "crm": "mock", "schedule": "manual",
                   "webhook": {"secret": {"env": "CRMSYNC_TEST_HOOK_SECRET"}}, "api_reserve_percent": 99,
                   "config": {"file": ")" +
                   (home.dir / "empty.jsonl") + R"("}})");
    auto serve = home.serve();
    REQUIRE(post(serve->port, "hooks", event_body("w1"))->status == 202);
    auto drains = [&](const char* status) {
        SQLite::Database state(home.dir / "var/state.db", SQLite::OPEN_READONLY, testing::kReadBusyTimeoutMs);
        return state.execAndGet(std::string("SELECT COUNT(*) FROM runs WHERE trigger = 'webhook' AND status = '") + status + "'")
            .getInt64();
    };
    httplib::Client client("127.0.0.1", serve->port);
    auto waits = [&] {
        auto health = client.Get("/healthz");
        return health && health->body.find("\"webhooks_wait_until\"") != std::string::npos;
    };
    REQUIRE(eventually(waits));
    CHECK(drains("stopped") == 1);  // the drain wrote its batch, found the budget under the reserve and stopped
    CHECK_THAT(home.log(), Catch::Contains("hooks: its webhook events wait in the inbox until"));
    REQUIRE(post(serve->port, "hooks", event_body("w2"))->status == 202);
    CHECK(home.inbox_depth() == 1);  // the new event waits: no drain starts during the wait
    CHECK(drains("stopped") == 1);
    // After the wait it tries again: the budget is still under the reserve, so it stops before
    // writing, the event stays in the inbox, and the next wait is longer.
    CHECK(eventually([&] { return drains("stopped") == 2; }, 30));
    CHECK(home.inbox_depth() == 1);
    CHECK(serve->terminate() == 0);
}
