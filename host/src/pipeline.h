#pragma once
// The run pipeline: one run of one module, as the README's "How a run works" tells it —
//   take the run (lease + run row) → gather a page (source fetch or webhook inbox) → map →
//   skip unchanged → resolve (services) → write → write back → commit
// A module whose plugin reads the CRM (CRMSYNC_CAP_READS_CRM, ABI 1.1) runs the same stages
// turned round: pages come from the CRM plugin's `changes`, the CRM services are not needed,
// and the write goes to the module's own plugin (pipeline_crm_read.cpp).
// — each stage a function below, over a Batch that carries its records, operations and
// everything its commit will hold. A record's failure never fails the batch; a failure
// that is not a record's own (budget, 5xx, timeout, auth, cancellation) stops the run with
// the cursor where it was (plugin_call.h decides which is which). Cancellation
// (SIGINT/SIGTERM) finishes the current batch.
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "clock.h"
#include "crm_read.h"
#include "diagnostics.h"
#include "instance.h"
#include "manifest.h"
#include "operation.h"
#include "plugin_call.h"
#include "store.h"

namespace crmsync {

class Services;

// Records a page asks for, and operations a CRM write call carries.
inline constexpr size_t kBatchSize = 200;
// Why a run stops on SIGINT/SIGTERM.
inline constexpr const char* kInterrupted = "interrupted; everything before this point is saved";
// CRM records a `changes` request asks for, for a module that reads the CRM.
inline constexpr size_t kChangesPerRequest = 2000;

struct RunOptions {
    bool dry_run = false;
    bool full = false;             // ignore the saved cursor
    std::optional<int64_t> limit;  // stop after this many source records
    std::string trigger = "manual";
    bool inbox = false;        // take records from the webhook inbox, not from fetch
    std::string lease_holder;  // who takes the module's lease
    int64_t lease_ttl_ms = 120'000;
    // A scheduled run claims its slot: it runs only when, with the lease in hand, the
    // module's last scheduled start is still the one its schedule was reckoned from (-1:
    // never ran). Workers sharing a store fire each slot once.
    std::optional<int64_t> claim_after_start;
    // With claim_after_start: the caller is taking up a run its worker left ("running" or
    // "interrupted"), not starting a slot that fell due. It runs only when, with the lease in
    // hand, the module's last run is still unfinished: the caller's reading may be from before
    // that run's worker finished it and let the lease go.
    bool take_up = false;
    std::function<void(const RunCounts&)> progress;
};

struct RunReport {
    int64_t run_id = 0;
    RunStatus status = RunStatus::failed;
    std::string message;
    RunCounts counts;
    int64_t duration_ms = 0;
    std::vector<std::string> dry_run;  // what a dry run would have done, one line each
    bool unreachable = false;          // the CRM or source could not be reached or refused us
    // Stopped because the process was asked to stop (SIGTERM, Ctrl-C, serve shutting down):
    // cut short on purpose, it says nothing about the module's health.
    bool interrupted = false;
    int64_t api_used = -1, api_limit = 0;  // the CRM's daily budget as last reported
};

// "MODULE: STATUS — fetched …, created …, … API calls N, 1.2s (run ID)", then the run's
// message on its own line: what `crmsync run` prints and `crmsync serve` logs per run.
std::string run_summary(const std::string& module, const RunReport& report);
// The same as fields: module, run, status, duration_ms, counts (`run --json`, serve's JSON
// log line, a notification's event add their own beside them).
json::object run_report_json(const std::string& module, const RunReport& report);

struct ModuleBinding {
    const ModuleManifest& module;
    const ConnectionManifest& connection;
    PluginInstance& source;
    PluginInstance& crm;
};

class Pipeline {
public:
    Pipeline(StateStore& store, ModuleBinding binding, const Clock& clock, const std::atomic<bool>& cancel,
             const Diagnostics& diagnostics);
    ~Pipeline();
    RunReport run(const RunOptions& options);

private:
    class RunScope;
    struct SourceRecord {
        std::string id;
        RecordText record;
        int64_t attempts = 0;  // failed tries before (a record tried again)
    };
    // What one gather took: records and the cursor after them (source), or inbox events.
    struct Page {
        std::vector<SourceRecord> records;
        std::optional<json::value> checkpoint;
        std::vector<int64_t> inbox_ids;
        bool more = false;            // the source has more after this page
        bool retry = false;           // records that failed before, from the store
        int64_t retries = 0;          // fetch attempts retried
        std::optional<RunStop> stop;  // why the run ends after this page (no records: at once)
    };
    // One batch on its way to its commit.
    struct Batch {
        Batch() = default;
        explicit Batch(Page gathered) : page(std::move(gathered)) {}
        Page page;
        std::vector<PendingOperation> ops;
        BatchCommit commit;
        std::vector<json::object> writebacks;  // what to send back to the source
        bool mapped = false;                   // map() has run (ahead, while the batch before it wrote)
        bool hashed = false;                   // mappings applied and content hashed (ahead too)
        bool decided = false;                  // skip_unchanged and resolve ran ahead (decide_ahead)
        std::optional<RunStop> stop;           // map() could not go on (not a record's fault)
        // The links of its active keys (`ahead_keys`, sorted) as look_up_ahead read them while
        // the batch before it wrote, brought up to date once that one is saved: what
        // skip_unchanged would read again.
        std::optional<std::map<std::string, LinkRow>> ahead_links;
        std::vector<std::string> ahead_keys;
        // The CRM ids earlier runs' links give the keys its operations' refs name, read on
        // the run's thread before the write (whose thread does not use the store, store.h).
        std::map<std::string, std::string> earlier_refs;
    };

