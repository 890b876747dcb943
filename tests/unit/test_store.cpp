#include <catch2/catch.hpp>

#include <algorithm>
#include <latch>
#include <set>
#include <thread>

#include <SQLiteCpp/SQLiteCpp.h>

#include "store.h"
#include "test_postgres.h"
#include "test_support.h"

using namespace crmsync;

namespace {

// The store's contract, held by both backends: each test below that opens a `Backend` runs
// once on a SQLite file and once on a PostgreSQL database of its own (a server the test
// process starts itself).
class Backend {
public:
    explicit Backend(std::string kind) : kind_(std::move(kind)) {
        if (kind_ == "postgres") conninfo_ = testing::fresh_postgres_database();
    }
    Result<std::unique_ptr<StateStore>> open() const {
        return kind_ == "postgres" ? open_postgres_store(conninfo_) : open_sqlite_store(dir_ / "var/state.db");
    }
    std::unique_ptr<StateStore> store() const {
        auto s = open();
        INFO(s.status().message());
        REQUIRE(s);
        return std::move(s.value());
    }
    const std::string& kind() const { return kind_; }

private:
    std::string kind_;
    testing::TempDir dir_;
    std::string conninfo_;
};

// Runs body(store, i) on n threads at once, each on its own connection to the backend (made
// and migrated before): workers racing. A connection that cannot be opened fails its thread's
// part; the others go on.
template <class Body>
void race(const Backend& backend, int n, Body body) {
    (void)backend.store();
    std::latch start(n);
    std::vector<std::thread> threads;
    std::vector<std::string> failures(n);
    for (int i = 0; i < n; ++i)
        threads.emplace_back([&, i] {
            auto s = backend.open();
            if (!s) failures[i] = s.status().message();
            start.arrive_and_wait();
            if (s) body(*s.value(), i);
        });
    for (auto& t : threads) t.join();
    for (const auto& f : failures) CHECK(f == "");
}

// The first batch of a new manual run of `scope`, started at `at_ms`.
BatchCommit batch_of_new_run(StateStore& s, const StateScope& scope, int64_t at_ms = 1000) {
    BatchCommit batch;
    batch.run_id = s.start_run(scope, "manual", at_ms).value();
    batch.scope = scope;
    return batch;
}

#define EACH_BACKEND()                                                                  \
    const std::string backend_kind = GENERATE(as<std::string>(), "sqlite", "postgres"); \
    INFO("backend: " << backend_kind);                                                  \
    Backend backend(backend_kind)

}  // namespace

