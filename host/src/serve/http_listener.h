#pragma once
// The HTTP/1.1 listener behind `crmsync serve`: event-driven (Boost.Beast over Asio), so a
// slow or idle client holds a socket, never a thread. Every request has deadlines for its
// header and its body, each client address a bound on open connections, the whole listener
// a bound on sockets; a client past a limit is cut off and the others are still answered.
// The handler runs on one of a few I/O threads and must be short (webhook: one fsync).
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "../status.h"

namespace crmsync {

struct IncomingRequest {
    std::string method;                          // "GET", "POST", ...
    std::string target;                          // path and query, as sent
    std::map<std::string, std::string> headers;  // names lowercased
    std::string body;
    std::string header(const std::string& lowercase_name) const;
    // The query string's parameters, %-decoded ("?a=1&b" -> {a: "1", b: ""}).
    std::map<std::string, std::string> query() const;
};

struct HttpAnswer {
    int status = 200;
    std::string content_type = "application/json";
    std::string body;
};

struct ListenerLimits {
    size_t max_body = 1 << 20;                         // larger: 413
    size_t max_header = 16 * 1024;                     // larger: 431
    std::chrono::milliseconds header_timeout{10'000};  // from connect (or the last answer) to a whole header
    std::chrono::milliseconds body_timeout{30'000};    // from the header to a whole body
    std::chrono::milliseconds write_timeout{10'000};   // to send an answer
    size_t max_per_client = 128;                       // open connections from one address
    size_t max_connections = 1024;                     // open connections in all
    int threads = 2;
};

// What the listener refused on its own, for /metrics ("too_large", "too_many_connections",
// "bad_request", "timeout").
using RefusalCounter = std::function<void(const std::string& reason)>;

class HttpListener {
public:
    using Handler = std::function<HttpAnswer(const IncomingRequest&)>;
    HttpListener(Handler handler, ListenerLimits limits, RefusalCounter refused);
    ~HttpListener();
    HttpListener(const HttpListener&) = delete;
    HttpListener& operator=(const HttpListener&) = delete;

    // Binds HOST:PORT (port 0: any free one) and starts answering on the I/O threads.
    Status start(const std::string& host, int port);
    int port() const;
    // Stops accepting, closes every connection, waits for a handler in progress. Idempotent.
    void stop();

    struct State;  // the implementation's (http_listener.cpp)

private:
    std::shared_ptr<State> state_;
};

}  // namespace crmsync
