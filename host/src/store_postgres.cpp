// PostgresStore: the StateStore in a PostgreSQL database that several workers share. The
// same tables as SQLite's, relational, migrated by number (pq::migrate). Workers coordinate
// only through rows and transactions: a lease row claimed with FOR UPDATE SKIP LOCKED and
// fenced by a number each batch's commit checks under the same row lock; no session-level
// advisory lock anywhere (a pooler such as PgBouncer may hand each transaction another
// server session). A batch's rows go in one statement a table (jsonb_to_recordset), not one
// round trip a row.
#include <chrono>
#include <set>
#include <stdexcept>
#include <unordered_map>

#include "clock.h"
#include "pq.h"
#include "store.h"

namespace crmsync {
namespace {

const std::vector<std::string_view> kPostgresMigrations = {
    // 1: the schema SQLite reached in its nine steps, at once.
    R"sql(
    CREATE TABLE runs (
        id BIGSERIAL PRIMARY KEY,
        module TEXT NOT NULL,
        connection TEXT NOT NULL DEFAULT '',
        trigger TEXT NOT NULL,
        started_ms BIGINT NOT NULL,
        finished_ms BIGINT NOT NULL DEFAULT 0,
        status TEXT NOT NULL,
        message TEXT NOT NULL DEFAULT '',
        counts JSONB NOT NULL DEFAULT '{}'
    );
    CREATE INDEX runs_module ON runs (module, id);
    CREATE INDEX runs_schedule ON runs (module, trigger, started_ms);
    CREATE TABLE run_logs (
        run_id BIGINT NOT NULL REFERENCES runs (id),
        seq BIGINT NOT NULL,
        at_ms BIGINT NOT NULL,
        level TEXT NOT NULL,
        message TEXT NOT NULL,
        PRIMARY KEY (run_id, seq)
    );
    CREATE TABLE errors (
        id BIGSERIAL PRIMARY KEY,
        run_id BIGINT NOT NULL,
        module TEXT NOT NULL,
        connection TEXT NOT NULL DEFAULT '',
        at_ms BIGINT NOT NULL,
        entity_id TEXT NOT NULL,
        key TEXT NOT NULL,
        object TEXT NOT NULL,
        code TEXT NOT NULL,
        message TEXT NOT NULL,
        fields JSONB NOT NULL,
        payload TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'open',
        closed_ms BIGINT NOT NULL DEFAULT 0,
        closed_reason TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX errors_module_time ON errors (module, at_ms);
    CREATE INDEX errors_time ON errors (at_ms);
    CREATE INDEX errors_open ON errors (module, connection, entity_id) WHERE state <> 'closed';
    CREATE TABLE links (
        module TEXT NOT NULL,
        connection TEXT NOT NULL,
        key TEXT NOT NULL,
        source_id TEXT NOT NULL,
        object TEXT NOT NULL,
        crm_id TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        updated_ms BIGINT NOT NULL,
        crm_key TEXT,
        version BIGINT,
        PRIMARY KEY (module, connection, key)
    );
    CREATE INDEX links_recent ON links (module, updated_ms);
    CREATE TABLE cursors (
        module TEXT NOT NULL,
        connection TEXT NOT NULL,
        cursor TEXT,
        updated_ms BIGINT NOT NULL,
        PRIMARY KEY (module, connection)
    );
    CREATE TABLE inbox (
        id BIGSERIAL PRIMARY KEY,
        module TEXT NOT NULL,
        received_ms BIGINT NOT NULL,
        body TEXT NOT NULL,
        done BOOLEAN NOT NULL DEFAULT false
    );
    CREATE INDEX inbox_pending ON inbox (module, id) WHERE NOT done;
    CREATE TABLE leases (
        module TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        expires_ms BIGINT NOT NULL,
        fence BIGINT NOT NULL DEFAULT 0
    );
    CREATE TABLE failed_records (
        module TEXT NOT NULL,
        connection TEXT NOT NULL,
        source_id TEXT NOT NULL,
        record TEXT NOT NULL,
        attempts BIGINT NOT NULL,
        next_ms BIGINT NOT NULL,
        gave_up BOOLEAN NOT NULL DEFAULT false,
        first_failed_ms BIGINT NOT NULL,
        PRIMARY KEY (module, connection, source_id)
    );
    CREATE INDEX failed_records_due ON failed_records (module, connection, gave_up, next_ms);
    CREATE TABLE webhook_seen (
        module TEXT NOT NULL,
        signature TEXT NOT NULL,
        expires_ms BIGINT NOT NULL,
        inbox_id BIGINT NOT NULL,
        PRIMARY KEY (module, signature)
    );
    CREATE INDEX webhook_seen_expiry ON webhook_seen (expires_ms);
    CREATE TABLE unmatched (
        run_id BIGINT NOT NULL,
        seq BIGINT NOT NULL,
        module TEXT NOT NULL,
        at_ms BIGINT NOT NULL,
        object TEXT NOT NULL,
        fields TEXT NOT NULL,
        key TEXT NOT NULL,
        source_id TEXT NOT NULL,
        PRIMARY KEY (run_id, seq)
    );
    CREATE INDEX unmatched_module ON unmatched (module, run_id);
    CREATE TABLE notify_state (
        notification TEXT NOT NULL,
        module TEXT NOT NULL,
        state TEXT NOT NULL,
        at_ms BIGINT NOT NULL,
        PRIMARY KEY (notification, module)
    );
    CREATE TABLE api_budget (
        connection TEXT PRIMARY KEY,
        used BIGINT NOT NULL,
        daily_limit BIGINT NOT NULL,
        at_ms BIGINT NOT NULL
    );
    )sql",
    // 2: SQLite's tenth step: no index of links by time (store_sqlite.cpp says why).
    R"sql(
    DROP INDEX IF EXISTS links_recent;
    )sql",
};

// Statement parameters from the values a store method has.
inline std::optional<std::string> param(const std::string& v) { return v; }
inline std::optional<std::string> param(const char* v) { return std::string(v); }
inline std::optional<std::string> param(int64_t v) { return std::to_string(v); }
inline std::optional<std::string> param(int v) { return std::to_string(v); }
inline std::optional<std::string> param(bool v) { return std::string(v ? "true" : "false"); }
template <class T>
std::optional<std::string> param(const std::optional<T>& v) {
    return v ? param(*v) : std::nullopt;
}
template <class... Values>
pq::Params params(const Values&... values) {
    return pq::Params{param(values)...};
}

std::string text_of(const pq::Rows& rows, int row, int column) { return std::string(rows.text(row, column).value_or("")); }
int64_t int_of(const pq::Rows& rows, int row, int column) { return rows.integer(row, column).value_or(0); }

// Values as one array parameter in PostgreSQL's text form ({"a","b\"c",NULL}): `= ANY($n::text[])`
// and `unnest` take a batch in one statement, not one a value.
void append_element(std::string& out, const std::optional<std::string>& value) {
    if (out.size() > 1) out += ',';
    if (!value) {
        out += "NULL";
        return;
    }
    out += '"';
    for (char c : *value) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    out += '"';
}
std::string array_of(const std::vector<std::optional<std::string>>& values) {
    std::string out = "{";
    for (const auto& v : values) append_element(out, v);
    return out + "}";
}
std::string text_array(const std::vector<std::string>& values) {
    std::string out = "{";
    for (const auto& v : values) append_element(out, v);
    return out + "}";
}

// The failure a store operation answered, whether it answers a Status or a Result.
inline const Status& failure_of(const Status& s) { return s; }
template <class T>
const Status& failure_of(const Result<T>& r) {
    return r.status();
}

// The history commands' reads may throw (store.h); the CLI reports it.
template <class T>
T or_throw(Result<T> result) {
    if (!result) throw std::runtime_error(result.status().message());
    return std::move(result.value());
}

class PostgresStore final : public StateStore {
public:
    PostgresStore(std::string conninfo, pq::Connection connection) : conninfo_(std::move(conninfo)), db_(std::move(connection)) {}

