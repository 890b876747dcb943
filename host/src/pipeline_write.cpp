// The pipeline's CRM write stage: operations go to the CRM plugin 200 a call (large groups
// of plain upserts, or of updates by id, in one bulk batch), several calls at once; results
// become links or errors, transient per-record failures are retried, and write-time
// directives are resolved here:
//   refs  — a field takes the CRM id of another operation, by key (written first);
//   blobs — a base64 field is fetched from the source just before its operation is written,
//           one operation a call, and dropped after, so files never sit in a batch.
#include <algorithm>
#include <map>
#include <set>

#include "parallel.h"
#include "pipeline.h"

namespace crmsync {
namespace {

// An upsert by key or an update by id with flat fields only: what a bulk load's CSV can carry.
bool bulk_loadable(const Operation& op) {
    return (op.action == "upsert" || (op.action == "update" && !op.id.empty())) &&
           std::none_of(op.fields.begin(), op.fields.end(),
                        [](const auto& f) { return f.value().is_array() || f.value().is_object(); });
}

}  // namespace

Outcome Pipeline::call_destination_write(const std::string& batch_json, std::vector<json::value>& results, RunCounts& counts) {
    PluginInstance& to = reads_crm() ? b_.source : b_.crm;
    auto attempt = [&] {
        results.clear();
        return to.write(batch_json, results);
    };
    return reads_crm() ? call_source(attempt, counts) : call_crm(attempt, counts);
}

std::optional<RunStop> Pipeline::read_earlier_refs(Batch& batch) {
    std::vector<std::string> keys;
    for (const auto& p : batch.ops)
        if (p.active())
            for (const auto& [field, key] : p.op.refs) keys.push_back(key);
    if (keys.empty()) return std::nullopt;
    auto earlier = store_.links(state_scope(), keys);
    if (!earlier)
        return RunStop{RunStatus::failed, "reading what was written before failed: " + earlier.status().message(), false};
    for (auto& [key, link] : *earlier)
        if (!link.crm_id.empty()) batch.earlier_refs.emplace(key, std::move(link.crm_id));
    return std::nullopt;
}

void Pipeline::resolve_refs(std::vector<PendingOperation*>& ops, const Batch& batch) {
    std::map<std::string, std::string> ids = batch.earlier_refs;              // key -> CRM id
    for (const auto& link : batch.commit.links) ids[link.key] = link.crm_id;  // this batch's own come first
    for (auto* p : ops) {
        for (const auto& [field, key] : p->op.refs) {
            auto id = ids.find(key);
            if (id == ids.end()) {
                p->fail("REFERENCE_NOT_SYNCED",
                        field + " refers to " + key +
                            ", which has no CRM record yet (it failed or was not synced); it is tried again when its source "
                            "changes or on a full run",
                        {field});
                break;
            }
            p->op.fields[field] = id->second;
        }
        p->op.refs.clear();
    }
}

std::optional<std::string> Pipeline::with_blobs(PendingOperation& p, RunCounts& counts, std::optional<RunStop>& stop) {
    if (p.op.blobs.empty()) return p.write_json_text();
    json::object op = p.write_json();
    auto& fields = op.at("fields").as_object();
    for (const auto& [field, ref] : p.op.blobs) {
        std::string data, skip;
        int items = 0;
        json::object request{{"type", "blob"}, {"ref", ref}, {"field", field}};
        auto outcome = call_source(
            [&] {
                data.clear();
                skip.clear();
                items = 0;
                return b_.source.fetch(request, [&](json::value&& item) -> int32_t {
                    auto* o = item.if_object();
                    if (!o || find_string(*o, "type") != "blob") return CRMSYNC_STATUS_OK;
                    ++items;
                    if (auto* d = o->if_contains("data_base64"); d && d->is_string()) data = std::string(d->get_string());
                    skip = find_string(*o, "skip").value_or("");
                    return CRMSYNC_STATUS_OK;
                });
            },
            counts);
        if (!outcome.ok() && !is_input_fault(outcome)) {
            // Not this file's fault (stopped, refused, unreachable): stop before this batch,
            // so the next run tries the file again.
            stop = stop_for(outcome, "reading a file from the source");
            return std::nullopt;
        }
        if (!outcome.ok() || items != 1) {
            p.fail("BLOB_UNAVAILABLE",
                   field + ": the source could not provide \"" + ref +
                       "\": " + (outcome.ok() ? "it answered no blob item" : outcome.message),
                   {field});
            return std::nullopt;
        }
        if (!skip.empty()) {
            // The source left the file out on seeing it (a size rule on the content itself).
            p.skip_reason = skip;
            log(Level::warn, skip + " (" + p.op.key + ")");
            counts.bump("files_left_out");
            return std::nullopt;
        }
        fields[field] = std::move(data);
    }
    return json::serialize(op);
}

// Large groups of one object's plain upserts (or updates by id) go to the CRM in one bulk
// batch, operations with files one a call, the rest 200 a call in source order.
std::vector<Pipeline::WriteChunk> Pipeline::plan_chunks(const std::vector<PendingOperation*>& ops) const {
    const auto& bulk = b_.connection.bulk;
    std::vector<WriteChunk> chunks;
    std::map<std::pair<std::string, std::string>, std::vector<PendingOperation*>> groups;  // (object, action)
    std::vector<PendingOperation*> rest;
    for (auto* p : ops) {
        if (!p->op.blobs.empty()) chunks.push_back({{p}, false});
        else if (bulk.mode != BulkPolicy::Mode::never && !reads_crm() && bulk_loadable(p->op))
            groups[{p->op.object, p->op.action}].push_back(p);
        else rest.push_back(p);
    }
    for (auto& [target, group] : groups) {
        if (bulk.mode == BulkPolicy::Mode::always || static_cast<int64_t>(group.size()) > bulk.threshold)
            chunks.push_back({std::move(group), true});
        else rest.insert(rest.end(), group.begin(), group.end());
    }
    std::sort(rest.begin(), rest.end());  // pointers into the batch: source order
    for (size_t start = 0; start < rest.size(); start += kBatchSize)
        chunks.push_back(
            {std::vector<PendingOperation*>(rest.begin() + static_cast<long>(start),
                                            rest.begin() + static_cast<long>(std::min(rest.size(), start + kBatchSize))),
             false});
    return chunks;
}

// Chunks written at once form a wave. A chunk that writes a key an earlier chunk of the
// wave writes too starts the next wave, so that the later write lands later; a chunk with
// a file is a wave of its own, so that files are read and sent one at a time.
std::vector<std::vector<Pipeline::WriteChunk>> Pipeline::plan_waves(std::vector<WriteChunk> chunks) {
    std::vector<std::vector<WriteChunk>> waves;
    std::set<std::string> keys;  // written by the last wave
    bool closed = true;
    for (auto& chunk : chunks) {
        const bool file = chunk.ops.size() == 1 && !chunk.ops.front()->op.blobs.empty();
        bool shares = false;
        for (const auto* p : chunk.ops) shares = shares || keys.count(p->op.key) > 0;
        if (closed || shares || file) {
            waves.emplace_back();
            keys.clear();
        }
        for (const auto* p : chunk.ops) keys.insert(p->op.key);
        waves.back().push_back(std::move(chunk));
        closed = file;
    }
    return waves;
}

// How many CRM calls a run has in flight at once: the connection's max_parallel_requests
// when the plugin written to takes calls at once (CRMSYNC_CAP_THREADSAFE), else one.
size_t Pipeline::parallel_calls() const {
    const PluginInstance& to = reads_crm() ? b_.source : b_.crm;
    return to.can(CRMSYNC_CAP_THREADSAFE) ? static_cast<size_t>(std::max<int64_t>(1, b_.connection.max_parallel_requests)) : 1;
}

std::optional<RunStop> Pipeline::write_operations(const std::vector<PendingOperation*>& ops, Batch& batch) {
    for (auto& wave : plan_waves(plan_chunks(ops)))
        if (auto stop = write_wave(std::move(wave), batch)) return stop;
    return std::nullopt;
}

// One wave: its chunks' write calls at once, then their results in chunk order, and the
// operations that failed transiently tried again. When a call hits a stop, the results of
// the calls beside it are still taken: what was written is never forgotten.
std::optional<RunStop> Pipeline::write_wave(std::vector<WriteChunk> chunks, Batch& batch) {
    for (const auto& chunk : chunks)
        if (chunk.bulk)
            log(Level::info, "loading " + std::to_string(chunk.ops.size()) + " " + chunk.ops.front()->op.object + " " +
                                 chunk.ops.front()->op.action + "s in bulk");
    struct Call {
        WriteChunk chunk;
        std::string request;  // the write call's batch, as JSON text
        Outcome outcome;
        std::vector<json::value> results;
        RunCounts counts;
    };
    // {"external_id_field": …, "operations": […], "bulk": true}, written as text: each
    // operation's fields are serialized once, never copied into a JSON tree first.
    auto request_for = [this](const WriteChunk& chunk, RunCounts& counts, std::optional<RunStop>& stop) {
        std::string request = "{\"external_id_field\":";
        append_json_string(b_.connection.external_id_field, request);
        request += ",\"operations\":[";
        bool first = true;
        for (auto* p : chunk.ops) {
            if (auto op = with_blobs(*p, counts, stop)) {
                request += first ? "" : ",";
                request += *op;
                first = false;
            }
            if (stop) break;
        }
        request += chunk.bulk ? "],\"bulk\":true}" : "]}";
        return request;
    };
    for (int attempt = 0; !chunks.empty(); ++attempt) {
        // Without files nothing can fail or stop while a request is written: each call writes
        // its own, at once with the others. Files are read from the source first, here.
        const bool files = std::any_of(chunks.begin(), chunks.end(), [](const WriteChunk& chunk) {
            return std::any_of(chunk.ops.begin(), chunk.ops.end(), [](const auto* p) { return !p->op.blobs.empty(); });
        });
        std::vector<Call> calls;
        for (auto& chunk : chunks) {
            std::string request;
            if (files) {
                std::optional<RunStop> stop;
                request = request_for(chunk, batch.commit.counts, stop);
                if (stop) return stop;
                std::erase_if(chunk.ops,
                              [](PendingOperation* p) { return p->error_code.has_value() || !p->skip_reason.empty(); });
                if (chunk.ops.empty()) continue;
            }
            calls.push_back({std::move(chunk), std::move(request), {}, {}, {}});
        }
        run_at_once(calls.size(), parallel_calls(), [&](size_t i) {
            Call& c = calls[i];
            if (!files) {
                std::optional<RunStop> none;  // without files, with_blobs neither stops nor fails
                c.request = request_for(c.chunk, c.counts, none);
            }
            c.outcome = call_destination_write(c.request, c.results, c.counts);
            std::string().swap(c.request);  // a file's content goes as soon as it is written
        });
        std::optional<RunStop> stop;
        chunks.clear();
        for (auto& c : calls) {
            batch.commit.counts.add(c.counts);
            if (!c.outcome.ok()) {
                // Not the records' fault: keep the cursor where it was so the next run redoes them.
                if (!is_input_fault(c.outcome)) stop = stop ? stop : stop_for(c.outcome, "CRM write");
                else
                    for (auto* p : c.chunk.ops) p->fail("WRITE_FAILED", c.outcome.message);
                continue;
            }
            std::vector<PendingOperation*> again;
            take_results(c.chunk.ops, c.results, batch, again);
            if (!again.empty()) chunks.push_back({std::move(again), c.chunk.bulk});
        }
        // Operations waiting to be tried again have neither landed nor failed: when the run
        // stops (beside them, or while it waits), the next run does them with the batch.
        auto not_failed_yet = [&] {
            for (auto& chunk : chunks)
                for (auto* p : chunk.ops) p->error_code.reset();
        };
        if (stop) {
            not_failed_yet();
            return stop;
        }
        if (chunks.empty() || attempt + 1 >= b_.module.retry.max_attempts) break;
        size_t retried = 0;
        const std::string code = *chunks.front().ops.front()->error_code;
        for (auto& chunk : chunks) retried += chunk.ops.size();
        batch.commit.counts.retries += static_cast<int64_t>(retried);
        log(Level::warn, std::to_string(retried) + " operation(s) hit a transient error (" + code + "); retrying them");
        not_failed_yet();
        if (!caller_.backoff(attempt)) return RunStop{RunStatus::stopped, kInterrupted, false};
    }
    return std::nullopt;
}

// Successes become links (and write-backs); failures keep the CRM's code, message and
// fields; the retryable ones go to `again`.
void Pipeline::take_results(const std::vector<PendingOperation*>& chunk, const std::vector<json::value>& results, Batch& batch,
                            std::vector<PendingOperation*>& again) {
    const bool writes_back = b_.source.can(CRMSYNC_CAP_WRITE);
    for (size_t i = 0; i < chunk.size(); ++i) {
        auto* p = chunk[i];
        const json::object* r = i < results.size() ? results[i].if_object() : nullptr;
        if (!r) {
            p->fail("NO_RESULT", "the CRM plugin returned no result for this operation");
            continue;
        }
        if (find_bool(*r, "success").value_or(false)) {
            bool created = find_bool(*r, "created").value_or(!p->known);
            if (p->op.action == "archive") batch.commit.counts.bump("archived");
            else if (p->op.object == "$options") batch.commit.counts.bump("select_options_followed");
            else ++(created ? batch.commit.counts.created : batch.commit.counts.updated);
            LinkRow link{p->op.key, p->op.source_id, p->op.object, find_string(*r, "id").value_or(""), p->hash, clock_.now_ms()};
            link.crm_key = p->crm_key;
            link.version = p->op.version;
            if (writes_back && p->op.writeback)
                batch.writebacks.push_back({{"action", "writeback"},
                                            {"key", link.key},
                                            {"source_id", link.source_id},
                                            {"object", link.object},
                                            {"id", link.crm_id}});
            batch.commit.links.push_back(std::move(link));
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
}

}  // namespace crmsync
