// The run and its stages. The CRM write stage is in pipeline_write.cpp, the source side
// (gather, write-back) in pipeline_source.cpp.
#include "pipeline.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>

#include "digest.h"
#include "lease_keeper.h"
#include "parallel.h"
#include "process.h"
#include "services/services.h"

namespace crmsync {
namespace {

constexpr int64_t kErrorRetentionMs = 365LL * 24 * 3600 * 1000;
// Another run's newer reading of the daily budget counts for this long (the org's budget is
// a rolling 24 hours; a run's own calls bring fresh readings anyway).
constexpr int64_t kSharedBudgetFreshMs = 15LL * 60 * 1000;

}  // namespace

// The run as a scope: the module's lease and the run row are taken when it is made; its
// destructor finishes the run and releases the lease whatever happened, a throw included.
class Pipeline::RunScope {
public:
    RunScope(Pipeline& pipeline, const RunOptions& options) : p_(pipeline), options_(options) {
        holder_ = options.lease_holder.empty() ? "crmsync" : options.lease_holder;
        started_ = p_.clock_.now_ms();
        if (!take_lease() || !slot_still_due()) return;
        const std::string& module = p_.b_.module.name;
        // A run that was going when its process died leaves "running" behind: say what it was.
        auto interrupted = p_.store_.mark_interrupted(module, started_);
        auto purged = p_.store_.purge_errors(started_ - kErrorRetentionMs);
        auto claimed = p_.store_.claim_unscoped_state(p_.state_scope());
        auto run_id = p_.store_.start_run(p_.state_scope(), options.dry_run ? "dry-run" : options.trigger, started_);
        if (!interrupted || !purged || !claimed || !run_id) {
            report_.status = RunStatus::failed;
            report_.message = !interrupted ? interrupted.message()
                              : !purged    ? purged.status().message()
                              : !claimed   ? claimed.status().message()
                                           : run_id.status().message();
            (void)p_.store_.release_lease(module, holder_);
            return;
        }
        report_.run_id = run_id.value();
        running_ = true;
        if (auto connection = p_.store_.open_another())
            keeper_ = std::make_unique<LeaseKeeper>(std::move(connection.value()), lease_, options.lease_ttl_ms, p_.clock_);
        else p_.log(Level::warn, "the lease is renewed only between batches: " + connection.status().message());
        if (*purged > 0) p_.log(Level::info, "removed " + std::to_string(*purged) + " error-log entries older than 365 days");
        if (*claimed > 0)
            p_.log(Level::info, "the links, cursor and errors saved before state was kept per connection now belong to " +
                                    p_.b_.connection.name);
    }
    ~RunScope() {
        if (!running_) return;
        try {
            finish(RunStatus::failed, "the run ended on an internal error; everything before the last saved batch is kept");
        } catch (...) {
            // Nothing may leave a destructor; the next run marks this one interrupted.
        }
    }
    RunScope(const RunScope&) = delete;
    RunScope& operator=(const RunScope&) = delete;

    bool running() const { return running_; }
    RunReport& report() { return report_; }
    RunCounts& total() { return total_; }
    // The lease under which each batch is saved (BatchCommit::lease).
    const LeaseRow& lease() const { return lease_; }
    // The lease is someone else's now: stop before writing more.
    std::optional<RunStop> lost() const {
        if (!keeper_ || !keeper_->lost()) return std::nullopt;
        return RunStop{RunStatus::stopped,
                       "module " + p_.b_.module.name +
                           "'s lease was taken over by another run; this one stopped, and the one that holds it goes on",
                       false};
    }
    // Renews the lease after a batch, besides the keeper (which may have failed to start).
    void renew() { (void)p_.store_.renew_lease(lease_, p_.clock_.now_ms(), options_.lease_ttl_ms); }
    // Ends the run: totals, status and log go to the store, the lease goes back.
    RunReport finish(RunStatus status, std::string message);
    RunReport finish(const RunStop& stop) {
        report_.unreachable = report_.unreachable || stop.unreachable;
        return finish(stop.status, stop.message);
    }

private:
    bool take_lease();
    bool slot_still_due();