    Status migrate() { return pq::migrate(db_, kPostgresMigrations); }

    Result<int64_t> start_run(const StateScope& scope, const std::string& trigger, int64_t now_ms) override {
        return transaction("starting a run", [&]() -> Result<int64_t> {
            auto made = exec(
                "INSERT INTO runs (module, connection, trigger, started_ms, status) VALUES ($1, $2, $3, $4, 'running') "
                "RETURNING id",
                params(scope.module, scope.connection, trigger, now_ms));
            if (!made) return made.status();
            const int64_t run_id = int_of(*made, 0, 0);
            // Unmatched rows are kept for the module's last few runs only.
            auto pruned = exec(
                "DELETE FROM unmatched WHERE module = $1 AND run_id <= "
                "(SELECT id FROM runs WHERE module = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)",
                params(scope.module, kUnmatchedRunsKept));
            if (!pruned) return pruned.status();
            return run_id;
        });
    }

    Status finish_run(int64_t run_id, const std::string& status, const std::string& message, int64_t now_ms,
                      const std::vector<LogLine>& log) override {
        return transaction("finishing a run", [&]() -> Status {
            if (auto logged = append_log(run_id, log); !logged) return logged;
            return done(exec("UPDATE runs SET status = $1, message = $2, finished_ms = $3 WHERE id = $4",
                             params(status, message, now_ms, run_id)));
        });
    }

    Status commit_batch(const BatchCommit& batch) override {
        return transaction("saving a batch", [&]() -> Status {
            if (batch.lease) {
                // The lease row stays locked to the end of this transaction: a takeover waits
                // for the batch, and a batch after a takeover sees the new holder.
                auto held = exec("SELECT holder, fence FROM leases WHERE module = $1 FOR UPDATE", params(batch.lease->module));
                if (!held) return held.status();
                const bool ours =
                    !held->empty() && text_of(*held, 0, 0) == batch.lease->holder && int_of(*held, 0, 1) == batch.lease->fence;
                if (!ours)
                    return Status::error(Status::Kind::conflict,
                                         "module " + batch.lease->module + "'s lease was taken over (this run held fence " +
                                             std::to_string(batch.lease->fence) +
                                             "); this batch was not saved and the run that holds the lease does it again");
            }
            if (auto s = save_links(batch); !s) return s;
            if (auto s = close_errors(batch, batch.landed, "landed"); !s) return s;
            std::vector<std::string> failed_ids;
            std::set<std::string> gave_up;
            for (const auto& f : batch.failed) {
                failed_ids.push_back(f.source_id);
                if (f.gave_up) gave_up.insert(f.source_id);
            }
            if (auto s = close_errors(batch, failed_ids, "tried again"); !s) return s;
            if (auto s = save_errors(batch, gave_up); !s) return s;
            if (auto s = keep_failed(batch); !s) return s;
            if (auto s = append_log(batch.run_id, batch.log); !s) return s;
            if (auto s = keep_unmatched(batch); !s) return s;
            if (auto s = add_counts(batch.run_id, batch.counts); !s) return s;
            if (batch.cursor) {
                auto saved = exec(
                    "INSERT INTO cursors (module, connection, cursor, updated_ms) VALUES ($1, $2, $3, $4) "
                    "ON CONFLICT (module, connection) DO UPDATE SET cursor = excluded.cursor, updated_ms = excluded.updated_ms",
                    params(batch.scope.module, batch.scope.connection, batch.cursor, SystemClock().now_ms()));
                if (!saved) return saved.status();
            }
            if (!batch.inbox_done.empty()) {
                std::vector<std::string> ids;
                for (auto id : batch.inbox_done) ids.push_back(std::to_string(id));
                auto consumed = exec("UPDATE inbox SET done = true WHERE id = ANY($1::bigint[])", params(text_array(ids)));
                if (!consumed) return consumed.status();
            }
            return Status::ok();
        });
    }

