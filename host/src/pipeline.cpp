#include "pipeline.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <thread>

#include "digest.h"
#include "process.h"
#include "services/services.h"

namespace crmsync {
namespace {

constexpr int64_t kErrorRetentionMs = 365LL * 24 * 3600 * 1000;

// Checks what the plugin emitted is an operation the host can act on.
std::optional<std::string> operation_problem(const json::object& op) {
    auto object = find_string(op, "object");
    if (!object || object->empty()) return "operation has no \"object\"";
    auto key = find_string(op, "key");
    if (!key || key->empty()) return "operation has no \"key\" (every operation needs a deterministic key)";
    if (key->size() > 255) return "operation \"key\" is longer than 255 characters";
    auto action = find_string(op, "action");
    if (!action || (*action != "upsert" && *action != "update"))
        return "operation \"action\" must be \"upsert\" or \"update\"";
    if (!find_object(op, "fields")) return "operation has no \"fields\" object";
    for (const char* directive : {"refs", "blobs"}) {
        auto* d = op.if_contains(directive);
        if (!d) continue;
        if (!d->is_object()) return std::string("operation \"") + directive + "\" must be an object of field -> string";
        for (const auto& [field, value] : d->get_object())
            if (!value.is_string() || value.get_string().empty())
                return std::string("operation \"") + directive + "\"." + std::string(field) + " must be a non-empty string";
    }
    return std::nullopt;
}

}  // namespace

Pipeline::Pipeline(StateStore& store, ModuleBinding binding, const Clock& clock, const std::atomic<bool>& cancel,
                   const Diagnostics& diagnostics)
    : store_(store), b_(binding), clock_(clock), cancel_(cancel), diagnostics_(diagnostics) {}

void Pipeline::log(Level level, std::string message) {
    // The run log is where these lines live; stderr gets them only when debugging.
    diagnostics_.debug(b_.module.name + ": " + message);
    log_.push_back({clock_.now_ms(), std::string(level_name(level)), std::move(message)});
}

bool Pipeline::backoff(int attempt) {
    const auto& retry = b_.module.retry;
    int64_t delay = std::min<int64_t>(retry.cap_ms, retry.base_ms << std::min(attempt, 20));
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(delay);
    while (std::chrono::steady_clock::now() < until) {
        if (cancel_.load()) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(std::min<int64_t>(delay, 50)));
    }
    return true;
}

bool Pipeline::authenticate(PluginInstance& plugin, const std::vector<CredentialRef>& refs, std::string& why) {
    auto credentials = resolve_credentials(refs);
    if (!credentials) {
        why = credentials.status().message();
        return false;
    }
    plugin.services().secrets = *credentials;
    auto outcome = plugin.authenticate(*credentials);
    if (!outcome.ok()) why = plugin.plugin().id() + " refused to authenticate: " + outcome.message;
    return outcome.ok();
}

Outcome Pipeline::with_retry(PluginInstance& plugin, const std::vector<CredentialRef>& refs,
                             const std::function<Outcome()>& attempt, RunCounts& counts) {
    bool reauthenticated = false;
    for (int tries = 1;; ++tries) {
        Outcome outcome = attempt();
        if (outcome.status == CRMSYNC_STATUS_AUTH_FAILED && !reauthenticated) {
            reauthenticated = true;
            std::string why;
            log(Level::info, plugin.plugin().id() + ": session refused, authenticating again");
            if (!authenticate(plugin, refs, why)) return {CRMSYNC_STATUS_AUTH_FAILED, why};
            continue;
        }
        if (outcome.status != CRMSYNC_STATUS_RETRY) return outcome;
        if (tries >= b_.module.retry.max_attempts) {
            outcome.message += " (gave up after " + std::to_string(tries) + " attempts)";
            return outcome;
        }
        ++counts.retries;
        log(Level::warn, plugin.plugin().id() + ": " + outcome.message + "; retrying (attempt " +
                             std::to_string(tries + 1) + ")");
        if (!backoff(tries - 1)) return {CRMSYNC_STATUS_CANCELLED, "stopped while waiting to retry"};
    }
}

