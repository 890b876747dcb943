#include "client.h"

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <cstring>
#include <memory>

namespace salesforce {

namespace {

// RFC 3986's unreserved characters go as they are; every other byte as %XX.
constexpr bool unreserved(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
           c == '~';
}

}  // namespace

std::size_t url_encoded_size(std::string_view text) {
    std::size_t size = text.size();
    for (unsigned char c : text)
        if (!unreserved(c)) size += 2;
    return size;
}

std::string url_encode(std::string_view text) {
    static const char hex[] = "0123456789ABCDEF";
    std::string out(url_encoded_size(text), '\0');
    std::size_t at = 0;
    for (unsigned char c : text) {
        if (unreserved(c)) {
            out[at++] = static_cast<char>(c);
            continue;
        }
        out[at++] = '%';
        out[at++] = hex[c >> 4];
        out[at++] = hex[c & 15];
    }
    return out;
}

std::string base64url(std::string_view bytes) {
    std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(bytes.data()),
                            static_cast<int>(bytes.size()));
    out.resize(static_cast<size_t>(n));
    while (!out.empty() && out.back() == '=') out.pop_back();
    for (auto& c : out) c = c == '+' ? '-' : c == '/' ? '_' : c;
    return out;
}

namespace {

// Reads api-usage=N/M from the raw response headers.
bool limit_info(const std::string& headers, int64_t& used, int64_t& limit) {
    static const char name[] = "sforce-limit-info:";
    std::string lower(headers.size(), '\0');
    std::transform(headers.begin(), headers.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    auto at = lower.find(name);
    if (at == std::string::npos) return false;
    auto usage = lower.find("api-usage=", at);
    if (usage == std::string::npos) return false;
    return std::sscanf(headers.c_str() + usage + 10, "%lld/%lld", reinterpret_cast<long long*>(&used),
                       reinterpret_cast<long long*>(&limit)) == 2;
}

// The first error of any of Salesforce's shapes: OAuth {error, error_description}, REST
// [{errorCode, message}] or Collections {statusCode, message}.
std::pair<std::string, std::string> first_error(const json::value& body) {
    auto text = [](const json::object& o, const char* k) {
        auto* v = o.if_contains(k);
        return v && v->is_string() ? std::string(v->get_string()) : std::string();
    };
    if (auto* o = body.if_object()) {
        if (o->contains("error")) return {text(*o, "error"), text(*o, "error_description")};
        if (o->contains("errorCode")) return {text(*o, "errorCode"), text(*o, "message")};
    }
    if (auto* a = body.if_array(); a && !a->empty() && a->at(0).is_object()) {
        const auto& e = a->at(0).get_object();
        return {e.contains("errorCode") ? text(e, "errorCode") : text(e, "statusCode"), text(e, "message")};
    }
    return {"", ""};
}

}  // namespace

Response Client::send(crmsync_call* call, const std::string& method, const std::string& url, const std::string& body,
                      const std::string& content_type, bool idempotent, const std::string* token) {
    std::vector<std::string> header_text{"Accept: application/json"};
    if (!content_type.empty()) header_text.push_back("Content-Type: " + content_type);
    if (token) header_text.push_back("Authorization: Bearer " + *token);
    std::vector<const char*> headers;
    for (const auto& h : header_text) headers.push_back(h.c_str());
    crmsync_http_request req;
    std::memset(&req, 0, sizeof req);
    req.struct_size = sizeof req;
    req.method = method.c_str();
    req.url = url.c_str();
    req.headers = headers.data();
    req.header_count = static_cast<uint32_t>(headers.size());
    req.body = body.data();
    req.body_size = body.size();
    req.timeout_ms = config_.timeout_ms;
    req.idempotent = idempotent ? 1 : 0;
    crmsync_http_response res;
    std::memset(&res, 0, sizeof res);
    res.struct_size = sizeof res;
    Response out;
    int32_t rc = host_->http(call, &req, &res);
    if (rc != CRMSYNC_STATUS_OK) {
        out.status = rc == CRMSYNC_STATUS_CANCELLED ? rc : CRMSYNC_STATUS_RETRY;
        out.message = method + " " + url.substr(0, url.find('?')) + ": no answer (timeout or connection failure)";
        if (!idempotent) {
            // The server may have acted on it: repeating an insert could duplicate it.
            out.status = CRMSYNC_STATUS_ERROR;
            out.message += "; not repeated, since the request may have been applied";
        }
        return out;
    }
    out.http = res.status;
    out.raw.assign(res.body ? res.body : "", res.body_size);
    if (!out.raw.empty()) {
        boost::system::error_code ec;
        out.body = json::parse(out.raw, ec);
        if (ec) out.body = nullptr;
    }
    int64_t used = 0, limit = 0;
    if (res.headers && limit_info(res.headers, used, limit)) host_->api_usage(call, used, limit);
    if (out.http >= 200 && out.http < 300) return out;
    auto failed = error_answer(out.http, out.body);
    out.status = failed.status;
    out.message = std::move(failed.message);
    return out;
}

Response error_answer(int http, const json::value& body) {
    Response out;
    out.http = http;
    auto [code, message] = first_error(body);
    out.message = "HTTP " + std::to_string(http) + (code.empty() ? "" : " " + code) + (message.empty() ? "" : ": " + message);
    if (http == 401 || code == "INVALID_SESSION_ID") out.status = CRMSYNC_STATUS_AUTH_FAILED;
    else if (code == "REQUEST_LIMIT_EXCEEDED") out.status = CRMSYNC_STATUS_RATE_LIMITED;
    else if (http >= 500 || code == "UNABLE_TO_LOCK_ROW") out.status = CRMSYNC_STATUS_RETRY;
    else out.status = CRMSYNC_STATUS_ERROR;
    return out;
}

std::string Client::jwt_assertion(crmsync_call* call, std::string& error) const {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(
        BIO_new_mem_buf(credentials_.private_key.data(), static_cast<int>(credentials_.private_key.size())), &BIO_free);
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr),
                                                            &EVP_PKEY_free);
    if (!key) {
        error = "the private_key credential is not a PEM private key";
        return "";
    }
    int64_t now = host_->now_ms(call) / 1000;
    json::object claims{
        {"iss", credentials_.client_id}, {"sub", config_.username}, {"aud", config_.audience}, {"exp", now + 180}};
    std::string signing_input = base64url(R"({"alg":"RS256"})") + "." + base64url(json::serialize(claims));
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
    size_t size = 0;
    if (EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key.get()) != 1 ||
        EVP_DigestSign(ctx.get(), nullptr, &size, reinterpret_cast<const unsigned char*>(signing_input.data()),
                       signing_input.size()) != 1) {
        error = "the private key cannot sign RS256";
        return "";
    }
    std::string signature(size, '\0');
    if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &size,
                       reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size()) != 1) {
        error = "signing the JWT failed";
        return "";
    }
    signature.resize(size);
    return signing_input + "." + base64url(signature);
}

