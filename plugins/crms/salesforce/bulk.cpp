// Bulk API 2.0 ingest for large groups of upserts or updates: create a job, upload CSV,
// close it, poll until it ends (however long that takes; poll.h says when), then read which
// records succeeded and which failed, matched back to their operations by the external id
// (upserts) or the Id (updates).
#include <crmsync/support/json_plugin.hpp>

#include <chrono>
#include <functional>
#include <set>
#include <string_view>
#include <unordered_map>

#include "bulk.h"
#include "poll.h"
#include <crmsync/support/csv.hpp>

namespace salesforce {
namespace csv = crmsync::support::csv;

using crmsync::support::text;

namespace {

void append_cell(std::string& out, const json::value& v) {
    if (v.is_null()) out += "#N/A";  // Bulk API 2.0's way to clear a field
    else if (v.is_string()) csv::append_field(out, v.get_string());
    else if (v.is_bool()) out += v.get_bool() ? "true" : "false";
    else csv::append_field(out, json::serialize(v));
}

json::object failure(std::string_view key, std::string_view code, std::string_view message, bool retryable) {
    return json::object{{"key", key},
                        {"success", false},
                        {"retryable", retryable},
                        {"errors", json::array{json::object{{"code", code}, {"message", message}, {"fields", json::array{}}}}}};
}

// The string at `name` in an operation, or "".
std::string_view string_at(const json::value& op, const char* name) {
    const auto* v = op.as_object().if_contains(name);
    return v && v->is_string() ? std::string_view(v->get_string()) : std::string_view();
}

// What the job's results say of one record: its Id and whether it was created, or its error.
struct Landed {
    bool success = false;
    bool created = false;
    std::string id_or_code;
    std::string message;
};

}  // namespace

int32_t bulk_load(Client& client, const crmsync_host_api* host, crmsync_call* call, const std::string& object,
                  const std::string& external_field, const json::array& ops,
                  const std::function<void(const json::object&)>& deliver, std::string& error) {
    const bool update = text(ops.at(0).as_object(), "action") == "update";
    // The column each record is found by, and each operation's value in it.
    const std::string external = update ? "Id" : external_field;
    auto found_by = [&](const json::value& op) { return string_at(op, update ? "id" : "key"); };
    std::set<std::string, std::less<>> columns_set;
    for (const auto& op : ops)
        for (const auto& [k, v] : op.at("fields").as_object()) columns_set.emplace(k);
    columns_set.erase(external);
    std::vector<std::string> columns{external};
    columns.insert(columns.end(), columns_set.begin(), columns_set.end());
    // Written cell by cell into the body, as it is uploaded: no row or cell of its own.
    std::string body = csv::row(columns);
    for (const auto& op : ops) {
        const auto& fields = op.at("fields").as_object();
        csv::append_field(body, found_by(op));
        for (size_t c = 1; c < columns.size(); ++c) {
            body += ',';
            if (auto* v = fields.if_contains(columns[c])) append_cell(body, *v);
        }
        body += '\n';
    }

    json::object job_spec{
        {"object", object}, {"contentType", "CSV"}, {"operation", update ? "update" : "upsert"}, {"lineEnding", "LF"}};
    if (!update) job_spec["externalIdFieldName"] = external;
    auto job = client.request(call, "POST", "/jobs/ingest", json::serialize(job_spec));
    if (job.status != CRMSYNC_STATUS_OK) return error = "creating the bulk job failed: " + job.message, job.status;
    std::string id = text(job.body.as_object(), "id");
    auto upload = client.request(call, "PUT", "/jobs/ingest/" + id + "/batches", body, true, "text/csv");
    if (upload.status != CRMSYNC_STATUS_OK) return error = "uploading the bulk data failed: " + upload.message, upload.status;
    std::string().swap(body);  // not needed while the job runs and its results are read
    auto close = client.request(call, "PATCH", "/jobs/ingest/" + id, R"({"state":"UploadComplete"})");
    if (close.status != CRMSYNC_STATUS_OK) return error = "closing the bulk job failed: " + close.message, close.status;

    // Poll until the job ends, as soon after as its progress lets us tell (poll.h). A slow
    // job is not a failed one: only cancellation stops us, and the records are then upserted
    // again by the next run, harmlessly.
    std::string state;
    const auto records = static_cast<int64_t>(ops.size());
    int64_t processed = 0;
    auto polled = std::chrono::steady_clock::now();
    for (int64_t backoff = 250;; backoff = std::min<int64_t>(backoff * 3 / 2, kMaxPollMs)) {
        const auto sent = std::chrono::steady_clock::now();
        auto info = client.request(call, "GET", "/jobs/ingest/" + id);
        int64_t wait = backoff;
        if (info.status == CRMSYNC_STATUS_OK) {
            const auto& job_info = info.body.as_object();
            state = text(job_info, "state");
            if (state == "JobComplete") break;
            if (state == "Failed" || state == "Aborted")
                return error = "bulk job " + id + " ended " + state + ": " + text(job_info, "errorMessage"), CRMSYNC_STATUS_ERROR;
            const auto now = std::chrono::steady_clock::now();
            const json::value* count = job_info.if_contains("numberRecordsProcessed");
            const int64_t processed_now = count && count->is_int64() ? count->as_int64() : -1;
            using std::chrono::duration_cast, std::chrono::milliseconds;
            wait = next_poll_ms(backoff, records, processed, processed_now, duration_cast<milliseconds>(now - polled).count(),
                                duration_cast<milliseconds>(now - sent).count());
            if (processed_now >= 0 && processed_now <= records) {  // the next estimate's start
                processed = processed_now;
                polled = now;
            }
        } else if (info.status != CRMSYNC_STATUS_RETRY) {
            return error = "polling bulk job " + id + " failed: " + info.message, info.status;
        }
        if (!crmsync::support::wait_unless_cancelled(host, call, wait))
            return error = "stopped while bulk job " + id + " was running", CRMSYNC_STATUS_CANCELLED;
    }

    // Each record's outcome by the value it was found by; a failed row read after a
    // successful one for the same value wins, as the job's last word on it.
    std::unordered_map<std::string, Landed> by_key;
    by_key.reserve(ops.size());
    std::vector<std::string> row;
    for (const char* kind : {"successfulResults", "failedResults"}) {
        const bool successful = std::string_view(kind) == "successfulResults";
        auto res = client.request(call, "GET", "/jobs/ingest/" + id + "/" + kind);
        if (res.status != CRMSYNC_STATUS_OK)
            return error = "reading " + std::string(kind) + " of bulk job " + id + " failed: " + res.message, res.status;
        csv::Reader reader(res.raw);
        if (!reader.next(row)) continue;
        const size_t columns_in = row.size();
        size_t key_col = columns_in, id_col = columns_in, extra_col = columns_in;
        for (size_t c = 0; c < columns_in; ++c) {
            if (row[c] == external) key_col = c;
            if (row[c] == "sf__Id") id_col = c;
            if (row[c] == "sf__Created" || row[c] == "sf__Error") extra_col = c;
        }
        if (key_col == columns_in) return error = "bulk results have no " + external + " column", CRMSYNC_STATUS_ERROR;
        while (reader.next(row)) {
            if (row.size() != columns_in) continue;
            Landed landed;
            if (successful) {
                landed.success = true;
                if (id_col < columns_in) landed.id_or_code = std::move(row[id_col]);
                landed.created = extra_col < columns_in && row[extra_col] == "true";
            } else {
                // sf__Error reads "STATUS_CODE:message --".
                std::string_view text = extra_col < columns_in ? std::string_view(row[extra_col]) : std::string_view();
                auto colon = text.find(':');
                std::string_view code = colon == std::string_view::npos ? "BULK_ERROR" : text.substr(0, colon);
                std::string_view message = colon == std::string_view::npos ? text : text.substr(colon + 1);
                if (message.size() > 3 && message.substr(message.size() - 3) == " --") message.remove_suffix(3);
                landed.id_or_code = code;
                landed.message = message;
            }
            by_key.insert_or_assign(std::move(row[key_col]), std::move(landed));
        }
    }
    std::string found;
    for (const auto& op : ops) {
        std::string_view key = string_at(op, "key");
        found = found_by(op);
        auto it = by_key.find(found);
        if (it == by_key.end()) {
            deliver(failure(key, "UNPROCESSED", "bulk job " + id + " did not process this record", true));
            continue;
        }
        const Landed& landed = it->second;
        if (landed.success)
            deliver(json::object{{"key", key}, {"success", true}, {"id", landed.id_or_code}, {"created", landed.created}});
        else deliver(failure(key, landed.id_or_code, landed.message, landed.id_or_code == "UNABLE_TO_LOCK_ROW"));
    }
    return CRMSYNC_STATUS_OK;
}

}  // namespace salesforce
