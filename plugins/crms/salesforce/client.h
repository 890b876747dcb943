#pragma once
// The Salesforce REST client behind the plugin: OAuth 2.0 (client credentials, JWT bearer,
// refresh token), requests through the host's HTTP service with the session, limit
// accounting from Sforce-Limit-Info, and Salesforce's three error shapes turned into
// crmsync statuses. Credentials live only in memory and never appear in a message.
// Thread-safe: requests may run at once; a session that expired is renewed by one of them.
#include <crmsync/plugin.h>

#include <boost/json.hpp>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace salesforce {

namespace json = boost::json;

struct Config {
    std::string login_url;  // https://login.salesforce.com, https://test.salesforce.com or My Domain
    std::string auth;       // client_credentials, jwt_bearer, refresh_token
    std::string audience;   // JWT aud
    std::string username;   // JWT sub
    std::string api_version = "62.0";
    uint32_t timeout_ms = 60'000;
};

struct Credentials {
    std::string client_id, client_secret, private_key, refresh_token;
};

struct Response {
    int32_t status = CRMSYNC_STATUS_OK;  // crmsync status of the exchange
    int http = 0;
    json::value body;  // parsed JSON, or null
    std::string raw;
    std::string message;  // why, when status is not OK
};

class Client {
public:
    Client(const crmsync_host_api* host, Config config) : host_(host), config_(std::move(config)) {}

    // Gets a session with the configured flow. Returns AUTH_FAILED with the OAuth error's
    // own text, or RETRY when the login host could not be reached.
    int32_t authenticate(crmsync_call* call, const Credentials& credentials);
    // OAuth's authorization-code flow with PKCE (for `crmsync connect`): the URL a person
    // opens to sign in, and the exchange of the code it sends back for a refresh token
    // ("" after host->fail).
    std::string authorize_url(const Credentials& credentials, const std::string& redirect_uri, const std::string& state,
                              const std::string& code_challenge) const;
    std::string exchange_code(crmsync_call* call, const Credentials& credentials, const std::string& redirect_uri,
                              const std::string& code, const std::string& code_verifier);

    // A REST call under /services/data/vXX.X (path starts with "/") or an absolute path
    // from Salesforce (nextRecordsUrl). Re-authenticates once on INVALID_SESSION_ID.
    Response request(crmsync_call* call, const std::string& method, const std::string& path, const std::string& body = "",
                     bool idempotent = true, const std::string& content_type = "application/json");

    std::string user_id() const {
        std::lock_guard lock(mutex_);
        return user_id_;
    }
    std::string data_path(const std::string& path) const { return "/services/data/v" + config_.api_version + path; }

private:
    // `token` is the session's access token, or null for a request without one.
    Response send(crmsync_call* call, const std::string& method, const std::string& url, const std::string& body,
                  const std::string& content_type, bool idempotent, const std::string* token);
    int32_t login(crmsync_call* call);  // with credentials_, mutex_ held
    int32_t token_request(crmsync_call* call, const std::string& form);
    std::string jwt_assertion(crmsync_call* call, std::string& error) const;

    const crmsync_host_api* host_;
    Config config_;
    mutable std::mutex mutex_;  // guards the credentials and the session below
    Credentials credentials_;
    std::string access_token_, instance_url_, user_id_;
};

// What a Salesforce error answer (HTTP status and body) means for crmsync: AUTH_FAILED,
// RATE_LIMITED (the daily limit), RETRY (5xx, a lock) or ERROR, with "HTTP 400 CODE: text".
// For a whole response and for one Composite subrequest alike.
Response error_answer(int http, const json::value& body);

std::string url_encode(std::string_view text);
// url_encode(text).size(), without making the text.
std::size_t url_encoded_size(std::string_view text);
std::string base64url(std::string_view bytes);

}  // namespace salesforce
