#pragma once
// The state store: everything crmsync remembers between runs — runs and their logs, the
// error log (365 days), links (source key -> CRM record + content hash), cursors, the
// webhook inbox and module leases. StateStore is the one interface the rest of the host
// uses, so a shared server database can take SQLite's place. SqliteStore keeps it in one
// WAL-mode file; one instance per thread (SQLite connections are not shared).
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "json.h"
#include "status.h"

namespace crmsync {

// Whose state: a module's links, cursor and error log belong to the module writing to one
// CRM connection, so swapping the connection (mock-crm for salesforce, the QA swap) starts
// afresh on the new CRM and finds the old state again when swapped back.
struct StateScope {
    std::string module;
    std::string connection;
};

struct RunCounts {
    int64_t fetched = 0;    // source records read
    int64_t created = 0;    // CRM records created
    int64_t updated = 0;    // CRM records updated
    int64_t unchanged = 0;  // same content as last written: no API call spent
    int64_t ignored = 0;    // records the plugin mapped to nothing
    int64_t failed = 0;     // operations that ended in the error log
    int64_t no_match = 0;   // update-by-key found no record
    int64_t api_calls = 0;  // CRM and source API calls made
    int64_t retries = 0;    // API calls tried again
    int64_t retried = 0;    // failed records of earlier runs tried again
    int64_t recovered = 0;  // of those, the ones that landed
    int64_t gave_up = 0;    // records that failed their last allowed attempt
    json::object extra;     // service counters (fallbacks taken, ...)
    void add(const RunCounts& other);
    // Adds one to the service counter `name` in `extra`.
    void bump(const std::string& name);
    json::object to_json() const;
    static RunCounts from_json(const json::object& o);
};

struct RunRow {
    int64_t id = 0;
    std::string module;
    std::string connection;   // the CRM connection the run wrote to
    std::string trigger;      // manual, schedule, webhook
    int64_t started_ms = 0;   // UTC
    int64_t finished_ms = 0;  // 0 while running
    std::string status;       // running, succeeded, partial, failed, stopped, interrupted
    std::string message;
    RunCounts counts;
};

struct LogLine {
    int64_t at_ms = 0;
    std::string level;
    std::string message;
};

struct ErrorRow {
    int64_t id = 0;
    int64_t run_id = 0;
    std::string module;
    int64_t at_ms = 0;
    std::string entity_id;  // the source record's id
    std::string key;        // the operation key
    std::string object;     // CRM object
    std::string code;       // exception type: the CRM's status code or ours
    std::string message;
    std::vector<std::string> fields{};
    // The operation as JSON. The log keeps at most kMaxPayloadBytes of it (it lives a year):
    // past that, {"cut": true, "bytes": <full size>, "head": "<the first bytes>"}.
    std::string payload;
    static constexpr size_t kMaxPayloadBytes = 64 * 1024;
    static constexpr size_t kMaxMessageBytes = 8 * 1024;
    // What a store keeps of a payload and a message (cut with a note past the bounds above).
    static std::string bounded_payload(const std::string& payload);
    static std::string bounded_message(const std::string& message);
    // `fields` as the stores keep them: a JSON array of names (what does not parse reads as none).
    std::string fields_json() const;
    void set_fields_json(const std::string& text);
    std::string connection{};  // filled by the reads; a batch's errors take the batch's
    // open (its record is tried again), gave_up (tried max_attempts times) or closed.
    std::string state{};
    std::string closed_reason{};  // landed, tried again, dismissed, reset
    int64_t closed_ms = 0;
};

// A source record that failed for its own reasons, kept to be tried again in later runs.
struct FailedRecord {
    std::string source_id;
    std::string record;    // the source record as it was fetched or received (JSON)
    int64_t attempts = 0;  // failed tries so far
    int64_t next_ms = 0;   // not tried again before this
    bool gave_up = false;  // tried the module's max_attempts times: no more
};

struct LinkRow {
    std::string key;
    std::string source_id;
    std::string object;
    std::string crm_id;
    std::string content_hash;
    int64_t updated_ms = 0;
    std::string connection{};          // filled by the reads; a batch's links take the batch's
    std::string crm_key{};             // the external-id value it was written under (operation.h, crm_key_for)
    std::optional<int64_t> version{};  // the newest source version written or seen unchanged
};

// Who runs a module. The fence number goes up by one each time the lease changes hands
// and never comes back down, so a holder that lost its lease (stalled past its expiry,
// taken over) is told so by the number it holds.
struct LeaseRow {
    std::string module;
    std::string holder;
    int64_t expires_ms = 0;
    int64_t fence = 0;
};

struct InboxRow {
    int64_t id = 0;
    std::string module;
    int64_t received_ms = 0;
    std::string body;
};

// A source row whose match keys found no CRM record: nothing was written for it. Kept for
// the module's last kUnmatchedRunsKept runs, to export and fix at the source or in the CRM.
struct UnmatchedRow {
    int64_t run_id = 0;
    int64_t at_ms = 0;
    std::string object;     // the CRM object looked in
    std::string fields;     // the fields matched ("Email"; "Email, Org_Id__c")
    std::string key;        // the value looked for ("a@b.jp"; "Email = a@b.jp and Org_Id__c = 4")
    std::string source_id;  // the source record
};
inline constexpr int kUnmatchedRunsKept = 10;

// Everything one batch changes, committed in one transaction.
struct BatchCommit {
    int64_t run_id = 0;
    StateScope scope;
    std::vector<LinkRow> links;
    std::vector<ErrorRow> errors;
    std::vector<LogLine> log;
    RunCounts counts;                   // added to the run's counters
    std::optional<std::string> cursor;  // saved only with the results before it
    std::vector<int64_t> inbox_done;    // webhook events this batch consumed
    // When set, the batch is saved only while this lease is still held under its fence;
    // otherwise nothing of it is, and the commit answers a Status of kind `conflict`.
    // Records of this batch that failed: kept to be tried again; their earlier errors close.
    std::vector<FailedRecord> failed;
    // Records of this batch that landed whole: their open errors close ("landed"), and they
    // leave the failed list.
    std::vector<std::string> landed;
    std::vector<UnmatchedRow> unmatched;  // run_id and at_ms are the batch's
    int64_t at_ms = 0;                    // when the batch is saved (the time errors close)
    std::optional<LeaseRow> lease;
};

// The CRM's daily API budget as a run last saw it. The budget is the org's, shared by every
// worker writing through the connection, so it is kept where they all read it.
struct ApiUsage {
    std::string connection;
    int64_t used = 0;
    int64_t limit = 0;
    int64_t at_ms = 0;  // when it was seen
};

// Totals over every run of one module that ended with one status, for /metrics.
struct RunTotals {
    std::string module;
    std::string status;
    int64_t runs = 0;
    RunCounts counts;
};

// Everything a run calls answers a Status or Result: the store's own failures (disk full,
// a locked or corrupt file) come back as values, never as exceptions through the pipeline.
// The read-only queries behind the history commands may throw; the CLI reports those.
class StateStore {
public:
    virtual ~StateStore() = default;

