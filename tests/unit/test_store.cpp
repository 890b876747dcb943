#include <catch2/catch.hpp>

#include <latch>
#include <thread>

#include <SQLiteCpp/SQLiteCpp.h>

#include "store.h"
#include "test_support.h"

using namespace crmsync;

TEST_CASE("a batch commits links, errors, log, counters and cursor together") {
    testing::TempDir dir;
    auto store = open_sqlite_store(dir / "var/state.db");
    REQUIRE(store);
    auto& s = *store.value();
    int64_t run = s.start_run({"m", "crm"}, "manual", 1000).value();
    BatchCommit batch;
    batch.run_id = run;
    batch.scope = {"m", "crm"};
    batch.links.push_back({"k1", "src-1", "Task", "00T1", "hash1", 1000});
    batch.errors.push_back(
        {0, 0, "m", 1000, "src-2", "k2", "Task", "REQUIRED_FIELD_MISSING", "Required fields are missing: [X]", {"X"}, "{}"});
    batch.log.push_back({1000, "info", "hello"});
    batch.counts.created = 1;
    batch.counts.failed = 1;
    batch.cursor = R"({"page": 2})";
    REQUIRE(s.commit_batch(batch));
    REQUIRE(s.finish_run(run, "partial", "1 failed", 2000, {{2000, "info", "done"}}));

    CHECK(s.cursor({"m", "crm"}).value() == std::optional<std::string>(R"({"page": 2})"));
    auto links = s.links({"m", "crm"}, {"k1", "k9"}).value();
    REQUIRE(links.size() == 1);
    CHECK(links.at("k1").crm_id == "00T1");
    auto errors = s.errors("m", 0);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].fields == std::vector<std::string>{"X"});
    CHECK(errors[0].entity_id == "src-2");
    auto r = s.run(run);
    REQUIRE(r);
    CHECK(r->status == "partial");
    CHECK(r->counts.created == 1);
    CHECK(s.run_log(run).size() == 2);
}

TEST_CASE("errors older than the retention are purged, newer ones stay") {
    testing::TempDir dir;
    auto s = std::move(open_sqlite_store(dir / "state.db").value());
    int64_t run = s->start_run({"m", "crm"}, "manual", 0).value();
    BatchCommit batch;
    batch.run_id = run;
    batch.scope = {"m", "crm"};
    batch.errors.push_back({0, 0, "m", 100, "old", "k", "Task", "X", "old", {}, "{}"});
    batch.errors.push_back({0, 0, "m", 5000, "new", "k", "Task", "X", "new", {}, "{}"});
    REQUIRE(s->commit_batch(batch));
    CHECK(s->purge_errors(1000).value() == 1);
    auto left = s->errors(std::nullopt, 0);
    REQUIRE(left.size() == 1);
    CHECK(left[0].entity_id == "new");
}

TEST_CASE("a lease is exclusive until it expires, then another holder takes it over under a higher fence") {
    testing::TempDir dir;
    auto s = std::move(open_sqlite_store(dir / "state.db").value());
    CHECK(s->acquire_lease("m", "a", 1000, 500).value() == std::optional<int64_t>(1));
    CHECK_FALSE(s->acquire_lease("m", "b", 1200, 500).value());
    CHECK(s->acquire_lease("m", "a", 1300, 500).value() == std::optional<int64_t>(1));  // the holder again: same fence
    CHECK(s->renew_lease({"m", "a", 0, 1}, 1700, 500).value());                         // now until 2200
    CHECK_FALSE(s->acquire_lease("m", "b", 2100, 500).value());
    CHECK(s->acquire_lease("m", "b", 2300, 500).value() == std::optional<int64_t>(2));  // a's lease ran out at 2200
    CHECK(s->lease("m").value()->holder == "b");
    CHECK_FALSE(s->renew_lease({"m", "a", 0, 1}, 2400, 500).value());  // a learns it lost it
    REQUIRE(s->release_lease("m", "b"));
    CHECK_FALSE(s->lease("m").value().has_value());
    // A released lease's number is never handed out again.
    CHECK(s->acquire_lease("m", "c", 2500, 500).value() == std::optional<int64_t>(3));
    CHECK(s->take_over_lease("m", "c", "d", 2600, 500).value() == std::optional<int64_t>(4));
    CHECK_FALSE(s->take_over_lease("m", "c", "e", 2700, 500).value());
}

