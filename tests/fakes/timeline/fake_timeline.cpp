#include "fake_timeline.h"

#include <httplib.h>

#include <algorithm>
#include <chrono>

namespace fakes {
namespace json = boost::json;

FakeTimeline::FakeTimeline(std::string access_key) : access_key_(std::move(access_key)) {
    auto& server = http_.server();
    // Every request: the access key first, then the rate limit.
    server.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
        std::lock_guard<std::mutex> lock(mutex_);
        ++requests_;
        if (req.get_header_value("Accesskey") != access_key_) {
            res.status = 401;
            res.set_content(R"({"result": false, "errorCode": "GS_0401", "errorDesc": "Invalid access key"})",
                            "application/json");
            return httplib::Server::HandlerResponse::Handled;
        }
        if (throttle_ > 0) {
            --throttle_;
            ++throttled_;
            res.status = 429;
            res.set_header("Retry-After", "1");
            res.set_content(R"({"result": false, "errorCode": "GS_0429", "errorDesc": "Too many requests"})", "application/json");
            return httplib::Server::HandlerResponse::Handled;
        }
        return httplib::Server::HandlerResponse::Unhandled;
    });
    server.Get("/v1/ant/timeline/activities", [this](const httplib::Request& req, httplib::Response& res) {
        std::lock_guard<std::mutex> lock(mutex_);
        std::string after = req.get_param_value("modifiedAfter");
        size_t page = req.has_param("pageNumber") ? std::stoul(req.get_param_value("pageNumber")) : 1;
        size_t size = std::min<size_t>(500, req.has_param("pageSize") ? std::stoul(req.get_param_value("pageSize")) : 100);
        std::vector<const json::object*> matching;
        for (const auto& a : activities_)
            if (after.empty() || std::string(a.at("modified_at").as_string()) >= after) matching.push_back(&a);
        std::sort(matching.begin(), matching.end(), [](const json::object* a, const json::object* b) {
            auto ma = a->at("modified_at").as_string(), mb = b->at("modified_at").as_string();
            return ma != mb ? ma < mb : a->at("id").as_string() < b->at("id").as_string();
        });
        json::array out;
        for (size_t i = (page - 1) * size; i < matching.size() && out.size() < size; ++i) out.push_back(*matching[i]);
        json::object data{
            {"activities", std::move(out)}, {"pageNumber", page}, {"pageSize", size}, {"totalCount", matching.size()}};
        res.set_content(json::serialize(json::object{{"result", true}, {"data", std::move(data)}}), "application/json");
    });
    server.Get(R"(/v1/ant/timeline/attachments/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (fail_downloads_) {
            res.status = 503;
            res.set_content(R"({"result": false, "errorCode": "GS_0503", "errorDesc": "File service unavailable"})",
                            "application/json");
            return;
        }
        auto it = attachments_.find(req.matches[1]);
        if (it == attachments_.end()) {
            res.status = 404;
            res.set_content(R"({"result": false, "errorCode": "GS_0404", "errorDesc": "No such attachment"})",
                            "application/json");
            return;
        }
        res.set_content(it->second, "application/octet-stream");
    });
    server.Patch(R"(/v1/ant/timeline/activities/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
        std::lock_guard<std::mutex> lock(mutex_);
        boost::system::error_code ec;
        auto body = json::parse(req.body, ec);
        const std::string id = req.matches[1].str();
        auto it = std::find_if(activities_.begin(), activities_.end(),
                               [&](const json::object& a) { return a.at("id").as_string() == id; });
        if (ec || !body.is_object() || it == activities_.end()) {
            res.status = it == activities_.end() ? 404 : 400;
            res.set_content(R"({"result": false, "errorCode": "GS_0400", "errorDesc": "Bad write-back"})", "application/json");
            return;
        }
        for (const auto& [field, value] : body.get_object()) {
            (*it)[field] = value;
            writebacks_.push_back({{"id", id}, {"field", field}, {"value", value}});
        }
        res.set_content(R"({"result": true})", "application/json");
    });
}

FakeTimeline::~FakeTimeline() { http_.stop(); }

int FakeTimeline::start() { return http_.start(); }

void FakeTimeline::put_activity(json::object activity) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& a : activities_)
        if (a.at("id") == activity.at("id")) {
            a = std::move(activity);
            return;
        }
    activities_.push_back(std::move(activity));
}

void FakeTimeline::put_attachment(const std::string& id, std::string bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    attachments_[id] = std::move(bytes);
}