    Status mark_interrupted(const std::string& module, int64_t now_ms) override {
        return guarded("marking interrupted runs", [&]() -> Status {
            return done(
                exec("UPDATE runs SET status = 'interrupted', finished_ms = $1, "
                     "message = 'the process running it stopped before it finished' WHERE module = $2 AND status = 'running'",
                     params(now_ms, module)));
        });
    }

    std::optional<RunRow> run(int64_t run_id) override {
        auto rows = or_throw(exec(std::string(kRunColumns) + " WHERE id = $1", params(run_id)));
        if (rows.empty()) return std::nullopt;
        return read_run(rows, 0);
    }

    std::optional<RunRow> last_run(const std::string& module) override {
        auto rows = or_throw(exec(std::string(kRunColumns) + " WHERE module = $1 ORDER BY id DESC LIMIT 1", params(module)));
        if (rows.empty()) return std::nullopt;
        return read_run(rows, 0);
    }

    std::vector<RunRow> runs(const std::optional<std::string>& module, int limit) override {
        auto rows = or_throw(
            module ? exec(std::string(kRunColumns) + " WHERE module = $1 ORDER BY id DESC LIMIT $2", params(*module, limit))
                   : exec(std::string(kRunColumns) + " ORDER BY id DESC LIMIT $1", params(limit)));
        std::vector<RunRow> out;
        for (int i = rows.size() - 1; i >= 0; --i) out.push_back(read_run(rows, i));
        return out;
    }

    std::vector<LogLine> run_log(int64_t run_id) override {
        auto rows = or_throw(exec("SELECT at_ms, level, message FROM run_logs WHERE run_id = $1 ORDER BY seq", params(run_id)));
        std::vector<LogLine> out;
        for (int i = 0; i < rows.size(); ++i) out.push_back({int_of(rows, i, 0), text_of(rows, i, 1), text_of(rows, i, 2)});
        return out;
    }

    std::vector<RunTotals> run_totals() override {
        std::string sql = "SELECT module, status, COUNT(*)";
        for (const char* name : kTotalled) sql += std::string(", COALESCE(SUM((counts->>'") + name + "')::bigint), 0)";
        sql += " FROM runs WHERE status <> 'running' AND trigger <> 'dry-run' GROUP BY module, status ORDER BY module, status";
        auto rows = or_throw(exec(sql));
        std::vector<RunTotals> out;
        for (int i = 0; i < rows.size(); ++i) {
            RunTotals t;
            t.module = text_of(rows, i, 0);
            t.status = text_of(rows, i, 1);
            t.runs = int_of(rows, i, 2);
            json::object counts;
            for (size_t c = 0; c < std::size(kTotalled); ++c) counts[kTotalled[c]] = int_of(rows, i, 3 + static_cast<int>(c));
            t.counts = RunCounts::from_json(counts);
            out.push_back(std::move(t));
        }
        return out;
    }

    std::optional<int64_t> last_scheduled_start(const std::string& module) override {
        auto rows = or_throw(
            exec("SELECT MAX(started_ms) FROM runs WHERE module = $1 AND trigger IN ('schedule', 'manual')", params(module)));
        return rows.integer(0, 0);
    }

    std::optional<int64_t> last_success(const std::string& module) override {
        auto rows = or_throw(exec(
            "SELECT MAX(finished_ms) FROM runs WHERE module = $1 AND status IN ('succeeded', 'partial') AND trigger <> 'dry-run'",
            params(module)));
        return rows.integer(0, 0);
    }

    Result<std::string> notify_state(const std::string& notification, const std::string& module) override {
        return guarded("reading a notification's state", [&]() -> Result<std::string> {
            auto rows =
                exec("SELECT state FROM notify_state WHERE notification = $1 AND module = $2", params(notification, module));
            if (!rows) return rows.status();
            return rows->empty() ? std::string("ok") : text_of(*rows, 0, 0);
        });
    }

    // Two workers changing it at once: the second one's statement waits on the first's row
    // and then finds it changed, so it changes nothing.
    Result<bool> change_notify_state(const std::string& notification, const std::string& module, const std::string& from,
                                     const std::string& to, int64_t now_ms) override {
        return guarded("saving a notification's state", [&]() -> Result<bool> {
            auto q = from == "ok"
                         ? exec(
                               "INSERT INTO notify_state (notification, module, state, at_ms) VALUES ($1, $2, $3, $4) "
                               "ON CONFLICT (notification, module) DO UPDATE SET state = excluded.state, at_ms = excluded.at_ms "
                               "WHERE notify_state.state = $5",
                               params(notification, module, to, now_ms, from))
                         : exec(
                               "UPDATE notify_state SET state = $3, at_ms = $4 WHERE notification = $1 AND module = $2 AND "
                               "state = $5",
                               params(notification, module, to, now_ms, from));
            if (!q) return q.status();
            return q->affected() > 0;
        });
    }

    // Writable: connected to a server that takes writes (not a standby in recovery).
    bool writable() override {
        auto rows = exec("SELECT pg_is_in_recovery()");
        return rows && text_of(*rows, 0, 0) == "f";
    }

