// SqliteStore: the StateStore in one SQLite file, WAL mode, through SQLiteCpp.
// Schema changes are numbered migrations applied in order; PRAGMA user_version records
// how far a file has come, so an old file opens under a new build.
#include <SQLiteCpp/SQLiteCpp.h>
#include <sqlite3.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <thread>
#include <vector>

#include "store.h"

namespace crmsync {
namespace {

const char* const kMigrations[] = {
    // 1: the initial schema.
    R"sql(
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        module TEXT NOT NULL,
        trigger TEXT NOT NULL,
        started_ms INTEGER NOT NULL,
        finished_ms INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL,
        message TEXT NOT NULL DEFAULT '',
        counts TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX runs_module ON runs(module, id);
    CREATE TABLE run_logs (
        run_id INTEGER NOT NULL REFERENCES runs(id),
        seq INTEGER NOT NULL,
        at_ms INTEGER NOT NULL,
        level TEXT NOT NULL,
        message TEXT NOT NULL,
        PRIMARY KEY (run_id, seq)
    );
    CREATE TABLE errors (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id INTEGER NOT NULL,
        module TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        entity_id TEXT NOT NULL,
        key TEXT NOT NULL,
        object TEXT NOT NULL,
        code TEXT NOT NULL,
        message TEXT NOT NULL,
        fields TEXT NOT NULL,
        payload TEXT NOT NULL
    );
    CREATE INDEX errors_module_time ON errors(module, at_ms);
    CREATE INDEX errors_time ON errors(at_ms);
    CREATE TABLE links (
        module TEXT NOT NULL,
        key TEXT NOT NULL,
        source_id TEXT NOT NULL,
        object TEXT NOT NULL,
        crm_id TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        updated_ms INTEGER NOT NULL,
        PRIMARY KEY (module, key)
    ) WITHOUT ROWID;
    CREATE TABLE cursors (
        module TEXT PRIMARY KEY,
        cursor TEXT,
        updated_ms INTEGER NOT NULL
    );
    CREATE TABLE inbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        module TEXT NOT NULL,
        received_ms INTEGER NOT NULL,
        body TEXT NOT NULL,
        done INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX inbox_pending ON inbox(module, done, id);
    CREATE TABLE leases (
        module TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        expires_ms INTEGER NOT NULL
    );
    )sql",
    // 2: links, cursors and errors per (module, connection): swapping a module's CRM starts
    // afresh there. Rows from before have connection '' until the module's next run claims them.
    R"sql(
    ALTER TABLE runs ADD COLUMN connection TEXT NOT NULL DEFAULT '';
    ALTER TABLE errors ADD COLUMN connection TEXT NOT NULL DEFAULT '';
    CREATE INDEX errors_scope ON errors(module, connection);
    CREATE TABLE links_v2 (
        module TEXT NOT NULL,
        connection TEXT NOT NULL,
        key TEXT NOT NULL,
        source_id TEXT NOT NULL,
        object TEXT NOT NULL,
        crm_id TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        updated_ms INTEGER NOT NULL,
        PRIMARY KEY (module, connection, key)
    ) WITHOUT ROWID;
    INSERT INTO links_v2 SELECT module, '', key, source_id, object, crm_id, content_hash, updated_ms FROM links;
    DROP TABLE links;
    ALTER TABLE links_v2 RENAME TO links;
    CREATE INDEX links_recent ON links(module, updated_ms);
    CREATE TABLE cursors_v2 (
        module TEXT NOT NULL,
        connection TEXT NOT NULL,
        cursor TEXT,
        updated_ms INTEGER NOT NULL,
        PRIMARY KEY (module, connection)
    );
    INSERT INTO cursors_v2 SELECT module, '', cursor, updated_ms FROM cursors;
    DROP TABLE cursors;
    ALTER TABLE cursors_v2 RENAME TO cursors;
    )sql",
    // 3: fenced leases. A released lease keeps its row (holder '') so its number never repeats.
    R"sql(
    ALTER TABLE leases ADD COLUMN fence INTEGER NOT NULL DEFAULT 0;
    )sql",
    // 4: failed records are kept and tried again; an error stays open until its record lands,
    // is tried again, given up on or dismissed.
    R"sql(
    ALTER TABLE errors ADD COLUMN state TEXT NOT NULL DEFAULT 'open';
    ALTER TABLE errors ADD COLUMN closed_ms INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE errors ADD COLUMN closed_reason TEXT NOT NULL DEFAULT '';
    CREATE INDEX errors_open ON errors(module, connection, entity_id) WHERE state != 'closed';
    CREATE TABLE failed_records (
        module TEXT NOT NULL,
        connection TEXT NOT NULL,
        source_id TEXT NOT NULL,
        record TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        next_ms INTEGER NOT NULL,
        gave_up INTEGER NOT NULL DEFAULT 0,
        first_failed_ms INTEGER NOT NULL,
        PRIMARY KEY (module, connection, source_id)
    ) WITHOUT ROWID;
    CREATE INDEX failed_records_due ON failed_records(module, connection, gave_up, next_ms);
    )sql",
    // 5: the external-id value a link was written under; NULL for links from before, which
    // were written under their key as it is.
    R"sql(
    ALTER TABLE links ADD COLUMN crm_key TEXT;
    )sql",
    // 6: the newest source version a link has written (never written over by an older one),
    // and webhook signatures seen within the replay window.
    R"sql(
    ALTER TABLE links ADD COLUMN version INTEGER;
    CREATE TABLE webhook_seen (
        module TEXT NOT NULL,
        signature TEXT NOT NULL,
        expires_ms INTEGER NOT NULL,
        inbox_id INTEGER NOT NULL,
        PRIMARY KEY (module, signature)
    ) WITHOUT ROWID;
    CREATE INDEX webhook_seen_expiry ON webhook_seen(expires_ms);
    )sql",
    // 7: source rows whose match keys found no CRM record, per run (the last few runs kept).
    R"sql(
    CREATE TABLE unmatched (
        run_id INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        module TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        object TEXT NOT NULL,
        fields TEXT NOT NULL,
        key TEXT NOT NULL,
        source_id TEXT NOT NULL,
        PRIMARY KEY (run_id, seq)
    ) WITHOUT ROWID;
    CREATE INDEX unmatched_module ON unmatched(module, run_id);
    )sql",
    // 8: what each notification last told about each module (ok, failed, errors, budget).
    R"sql(
    CREATE TABLE notify_state (
        notification TEXT NOT NULL,
        module TEXT NOT NULL,
        state TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        PRIMARY KEY (notification, module)
    ) WITHOUT ROWID;
    )sql",
    // 9: the CRM's daily API budget as last seen, per connection, for every worker's runs;
    // and each module's last scheduled start found without reading its whole history (serve
    // asks for it every tick).
    R"sql(
    CREATE INDEX runs_schedule ON runs(module, trigger, started_ms);
    CREATE TABLE api_budget (
        connection TEXT PRIMARY KEY,
        used INTEGER NOT NULL,
        daily_limit INTEGER NOT NULL,
        at_ms INTEGER NOT NULL
    ) WITHOUT ROWID;
    )sql",
    // 10: no index of links by time. Every link written paid for one (a fifth of a batch's
    // commit); `crmsync links` lists the newest by sorting the module's links when asked
    // (a fifth of a second at a million links).
    R"sql(
    DROP INDEX IF EXISTS links_recent;
    )sql",
};

