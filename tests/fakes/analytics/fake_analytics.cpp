#include "fake_analytics.h"

#include <httplib.h>

#include "json_reply.h"

#include <boost/json.hpp>

namespace fakes {
namespace json = boost::json;

namespace {

// The API's refusals are OAuth-shaped: {"error", "error_description"}.
void refuse_oauth(httplib::Response& res, int status, const std::string& error, const std::string& description) {
    refuse(res, status, error, description, "error_description");
}

json::array strings(const std::vector<std::string>& list) {
    json::array out;
    for (const auto& s : list) out.emplace_back(s);
    return out;
}

}  // namespace

FakeAnalytics::FakeAnalytics(std::string client_id, std::string client_secret)
    : client_id_(std::move(client_id)), client_secret_(std::move(client_secret)) {
    auto& server = http_.server();
    // Every /v1 request: the bearer token first, then the rate limit.
    server.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
        if (req.path.rfind("/v1/", 0) != 0) return httplib::Server::HandlerResponse::Unhandled;
        std::lock_guard<std::mutex> lock(mutex_);
        auto auth = req.get_header_value("Authorization");
        if (auth.rfind("Bearer ", 0) != 0 || !tokens_.count(auth.substr(7))) {
            refuse_oauth(res, 401, "invalid_token", "The access token is missing, invalid or expired");
            return httplib::Server::HandlerResponse::Handled;
        }
        if (fakes::throttled(res, throttle_, throttled_)) return httplib::Server::HandlerResponse::Handled;
        return httplib::Server::HandlerResponse::Unhandled;
    });
    server.Post("/oauth/token", [this](const httplib::Request& req, httplib::Response& res) {
        std::lock_guard<std::mutex> lock(mutex_);
        ++requests_["token"];
        if (req.get_param_value("grant_type") != "client_credentials")
            return refuse_oauth(res, 400, "unsupported_grant_type", "only client_credentials is supported");
        if (req.get_param_value("client_id") != client_id_ || req.get_param_value("client_secret") != client_secret_)
            return refuse_oauth(res, 401, "invalid_client", "Client authentication failed");
        std::string token = "pa-token-" + std::to_string(++issued_);
        tokens_.insert(token);
        reply(res, 200, json::object{{"access_token", token}, {"token_type", "Bearer"}, {"expires_in", 3600}});
    });
    server.Get("/v1/reports", [this](const httplib::Request&, httplib::Response& res) {
        std::lock_guard<std::mutex> lock(mutex_);
        ++requests_["reports"];
        json::array out;
        for (const auto& [id, r] : reports_)
            out.push_back(json::object{{"id", id},
                                       {"name", r.name},
                                       {"tags", strings(r.tags)},
                                       {"columns", strings(r.columns)},
                                       {"refreshed_at", r.refreshed_at}});
        reply(res, 200, json::object{{"reports", std::move(out)}});
    });
    server.Get(R"(/v1/reports/([^/]+)/rows)", [this](const httplib::Request& req, httplib::Response& res) {
        std::lock_guard<std::mutex> lock(mutex_);
        ++requests_["rows"];
        auto it = reports_.find(req.matches[1]);
        if (it == reports_.end()) return refuse_oauth(res, 404, "not_found", "No report " + std::string(req.matches[1]));
        const Report& r = it->second;
        long limit = 100;
        if (req.has_param("limit")) {
            const std::string text = req.get_param_value("limit");
            if (text.empty() || text.size() > 4 || text.find_first_not_of("0123456789") != std::string::npos ||
                (limit = std::stol(text)) < 1 || limit > 1000)
                return refuse_oauth(res, 400, "invalid_request", "limit must be 1 to 1000");
        }
        // A cursor is "<refresh>:<offset>": it expires when the report is refreshed.
        size_t offset = 0;
        if (req.has_param("cursor")) {
            const std::string cursor = req.get_param_value("cursor");
            auto colon = cursor.find(':');
            if (colon == std::string::npos || cursor.substr(0, colon) != std::to_string(r.refresh))
                return refuse_oauth(res, 410, "cursor_expired", "The report was refreshed; read it again from the start");
            offset = std::stoul(cursor.substr(colon + 1));
        }
        json::array rows;
        for (size_t i = offset; i < r.rows.size() && rows.size() < static_cast<size_t>(limit); ++i)
            rows.push_back(strings(r.rows[i]));
        const size_t next = offset + rows.size();
        reply(res, 200,
              json::object{
                  {"columns", strings(r.columns)},
                  {"rows", std::move(rows)},
                  {"next_cursor", next < r.rows.size() ? json::value(std::to_string(r.refresh) + ":" + std::to_string(next))
                                                       : json::value(nullptr)},
                  {"refreshed_at", r.refreshed_at}});
    });
}

FakeAnalytics::~FakeAnalytics() { http_.stop(); }

int FakeAnalytics::start() { return http_.start(); }

void FakeAnalytics::put_report(const std::string& id, const std::string& name, std::vector<std::string> tags,
                               std::vector<std::string> columns, std::vector<std::vector<std::string>> rows) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto& r = reports_[id];
    r.name = name;
    r.tags = std::move(tags);
    r.columns = std::move(columns);
    r.rows = std::move(rows);
    r.refresh = ++refreshes_;
    // Each refresh later than the one before (the plugin only compares them).
    const int second = refreshes_ % 60;
    r.refreshed_at = std::string("2026-11-20T08:00:") + (second < 10 ? "0" : "") + std::to_string(second) + "Z";
}

void FakeAnalytics::throttle(int requests) {
    std::lock_guard<std::mutex> lock(mutex_);
    throttle_ = requests;
}

void FakeAnalytics::expire_tokens() {
    std::lock_guard<std::mutex> lock(mutex_);
    tokens_.clear();
}

int FakeAnalytics::requests(const std::string& kind) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = requests_.find(kind);
    return it == requests_.end() ? 0 : it->second;
}

int FakeAnalytics::throttled() {
    std::lock_guard<std::mutex> lock(mutex_);
    return throttled_;
}

}  // namespace fakes