    std::vector<ErrorRow> errors(const std::optional<std::string>& module, int64_t since_ms, bool with_closed) override {
        std::string sql =
            "SELECT id, run_id, module, at_ms, entity_id, key, object, code, message, fields::text, payload, connection, state, "
            "closed_reason, closed_ms FROM errors WHERE at_ms >= $1";
        if (!with_closed) sql += " AND state <> 'closed'";
        if (module) sql += " AND module = $2";
        sql += " ORDER BY id";
        auto rows = or_throw(module ? exec(sql, params(since_ms, *module)) : exec(sql, params(since_ms)));
        std::vector<ErrorRow> out;
        for (int i = 0; i < rows.size(); ++i) {
            ErrorRow e;
            e.id = int_of(rows, i, 0);
            e.run_id = int_of(rows, i, 1);
            e.module = text_of(rows, i, 2);
            e.at_ms = int_of(rows, i, 3);
            e.entity_id = text_of(rows, i, 4);
            e.key = text_of(rows, i, 5);
            e.object = text_of(rows, i, 6);
            e.code = text_of(rows, i, 7);
            e.message = text_of(rows, i, 8);
            e.set_fields_json(text_of(rows, i, 9));
            e.payload = text_of(rows, i, 10);
            e.connection = text_of(rows, i, 11);
            e.state = text_of(rows, i, 12);
            e.closed_reason = text_of(rows, i, 13);
            e.closed_ms = int_of(rows, i, 14);
            out.push_back(std::move(e));
        }
        return out;
    }

    Result<std::vector<FailedRecord>> due_records(const StateScope& scope, int64_t now_ms, const std::string& after,
                                                  int limit) override {
        return guarded("reading the failed records", [&]() -> Result<std::vector<FailedRecord>> {
            auto rows = exec(
                "SELECT source_id, record, attempts, next_ms FROM failed_records WHERE module = $1 AND connection = $2 AND "
                "NOT gave_up AND next_ms <= $3 AND source_id COLLATE \"C\" > $4 ORDER BY source_id COLLATE \"C\" LIMIT $5",
                params(scope.module, scope.connection, now_ms, after, limit));
            if (!rows) return rows.status();
            std::vector<FailedRecord> out;
            for (int i = 0; i < rows->size(); ++i)
                out.push_back({text_of(*rows, i, 0), text_of(*rows, i, 1), int_of(*rows, i, 2), int_of(*rows, i, 3), false});
            return out;
        });
    }

    Result<int64_t> dismiss(const std::optional<std::string>& module, const std::optional<std::string>& key,
                            int64_t now_ms) override {
        if (!module && !key) return Status::config("dismiss needs a module or a key");
        return transaction("dismissing errors", [&]() -> Result<int64_t> {
            // $1 module or NULL, $2 key or NULL: NULL matches every one.
            const std::string which =
                "state <> 'closed' AND ($1::text IS NULL OR module = $1) AND ($2::text IS NULL OR key = $2 OR entity_id = $2)";
            auto records = exec(
                "DELETE FROM failed_records WHERE (module, connection, source_id) IN (SELECT module, connection, entity_id "
                "FROM errors WHERE " +
                    which + ")",
                params(module, key));
            if (!records) return records.status();
            auto closed = exec("UPDATE errors SET state = 'closed', closed_reason = 'dismissed', closed_ms = $3 WHERE " + which,
                               params(module, key, now_ms));
            if (!closed) return closed.status();
            return closed->affected();
        });
    }

    Result<int64_t> purge_errors(int64_t older_than_ms) override {
        return transaction("removing old errors", [&]() -> Result<int64_t> {
            auto removed = exec("DELETE FROM errors WHERE at_ms < $1", params(older_than_ms));
            if (!removed) return removed.status();
            auto given_up = exec("DELETE FROM failed_records WHERE gave_up AND first_failed_ms < $1", params(older_than_ms));
            if (!given_up) return given_up.status();
            return removed->affected();
        });
    }

    std::vector<UnmatchedRow> unmatched(int64_t run_id) override {
        auto rows =
            or_throw(exec("SELECT run_id, at_ms, object, fields, key, source_id FROM unmatched WHERE run_id = $1 ORDER BY seq",
                          params(run_id)));
        std::vector<UnmatchedRow> out;
        for (int i = 0; i < rows.size(); ++i)
            out.push_back({int_of(rows, i, 0), int_of(rows, i, 1), text_of(rows, i, 2), text_of(rows, i, 3), text_of(rows, i, 4),
                           text_of(rows, i, 5)});
        return out;
    }

    Result<std::map<std::string, LinkRow>> links(const StateScope& scope, const std::vector<std::string>& keys) override {
        return guarded("reading links", [&]() -> Result<std::map<std::string, LinkRow>> {
            std::map<std::string, LinkRow> out;
            if (keys.empty()) return out;
            auto rows = exec(std::string(kLinkColumns) + " WHERE module = $1 AND connection = $2 AND key = ANY($3::text[])",
                             params(scope.module, scope.connection, text_array(keys)));
            if (!rows) return rows.status();
            for (int i = 0; i < rows->size(); ++i) {
                LinkRow link = read_link(*rows, i);
                std::string key = link.key;
                out.emplace(std::move(key), std::move(link));
            }
            return out;
        });
    }

    std::vector<LinkRow> all_links(const std::string& module, const std::optional<std::string>& connection, int limit) override {
        auto rows = or_throw(exec(std::string(kLinkColumns) + " WHERE module = $1 AND ($2::text IS NULL OR connection = $2) "
                                                              "ORDER BY updated_ms DESC, key COLLATE \"C\" LIMIT $3",
                                  params(module, connection, limit)));
        std::vector<LinkRow> out;
        for (int i = 0; i < rows.size(); ++i) out.push_back(read_link(rows, i));
        return out;
    }

