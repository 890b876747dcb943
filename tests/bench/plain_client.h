#pragma once
// The benchmarks' baseline: a plain Salesforce REST client on libcurl, one call after
// another, no state — what a careful hand-written script does, to measure crmsync against.
#include <curl/curl.h>

#include <boost/json.hpp>
#include <string>

namespace bench {

class PlainClient {
public:
    PlainClient() : curl_(curl_easy_init()) {}
    ~PlainClient() { curl_easy_cleanup(curl_); }
    PlainClient(const PlainClient&) = delete;
    PlainClient& operator=(const PlainClient&) = delete;

    int64_t calls = 0;  // API calls made (the login is not one)

    // Logs in with the emulator's test client; answers the REST base (…/services/data/v62.0).
    std::string login(const std::string& login_url) {
        auto answer = call("POST", login_url + "/services/oauth2/token",
                           "grant_type=client_credentials&client_id=test-client-id&client_secret=test-client-secret",
                           "application/x-www-form-urlencoded");
        --calls;
        token_ = std::string(answer.at("access_token").as_string());
        return std::string(answer.at("instance_url").as_string()) + "/services/data/v62.0";
    }

    boost::json::value call(const std::string& method, const std::string& url, const std::string& body,
                            const char* type = "application/json") {
        std::string answer;
        curl_slist* headers = curl_slist_append(nullptr, (std::string("Content-Type: ") + type).c_str());
        if (!token_.empty()) headers = curl_slist_append(headers, ("Authorization: Bearer " + token_).c_str());
        curl_easy_reset(curl_);
        curl_easy_setopt(curl_, CURLOPT_URL, url.c_str());
        curl_easy_setopt(curl_, CURLOPT_CUSTOMREQUEST, method.c_str());
        curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, headers);
        if (!body.empty()) curl_easy_setopt(curl_, CURLOPT_POSTFIELDS, body.c_str());
        curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, collect);
        curl_easy_setopt(curl_, CURLOPT_WRITEDATA, &answer);
        curl_easy_perform(curl_);
        curl_slist_free_all(headers);
        ++calls;
        boost::system::error_code ec;
        auto parsed = boost::json::parse(answer, ec);
        return ec ? boost::json::value() : parsed;
    }

    std::string encode(const std::string& s) {
        char* e = curl_easy_escape(curl_, s.c_str(), static_cast<int>(s.size()));
        std::string out(e);
        curl_free(e);
        return out;
    }

private:
    static size_t collect(char* data, size_t size, size_t n, void* out) {
        static_cast<std::string*>(out)->append(data, size * n);
        return size * n;
    }
    CURL* curl_;
    std::string token_;
};

}  // namespace bench