RunReport Pipeline::run(const RunOptions& options) {
    RunReport report;
    const std::string& module = b_.module.name;
    const int64_t started = clock_.now_ms();
    std::string holder = options.lease_holder.empty() ? "crmsync" : options.lease_holder;

    auto lease = store_.acquire_lease(module, holder, started, options.lease_ttl_ms);
    if (lease && !*lease) {
        // A holder on this machine that no longer exists was killed: its lease is ours now.
        if (auto held = store_.lease(module); held && !holder_may_be_alive(held->holder)) {
            lease = store_.take_over_lease(module, held->holder, holder, started, options.lease_ttl_ms);
            if (lease && *lease) log(Level::warn, "took over the lease of " + held->holder + ", which is no longer running");
        }
    }
    if (!lease || !*lease) {
        auto held = store_.lease(module);
        report.status = "busy";
        report.message = "module " + module + " is already running" +
                         (held ? " (lease held by " + held->holder + " until " + iso8601_utc(held->expires_ms) + ")"
                               : "");
        return report;
    }
    // A run that was going when its process died leaves "running" behind: say what it was.
    store_.mark_interrupted(module, started);
    int64_t purged = store_.purge_errors(started - kErrorRetentionMs);

    auto run_id = store_.start_run(module, options.dry_run ? "dry-run" : options.trigger, started);
    report.run_id = run_id.value();
    if (purged > 0) log(Level::info, "removed " + std::to_string(purged) + " error-log entries older than 365 days");

    auto usage_sink = [this](int64_t used, int64_t limit) {
        if (budget_.first_used < 0) budget_.first_used = used - 1;  // the reporting call counts
        budget_.last_used = used;
        budget_.limit = limit;
    };
    auto log_sink = [this](Level level, std::string_view message) { log(level, std::string(message)); };
    for (PluginInstance* p : {&b_.source, &b_.crm}) {
        p->services().api_usage = usage_sink;
        p->services().log = log_sink;
        p->services().cancel = &cancel_;
        p->services().clock = &clock_;
    }

    RunCounts total;
    auto finish = [&](std::string status, std::string message) {
        total.api_calls = (budget_.first_used >= 0 ? budget_.last_used - budget_.first_used : 0) +
                          b_.source.services().http->calls();
        report.status = std::move(status);
        report.message = std::move(message);
        report.counts = total;
        report.duration_ms = clock_.now_ms() - started;
        report.api_used = budget_.last_used;
        report.api_limit = budget_.limit;
        log(report.status == "failed" ? Level::error : Level::info,
            "run " + report.status + (report.message.empty() ? "" : ": " + report.message));
        BatchCommit last;
        last.run_id = report.run_id;
        last.module = module;
        last.counts.api_calls = total.api_calls;
        store_.commit_batch(last);
        store_.finish_run(report.run_id, report.status, report.message, clock_.now_ms(), log_);
        log_.clear();
        store_.release_lease(module, holder);
        return report;
    };

    std::string why;
    log(Level::info, std::string(options.dry_run ? "dry run" : "run") + " started (" + options.trigger + ")");
    if (!authenticate(b_.source, b_.module.credentials, why) || !authenticate(b_.crm, b_.connection.credentials, why)) {
        report.unreachable = true;
        return finish("failed", why);
    }

    // The shared services, set up once per run: mappings checked against the plugin's
    // fixed fields before anything is fetched.
    std::unique_ptr<Services> services;
    if (!services_) {
        auto mappings = parse_mappings(b_.module.mappings);
        auto settings = ServiceSettings::from_manifest(b_.module);
        if (!mappings) return finish("failed", mappings.status().prefixed(b_.module.manifest_path + ": ").message());
        if (!settings) return finish("failed", settings.status().message());
        auto targets = Services::list_targets(b_.source);
        if (!targets) return finish("failed", targets.status().prefixed(b_.module.manifest_path + ": ").message());
        auto checked = Services::check_mappings(*targets, b_.module, *mappings, b_.source.plugin().id());
        if (!checked) return finish("failed", checked.message());
        services = std::make_unique<Services>(b_.crm, b_.module, std::move(mappings.value()), std::move(settings.value()),
                                              options.dry_run, [this](int attempt) { return backoff(attempt); });
        services->set_required_any(std::move(targets->required_any));
    }

    std::optional<std::string> cursor_text = options.full ? std::nullopt : store_.cursor(module);
    json::value cursor = nullptr;
    if (cursor_text) {
        auto parsed = parse_json(*cursor_text);
        if (parsed) cursor = parsed.value();
    }
    std::string stop_status, stop_message;

    for (bool more = true; more;) {
        if (cancel_.load()) {
            stop_status = "stopped";
            stop_message = "interrupted; everything before this point is saved";
            break;
        }
        const int64_t page = kBatchSize;
        if (options.limit && *options.limit - total.fetched <= 0) break;

        // ---- fetch a page (or, when the CRM may load in bulk, pages up to the bulk batch size)
        struct Fetched {
            std::string id;
            json::value record;
        };
        std::vector<Fetched> records;
        std::optional<json::value> checkpoint;
        BatchCommit batch;
        batch.run_id = report.run_id;
        batch.module = module;
        const auto& bulk = b_.connection.bulk;
        const size_t gather = bulk.mode == BulkPolicy::Mode::never ? static_cast<size_t>(kBatchSize) : static_cast<size_t>(bulk.max_operations);
        json::value page_cursor = cursor;
        bool fetch_stopped = false;
        std::vector<int64_t> inbox_ids;
        if (options.inbox) {
            // Webhook events, oldest first: each body is one source record.
            for (auto& row : store_.inbox_pending(module, static_cast<int>(page))) {
                auto parsed = parse_json(row.body);
                json::value record = parsed && parsed->is_object() ? parsed.value() : json::value(json::object{});
                auto id = record.is_object() ? find_string(record.get_object(), "id") : std::nullopt;
                records.push_back({id.value_or("inbox-" + std::to_string(row.id)), std::move(record)});
                inbox_ids.push_back(row.id);
            }
            more = static_cast<int64_t>(records.size()) == page;
            if (records.empty()) break;
        }
        for (bool page_more = !options.inbox; page_more && records.size() < gather;) {
            int64_t want = std::min<int64_t>(page, static_cast<int64_t>(gather - records.size()));
            if (options.limit) want = std::min<int64_t>(want, *options.limit - total.fetched - static_cast<int64_t>(records.size()));
            if (want <= 0 || (cancel_.load() && !records.empty())) break;
            std::vector<Fetched> page_records;
            std::optional<json::value> page_checkpoint;
            bool overflowed = false;
            json::object request{{"type", "records"}, {"cursor", page_cursor}, {"full", options.full}, {"limit", want}};
            auto fetched = with_retry(
                b_.source, b_.module.credentials,
                [&] {
                    page_records.clear();
                    page_checkpoint.reset();
                    return b_.source.fetch(request, [&](json::value&& item) -> int32_t {
                        auto* o = item.if_object();
                        auto type = o ? find_string(*o, "type") : std::nullopt;
                        if (type == "record") {
                            auto id = find_string(*o, "id");
                            auto* rec = o->if_contains("record");
                            if (!id || !rec || !rec->is_object()) {
                                log(Level::error, "source emitted a record item without \"id\" or \"record\"");
                                return CRMSYNC_STATUS_ERROR;
                            }
                            if (static_cast<int64_t>(page_records.size()) >= want) {
                                overflowed = true;
                                return CRMSYNC_STATUS_CANCELLED;
                            }
                            page_records.push_back({*id, std::move(*rec)});
                            return CRMSYNC_STATUS_OK;
                        }
                        if (type == "checkpoint") {
                            page_checkpoint = o->contains("cursor") ? o->at("cursor") : json::value(nullptr);
                            page_more = find_bool(*o, "more").value_or(false);
                            return CRMSYNC_STATUS_OK;
                        }
                        log(Level::error, "source emitted an item of unknown type during a records fetch");
                        return CRMSYNC_STATUS_ERROR;
                    });
                },
                total);
            if (fetched.status == CRMSYNC_STATUS_CANCELLED) {
                stop_status = "stopped";
                stop_message = "interrupted; everything before this point is saved";
                fetch_stopped = true;
                break;
            }
            if (!fetched.ok()) {
                report.unreachable = fetched.status != CRMSYNC_STATUS_ERROR;
                if (fetched.status == CRMSYNC_STATUS_RATE_LIMITED) {
                    stop_status = "stopped";
                    stop_message = "the source's rate limit was reached: " + fetched.message + " (the next run resumes here)";
                    report.unreachable = false;
                    fetch_stopped = true;
                    break;
                }
                return finish("failed", "fetch failed: " + fetched.message);
            }
            if (overflowed)
                // Its checkpoint would skip records we never took: trust nothing from this page.
                return finish("failed", "plugin " + b_.source.plugin().id() + " emitted more than the " + std::to_string(want) +
                                            " records asked for (a plugin bug); nothing from that page was saved");
            for (auto& r : page_records) records.push_back(std::move(r));
            if (page_checkpoint) {
                checkpoint = page_checkpoint;
                page_cursor = *page_checkpoint;
            } else {
                page_more = false;
            }
            if (page_records.empty()) page_more = false;
            more = page_more;
        }
        if (fetch_stopped && records.empty()) break;
        if (fetch_stopped) more = false;  // save what was gathered, then stop
        if (!checkpoint && !options.inbox) more = false;
        batch.counts.fetched = static_cast<int64_t>(records.size());

        // ---- map
        std::vector<PendingOperation> ops;
        for (const auto& r : records) {
            std::vector<json::value> mapped;
            auto outcome = b_.source.map(r.record, mapped);
            if (!outcome.ok()) {
                ++batch.counts.failed;
                batch.errors.push_back({0, 0, module, clock_.now_ms(), r.id, "", "", "MAPPING_FAILED", outcome.message,
                                        {}, json::serialize(r.record)});
                continue;
            }
            if (mapped.empty()) ++batch.counts.ignored;
            for (auto& m : mapped) {
                PendingOperation p;
                p.op = std::move(m.as_object());
                p.source_id = find_string(p.op, "source_id").value_or(r.id);
                p.record = &r.record;
                if (auto problem = operation_problem(p.op)) {
                    p.error_code = "INVALID_OPERATION";
                    p.error_message = *problem + " (a bug in plugin " + b_.source.plugin().id() + ")";
                }
                ops.push_back(std::move(p));
            }
        }

        // ---- mappings, then skip what did not change since it was last written (no API
        // call spent on it), then the services for the rest
        if (services) services->apply_field_mappings(ops);
        std::vector<std::string> keys;
        for (auto& p : ops) {
            if (p.error_code || !p.skip_reason.empty()) continue;
            p.hash = sha256_hex(canonical_json(p.op));
            keys.push_back(find_text(p.op, "key"));
        }
        auto links = store_.links(module, keys);
        for (auto& p : ops) {
            if (p.error_code || !p.skip_reason.empty()) continue;
            auto link = links.find(find_text(p.op, "key"));
            p.known = link != links.end();
            if (p.known && link->second.content_hash == p.hash) {
                ++batch.counts.unchanged;
                p.skip_reason = "unchanged";
                if (options.dry_run)
                    report.dry_run.push_back("unchanged " + find_text(p.op, "object") + " " + link->second.crm_id +
                                             " (key " + find_text(p.op, "key") + ", source " + p.source_id +
                                             "): same content as last written");
            }
        }
        if (services_) services_(ops, batch.counts, batch.log);
        else services->resolve(ops, batch.counts, batch.log);
        for (auto& line : batch.log)
            if (line.at_ms == 0) line.at_ms = clock_.now_ms();
        std::vector<PendingOperation*> to_write;
        for (auto& p : ops) {
            if (p.error_code || p.skip_reason == "unchanged") continue;
            if (!p.skip_reason.empty()) {
                if (options.dry_run) report.dry_run.push_back("skip " + find_text(p.op, "object") + " (source " + p.source_id + "): " + p.skip_reason);
                continue;
            }
            to_write.push_back(&p);
        }

        // ---- write to the CRM: operations without refs first, then those that name one of
        // them (e.g. a file attached to the Task just written)
        WriteState written;
        if (!options.dry_run) {
            std::vector<PendingOperation*> first, dependent;
            for (auto* p : to_write) (find_object(p->op, "refs") ? dependent : first).push_back(p);
            write_operations(first, batch, written);
            if (!written.stop && !dependent.empty()) {
                resolve_refs(dependent, batch);
                std::erase_if(dependent, [](PendingOperation* p) { return p->error_code.has_value(); });
                write_operations(dependent, batch, written);
            }
            if (written.stop) {
                stop_status = written.stop_status;
                stop_message = written.stop_message;
                report.unreachable = report.unreachable || written.unreachable;
                more = false;
            }
        }
        const bool stop_after_commit = written.stop;
        auto& writebacks = written.writebacks;
        if (options.dry_run)
            for (auto* p : to_write)
                report.dry_run.push_back(std::string(p->known ? "update " : "create ") + find_text(p->op, "object") +
                                         " (key " + find_text(p->op, "key") + ", source " + p->source_id + ")");

        // ---- write-back to the source, if it writes
        for (size_t start = 0; start < writebacks.size(); start += kBatchSize) {
            json::array items;
            for (size_t i = start; i < std::min(writebacks.size(), start + kBatchSize); ++i) items.push_back(writebacks[i]);
            size_t count = items.size();
            std::vector<json::value> results;
            json::object wb{{"operations", std::move(items)}};
            auto outcome = with_retry(
                b_.source, b_.module.credentials, [&] { results.clear(); return b_.source.write(wb, results); },
                batch.counts);
            for (size_t i = 0; i < count; ++i) {
                const json::object* r = i < results.size() ? results[i].if_object() : nullptr;
                if (outcome.ok() && r && find_bool(*r, "success").value_or(false)) continue;
                const auto& item = writebacks[start + i];
                std::string message = !outcome.ok() ? outcome.message : "the source refused the write-back";
                log(Level::warn, "write-back of " + find_text(item, "id") + " to source " + find_text(item, "source_id") +
                                     " failed: " + message);
            }
        }

        // ---- record failures and commit the batch
        for (auto& p : ops) {
            if (!p.error_code) continue;
            ++batch.counts.failed;
            if (options.dry_run) {
                report.dry_run.push_back("fail " + find_text(p.op, "object") + " (key " + find_text(p.op, "key") +
                                         ", source " + p.source_id + "): " + *p.error_code + " " + p.error_message);
                continue;
            }
            batch.errors.push_back({0, 0, module, clock_.now_ms(), p.source_id, find_text(p.op, "key"),
                                    find_text(p.op, "object"), *p.error_code, p.error_message, p.error_fields,
                                    json::serialize(p.op)});
        }
        if (!batch.errors.empty())
            log(Level::warn, std::to_string(batch.errors.size()) + " record(s) failed in this batch; see `crmsync errors " +
                                 module + "`");
        if (options.dry_run) {
            batch.errors.clear();
            batch.links.clear();
        } else if (!stop_after_commit) {
            if (checkpoint) {
                batch.cursor = json::serialize(*checkpoint);
                cursor = *checkpoint;
            }
            batch.inbox_done = inbox_ids;  // consumed in the same transaction as their results
        }
        batch.log.insert(batch.log.begin(), log_.begin(), log_.end());
        log_.clear();
        auto committed = store_.commit_batch(batch);
        if (!committed) return finish("failed", committed.message());
        total.add(batch.counts);
        store_.acquire_lease(module, holder, clock_.now_ms(), options.lease_ttl_ms);
        if (options.progress) options.progress(total);
        if (stop_after_commit) break;

        if (budget_.limit > 0 && budget_.limit - budget_.last_used < b_.module.api_reserve * budget_.limit) {
            stop_status = "stopped";
            stop_message = "the CRM's daily API budget is down to " + std::to_string(budget_.limit - budget_.last_used) +
                           " of " + std::to_string(budget_.limit) + " calls, under the module's reserve; the next run resumes here";
            break;
        }
        if (options.dry_run && checkpoint) cursor = *checkpoint;
    }

    if (!stop_status.empty()) return finish(stop_status, stop_message);
    return finish(total.failed > 0 ? "partial" : "succeeded",
                  total.failed > 0 ? std::to_string(total.failed) + " record(s) failed" : "");
}

}  // namespace crmsync
