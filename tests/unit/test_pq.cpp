// The PostgreSQL connection and migrations the state store will stand on, against a server
// this test starts itself.
#include <catch2/catch.hpp>

#include <thread>

#include "pq.h"
#include "test_postgres.h"

using namespace crmsync;

TEST_CASE("postgres: statements take parameters as text, NULL included, and failures carry their SQLSTATE") {
    testing::TestPostgres server;
    auto c = pq::Connection::open(server.conninfo());
    INFO(c.status().message());
    REQUIRE(c);
    REQUIRE(c->run("CREATE TABLE t (k TEXT PRIMARY KEY, n BIGINT)"));
    auto inserted = c->exec("INSERT INTO t VALUES ($1, $2), ($3, $4)", {"a", "9007199254740993", "b", std::nullopt});
    REQUIRE(inserted);
    CHECK(inserted->affected() == 2);
    auto rows = c->exec("SELECT k, n FROM t ORDER BY k");
    REQUIRE(rows);
    REQUIRE(rows->size() == 2);
    CHECK(rows->text(0, 0) == "a");
    CHECK(rows->integer(0, 1) == 9007199254740993);
    CHECK_FALSE(rows->text(1, 1).has_value());
    auto duplicate = c->exec("INSERT INTO t VALUES ($1, NULL)", {"a"});
    REQUIRE_FALSE(duplicate);
    CHECK(c->last_sqlstate() == "23505");
    CHECK_THAT(duplicate.status().message(), Catch::Contains("PostgreSQL: a statement failed (23505)"));
}

TEST_CASE("postgres: a server that is not there is unreachable, named by where it was looked for") {
    testing::TempDir nowhere;
    auto c = pq::Connection::open("host=" + nowhere.str() + " user=crmsync dbname=postgres password=hunter2");
    REQUIRE_FALSE(c);
    CHECK(c.status().kind() == Status::Kind::unreachable);
    CHECK_THAT(c.status().message(),
               Catch::Contains("cannot connect") && Catch::Contains(nowhere.str()) && !Catch::Contains("hunter2"));
}

TEST_CASE("postgres: migrations apply in order, once, even with workers migrating at once") {
    testing::TestPostgres server;
    const std::string db = server.conninfo("crmsync");
    std::vector<std::string_view> steps{"CREATE TABLE a (x INTEGER)", "ALTER TABLE a ADD COLUMN y TEXT",
                                        "INSERT INTO a (x, y) VALUES (1, 'once')"};
    std::vector<Status> results(4);
    std::vector<std::thread> workers;
    for (auto& r : results)
        workers.emplace_back([&, out = &r] {
            auto c = pq::Connection::open(db);
            *out = c ? pq::migrate(*c, steps) : c.status();
        });
    for (auto& w : workers) w.join();
    for (const auto& r : results) CHECK(r.message() == "");
    auto c = pq::Connection::open(db);
    REQUIRE(c);
    CHECK(c->exec("SELECT COUNT(*) FROM a")->integer(0, 0) == 1);
    CHECK(c->exec("SELECT COUNT(*) FROM schema_migrations")->integer(0, 0) == 3);
    // A later build with one more step applies just that one.
    steps.push_back("INSERT INTO a (x, y) VALUES (2, 'new')");
    REQUIRE(pq::migrate(*c, steps));
    CHECK(c->exec("SELECT COUNT(*) FROM a")->integer(0, 0) == 2);
    // A step that fails leaves nothing of itself behind and names its number.
    steps.push_back("INSERT INTO a (x, y) VALUES (3, 'half'); SELECT no_such_column FROM a");
    auto failed = pq::migrate(*c, steps);
    CHECK_THAT(failed.message(), Catch::StartsWith("migration 5: PostgreSQL: a statement failed (42703)"));
    CHECK(c->exec("SELECT COUNT(*) FROM a")->integer(0, 0) == 2);
    // An older build on a database a newer one migrated refuses it rather than guess.
    steps.resize(2);
    auto older = pq::migrate(*c, steps);
    CHECK_THAT(older.message(), Catch::Contains("schema is at migration 4, newer than this crmsync (2); upgrade crmsync"));
}
