#include "pq.h"

#include <charconv>
#include <functional>

namespace crmsync::pq {

std::optional<std::string_view> Rows::text(int row, int column) const {
    if (row < 0 || row >= PQntuples(result_.get()) || column < 0 || column >= PQnfields(result_.get()) ||
        PQgetisnull(result_.get(), row, column))
        return std::nullopt;
    return std::string_view(PQgetvalue(result_.get(), row, column), static_cast<size_t>(PQgetlength(result_.get(), row, column)));
}

std::optional<int64_t> Rows::integer(int row, int column) const {
    auto value = text(row, column);
    if (!value) return std::nullopt;
    int64_t out = 0;
    auto [end, ec] = std::from_chars(value->data(), value->data() + value->size(), out);
    if (ec != std::errc() || end != value->data() + value->size()) return std::nullopt;
    return out;
}

int64_t Rows::affected() const {
    const char* n = PQcmdTuples(result_.get());
    int64_t out = 0;
    std::from_chars(n, n + std::char_traits<char>::length(n), out);
    return out;
}

Result<Connection> Connection::open(const std::string& conninfo) {
    // Bounds of our own for a server that stops answering (TCP only; what the connection
    // string says wins): 10 s to connect, a dead peer noticed within about a minute.
    const char* keywords[] = {"connect_timeout", "keepalives_idle", "keepalives_interval", "keepalives_count", "dbname",
                              nullptr};
    const char* values[] = {"10", "30", "10", "3", conninfo.c_str(), nullptr};
    PGconn* raw = PQconnectdbParams(keywords, values, 1);
    Connection c(raw);
    if (!raw) return Status::unreachable("PostgreSQL: out of memory making a connection");
    if (PQstatus(raw) != CONNECTION_OK) {
        // libpq's message names host, port and user, never the password.
        std::string why = PQerrorMessage(raw);
        while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
        return Status::unreachable("PostgreSQL: cannot connect: " + why);
    }
    // The server's notices ("already exists, skipping") are for people at a psql prompt.
    PQsetNoticeProcessor(
        raw, [](void*, const char*) {}, nullptr);
    return c;
}

void Connection::reconnect_if_broken() {
    if (PQstatus(connection_.get()) == CONNECTION_BAD) PQreset(connection_.get());
}

Status Connection::failure(PGresult* result, std::string_view what) {
    const char* state = result ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
    sqlstate_ = state ? state : "";
    std::string why = result ? PQresultErrorMessage(result) : PQerrorMessage(connection_.get());
    while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
    if (result) PQclear(result);
    bool gone = PQstatus(connection_.get()) != CONNECTION_OK;
    std::string message =
        "PostgreSQL: " + std::string(what) + " failed" + (sqlstate_.empty() ? "" : " (" + sqlstate_ + ")") + ": " + why;
    return gone ? Status::unreachable(message) : Status::io(message);
}

Result<Rows> Connection::exec(std::string_view sql, const Params& params) {
    std::vector<const char*> values;
    for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
    std::string text(sql);
    PGresult* result = PQexecParams(connection_.get(), text.c_str(), static_cast<int>(values.size()), nullptr, values.data(),
                                    nullptr, nullptr, 0);
    auto status = result ? PQresultStatus(result) : PGRES_FATAL_ERROR;
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) return failure(result, "a statement");
    sqlstate_.clear();
    return Rows(result);
}

Status Connection::run(std::string_view sql) {
    std::string text(sql);
    PGresult* result = PQexec(connection_.get(), text.c_str());
    auto status = result ? PQresultStatus(result) : PGRES_FATAL_ERROR;
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) return failure(result, "a statement");
    PQclear(result);
    sqlstate_.clear();
    return Status::ok();
}

namespace {

// Runs `body` in a transaction that first takes the migrations' lock (key "crmsync
// migrations"), held until the transaction ends: one migrator at a time.
Status locked_transaction(Connection& c, const std::function<Status()>& body) {
    if (auto begun = c.run("BEGIN"); !begun) return begun;
    auto locked = c.exec("SELECT pg_advisory_xact_lock(7254001)");
    Status done = locked ? body() : locked.status();
    if (!done) {
        (void)c.run("ROLLBACK");
        return done;
    }
    return c.run("COMMIT");
}

}  // namespace

Status migrate(Connection& c, const std::vector<std::string_view>& steps) {
    // Made under the lock too: two workers creating it at once would race in the catalog.
    if (auto made = locked_transaction(c,
                                       [&] {
                                           return c.run(
                                               "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                                               "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())");
                                       });
        !made)
        return made.prefixed("migrations: ");
    auto newest = c.exec("SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
    if (!newest) return newest.status().prefixed("migrations: ");
    if (newest->integer(0, 0).value_or(0) > static_cast<int64_t>(steps.size()))
        return Status::io("the database's schema is at migration " + std::to_string(newest->integer(0, 0).value_or(0)) +
                          ", newer than this crmsync (" + std::to_string(steps.size()) + "); upgrade crmsync");
    for (size_t i = 0; i < steps.size(); ++i) {
        const std::string version = std::to_string(i + 1);
        auto applied = locked_transaction(c, [&]() -> Status {
            auto done = c.exec("SELECT 1 FROM schema_migrations WHERE version = $1", {version});
            if (!done) return done.status();
            if (!done->empty()) return Status::ok();
            if (auto step = c.run(steps[i]); !step) return step;
            auto recorded = c.exec("INSERT INTO schema_migrations (version) VALUES ($1)", {version});
            return recorded ? Status::ok() : recorded.status();
        });
        if (!applied) return applied.prefixed("migration " + version + ": ");
    }
    return Status::ok();
}

}  // namespace crmsync::pq