    Result<std::optional<std::string>> cursor(const StateScope& scope) override {
        return guarded("reading the cursor", [&]() -> Result<std::optional<std::string>> {
            auto rows =
                exec("SELECT cursor FROM cursors WHERE module = $1 AND connection = $2", params(scope.module, scope.connection));
            if (!rows) return rows.status();
            auto text = rows->text(0, 0);
            return text ? std::optional<std::string>(std::string(*text)) : std::nullopt;
        });
    }

    Result<int64_t> claim_unscoped_state(const StateScope& scope) override {
        return transaction("claiming the state saved before connections", [&]() -> Result<int64_t> {
            int64_t moved = 0;
            for (const char* table : {"links", "cursors", "errors", "failed_records"}) {
                auto q = exec(std::string("UPDATE ") + table + " SET connection = $1 WHERE module = $2 AND connection = ''",
                              params(scope.connection, scope.module));
                if (!q) return q.status();
                moved += q->affected();
            }
            return moved;
        });
    }

    Result<int64_t> reset(const StateScope& scope) override {
        return transaction("resetting the module", [&]() -> Result<int64_t> {
            auto closed = exec(
                "UPDATE errors SET state = 'closed', closed_reason = 'reset', closed_ms = $3 "
                "WHERE module = $1 AND connection = $2 AND state <> 'closed'",
                params(scope.module, scope.connection, SystemClock().now_ms()));
            if (!closed) return closed.status();
            int64_t links = 0;
            for (const char* table : {"links", "cursors", "failed_records"}) {
                auto q = exec(std::string("DELETE FROM ") + table + " WHERE module = $1 AND connection = $2",
                              params(scope.module, scope.connection));
                if (!q) return q.status();
                if (std::string_view(table) == "links") links = q->affected();
            }
            return links;
        });
    }

    // The lease row is claimed with FOR UPDATE SKIP LOCKED: while another worker is claiming
    // it or committing a batch under it, this one moves on at once instead of queueing.
    Result<std::optional<int64_t>> acquire_lease(const std::string& module, const std::string& holder, int64_t now_ms,
                                                 int64_t ttl_ms) override {
        return transaction("taking the lease", [&]() -> Result<std::optional<int64_t>> {
            auto made =
                exec("INSERT INTO leases (module, holder, expires_ms, fence) VALUES ($1, '', 0, 0) ON CONFLICT DO NOTHING",
                     params(module));
            if (!made) return made.status();
            auto row =
                exec("SELECT holder, expires_ms, fence FROM leases WHERE module = $1 FOR UPDATE SKIP LOCKED", params(module));
            if (!row) return row.status();
            if (row->empty()) return std::optional<int64_t>();  // another worker has the row in hand
            const std::string current = text_of(*row, 0, 0);
            int64_t fence = int_of(*row, 0, 2);
            if (current != holder) {
                if (!current.empty() && int_of(*row, 0, 1) > now_ms) return std::optional<int64_t>();
                ++fence;
            }
            auto taken = exec("UPDATE leases SET holder = $2, expires_ms = $3, fence = $4 WHERE module = $1",
                              params(module, holder, now_ms + ttl_ms, fence));
            if (!taken) return taken.status();
            return std::optional<int64_t>(fence);
        });
    }

    Result<std::optional<int64_t>> take_over_lease(const std::string& module, const std::string& previous,
                                                   const std::string& holder, int64_t now_ms, int64_t ttl_ms) override {
        return guarded("taking over the lease", [&]() -> Result<std::optional<int64_t>> {
            auto q = exec(
                "UPDATE leases SET holder = $3, expires_ms = $4, fence = fence + 1 WHERE module = $1 AND holder = $2 "
                "RETURNING fence",
                params(module, previous, holder, now_ms + ttl_ms));
            if (!q) return q.status();
            return q->empty() ? std::optional<int64_t>() : std::optional<int64_t>(int_of(*q, 0, 0));
        });
    }

    Result<bool> renew_lease(const LeaseRow& lease, int64_t now_ms, int64_t ttl_ms) override {
        return guarded("renewing the lease", [&]() -> Result<bool> {
            auto q = exec("UPDATE leases SET expires_ms = $1 WHERE module = $2 AND holder = $3 AND fence = $4",
                          params(now_ms + ttl_ms, lease.module, lease.holder, lease.fence));
            if (!q) return q.status();
            return q->affected() > 0;
        });
    }

    Status release_lease(const std::string& module, const std::string& holder) override {
        return guarded("releasing the lease", [&]() -> Status {
            return done(
                exec("UPDATE leases SET holder = '', expires_ms = 0 WHERE module = $1 AND holder = $2", params(module, holder)));
        });
    }

    Result<std::optional<LeaseRow>> lease(const std::string& module) override {
        return guarded("reading the lease", [&]() -> Result<std::optional<LeaseRow>> {
            auto q =
                exec("SELECT module, holder, expires_ms, fence FROM leases WHERE module = $1 AND holder <> ''", params(module));
            if (!q) return q.status();
            if (q->empty()) return std::optional<LeaseRow>();
            return std::optional<LeaseRow>(LeaseRow{text_of(*q, 0, 0), text_of(*q, 0, 1), int_of(*q, 0, 2), int_of(*q, 0, 3)});
        });
    }