    virtual Result<int64_t> start_run(const StateScope& scope, const std::string& trigger, int64_t now_ms) = 0;
    virtual Status finish_run(int64_t run_id, const std::string& status, const std::string& message, int64_t now_ms,
                              const std::vector<LogLine>& log) = 0;
    virtual Status commit_batch(const BatchCommit& batch) = 0;
    // Runs left "running" by a process that died become "interrupted".
    virtual Status mark_interrupted(const std::string& module, int64_t now_ms) = 0;

    virtual std::optional<RunRow> run(int64_t run_id) = 0;
    virtual std::optional<RunRow> last_run(const std::string& module) = 0;
    virtual std::vector<RunRow> runs(const std::optional<std::string>& module, int limit) = 0;
    virtual std::vector<LogLine> run_log(int64_t run_id) = 0;
    virtual std::vector<RunTotals> run_totals() = 0;
    // When the module last started a run on its schedule or by hand (webhook drains and
    // dry runs do not move its schedule).
    virtual std::optional<int64_t> last_scheduled_start(const std::string& module) = 0;
    // When the module's last run that went through to its end (succeeded, or partial: its
    // records' own errors aside) finished; dry runs do not count.
    virtual std::optional<int64_t> last_success(const std::string& module) = 0;
    // What a notification last told about a module ("ok" when it never told anything).
    virtual Result<std::string> notify_state(const std::string& notification, const std::string& module) = 0;
    // Moves it from `from` to `to` only if it is still `from`: of the workers that saw the
    // same change, one gets true and tells it. False when it was no longer `from`.
    virtual Result<bool> change_notify_state(const std::string& notification, const std::string& module, const std::string& from,
                                             const std::string& to, int64_t now_ms) = 0;
    // True when a write transaction can be opened (for health checks).
    virtual bool writable() = 0;
    // Errors since since_ms: those still open (or given up), or with closed too (history).
    virtual std::vector<ErrorRow> errors(const std::optional<std::string>& module, int64_t since_ms,
                                         bool with_closed = false) = 0;
    // Records failed before that are due to be tried again (next_ms <= now_ms, not given
    // up), in source id order after `after`.
    virtual Result<std::vector<FailedRecord>> due_records(const StateScope& scope, int64_t now_ms, const std::string& after,
                                                          int limit) = 0;
    // An operator gives up on records: the open errors whose key or source id is `key`, of
    // `module` (every module when none; every key when none, but not both none), close as
    // "dismissed" and their records are not tried again. Answers how many errors closed.
    virtual Result<int64_t> dismiss(const std::optional<std::string>& module, const std::optional<std::string>& key,
                                    int64_t now_ms) = 0;
    virtual Result<int64_t> purge_errors(int64_t older_than_ms) = 0;
    // The unmatched rows of one run, in the order they were met.
    virtual std::vector<UnmatchedRow> unmatched(int64_t run_id) = 0;

