#pragma once
// The host's HTTP transport (libcurl with OpenSSL): TLS verification on, a whole-request
// timeout, retry with backoff for idempotent requests after timeouts and connection
// failures, and a count of calls made. An HttpClient is not thread-safe: calls on several
// threads at once each take their own from an HttpPool.
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
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
    int max_attempts = 3;
    int64_t backoff_ms = 200;

private:
    friend class HttpPool;
    void* curl_;
    std::atomic<int64_t>* pool_calls_ = nullptr;  // the pool's count of calls made, when the client is a pool's
};

// The HTTP clients of one plugin instance: each call into the plugin takes one for its
// duration and gives it back, keeping its connections open for the next. Thread-safe.
class HttpPool {
public:
    class Lease {
    public:
        Lease(HttpPool& pool, std::unique_ptr<HttpClient> client) : pool_(&pool), client_(std::move(client)) {}
        Lease(Lease&&) = default;
        ~Lease();
        HttpClient* get() const { return client_.get(); }

    private:
        HttpPool* pool_;
        std::unique_ptr<HttpClient> client_;
    };
    Lease take();
    // Calls made through every client of the pool.
    int64_t calls() const { return calls_.load(); }

private:
    std::mutex mutex_;
    std::vector<std::unique_ptr<HttpClient>> idle_;
    std::atomic<int64_t> calls_{0};
};

// "https://host:port/path?query" -> "https://host:port" for messages that must not leak
// query strings or paths with ids.
std::string url_origin(const std::string& url);

}  // namespace crmsync
