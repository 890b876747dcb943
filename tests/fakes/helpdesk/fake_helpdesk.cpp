#include "fake_helpdesk.h"

#include <httplib.h>

#include <algorithm>
#include <chrono>

namespace fakes {
namespace json = boost::json;

namespace {
int64_t now_ms() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}
}  // namespace

FakeHelpdesk::FakeHelpdesk(std::string token) : token_(std::move(token)) {
    http_.server().Get(R"(/api/v2/([0-9A-Za-z_-]+)/tickets/search)", [this](const httplib::Request& req, httplib::Response& res) {
        std::lock_guard<std::mutex> lock(mutex_);
        ++requests_;
        if (req.get_header_value("Authorization") != "Bearer " + token_) {
            res.status = 401;
            res.set_content(R"({"error": "invalid access token"})", "application/json");
            return;
        }
        int64_t now = now_ms();
        recent_.erase(std::remove_if(recent_.begin(), recent_.end(), [&](int64_t t) { return t <= now - window_s_ * 1000; }),
                      recent_.end());
        if (limit_ > 0 && static_cast<int>(recent_.size()) >= limit_) {
            ++limited_;
            res.status = 403;
            res.set_header("X-RateLimit-Reset", std::to_string((recent_.front() + window_s_ * 1000) / 1000 + 1));
            res.set_content(R"({"error": "rate limit exceeded"})", "application/json");
            return;
        }
        recent_.push_back(now);
        std::string since = req.get_param_value("since");
        int page = req.has_param("page") ? std::stoi(req.get_param_value("page")) : 1;
        int per_page = std::min(50, req.has_param("per_page") ? std::stoi(req.get_param_value("per_page")) : 50);
        std::vector<json::object> matching;
        for (const auto& t : tickets_[req.matches[1]])
            if (since.empty() || std::string(t.at("last_updated_at").as_string()) >= since) matching.push_back(t);
        std::sort(matching.begin(), matching.end(), [](const json::object& a, const json::object& b) {
            return a.at("last_updated_at").as_string() < b.at("last_updated_at").as_string();
        });
        json::array out;
        for (size_t i = static_cast<size_t>((page - 1) * per_page);
             i < matching.size() && out.size() < static_cast<size_t>(per_page); ++i)
            out.push_back(matching[i]);
        res.set_content(json::serialize(out), "application/json");
    });
}

FakeHelpdesk::~FakeHelpdesk() { http_.stop(); }

int FakeHelpdesk::start() { return http_.start(); }

void FakeHelpdesk::put_ticket(const std::string& box, json::object ticket) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto& list = tickets_[box];
    for (auto& t : list)
        if (t.at("ticket_id") == ticket.at("ticket_id")) {
            t = std::move(ticket);
            return;
        }
    list.push_back(std::move(ticket));
}

void FakeHelpdesk::rate_limit(int requests, int window_s) {
    std::lock_guard<std::mutex> lock(mutex_);
    limit_ = requests;
    window_s_ = window_s;
}

int FakeHelpdesk::requests() {
    std::lock_guard<std::mutex> lock(mutex_);
    return requests_;
}

int FakeHelpdesk::rate_limited() {
    std::lock_guard<std::mutex> lock(mutex_);
    return limited_;
}

}  // namespace fakes
