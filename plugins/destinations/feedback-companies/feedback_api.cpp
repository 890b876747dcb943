#include "feedback_api.h"

#include <crmsync/support/json_plugin.hpp>

#include <filesystem>
#include <fstream>

namespace feedback {
using crmsync::support::text;
using crmsync::support::url_encode;

namespace {

json::object refused(const std::string& code, const std::string& message) {
    return json::object{{"success", false},
                        {"errors", json::array{json::object{{"code", code}, {"message", message}, {"fields", json::array{}}}}}};
}

// The tool's error body {"error", "message"} as a record error: its code in capitals.
json::object refusal_of(int status, const json::value& body) {
    std::string code = "HTTP_" + std::to_string(status), message;
    if (auto* o = body.if_object()) {
        if (auto e = text(*o, "error"); !e.empty()) {
            code.clear();
            for (char c : e) code += static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
        }
        message = text(*o, "message");
    }
    return refused(code, message.empty() ? "the feedback tool answered HTTP " + std::to_string(status) : message);
}

}  // namespace

Destination::Answer Destination::send(crmsync_call* call, const char* method, const std::string& path, const std::string& body) {
    Answer a;
    auto res = crmsync::support::http_waiting_out_429(
        host_, call, method, base_url_ + path,
        {"Authorization: Bearer " + token_, "Content-Type: application/json", "Accept: application/json"}, body, true,
        "feedback tool API");
    if (res.rc == CRMSYNC_STATUS_CANCELLED) return a.rc = res.rc, a.error = "stopped", a;
    if (res.rc != CRMSYNC_STATUS_OK) return a.rc = res.rc, a.error = "the feedback tool did not answer (" + base_url_ + ")", a;
    a.status = res.status;
    json::error_code ec;
    a.body = json::parse(res.body, ec);
    if (ec) a.body = nullptr;
    if (res.status == 401 || res.status == 403)
        return a.rc = CRMSYNC_STATUS_AUTH_FAILED,
               a.error = "the feedback tool refused the API token (HTTP " + std::to_string(res.status) +
                         "); check the credential api_token",
               a;
    if (res.status == 429) return a.rc = CRMSYNC_STATUS_RETRY, a.error = "the feedback tool kept answering 429", a;
    if (res.status >= 500)
        return a.rc = CRMSYNC_STATUS_RETRY, a.error = "the feedback tool answered HTTP " + std::to_string(res.status), a;
    return a;
}

Written Destination::append(const std::string& file, const json::object& line, const std::string& id) {
    Written w;
    std::error_code ec;
    std::filesystem::create_directories(folder_, ec);
    std::ofstream out(std::filesystem::path(folder_) / file, std::ios::app | std::ios::binary);
    out << json::serialize(line) << "\n";
    out.flush();
    if (!out) return w.status = CRMSYNC_STATUS_ERROR, w.error = "cannot write to the export folder " + folder_, w;
    w.result = json::object{{"success", true}, {"id", id}};
    return w;
}

Written Destination::upsert(crmsync_call* call, const std::string& external_id, const json::object& company) {
    if (!is_api()) {
        json::object line = company;
        line["external_id"] = external_id;
        line["action"] = "upsert";
        return append("companies.jsonl", line, "export:" + external_id);
    }
    Written w;
    auto a = send(call, "PUT", "/v1/companies/external/" + url_encode(external_id), json::serialize(company));
    if (a.rc != CRMSYNC_STATUS_OK) return w.status = a.rc, w.error = a.error, w;
    if (a.status != 200 && a.status != 201) return w.result = refusal_of(a.status, a.body), w;
    const auto* o = a.body.if_object();
    w.result = json::object{{"success", true}, {"id", o ? text(*o, "id") : ""}, {"created", a.status == 201}};
    return w;
}

Written Destination::archive(crmsync_call* call, const std::string& external_id) {
    if (!is_api())
        return append("companies.jsonl", json::object{{"external_id", external_id}, {"action", "archive"}},
                      "export:" + external_id);
    Written w;
    auto a = send(call, "POST", "/v1/companies/external/" + url_encode(external_id) + "/archive", "{}");
    if (a.rc != CRMSYNC_STATUS_OK) return w.status = a.rc, w.error = a.error, w;
    // 404: the company is gone from the tool already; nothing is left to archive.
    if (a.status != 200 && a.status != 404) return w.result = refusal_of(a.status, a.body), w;
    const auto* o = a.body.if_object();
    w.result = json::object{{"success", true}, {"id", o ? text(*o, "id") : ""}};
    return w;
}

Written Destination::follow_options(crmsync_call* call, const std::string& field, const std::vector<std::string>& values) {
    if (!is_api()) {
        json::array list;
        for (const auto& v : values) list.emplace_back(v);
        return append("options.jsonl", json::object{{"field", field}, {"values", std::move(list)}}, "options:" + field);
    }
    Written w;
    auto fields = send(call, "GET", "/v1/custom-fields", "");
    if (fields.rc != CRMSYNC_STATUS_OK) return w.status = fields.rc, w.error = fields.error, w;
    if (fields.status != 200) return w.result = refusal_of(fields.status, fields.body), w;
    const json::object* found = nullptr;
    if (auto* o = fields.body.if_object())
        if (auto* list = o->if_contains("fields"); list && list->is_array())
            for (const auto& f : list->get_array())
                if (f.is_object() && text(f.get_object(), "key") == field) found = &f.get_object();
    if (!found)
        return w.result = refused("UNKNOWN_FIELD",
                                  "the feedback tool has no custom field \"" + field + "\"; create it as a select field first"),
               w;
    std::vector<std::string> have;
    if (auto* options = found->if_contains("options"); options && options->is_array())
        for (const auto& o : options->get_array())
            if (o.is_string()) have.emplace_back(o.get_string());
    int added = 0;
    for (const auto& v : values) {
        if (std::find(have.begin(), have.end(), v) != have.end()) continue;
        auto a = send(call, "POST", "/v1/custom-fields/" + url_encode(field) + "/options",
                      json::serialize(json::object{{"value", v}}));
        if (a.rc != CRMSYNC_STATUS_OK) return w.status = a.rc, w.error = a.error, w;
        if (a.status != 201 && a.status != 409) return w.result = refusal_of(a.status, a.body), w;
        ++added;
    }
    if (added > 0)
        host_->log(call, CRMSYNC_LOG_INFO,
                   ("added " + std::to_string(added) + " option(s) to the feedback tool's field " + field).c_str());
    w.result = json::object{{"success", true}, {"id", "options:" + field}};
    return w;
}

}  // namespace feedback
