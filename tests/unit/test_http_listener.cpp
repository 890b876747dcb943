// serve's HTTP listener at its limits, over real sockets on 127.0.0.1.
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <mutex>
#include <thread>

#include "loopback_client.h"
#include "serve/http_listener.h"

using crmsync::HttpAnswer;
using crmsync::HttpListener;
using crmsync::IncomingRequest;
using crmsync::ListenerLimits;

namespace {

struct Listener {
    std::mutex mutex;
    std::map<std::string, int> refused;
    std::atomic<int> handled{0};
    HttpListener http;
    explicit Listener(ListenerLimits limits)
        : http(
              [this](const IncomingRequest& r) {
                  ++handled;
                  return HttpAnswer{200, "text/plain", r.method + " " + r.target + " " + r.header("x-test") + " " + r.body};
              },
              limits,
              [this](const std::string& reason) {
                  std::lock_guard<std::mutex> lock(mutex);
                  ++refused[reason];
              }) {
        REQUIRE(http.start("127.0.0.1", 0));
    }
    int refusals(const std::string& reason) {
        std::lock_guard<std::mutex> lock(mutex);
        return refused[reason];
    }
};

// A client socket; reads wait at most 10 s (a guard against a hang, not a timing check).
struct Client {
    int fd = -1;
    explicit Client(int port) : fd(testing::connect_loopback(port, 10)) { REQUIRE(fd >= 0); }
    ~Client() { close(fd); }
    bool send_text(const std::string& text) const {
        return ::send(fd, text.data(), text.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(text.size());
    }
    // Everything until the server closes (or the guard runs out).
    std::string read_all() const {
        std::string out;
        char buffer[4096];
        ssize_t n;
        while ((n = recv(fd, buffer, sizeof buffer, 0)) > 0) out.append(buffer, static_cast<size_t>(n));
        return out;
    }
    // Reads until `marker` has arrived.
    std::string read_until(const std::string& marker) const {
        std::string out;
        char buffer[4096];
        ssize_t n;
        while (out.find(marker) == std::string::npos && (n = recv(fd, buffer, sizeof buffer, 0)) > 0)
            out.append(buffer, static_cast<size_t>(n));
        return out;
    }
};

bool eventually(const std::function<bool()>& condition) {
    for (int i = 0; i < 400; ++i) {
        if (condition()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    return condition();
}

ListenerLimits small_limits() {
    ListenerLimits limits;
    limits.header_timeout = std::chrono::milliseconds(300);
    limits.body_timeout = std::chrono::milliseconds(300);
    limits.max_body = 100;
    limits.max_per_client = 3;
    return limits;
}

}  // namespace

TEST_CASE("http listener: a request is answered, and keep-alive answers the next one on the same connection") {
    Listener l(small_limits());
    Client c(l.http.port());
    REQUIRE(c.send_text("POST /x?y=1 HTTP/1.1\r\nHost: a\r\nX-Test: hello\r\nContent-Length: 4\r\n\r\nbody"));
    CHECK_THAT(c.read_until("body"), Catch::Contains("200 OK") && Catch::Contains("POST /x?y=1 hello body"));
    REQUIRE(c.send_text("GET /z HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"));
    CHECK_THAT(c.read_all(), Catch::Contains("GET /z  "));
    CHECK(l.handled == 2);
}

TEST_CASE("http listener: a client that never finishes its header is cut off at the deadline") {
    Listener l(small_limits());
    Client slow(l.http.port());
    REQUIRE(slow.send_text("POST /hooks/x HTTP/1.1\r\nHo"));
    CHECK(slow.read_all().empty());  // closed by the server, nothing answered
    // The socket closes as the deadline passes; the count follows a moment later.
    CHECK(eventually([&] { return l.refusals("timeout") == 1; }));
    Client body(l.http.port());
    REQUIRE(body.send_text("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 50\r\n\r\nonly part"));
    CHECK(body.read_all().empty());
    CHECK(eventually([&] { return l.refusals("timeout") == 2; }));
    CHECK(l.handled == 0);
}

TEST_CASE("http listener: one address gets a bounded number of connections, and its slots come back") {
    auto limits = small_limits();
    limits.header_timeout = std::chrono::seconds(30);  // the idle three stay until they close
    Listener l(limits);
    auto idle = std::make_unique<std::vector<std::unique_ptr<Client>>>();
    for (int i = 0; i < 3; ++i) idle->push_back(std::make_unique<Client>(l.http.port()));
    // Each is taken once the server has accepted it; the fourth is over the bound.
    REQUIRE(eventually([&] {
        Client probe(l.http.port());
        probe.send_text("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        return probe.read_all().empty() && l.refusals("too_many_connections") >= 1;
    }));
    idle.reset();  // the three go away; new connections are served again
    CHECK(eventually([&] {
        Client c(l.http.port());
        c.send_text("GET /again HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
        return c.read_all().find("GET /again") != std::string::npos;
    }));
}

TEST_CASE("http listener: a body over the limit gets 413, readable while the client is still sending") {
    Listener l(small_limits());
    Client c(l.http.port());
    REQUIRE(c.send_text("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n"));
    c.send_text(std::string(100000, 'x'));
    shutdown(c.fd, SHUT_WR);
    CHECK_THAT(c.read_all(), Catch::StartsWith("HTTP/1.1 413"));
    CHECK(l.refusals("too_large") == 1);
    CHECK(l.handled == 0);
}

TEST_CASE("http listener: a request that is not HTTP gets 400 and is not handled") {
    Listener l(small_limits());
    Client c(l.http.port());
    REQUIRE(c.send_text("HELLO THERE\r\n\r\n"));
    CHECK_THAT(c.read_all(), Catch::StartsWith("HTTP/1.1 400"));
    Client huge_header(l.http.port());
    REQUIRE(huge_header.send_text("GET / HTTP/1.1\r\nX-Big: " + std::string(20000, 'a') + "\r\n\r\n"));
    CHECK_THAT(huge_header.read_all(), Catch::StartsWith("HTTP/1.1 431"));
    CHECK(l.refusals("bad_request") == 2);
    CHECK(l.handled == 0);
}

TEST_CASE("http listener: stop closes every connection and refuses new ones") {
    auto l = std::make_unique<Listener>(small_limits());
    int port = l->http.port();
    Client open(port);
    l->http.stop();
    CHECK(open.read_all().empty());
    l.reset();
    int fd = testing::connect_loopback(port);
    CHECK(fd < 0);
    if (fd >= 0) close(fd);
}
