#pragma once
// PostgreSQL through libpq, behind the few RAII types a state store needs: a connection,
// the rows a statement answered, parameters as text (NULL when absent). Every failure comes
// back as a Status carrying the server's SQLSTATE and message; a connection string's
// password never appears in one. Not thread-safe: one Connection per thread.
#include <libpq-fe.h>

#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "status.h"

namespace crmsync::pq {

// What a statement answered: its rows, each column as text or NULL.
class Rows {
public:
    explicit Rows(PGresult* result) : result_(result, PQclear) {}
    int size() const { return PQntuples(result_.get()); }
    bool empty() const { return size() == 0; }
    // Column `column` of row `row` as text; nullopt for NULL or out of range.
    std::optional<std::string_view> text(int row, int column) const;
    // The same as an integer; nullopt for NULL or text that is no integer.
    std::optional<int64_t> integer(int row, int column) const;
    // Rows a command touched (INSERT, UPDATE, DELETE).
    int64_t affected() const;

private:
    std::unique_ptr<PGresult, decltype(&PQclear)> result_;
};

using Params = std::vector<std::optional<std::string>>;

class Connection {
public:
    // Connects with a libpq connection string ("host=/run/pg dbname=crmsync", or a URI).
    static Result<Connection> open(const std::string& conninfo);
    // Runs one statement with $1, $2, ... bound to `params`.
    Result<Rows> exec(std::string_view sql, const Params& params = {});
    // Runs statements without parameters (a migration's several statements at once).
    Status run(std::string_view sql);
    // Makes the connection again when the server dropped it (a restart, a failover); a
    // caller does this only between transactions.
    void reconnect_if_broken();
    // SQLSTATE of the last failure ("40001" a serialization failure, "" when none).
    const std::string& last_sqlstate() const { return sqlstate_; }

private:
    explicit Connection(PGconn* connection) : connection_(connection, PQfinish) {}
    Status failure(PGresult* result, std::string_view what);
    std::unique_ptr<PGconn, decltype(&PQfinish)> connection_;
    std::string sqlstate_;
};

// Applies the numbered steps not applied yet (refusing a database a newer build migrated), each in a transaction of its own, recorded in
// schema_migrations; several workers starting at once apply each step once (a transaction
// lock, never a session one: it holds behind a pooler like PgBouncer too).
Status migrate(Connection& connection, const std::vector<std::string_view>& steps);

}  // namespace crmsync::pq
