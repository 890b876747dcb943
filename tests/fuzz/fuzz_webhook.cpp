// Fuzz target: serve's webhook handling end to end, over a real socket on 127.0.0.1: the HTTP
// listener, the signature and timestamp checks, the body check and the inbox. The first byte
// picks how the rest is sent:
//   0: as raw bytes on the connection (the HTTP parser's limits)
//   1: as the body of a correctly signed request (what gets past the signature)
//   2: as "<timestamp>\n<body>", signed with that timestamp (the timestamp's range)
// Every request is answered with a status the README lists, or the connection is closed;
// nothing makes the server fail (500), hang or crash.
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <string>

#include "catalog.h"
#include "digest.h"
#include "loopback_client.h"
#include "serve/server.h"
#include "fuzz_check.h"

namespace {

const char* kSecret = "fuzz-secret";

void write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

struct Serve {
    std::string home;
    crmsync::SystemClock clock;
    crmsync::Diagnostics quiet{nullptr, crmsync::Level::error};
    std::atomic<bool> stop{false}, reload{false};
    std::unique_ptr<crmsync::Catalog> catalog;
    std::unique_ptr<crmsync::Server> server;
    Serve() {
        char name[] = "/tmp/crmsync-fuzz-webhook-XXXXXX";
        home = mkdtemp(name);
        std::filesystem::create_directories(home + "/manifests");
        std::filesystem::create_directories(home + "/var");
        write(home + "/manifests/crm.json",
              R"({"connection": "mock", "plugin": "mock-crm", "config": {"database": ")" + home + R"(/var/crm.db"}})");
        write(home + "/manifests/hooks.json", R"({"module": "hooks", "plugin": "test-ops", "crm": "mock", "schedule": "realtime",
                  "webhook": {"secret": {"env": "CRMSYNC_FUZZ_HOOK_SECRET"}}, "config": {}})");
        setenv("CRMSYNC_FUZZ_HOOK_SECRET", kSecret, 1);
        crmsync::Environment env{home, {home + "/manifests"}, {}};
        catalog = std::make_unique<crmsync::Catalog>(env, quiet, clock);
        fuzz_require(catalog->manifests().problems.empty(), "the fuzz home's manifests load");
        crmsync::ServeOptions options;
        options.port = 0;
        options.http.header_timeout = std::chrono::milliseconds(2000);
        auto same = [this] { return std::shared_ptr<crmsync::Catalog>(std::shared_ptr<crmsync::Catalog>(), catalog.get()); };
        server = std::make_unique<crmsync::Server>(*catalog, same, clock, stop, reload, quiet, options);
        fuzz_require(server->start().is_ok(), "serve starts");
    }
    ~Serve() {
        server.reset();
        std::error_code ignored;
        std::filesystem::remove_all(home, ignored);
    }
};

Serve& serve() {
    static Serve s;
    return s;
}

// Sends `request`, closes the sending side, and reads until the server closes.
std::string exchange(int port, const std::string& request) {
    int fd = testing::connect_loopback(port, 5);
    fuzz_require(fd >= 0, "connect");
    for (size_t sent = 0; sent < request.size();) {
        ssize_t n = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) break;  // the server answered early and closed: fine
        sent += static_cast<size_t>(n);
    }
    shutdown(fd, SHUT_WR);
    std::string answer;
    char buffer[4096];
    ssize_t n;
    while ((n = recv(fd, buffer, sizeof buffer, 0)) > 0) answer.append(buffer, static_cast<size_t>(n));
    bool timed_out = n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    close(fd);
    fuzz_require(!timed_out, "the server neither answered nor closed within 5 s");
    return answer;
}

int status_of(const std::string& answer) {
    if (answer.empty()) return 0;
    fuzz_require(answer.rfind("HTTP/1.1 ", 0) == 0 && answer.size() >= 12, "an answer is HTTP/1.1");
    return std::atoi(answer.substr(9, 3).c_str());
}

std::string signed_request(const std::string& timestamp, const std::string& body) {
    return "POST /hooks/hooks HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\nX-Crmsync-Timestamp: " + timestamp +
           "\r\nX-Crmsync-Signature: sha256=" + crmsync::hmac_sha256_hex(kSecret, timestamp + "." + body) +
           "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    Serve& s = serve();
    const std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
    int status = 0;
    switch (data[0] % 3) {
        case 0:
            status = status_of(exchange(s.server->port(), rest));
            fuzz_require(std::set<int>{0, 200, 202, 400, 401, 404, 405, 413, 431}.count(status),
                         "unexpected status " + std::to_string(status));
            break;
        case 1:
            status = status_of(exchange(s.server->port(), signed_request(std::to_string(std::time(nullptr)), rest)));
            fuzz_require(std::set<int>{200, 202, 400, 413}.count(status), "signed: unexpected status " + std::to_string(status));
            break;
        default: {
            auto cut = rest.find('\n');
            std::string timestamp = rest.substr(0, cut);
            std::string body = cut == std::string::npos ? "" : rest.substr(cut + 1);
            status = status_of(exchange(s.server->port(), signed_request(timestamp, body)));
            fuzz_require(std::set<int>{0, 200, 202, 400, 401, 413, 431}.count(status),
                         "timestamp: unexpected status " + std::to_string(status));
        }
    }
    return 0;
}