TEST_CASE("a batch whose lease changed hands is not saved, the holder's is") {
    testing::TempDir dir;
    auto s = std::move(open_sqlite_store(dir / "state.db").value());
    const StateScope scope{"m", "crm"};
    auto a = s->acquire_lease("m", "a", 1000, 500).value();
    REQUIRE(a);
    auto b = s->acquire_lease("m", "b", 2000, 500).value();  // a stalled past its expiry
    REQUIRE(b);
    BatchCommit stale;
    stale.run_id = s->start_run(scope, "manual", 1000).value();
    stale.scope = scope;
    stale.lease = LeaseRow{"m", "a", 0, *a};
    stale.links.push_back({"k1", "src-1", "Task", "00T1", "h1", 2100});
    stale.cursor = "\"after-a\"";
    auto refused = s->commit_batch(stale);
    REQUIRE_FALSE(refused);
    CHECK(refused.kind() == Status::Kind::conflict);
    CHECK_THAT(refused.message(), Catch::Contains("lease was taken over"));
    CHECK(s->links(scope, {"k1"}).value().empty());
    CHECK_FALSE(s->cursor(scope).value().has_value());

    BatchCommit current = stale;
    current.lease = LeaseRow{"m", "b", 0, *b};
    REQUIRE(s->commit_batch(current));
    CHECK(s->links(scope, {"k1"}).value().size() == 1);
}

TEST_CASE("the store migrates a new file to the current schema and reopens it unchanged") {
    testing::TempDir dir;
    { REQUIRE(open_sqlite_store(dir / "state.db")); }
    auto again = open_sqlite_store(dir / "state.db");
    REQUIRE(again);
    CHECK(again.value()->runs(std::nullopt, 10).empty());
    CHECK(store_schema_version() >= 1);
}

TEST_CASE("several processes creating the store at once all open it (the first applies each migration)") {
    // Connections of their own in threads lock the file as processes do.
    for (int round = 0; round < 5; ++round) {
        testing::TempDir dir;
        constexpr int kOpeners = 8;
        std::latch start(kOpeners);
        std::vector<std::string> failures(kOpeners);
        std::vector<std::thread> openers;
        for (int i = 0; i < kOpeners; ++i)
            openers.emplace_back([&, i] {
                start.arrive_and_wait();
                auto store = open_sqlite_store(dir / "var/state.db");
                if (!store) failures[i] = store.status().message();
                else if (auto run = store.value()->start_run({"m", "crm"}, "manual", 1000); !run)
                    failures[i] = run.status().message();
            });
        for (auto& t : openers) t.join();
        for (const auto& f : failures) CHECK(f == "");
        auto store = open_sqlite_store(dir / "var/state.db");
        REQUIRE(store);
        CHECK(store.value()->runs("m", 100).size() == kOpeners);
    }
}

