#include "http.h"

#include <curl/curl.h>

#include <chrono>
#include <thread>

namespace crmsync {
namespace {
struct CurlGlobal {
    CurlGlobal() { curl_global_init(CURL_GLOBAL_DEFAULT); }
    ~CurlGlobal() { curl_global_cleanup(); }
};

size_t append(char* data, size_t size, size_t count, void* target) {
    static_cast<std::string*>(target)->append(data, size * count);
    return size * count;
}
}  // namespace

std::string url_origin(const std::string& url) {
    auto scheme = url.find("://");
    if (scheme == std::string::npos) return "(bad URL)";
    auto end = url.find_first_of("/?#", scheme + 3);
    return url.substr(0, end);
}

HttpClient::HttpClient() {
    static CurlGlobal global;
    curl_ = curl_easy_init();
}

HttpClient::~HttpClient() { curl_easy_cleanup(static_cast<CURL*>(curl_)); }

HttpPool::Lease HttpPool::take() {
    std::lock_guard lock(mutex_);
    if (idle_.empty()) {
        auto client = std::make_unique<HttpClient>();
        client->pool_calls_ = &calls_;
        return Lease(*this, std::move(client));
    }
    auto client = std::move(idle_.back());
    idle_.pop_back();
    return Lease(*this, std::move(client));
}

HttpPool::Lease::~Lease() {
    if (!client_) return;
    std::lock_guard lock(pool_->mutex_);
    pool_->idle_.push_back(std::move(client_));
}

Result<HttpResponse> HttpClient::perform(const HttpRequest& request) {
    CURL* curl = static_cast<CURL*>(curl_);
    if (!curl) return Status::error(Status::Kind::internal, "libcurl could not be initialised");
    std::string last_error;
    int attempts = request.idempotent ? max_attempts : 1;
    for (int attempt = 1; attempt <= attempts; ++attempt) {
        HttpResponse response;
        curl_easy_reset(curl);
        curl_easy_setopt(curl, CURLOPT_URL, request.url.c_str());
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.method.c_str());
        curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(request.timeout_ms));
        curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(std::min<int64_t>(request.timeout_ms, 10'000)));
        curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
        curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
        curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
        // What Salesforce and most APIs compress with; "" would also offer brotli, which
        // servers compress slowly at their default quality (it was most of the emulator's time).
        curl_easy_setopt(curl, CURLOPT_ACCEPT_ENCODING, "gzip, deflate");
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, append);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response.body);
        curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, append);
        curl_easy_setopt(curl, CURLOPT_HEADERDATA, &response.headers);
        if (!request.body.empty() || request.method != "GET") {
            curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request.body.data());
            curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
        }
        curl_slist* headers = nullptr;
        for (const auto& h : request.headers) headers = curl_slist_append(headers, h.c_str());
        headers = curl_slist_append(headers, "Expect:");
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
        if (pool_calls_) ++*pool_calls_;
        CURLcode rc = curl_easy_perform(curl);
        curl_slist_free_all(headers);
        if (rc == CURLE_OK) {
            long status = 0;
            curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
            response.status = static_cast<int>(status);
            return response;
        }
        last_error = curl_easy_strerror(rc);
        if (attempt < attempts) std::this_thread::sleep_for(std::chrono::milliseconds(backoff_ms << (attempt - 1)));
    }
    return Status::unreachable(request.method + " " + url_origin(request.url) + " failed: " + last_error);
}

}  // namespace crmsync