    // The run: failed records due again, then pages from the source, each batch through
    // process() to its commit.
    std::optional<RunStop> retry_failed(RunScope& scope, const RunOptions& options);
    // `meanwhile` runs on this thread while the batch's write goes on (the next page read
    // and mapped ahead); it does not run when the batch stops before its write. With
    // `save_later` a batch that ends well is kept unsaved (`unsaved_`): it is saved while the
    // next batch is written, so the CRM does not wait on the state store between batches.
    std::optional<RunStop> process(RunScope& scope, Batch& batch, const RunOptions& options,
                                   const std::function<void()>& meanwhile = {}, bool save_later = false);
    std::optional<RunStop> between_batches(const RunScope& scope) const;
    void settle_records(Batch& batch);
    // A batch's commit into the store, its counts into the run's; a stop when it failed.
    std::optional<RunStop> save(RunScope& scope, BatchCommit& commit, const RunOptions& options);
    // Saves the batch kept unsaved, if there is one. Once that failed, every later call
    // answers the same stop: no batch is saved after one that was not.
    std::optional<RunStop> save_unsaved(RunScope& scope, const RunOptions& options);

    // The run turned round (pipeline_crm_read.cpp).
    bool reads_crm() const { return b_.source.can(CRMSYNC_CAP_READS_CRM); }
    std::optional<RunStop> prepare_crm_read();
    // One batch of operations keeping the destination's select options in step with the
    // CRM's picklist values (skipped when unchanged since the last run).
    std::optional<RunStop> sync_options(RunScope& scope, const RunOptions& options);
    Outcome fetch_changes(const json::value& cursor, int64_t want, Page& page, RunCounts& counts);

    // Stages, in order.
    std::optional<RunStop> prepare(const RunOptions& options);
    Page gather(const RunOptions& options, const json::value& cursor, int64_t fetched);
    Page gather_inbox();
    Page gather_source(const RunOptions& options, const json::value& cursor, int64_t fetched);
    // One fetch call of at most `want` records after `cursor`, into `page`.
    Outcome fetch_page(const json::value& cursor, bool full, int64_t want, Page& page, bool& overflowed, RunCounts& counts);
    // The items of one records or changes answer into `page` (at most `want` records).
    // `fetch` makes the call, calling `begin` before each attempt and giving items to `sink`.
    using ItemSink = std::function<int32_t(json::value&&)>;
    using PageFetch =
        std::function<Outcome(const std::function<void()>& begin, const ItemSink& sink, const RecordSink* record_sink)>;
    Outcome take_page(const PageFetch& fetch, int64_t want, Page& page, bool& overflowed);
    void map(Batch& batch);
    void hash_operations(Batch& batch);
    // The look-ups of a page read ahead, asked while the batch before it is written.
    void look_up_ahead(Batch& batch);
    // The keys of `next` that `written` (the batch before it) wrote links for: what
    // look_up_ahead read of them is out of date.
    static std::vector<std::string> keys_written_again(const Batch& next, const std::vector<LinkRow>& written);
    void refresh_ahead_links(Batch& next, const std::vector<std::string>& again);
    // Whether the links read ahead serve the batch's unchanged check: read for exactly its keys.
    static bool ahead_links_fit(const Batch& batch);
    // The unchanged check and resolve of a page read ahead, while `writing` (the batch before
    // it) is written — when nothing `writing` writes can change them: no key in common, no
    // refs to read from the store. It reads only the keys of `writing`'s operations, which
    // its write does not change.
    void decide_ahead(Batch& next, const Batch& writing, RunReport& report);
    std::optional<RunStop> skip_unchanged(Batch& batch, RunReport& report, bool dry_run);
    bool skip_older(PendingOperation& p, const LinkRow* link, const std::map<std::string, int64_t>& newest, Batch& batch);
    std::optional<RunStop> resolve(Batch& batch);
    void forget_results(Batch& batch);
    std::optional<RunStop> write(Batch& batch);
    std::optional<RunStop> write_meanwhile(Batch& batch, const std::function<void()>& meanwhile);
    // The write-backs a batch asked for, to the source plugin; a stop only when the plugin died.
    std::optional<RunStop> write_back(Batch& batch);
    void record_failures(Batch& batch, RunReport& report, bool dry_run);
    void describe_dry_run(const Batch& batch, RunReport& report) const;
    // Stops the run when the CRM's daily budget is under the module's reserve, as this run
    // saw it or as another run through the connection saw it since (the budget is the org's).
    std::optional<RunStop> budget_stop();