TEST_CASE("links and cursors belong to (module, connection): another connection starts afresh, reset forgets one") {
    testing::TempDir dir;
    auto s = std::move(open_sqlite_store(dir / "state.db").value());
    const StateScope mock{"m", "mock"}, sf{"m", "salesforce"};
    BatchCommit batch;
    batch.run_id = s->start_run(mock, "manual", 1000).value();
    batch.scope = mock;
    batch.links.push_back({"k1", "src-1", "Task", "00T-mock", "hash1", 1000});
    batch.cursor = "\"c-mock\"";
    REQUIRE(s->commit_batch(batch));

    CHECK(s->links(sf, {"k1"}).value().empty());
    CHECK_FALSE(s->cursor(sf).value().has_value());
    CHECK(s->links(mock, {"k1"}).value().at("k1").crm_id == "00T-mock");
    CHECK(s->cursor(mock).value() == std::optional<std::string>("\"c-mock\""));
    auto listed = s->all_links("m", std::nullopt, 10);
    REQUIRE(listed.size() == 1);
    CHECK(listed[0].connection == "mock");
    CHECK(s->all_links("m", std::optional<std::string>("salesforce"), 10).empty());
    CHECK(s->run(batch.run_id)->connection == "mock");

    CHECK(s->reset(sf).value() == 0);
    CHECK(s->links(mock, {"k1"}).value().size() == 1);
    CHECK(s->reset(mock).value() == 1);
    CHECK(s->links(mock, {"k1"}).value().empty());
    CHECK_FALSE(s->cursor(mock).value().has_value());
    CHECK(s->runs("m", 10).size() == 1);  // the history stays
}

TEST_CASE("a file from before connections keeps its state for the connection the module runs on next") {
    testing::TempDir dir;
    {
        // Schema 1 as an older crmsync left it, with one link and a cursor.
        SQLite::Database db(dir / "state.db", SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
        db.exec(R"sql(
            CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, module TEXT NOT NULL, trigger TEXT NOT NULL,
                started_ms INTEGER NOT NULL, finished_ms INTEGER NOT NULL DEFAULT 0, status TEXT NOT NULL,
                message TEXT NOT NULL DEFAULT '', counts TEXT NOT NULL DEFAULT '{}');
            CREATE INDEX runs_module ON runs(module, id);
            CREATE TABLE run_logs (run_id INTEGER NOT NULL REFERENCES runs(id), seq INTEGER NOT NULL, at_ms INTEGER NOT NULL,
                level TEXT NOT NULL, message TEXT NOT NULL, PRIMARY KEY (run_id, seq));
            CREATE TABLE errors (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id INTEGER NOT NULL, module TEXT NOT NULL,
                at_ms INTEGER NOT NULL, entity_id TEXT NOT NULL, key TEXT NOT NULL, object TEXT NOT NULL, code TEXT NOT NULL,
                message TEXT NOT NULL, fields TEXT NOT NULL, payload TEXT NOT NULL);
            CREATE INDEX errors_module_time ON errors(module, at_ms);
            CREATE INDEX errors_time ON errors(at_ms);
            CREATE TABLE links (module TEXT NOT NULL, key TEXT NOT NULL, source_id TEXT NOT NULL, object TEXT NOT NULL,
                crm_id TEXT NOT NULL, content_hash TEXT NOT NULL, updated_ms INTEGER NOT NULL,
                PRIMARY KEY (module, key)) WITHOUT ROWID;
            CREATE TABLE cursors (module TEXT PRIMARY KEY, cursor TEXT, updated_ms INTEGER NOT NULL);
            CREATE TABLE inbox (id INTEGER PRIMARY KEY AUTOINCREMENT, module TEXT NOT NULL, received_ms INTEGER NOT NULL,
                body TEXT NOT NULL, done INTEGER NOT NULL DEFAULT 0);
            CREATE INDEX inbox_pending ON inbox(module, done, id);
            CREATE TABLE leases (module TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_ms INTEGER NOT NULL);
            INSERT INTO links VALUES ('m', 'k1', 'src-1', 'Task', '00T1', 'h', 1000);
            INSERT INTO cursors VALUES ('m', '"c1"', 1000);
            PRAGMA user_version = 1;
        )sql");
    }
    auto s = std::move(open_sqlite_store(dir / "state.db").value());
    const StateScope scope{"m", "salesforce"};
    CHECK(s->links(scope, {"k1"}).value().empty());  // not yet claimed
    CHECK(s->claim_unscoped_state(scope).value() == 2);
    CHECK(s->links(scope, {"k1"}).value().at("k1").crm_id == "00T1");
    CHECK(s->cursor(scope).value() == std::optional<std::string>("\"c1\""));
    CHECK(s->claim_unscoped_state({"m", "other"}).value() == 0);  // once only
}
