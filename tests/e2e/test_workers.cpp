// Past one machine: a home whose state lives in PostgreSQL (a server each test starts for
// itself), the CLI on it, and several `crmsync serve` workers sharing the modules while they
// are killed and restarted.
#include <catch2/catch.hpp>

#include <map>
#include <optional>
#include <random>
#include <set>
#include <thread>

#include "clock.h"
#include "engine/engine.h"
#include "serve_process.h"
#include "store.h"
#include "test_postgres.h"
#include "test_support.h"

using testing::TempDir;
using testing::write_file;

namespace {

const char* kSecret = "workers-hook-secret";

// A home with mock-crm and a state manifest naming PostgreSQL by an environment variable.
struct SharedHome {
    TempDir dir;
    std::string conninfo = testing::fresh_postgres_database();
    SharedHome() {
        write_file(dir / "manifests/crm.json", testing::mock_connection(dir / "var/crm.db"));
        write_file(dir / "manifests/state.json", R"({"state": {"postgres": {"env": "CRMSYNC_TEST_STATE_DB"}}})");
        write_file(dir / "empty.jsonl", "");
    }
    std::vector<std::string> env() const {
        return {"CRMSYNC_TEST_STATE_DB=" + conninfo, std::string("CRMSYNC_TEST_HOOK_SECRET=") + kSecret};
    }
    testing::Process crmsync(std::vector<std::string> args) const {
        return testing::crmsync_at(dir.str(), std::move(args), std::string(CRMSYNC_PLUGIN_DIR) + ":" + CRMSYNC_TEST_PLUGIN_DIR,
                                   env());
    }
    void generated(const std::string& name, int64_t count, const std::string& schedule = R"({"every": "1m"})") {
        write_file(dir / ("manifests/" + name + ".json"),
                   R"({"module": ")" + name + R"(", "plugin": {"id": "test-source"}, "crm": "mock", "schedule": )" + schedule +
                       R"(, "config": {"count": )" + std::to_string(count) + R"(, "key_prefix": ")" + name +
                       R"(", "page_delay_ms": 20}})");
    }
    void hooks(const std::string& name) {
        write_file(dir / ("manifests/" + name + ".json"),
                   R"({"module": ")" + name + R"(", "plugin": {"id": "test-ops"}, "crm": "mock", "schedule": "realtime",
                       "webhook": {"secret": {"env": "CRMSYNC_TEST_HOOK_SECRET"}}, "config": {"file": ")" +
                       (dir / "empty.jsonl") + R"("}})");
    }
    std::unique_ptr<mockcrm::Engine> crm() const {
        mockcrm::EngineOptions o;
        o.database = dir / "var/crm.db";
        o.schema = boost::json::parse(R"({"Task": {"fields": {"CrmSync_Key__c": {"type": "string", "external_id": true}}},
                                          "Event": {"fields": {"CrmSync_Key__c": {"type": "string", "external_id": true}}}})")
                       .as_object();
        return std::make_unique<mockcrm::Engine>(o);
    }
    std::unique_ptr<crmsync::StateStore> store() const {
        auto s = crmsync::open_postgres_store(conninfo);
        INFO(s.status().message());
        REQUIRE(s);
        return std::move(s.value());
    }
};

