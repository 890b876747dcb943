#include "pq.h"

#include <charconv>

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
    PGconn* raw = PQconnectdb(conninfo.c_str());
    Connection c(raw);
    if (!raw) return Status::unreachable("PostgreSQL: out of memory making a connection");
    if (PQstatus(raw) != CONNECTION_OK) {
        // libpq's message names host, port and user, never the password.
        std::string why = PQerrorMessage(raw);
        while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
        return Status::unreachable("PostgreSQL: cannot connect: " + why);
    }
    // The server's notices ("already exists, skipping") are for people at a psql prompt.
    PQsetNoticeProcessor(raw, [](void*, const char*) {}, nullptr);
    return c;
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

Status migrate(Connection& c, const std::vector<std::string_view>& steps) {
    if (auto made = c.run("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                          "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())");
        !made) {
        // Two workers creating it at once: one wins, the other sees it exists.
        if (c.last_sqlstate() != "23505" && c.last_sqlstate() != "42P07") return made;
    }
    for (size_t i = 0; i < steps.size(); ++i) {
        const std::string version = std::to_string(i + 1);
        if (auto begun = c.run("BEGIN"); !begun) return begun;
        // One migrator at a time, until this transaction ends (key: "crmsync migrations").
        auto locked = c.exec("SELECT pg_advisory_xact_lock(7254001)");
        auto done = locked ? c.exec("SELECT 1 FROM schema_migrations WHERE version = $1", {version}) : locked.status();
        Status step = !done ? done.status() : done->empty() ? c.run(steps[i]) : Status::ok();
        if (step && done && done->empty()) {
            auto recorded = c.exec("INSERT INTO schema_migrations (version) VALUES ($1)", {version});
            if (!recorded) step = recorded.status();
        }
        if (!step) {
            (void)c.run("ROLLBACK");
            return step.prefixed("migration " + version + ": ");
        }
        if (auto committed = c.run("COMMIT"); !committed) return committed.prefixed("migration " + version + ": ");
    }
    return Status::ok();
}

}  // namespace crmsync::pq