void FakeTimeline::load_fixture(const std::string& account_id) {
    // A meeting with everything: HTML notes, a duration, internal and external attendees (one
    // not a CRM contact), the company's Account, and files from before the switch-on, after
    // it, and over 25 MB.
    put_activity(json::parse(R"({"id": "act-101", "type": "Meeting", "subject": "Kick-off with Acme",
        "notes": "<p>Agreed the <b>onboarding</b> plan &amp; dates.</p><ul><li>Training: 12/1</li><li>Go-live: 12/15</li></ul>",
        "activity_date": "2026-11-12T10:00:00+09:00", "duration_minutes": 60,
        "author": {"email": "cs.manager@example.com", "name": "CS Manager"},
        "internal_attendees": [{"email": "cs.lead@example.com"}],
        "external_attendees": [{"email": "hanako@acme.example"}, {"email": "taro@acme.example"}, {"email": "stranger@nowhere.example"}],
        "company": {"id": "comp-1", "name": "Acme", "crm_account_id": ")" +
                             account_id + R"("},
        "attachments": [
          {"id": "att-1", "name": "agenda.pdf", "size": 12, "added_at": "2026-11-05T09:00:00Z"},
          {"id": "att-2", "name": "minutes.txt", "size": 25, "added_at": "2026-11-12T02:00:00Z"},
          {"id": "att-3", "name": "recording.mp4", "size": 31457280, "added_at": "2026-11-12T02:05:00Z"}],
        "modified_at": "2026-11-12T02:05:00.000Z"})")
                     .as_object());
    put_attachment("att-1", "agenda bytes");
    put_attachment("att-2", "Minutes of the kick-off.\n");
    // A call with no duration, by an author who has no CRM user.
    put_activity(json::parse(R"({"id": "act-102", "type": "Call", "subject": "Renewal call", "notes": "Budget approved",
        "activity_date": "2026-11-13T15:30:00Z", "author": {"email": "unknown.person@example.com"},
        "external_attendees": [{"email": "hanako@acme.example"}],
        "company": {"id": "comp-1", "name": "Acme", "crm_account_id": ")" +
                             account_id + R"("},
        "modified_at": "2026-11-13T16:00:00.000Z"})")
                     .as_object());
    // A type whose "sync to CRM" is off.
    put_activity(json::parse(R"({"id": "act-103", "type": "Update", "subject": "Internal note", "notes": "not for sales",
        "activity_date": "2026-11-14T09:00:00Z", "author": {"email": "cs.manager@example.com"},
        "modified_at": "2026-11-14T09:00:00.000Z"})")
                     .as_object());
    // An email the tests edit later.
    put_activity(
        json::parse(R"({"id": "act-104", "type": "Email", "subject": "Follow-up on pricing", "notes": "Sent the price list",
        "activity_date": "2026-11-15T11:00:00+09:00", "duration_minutes": 5, "author": {"email": "cs.manager@example.com"},
        "external_attendees": [{"email": "taro@acme.example"}],
        "modified_at": "2026-11-15T02:00:00.000Z"})")
            .as_object());
    // A company whose CRM Account id the CRM does not have: the CRM refuses the record.
    put_activity(json::parse(R"({"id": "act-105", "type": "Meeting", "subject": "QBR", "notes": "",
        "activity_date": "2026-11-16T10:00:00Z", "duration_minutes": 30, "author": {"email": "cs.manager@example.com"},
        "company": {"id": "comp-9", "name": "Gone Inc", "crm_account_id": "001000000009999AAA"},
        "modified_at": "2026-11-16T10:30:00.000Z"})")
                     .as_object());
}

void FakeTimeline::fail_downloads(bool on) {
    std::lock_guard<std::mutex> lock(mutex_);
    fail_downloads_ = on;
}

void FakeTimeline::throttle(int requests) {
    std::lock_guard<std::mutex> lock(mutex_);
    throttle_ = requests;
}

std::vector<json::object> FakeTimeline::writebacks() {
    std::lock_guard<std::mutex> lock(mutex_);
    return writebacks_;
}

json::object FakeTimeline::activity(const std::string& id) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& a : activities_)
        if (a.at("id").as_string() == id) return a;
    return {};
}

int FakeTimeline::requests() {
    std::lock_guard<std::mutex> lock(mutex_);
    return requests_;
}

int FakeTimeline::throttled() {
    std::lock_guard<std::mutex> lock(mutex_);
    return throttled_;
}

}  // namespace fakes