bool eventually(const std::function<bool()>& condition, int seconds) {
    for (int i = 0; i < seconds * 10; ++i) {
        if (condition()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return condition();
}

// A worker that holds a module's lease for a run under way, waited for a few seconds.
std::optional<int> running_worker(const SharedHome& home, const std::vector<std::unique_ptr<testing::ServeProcess>>& workers) {
    auto store = home.store();
    for (int tries = 0; tries < 50; ++tries) {
        for (const auto& run : store->runs(std::nullopt, 200)) {
            if (run.status != "running") continue;
            auto lease = store->lease(run.module);
            if (!lease || !*lease) continue;
            const std::string& holder = (*lease)->holder;  // host:pid
            const std::string pid = holder.substr(holder.rfind(':') + 1);
            for (size_t w = 0; w < workers.size(); ++w)
                if (std::to_string(workers[w]->pid) == pid) return static_cast<int>(w);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return std::nullopt;
}

}  // namespace

TEST_CASE("workers: a home whose state manifest names PostgreSQL keeps its runs, links and errors there") {
    SharedHome home;
    home.generated("gen", 450, "\"manual\"");
    auto run = home.crmsync({"run", "gen"});
    INFO(run.out + run.err);
    CHECK(run.status == 0);
    CHECK_THAT(run.out, Catch::Contains("gen: succeeded") && Catch::Contains("created 450"));
    CHECK_FALSE(std::filesystem::exists(home.dir / "var/state.db"));  // nothing went to SQLite
    auto again = home.crmsync({"run", "gen"});
    CHECK_THAT(again.out, Catch::Contains("fetched 0"));
    CHECK_THAT(home.crmsync({"runs", "gen"}).out, Catch::Contains("succeeded"));
    CHECK_THAT(home.crmsync({"links", "gen", "--last", "5"}).out, Catch::Contains("gen:"));
    CHECK(home.store()->cursor({"gen", "mock"}).value() == std::optional<std::string>("450"));
    CHECK(home.crmsync({"reset", "gen", "--yes"}).status == 0);
    CHECK_FALSE(home.store()->cursor({"gen", "mock"}).value().has_value());

    // Without its variable the store is not opened, and nothing falls back to SQLite.
    auto unset =
        testing::crmsync_at(home.dir.str(), {"run", "gen"}, std::string(CRMSYNC_PLUGIN_DIR) + ":" + CRMSYNC_TEST_PLUGIN_DIR);
    CHECK(unset.status == 2);
    CHECK_THAT(unset.err, Catch::Contains("state.json") && Catch::Contains("CRMSYNC_TEST_STATE_DB is not set"));
    // A database that is not there: unreachable (3), the password never printed.
    auto wrong =
        testing::crmsync_at(home.dir.str(), {"run", "gen"}, std::string(CRMSYNC_PLUGIN_DIR) + ":" + CRMSYNC_TEST_PLUGIN_DIR,
                            {"CRMSYNC_TEST_STATE_DB=host=" + (home.dir / "nowhere") + " password=hunter2"});
    CHECK(wrong.status == 3);
    CHECK_THAT(wrong.err, Catch::Contains("cannot connect") && !Catch::Contains("hunter2"));
    // A broken state manifest stops every command that needs the state, naming the file.
    write_file(home.dir / "manifests/state.json", R"({"state": {"postgress": {"env": "CRMSYNC_TEST_STATE_DB"}}})");
    auto broken = home.crmsync({"run", "gen"});
    CHECK(broken.status == 2);
    CHECK_THAT(broken.err, Catch::Contains("state.json") && Catch::Contains("postgress"));
    CHECK_FALSE(std::filesystem::exists(home.dir / "var/state.db"));
}

// The chaos test issue 20 asks for: three workers, twenty modules, webhooks arriving, workers
// killed with SIGKILL and started again at random — every record written once, every
// accepted webhook landed once.
TEST_CASE("workers: three serve workers on one PostgreSQL store, killed at random, write every record and webhook once") {
    SharedHome home;
    const bool small = std::getenv("CRMSYNC_TEST_SCALE") && std::string(std::getenv("CRMSYNC_TEST_SCALE")) == "small";
    const int64_t per_module = small ? 600 : 1500;
    constexpr int kGenerated = 15, kHooks = 5, kWorkers = 3;
    // Each module's one slot in the test (every hour): it must complete exactly once.
    for (int i = 0; i < kGenerated; ++i) home.generated("gen" + std::to_string(i), per_module, R"({"every": "1h"})");
    for (int i = 0; i < kHooks; ++i) home.hooks("hook" + std::to_string(i));

    std::vector<std::unique_ptr<testing::ServeProcess>> workers(kWorkers);
    auto start = [&](int w) {
        workers[w] = testing::start_serve(home.dir.str(), home.dir / ("worker" + std::to_string(w) + ".log"), home.env());
    };
    for (int w = 0; w < kWorkers; ++w) start(w);

    std::mt19937 random(std::random_device{}());
    std::set<std::string> accepted, unsure;  // 202 answered; no answer (the worker died mid-request)
    int kills = 0, sent = 0;
    auto send_some = [&](int n) {
        for (int i = 0; i < n; ++i, ++sent) {
            const std::string module = "hook" + std::to_string(sent % kHooks);
            const std::string key = module + "-" + std::to_string(sent);
            const int w = std::uniform_int_distribution<int>(0, kWorkers - 1)(random);
            auto answer = testing::post_hook(workers[w]->port, module, testing::event_body(key), kSecret);
            if (answer && answer->status == 202) accepted.insert(key);
            else unsure.insert(key);
        }
    };
    // A number of kills, not a time: a sanitizer build starts a worker several times slower.
    const int rounds = small ? 10 : 20;
    for (int round = 0; round < rounds; ++round) {
        send_some(8);
        std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(100, 700)(random)));
        // Every other round the victim is a worker caught running a module (its lease's
        // holder), so kills land mid-run on any machine; the rest fall at random.
        int victim = std::uniform_int_distribution<int>(0, kWorkers - 1)(random);
        if (round % 2 == 0)
            if (auto running = running_worker(home, workers)) victim = *running;
        workers[victim]->kill_now();
        ++kills;
        send_some(4);  // to whoever is up: a dead worker's requests fail and are counted unsure
        start(victim);
    }
    send_some(20);  // after the last kill, every worker up

    // Every generated record and every accepted webhook lands; a condition, not a time.
    REQUIRE(eventually([&] { return std::filesystem::exists(home.dir / "var/crm.db"); }, 120));
    auto crm = home.crm();
    auto tasks = [&] { return crm->database().execAndGet("SELECT COUNT(DISTINCT CrmSync_Key__c) FROM Task").getInt64(); };
    auto events_landed = [&] {
        int64_t n = 0;
        for (const auto& key : accepted)
            n += crm->query("SELECT COUNT() FROM Event WHERE CrmSync_Key__c = '" + key + "'").total > 0 ? 1 : 0;
        return n;
    };
    const bool done = eventually(
        [&] {
            return tasks() == kGenerated * per_module && events_landed() == static_cast<int64_t>(accepted.size()) &&
                   home.store()->inbox_depth(std::nullopt) == 0;
        },
        small ? 240 : 180);
    for (auto& w : workers) CHECK(w->terminate() == 0);
    INFO("kills " << kills << ", webhooks accepted " << accepted.size() << ", unanswered " << unsure.size() << ", tasks "
                  << tasks());
    CHECK(done);

    // Exactly once: no key twice, nothing that was not sent.
    CHECK(crm->query("SELECT COUNT() FROM Task").total == kGenerated * per_module);
    CHECK(tasks() == kGenerated * per_module);
    const int64_t events = crm->query("SELECT COUNT() FROM Event").total;
    const int64_t distinct_events = crm->database().execAndGet("SELECT COUNT(DISTINCT CrmSync_Key__c) FROM Event").getInt64();
    CHECK(events == distinct_events);
    CHECK(events >= static_cast<int64_t>(accepted.size()));
    CHECK(events <= static_cast<int64_t>(accepted.size() + unsure.size()));
    CHECK(events_landed() == static_cast<int64_t>(accepted.size()));
    // The kills landed mid-run: runs a dead worker left were marked and taken up by another.
    int interrupted = 0;
    std::map<std::string, int> completed;  // module -> its runs that went through to the end
    for (const auto& r : home.store()->runs(std::nullopt, 100000)) {
        interrupted += r.status == "interrupted" ? 1 : 0;
        if (r.trigger == "schedule" && r.status == "succeeded") ++completed[r.module];
    }
    CHECK(interrupted > 0);
    // The slot ran once across the workers: taken up after each kill, never run twice.
    for (int i = 0; i < kGenerated; ++i) CHECK(completed["gen" + std::to_string(i)] == 1);
    WARN("chaos: " << kills << " workers killed, " << interrupted << " runs interrupted and taken up, " << kGenerated * per_module
                   << " records and " << accepted.size() << " accepted webhooks (" << unsure.size() << " unanswered, "
                   << (events - static_cast<int64_t>(accepted.size())) << " of those landed) each written once");
}

TEST_CASE("workers: while the database is away webhooks are refused 503 and health says so, then all goes on by itself") {
    SharedHome home;
    home.hooks("hook");
    auto worker = testing::start_serve(home.dir.str(), home.dir / "worker.log", home.env());
    auto accepted = [&](const std::string& key) {
        auto answer = testing::post_hook(worker->port, "hook", testing::event_body(key), kSecret);
        return answer && answer->status == 202;
    };
    auto landed = [&](const std::string& key) {
        if (!std::filesystem::exists(home.dir / "var/crm.db")) return false;  // mock-crm makes it at its first write
        return home.crm()->query("SELECT COUNT() FROM Event WHERE CrmSync_Key__c = '" + key + "'").total == 1;
    };
    REQUIRE(accepted("before"));
    REQUIRE(eventually([&] { return landed("before"); }, 60));

    testing::shared_postgres().stop();
    auto refused = testing::post_hook(worker->port, "hook", testing::event_body("during"), kSecret);
    REQUIRE(refused);
    CHECK(refused->status == 503);  // the sender keeps it and sends it again
    httplib::Client client("127.0.0.1", worker->port);
    auto health = client.Get("/healthz");
    REQUIRE(health);
    CHECK(health->status == 503);
    CHECK_THAT(health->body, Catch::Contains("store not writable"));

    testing::shared_postgres().start();
    CHECK(eventually([&] { return accepted("during"); }, 60));  // sent again: taken once the store is back
    CHECK(eventually([&] { return landed("during"); }, 60));
    auto healthy = client.Get("/healthz");
    REQUIRE(healthy);
    CHECK(healthy->status == 200);
    CHECK(worker->terminate() == 0);
    CHECK(home.crm()->query("SELECT COUNT() FROM Event").total == 2);
}

TEST_CASE("workers: a run left by a worker on another machine is taken up once its lease expires, not at the next slot") {
    SharedHome home;
    home.generated("gen", 300, R"({"every": "1h"})");
    // A worker elsewhere started the module's slot and went silent: its lease runs out in 2 s.
    // Or (interrupted) it had taken the slot up from another dead worker, marked that run
    // interrupted, and died itself before its own run began.
    const std::string left_as = GENERATE(as<std::string>(), "running", "interrupted");
    INFO("the run left " << left_as);
    auto store = home.store();
    const int64_t now = crmsync::SystemClock().now_ms();
    const int64_t left = store->start_run({"gen", "mock"}, "schedule", now).value();
    if (left_as == "interrupted") REQUIRE(store->finish_run(left, "interrupted", "its process stopped", now, {}));
    const auto fence = store->acquire_lease("gen", "elsewhere.example:4242", now, 2000).value();
    REQUIRE(fence);
    auto worker = testing::start_serve(home.dir.str(), home.dir / "worker.log", home.env());
    auto landed = [&] {
        return std::filesystem::exists(home.dir / "var/crm.db") && home.crm()->query("SELECT COUNT() FROM Task").total == 300;
    };
    CHECK(eventually(landed, 120));
    CHECK(worker->terminate() == 0);
    auto runs = store->runs("gen", 10);
    REQUIRE(runs.size() == 2);
    CHECK(runs[0].id == left);
    CHECK(runs[0].status == "interrupted");
    CHECK(runs[1].status == "succeeded");
    CHECK(runs[1].started_ms >= now + 2000);  // not before the silent worker's lease ran out
    CHECK(store->lease("gen").value() == std::nullopt);
}
