#include "fake_feedback.h"

#include <httplib.h>

#include "json_reply.h"

#include <algorithm>

namespace fakes {
namespace json = boost::json;

namespace {

bool is_date(const std::string& s) {
    return s.size() == 10 && s[4] == '-' && s[7] == '-' &&
           std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || c == '-'; });
}

}  // namespace

FakeFeedback::FakeFeedback(std::string token) : token_(std::move(token)) {
    auto& server = http_.server();
    server.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (req.get_header_value("Authorization") != "Bearer " + token_) {
            refuse(res, 401, "unauthorized", "Invalid API token");
            return httplib::Server::HandlerResponse::Handled;
        }
        if (fakes::throttled(res, throttle_, throttled_)) return httplib::Server::HandlerResponse::Handled;
        return httplib::Server::HandlerResponse::Unhandled;
    });
    server.Get("/v1/custom-fields", [this](const httplib::Request&, httplib::Response& res) {
        std::lock_guard<std::mutex> lock(mutex_);
        ++requests_["fields"];
        json::array out;
        for (const auto& [key, f] : fields_) {
            json::array options;
            for (const auto& o : f.options) options.emplace_back(o);
            out.push_back(json::object{{"key", key}, {"type", f.type}, {"options", std::move(options)}});
        }
        reply(res, 200, json::object{{"fields", std::move(out)}});
    });
    server.Post(R"(/v1/custom-fields/([^/]+)/options)", [this](const httplib::Request& req, httplib::Response& res) {
        std::lock_guard<std::mutex> lock(mutex_);
        ++requests_["options"];
        auto it = fields_.find(req.matches[1]);
        if (it == fields_.end()) return refuse(res, 404, "not_found", "No custom field " + std::string(req.matches[1]));
        json::error_code ec;
        auto body = json::parse(req.body, ec);
        auto* value = !ec && body.is_object() ? body.get_object().if_contains("value") : nullptr;
        if (!value || !value->is_string() || value->get_string().empty())
            return refuse(res, 422, "invalid_request", "an option needs a \"value\"");
        auto& options = it->second.options;
        if (std::find(options.begin(), options.end(), std::string(value->get_string())) != options.end())
            return refuse(res, 409, "exists", "The option exists");
        options.emplace_back(value->get_string());
        reply(res, 201, json::object{{"key", it->first}, {"value", *value}});
    });
    server.Put(R"(/v1/companies/external/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
        std::lock_guard<std::mutex> lock(mutex_);
        ++requests_["upsert"];
        const std::string external = req.matches[1];
        json::error_code ec;
        auto body = json::parse(req.body, ec);
        if (ec || !body.is_object()) return refuse(res, 400, "invalid_json", "The body is not a JSON object");
        const auto& o = body.get_object();
        auto* name = o.if_contains("name");
        if (!name || !name->is_string() || name->get_string().empty())
            return refuse(res, 422, "invalid_request", "A company needs a name");
        json::object custom;
        if (auto* c = o.if_contains("custom_fields"); c && c->is_object()) custom = c->get_object();
        for (const auto& [key, value] : custom) {
            auto f = fields_.find(std::string(key));
            if (f == fields_.end()) return refuse(res, 422, "unknown_field", "No custom field " + std::string(key));
            if (value.is_null()) continue;
            const auto& type = f->second.type;
            auto has = [&](const json::value& v) {
                return v.is_string() && std::find(f->second.options.begin(), f->second.options.end(),
                                                  std::string(v.get_string())) != f->second.options.end();
            };
            bool ok = type == "text"     ? value.is_string()
                      : type == "number" ? value.is_number()
                      : type == "date"   ? value.is_string() && is_date(std::string(value.get_string()))
                      : type == "single_select"
                          ? has(value)
                          : value.is_array() && std::all_of(value.get_array().begin(), value.get_array().end(), has);
            if (!ok)
                return refuse(res, 422, "invalid_value",
                              "Custom field " + std::string(key) + " (" + type + ") cannot take " + json::serialize(value));
        }
        auto [it, created] = companies_.try_emplace(external);
        auto& company = it->second;
        if (created) company = json::object{{"id", "co_" + std::to_string(++next_id_)}, {"external_id", external}, {"writes", 0}};
        company["name"] = *name;
        company["custom_fields"] = custom;
        company["archived"] = false;
        company["writes"] = company["writes"].as_int64() + 1;
        company["updated_at"] = "2026-11-23T00:00:00Z";
        reply(res, created ? 201 : 200, company);
    });
    server.Post(R"(/v1/companies/external/([^/]+)/archive)", [this](const httplib::Request& req, httplib::Response& res) {
        std::lock_guard<std::mutex> lock(mutex_);
        ++requests_["archive"];
        auto it = companies_.find(req.matches[1]);
        if (it == companies_.end()) return refuse(res, 404, "not_found", "No company " + std::string(req.matches[1]));
        it->second["archived"] = true;
        reply(res, 200, it->second);
    });
}

FakeFeedback::~FakeFeedback() { http_.stop(); }

int FakeFeedback::start() { return http_.start(); }

void FakeFeedback::define_field(const std::string& key, const std::string& type, std::vector<std::string> options) {
    std::lock_guard<std::mutex> lock(mutex_);
    fields_[key] = Field{type, std::move(options)};
}

void FakeFeedback::throttle(int requests) {
    std::lock_guard<std::mutex> lock(mutex_);
    throttle_ = requests;
}

json::object FakeFeedback::company(const std::string& external_id) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = companies_.find(external_id);
    return it == companies_.end() ? json::object{} : it->second;
}

size_t FakeFeedback::company_count() {
    std::lock_guard<std::mutex> lock(mutex_);
    return companies_.size();
}

std::vector<std::string> FakeFeedback::options(const std::string& field) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = fields_.find(field);
    return it == fields_.end() ? std::vector<std::string>{} : it->second.options;
}

int FakeFeedback::requests(const std::string& kind) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = requests_.find(kind);
    return it == requests_.end() ? 0 : it->second;
}

int FakeFeedback::throttled() {
    std::lock_guard<std::mutex> lock(mutex_);
    return throttled_;
}

}  // namespace fakes