    // Two workers taking the same replayed request at once: the second one's insert of the
    // signature waits on the first's and then finds it, so one event goes in.
    Result<InboxAdded> inbox_add(const std::string& module, const std::string& body, int64_t now_ms, const std::string& signature,
                                 int64_t seen_until_ms) override {
        return transaction("adding to the inbox", [&]() -> Result<InboxAdded> {
            auto expired = exec("DELETE FROM webhook_seen WHERE expires_ms < $1", params(now_ms));
            if (!expired) return expired.status();
            auto fresh = exec(
                "INSERT INTO webhook_seen (module, signature, expires_ms, inbox_id) VALUES ($1, $2, $3, 0) "
                "ON CONFLICT DO NOTHING RETURNING 1",
                params(module, signature, seen_until_ms));
            if (!fresh) return fresh.status();
            if (fresh->empty()) {
                auto seen =
                    exec("SELECT inbox_id FROM webhook_seen WHERE module = $1 AND signature = $2", params(module, signature));
                if (!seen) return seen.status();
                return InboxAdded{int_of(*seen, 0, 0), true};
            }
            auto added = exec("INSERT INTO inbox (module, received_ms, body) VALUES ($1, $2, $3) RETURNING id",
                              params(module, now_ms, body));
            if (!added) return added.status();
            const int64_t id = int_of(*added, 0, 0);
            auto noted =
                exec("UPDATE webhook_seen SET inbox_id = $3 WHERE module = $1 AND signature = $2", params(module, signature, id));
            if (!noted) return noted.status();
            return InboxAdded{id, false};
        });
    }

    Result<std::vector<InboxRow>> inbox_pending(const std::string& module, int limit) override {
        return guarded("reading the inbox", [&]() -> Result<std::vector<InboxRow>> {
            auto rows =
                exec("SELECT id, module, received_ms, body FROM inbox WHERE module = $1 AND NOT done ORDER BY id LIMIT $2",
                     params(module, limit));
            if (!rows) return rows.status();
            std::vector<InboxRow> out;
            for (int i = 0; i < rows->size(); ++i)
                out.push_back({int_of(*rows, i, 0), text_of(*rows, i, 1), int_of(*rows, i, 2), text_of(*rows, i, 3)});
            return out;
        });
    }

    int64_t inbox_depth(const std::optional<std::string>& module) override {
        auto rows =
            or_throw(exec("SELECT COUNT(*) FROM inbox WHERE NOT done AND ($1::text IS NULL OR module = $1)", params(module)));
        return int_of(rows, 0, 0);
    }

    std::map<std::string, ModuleGlance> glance(const std::vector<std::string>& modules) override {
        auto rows = or_throw(
            exec("SELECT m.module, "
                 "(SELECT MAX(started_ms) FROM runs WHERE module = m.module AND trigger IN ('schedule', 'manual')), "
                 "(SELECT status FROM runs WHERE module = m.module ORDER BY id DESC LIMIT 1), "
                 "(SELECT COUNT(*) FROM inbox WHERE module = m.module AND NOT done) FROM unnest($1::text[]) AS m(module)",
                 params(text_array(modules))));
        std::map<std::string, ModuleGlance> out;
        for (int i = 0; i < rows.size(); ++i) {
            ModuleGlance g;
            g.last_scheduled_start = rows.integer(i, 1);
            g.last_status = text_of(rows, i, 2);
            g.inbox_depth = int_of(rows, i, 3);
            out[text_of(rows, i, 0)] = std::move(g);
        }
        return out;
    }

    Status note_api_usage(const ApiUsage& u) override {
        return guarded("keeping the API budget", [&]() -> Status {
            return done(
                exec("INSERT INTO api_budget (connection, used, daily_limit, at_ms) VALUES ($1, $2, $3, $4) "
                     "ON CONFLICT (connection) DO UPDATE SET used = excluded.used, daily_limit = excluded.daily_limit, "
                     "at_ms = excluded.at_ms WHERE excluded.at_ms >= api_budget.at_ms",
                     params(u.connection, u.used, u.limit, u.at_ms)));
        });
    }

    Result<std::optional<ApiUsage>> api_usage(const std::string& connection) override {
        return guarded("reading the API budget", [&]() -> Result<std::optional<ApiUsage>> {
            auto q = exec("SELECT used, daily_limit, at_ms FROM api_budget WHERE connection = $1", params(connection));
            if (!q) return q.status();
            if (q->empty()) return std::optional<ApiUsage>();
            return std::optional<ApiUsage>(ApiUsage{connection, int_of(*q, 0, 0), int_of(*q, 0, 1), int_of(*q, 0, 2)});
        });
    }

    Result<std::unique_ptr<StateStore>> open_another() const override { return open_postgres_store(conninfo_); }

private:
    static constexpr const char* kRunColumns =
        "SELECT id, module, trigger, started_ms, finished_ms, status, message, counts::text, connection FROM runs";
    static constexpr const char* kLinkColumns =
        "SELECT key, source_id, object, crm_id, content_hash, updated_ms, connection, COALESCE(crm_key, key), version FROM links";
    static constexpr const char* kTotalled[] = {"fetched",  "created",   "updated", "unchanged", "ignored", "failed",
                                                "no_match", "api_calls", "retried", "recovered", "gave_up"};

    static RunRow read_run(const pq::Rows& rows, int i) {
        RunRow r;
        r.id = int_of(rows, i, 0);
        r.module = text_of(rows, i, 1);
        r.trigger = text_of(rows, i, 2);
        r.started_ms = int_of(rows, i, 3);
        r.finished_ms = int_of(rows, i, 4);
        r.status = text_of(rows, i, 5);
        r.message = text_of(rows, i, 6);
        auto counts = parse_json(text_of(rows, i, 7));
        if (counts && counts->is_object()) r.counts = RunCounts::from_json(counts->get_object());
        r.connection = text_of(rows, i, 8);
        return r;
    }