int32_t Client::token_request(crmsync_call* call, const std::string& form) {
    auto res = send(call, "POST", config_.login_url + "/services/oauth2/token", form, "application/x-www-form-urlencoded", true,
                    nullptr);
    if (res.status == CRMSYNC_STATUS_RETRY || res.status == CRMSYNC_STATUS_CANCELLED) {
        host_->fail(call, res.status, ("Salesforce login " + config_.login_url + ": " + res.message).c_str());
        return res.status;
    }
    auto* o = res.body.if_object();
    if (res.http != 200 || !o || !o->contains("access_token")) {
        auto [code, description] = first_error(res.body);
        std::string message = "Salesforce refused the " + config_.auth +
                              " login: " + (code.empty() ? "HTTP " + std::to_string(res.http) : code) +
                              (description.empty() ? "" : " (" + description + ")");
        host_->fail(call, CRMSYNC_STATUS_AUTH_FAILED, message.c_str());
        return CRMSYNC_STATUS_AUTH_FAILED;
    }
    access_token_ = std::string(o->at("access_token").as_string());
    instance_url_ = o->contains("instance_url") ? std::string(o->at("instance_url").as_string()) : config_.login_url;
    if (auto* id = o->if_contains("id"); id && id->is_string()) {
        std::string url(id->get_string());
        user_id_ = url.substr(url.rfind('/') + 1);
    }
    return CRMSYNC_STATUS_OK;
}

int32_t Client::authenticate(crmsync_call* call, const Credentials& credentials) {
    std::lock_guard lock(mutex_);
    credentials_ = credentials;
    return login(call);
}