// A notification's state moved from ?5 to ?3 only if it is still ?5 (no row is "ok").
constexpr const char* kNotifyFromOk =
    "INSERT INTO notify_state (notification, module, state, at_ms) VALUES (?1, ?2, ?3, ?4) "
    "ON CONFLICT (notification, module) DO UPDATE SET state = excluded.state, at_ms = excluded.at_ms "
    "WHERE notify_state.state = ?5";
constexpr const char* kNotifyFrom =
    "UPDATE notify_state SET state = ?3, at_ms = ?4 WHERE notification = ?1 AND module = ?2 AND state = ?5";

// Binds values to ?1, ?2, ... in order; an empty optional binds NULL.
inline void bind_one(SQLite::Statement& q, int index, const std::string& v) { q.bind(index, v); }
inline void bind_one(SQLite::Statement& q, int index, const char* v) { q.bind(index, v); }
inline void bind_one(SQLite::Statement& q, int index, int64_t v) { q.bind(index, v); }
inline void bind_one(SQLite::Statement& q, int index, int v) { q.bind(index, v); }
template <class T>
void bind_one(SQLite::Statement& q, int index, const std::optional<T>& v) {
    if (v) bind_one(q, index, *v);
    else q.bind(index);
}
template <class... Values>
void bind_all(SQLite::Statement& q, const Values&... values) {
    int index = 0;
    (bind_one(q, ++index, values), ...);
}

// Runs one store operation; SQLiteCpp's exceptions become an io Status naming `what`.
template <class F>
auto guarded(std::string_view what, F&& body) -> decltype(body()) {
    try {
        return body();
    } catch (const std::exception& e) {
        return Status::io("the state store failed while " + std::string(what) + ": " + e.what());
    }
}

