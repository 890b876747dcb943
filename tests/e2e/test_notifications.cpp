// Notifications as an operator meets them: `crmsync run` tells a webhook receiver on
// loopback (signed, Slack-shaped) and a mail program what changed, once per change.
#include <httplib.h>
#include <sys/stat.h>

#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "digest.h"
#include "test_support.h"

using testing::TempDir;
using testing::write_file;
namespace json = boost::json;

namespace {

const char* kSecret = "notify-secret-for-tests";

// An HTTP receiver on 127.0.0.1 that keeps what it is sent and answers `status`.
struct Receiver {
    struct Request {
        std::string body, timestamp, signature;
    };
    httplib::Server server;
    std::thread thread;
    std::mutex mutex;
    std::vector<Request> received;
    int status = 200;
    int port = 0;
    // With hold_first, the first request is kept unanswered until release().
    bool hold_first = false, released = false;
    std::condition_variable changed;
    explicit Receiver(int on_port = 0) {
        server.Post("/alerts", [this](const httplib::Request& req, httplib::Response& res) {
            std::unique_lock<std::mutex> lock(mutex);
            received.push_back(
                {req.body, req.get_header_value("X-Crmsync-Timestamp"), req.get_header_value("X-Crmsync-Signature")});
            changed.notify_all();
            if (hold_first && received.size() == 1) changed.wait(lock, [this] { return released; });
            res.status = status;
        });
        port = on_port ? (server.bind_to_port("127.0.0.1", on_port) ? on_port : -1) : server.bind_to_any_port("127.0.0.1");
        REQUIRE(port > 0);
        // Bound already: a connection waits in the backlog until the thread accepts it.
        thread = std::thread([this] { server.listen_after_bind(); });
    }
    ~Receiver() {
        release();
        // stop() before the thread is listening would be lost, and join() would wait forever.
        while (!server.is_running()) std::this_thread::yield();
        server.stop();
        thread.join();
    }
    std::vector<Request> requests() {
        std::lock_guard<std::mutex> lock(mutex);
        return received;
    }
    void wait_for(size_t count) {
        std::unique_lock<std::mutex> lock(mutex);
        changed.wait(lock, [&] { return received.size() >= count; });
    }
    void release() {
        std::lock_guard<std::mutex> lock(mutex);
        released = true;
        changed.notify_all();
    }
};

struct Home {
    TempDir dir;
    Home() {
        write_file(dir / "manifests/crm.json", testing::mock_connection(dir / "var/crm.db"));
        module();
    }
    void module(const std::string& extra = "") {
        write_file(dir / "manifests/tasks.json",
                   R"({"module": "tasks", "plugin": {"id": "example-jsonl"}, "crm": "mock")" + extra +
                       R"(, "config": {"folder": ")" + (dir / "in") +
                       R"(", "object": "Task", "fields": {"Subject": "subject", "Status": "status"}}})");
    }
    void notify(const std::string& channel, const std::string& extra = "") {
        write_file(dir / "manifests/ops.json", R"({"notification": "ops", )" + channel + extra + "}");
    }
    testing::Process run() {
        return testing::crmsync_at(dir.str(), {"run", "tasks"}, CRMSYNC_PLUGIN_DIR,
                                   {std::string("CRMSYNC_TEST_NOTIFY_SECRET=") + kSecret});
    }
};

std::string webhook_to(int port) {
    return R"("webhook": {"url": "http://127.0.0.1:)" + std::to_string(port) +
           R"(/alerts", "secret": {"env": "CRMSYNC_TEST_NOTIFY_SECRET"}})";
}

}  // namespace

TEST_CASE("notifications: a failing module is told once, signed and Slack-shaped, and its recovery once") {
    Home home;  // its export folder does not exist yet: every run fails
    Receiver receiver;
    home.notify(webhook_to(receiver.port));
    CHECK(home.run().status == 2);
    auto told = receiver.requests();
    REQUIRE(told.size() == 1);
    // Signed as crmsync's own webhooks are, so a receiver can check it came from us.
    CHECK(told[0].signature == "sha256=" + crmsync::hmac_sha256_hex(kSecret, told[0].timestamp + "." + told[0].body));
    auto event = json::parse(told[0].body).as_object();
    CHECK(event.at("event") == "failed");
    CHECK(event.at("module") == "tasks");
    CHECK(event.at("status") == "failed");
    CHECK_THAT(std::string(event.at("text").as_string()), Catch::StartsWith("crmsync: tasks failed (run 1 on ") &&
                                                              Catch::Contains("export folder") && Catch::Contains("not found"));

    CHECK(home.run().status == 2);  // still failing: nobody is told twice
    CHECK(receiver.requests().size() == 1);

    write_file(home.dir / "in/a.jsonl", R"({"id": "1", "subject": "now it works", "status": "Completed"})");
    CHECK(home.run().status == 0);
    told = receiver.requests();
    REQUIRE(told.size() == 2);
    event = json::parse(told[1].body).as_object();
    CHECK(event.at("event") == "recovered");
    CHECK_THAT(std::string(event.at("text").as_string()), Catch::StartsWith("crmsync: tasks recovered: succeeded (run 3 on "));
    CHECK(home.run().status == 0);  // still fine: nothing new to tell
    CHECK(receiver.requests().size() == 2);
}