    // The CRM write (pipeline_write.cpp).
    struct WriteChunk {
        std::vector<PendingOperation*> ops;
        bool bulk = false;
    };
    std::vector<WriteChunk> plan_chunks(const std::vector<PendingOperation*>& ops) const;
    static std::vector<std::vector<WriteChunk>> plan_waves(std::vector<WriteChunk> chunks);
    size_t parallel_calls() const;
    std::optional<RunStop> write_operations(const std::vector<PendingOperation*>& ops, Batch& batch);
    std::optional<RunStop> write_wave(std::vector<WriteChunk> chunks, Batch& batch);
    void take_results(const std::vector<PendingOperation*>& chunk, const std::vector<json::value>& results, Batch& batch,
                      std::vector<PendingOperation*>& again);
    // Reads batch.earlier_refs. A store that cannot be read is not the operations' fault:
    // that answers a stop.
    std::optional<RunStop> read_earlier_refs(Batch& batch);
    // Fills `refs` fields with the CRM ids of the operations they name (written in this
    // batch, else earlier_refs), or fails the operation.
    void resolve_refs(std::vector<PendingOperation*>& ops, const Batch& batch);
    // The operation as it goes to the CRM: `blobs` fetched from the source into its fields.
    // Nothing when the file could not be had: the operation failed (the file's fault), or
    // `stop` says why the run must stop (cancelled, refused, unreachable).
    // Written as JSON text, as the write call sends it.
    std::optional<std::string> with_blobs(PendingOperation& p, RunCounts& counts, std::optional<RunStop>& stop);

    // Whose state this run reads and writes: the module through its connection.
    StateScope state_scope() const { return {b_.module.name, b_.connection.name}; }
    void log(Level level, std::string message);
    Outcome call_source(const std::function<Outcome()>& attempt, RunCounts& counts);
    Outcome call_crm(const std::function<Outcome()>& attempt, RunCounts& counts);
    // Where operations are written: the CRM, or the module's own system when it reads the CRM.
    Outcome call_destination_write(const std::string& batch_json, std::vector<json::value>& results, RunCounts& counts);

    struct Budget {
        int64_t last_used = -1, limit = 0;  // the latest reading
        // The run's lowest and highest readings: answers to calls made at once come in any order.
        int64_t lowest_used = -1, highest_used = -1;
        int64_t seen_ms = 0;       // when this run last had a reading
        int64_t shared_used = -1;  // the last reading this run kept in the store
    };
    // This run's latest budget reading, as its plugin calls left it.
    Budget budget_reading();
    // The API calls this run made, given its budget reading (see pipeline.cpp).
    int64_t api_calls_made(const Budget& budget);
    // Keeps this run's latest budget reading where every worker reads it (once a reading), as
    // each batch is saved and as the run ends; a store that cannot take it stops nothing.
    void keep_budget_reading();

    StateStore& store_;
    ModuleBinding b_;
    const Clock& clock_;
    const std::atomic<bool>& cancel_;
    const Diagnostics& diagnostics_;
    PluginCaller caller_;
    std::unique_ptr<Services> services_;
    std::optional<CrmRead> crm_read_;
    std::mutex calls_mutex_;  // guards log_ and budget_ while plugin calls run at once
    std::vector<LogLine> log_;
    Budget budget_;
    int64_t crm_requests_from_ = -1;  // the CRM plugin's requests through the host once signed in
    // The batch before, written and ended but not yet saved (process' `save_later`), and why
    // it could not be saved, once that failed.
    std::optional<BatchCommit> unsaved_;
    std::optional<RunStop> unsaved_failed_;
};

}  // namespace crmsync