    virtual Result<std::map<std::string, LinkRow>> links(const StateScope& scope, const std::vector<std::string>& keys) = 0;
    // The module's latest links, over every connection or one.
    virtual std::vector<LinkRow> all_links(const std::string& module, const std::optional<std::string>& connection,
                                           int limit) = 0;

    virtual Result<std::optional<std::string>> cursor(const StateScope& scope) = 0;

    // State saved before it was kept per connection goes to `scope` (the connection the
    // module writes to at its first run after the upgrade). Answers how many rows moved.
    virtual Result<int64_t> claim_unscoped_state(const StateScope& scope) = 0;
    // Forgets what the module wrote through the connection: links, cursor and failed
    // records go, open errors close ("reset"), so the next run starts from the beginning and writes everything again (upserts,
    // so nothing is duplicated). The run history stays. Answers how many links went.
    virtual Result<int64_t> reset(const StateScope& scope) = 0;

    // Takes the module's lease when it is free, expired, or already ours; answers its fence
    // number, or nothing while another holder has it.
    virtual Result<std::optional<int64_t>> acquire_lease(const std::string& module, const std::string& holder, int64_t now_ms,
                                                         int64_t ttl_ms) = 0;
    // Takes the lease from `previous` (known dead) for `holder`; nothing if it changed hands.
    virtual Result<std::optional<int64_t>> take_over_lease(const std::string& module, const std::string& previous,
                                                           const std::string& holder, int64_t now_ms, int64_t ttl_ms) = 0;
    // Extends the lease while it is still the holder's under its fence; false once it is not.
    virtual Result<bool> renew_lease(const LeaseRow& lease, int64_t now_ms, int64_t ttl_ms) = 0;
    virtual Status release_lease(const std::string& module, const std::string& holder) = 0;
    virtual Result<std::optional<LeaseRow>> lease(const std::string& module) = 0;

    // A webhook event into the module's inbox, committed before it returns. `signature`
    // (kept until seen_until_ms) makes a replay of the same signed request within its
    // window a duplicate: nothing is added and the first event's id comes back.
    struct InboxAdded {
        int64_t id = 0;
        bool duplicate = false;
    };
    virtual Result<InboxAdded> inbox_add(const std::string& module, const std::string& body, int64_t now_ms,
                                         const std::string& signature, int64_t seen_until_ms) = 0;
    virtual Result<std::vector<InboxRow>> inbox_pending(const std::string& module, int limit) = 0;
    virtual int64_t inbox_depth(const std::optional<std::string>& module) = 0;

    // What serve looks at for each module every tick, in one read for all of them (several
    // workers polling a shared database): when it last started on its schedule or by hand,
    // its last run's status ("" when none), and its webhook events waiting. May throw, like
    // the history reads.
    struct ModuleGlance {
        std::optional<int64_t> last_scheduled_start;
        std::string last_status;
        int64_t inbox_depth = 0;
    };
    virtual std::map<std::string, ModuleGlance> glance(const std::vector<std::string>& modules) = 0;

    // Keeps a reading of the connection's API budget unless a newer one is kept already.
    virtual Status note_api_usage(const ApiUsage& usage) = 0;
    virtual Result<std::optional<ApiUsage>> api_usage(const std::string& connection) = 0;

    // Another connection to the same store, for another thread (the lease keeper).
    virtual Result<std::unique_ptr<StateStore>> open_another() const = 0;
};

// Opens (creating and migrating) the SQLite store at path.
Result<std::unique_ptr<StateStore>> open_sqlite_store(const std::string& path);
// Opens (migrating) the store in a PostgreSQL database several workers share; `conninfo` is
// a libpq connection string or URI (it may hold a password: never printed).
Result<std::unique_ptr<StateStore>> open_postgres_store(const std::string& conninfo);

// The schema versions this build migrates to.
int store_schema_version();
int postgres_schema_version();

}  // namespace crmsync