class SqliteStore final : public StateStore {
public:
    explicit SqliteStore(const std::string& path)
        : path_(path), db_(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE | SQLite::OPEN_FULLMUTEX) {
        db_.setBusyTimeout(10'000);
        use_wal();
        // FULL: a commit is on disk when it returns (the webhook inbox answers 202 on it).
        db_.exec("PRAGMA synchronous=FULL");
        db_.exec("PRAGMA foreign_keys=ON");
    }

    // Switching a new file to WAL needs it to itself, and SQLite answers "locked" at once
    // (without its busy handler) while another process is doing the same: try again for
    // as long as the busy timeout.
    void use_wal() {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        for (;;) {
            try {
                if (db_.execAndGet("PRAGMA journal_mode").getString() == "wal") return;
                db_.exec("PRAGMA journal_mode=WAL");
                return;
            } catch (const SQLite::Exception& e) {
                if ((e.getErrorCode() != SQLITE_BUSY && e.getErrorCode() != SQLITE_LOCKED) ||
                    std::chrono::steady_clock::now() > deadline)
                    throw;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
    }

    // Several processes may open a new file at once (four `crmsync run` on a fresh home):
    // the version is read inside the write transaction that applies the steps it lacks, so
    // one process applies them and the others see them applied. The steps land together
    // or not at all (one commit, one sync, for a new file's whole schema).
    Status migrate() {
        const int target = store_schema_version();
        SQLite::Transaction tx(db_, SQLite::TransactionBehavior::IMMEDIATE);  // the write lock before the read
        const int version = db_.execAndGet("PRAGMA user_version").getInt();
        if (version > target)
            return Status::io("state store schema " + std::to_string(version) + " is newer than this crmsync (" +
                              std::to_string(target) + "); upgrade crmsync");
        if (version == target) return Status::ok();
        for (int step = version; step < target; ++step) db_.exec(kMigrations[step]);
        db_.exec("PRAGMA user_version=" + std::to_string(target));
        tx.commit();
        return Status::ok();
    }

    Result<int64_t> start_run(const StateScope& scope, const std::string& trigger, int64_t now_ms) override {
        return guarded("starting a run", [&]() -> Result<int64_t> {
            SQLite::Statement q(
                db_, "INSERT INTO runs(module, connection, trigger, started_ms, status) VALUES (?, ?, ?, ?, 'running')");
            q.bind(1, scope.module);
            q.bind(2, scope.connection);
            q.bind(3, trigger);
            q.bind(4, static_cast<int64_t>(now_ms));
            q.exec();
            const auto run_id = static_cast<int64_t>(db_.getLastInsertRowid());
            // Unmatched rows are kept for the module's last few runs only.
            SQLite::Statement prune(db_,
                                    "DELETE FROM unmatched WHERE module = ?1 AND run_id <= "
                                    "(SELECT id FROM runs WHERE module = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)");
            bind_all(prune, scope.module, kUnmatchedRunsKept);
            prune.exec();
            return run_id;
        });
    }

    Status finish_run(int64_t run_id, const std::string& status, const std::string& message, int64_t now_ms,
                      const std::vector<LogLine>& log) override {
        return guarded("finishing a run", [&]() -> Status {
            SQLite::Transaction tx(db_, SQLite::TransactionBehavior::IMMEDIATE);
            append_log(run_id, log);
            SQLite::Statement q(db_, "UPDATE runs SET status = ?, message = ?, finished_ms = ? WHERE id = ?");
            q.bind(1, status);
            q.bind(2, message);
            q.bind(3, static_cast<int64_t>(now_ms));
            q.bind(4, static_cast<int64_t>(run_id));
            q.exec();
            tx.commit();
            return Status::ok();
        });
    }

    Status commit_batch(const BatchCommit& batch) override {
        return guarded("saving a batch", [&]() -> Status {
            SQLite::Transaction tx(db_, SQLite::TransactionBehavior::IMMEDIATE);
            if (batch.lease) {
                auto held = prepared("SELECT holder, fence FROM leases WHERE module = ?");
                held->bind(1, batch.lease->module);
                const bool ours = held->executeStep() && held->getColumn(0).getString() == batch.lease->holder &&
                                  held->getColumn(1).getInt64() == batch.lease->fence;
                if (!ours)
                    return Status::error(Status::Kind::conflict,
                                         "module " + batch.lease->module + "'s lease was taken over (this run held fence " +
                                             std::to_string(batch.lease->fence) +
                                             "); this batch was not saved and the run that holds the lease does it again");
            }
            auto link = prepared(
                "INSERT INTO links(module, connection, key, source_id, object, crm_id, content_hash, "
                "updated_ms, crm_key, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(module, connection, key) DO "
                "UPDATE SET "
                "source_id = excluded.source_id, object = excluded.object, crm_id = excluded.crm_id, "
                "content_hash = excluded.content_hash, updated_ms = excluded.updated_ms, crm_key = excluded.crm_key, "
                "version = MAX(COALESCE(excluded.version, links.version), COALESCE(links.version, excluded.version))");
            // The texts are bound without a copy: they live in `batch` until the statement has run.
            link->bindNoCopy(1, batch.scope.module);
            link->bindNoCopy(2, batch.scope.connection);
            for (const auto& l : batch.links) {
                link->bindNoCopy(3, l.key);
                link->bindNoCopy(4, l.source_id);
                link->bindNoCopy(5, l.object);
                link->bindNoCopy(6, l.crm_id);
                link->bindNoCopy(7, l.content_hash);
                link->bind(8, l.updated_ms);
                if (l.crm_key.empty()) link->bind(9);
                else link->bindNoCopy(9, l.crm_key);
                bind_one(*link, 10, l.version);
                link->exec();
                link->reset();
            }
            close_errors(batch, batch.landed, "landed");
            std::vector<std::string> failed_ids;
            std::set<std::string> gave_up;
            for (const auto& f : batch.failed) {
                failed_ids.push_back(f.source_id);
                if (f.gave_up) gave_up.insert(f.source_id);
            }
            close_errors(batch, failed_ids, "tried again");
            auto error = prepared(
                "INSERT INTO errors(run_id, module, connection, at_ms, entity_id, key, object, code, "
                "message, fields, payload, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
            for (const auto& e : batch.errors) {
                bind_all(*error, batch.run_id, batch.scope.module, batch.scope.connection, e.at_ms, e.entity_id, e.key, e.object,
                         e.code, ErrorRow::bounded_message(e.message), e.fields_json(), ErrorRow::bounded_payload(e.payload),
                         gave_up.count(e.entity_id) ? "gave_up" : "open");
                error->exec();
                error->reset();
            }
            keep_failed(batch);
            append_log(batch.run_id, batch.log);
            keep_unmatched(batch);
            {
                auto read = prepared("SELECT counts FROM runs WHERE id = ?");
                read->bind(1, static_cast<int64_t>(batch.run_id));
                RunCounts counts;
                if (read->executeStep()) {
                    auto parsed = parse_json(read->getColumn(0).getString());
                    if (parsed && parsed->is_object()) counts = RunCounts::from_json(parsed->get_object());
                }
                counts.add(batch.counts);
                auto write = prepared("UPDATE runs SET counts = ? WHERE id = ?");
                write->bind(1, json::serialize(counts.to_json()));
                write->bind(2, static_cast<int64_t>(batch.run_id));
                write->exec();
            }
            if (batch.cursor) set_cursor_in_tx(batch.scope, batch.cursor);
            if (!batch.inbox_done.empty()) {
                auto done = prepared("UPDATE inbox SET done = 1 WHERE id = ?");
                for (auto id : batch.inbox_done) {
                    done->bind(1, static_cast<int64_t>(id));
                    done->exec();
                    done->reset();
                }
            }
            tx.commit();
            return Status::ok();
        });
    }

    Status mark_interrupted(const std::string& module, int64_t now_ms) override {
        return guarded("marking interrupted runs", [&]() -> Status {
            SQLite::Statement q(db_,
                                "UPDATE runs SET status = 'interrupted', finished_ms = ?, "
                                "message = 'the process running it stopped before it finished' "
                                "WHERE module = ? AND status = 'running'");
            q.bind(1, static_cast<int64_t>(now_ms));
            q.bind(2, module);
            q.exec();
            return Status::ok();
        });
    }

    std::optional<RunRow> run(int64_t run_id) override {
        SQLite::Statement q(db_, std::string(kRunColumns) + " WHERE id = ?");
        q.bind(1, static_cast<int64_t>(run_id));
        if (!q.executeStep()) return std::nullopt;
        return read_run(q);
    }

    std::optional<RunRow> last_run(const std::string& module) override {
        SQLite::Statement q(db_, std::string(kRunColumns) + " WHERE module = ? ORDER BY id DESC LIMIT 1");
        q.bind(1, module);
        if (!q.executeStep()) return std::nullopt;
        return read_run(q);
    }

    std::vector<RunRow> runs(const std::optional<std::string>& module, int limit) override {
        std::string sql = std::string(kRunColumns) + (module ? " WHERE module = ?" : "") + " ORDER BY id DESC LIMIT ?";
        SQLite::Statement q(db_, sql);
        int i = 1;
        if (module) q.bind(i++, *module);
        q.bind(i, limit);
        std::vector<RunRow> out;
        while (q.executeStep()) out.push_back(read_run(q));
        std::reverse(out.begin(), out.end());
        return out;
    }

    std::vector<UnmatchedRow> unmatched(int64_t run_id) override {
        SQLite::Statement q(db_,
                            "SELECT run_id, at_ms, object, fields, key, source_id FROM unmatched WHERE run_id = ? ORDER BY seq");
        q.bind(1, static_cast<int64_t>(run_id));
        std::vector<UnmatchedRow> out;
        while (q.executeStep())
            out.push_back({q.getColumn(0).getInt64(), q.getColumn(1).getInt64(), q.getColumn(2).getString(),
                           q.getColumn(3).getString(), q.getColumn(4).getString(), q.getColumn(5).getString()});
        return out;
    }

    std::vector<LogLine> run_log(int64_t run_id) override {
        SQLite::Statement q(db_, "SELECT at_ms, level, message FROM run_logs WHERE run_id = ? ORDER BY seq");
        q.bind(1, static_cast<int64_t>(run_id));
        std::vector<LogLine> out;
        while (q.executeStep())
            out.push_back({q.getColumn(0).getInt64(), q.getColumn(1).getString(), q.getColumn(2).getString()});
        return out;
    }

    std::vector<RunTotals> run_totals() override {
        SQLite::Statement q(
            db_,
            "SELECT module, status, COUNT(*), "
            "SUM(json_extract(counts, '$.fetched')), SUM(json_extract(counts, '$.created')), "
            "SUM(json_extract(counts, '$.updated')), SUM(json_extract(counts, '$.unchanged')), "
            "SUM(json_extract(counts, '$.ignored')), SUM(json_extract(counts, '$.failed')), "
            "SUM(json_extract(counts, '$.no_match')), SUM(json_extract(counts, '$.api_calls')), "
            "SUM(json_extract(counts, '$.retried')), SUM(json_extract(counts, '$.recovered')), "
            "SUM(json_extract(counts, '$.gave_up')) "
            "FROM runs WHERE status != 'running' AND trigger != 'dry-run' GROUP BY module, status ORDER BY module, status");
        std::vector<RunTotals> out;
        while (q.executeStep()) {
            RunTotals t;
            t.module = q.getColumn(0).getString();
            t.status = q.getColumn(1).getString();
            t.runs = q.getColumn(2).getInt64();
            t.counts.fetched = q.getColumn(3).getInt64();
            t.counts.created = q.getColumn(4).getInt64();
            t.counts.updated = q.getColumn(5).getInt64();
            t.counts.unchanged = q.getColumn(6).getInt64();
            t.counts.ignored = q.getColumn(7).getInt64();
            t.counts.failed = q.getColumn(8).getInt64();
            t.counts.no_match = q.getColumn(9).getInt64();
            t.counts.api_calls = q.getColumn(10).getInt64();
            t.counts.retried = q.getColumn(11).getInt64();
            t.counts.recovered = q.getColumn(12).getInt64();
            t.counts.gave_up = q.getColumn(13).getInt64();
            out.push_back(std::move(t));
        }
        return out;
    }

    std::optional<int64_t> last_scheduled_start(const std::string& module) override {
        SQLite::Statement q(db_, "SELECT MAX(started_ms) FROM runs WHERE module = ? AND trigger IN ('schedule', 'manual')");
        q.bind(1, module);
        if (!q.executeStep() || q.getColumn(0).isNull()) return std::nullopt;
        return q.getColumn(0).getInt64();
    }

    Result<std::string> notify_state(const std::string& notification, const std::string& module) override {
        return guarded("reading a notification's state", [&]() -> Result<std::string> {
            SQLite::Statement q(db_, "SELECT state FROM notify_state WHERE notification = ? AND module = ?");
            bind_all(q, notification, module);
            return q.executeStep() ? q.getColumn(0).getString() : std::string("ok");
        });
    }

    Result<bool> change_notify_state(const std::string& notification, const std::string& module, const std::string& from,
                                     const std::string& to, int64_t now_ms) override {
        return guarded("saving a notification's state", [&]() -> Result<bool> {
            // No row is "ok": only a change from "ok" may make one.
            SQLite::Statement q(db_, from == "ok" ? kNotifyFromOk : kNotifyFrom);
            bind_all(q, notification, module, to, now_ms, from);
            return q.exec() > 0;
        });
    }

    std::optional<int64_t> last_success(const std::string& module) override {
        SQLite::Statement q(db_,
                            "SELECT MAX(finished_ms) FROM runs WHERE module = ? AND status IN ('succeeded', 'partial') "
                            "AND trigger != 'dry-run'");
        q.bind(1, module);
        if (!q.executeStep() || q.getColumn(0).isNull()) return std::nullopt;
        return q.getColumn(0).getInt64();
    }

    bool writable() override {
        try {
            SQLite::Transaction tx(db_, SQLite::TransactionBehavior::IMMEDIATE);
            return true;  // rolled back on scope exit
        } catch (const std::exception&) {
            return false;
        }
    }

    std::vector<ErrorRow> errors(const std::optional<std::string>& module, int64_t since_ms, bool with_closed) override {
        std::string sql =
            "SELECT id, run_id, module, at_ms, entity_id, key, object, code, message, fields, payload, connection, state, "
            "closed_reason, closed_ms FROM errors WHERE at_ms >= ?";
        if (!with_closed) sql += " AND state != 'closed'";
        if (module) sql += " AND module = ?";
        sql += " ORDER BY id";
        SQLite::Statement q(db_, sql);
        q.bind(1, static_cast<int64_t>(since_ms));
        if (module) q.bind(2, *module);
        std::vector<ErrorRow> out;
        while (q.executeStep()) {
            ErrorRow e;
            e.id = q.getColumn(0).getInt64();
            e.run_id = q.getColumn(1).getInt64();
            e.module = q.getColumn(2).getString();
            e.at_ms = q.getColumn(3).getInt64();
            e.entity_id = q.getColumn(4).getString();
            e.key = q.getColumn(5).getString();
            e.object = q.getColumn(6).getString();
            e.code = q.getColumn(7).getString();
            e.message = q.getColumn(8).getString();
            e.set_fields_json(q.getColumn(9).getString());
            e.payload = q.getColumn(10).getString();
            e.connection = q.getColumn(11).getString();
            e.state = q.getColumn(12).getString();
            e.closed_reason = q.getColumn(13).getString();
            e.closed_ms = q.getColumn(14).getInt64();
            out.push_back(std::move(e));
        }
        return out;
    }

    Result<std::vector<FailedRecord>> due_records(const StateScope& scope, int64_t now_ms, const std::string& after,
                                                  int limit) override {
        return guarded("reading the failed records", [&]() -> Result<std::vector<FailedRecord>> {
            SQLite::Statement q(db_,
                                "SELECT source_id, record, attempts, next_ms FROM failed_records WHERE module = ? AND "
                                "connection = ? AND gave_up = 0 AND next_ms <= ? AND source_id > ? ORDER BY source_id LIMIT ?");
            q.bind(1, scope.module);
            q.bind(2, scope.connection);
            q.bind(3, static_cast<int64_t>(now_ms));
            q.bind(4, after);
            q.bind(5, limit);
            std::vector<FailedRecord> out;
            while (q.executeStep())
                out.push_back({q.getColumn(0).getString(), q.getColumn(1).getString(), q.getColumn(2).getInt64(),
                               q.getColumn(3).getInt64(), false});
            return out;
        });
    }

    Result<int64_t> dismiss(const std::optional<std::string>& module, const std::optional<std::string>& key,
                            int64_t now_ms) override {
        if (!module && !key) return Status::config("dismiss needs a module or a key");
        return guarded("dismissing errors", [&]() -> Result<int64_t> {
            SQLite::Transaction tx(db_, SQLite::TransactionBehavior::IMMEDIATE);
            const std::string which = std::string("state != 'closed'") + (module ? " AND module = ?" : "") +
                                      (key ? " AND (key = ? OR entity_id = ?)" : "");
            auto bind_which = [&](SQLite::Statement& q, int first) {
                if (module) q.bind(first++, *module);
                if (key) {
                    q.bind(first++, *key);
                    q.bind(first, *key);
                }
            };
            SQLite::Statement records(db_,
                                      "DELETE FROM failed_records WHERE (module, connection, source_id) IN "
                                      "(SELECT module, connection, entity_id FROM errors WHERE " +
                                          which + ")");
            bind_which(records, 1);
            records.exec();
            SQLite::Statement close(
                db_, "UPDATE errors SET state = 'closed', closed_reason = 'dismissed', closed_ms = ? WHERE " + which);
            close.bind(1, static_cast<int64_t>(now_ms));
            bind_which(close, 2);
            int64_t closed = close.exec();
            tx.commit();
            return closed;
        });
    }

    Result<int64_t> purge_errors(int64_t older_than_ms) override {
        return guarded("removing old errors", [&]() -> Result<int64_t> {
            SQLite::Transaction tx(db_, SQLite::TransactionBehavior::IMMEDIATE);
            SQLite::Statement q(db_, "DELETE FROM errors WHERE at_ms < ?");
            q.bind(1, static_cast<int64_t>(older_than_ms));
            int64_t removed = q.exec();
            SQLite::Statement given_up(db_, "DELETE FROM failed_records WHERE gave_up = 1 AND first_failed_ms < ?");
            given_up.bind(1, static_cast<int64_t>(older_than_ms));
            given_up.exec();
            tx.commit();
            return removed;
        });
    }

    static constexpr size_t kKeysAtOnce = 200;  // a batch's; SQLite takes up to 32,766 parameters
    Result<std::map<std::string, LinkRow>> links(const StateScope& scope, const std::vector<std::string>& keys) override {
        return guarded("reading links", [&]() -> Result<std::map<std::string, LinkRow>> {
            std::map<std::string, LinkRow> out;
            if (keys.empty()) return out;
            // A statement for many keys at once (up to kKeysAtOnce), their texts bound as they are.
            for (size_t from = 0; from < keys.size(); from += kKeysAtOnce) {
                const size_t n = std::min(kKeysAtOnce, keys.size() - from);
                std::string sql = std::string(kLinkColumns) + " WHERE module = ? AND connection = ? AND key IN (?";
                for (size_t i = 1; i < n; ++i) sql += ", ?";
                sql += ")";
                auto q = prepared(sql);
                q->bindNoCopy(1, scope.module);
                q->bindNoCopy(2, scope.connection);
                for (size_t i = 0; i < n; ++i) q->bindNoCopy(static_cast<int>(i + 3), keys[from + i]);
                while (q->executeStep()) {
                    LinkRow link = read_link(*q);
                    std::string key = link.key;
                    out.emplace(std::move(key), std::move(link));
                }
            }
            return out;
        });
    }

    std::vector<LinkRow> all_links(const std::string& module, const std::optional<std::string>& connection, int limit) override {
        SQLite::Statement q(db_, std::string(kLinkColumns) + " WHERE module = ?" + (connection ? " AND connection = ?" : "") +
                                     " ORDER BY updated_ms DESC, key LIMIT ?");
        int i = 1;
        q.bind(i++, module);
        if (connection) q.bind(i++, *connection);
        q.bind(i, limit);
        std::vector<LinkRow> out;
        while (q.executeStep()) out.push_back(read_link(q));
        return out;
    }

    Result<std::optional<std::string>> cursor(const StateScope& scope) override {
        return guarded("reading the cursor", [&]() -> Result<std::optional<std::string>> {
            SQLite::Statement q(db_, "SELECT cursor FROM cursors WHERE module = ? AND connection = ?");
            q.bind(1, scope.module);
            q.bind(2, scope.connection);
            if (!q.executeStep() || q.getColumn(0).isNull()) return std::optional<std::string>();
            return std::optional<std::string>(q.getColumn(0).getString());
        });
    }

    Result<int64_t> claim_unscoped_state(const StateScope& scope) override {
        return guarded("claiming the state saved before connections", [&]() -> Result<int64_t> {
            SQLite::Transaction tx(db_, SQLite::TransactionBehavior::IMMEDIATE);
            int64_t moved = 0;
            for (const char* table : {"links", "cursors", "errors", "failed_records"}) {
                SQLite::Statement q(db_,
                                    std::string("UPDATE ") + table + " SET connection = ? WHERE module = ? AND connection = ''");
                q.bind(1, scope.connection);
                q.bind(2, scope.module);
                moved += q.exec();
            }
            tx.commit();
            return moved;
        });
    }

    Result<int64_t> reset(const StateScope& scope) override {
        return guarded("resetting the module", [&]() -> Result<int64_t> {
            SQLite::Transaction tx(db_, SQLite::TransactionBehavior::IMMEDIATE);
            int64_t links = 0;
            SQLite::Statement close(db_,
                                    "UPDATE errors SET state = 'closed', closed_reason = 'reset', closed_ms = "
                                    "strftime('%s','now') * 1000 WHERE module = ? AND connection = ? AND state != 'closed'");
            close.bind(1, scope.module);
            close.bind(2, scope.connection);
            close.exec();
            for (const char* table : {"links", "cursors", "failed_records"}) {
                SQLite::Statement q(db_, std::string("DELETE FROM ") + table + " WHERE module = ? AND connection = ?");
                q.bind(1, scope.module);
                q.bind(2, scope.connection);
                int removed = q.exec();
                if (std::string_view(table) == "links") links = removed;
            }
            tx.commit();
            return links;
        });
    }

    Result<std::optional<int64_t>> acquire_lease(const std::string& module, const std::string& holder, int64_t now_ms,
                                                 int64_t ttl_ms) override {
        return guarded("taking the lease", [&]() -> Result<std::optional<int64_t>> {
            SQLite::Transaction tx(db_, SQLite::TransactionBehavior::IMMEDIATE);
            SQLite::Statement q(db_,
                                "INSERT INTO leases(module, holder, expires_ms, fence) VALUES (?, ?, ?, 1) "
                                "ON CONFLICT(module) DO UPDATE SET holder = excluded.holder, expires_ms = excluded.expires_ms, "
                                "fence = CASE WHEN leases.holder = excluded.holder THEN leases.fence ELSE leases.fence + 1 END "
                                "WHERE leases.holder = excluded.holder OR leases.holder = '' OR leases.expires_ms <= ?");
            q.bind(1, module);
            q.bind(2, holder);
            q.bind(3, static_cast<int64_t>(now_ms + ttl_ms));
            q.bind(4, static_cast<int64_t>(now_ms));
            if (q.exec() == 0) return std::optional<int64_t>();
            auto fence = fence_of(module);
            tx.commit();
            return std::optional<int64_t>(fence);
        });
    }

    Result<std::optional<int64_t>> take_over_lease(const std::string& module, const std::string& previous,
                                                   const std::string& holder, int64_t now_ms, int64_t ttl_ms) override {
        return guarded("taking over the lease", [&]() -> Result<std::optional<int64_t>> {
            SQLite::Transaction tx(db_, SQLite::TransactionBehavior::IMMEDIATE);
            SQLite::Statement q(
                db_, "UPDATE leases SET holder = ?, expires_ms = ?, fence = fence + 1 WHERE module = ? AND holder = ?");
            q.bind(1, holder);
            q.bind(2, static_cast<int64_t>(now_ms + ttl_ms));
            q.bind(3, module);
            q.bind(4, previous);
            if (q.exec() == 0) return std::optional<int64_t>();
            auto fence = fence_of(module);
            tx.commit();
            return std::optional<int64_t>(fence);
        });
    }

    Result<bool> renew_lease(const LeaseRow& lease, int64_t now_ms, int64_t ttl_ms) override {
        return guarded("renewing the lease", [&]() -> Result<bool> {
            SQLite::Statement q(db_, "UPDATE leases SET expires_ms = ? WHERE module = ? AND holder = ? AND fence = ?");
            q.bind(1, static_cast<int64_t>(now_ms + ttl_ms));
            q.bind(2, lease.module);
            q.bind(3, lease.holder);
            q.bind(4, static_cast<int64_t>(lease.fence));
            return q.exec() > 0;
        });
    }

    Status release_lease(const std::string& module, const std::string& holder) override {
        return guarded("releasing the lease", [&]() -> Status {
            SQLite::Statement q(db_, "UPDATE leases SET holder = '', expires_ms = 0 WHERE module = ? AND holder = ?");
            q.bind(1, module);
            q.bind(2, holder);
            q.exec();
            return Status::ok();
        });
    }

    Result<std::optional<LeaseRow>> lease(const std::string& module) override {
        return guarded("reading the lease", [&]() -> Result<std::optional<LeaseRow>> {
            SQLite::Statement q(db_, "SELECT module, holder, expires_ms, fence FROM leases WHERE module = ? AND holder != ''");
            q.bind(1, module);
            if (!q.executeStep()) return std::optional<LeaseRow>();
            return std::optional<LeaseRow>(LeaseRow{q.getColumn(0).getString(), q.getColumn(1).getString(),
                                                    q.getColumn(2).getInt64(), q.getColumn(3).getInt64()});
        });
    }

    Result<InboxAdded> inbox_add(const std::string& module, const std::string& body, int64_t now_ms, const std::string& signature,
                                 int64_t seen_until_ms) override {
        return guarded("adding to the inbox", [&]() -> Result<InboxAdded> {
            SQLite::Transaction tx(db_, SQLite::TransactionBehavior::IMMEDIATE);
            SQLite::Statement expired(db_, "DELETE FROM webhook_seen WHERE expires_ms < ?");
            expired.bind(1, static_cast<int64_t>(now_ms));
            expired.exec();
            SQLite::Statement seen(db_, "SELECT inbox_id FROM webhook_seen WHERE module = ? AND signature = ?");
            seen.bind(1, module);
            seen.bind(2, signature);
            if (seen.executeStep()) return InboxAdded{seen.getColumn(0).getInt64(), true};
            SQLite::Statement q(db_, "INSERT INTO inbox(module, received_ms, body) VALUES (?, ?, ?)");
            q.bind(1, module);
            q.bind(2, static_cast<int64_t>(now_ms));
            q.bind(3, body);
            q.exec();
            const auto id = static_cast<int64_t>(db_.getLastInsertRowid());
            SQLite::Statement remember(db_,
                                       "INSERT INTO webhook_seen(module, signature, expires_ms, inbox_id) VALUES (?, ?, ?, ?)");
            remember.bind(1, module);
            remember.bind(2, signature);
            remember.bind(3, static_cast<int64_t>(seen_until_ms));
            remember.bind(4, id);
            remember.exec();
            tx.commit();
            return InboxAdded{id, false};
        });
    }

    Result<std::vector<InboxRow>> inbox_pending(const std::string& module, int limit) override {
        return guarded("reading the inbox", [&]() -> Result<std::vector<InboxRow>> {
            SQLite::Statement q(db_,
                                "SELECT id, module, received_ms, body FROM inbox WHERE module = ? AND done = 0 "
                                "ORDER BY id LIMIT ?");
            q.bind(1, module);
            q.bind(2, limit);
            std::vector<InboxRow> out;
            while (q.executeStep())
                out.push_back({q.getColumn(0).getInt64(), q.getColumn(1).getString(), q.getColumn(2).getInt64(),
                               q.getColumn(3).getString()});
            return out;
        });
    }

    std::map<std::string, ModuleGlance> glance(const std::vector<std::string>& modules) override {
        json::array names;
        for (const auto& m : modules) names.emplace_back(m);
        SQLite::Statement q(db_,
                            "SELECT j.value, "
                            "(SELECT MAX(started_ms) FROM runs WHERE module = j.value AND trigger IN ('schedule', 'manual')), "
                            "(SELECT status FROM runs WHERE module = j.value ORDER BY id DESC LIMIT 1), "
                            "(SELECT COUNT(*) FROM inbox WHERE module = j.value AND done = 0) FROM json_each(?) AS j");
        q.bind(1, json::serialize(names));
        std::map<std::string, ModuleGlance> out;
        while (q.executeStep()) {
            ModuleGlance g;
            if (!q.getColumn(1).isNull()) g.last_scheduled_start = q.getColumn(1).getInt64();
            if (!q.getColumn(2).isNull()) g.last_status = q.getColumn(2).getString();
            g.inbox_depth = q.getColumn(3).getInt64();
            out[q.getColumn(0).getString()] = std::move(g);
        }
        return out;
    }

    Status note_api_usage(const ApiUsage& u) override {
        return guarded("keeping the API budget", [&]() -> Status {
            SQLite::Statement q(
                db_,
                "INSERT INTO api_budget (connection, used, daily_limit, at_ms) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (connection) DO UPDATE SET used = excluded.used, daily_limit = excluded.daily_limit, "
                "at_ms = excluded.at_ms WHERE excluded.at_ms >= api_budget.at_ms");
            bind_all(q, u.connection, u.used, u.limit, u.at_ms);
            q.exec();
            return Status::ok();
        });
    }

    Result<std::optional<ApiUsage>> api_usage(const std::string& connection) override {
        return guarded("reading the API budget", [&]() -> Result<std::optional<ApiUsage>> {
            SQLite::Statement q(db_, "SELECT used, daily_limit, at_ms FROM api_budget WHERE connection = ?");
            q.bind(1, connection);
            if (!q.executeStep()) return std::optional<ApiUsage>();
            return std::optional<ApiUsage>(
                ApiUsage{connection, q.getColumn(0).getInt64(), q.getColumn(1).getInt64(), q.getColumn(2).getInt64()});
        });
    }

    Result<std::unique_ptr<StateStore>> open_another() const override { return open_sqlite_store(path_); }

    int64_t inbox_depth(const std::optional<std::string>& module) override {
        SQLite::Statement q(db_, module ? "SELECT COUNT(*) FROM inbox WHERE done = 0 AND module = ?"
                                        : "SELECT COUNT(*) FROM inbox WHERE done = 0");
        if (module) q.bind(1, *module);
        q.executeStep();
        return q.getColumn(0).getInt64();
    }

private:
    static constexpr const char* kRunColumns =
        "SELECT id, module, trigger, started_ms, finished_ms, status, message, counts, connection FROM runs";

    static RunRow read_run(SQLite::Statement& q) {
        RunRow r;
        r.id = q.getColumn(0).getInt64();
        r.module = q.getColumn(1).getString();
        r.trigger = q.getColumn(2).getString();
        r.started_ms = q.getColumn(3).getInt64();
        r.finished_ms = q.getColumn(4).getInt64();
        r.status = q.getColumn(5).getString();
        r.message = q.getColumn(6).getString();
        auto counts = parse_json(q.getColumn(7).getString());
        if (counts && counts->is_object()) r.counts = RunCounts::from_json(counts->get_object());
        r.connection = q.getColumn(8).getString();
        return r;
    }

    static constexpr const char* kLinkColumns =
        "SELECT key, source_id, object, crm_id, content_hash, updated_ms, connection, COALESCE(crm_key, key), version FROM links";

    static LinkRow read_link(SQLite::Statement& q) {
        LinkRow l{q.getColumn(0).getString(), q.getColumn(1).getString(), q.getColumn(2).getString(), q.getColumn(3).getString(),
                  q.getColumn(4).getString(), q.getColumn(5).getInt64(),  q.getColumn(6).getString(), q.getColumn(7).getString()};
        if (!q.getColumn(8).isNull()) l.version = q.getColumn(8).getInt64();
        return l;
    }

    // Whether `table` has a row of this scope (and `condition`): a batch whose module has no
    // open error or failed record skips a statement per record.
    bool any_row(const char* table, const StateScope& scope, const char* condition) {
        auto q = prepared(std::string("SELECT EXISTS(SELECT 1 FROM ") + table + " WHERE module = ? AND connection = ?" +
                          condition + ")");
        q->bind(1, scope.module);
        q->bind(2, scope.connection);
        return q->executeStep() && q->getColumn(0).getInt() != 0;
    }

    // Closes the open errors of these records (inside a batch's transaction).
    void close_errors(const BatchCommit& batch, const std::vector<std::string>& source_ids, const char* reason) {
        if (source_ids.empty() || !any_row("errors", batch.scope, " AND state != 'closed'")) return;
        auto q = prepared(
            "UPDATE errors SET state = 'closed', closed_reason = ?, closed_ms = ? WHERE module = ? AND "
            "connection = ? AND entity_id = ? AND state != 'closed'");
        for (const auto& id : source_ids) {
            q->bind(1, reason);
            q->bind(2, static_cast<int64_t>(batch.at_ms));
            q->bind(3, batch.scope.module);
            q->bind(4, batch.scope.connection);
            q->bind(5, id);
            q->exec();
            q->reset();
        }
    }

    // Failed records kept (a newer version replaces the one kept), landed ones let go.
    void keep_failed(const BatchCommit& batch) {
        auto keep = prepared(
            "INSERT INTO failed_records(module, connection, source_id, record, attempts, next_ms, gave_up, "
            "first_failed_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(module, connection, source_id) "
            "DO UPDATE SET record = excluded.record, attempts = excluded.attempts, "
            "next_ms = excluded.next_ms, gave_up = excluded.gave_up");
        for (const auto& f : batch.failed) {
            bind_all(*keep, batch.scope.module, batch.scope.connection, f.source_id, f.record, f.attempts, f.next_ms,
                     f.gave_up ? 1 : 0, batch.at_ms);
            keep->exec();
            keep->reset();
        }
        if (batch.landed.empty() || !any_row("failed_records", batch.scope, "")) return;
        auto let_go = prepared("DELETE FROM failed_records WHERE module = ? AND connection = ? AND source_id = ?");
        for (const auto& id : batch.landed) {
            let_go->bind(1, batch.scope.module);
            let_go->bind(2, batch.scope.connection);
            let_go->bind(3, id);
            let_go->exec();
            let_go->reset();
        }
    }

    int64_t fence_of(const std::string& module) {
        SQLite::Statement q(db_, "SELECT fence FROM leases WHERE module = ?");
        q.bind(1, module);
        return q.executeStep() ? q.getColumn(0).getInt64() : 0;
    }

    void append_log(int64_t run_id, const std::vector<LogLine>& log) {
        if (log.empty()) return;
        auto next = prepared("SELECT COALESCE(MAX(seq), 0) FROM run_logs WHERE run_id = ?");
        next->bind(1, static_cast<int64_t>(run_id));
        next->executeStep();
        int64_t seq = next->getColumn(0).getInt64();
        auto q = prepared("INSERT INTO run_logs(run_id, seq, at_ms, level, message) VALUES (?, ?, ?, ?, ?)");
        for (const auto& line : log) {
            q->bind(1, static_cast<int64_t>(run_id));
            q->bind(2, static_cast<int64_t>(++seq));
            q->bind(3, static_cast<int64_t>(line.at_ms));
            q->bind(4, line.level);
            q->bind(5, line.message);
            q->exec();
            q->reset();
        }
    }

    void keep_unmatched(const BatchCommit& batch) {
        if (batch.unmatched.empty()) return;
        auto next = prepared("SELECT COALESCE(MAX(seq), 0) FROM unmatched WHERE run_id = ?");
        next->bind(1, static_cast<int64_t>(batch.run_id));
        next->executeStep();
        int64_t seq = next->getColumn(0).getInt64();
        auto q = prepared(
            "INSERT INTO unmatched(run_id, seq, module, at_ms, object, fields, key, source_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
        for (const auto& u : batch.unmatched) {
            bind_all(*q, batch.run_id, ++seq, batch.scope.module, batch.at_ms, u.object, u.fields, u.key, u.source_id);
            q->exec();
            q->reset();
        }
    }

    void set_cursor_in_tx(const StateScope& scope, const std::optional<std::string>& cursor) {
        auto q = prepared(
            "INSERT INTO cursors(module, connection, cursor, updated_ms) VALUES (?, ?, ?, "
            "strftime('%s','now') * 1000) ON CONFLICT(module, connection) DO UPDATE SET "
            "cursor = excluded.cursor, updated_ms = excluded.updated_ms");
        q->bind(1, scope.module);
        q->bind(2, scope.connection);
        if (cursor) q->bind(3, *cursor);
        else q->bind(3);
        q->exec();
    }

    // A statement prepared once and kept, for the statements every batch runs (preparing them
    // again each time was a tenth of a commit). It is lent while in use, so a use of the same
    // SQL within that one prepares its own, and comes back reset, its bindings cleared.
    class Prepared {
    public:
        Prepared(SqliteStore& store, std::unique_ptr<SQLite::Statement> statement)
            : store_(store), statement_(std::move(statement)) {}
        Prepared(const Prepared&) = delete;
        Prepared& operator=(const Prepared&) = delete;
        ~Prepared() {
            // The last step's error, which tryReset answers again, was its caller's to see.
            statement_->tryReset();
            try {
                statement_->clearBindings();  // no pointer into the caller's data is kept
                store_.idle_[statement_->getQuery()].push_back(std::move(statement_));
            } catch (const std::exception&) {
                // Not kept (finalized here): prepared again next time.
            }
        }
        SQLite::Statement* operator->() { return statement_.get(); }
        SQLite::Statement& operator*() { return *statement_; }

    private:
        SqliteStore& store_;
        std::unique_ptr<SQLite::Statement> statement_;
    };

    Prepared prepared(const std::string& sql) {
        if (auto it = idle_.find(sql); it != idle_.end() && !it->second.empty()) {
            auto statement = std::move(it->second.back());
            it->second.pop_back();
            return Prepared(*this, std::move(statement));
        }
        return Prepared(*this, std::make_unique<SQLite::Statement>(db_, sql));
    }

    std::string path_;
    SQLite::Database db_;
    // Statements not lent out, by their SQL; declared after db_, so finalized before it closes.
    std::map<std::string, std::vector<std::unique_ptr<SQLite::Statement>>> idle_;
};

}  // namespace

int store_schema_version() { return static_cast<int>(std::size(kMigrations)); }

Result<std::unique_ptr<StateStore>> open_sqlite_store(const std::string& path) {
    try {
        std::error_code ec;
        auto parent = std::filesystem::path(path).parent_path();
        if (!parent.empty()) std::filesystem::create_directories(parent, ec);
        auto store = std::make_unique<SqliteStore>(path);
        if (auto migrated = store->migrate(); !migrated) return migrated.prefixed(path + ": ");
        return std::unique_ptr<StateStore>(std::move(store));
    } catch (const std::exception& e) {
        return Status::io(path + ": the state store cannot be opened: " + e.what());
    }
}

}  // namespace crmsync
