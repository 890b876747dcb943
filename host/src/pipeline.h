#pragma once
// The run pipeline: one run of one module, as data flows —
//   fetch a page (<= 200 records) -> map each record -> operations -> [services] ->
//   skip unchanged (content hash) -> CRM write (<= 200 per call, upsert on the key's
//   external-id field) -> write-back -> one transaction: links, errors, log, counters, cursor.
// A record's failure never fails the batch. RETRY backs off exponentially up to a cap;
// AUTH_FAILED re-authenticates once; RATE_LIMITED and the API reserve stop the run cleanly
// with everything before saved. Cancellation (SIGINT/SIGTERM) finishes the current batch.
#include <atomic>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "clock.h"
#include "diagnostics.h"
#include "instance.h"
#include "manifest.h"
#include "store.h"

namespace crmsync {

// Records a page asks for, and operations a CRM write call carries.
inline constexpr size_t kBatchSize = 200;

struct RunOptions {
    bool dry_run = false;
    bool full = false;                  // ignore the saved cursor
    std::optional<int64_t> limit;       // stop after this many source records
    std::string trigger = "manual";
    bool inbox = false;                 // take records from the webhook inbox, not from fetch
    std::string lease_holder;           // who takes the module's lease
    int64_t lease_ttl_ms = 120'000;
    std::function<void(const RunCounts&)> progress;
};

struct RunReport {
    int64_t run_id = 0;
    std::string status;   // succeeded, partial, failed, stopped, busy
    std::string message;
    RunCounts counts;
    int64_t duration_ms = 0;
    std::vector<std::string> dry_run;  // what a dry run would have done, one line each
    bool unreachable = false;          // the CRM or source could not be reached or refused us
    int64_t api_used = -1, api_limit = 0;  // the CRM's daily budget as last reported
};

// A resolved operation on its way to the CRM.
struct PendingOperation {
    json::object op;
    const json::value* record = nullptr;  // the source record it was mapped from (for field mappings), owned by the batch
    std::string skip_reason;   // set when a service decides there is nothing to write (e.g. no match)
    std::string source_id;
    std::string hash;
    bool known = false;  // a link exists: an update, not a create
    std::optional<std::string> error_code;
    std::string error_message;
    std::vector<std::string> error_fields;
    // Marks the operation failed; the first failure is the one reported.
    void fail(std::string code, std::string message, std::vector<std::string> fields = {}) {
        if (error_code) return;
        error_code = std::move(code);
        error_message = std::move(message);
        error_fields = std::move(fields);
    }
};

// The services step (field mapping, owner, related-to, match): given a batch of operations,
// resolves directives in place or marks operations failed. Set by whoever builds the
// pipeline; absent means operations go to the CRM as the plugin mapped them.
using ServiceStep = std::function<void(std::vector<PendingOperation>&, RunCounts&, std::vector<LogLine>&)>;

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
    void set_service_step(ServiceStep step) { services_ = std::move(step); }
    RunReport run(const RunOptions& options);

private:
    struct Budget {
        int64_t first_used = -1, last_used = -1, limit = 0;
    };
    bool authenticate(PluginInstance& plugin, const std::vector<CredentialRef>& refs, std::string& why);
    // Calls `attempt` until it is not RETRY, backing off; re-authenticates once on AUTH_FAILED.
    Outcome with_retry(PluginInstance& plugin, const std::vector<CredentialRef>& refs,
                       const std::function<Outcome()>& attempt, RunCounts& counts);
    bool backoff(int attempt);
    void log(Level level, std::string message);

    // The CRM write step (pipeline_write.cpp).
    struct WriteState {
        std::vector<json::object> writebacks;  // what to send back to the source
        bool stop = false;                     // the run stops after this batch is committed
        std::string stop_status, stop_message;
        bool unreachable = false;
    };
    void write_operations(const std::vector<PendingOperation*>& ops, BatchCommit& batch, WriteState& state);
    // Fills `refs` fields with the CRM ids of the operations they name, or fails the operation.
    void resolve_refs(std::vector<PendingOperation*>& ops, const BatchCommit& batch);
    // The operation as it goes to the CRM: `blobs` fetched from the source into its fields.
    // Nothing when the file could not be had: the operation failed (the file's fault), or
    // `outcome` says why the run must stop (cancelled, refused, unreachable).
    std::optional<json::object> with_blobs(PendingOperation& p, RunCounts& counts, Outcome& outcome);

    StateStore& store_;
    ModuleBinding b_;
    const Clock& clock_;
    const std::atomic<bool>& cancel_;
    const Diagnostics& diagnostics_;
    ServiceStep services_;
    std::vector<LogLine> log_;
    Budget budget_;
};

}  // namespace crmsync
