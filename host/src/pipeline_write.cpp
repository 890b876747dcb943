// The pipeline's CRM write step: operations go to the CRM plugin 200 a call (large groups of
// plain upserts in one bulk batch), results become links or errors, transient per-record
// failures are retried, and write-time directives are resolved here:
//   refs  — a field takes the CRM id of another operation, by key (written first);
//   blobs — a base64 field is fetched from the source just before its operation is written,
//           one operation a call, and dropped after, so files never sit in a batch.
#include <algorithm>
#include <map>

#include "pipeline.h"

namespace crmsync {

void Pipeline::resolve_refs(std::vector<PendingOperation*>& ops, const BatchCommit& batch) {
    std::map<std::string, std::string> ids;  // key -> CRM id
    std::vector<std::string> unknown;
    for (const auto& link : batch.links) ids[link.key] = link.crm_id;
    for (auto* p : ops)
        for (const auto& [field, key] : *find_object(p->op, "refs"))
            if (key.is_string() && !ids.count(std::string(key.get_string()))) unknown.emplace_back(key.get_string());
    if (!unknown.empty())
        for (auto& [key, link] : store_.links(b_.module.name, unknown))
            if (!link.crm_id.empty()) ids.emplace(key, link.crm_id);
    for (auto* p : ops) {
        auto& fields = p->op.at("fields").as_object();
        for (const auto& [field, key] : *find_object(p->op, "refs")) {
            auto id = key.is_string() ? ids.find(std::string(key.get_string())) : ids.end();
            if (id == ids.end()) {
                p->fail("REFERENCE_NOT_SYNCED",
                        std::string(field) + " refers to " + (key.is_string() ? std::string(key.get_string()) : json::serialize(key)) +
                            ", which has no CRM record yet (it failed or was not synced); it is tried again when its source changes or on a full run",
                        {std::string(field)});
                break;
            }
            fields[field] = id->second;
        }
        p->op.erase("refs");
    }
}

std::optional<json::object> Pipeline::with_blobs(PendingOperation& p, RunCounts& counts, Outcome& outcome) {
    json::object op = p.op;
    const json::object* blobs = find_object(p.op, "blobs");
    if (!blobs) return op;
    auto& fields = op.at("fields").as_object();
    for (const auto& [field, ref] : *blobs) {
        std::string data;
        int items = 0;
        json::object request{{"type", "blob"}, {"ref", ref}, {"field", field}};
        outcome = with_retry(
            b_.source, b_.module.credentials,
            [&] {
                data.clear();
                items = 0;
                return b_.source.fetch(request, [&](json::value&& item) -> int32_t {
                    auto* o = item.if_object();
                    if (!o || find_string(*o, "type") != "blob") return CRMSYNC_STATUS_OK;
                    ++items;
                    if (auto* d = o->if_contains("data_base64"); d && d->is_string()) data = std::string(d->get_string());
                    return CRMSYNC_STATUS_OK;
                });
            },
            counts);
        if (!outcome.ok() && outcome.status != CRMSYNC_STATUS_ERROR && outcome.status != CRMSYNC_STATUS_NOT_SUPPORTED)
            return std::nullopt;  // not this file's fault (stopped, refused, unreachable): the caller stops the run
        if (!outcome.ok() || items != 1) {
            p.fail("BLOB_UNAVAILABLE", std::string(field) + ": the source could not provide " + json::serialize(ref) + ": " +
                                           (outcome.ok() ? "it answered no blob item" : outcome.message),
                   {std::string(field)});
            return std::nullopt;
        }
        fields[field] = std::move(data);
    }
    op.erase("blobs");
    return op;
}

void Pipeline::write_operations(const std::vector<PendingOperation*>& ops, BatchCommit& batch, WriteState& state) {
    if (ops.empty() || state.stop) return;
    const auto& bulk = b_.connection.bulk;
    const bool writes_back = b_.source.can(CRMSYNC_CAP_WRITE);
    // Large groups of plain upserts go to the CRM in one bulk batch, operations with files one
    // a call, the rest 200 a call in source order.
    std::vector<std::pair<std::vector<PendingOperation*>, bool>> chunks;
    {
        std::map<std::string, std::vector<PendingOperation*>> groups;
        std::vector<PendingOperation*> rest;
        for (auto* p : ops) {
            if (find_object(p->op, "blobs")) {
                chunks.push_back({{p}, false});
                continue;
            }
            bool plain = find_text(p->op, "action") == "upsert";
            for (const auto& [k, v] : p->op.at("fields").as_object()) plain = plain && !v.is_array() && !v.is_object();
            if (plain && bulk.mode != BulkPolicy::Mode::never) groups[find_text(p->op, "object")].push_back(p);
            else rest.push_back(p);
        }
        for (auto& [object, group] : groups) {
            if (bulk.mode == BulkPolicy::Mode::always || static_cast<int64_t>(group.size()) > bulk.threshold)
                chunks.emplace_back(std::move(group), true);
            else rest.insert(rest.end(), group.begin(), group.end());
        }
        std::sort(rest.begin(), rest.end());
        for (size_t start = 0; start < rest.size(); start += kBatchSize)
            chunks.emplace_back(std::vector<PendingOperation*>(rest.begin() + static_cast<long>(start),
                                                               rest.begin() + static_cast<long>(std::min(rest.size(), start + kBatchSize))),
                                false);
    }
    for (auto& [chunk_ops, in_bulk] : chunks) {
        auto chunk = std::move(chunk_ops);
        if (in_bulk) log(Level::info, "loading " + std::to_string(chunk.size()) + " " + find_text(chunk.front()->op, "object") + " upserts in bulk");
        for (int attempt = 0; !chunk.empty(); ++attempt) {
            json::array operations;
            for (auto* p : chunk) {
                Outcome fetched;
                auto op = with_blobs(*p, batch.counts, fetched);
                if (op) {
                    operations.push_back(std::move(*op));
                } else if (!p->error_code) {
                    // The source could not give a file for reasons of its own: stop before this
                    // batch, so the next run tries the file again.
                    state.stop = true;
                    bool stopped = fetched.status == CRMSYNC_STATUS_CANCELLED || fetched.status == CRMSYNC_STATUS_RATE_LIMITED;
                    state.stop_status = stopped ? "stopped" : "failed";
                    state.stop_message = "reading a file from the source stopped: " + fetched.message + " (the next run resumes before this batch)";
                    state.unreachable = !stopped;
                    return;
                }
            }
            std::erase_if(chunk, [](PendingOperation* p) { return p->error_code.has_value(); });
            if (chunk.empty()) break;
            json::object write_batch{{"external_id_field", b_.connection.external_id_field}, {"operations", std::move(operations)}};
            if (in_bulk) write_batch["bulk"] = true;
            std::vector<json::value> results;
            auto outcome = with_retry(
                b_.crm, b_.connection.credentials,
                [&] {
                    results.clear();
                    return b_.crm.write(write_batch, results);
                },
                batch.counts);
            write_batch.clear();  // a file's content goes as soon as it is written
            if (!outcome.ok()) {
                if (outcome.status == CRMSYNC_STATUS_RATE_LIMITED || outcome.status == CRMSYNC_STATUS_CANCELLED ||
                    outcome.status == CRMSYNC_STATUS_AUTH_FAILED || outcome.status == CRMSYNC_STATUS_RETRY) {
                    // Not the records' fault: keep the cursor where it was so the next run redoes them.
                    state.stop = true;
                    state.stop_status = outcome.status == CRMSYNC_STATUS_RATE_LIMITED ? "stopped" : "failed";
                    state.stop_message = "CRM write stopped: " + outcome.message + " (the next run resumes before this batch)";
                    state.unreachable = outcome.status != CRMSYNC_STATUS_RATE_LIMITED && outcome.status != CRMSYNC_STATUS_CANCELLED;
                    return;
                }
                for (auto* p : chunk) p->fail("WRITE_FAILED", outcome.message);
                break;
            }
            std::vector<PendingOperation*> again;
            for (size_t i = 0; i < chunk.size(); ++i) {
                auto* p = chunk[i];
                const json::object* r = i < results.size() ? results[i].if_object() : nullptr;
                if (!r) {
                    p->fail("NO_RESULT", "the CRM plugin returned no result for this operation");
                    continue;
                }
                if (find_bool(*r, "success").value_or(false)) {
                    bool created = find_bool(*r, "created").value_or(!p->known);
                    ++(created ? batch.counts.created : batch.counts.updated);
                    LinkRow link{find_text(p->op, "key"), p->source_id, find_text(p->op, "object"),
                                 find_string(*r, "id").value_or(""), p->hash, clock_.now_ms()};
                    if (writes_back && find_bool(p->op, "writeback").value_or(false))
                        state.writebacks.push_back({{"action", "writeback"}, {"key", link.key}, {"source_id", link.source_id},
                                                    {"object", link.object}, {"id", link.crm_id}});
                    batch.links.push_back(std::move(link));
                    continue;
                }
                std::string code = "UNKNOWN", message;
                std::vector<std::string> fields;
                if (auto* errors = find_array(*r, "errors"); errors && !errors->empty() && errors->at(0).is_object()) {
                    const auto& e = errors->at(0).get_object();
                    code = find_string(e, "code").value_or("UNKNOWN");
                    message = find_string(e, "message").value_or("");
                    if (auto* fs = find_array(e, "fields"))
                        for (const auto& f : *fs)
                            if (f.is_string()) fields.emplace_back(f.get_string());
                }
                p->fail(code, message, fields);
                if (find_bool(*r, "retryable").value_or(false)) again.push_back(p);
            }
            if (again.empty() || attempt + 1 >= b_.module.retry.max_attempts) break;
            batch.counts.retries += static_cast<int64_t>(again.size());
            log(Level::warn, std::to_string(again.size()) + " operation(s) hit a transient error (" + *again.front()->error_code +
                                 "); retrying them");
            for (auto* p : again) p->error_code.reset();
            chunk = std::move(again);
            if (!backoff(attempt)) break;
        }
    }
}

}  // namespace crmsync