TEST_CASE("notifications: a change seen by two runs while the first is still telling it is told once") {
    Home home;  // its export folder does not exist: every run fails
    Receiver receiver;
    receiver.hold_first = true;  // the first run's message is on its way while the second run ends
    home.notify(webhook_to(receiver.port));
    testing::Process first;
    std::thread telling([&] { first = home.run(); });
    receiver.wait_for(1);
    // Another worker's run of the module fails the same way meanwhile: the change is the
    // first one's to tell.
    auto second = home.run();
    CHECK(second.status == 2);
    receiver.release();
    telling.join();
    CHECK(first.status == 2);
    auto told = receiver.requests();
    REQUIRE(told.size() == 1);
    CHECK(json::parse(told[0].body).at("event") == "failed");
}

TEST_CASE("notifications: errors over the threshold and the API budget under the reserve, by mail through sendmail") {
    Home home;
    // A stand-in for the system's sendmail: keeps its arguments and the message it is given.
    const std::string sendmail = home.dir / "sendmail";
    write_file(sendmail, "#!/bin/sh\necho \"$@\" >> \"$0.args\"\ncat >> \"$0.mail\"\necho '--' >> \"$0.mail\"\n");
    chmod(sendmail.c_str(), 0755);
    home.notify(R"("email": {"to": ["ops@example.com", "cs@example.com"], "from": "crmsync@example.com", "sendmail": ")" +
                    sendmail + R"("})",
                R"(, "errors_threshold": 2, "modules": ["tasks"])");
    write_file(home.dir / "in/a.jsonl", R"({"id": "1", "subject": "fine", "status": "Completed"}
{"id": "2", "subject": "bad", "status": "Bogus"}
)");
    CHECK(home.run().status == 1);
    CHECK_FALSE(std::filesystem::exists(sendmail + ".mail"));  // one failed record: under the threshold of 2

    write_file(home.dir / "in/b.jsonl", R"({"id": "3", "subject": "bad too", "status": "Bogus"}
{"id": "4", "subject": "bad three", "status": "Bogus"}
)");
    CHECK(home.run().status == 1);
    std::string mail = testing::read_file(sendmail + ".mail");
    CHECK(testing::read_file(sendmail + ".args") == "-t -oi\n");
    CHECK_THAT(mail, Catch::StartsWith("From: crmsync@example.com\nTo: ops@example.com, cs@example.com\n"
                                       "Subject: [crmsync] tasks: errors\n") &&
                         Catch::Contains("crmsync: tasks: 2 record(s) failed (run 2 on ") &&
                         Catch::Contains("see `crmsync errors tasks`"));

    // The CRM's daily budget: 100 calls, the module keeps 99% in reserve, so one run reaches it.
    write_file(home.dir / "manifests/crm.json", testing::mock_connection(home.dir / "var/crm.db", 100));
    home.module(R"(, "api_reserve_percent": 99)");
    write_file(home.dir / "in/c.jsonl", R"({"id": "5", "subject": "one more", "status": "Completed"})");
    home.run();
    mail = testing::read_file(sendmail + ".mail");
    CHECK_THAT(mail, Catch::Contains("Subject: [crmsync] tasks: budget\n") &&
                         Catch::Contains("the CRM's daily API budget is under the module's reserve ("));
}

TEST_CASE("notifications: a receiver that is down changes no exit code, and the change is told after the next run") {
    Home home;
    int port = 0;
    {
        Receiver probe;  // a free port, closed again before the run
        port = probe.port;
    }
    home.notify(webhook_to(port));
    auto first = home.run();
    CHECK(first.status == 2);  // the run's own code: its folder is missing
    CHECK_THAT(first.err, Catch::Contains("notification ops: ") && Catch::Contains("told again after the next run") &&
                              !Catch::Contains(kSecret));
    Receiver receiver(port);
    receiver.status = 500;  // answered, but not taken: told again too
    home.run();
    CHECK(receiver.requests().size() == 1);
    receiver.status = 200;
    home.run();
    auto told = receiver.requests();
    REQUIRE(told.size() == 2);
    CHECK(json::parse(told[1].body).at("event") == "failed");
    home.run();
    CHECK(receiver.requests().size() == 2);
}