int32_t Client::login(crmsync_call* call) {
    const Credentials& credentials = credentials_;
    auto need = [&](const std::string& value, const char* name) {
        if (!value.empty()) return true;
        host_->fail(call, CRMSYNC_STATUS_AUTH_FAILED,
                    ("the " + config_.auth + " login needs the credential \"" + name + "\" in the connection manifest").c_str());
        return false;
    };
    if (!need(credentials.client_id, "client_id")) return CRMSYNC_STATUS_AUTH_FAILED;
    std::string form;
    if (config_.auth == "client_credentials") {
        if (!need(credentials.client_secret, "client_secret")) return CRMSYNC_STATUS_AUTH_FAILED;
        form = "grant_type=client_credentials&client_id=" + url_encode(credentials.client_id) +
               "&client_secret=" + url_encode(credentials.client_secret);
    } else if (config_.auth == "refresh_token") {
        if (!need(credentials.refresh_token, "refresh_token")) return CRMSYNC_STATUS_AUTH_FAILED;
        form = "grant_type=refresh_token&client_id=" + url_encode(credentials.client_id) +
               "&refresh_token=" + url_encode(credentials.refresh_token);
        if (!credentials.client_secret.empty()) form += "&client_secret=" + url_encode(credentials.client_secret);
    } else {
        if (!need(credentials.private_key, "private_key")) return CRMSYNC_STATUS_AUTH_FAILED;
        std::string error;
        std::string assertion = jwt_assertion(call, error);
        if (assertion.empty()) {
            host_->fail(call, CRMSYNC_STATUS_AUTH_FAILED, error.c_str());
            return CRMSYNC_STATUS_AUTH_FAILED;
        }
        form = "grant_type=" + url_encode("urn:ietf:params:oauth:grant-type:jwt-bearer") + "&assertion=" + assertion;
    }
    return token_request(call, form);
}

std::string Client::authorize_url(const Credentials& credentials, const std::string& redirect_uri, const std::string& state,
                                  const std::string& code_challenge) const {
    return config_.login_url + "/services/oauth2/authorize?response_type=code&client_id=" + url_encode(credentials.client_id) +
           "&redirect_uri=" + url_encode(redirect_uri) + "&scope=" + url_encode("api refresh_token") +
           "&state=" + url_encode(state) + "&code_challenge=" + url_encode(code_challenge) + "&code_challenge_method=S256";
}

std::string Client::exchange_code(crmsync_call* call, const Credentials& credentials, const std::string& redirect_uri,
                                  const std::string& code, const std::string& code_verifier) {
    std::string form = "grant_type=authorization_code&code=" + url_encode(code) +
                       "&client_id=" + url_encode(credentials.client_id) + "&redirect_uri=" + url_encode(redirect_uri) +
                       "&code_verifier=" + url_encode(code_verifier);
    if (!credentials.client_secret.empty()) form += "&client_secret=" + url_encode(credentials.client_secret);
    // A code is good once: the exchange is never repeated blind.
    auto res = send(call, "POST", config_.login_url + "/services/oauth2/token", form, "application/x-www-form-urlencoded", false,
                    nullptr);
    auto* o = res.body.if_object();
    if (res.http != 200 || !o) {
        auto [error, description] = first_error(res.body);
        host_->fail(call, res.http == 0 ? res.status : CRMSYNC_STATUS_AUTH_FAILED,
                    ("Salesforce refused the authorization code: " + (error.empty() ? res.message : error) +
                     (description.empty() ? "" : " (" + description + ")"))
                        .c_str());
        return "";
    }
    auto* token = o->if_contains("refresh_token");
    if (!token || !token->is_string() || token->get_string().empty()) {
        host_->fail(call, CRMSYNC_STATUS_AUTH_FAILED,
                    "Salesforce signed in but gave no refresh token: add the scope \"Perform requests at any time "
                    "(refresh_token, offline_access)\" to the connected app");
        return "";
    }
    return std::string(token->get_string());
}

Response Client::request(crmsync_call* call, const std::string& method, const std::string& path, const std::string& body,
                         bool idempotent, const std::string& content_type) {
    const std::string absolute = path.rfind("/services/", 0) == 0 ? path : data_path(path);
    std::string token, instance;
    {
        std::lock_guard lock(mutex_);
        token = access_token_;
        instance = instance_url_;
    }
    auto res = send(call, method, instance + absolute, body, body.empty() ? "" : content_type, idempotent, &token);
    if (res.status != CRMSYNC_STATUS_AUTH_FAILED) return res;
    {
        std::lock_guard lock(mutex_);
        if (credentials_.client_id.empty()) return res;
        // The session expired: log in again once (unless a request beside this one already
        // did), then repeat the request once.
        if (access_token_ == token) {
            host_->log(call, CRMSYNC_LOG_INFO, "Salesforce session expired; logging in again");
            if (login(call) != CRMSYNC_STATUS_OK) {
                res.message = "the session expired and logging in again failed";
                return res;
            }
        }
        token = access_token_;
        instance = instance_url_;
    }
    return send(call, method, instance + absolute, body, body.empty() ? "" : content_type, idempotent, &token);
}

}  // namespace salesforce