    Pipeline& p_;
    const RunOptions& options_;
    RunReport report_;
    RunCounts total_;
    std::string holder_;
    LeaseRow lease_;
    std::unique_ptr<LeaseKeeper> keeper_;
    int64_t started_ = 0;
    bool running_ = false;
};

bool Pipeline::RunScope::take_lease() {
    const std::string& module = p_.b_.module.name;
    auto lease = p_.store_.acquire_lease(module, holder_, started_, options_.lease_ttl_ms);
    if (lease && !*lease) {
        // A holder on this machine that no longer exists was killed: its lease is ours now.
        if (auto held = p_.store_.lease(module); held && *held && !holder_may_be_alive((*held)->holder)) {
            lease = p_.store_.take_over_lease(module, (*held)->holder, holder_, started_, options_.lease_ttl_ms);
            if (lease && *lease)
                p_.log(Level::warn, "took over the lease of " + (*held)->holder + ", which is no longer running");
        }
    }
    if (lease && *lease) {
        lease_ = LeaseRow{module, holder_, started_ + options_.lease_ttl_ms, **lease};
        return true;
    }
    report_.status = RunStatus::busy;
    report_.message = "module " + module + " is already running";
    if (!lease) report_.message = lease.status().message();
    else if (auto held = p_.store_.lease(module); held && *held)
        report_.message += " (lease held by " + (*held)->holder + " until " + iso8601_utc((*held)->expires_ms) + ")";
    return false;
}

// With the lease held, nobody else can start the module: if its last scheduled start moved
// since the caller reckoned the slot, another worker ran it, and this one lets it be. A run
// taken up must still be unfinished: a worker finishes its run before it lets the lease go,
// so a run found finished now was not abandoned, whatever the caller read before.
bool Pipeline::RunScope::slot_still_due() {
    if (!options_.claim_after_start) return true;
    const std::string& module = p_.b_.module.name;
    std::optional<int64_t> last;
    std::optional<RunRow> last_run;
    try {
        last = p_.store_.last_scheduled_start(module);
        if (options_.take_up) last_run = p_.store_.last_run(module);
    } catch (const std::exception& e) {
        report_.status = RunStatus::busy;
        report_.message = std::string("the state store could not say when module ") + module + " last ran: " + e.what();
        (void)p_.store_.release_lease(module, holder_);
        return false;
    }
    const bool unfinished = last_run && (last_run->status == "running" || last_run->status == "interrupted");
    if (last.value_or(-1) == *options_.claim_after_start && (!options_.take_up || unfinished)) return true;
    report_.status = RunStatus::busy;
    report_.message = last.value_or(-1) != *options_.claim_after_start
                          ? "module " + module + " already ran for this slot (started " + iso8601_utc(last.value_or(0)) + ")"
                          : "module " + module + "'s last run is " + (last_run ? last_run->status : std::string("gone")) +
                                ": its worker finished it, and there is nothing to take up";
    (void)p_.store_.release_lease(module, holder_);
    return false;
}

RunReport Pipeline::RunScope::finish(RunStatus status, std::string message) {
    running_ = false;
    const Pipeline::Budget budget = p_.budget_reading();
    total_.api_calls = p_.api_calls_made(budget);
    report_.status = status;
    report_.message = std::move(message);
    report_.interrupted = status == RunStatus::stopped && p_.cancel_.load();
    report_.counts = total_;
    report_.duration_ms = p_.clock_.now_ms() - started_;
    report_.api_used = budget.last_used;
    report_.api_limit = budget.limit;
    p_.keep_budget_reading();  // the last reading, for every worker's next run
    p_.log(status == RunStatus::failed ? Level::error : Level::info,
           "run " + std::string(run_status_name(status)) + (report_.message.empty() ? "" : ": " + report_.message));
    BatchCommit last;
    last.run_id = report_.run_id;
    last.scope = p_.state_scope();
    last.counts.api_calls = total_.api_calls;
    auto committed = p_.store_.commit_batch(last);
    auto finished =
        p_.store_.finish_run(report_.run_id, std::string(run_status_name(status)), report_.message, p_.clock_.now_ms(), p_.log_);
    p_.log_.clear();
    keeper_.reset();
    (void)p_.store_.release_lease(p_.b_.module.name, holder_);
    if (!committed || !finished) {
        // The run did its work but its row could not be finished: say so rather than report success.
        report_.status = RunStatus::failed;
        report_.message = "the state store failed: " + (!committed ? committed.message() : finished.message());
    }
    return report_;
}

Pipeline::Pipeline(StateStore& store, ModuleBinding binding, const Clock& clock, const std::atomic<bool>& cancel,
                   const Diagnostics& diagnostics)
    : store_(store),
      b_(binding),
      clock_(clock),
      cancel_(cancel),
      diagnostics_(diagnostics),
      caller_(b_.module.retry, cancel_, [this](Level level, std::string message) { log(level, std::move(message)); }) {}

// The instances may outlive the run (serve keeps a CRM connection's): what their services
// pointed at in this run goes with it.
Pipeline::~Pipeline() {
    for (PluginInstance* p : {&b_.source, &b_.crm}) {
        p->services().api_usage = nullptr;
        p->services().log = nullptr;
        p->services().cancel = nullptr;
        p->services().clock = nullptr;
    }
}

void Pipeline::log(Level level, std::string message) {
    // The run log is where these lines live; stderr gets them only when debugging.
    diagnostics_.debug(b_.module.name + ": " + message);
    std::lock_guard lock(calls_mutex_);  // plugin calls running at once log too
    log_.push_back({clock_.now_ms(), std::string(level_name(level)), std::move(message)});
}

Outcome Pipeline::call_source(const std::function<Outcome()>& attempt, RunCounts& counts) {
    return caller_.call(b_.source, b_.module.credentials, attempt, counts);
}

Outcome Pipeline::call_crm(const std::function<Outcome()>& attempt, RunCounts& counts) {
    return caller_.call(b_.crm, b_.connection.credentials, attempt, counts);
}

RunReport Pipeline::run(const RunOptions& options) {
    unsaved_.reset();
    unsaved_failed_.reset();
    RunScope scope(*this, options);
    if (!scope.running()) return scope.report();
    log(Level::info, std::string(options.dry_run ? "dry run" : "run") + " started (" + options.trigger + ")");
    if (auto stop = prepare(options)) return scope.finish(*stop);
    if (auto stop = budget_stop()) return scope.finish(*stop);  // spent by runs before this one

    auto saved = options.full ? Result<std::optional<std::string>>(std::nullopt) : store_.cursor(state_scope());
    if (!saved) return scope.finish(RunStatus::failed, saved.status().message());
    json::value cursor = nullptr;
    if (*saved)
        if (auto parsed = parse_json(**saved)) cursor = parsed.value();

    RunCounts& total = scope.total();
    std::optional<RunStop> stop = reads_crm() ? sync_options(scope, options) : std::nullopt;
    if (!stop) stop = retry_failed(scope, options);
    bool finished_reading = false;
    const bool was_synced = cursor.is_object() && find_bool(cursor.get_object(), "synced").value_or(false);
    std::optional<Batch> ahead;  // the next page, read and mapped while the batch before it wrote
    for (bool more = !stop; more && !stop;) {
        if (options.limit && *options.limit - total.fetched <= 0) break;
        if ((stop = between_batches(scope))) break;
        Batch batch = ahead ? std::move(*ahead) : Batch(gather(options, cursor, total.fetched));
        ahead.reset();
        stop = batch.page.stop;
        more = batch.page.more && !stop;
        if (batch.page.records.empty()) {
            total.retries += batch.page.retries;
            break;
        }
        batch.commit.counts.fetched = static_cast<int64_t>(batch.page.records.size());
        // While the CRM takes this batch, the batch before it is saved, the source gives the
        // next page, the plugin maps it and its look-ups are asked: nothing of it is decided
        // (unchanged, owners, who) before the batches before it are saved, or before what
        // they wrote is known not to touch it. Not for the inbox (its page is read from the
        // store), dry runs, a module that reads the CRM, nor a bulk page (two of those at once
        // would double the memory a run holds; a bulk load is few calls anyway).
        std::function<void()> read_ahead;
        const bool small_page = batch.page.records.size() <= kBatchSize * parallel_calls();
        if (more && small_page && batch.page.checkpoint && !options.dry_run && !options.inbox && !reads_crm())
            read_ahead = [&] {
                const int64_t fetched = total.fetched + batch.commit.counts.fetched;
                if (options.limit && *options.limit - fetched <= 0) return;
                ahead.emplace(gather(options, *batch.page.checkpoint, fetched));
                map(*ahead);
                look_up_ahead(*ahead);
                decide_ahead(*ahead, batch, scope.report());
            };
        if (auto halted = process(scope, batch, options, read_ahead, static_cast<bool>(read_ahead))) {
            stop = halted;
            break;
        }
        if (ahead) {
            // A record on both pages: its link as read ahead is out of date. It is read again
            // once the batch that wrote it is saved (the store's row is the one that counts).
            auto again = keys_written_again(*ahead, unsaved_ ? unsaved_->links : batch.commit.links);
            if (!again.empty()) {
                if ((stop = save_unsaved(scope, options))) break;
                refresh_ahead_links(*ahead, again);
            }
        }
        if (batch.page.checkpoint) cursor = *batch.page.checkpoint;
        if (!stop) stop = budget_stop();
        finished_reading = !more && !stop;
    }
    // The last batch kept unsaved is saved, whatever ended the loop (a failure to save it
    // outweighs why the loop ended: the run must say its last batch is not kept).
    if (auto unsaved = save_unsaved(scope, options)) stop = unsaved;
    if (stop) return scope.finish(*stop);
    std::string message = total.failed > 0 ? std::to_string(total.failed) + " record(s) failed" : "";
    // The first complete import of a module that reads the CRM is announced (the seed's
    // 「連携が完了しました」): from here on, runs read only what changed.
    if (reads_crm() && !was_synced && !options.dry_run && finished_reading) {
        message = "first sync completed: " + std::to_string(total.created + total.updated + total.unchanged) + " " +
                  crm_read_->object + " record(s) written" + (message.empty() ? "" : "; " + message);
        log(Level::info, message + " (連携が完了しました)");
    }
    // A dry run wrote nothing, so nothing of it is partial: it says what would have failed.
    if (options.dry_run) return scope.finish(RunStatus::succeeded, total.failed > 0 ? "dry run: " + message + " would fail" : "");
    return scope.finish(total.failed > 0 ? RunStatus::partial : RunStatus::succeeded, message);
}

// Why the run must not start another batch: cancelled, or its lease is someone else's.
std::optional<RunStop> Pipeline::between_batches(const RunScope& scope) const {
    if (cancel_.load()) return RunStop{RunStatus::stopped, kInterrupted, false};
    return scope.lost();
}

// Records that failed in earlier runs and are due again go first, in batches like any
// page, one sweep in source id order; the cursor does not move for them.
std::optional<RunStop> Pipeline::retry_failed(RunScope& scope, const RunOptions& options) {
    const int64_t now = clock_.now_ms();
    std::string after;
    for (;;) {
        if (auto stop = between_batches(scope)) return stop;
        auto due = store_.due_records(state_scope(), now, after, static_cast<int>(kBatchSize));
        if (!due) return RunStop{RunStatus::failed, due.status().message(), false};
        if (due->empty()) return std::nullopt;
        Batch batch;
        batch.page.retry = true;
        for (auto& f : *due) {
            after = f.source_id;
            // Kept as its plugin emitted it; text that is somehow not JSON goes to map() as a
            // JSON string, for the plugin to refuse.
            RecordText record =
                is_json(f.record) ? RecordText(std::move(f.record)) : RecordText(json::serialize(json::value(f.record)));
            batch.page.records.push_back({f.source_id, std::move(record), f.attempts});
        }
        batch.commit.counts.retried = static_cast<int64_t>(batch.page.records.size());
        log(Level::info, "trying again " + std::to_string(due->size()) + " record(s) that failed before");
        if (auto stop = process(scope, batch, options)) return stop;
        if (auto stop = budget_stop()) return stop;
    }
}

// One gathered batch through the stages to its commit. Answers why the run stops after
// it, if it does (a stage halted, or the commit failed).
std::optional<RunStop> Pipeline::process(RunScope& scope, Batch& batch, const RunOptions& options,
                                         const std::function<void()>& meanwhile, bool save_later) {
    RunReport& report = scope.report();
    batch.commit.run_id = report.run_id;
    batch.commit.scope = state_scope();
    batch.commit.counts.retries = batch.page.retries;
    if (!batch.mapped) map(batch);
    std::optional<RunStop> halted = batch.stop;
    if (!batch.decided) {
        if (!ahead_links_fit(batch)) batch.ahead_links.reset();
        // What the batch reads from the store (links not read ahead, the CRM ids its refs
        // name) must hold what the batch before it wrote: that one is saved first.
        const bool refs = std::any_of(batch.ops.begin(), batch.ops.end(), [](const auto& p) { return !p.op.refs.empty(); });
        if (!halted && (!batch.ahead_links || refs))
            if (auto stop = save_unsaved(scope, options)) return stop;
        if (!halted) halted = skip_unchanged(batch, report, options.dry_run);
        if (halted) forget_results(batch);
        else halted = resolve(batch);
    }
    if (!halted) halted = scope.lost();
    if (!halted && !options.dry_run) halted = read_earlier_refs(batch);
    // The batch before is saved while this one is written, before the next page is read.
    std::function<void()> during;
    if (unsaved_ || meanwhile)
        during = [&] {
            if (!save_unsaved(scope, options) && meanwhile) meanwhile();
        };
    if (!halted && !options.dry_run) halted = write_meanwhile(batch, during);
    if (options.dry_run) describe_dry_run(batch, report);
    // A source plugin that died writing back ends the run, but after this batch is saved:
    // what reached the CRM is kept, and its cursor moves (its write-backs are lost, as any
    // failed write-back is: logged).
    auto source_gone = write_back(batch);
    record_failures(batch, report, options.dry_run);
    if (!halted && !options.dry_run) {
        settle_records(batch);
        for (const auto& p : batch.ops)
            if (p.no_match)
                batch.commit.unmatched.push_back(
                    {.object = p.op.object,
                     .fields = p.op.match->field_list(),
                     .key = p.op.match->keys.size() == 1 ? p.op.match->keys.front().value_text : p.op.match->describe(),
                     .source_id = p.op.source_id});
        // The cursor and the inbox move only with the results before them.
        if (batch.page.checkpoint) batch.commit.cursor = json::serialize(*batch.page.checkpoint);
        batch.commit.inbox_done = batch.page.inbox_ids;
    }
    batch.commit.log.insert(batch.commit.log.begin(), log_.begin(), log_.end());
    log_.clear();
    batch.commit.lease = scope.lease();
    batch.commit.at_ms = clock_.now_ms();
    // Batches are saved in order: not this one when the one before could not be.
    if (auto stop = save_unsaved(scope, options)) return stop;
    if (save_later && !halted && !source_gone && !options.dry_run) {
        unsaved_ = std::move(batch.commit);
        return std::nullopt;
    }
    if (auto stop = save(scope, batch.commit, options)) return stop;
    return halted ? halted : source_gone;
}

std::optional<RunStop> Pipeline::save(RunScope& scope, BatchCommit& commit, const RunOptions& options) {
    if (auto committed = store_.commit_batch(commit); !committed)
        return RunStop{committed.kind() == Status::Kind::conflict ? RunStatus::stopped : RunStatus::failed, committed.message(),
                       false};
    scope.total().add(commit.counts);
    scope.renew();
    keep_budget_reading();
    if (options.progress) options.progress(scope.total());
    return std::nullopt;
}

std::optional<RunStop> Pipeline::save_unsaved(RunScope& scope, const RunOptions& options) {
    if (unsaved_failed_ || !unsaved_) return unsaved_failed_;
    unsaved_failed_ = save(scope, *unsaved_, options);
    unsaved_.reset();
    return unsaved_failed_;
}

// Each record of a saved batch either landed whole — its earlier errors close and it leaves
// the failed list — or failed for its own reasons and is kept to be tried again (attempts
// count from 1 for a newly fetched version, up from the last for one tried again).
void Pipeline::settle_records(Batch& batch) {
    std::set<std::string> failed;
    for (const auto& e : batch.commit.errors) failed.insert(e.entity_id);
    std::map<std::string, const SourceRecord*> newest;  // the last version of each record in the page
    for (const auto& r : batch.page.records) newest[r.id] = &r;
    const auto& policy = b_.module.failed_records;
    const int64_t now = clock_.now_ms();
    // Operations the host made itself (followed picklists) have no source record to keep: an
    // error of theirs closes once they land, and the next run makes them again until then.
    for (const auto& p : batch.ops)
        if (!p.record && !p.record_id.empty() && !p.error_code && p.skip_reason.empty())
            batch.commit.landed.push_back(p.record_id);
    for (const auto& [id, r] : newest) {
        if (!failed.count(id)) {
            batch.commit.landed.push_back(id);
            if (batch.page.retry) ++batch.commit.counts.recovered;
            continue;
        }
        FailedRecord kept{id, r->record.text(), batch.page.retry ? r->attempts + 1 : 1, 0, false};
        kept.gave_up = kept.attempts >= policy.max_attempts;
        kept.next_ms = policy.next_attempt_ms(now, kept.attempts);
        if (kept.gave_up) {
            ++batch.commit.counts.gave_up;
            log(Level::warn, "record " + id + " failed " + std::to_string(kept.attempts) +
                                 " times and is not tried again; see `crmsync errors " + b_.module.name + "`");
        }
        batch.commit.failed.push_back(std::move(kept));
    }
}

// Authenticates both plugins, points their services at this run and sets up the shared
// services (the operator's mappings checked against the plugin's fixed fields).
std::optional<RunStop> Pipeline::prepare(const RunOptions& options) {
    auto usage_sink = [this](int64_t used, int64_t limit) {
        std::lock_guard lock(calls_mutex_);
        if (budget_.lowest_used < 0 || used < budget_.lowest_used) budget_.lowest_used = used;
        budget_.highest_used = std::max(budget_.highest_used, used);
        budget_.last_used = used;
        budget_.limit = limit;
        budget_.seen_ms = clock_.now_ms();
    };
    auto log_sink = [this](Level level, std::string_view message) { log(level, std::string(message)); };
    for (PluginInstance* p : {&b_.source, &b_.crm}) {
        p->services().api_usage = usage_sink;
        p->services().log = log_sink;
        p->services().cancel = &cancel_;
        p->services().clock = &clock_;
    }
    for (auto [plugin, credentials] : {std::pair{&b_.source, &b_.module.credentials}, {&b_.crm, &b_.connection.credentials}})
        if (auto signed_in = caller_.sign_in(*plugin, *credentials); !signed_in)
            return RunStop{RunStatus::failed, signed_in.message(), signed_in.kind() != Status::Kind::config};
    crm_requests_from_ = b_.crm.services().http.calls();
    if (reads_crm())
        if (auto stop = prepare_crm_read()) return stop;

    auto config_failure = [](std::string message) { return RunStop{RunStatus::failed, std::move(message), false}; };
    auto mappings = parse_mappings(b_.module.mappings);
    if (!mappings) return config_failure(mappings.status().prefixed(b_.module.manifest_path + ": ").message());
    auto settings = ServiceSettings::from_manifest(b_.module);
    if (!settings) return config_failure(settings.status().message());
    auto targets = Services::list_targets(b_.source);
    if (!targets) return config_failure(targets.status().prefixed(b_.module.manifest_path + ": ").message());
    if (auto checked = Services::check_mappings(*targets, b_.module, *mappings, b_.source.plugin().id()); !checked)
        return config_failure(checked.message());
    services_ = std::make_unique<Services>(CrmAccess{b_.crm, b_.connection.credentials, caller_, parallel_calls()}, b_.module,
                                           std::move(mappings.value()), std::move(settings.value()), options.dry_run);
    services_->set_required_any(std::move(targets->required_any));
    return std::nullopt;
}

// Each record through the plugin's map: operations parsed once here, or the record fails.
void Pipeline::map(Batch& batch) {
    batch.mapped = true;
    auto fail = [&](const std::string& entity, const std::string& key, const std::string& object, std::string code,
                    std::string message, std::string payload) {
        ++batch.commit.counts.failed;
        batch.commit.errors.push_back({.module = b_.module.name,
                                       .at_ms = clock_.now_ms(),
                                       .entity_id = entity,
                                       .key = key,
                                       .object = object,
                                       .code = std::move(code),
                                       .message = std::move(message),
                                       .payload = std::move(payload)});
    };
    // The page's records go to the plugin at once (an isolated one gets them sent ahead); each
    // one's operations are parsed out as its answer comes, and what it emitted goes then.
    std::vector<const std::string*> records;
    for (const auto& r : batch.page.records) records.push_back(&r.record.text());
    batch.ops.reserve(records.size());
    b_.source.map_each(records, [&](size_t i, const Outcome& outcome, std::vector<json::value>& mapped) {
        const auto& r = batch.page.records[i];
        if (!outcome.ok() && !is_input_fault(outcome)) {
            // The plugin failed, not the record (its runner crashed, say): nothing of this
            // batch is written or kept as an error; the next run maps it again.
            batch.stop = stop_for(outcome, "mapping record " + r.id);
            batch.ops.clear();
            batch.commit.errors.clear();
            batch.commit.counts.failed = batch.commit.counts.ignored = 0;
            return false;
        }
        if (!outcome.ok()) {
            fail(r.id, "", "", "MAPPING_FAILED", outcome.message, r.record.text());
            return true;
        }
        if (mapped.empty()) ++batch.commit.counts.ignored;
        for (auto& emitted : mapped) {
            auto op = Operation::parse(emitted, r.id);
            if (!op) {
                const json::object empty;
                const auto& o = emitted.is_object() ? emitted.get_object() : empty;
                fail(r.id, find_text(o, "key"), find_text(o, "object"), "INVALID_OPERATION",
                     op.status().message() + " (a bug in plugin " + b_.source.plugin().id() + ")", json::serialize(emitted));
                continue;
            }
            PendingOperation pending;
            pending.op = std::move(op.value());
            pending.record = &r.record;
            pending.record_id = r.id;
            batch.ops.push_back(std::move(pending));
        }
        return true;
    });
}

// The operator's mappings onto each operation, then its content hash.
void Pipeline::hash_operations(Batch& batch) {
    batch.hashed = true;
    services_->apply_field_mappings(batch.ops);
    for (auto& p : batch.ops)
        if (p.active()) p.hash = sha256_hex(p.op.canonical_text());
}

// The owners and Contacts/Leads of a page read ahead go into the run's caches while the
// batch before it is written — for the operations whose content differs from what was last
// written, as in their own turn (an unchanged one costs no call). Nothing is decided here:
// the batch's own resolve() does that once the batch before is saved, and asks again what
// could not be had now (a failure here stops nothing; met again there, it does).
void Pipeline::look_up_ahead(Batch& batch) {
    hash_operations(batch);
    std::vector<std::string> keys;
    for (const auto& p : batch.ops)
        if (p.active()) keys.push_back(p.op.key);
    auto links = store_.links(state_scope(), keys);
    if (!links) return;
    std::vector<const PendingOperation*> changed;
    for (const auto& p : batch.ops) {
        if (!p.active()) continue;
        auto link = links->find(p.op.key);
        if (link == links->end() || link->second.content_hash != p.hash) changed.push_back(&p);
    }
    services_->look_up_ahead(changed, batch.commit.counts, batch.commit.log);
    std::sort(keys.begin(), keys.end());
    batch.ahead_keys = std::move(keys);
    batch.ahead_links = std::move(links.value());
}

std::vector<std::string> Pipeline::keys_written_again(const Batch& next, const std::vector<LinkRow>& written) {
    std::vector<std::string> again;
    if (!next.ahead_links) return again;
    for (const auto& link : written)
        if (std::binary_search(next.ahead_keys.begin(), next.ahead_keys.end(), link.key)) again.push_back(link.key);
    return again;
}

// Once the batch before is saved, the links read ahead are the store's but for the keys that
// batch has just written (a record on both pages): those are read again. Nobody else writes
// this module's links meanwhile (the run holds its lease).
void Pipeline::refresh_ahead_links(Batch& next, const std::vector<std::string>& again) {
    if (!next.ahead_links || again.empty()) return;
    auto fresh = store_.links(state_scope(), again);
    if (!fresh) {
        next.ahead_links.reset();  // skip_unchanged reads them all, and says so if it cannot
        return;
    }
    for (const auto& key : again) next.ahead_links->erase(key);
    for (auto& [key, link] : *fresh) next.ahead_links->insert_or_assign(key, std::move(link));
}

// What was written before with the same content is skipped without an API call.
std::optional<RunStop> Pipeline::skip_unchanged(Batch& batch, RunReport& report, bool dry_run) {
    if (!batch.hashed) hash_operations(batch);
    // The links read ahead, when process() kept them (read for these very keys); else the store's.
    auto read = [&] {
        std::vector<std::string> keys;
        for (const auto& p : batch.ops)
            if (p.active()) keys.push_back(p.op.key);
        return store_.links(state_scope(), keys);
    };
    auto links = batch.ahead_links ? Result<std::map<std::string, LinkRow>>(std::move(*batch.ahead_links)) : read();
    batch.ahead_links.reset();
    if (!links) return RunStop{RunStatus::failed, "reading what was written before failed: " + links.status().message(), false};
    std::map<std::string, int64_t> newest;  // per key, the newest version in this batch
    for (const auto& p : batch.ops)
        if (p.active() && p.op.version) newest[p.op.key] = std::max(newest[p.op.key], *p.op.version);
    for (auto& p : batch.ops) {
        if (!p.active()) continue;
        auto link = links->find(p.op.key);
        p.known = link != links->end();
        // A record written before keeps the external-id value it was written under. The CRM's
        // external-id fields ignore case, so keys are made case-proof for it (crm_key_for); a
        // destination that is not the CRM gets the key as it is (a Salesforce Id has case).
        p.crm_key = p.known ? link->second.crm_key : reads_crm() ? p.op.key : crm_key_for(p.op.key);
        if (skip_older(p, p.known ? &link->second : nullptr, newest, batch)) continue;
        if (p.op.action == "archive" && !p.known) {
            p.skip_reason = "nothing was written under this key";  // nothing to archive
            continue;
        }
        if (!p.known || link->second.content_hash != p.hash) continue;
        ++batch.commit.counts.unchanged;
        p.skip_reason = "unchanged";
        if (p.op.version && (!link->second.version || *link->second.version < *p.op.version)) {
            LinkRow seen = link->second;  // the same content, newer: remember the version
            seen.version = p.op.version;
            batch.commit.links.push_back(std::move(seen));
        }
        if (dry_run)
            report.dry_run.push_back("unchanged " + p.op.object + " " + link->second.crm_id + " (key " + p.op.key + ", source " +
                                     p.op.source_id + "): same content as last written");
    }
    return std::nullopt;
}

void Pipeline::decide_ahead(Batch& next, const Batch& writing, RunReport& report) {
    if (next.stop || !ahead_links_fit(next)) return;
    for (const auto& p : next.ops)
        if (!p.op.refs.empty()) return;
    // Every operation of the batch being written, failed or skipped too (an unchanged one
    // may still save a newer version under its key).
    for (const auto& p : writing.ops)
        if (std::binary_search(next.ahead_keys.begin(), next.ahead_keys.end(), p.op.key)) return;
    auto halted = skip_unchanged(next, report, false);
    if (halted) forget_results(next);
    else halted = resolve(next);
    next.stop = halted;
    next.decided = true;
}

bool Pipeline::ahead_links_fit(const Batch& batch) {
    if (!batch.ahead_links || !batch.hashed) return false;
    std::vector<std::string> keys;
    for (const auto& p : batch.ops)
        if (p.active()) keys.push_back(p.op.key);
    std::sort(keys.begin(), keys.end());
    return keys == batch.ahead_keys;
}

// Never an older version of a record over a newer one (a replayed or late event): skipped
// when the batch holds a newer one for the key, or a newer one was written before.
bool Pipeline::skip_older(PendingOperation& p, const LinkRow* link, const std::map<std::string, int64_t>& newest, Batch& batch) {
    if (!p.op.version) return false;
    const int64_t version = *p.op.version;
    const bool older_in_batch = newest.at(p.op.key) > version;
    const bool older_than_written = link && link->version && *link->version > version;
    if (!older_in_batch && !older_than_written) return false;
    p.skip_reason = older_in_batch ? "a newer version is in the same batch" : "older than the version already written";
    batch.commit.counts.bump("older_versions_skipped");
    log(Level::info, "skipped an older version of " + p.op.key + " (source " + p.op.source_id + "): " + p.skip_reason);
    return true;
}

std::optional<RunStop> Pipeline::resolve(Batch& batch) {
    if (reads_crm()) return std::nullopt;  // the CRM's services serve writes to the CRM
    auto stop = services_->resolve(batch.ops, batch.commit.counts, batch.commit.log);
    for (auto& line : batch.commit.log)
        if (line.at_ms == 0) line.at_ms = clock_.now_ms();
    if (stop) forget_results(batch);
    return stop;
}

// A stop before the write is not the records' fault: nothing of the batch is kept but its
// log and retries, so the next run does the whole batch again.
void Pipeline::forget_results(Batch& batch) {
    batch.ops.clear();
    batch.commit.errors.clear();
    const int64_t retries = batch.commit.counts.retries;
    batch.commit.counts = RunCounts{};
    batch.commit.counts.retries = retries;
}

// The write on a helper thread (run_beside) while `meanwhile` runs on this one. What they share is
// guarded (the run log, the budget) or serialized by the plugin instance (a source that is
// not THREADSAFE, asked for a file while it also gives the next page). The state store is
// this thread's alone (store.h): the write reads nothing from it (read_earlier_refs).
std::optional<RunStop> Pipeline::write_meanwhile(Batch& batch, const std::function<void()>& meanwhile) {
    if (!meanwhile) return write(batch);
    std::optional<RunStop> stop;
    run_beside([&] { stop = write(batch); }, meanwhile);
    return stop;
}

std::optional<RunStop> Pipeline::write(Batch& batch) {
    std::vector<PendingOperation*> first, dependent;
    for (auto& p : batch.ops)
        if (p.active()) (p.op.refs.empty() ? first : dependent).push_back(&p);
    // Operations that name another one (a file on the Task just written) go after it.
    if (auto stop = write_operations(first, batch)) return stop;
    if (dependent.empty()) return std::nullopt;
    resolve_refs(dependent, batch);
    std::erase_if(dependent, [](PendingOperation* p) { return p->error_code.has_value(); });
    return write_operations(dependent, batch);
}

void Pipeline::record_failures(Batch& batch, RunReport& report, bool dry_run) {
    for (auto& p : batch.ops) {
        if (!p.error_code) continue;
        ++batch.commit.counts.failed;
        if (dry_run) {
            report.dry_run.push_back("fail " + p.op.object + " (key " + p.op.key + ", source " + p.op.source_id +
                                     "): " + *p.error_code + " " + p.error_message);
            continue;
        }
        batch.commit.errors.push_back({.module = b_.module.name,
                                       .at_ms = clock_.now_ms(),
                                       .entity_id = p.record_id,
                                       .key = p.op.key,
                                       .object = p.op.object,
                                       .code = *p.error_code,
                                       .message = p.error_message,
                                       .fields = p.error_fields,
                                       .payload = json::serialize(p.op.to_json())});
    }
    if (dry_run) {
        batch.commit.errors.clear();
        batch.commit.links.clear();
    }
    if (!batch.commit.errors.empty())
        log(Level::warn, std::to_string(batch.commit.errors.size()) + " record(s) failed in this batch; see `crmsync errors " +
                             b_.module.name + "`");
}

namespace {

// "Field: old -> new" for each field a matched update would change (times compared as
// instants, numbers as written), or that nothing would.
std::string field_changes(const PendingOperation& p) {
    std::string out;
    for (const auto& [name, value] : p.op.fields) {
        const json::value* now = p.current->if_contains(name);
        std::string before = now && !now->is_null() ? scalar_text(*now) : "";
        std::string after = value.is_null() ? "" : scalar_text(value);
        int64_t before_ms = 0, after_ms = 0;
        if (before == after || (parse_iso8601(before, before_ms) && parse_iso8601(after, after_ms) && before_ms == after_ms))
            continue;
        out += (out.empty() ? "" : "; ") + std::string(name) + ": " + (before.empty() ? "(empty)" : before) + " -> " +
               (after.empty() ? "(empty)" : after);
    }
    return out.empty() ? "no field would change" : out;
}

}  // namespace

void Pipeline::describe_dry_run(const Batch& batch, RunReport& report) const {
    for (const auto& p : batch.ops)
        if (!p.error_code && !p.skip_reason.empty() && p.skip_reason != "unchanged")
            report.dry_run.push_back("skip " + p.op.object + " (source " + p.op.source_id + "): " + p.skip_reason);
    for (const auto& p : batch.ops) {
        if (!p.active()) continue;
        const char* verb = p.op.action == "archive" ? "archive " : p.known ? "update " : "create ";
        std::string line = verb + p.op.object + " (key " + p.op.key + ", source " + p.op.source_id + ")";
        if (p.op.object == "$options")  // a followed picklist (pipeline_crm_read.cpp)
            line = "set the options of " + find_text(p.op.fields, "field") + " to " + p.op.source_id +
                   "'s values (none removed): " + json::serialize(p.op.fields.at("values"));
        if (p.current) line = "update " + p.op.object + " " + p.op.id + " (source " + p.op.source_id + "): " + field_changes(p);
        report.dry_run.push_back(std::move(line));
    }
}

// A run's API calls: the source's HTTP requests, and the CRM's counted two ways, each of
// which can only count too many, the lesser taken. The org's budget readings say what it
// spent from this run's lowest reading to its highest (answers to calls made at once come in
// any order), other integrations' and other workers' calls made meanwhile included; the CRM
// plugin's requests through the host since it signed in include any the org does not count.
// A CRM that makes no requests through the host (embedded, as mock-crm) has its readings
// alone; one that reports no readings, its requests alone.
int64_t Pipeline::api_calls_made(const Budget& budget) {
    const int64_t requests = crm_requests_from_ < 0 ? 0 : b_.crm.services().http.calls() - crm_requests_from_;
    int64_t crm = requests;
    if (budget.lowest_used >= 0) {
        const int64_t spent = budget.highest_used - budget.lowest_used + 1;  // the lowest reading's call counts
        crm = requests > 0 ? std::min(spent, requests) : spent;
    }
    return crm + b_.source.services().http.calls();
}

Pipeline::Budget Pipeline::budget_reading() {
    std::lock_guard lock(calls_mutex_);
    return budget_;
}

void Pipeline::keep_budget_reading() {
    const Budget mine = budget_reading();
    if (mine.limit > 0 && mine.last_used != mine.shared_used) {
        (void)store_.note_api_usage({b_.connection.name, mine.last_used, mine.limit, mine.seen_ms});
        std::lock_guard lock(calls_mutex_);
        budget_.shared_used = mine.last_used;
    }
}

std::optional<RunStop> Pipeline::budget_stop() {
    const int64_t now = clock_.now_ms();
    const Budget mine = budget_reading();
    int64_t used = mine.last_used, limit = mine.limit;
    std::string seen = "";
    if (auto shared = store_.api_usage(b_.connection.name); shared && *shared) {
        const ApiUsage& u = **shared;
        // Another worker's reading, newer than this run's own (each call through a CRM that
        // reports the org's usage brings a fresh one).
        if (u.limit > 0 && u.at_ms > mine.seen_ms && now - u.at_ms <= kSharedBudgetFreshMs) {
            used = u.used;
            limit = u.limit;
            seen = " (as a run through connection " + b_.connection.name + " saw it at " + iso8601_utc(u.at_ms) + ")";
        }
    }
    if (limit <= 0 || limit - used >= b_.module.api_reserve * limit) return std::nullopt;
    return RunStop{RunStatus::stopped,
                   "the CRM's daily API budget is down to " + std::to_string(limit - used) + " of " + std::to_string(limit) +
                       " calls" + seen + ", under the module's reserve; the next run resumes here",
                   false};
}

std::string run_summary(const std::string& module, const RunReport& r) {
    const auto& c = r.counts;
    std::string no_match;  // update-by-key rows whose key matched no record, when there were any
    if (c.no_match > 0) no_match = "no match " + std::to_string(c.no_match) + ", ";
    std::string retried;  // failed records of earlier runs, when there were any
    if (c.retried > 0 || c.gave_up > 0)
        retried = "retried " + std::to_string(c.retried) + " (" + std::to_string(c.recovered) + " recovered, " +
                  std::to_string(c.gave_up) + " given up), ";
    char buf[768];
    std::snprintf(buf, sizeof buf,
                  "%s: %s — fetched %lld, created %lld, updated %lld, unchanged %lld, ignored %lld, failed %lld, "
                  "%s%sAPI calls %lld, %s (run %lld)",
                  module.c_str(), std::string(run_status_name(r.status)).c_str(), (long long)c.fetched, (long long)c.created,
                  (long long)c.updated, (long long)c.unchanged, (long long)c.ignored, (long long)c.failed, no_match.c_str(),
                  retried.c_str(), (long long)c.api_calls, duration_text(r.duration_ms).c_str(), (long long)r.run_id);
    std::string line = buf;
    if (!r.message.empty()) line += "\n  " + r.message;
    return line;
}

json::object run_report_json(const std::string& module, const RunReport& r) {
    json::object o{{"module", module},
                   {"run", r.run_id},
                   {"status", run_status_name(r.status)},
                   {"duration_ms", r.duration_ms},
                   {"counts", r.counts.to_json()}};
    if (r.interrupted) o["interrupted"] = true;
    return o;
}

}  // namespace crmsync