    static LinkRow read_link(const pq::Rows& rows, int i) {
        LinkRow l{text_of(rows, i, 0), text_of(rows, i, 1), text_of(rows, i, 2), text_of(rows, i, 3),
                  text_of(rows, i, 4), int_of(rows, i, 5),  text_of(rows, i, 6), text_of(rows, i, 7)};
        l.version = rows.integer(i, 8);
        return l;
    }

    Result<pq::Rows> exec(std::string_view sql, const pq::Params& p = {}) {
        // A connection the server dropped (a restart, a failover) is made again before a
        // statement that is not inside a transaction; inside one, the transaction fails.
        if (!in_transaction_) db_.reconnect_if_broken();
        return db_.exec(sql, p);
    }

    static Status done(const Result<pq::Rows>& r) { return r ? Status::ok() : r.status(); }

    // One store operation outside a transaction; failures named by `what`.
    template <class F>
    auto guarded(std::string_view what, F&& body) -> decltype(body()) {
        auto result = body();
        if (!result) return failure_of(result).prefixed("the state store failed while " + std::string(what) + ": ");
        return result;
    }

    // Runs `body` in a transaction, committed when it answers ok, rolled back otherwise. A
    // deadlock or serialization failure rolls back whole, so the transaction is run again
    // (a few times): it is the store's own, never a request to the outside.
    template <class F>
    auto transaction(std::string_view what, F&& body) -> decltype(body()) {
        for (int attempt = 1;; ++attempt) {
            if (auto begun = exec("BEGIN"); !begun)
                return begun.status().prefixed("the state store failed while " + std::string(what) + ": ");
            in_transaction_ = true;
            auto result = body();
            if (result) {
                auto committed = db_.exec("COMMIT");
                in_transaction_ = false;
                if (committed) return result;
                if (!retryable() || attempt >= 5)
                    return committed.status().prefixed("the state store failed while " + std::string(what) + ": ");
                continue;
            }
            const bool again = retryable() && attempt < 5;
            (void)db_.exec("ROLLBACK");
            in_transaction_ = false;
            if (!again) {
                if (failure_of(result).kind() == Status::Kind::conflict) return result;
                return failure_of(result).prefixed("the state store failed while " + std::string(what) + ": ");
            }
        }
    }

    bool retryable() const { return db_.last_sqlstate() == "40001" || db_.last_sqlstate() == "40P01"; }

    // Sequential upserts in SQLite keep the last row a key had and the highest version: the
    // same here, where one statement may not touch a row twice.
    Status save_links(const BatchCommit& batch) {
        if (batch.links.empty()) return Status::ok();
        std::unordered_map<std::string_view, size_t> at;
        std::vector<LinkRow> rows;
        rows.reserve(batch.links.size());
        for (const auto& l : batch.links) {
            auto [it, fresh] = at.emplace(l.key, rows.size());
            if (fresh) {
                rows.push_back(l);
                continue;
            }
            LinkRow& before = rows[it->second];
            std::optional<int64_t> version = l.version;
            if (!version || (before.version && *before.version > *version)) version = before.version;
            before = l;
            before.version = version;
        }
        // One array a column (unnest), cheaper for the server to read than a JSON document.
        std::vector<std::optional<std::string>> key, source, object, crm_id, hash, updated, crm_key, version;
        for (const auto& l : rows) {
            key.emplace_back(l.key);
            source.emplace_back(l.source_id);
            object.emplace_back(l.object);
            crm_id.emplace_back(l.crm_id);
            hash.emplace_back(l.content_hash);
            updated.emplace_back(std::to_string(l.updated_ms));
            crm_key.emplace_back(l.crm_key.empty() ? std::nullopt : std::optional<std::string>(l.crm_key));
            version.emplace_back(l.version ? std::optional<std::string>(std::to_string(*l.version)) : std::nullopt);
        }
        return done(exec(
            "INSERT INTO links (module, connection, key, source_id, object, crm_id, content_hash, updated_ms, crm_key, version) "
            "SELECT $1, $2, x.* FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[], "
            "$9::text[], $10::bigint[]) AS x "
            "ON CONFLICT (module, connection, key) DO UPDATE SET source_id = excluded.source_id, object = excluded.object, "
            "crm_id = excluded.crm_id, content_hash = excluded.content_hash, updated_ms = excluded.updated_ms, "
            "crm_key = excluded.crm_key, version = GREATEST(excluded.version, links.version)",
            pq::Params{batch.scope.module, batch.scope.connection, array_of(key), array_of(source), array_of(object),
                       array_of(crm_id), array_of(hash), array_of(updated), array_of(crm_key), array_of(version)}));
    }

    // Closes the open errors of these records (inside a batch's transaction).
    Status close_errors(const BatchCommit& batch, const std::vector<std::string>& source_ids, const char* reason) {
        if (source_ids.empty()) return Status::ok();
        return done(
            exec("UPDATE errors SET state = 'closed', closed_reason = $1, closed_ms = $2 WHERE module = $3 AND connection = $4 "
                 "AND state <> 'closed' AND entity_id = ANY($5::text[])",
                 params(reason, batch.at_ms, batch.scope.module, batch.scope.connection, text_array(source_ids))));
    }