TEST_CASE("a batch commits links, errors, log, counters and cursor together") {
    EACH_BACKEND();
    auto store = backend.store();
    auto& s = *store;
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
    EACH_BACKEND();
    auto s = backend.store();
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
    EACH_BACKEND();
    auto s = backend.store();
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
    EACH_BACKEND();
    auto s = backend.store();
    const StateScope scope{"m", "crm"};
    auto a = s->acquire_lease("m", "a", 1000, 500).value();
    REQUIRE(a);
    auto b = s->acquire_lease("m", "b", 2000, 500).value();  // a stalled past its expiry
    REQUIRE(b);
    BatchCommit stale = batch_of_new_run(*s, scope);
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

TEST_CASE("the store migrates a new store to the current schema and reopens it unchanged") {
    EACH_BACKEND();
    { (void)backend.store()->start_run({"m", "crm"}, "manual", 1000).value(); }
    auto again = backend.store();
    CHECK(again->runs(std::nullopt, 10).size() == 1);
    CHECK(store_schema_version() >= 1);
    CHECK(postgres_schema_version() >= 1);
}

TEST_CASE("several processes creating the store at once all open it (the first applies each migration)") {
    // Connections of their own in threads lock the store as processes do.
    const std::string backend_kind = GENERATE(as<std::string>(), "sqlite", "postgres");
    INFO("backend: " << backend_kind);
    for (int round = 0; round < 5; ++round) {
        Backend backend(backend_kind);
        constexpr int kOpeners = 8;
        std::latch start(kOpeners);
        std::vector<std::string> failures(kOpeners);
        std::vector<std::thread> openers;
        for (int i = 0; i < kOpeners; ++i)
            openers.emplace_back([&, i] {
                start.arrive_and_wait();
                auto store = backend.open();
                if (!store) failures[i] = store.status().message();
                else if (auto run = store.value()->start_run({"m", "crm"}, "manual", 1000); !run)
                    failures[i] = run.status().message();
            });
        for (auto& t : openers) t.join();
        for (const auto& f : failures) CHECK(f == "");
        CHECK(backend.store()->runs("m", 100).size() == kOpeners);
    }
}

TEST_CASE("links and cursors belong to (module, connection): another connection starts afresh, reset forgets one") {
    EACH_BACKEND();
    auto s = backend.store();
    const StateScope mock{"m", "mock"}, sf{"m", "salesforce"};
    BatchCommit batch = batch_of_new_run(*s, mock);
    batch.links.push_back({"k1", "src-1", "Task", "00T-mock", "hash1", 1000});
    batch.cursor = "\"c-mock\"";
    REQUIRE(s->commit_batch(batch));

    CHECK(s->links(sf, {"k1"}).value().empty());
    CHECK_FALSE(s->cursor(sf).value().has_value());
    CHECK(s->links(mock, {"k1"}).value().at("k1").crm_id == "00T-mock");
    CHECK(s->cursor(mock).value() == std::optional<std::string>("\"c-mock\""));
    BatchCommit later;
    later.run_id = batch.run_id;
    later.scope = mock;
    later.links.push_back({"k0", "src-0", "Task", "00T-later", "hash0", 2000});
    REQUIRE(s->commit_batch(later));
    auto listed = s->all_links("m", std::nullopt, 10);
    REQUIRE(listed.size() == 2);
    CHECK(listed[0].crm_id == "00T-later");  // the newest first
    CHECK(listed[1].connection == "mock");
    CHECK(s->all_links("m", std::nullopt, 1).size() == 1);
    CHECK(s->all_links("m", std::optional<std::string>("salesforce"), 10).empty());
    CHECK(s->run(batch.run_id)->connection == "mock");

    CHECK(s->reset(sf).value() == 0);
    CHECK(s->links(mock, {"k1"}).value().size() == 1);
    CHECK(s->reset(mock).value() == 2);
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

TEST_CASE("links are read for any number of keys, several statements' worth included") {
    EACH_BACKEND();
    auto s = backend.store();
    const StateScope scope{"m", "crm"};
    BatchCommit batch = batch_of_new_run(*s, scope);
    std::vector<std::string> keys;
    for (int i = 0; i < 450; ++i) {
        keys.push_back("k" + std::to_string(i));
        if (i % 2 == 0) batch.links.push_back({keys.back(), "src", "Task", "00T" + std::to_string(i), "h", 1000});
    }
    REQUIRE(s->commit_batch(batch));
    keys.push_back("k0");  // asked twice
    auto read = s->links(scope, keys).value();
    CHECK(read.size() == 225);
    CHECK(read.at("k448").crm_id == "00T448");
    CHECK_FALSE(read.count("k449"));
    CHECK(s->links(scope, {"k2"}).value().at("k2").crm_id == "00T2");
}

TEST_CASE("an upgrade that fails part way leaves the file as it was and names it") {
    testing::TempDir dir;
    {
        // Schema 7 as an older crmsync left it (as much of it as steps 8 and 9 touch), but for
        // a table that step 9 makes itself.
        SQLite::Database db(dir / "state.db", SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
        SQLite::Transaction tx(db);
        db.exec(R"sql(
            CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, module TEXT NOT NULL, trigger TEXT NOT NULL,
                started_ms INTEGER NOT NULL, status TEXT NOT NULL);
            CREATE TABLE api_budget (connection TEXT PRIMARY KEY);
            PRAGMA user_version = 7;
        )sql");
        tx.commit();
    }
    auto opened = open_sqlite_store(dir / "state.db");
    REQUIRE_FALSE(opened);
    CHECK(opened.status().message().find(dir / "state.db") != std::string::npos);
    SQLite::Database db(dir / "state.db", SQLite::OPEN_READONLY);
    CHECK(db.execAndGet("PRAGMA user_version").getInt() == 7);
    // Step 8 went well, and step 9's index was made before its table failed: both went.
    CHECK(db.execAndGet("SELECT COUNT(*) FROM sqlite_master WHERE name IN ('notify_state', 'runs_schedule')").getInt() == 0);
}

TEST_CASE("failed records are kept, due by their time, closed when they land, and dismissed by an operator") {
    EACH_BACKEND();
    auto s = backend.store();
    const StateScope scope{"m", "crm"};
    BatchCommit first = batch_of_new_run(*s, scope);
    first.at_ms = 1000;
    for (const char* id : {"b", "a", "c"}) {
        first.failed.push_back({id, std::string(R"({"id": ")") + id + "\"}", 1, 2000, false});
        first.errors.push_back({0, 0, "m", 1000, id, std::string("k-") + id, "Task", "X", "bad", {}, "{}"});
    }
    first.unmatched.push_back({0, 0, "Lead", "Email", "a@b.jp", "a"});
    REQUIRE(s->commit_batch(first));
    CHECK(s->due_records(scope, 1500, "", 10).value().empty());  // not before next_ms
    auto due = s->due_records(scope, 2000, "", 2).value();
    REQUIRE(due.size() == 2);
    CHECK(due[0].source_id == "a");  // in source id order, a page at a time
    CHECK(due[1].source_id == "b");
    CHECK(s->due_records(scope, 2000, "b", 2).value().at(0).source_id == "c");
    CHECK(s->unmatched(first.run_id).at(0).key == "a@b.jp");

    BatchCommit second = batch_of_new_run(*s, scope, 3000);
    second.at_ms = 3000;
    second.landed.push_back("a");
    second.failed.push_back({"b", R"({"id": "b", "v": 2})", 8, 0, true});  // its last attempt
    second.errors.push_back({0, 0, "m", 3000, "b", "k-b", "Task", "X", "bad again", {}, "{}"});
    REQUIRE(s->commit_batch(second));
    auto open = s->errors("m", 0);
    REQUIRE(open.size() == 2);
    CHECK(open[0].entity_id == "c");
    CHECK(open[0].state == "open");
    CHECK(open[1].entity_id == "b");
    CHECK(open[1].state == "gave_up");
    auto history = s->errors("m", 0, true);
    REQUIRE(history.size() == 4);
    CHECK(history[0].closed_reason == "tried again");  // b's first error
    CHECK(history[1].closed_reason == "landed");       // a
    CHECK(history[1].closed_ms == 3000);
    auto left = s->due_records(scope, 9000, "", 10).value();
    REQUIRE(left.size() == 1);  // a landed, b gave up
    CHECK(left[0].source_id == "c");

    CHECK(s->dismiss(std::nullopt, std::nullopt, 4000).status().kind() == Status::Kind::config);
    CHECK(s->dismiss(std::string("m"), std::string("k-c"), 4000).value() == 1);
    CHECK(s->due_records(scope, 9000, "", 10).value().empty());
    CHECK(s->dismiss(std::string("m"), std::nullopt, 4000).value() == 1);  // b
    CHECK(s->errors("m", 0).empty());
}

TEST_CASE("a batch writing one key twice keeps the last link and the newest version") {
    EACH_BACKEND();
    auto s = backend.store();
    const StateScope scope{"m", "crm"};
    BatchCommit batch = batch_of_new_run(*s, scope);
    LinkRow newer{"k", "src", "Task", "00T1", "h1", 1000};
    newer.version = 7;
    LinkRow later{"k", "src", "Task", "00T2", "h2", 1001};
    later.version = 5;
    batch.links = {newer, later};
    REQUIRE(s->commit_batch(batch));
    auto link = s->links(scope, {"k"}).value().at("k");
    CHECK(link.crm_id == "00T2");
    CHECK(link.content_hash == "h2");
    CHECK(link.version == std::optional<int64_t>(7));
    CHECK(link.crm_key == "k");  // written under its key as it is
    // A later batch without a version keeps the one known.
    batch.links = {LinkRow{"k", "src", "Task", "00T2", "h3", 2000}};
    batch.links[0].crm_key = "k~1";
    REQUIRE(s->commit_batch(batch));
    link = s->links(scope, {"k"}).value().at("k");
    CHECK(link.version == std::optional<int64_t>(7));
    CHECK(link.crm_key == "k~1");
}

TEST_CASE("runs keep their counters, logs, status and totals, and a dead process's runs become interrupted") {
    EACH_BACKEND();
    auto s = backend.store();
    const StateScope scope{"m", "crm"};
    const int64_t a = s->start_run(scope, "schedule", 1000).value();
    BatchCommit batch;
    batch.run_id = a;
    batch.scope = scope;
    batch.counts.created = 2;
    batch.counts.retried = 1;
    batch.counts.bump("owner_fallback");
    batch.log = {{1000, "info", "one"}, {1001, "warn", "two"}};
    REQUIRE(s->commit_batch(batch));
    REQUIRE(s->commit_batch(batch));
    REQUIRE(s->finish_run(a, "succeeded", "", 2000, {{2000, "info", "three"}}));
    const int64_t b = s->start_run(scope, "webhook", 3000).value();
    REQUIRE(s->mark_interrupted("m", 4000));
    auto run_a = s->run(a).value();
    CHECK(run_a.counts.created == 4);
    CHECK(run_a.counts.retried == 2);
    CHECK(run_a.counts.extra.at("owner_fallback").as_int64() == 2);
    auto log = s->run_log(a);
    REQUIRE(log.size() == 5);
    CHECK(log[2].message == "one");  // appended in order, batch after batch
    CHECK(log[4].message == "three");
    CHECK(s->run(b)->status == "interrupted");
    CHECK(s->last_run("m")->id == b);
    CHECK(s->runs("m", 1).at(0).id == b);
    CHECK(s->runs(std::nullopt, 10).at(0).id == a);  // oldest first
    CHECK(s->last_scheduled_start("m") == std::optional<int64_t>(1000));
    CHECK(s->last_success("m") == std::optional<int64_t>(2000));
    CHECK_FALSE(s->last_success("other").has_value());
    auto totals = s->run_totals();
    REQUIRE(totals.size() == 2);
    CHECK(totals[0].status == "interrupted");
    CHECK(totals[1].status == "succeeded");
    CHECK(totals[1].counts.created == 4);
    CHECK(totals[1].counts.retried == 2);
    CHECK(s->notify_state("mail", "m").value() == "ok");
    CHECK(s->change_notify_state("mail", "m", "ok", "failed", 5000).value());
    CHECK(s->notify_state("mail", "m").value() == "failed");
    // A change from a state it is no longer in changes nothing.
    CHECK_FALSE(s->change_notify_state("mail", "m", "ok", "errors", 5100).value());
    CHECK_FALSE(s->change_notify_state("other", "m", "failed", "ok", 5100).value());  // no row: it is "ok"
    CHECK(s->notify_state("other", "m").value() == "ok");
    CHECK(s->change_notify_state("mail", "m", "failed", "ok", 5200).value());
    CHECK(s->notify_state("mail", "m").value() == "ok");
    CHECK(s->change_notify_state("mail", "m", "ok", "budget", 5300).value());  // from "ok" with its row there
    CHECK(s->notify_state("mail", "m").value() == "budget");
    CHECK(s->writable());
}

TEST_CASE("workers racing for one lease: exactly one holds it, under one fence") {
    EACH_BACKEND();
    constexpr int kWorkers = 8;
    std::vector<std::optional<int64_t>> got(kWorkers);
    std::vector<std::string> failures(kWorkers);
    race(backend, kWorkers, [&](StateStore& s, int i) {
        auto lease = s.acquire_lease("m", "worker-" + std::to_string(i), 1000, 60'000);
        if (!lease) failures[i] = lease.status().message();
        else got[i] = *lease;
    });
    for (const auto& f : failures) CHECK(f == "");
    int holders = 0;
    for (int i = 0; i < kWorkers; ++i)
        if (got[i]) {
            ++holders;
            CHECK(*got[i] == 1);
            CHECK(backend.store()->lease("m").value()->holder == "worker-" + std::to_string(i));
        }
    CHECK(holders == 1);
}

TEST_CASE("workers that saw the same change of a module's state claim its notification: one tells it") {
    EACH_BACKEND();
    constexpr int kWorkers = 8;
    std::vector<int> claimed(kWorkers, -1);  // 1 claimed, 0 not, -1 the store failed
    race(backend, kWorkers, [&](StateStore& s, int i) {
        auto r = s.change_notify_state("ops", "m", "ok", "failed", 1000 + i);
        if (r) claimed[i] = *r ? 1 : 0;
    });
    CHECK(std::count(claimed.begin(), claimed.end(), -1) == 0);
    CHECK(std::count(claimed.begin(), claimed.end(), 1) == 1);
    CHECK(backend.store()->notify_state("ops", "m").value() == "failed");
}

TEST_CASE("the same signed webhook taken by several workers at once goes into the inbox once") {
    EACH_BACKEND();
    constexpr int kWorkers = 6;
    std::vector<std::optional<StateStore::InboxAdded>> added(kWorkers);
    race(backend, kWorkers, [&](StateStore& s, int i) {
        if (auto r = s.inbox_add("m", R"({"event": 1})", 1000, "sig-1", 301'000)) added[i] = *r;
    });
    int fresh = 0;
    std::set<int64_t> ids;
    for (const auto& a : added) {
        REQUIRE(a);
        fresh += a->duplicate ? 0 : 1;
        ids.insert(a->id);
    }
    CHECK(fresh == 1);
    CHECK(ids.size() == 1);  // every duplicate names the first event
    auto s = backend.store();
    CHECK(s->inbox_depth(std::string("m")) == 1);
    CHECK(s->inbox_depth(std::nullopt) == 1);
    // After its window, the same signature is new again (the sender's clock check refuses it first).
    auto later = s->inbox_add("m", R"({"event": 1})", 400'000, "sig-1", 700'000).value();
    CHECK_FALSE(later.duplicate);
    auto pending = s->inbox_pending("m", 10).value();
    REQUIRE(pending.size() == 2);
    BatchCommit drained;
    drained.run_id = s->start_run({"m", "crm"}, "webhook", 500'000).value();
    drained.scope = {"m", "crm"};
    drained.inbox_done = {pending[0].id, pending[1].id};
    REQUIRE(s->commit_batch(drained));
    CHECK(s->inbox_depth(std::string("m")) == 0);
}

TEST_CASE("the API budget's newest reading per connection is kept, an older one never replaces it") {
    EACH_BACKEND();
    auto s = backend.store();
    CHECK_FALSE(s->api_usage("sf").value().has_value());
    REQUIRE(s->note_api_usage({"sf", 500, 15000, 2000}));
    REQUIRE(s->note_api_usage({"sf", 400, 15000, 1000}));  // seen earlier, told later
    REQUIRE(s->note_api_usage({"mock", 3, 100, 1500}));
    auto kept = s->api_usage("sf").value();
    REQUIRE(kept);
    CHECK(kept->used == 500);
    CHECK(kept->limit == 15000);
    CHECK(kept->at_ms == 2000);
    REQUIRE(s->note_api_usage({"sf", 14990, 15000, 3000}));
    CHECK(s->api_usage("sf").value()->used == 14990);
    CHECK(s->api_usage("mock").value()->used == 3);
}

TEST_CASE("keys and source ids of any text are found again: quotes, backslashes, commas, braces, NULL as a word, Unicode") {
    EACH_BACKEND();
    auto s = backend.store();
    const StateScope scope{"m", "crm"};
    const std::vector<std::string> keys{R"(a"b)", R"(a\b)", "a,b", "{a}", "NULL", "", " spaced ", "日本語:1", "x'y"};
    BatchCommit batch = batch_of_new_run(*s, scope);
    batch.at_ms = 1000;
    for (const auto& k : keys) {
        batch.links.push_back({k, k, "Task", "00T" + k, "h", 1000});
        batch.failed.push_back({k, "{}", 1, 0, false});
        batch.errors.push_back({0, 0, "m", 1000, k, k, "Task", "X", "bad", {}, "{}"});
    }
    REQUIRE(s->commit_batch(batch));
    auto found = s->links(scope, keys).value();
    CHECK(found.size() == keys.size());
    for (const auto& k : keys) CHECK(found.count(k) == 1);
    CHECK(s->links(scope, {"a", "b", "a\\\\b"}).value().empty());
    BatchCommit landed;
    landed.run_id = batch.run_id;
    landed.scope = scope;
    landed.at_ms = 2000;
    landed.landed = keys;
    REQUIRE(s->commit_batch(landed));
    CHECK(s->errors("m", 0).empty());  // every one closed by its id
    CHECK(s->due_records(scope, 9000, "", 100).value().empty());
}

TEST_CASE("a glance tells each module's last scheduled start, last run's status and waiting webhooks in one read") {
    EACH_BACKEND();
    auto s = backend.store();
    const int64_t a1 = s->start_run({"a", "crm"}, "schedule", 1000).value();
    REQUIRE(s->finish_run(a1, "succeeded", "", 1500, {}));
    (void)s->start_run({"a", "crm"}, "webhook", 2000).value();  // a drain moves no schedule
    (void)s->start_run({"b", "crm"}, "manual", 3000).value();
    (void)s->inbox_add("b", "{}", 3000, "s1", 9000).value();
    (void)s->inbox_add("b", "{}", 3000, "s2", 9000).value();
    auto seen = s->glance({"a", "b", "never"});
    REQUIRE(seen.size() == 3);
    CHECK(seen["a"].last_scheduled_start == std::optional<int64_t>(1000));
    CHECK(seen["a"].last_status == "running");
    CHECK(seen["a"].inbox_depth == 0);
    CHECK(seen["b"].last_scheduled_start == std::optional<int64_t>(3000));
    CHECK(seen["b"].inbox_depth == 2);
    CHECK_FALSE(seen["never"].last_scheduled_start.has_value());
    CHECK(seen["never"].last_status == "");
    CHECK(s->glance({}).empty());
}
