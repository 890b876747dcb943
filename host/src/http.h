#pragma once
// The host's HTTP transport (libcurl with OpenSSL): TLS verification on, a whole-request
// timeout, retry with backoff for idempotent requests after timeouts and connection
// failures, and a count of calls made. One HttpClient per run; not thread-safe (each
// thread that makes requests uses its own).
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "status.h"

namespace crmsync {

struct HttpRequest {
    std::string method = "GET";
    std::string url;
    std::vector<std::string> headers;  // "Name: value"
    std::string body;
    int64_t timeout_ms = 30'000;
    bool idempotent = false;
};

struct HttpResponse {
    int status = 0;
    std::string headers;  // raw "Name: value\r\n" lines
    std::string body;
};

class HttpClient {
public:
    HttpClient();
    ~HttpClient();
    HttpClient(const HttpClient&) = delete;
    HttpClient& operator=(const HttpClient&) = delete;

    // A response of any HTTP status is OK; a timeout or connection failure that outlived the
    // retries is Status::unreachable naming the host (never the query string).
    Result<HttpResponse> perform(const HttpRequest& request);
    int64_t calls() const { return calls_.load(); }

    int max_attempts = 3;
    int64_t backoff_ms = 200;

private:
    void* curl_;
    std::atomic<int64_t> calls_{0};
};

// "https://host:port/path?query" -> "https://host:port" for messages that must not leak
// query strings or paths with ids.
std::string url_origin(const std::string& url);

}  // namespace crmsync