    Status save_errors(const BatchCommit& batch, const std::set<std::string>& gave_up) {
        if (batch.errors.empty()) return Status::ok();
        json::array rows;
        for (const auto& e : batch.errors) {
            rows.emplace_back(json::object{{"at_ms", e.at_ms},
                                           {"entity_id", e.entity_id},
                                           {"key", e.key},
                                           {"object", e.object},
                                           {"code", e.code},
                                           {"message", ErrorRow::bounded_message(e.message)},
                                           {"fields", e.fields_json()},
                                           {"payload", ErrorRow::bounded_payload(e.payload)},
                                           {"state", gave_up.count(e.entity_id) ? "gave_up" : "open"}});
        }
        return done(exec(
            "INSERT INTO errors (run_id, module, connection, at_ms, entity_id, key, object, code, message, fields, payload, "
            "state) "
            "SELECT $1, $2, $3, x.at_ms, x.entity_id, x.key, x.object, x.code, x.message, x.fields::jsonb, x.payload, x.state "
            "FROM ROWS FROM (jsonb_to_recordset($4::jsonb) AS (at_ms bigint, entity_id text, key text, object text, code text, "
            "message text, fields text, payload text, state text)) WITH ORDINALITY AS "
            "x(at_ms, entity_id, key, object, code, message, fields, payload, state, n) ORDER BY x.n",
            params(batch.run_id, batch.scope.module, batch.scope.connection, json::serialize(rows))));
    }

    // Failed records kept (a newer version replaces the one kept), landed ones let go.
    Status keep_failed(const BatchCommit& batch) {
        if (!batch.failed.empty()) {
            std::unordered_map<std::string, size_t> at;
            json::array rows;
            for (const auto& f : batch.failed) {
                json::object row{{"source_id", f.source_id},
                                 {"record", f.record},
                                 {"attempts", f.attempts},
                                 {"next_ms", f.next_ms},
                                 {"gave_up", f.gave_up}};
                auto [it, fresh] = at.emplace(f.source_id, rows.size());
                if (fresh) rows.emplace_back(std::move(row));
                else rows[it->second] = std::move(row);
            }
            auto kept = exec(
                "INSERT INTO failed_records (module, connection, source_id, record, attempts, next_ms, gave_up, first_failed_ms) "
                "SELECT $1, $2, x.source_id, x.record, x.attempts, x.next_ms, x.gave_up, $3 FROM jsonb_to_recordset($4::jsonb) "
                "AS x(source_id text, record text, attempts bigint, next_ms bigint, gave_up boolean) "
                "ON CONFLICT (module, connection, source_id) DO UPDATE SET record = excluded.record, "
                "attempts = excluded.attempts, next_ms = excluded.next_ms, gave_up = excluded.gave_up",
                params(batch.scope.module, batch.scope.connection, batch.at_ms, json::serialize(rows)));
            if (!kept) return kept.status();
        }
        if (batch.landed.empty()) return Status::ok();
        return done(exec("DELETE FROM failed_records WHERE module = $1 AND connection = $2 AND source_id = ANY($3::text[])",
                         params(batch.scope.module, batch.scope.connection, text_array(batch.landed))));
    }

    Status append_log(int64_t run_id, const std::vector<LogLine>& log) {
        if (log.empty()) return Status::ok();
        json::array rows;
        for (const auto& line : log)
            rows.emplace_back(json::object{{"at_ms", line.at_ms}, {"level", line.level}, {"message", line.message}});
        return done(
            exec("INSERT INTO run_logs (run_id, seq, at_ms, level, message) "
                 "SELECT $1, (SELECT COALESCE(MAX(seq), 0) FROM run_logs WHERE run_id = $1) + x.n, x.at_ms, x.level, x.message "
                 "FROM ROWS FROM (jsonb_to_recordset($2::jsonb) AS (at_ms bigint, level text, message text)) WITH ORDINALITY "
                 "AS x(at_ms, level, message, n)",
                 params(run_id, json::serialize(rows))));
    }

    Status keep_unmatched(const BatchCommit& batch) {
        if (batch.unmatched.empty()) return Status::ok();
        json::array rows;
        for (const auto& u : batch.unmatched)
            rows.emplace_back(
                json::object{{"object", u.object}, {"fields", u.fields}, {"key", u.key}, {"source_id", u.source_id}});
        return done(
            exec("INSERT INTO unmatched (run_id, seq, module, at_ms, object, fields, key, source_id) "
                 "SELECT $1, (SELECT COALESCE(MAX(seq), 0) FROM unmatched WHERE run_id = $1) + x.n, $2, $3, x.object, x.fields, "
                 "x.key, x.source_id FROM ROWS FROM (jsonb_to_recordset($4::jsonb) AS (object text, fields text, key text, "
                 "source_id text)) WITH ORDINALITY AS x(object, fields, key, source_id, n)",
                 params(batch.run_id, batch.scope.module, batch.at_ms, json::serialize(rows))));
    }

    Status add_counts(int64_t run_id, const RunCounts& added) {
        auto read = exec("SELECT counts::text FROM runs WHERE id = $1 FOR UPDATE", params(run_id));
        if (!read) return read.status();
        RunCounts counts;
        if (auto parsed = parse_json(text_of(*read, 0, 0)); parsed && parsed->is_object())
            counts = RunCounts::from_json(parsed->get_object());
        counts.add(added);
        return done(exec("UPDATE runs SET counts = $1::jsonb WHERE id = $2", params(json::serialize(counts.to_json()), run_id)));
    }

    std::string conninfo_;
    pq::Connection db_;
    bool in_transaction_ = false;
};

}  // namespace

int postgres_schema_version() { return static_cast<int>(kPostgresMigrations.size()); }

Result<std::unique_ptr<StateStore>> open_postgres_store(const std::string& conninfo) {
    auto connection = pq::Connection::open(conninfo);
    if (!connection) return connection.status().prefixed("the state store: ");
    auto store = std::make_unique<PostgresStore>(conninfo, std::move(connection.value()));
    if (auto migrated = store->migrate(); !migrated) return migrated.prefixed("the state store: ");
    return std::unique_ptr<StateStore>(std::move(store));
}

}  // namespace crmsync
