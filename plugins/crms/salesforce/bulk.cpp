// Bulk API 2.0 ingest for large groups of upserts or updates: create a job, upload CSV,
// close it, poll with backoff until it ends (however long that takes), then read which
// records succeeded and which failed, matched back to their operations by the external id
// (upserts) or the Id (updates).
#include <crmsync/support/json_plugin.hpp>

#include <map>
#include <set>

#include "bulk.h"
#include <crmsync/support/csv.hpp>

namespace salesforce {
namespace csv = crmsync::support::csv;

using crmsync::support::text;

namespace {

std::string cell(const json::value& v) {
    if (v.is_null()) return "#N/A";  // Bulk API 2.0's way to clear a field
    if (v.is_string()) return std::string(v.get_string());
    if (v.is_bool()) return v.get_bool() ? "true" : "false";
    return json::serialize(v);
}

json::object failure(const std::string& key, const std::string& code, const std::string& message, bool retryable) {
    return json::object{{"key", key},
                        {"success", false},
                        {"retryable", retryable},
                        {"errors", json::array{json::object{{"code", code}, {"message", message}, {"fields", json::array{}}}}}};
}

}  // namespace

int32_t bulk_load(Client& client, const crmsync_host_api* host, crmsync_call* call, const std::string& object,
                  const std::string& external_field, const json::array& ops, std::vector<json::object>& results,
                  std::string& error) {
    const bool update = text(ops.at(0).as_object(), "action") == "update";
    // The column each record is found by, and each operation's value in it.
    const std::string external = update ? "Id" : external_field;
    auto found_by = [&](const json::value& op) { return text(op.as_object(), update ? "id" : "key"); };
    std::set<std::string> columns_set;
    for (const auto& op : ops)
        for (const auto& [k, v] : op.at("fields").as_object()) columns_set.insert(std::string(k));
    columns_set.erase(external);
    std::vector<std::string> columns{external};
    columns.insert(columns.end(), columns_set.begin(), columns_set.end());
    std::string body = csv::row(columns);
    for (const auto& op : ops) {
        const auto& fields = op.at("fields").as_object();
        std::vector<std::string> values{found_by(op)};
        for (size_t c = 1; c < columns.size(); ++c) {
            auto* v = fields.if_contains(columns[c]);
            values.push_back(v ? cell(*v) : "");
        }
        body += csv::row(values);
    }

    json::object job_spec{
        {"object", object}, {"contentType", "CSV"}, {"operation", update ? "update" : "upsert"}, {"lineEnding", "LF"}};
    if (!update) job_spec["externalIdFieldName"] = external;
    auto job = client.request(call, "POST", "/jobs/ingest", json::serialize(job_spec));
    if (job.status != CRMSYNC_STATUS_OK) return error = "creating the bulk job failed: " + job.message, job.status;
    std::string id = text(job.body.as_object(), "id");
    auto upload = client.request(call, "PUT", "/jobs/ingest/" + id + "/batches", body, true, "text/csv");
    if (upload.status != CRMSYNC_STATUS_OK) return error = "uploading the bulk data failed: " + upload.message, upload.status;
    auto close = client.request(call, "PATCH", "/jobs/ingest/" + id, R"({"state":"UploadComplete"})");
    if (close.status != CRMSYNC_STATUS_OK) return error = "closing the bulk job failed: " + close.message, close.status;

    // Poll until the job ends. A slow job is not a failed one: only cancellation stops us,
    // and the records are then upserted again by the next run, harmlessly.
    std::string state;
    for (int64_t delay = 250;; delay = std::min<int64_t>(delay * 3 / 2, 5000)) {
        auto info = client.request(call, "GET", "/jobs/ingest/" + id);
        if (info.status == CRMSYNC_STATUS_OK) {
            state = text(info.body.as_object(), "state");
            if (state == "JobComplete") break;
            if (state == "Failed" || state == "Aborted")
                return error = "bulk job " + id + " ended " + state + ": " + text(info.body.as_object(), "errorMessage"),
                       CRMSYNC_STATUS_ERROR;
        } else if (info.status != CRMSYNC_STATUS_RETRY) {
            return error = "polling bulk job " + id + " failed: " + info.message, info.status;
        }
        if (!crmsync::support::wait_unless_cancelled(host, call, delay))
            return error = "stopped while bulk job " + id + " was running", CRMSYNC_STATUS_CANCELLED;
    }

    std::map<std::string, json::object> by_key;
    for (const char* kind : {"successfulResults", "failedResults"}) {
        auto res = client.request(call, "GET", "/jobs/ingest/" + id + "/" + kind);
        if (res.status != CRMSYNC_STATUS_OK)
            return error = "reading " + std::string(kind) + " of bulk job " + id + " failed: " + res.message, res.status;
        auto rows = csv::parse(res.raw);
        if (rows.empty()) continue;
        const auto& header = rows[0];
        size_t key_col = header.size(), id_col = header.size(), extra_col = header.size();
        for (size_t c = 0; c < header.size(); ++c) {
            if (header[c] == external) key_col = c;
            if (header[c] == "sf__Id") id_col = c;
            if (header[c] == "sf__Created" || header[c] == "sf__Error") extra_col = c;
        }
        if (key_col == header.size()) return error = "bulk results have no " + external + " column", CRMSYNC_STATUS_ERROR;
        for (size_t r = 1; r < rows.size(); ++r) {
            const auto& row = rows[r];
            if (row.size() != header.size()) continue;
            const std::string& key = row[key_col];
            if (std::string(kind) == "successfulResults") {
                by_key[key] = json::object{{"key", key},
                                           {"success", true},
                                           {"id", id_col < row.size() ? row[id_col] : ""},
                                           {"created", extra_col < row.size() && row[extra_col] == "true"}};
            } else {
                // sf__Error reads "STATUS_CODE:message --".
                std::string text = extra_col < row.size() ? row[extra_col] : "";
                auto colon = text.find(':');
                std::string code = colon == std::string::npos ? "BULK_ERROR" : text.substr(0, colon);
                std::string message = colon == std::string::npos ? text : text.substr(colon + 1);
                if (message.size() > 3 && message.compare(message.size() - 3, 3, " --") == 0) message.resize(message.size() - 3);
                by_key[key] = failure(key, code, message, code == "UNABLE_TO_LOCK_ROW");
            }
        }
    }
    for (const auto& op : ops) {
        std::string key = text(op.as_object(), "key");
        auto it = by_key.find(found_by(op));
        json::object result = it != by_key.end()
                                  ? it->second
                                  : failure(key, "UNPROCESSED", "bulk job " + id + " did not process this record", true);
        result["key"] = key;
        results.push_back(std::move(result));
    }
    return CRMSYNC_STATUS_OK;
}

}  // namespace salesforce
