// The real salesforce plugin over HTTP against the Salesforce emulator on 127.0.0.1,
// loaded through the real loader and driven by the real pipeline.
#include <httplib.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <regex>
#include <thread>

#include "catalog.h"
#include "emulator.h"
#include "pipeline.h"
#include "module_runner.h"
#include "test_support.h"

using namespace crmsync;
using testing::TempDir;
using testing::write_file;

namespace {

const char* kKeySchema = R"({"Task": {"fields": {"CrmSync_Key__c": {"type": "string", "length": 255, "external_id": true}}},
                             "Event": {"fields": {"CrmSync_Key__c": {"type": "string", "length": 255, "external_id": true}}}})";

struct KeyPair {
    std::string private_pem, public_pem;
};

KeyPair generate_key() {
    EVP_PKEY* key = EVP_RSA_gen(2048);
    BIO* priv = BIO_new(BIO_s_mem());
    BIO* pub = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(priv, key, nullptr, nullptr, 0, nullptr, nullptr);
    PEM_write_bio_PUBKEY(pub, key);
    auto read = [](BIO* b) {
        char* data = nullptr;
        long n = BIO_get_mem_data(b, &data);
        return std::string(data, static_cast<size_t>(n));
    };
    KeyPair kp{read(priv), read(pub)};
    BIO_free(priv);
    BIO_free(pub);
    EVP_PKEY_free(key);
    return kp;
}

const KeyPair& key_pair() {
    static KeyPair kp = generate_key();
    return kp;
}

struct Org {
    TempDir home;
    testing::ModuleRunner runner{home.str()};
    std::unique_ptr<sfemu::Emulator> sf;

    // The org's clock: the system's, or a fixed instant while `frozen_ms` is set.
    std::shared_ptr<std::atomic<int64_t>> frozen_ms = std::make_shared<std::atomic<int64_t>>(0);

    explicit Org(int64_t daily_limit = 1'000'000, const std::string& schema = kKeySchema) {
        sfemu::Settings s;
        s.now_ms = [frozen = frozen_ms] {
            if (int64_t at = frozen->load()) return at;
            using namespace std::chrono;
            return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
        };
        s.database = home / "salesforce.db";
        s.schema = json::parse(schema).as_object();
        s.daily_api_limit = daily_limit;
        s.jwt_public_key_pem = key_pair().public_pem;
        sf = std::make_unique<sfemu::Emulator>(s);
        sf->start();
        write_file(home / "secrets/client_id", "test-client-id");
        write_file(home / "secrets/client_secret", "test-client-secret");
        write_file(home / "secrets/refresh_token", "test-refresh-token");
        write_file(home / "secrets/private_key.pem", key_pair().private_pem);
        connection("client_credentials");
    }
    void connection(const std::string& auth, const std::string& secret_file = "client_secret", const std::string& bulk = "auto") {
        write_file(home / "manifests/crm.json",
                   R"({"connection": "sf", "plugin": {"id": "salesforce", "version": "^1.0"}, "bulk": {"mode": ")" + bulk + R"("},
                       "config": {"login_url": ")" +
                       sf->base_url() + R"(", "auth": ")" + auth + R"(", "username": "admin@crmsync.mock", "timeout_ms": 15000},
                       "credentials": {"client_id": {"file": "../secrets/client_id"}, "client_secret": {"file": "../secrets/)" +
                       secret_file + R"("},
                                       "refresh_token": {"file": "../secrets/refresh_token"}, "private_key": {"file": "../secrets/private_key.pem"}}})");
    }
    void module(const std::string& config) {
        write_file(
            home / "manifests/gen.json",
            R"({"module": "gen", "plugin": {"id": "test-source"}, "crm": "sf", "retry": {"base_ms": 20, "cap_ms": 200, "max_attempts": 8},
                       "config": )" +
                config + "}");
    }
    RunReport run(bool full = false) {
        RunOptions options;
        options.full = full;
        return runner.run("gen", options);
    }
    // Authenticates a connection instance the way every command does.
    Outcome login(std::unique_ptr<PluginInstance>& out) {
        Catalog catalog(runner.environment(), runner.quiet, runner.clock);
        auto crm = catalog.instantiate_connection("sf");
        REQUIRE(crm);
        out = std::move(crm.value());
        auto credentials = resolve_credentials(catalog.manifests().connection("sf")->credentials);
        REQUIRE(credentials);
        return out->authenticate(*credentials);
    }
    int64_t count(const std::string& soql) {
        return sf->with_engine([&](mockcrm::Engine& e) { return e.query(soql).total; });
    }
    // Tasks that share a key with another: 0 when everything landed once.
    int64_t duplicate_tasks() {
        return sf->with_engine([](mockcrm::Engine& e) {
            return e.database().execAndGet("SELECT COUNT(*) - COUNT(DISTINCT CrmSync_Key__c) FROM Task").getInt64();
        });
    }
};

}  // namespace

TEST_CASE("salesforce: each OAuth grant logs in") {
    Org org;
    for (const char* auth : {"client_credentials", "refresh_token", "jwt_bearer"}) {
        org.connection(auth);
        std::unique_ptr<PluginInstance> crm;
        auto outcome = org.login(crm);
        INFO(auth << ": " << outcome.message);
        CHECK(outcome.ok());
        std::vector<json::value> me;
        REQUIRE(crm->fetch(json::object{{"type", "whoami"}},
                           [&](json::value&& v) {
                               me.push_back(v);
                               return int32_t{0};
                           })
                    .ok());
        REQUIRE(me.size() == 1);
        CHECK(me[0].at("record").at("Username") == "admin@crmsync.mock");
    }
    CHECK(org.sf->calls("token") == 3);
}

TEST_CASE("salesforce: bad credentials surface the OAuth error's text and never the secret") {
    Org org;
    write_file(org.home / "secrets/wrong_secret", "not-the-secret-42");
    org.connection("client_credentials", "wrong_secret");
    std::unique_ptr<PluginInstance> crm;
    auto bad_secret = org.login(crm);
    CHECK(bad_secret.status == CRMSYNC_STATUS_AUTH_FAILED);
    CHECK_THAT(bad_secret.message, Catch::Contains("invalid_client") && !Catch::Contains("not-the-secret-42"));

    write_file(org.home / "secrets/refresh_token", "stale-token-99");
    org.connection("refresh_token");
    auto bad_refresh = org.login(crm);
    CHECK_THAT(bad_refresh.message, Catch::Contains("invalid_grant") && Catch::Contains("expired access/refresh token") &&
                                        !Catch::Contains("stale-token-99"));

    write_file(org.home / "secrets/private_key.pem", generate_key().private_pem);  // a key Salesforce does not know
    org.connection("jwt_bearer");
    auto bad_jwt = org.login(crm);
    CHECK_THAT(bad_jwt.message, Catch::Contains("invalid_grant") && Catch::Contains("invalid assertion"));
}

TEST_CASE("salesforce: collections upsert lands every good record once and reports the bad one") {
    Org org;
    org.module(R"({"count": 450, "bad_every": 100})");
    auto report = org.run();
    CHECK(report.counts.created == 445);
    CHECK(report.counts.failed == 5);  // records 0, 100, 200, 300, 400 carry a field the org lacks
    CHECK(org.count("SELECT COUNT() FROM Task") == 445);
    CHECK(org.sf->calls("collections") == 3);  // 445 records in calls of at most 200

    // Replayed in full: nothing new, nothing twice, no write spent.
    auto again = org.run(true);
    CHECK(again.counts.unchanged == 445);
    CHECK(org.sf->calls("collections") == 3);
}

TEST_CASE("salesforce: a query past 2,000 rows follows nextRecordsUrl to the end") {
    Org org;
    org.module(R"({"count": 2600})");
    REQUIRE(org.run().counts.created == 2600);
    std::unique_ptr<PluginInstance> crm;
    REQUIRE(org.login(crm).ok());
    int64_t rows = 0;
    REQUIRE(crm->fetch(json::object{{"type", "query"}, {"soql", "SELECT Id, Subject FROM Task"}},
                       [&](json::value&&) {
                           ++rows;
                           return int32_t{0};
                       })
                .ok());
    CHECK(rows == 2600);
    CHECK(org.sf->calls("query") >= 2);
}

TEST_CASE("salesforce: a token that expires mid-run is renewed once and the run finishes") {
    Org org;
    sfemu::Faults faults;
    faults.token_ttl_s = 1;
    org.sf->set_faults(faults);
    org.module(R"({"count": 1000, "page_delay_ms": 400})");
    auto report = org.run();
    CHECK(report.status == RunStatus::succeeded);
    CHECK(org.count("SELECT COUNT() FROM Task") == 1000);
    CHECK(org.sf->calls("token") >= 2);
}

TEST_CASE("salesforce: 10% 503s and lock errors still land everything exactly once") {
    Org org;
    sfemu::Faults faults;
    faults.error_503_rate = 0.10;
    faults.lock_rate = 0.10;
    org.sf->set_faults(faults);
    org.module(R"({"count": 2000})");
    auto report = org.run();
    INFO(report.message);
    CHECK(report.status == RunStatus::succeeded);
    CHECK(report.counts.retries > 0);
    org.sf->set_faults({});
    CHECK(org.count("SELECT COUNT() FROM Task") == 2000);
    CHECK(org.duplicate_tasks() == 0);
}

TEST_CASE("salesforce: a run's API calls are its own, not those another integration spends on the org meanwhile") {
    Org org;
    org.module(R"({"count": 1200, "page_delay_ms": 40})");
    // Another integration (or another crmsync worker) spends the org's budget all through the
    // run: every response's Sforce-Limit-Info reading holds its calls too.
    std::atomic<bool> done{false};
    std::atomic<int64_t> spent{0};
    std::thread other([&] {
        while (!done.load()) {
            org.sf->with_engine([&](mockcrm::Engine& e) {
                e.spend_api_call("query");
                ++spent;  // under the emulator's lock, as the readings below are taken
            });
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    });
    while (spent.load() == 0) std::this_thread::yield();
    // Both readings at once under the emulator's lock: what the org spent, and how much of it
    // was the other integration's.
    auto reading = [&] {
        return org.sf->with_engine([&](mockcrm::Engine& e) { return std::pair{e.api_used_today(), spent.load()}; });
    };
    const auto [used_before, spent_before] = reading();
    auto report = org.run();
    done = true;
    other.join();
    const auto [used_after, spent_after] = reading();
    INFO(report.message);
    REQUIRE(report.status == RunStatus::succeeded);
    REQUIRE(report.counts.created == 1200);
    const int64_t others = spent_after - spent_before;
    const int64_t own = used_after - used_before - others;
    INFO("the run's own calls " << own << ", the other integration's " << others);
    CHECK(others > own);  // the readings alone would have counted many more than the run's own
    CHECK(report.counts.api_calls == own);
}

TEST_CASE("salesforce: the plugin isolated and sandboxed signs in, retries and lands everything once through its runner") {
    Org org;
    // The connection and the module both in runner processes: every HTTP request, secret and
    // clock reading the plugins make crosses to the host and back.
    for (const char* file : {"manifests/crm.json", "manifests/gen.json"}) {
        if (std::string(file) == "manifests/gen.json") org.module(R"({"count": 1500})");
        auto manifest = testing::read_file(org.home / file);
        manifest.insert(manifest.rfind('}'), R"(, "isolation": "process")");
        write_file(org.home / file, manifest);
    }
    sfemu::Faults faults;
    faults.error_503_rate = 0.10;
    faults.lock_rate = 0.10;
    faults.token_ttl_s = 1;
    org.sf->set_faults(faults);
    auto report = org.run();
    INFO(report.message);
    CHECK(report.status == RunStatus::succeeded);
    CHECK(report.counts.retries > 0);
    org.sf->set_faults({});
    CHECK(org.count("SELECT COUNT() FROM Task") == 1500);
    CHECK(org.duplicate_tasks() == 0);
}

TEST_CASE("salesforce: the daily limit reached mid-run stops cleanly, and a rerun finishes with nothing twice") {
    Org org(60);
    org.connection("client_credentials", "client_secret", "never");
    org.module(R"({"count": 20000})");
    auto first = org.run();
    CHECK(first.status == RunStatus::stopped);
    int64_t landed = org.count("SELECT COUNT() FROM Task");
    CHECK(landed > 0);
    CHECK(landed < 20000);
    // The next day's budget: the emulator's limit rises; the rest lands.
    org.sf->with_engine([](mockcrm::Engine& e) {
        e.database().exec("DELETE FROM _api_usage");
        return 0;
    });
    org.runner.a_day_passes_for_the_api_budget();
    auto rest = org.run();
    CHECK(rest.status != RunStatus::failed);
    auto total = org.count("SELECT COUNT() FROM Task");
    CHECK(total > landed);
    CHECK(org.duplicate_tasks() == 0);
}

TEST_CASE("salesforce: services resolve owners and contacts through SOQL and SOSL") {
    Org org;
    org.sf->with_engine([](mockcrm::Engine& e) {
        e.seed(json::parse(R"({"Contact": [{"LastName": "Tanaka", "Email": "tanaka@customer.jp", "Phone": "03-1234-5678"}]})")
                   .as_object());
        return 0;
    });
    write_file(
        org.home / "ops.jsonl",
        R"({"id": "1", "ops": [{"object": "Event", "action": "upsert", "key": "e1", "fields": {"Subject": "By email", "StartDateTime": "2026-11-20T01:00:00Z", "DurationInMinutes": 10}, "owner": {"email": "ADMIN@crmsync.mock"}, "related": {"emails": ["Tanaka@Customer.jp"]}}]}
{"id": "2", "ops": [{"object": "Event", "action": "upsert", "key": "e2", "fields": {"Subject": "By phone", "StartDateTime": "2026-11-20T01:00:00Z", "DurationInMinutes": 10}, "related": {"phones": ["+81 3 1234 5678"]}}]}
)");
    write_file(org.home / "manifests/gen.json",
               R"({"module": "gen", "plugin": {"id": "test-ops"}, "crm": "sf", "services": {"default_country_code": "81"},
                   "config": {"file": ")" +
                   (org.home / "ops.jsonl") + R"("}})");
    auto report = org.run();
    CHECK(report.counts.created == 2);
    auto who = [&](const std::string& key) {
        return org.sf->with_engine([&](mockcrm::Engine& e) {
            return e.query("SELECT WhoId FROM Event WHERE CrmSync_Key__c = '" + key + "'").rows.at(0).at("WhoId");
        });
    };
    CHECK(who("e1") == who("e2"));
    CHECK_FALSE(who("e1").is_null());
    CHECK(org.sf->calls("search") == 1);
}

TEST_CASE("salesforce: check against the emulator reports a missing external-id field and a missing field") {
    Org org(1'000'000, R"({"Event": {"fields": {"CrmSync_Key__c": {"type": "string", "external_id": true}}}})");
    write_file(org.home / "in/a.jsonl", "{}\n");
    write_file(org.home / "manifests/gen.json",
               R"({"module": "gen", "plugin": {"id": "example-jsonl"}, "crm": "sf",
                   "config": {"folder": ")" +
                   (org.home / "in") + R"(", "object": "Task", "fields": {"Subject": "s", "Mood__c": "m"}}})");
    auto check = testing::run_command({CRMSYNC_BIN, "check", "gen", "--home", org.home.str()},
                                      {std::string("CRMSYNC_PLUGIN_PATH=") + CRMSYNC_PLUGIN_DIR});
    CHECK(check.status == 2);
    CHECK_THAT(check.out, Catch::Contains("salesforce: authenticated") && Catch::Contains("Task has no field CrmSync_Key__c") &&
                              Catch::Contains("Task.Mood__c does not exist"));
}

TEST_CASE("salesforce: 10,000 upserts load through Bulk API 2.0, lock errors retried, each record once") {
    Org org;
    sfemu::Faults faults;
    faults.lock_rate = 0.02;
    org.sf->set_faults(faults);
    org.module(R"({"count": 10000})");
    auto report = org.run();
    INFO(report.message);
    CHECK(report.status == RunStatus::succeeded);
    CHECK(report.counts.created == 10000);
    CHECK(report.counts.retries > 0);
    CHECK(org.count("SELECT COUNT() FROM Task") == 10000);
    CHECK(org.sf->calls("collections") == 0);
    CHECK(org.sf->calls("bulk") >= 6);  // create, upload, close, polls, two result files
    org.sf->set_faults({});
    auto again = org.run(true);
    CHECK(again.counts.unchanged == 10000);
}

TEST_CASE("salesforce: a batch relating hundreds of distinct emails splits its SOQL to fit Salesforce's URL limit") {
    Org org;
    json::array contacts;
    std::string lines;
    for (int i = 0; i < 200; ++i) {
        std::string email = "customer-with-a-long-address-" + std::to_string(i) + "@a-customer-domain.example.co.jp";
        contacts.push_back(json::object{{"LastName", "C" + std::to_string(i)}, {"Email", email}});
        lines +=
            json::serialize(json::object{
                {"id", std::to_string(i)},
                {"ops", json::array{json::object{
                            {"object", "Event"},
                            {"action", "upsert"},
                            {"key", "e" + std::to_string(i)},
                            {"fields",
                             json::object{{"Subject", "x"}, {"StartDateTime", "2026-11-20T01:00:00Z"}, {"DurationInMinutes", 5}}},
                            {"related", json::object{{"emails", json::array{email}}}}}}}}) +
            "\n";
    }
    org.sf->with_engine([&](mockcrm::Engine& e) {
        e.seed(json::object{{"Contact", contacts}});
        return 0;
    });
    write_file(org.home / "ops.jsonl", lines);
    write_file(org.home / "manifests/gen.json",
               R"({"module": "gen", "plugin": {"id": "test-ops"}, "crm": "sf", "config": {"file": ")" + (org.home / "ops.jsonl") +
                   R"("}})");
    auto report = org.run();
    CHECK(report.counts.created == 200);
    CHECK(report.counts.extra.at("related_contacts") == 200);
    CHECK(org.count("SELECT COUNT() FROM Event WHERE WhoId != null") == 200);
    // One statement per object would not have fit a subrequest's URL (the emulator refuses those).
    CHECK(org.sf->calls("composite-query") > 2);
}

TEST_CASE("salesforce: responses slower than the client timeout are retried and everything lands once") {
    Org org;
    write_file(org.home / "manifests/crm.json",
               R"({"connection": "sf", "plugin": {"id": "salesforce"}, "bulk": {"mode": "never"},
                   "config": {"login_url": ")" +
                   org.sf->base_url() + R"(", "auth": "client_credentials", "timeout_ms": 2500},
                   "credentials": {"client_id": {"file": "../secrets/client_id"}, "client_secret": {"file": "../secrets/client_secret"}}})");
    sfemu::Faults faults;
    faults.slow_ms = 4000;  // past the 2.5 s timeout, with room for slow sanitizer builds
    faults.slow_rate = 0.2;
    org.sf->set_faults(faults);
    org.module(R"({"count": 600})");
    auto report = org.run();
    INFO(report.message);
    CHECK(report.status == RunStatus::succeeded);
    org.sf->set_faults({});
    CHECK(org.count("SELECT COUNT() FROM Task") == 600);
    CHECK(org.duplicate_tasks() == 0);
}

TEST_CASE("salesforce: with the integration licences used up, owners fall back to the connection's user") {
    Org org;
    org.sf->with_engine([](mockcrm::Engine& e) {
        e.database().exec("UPDATE UserLicense SET TotalLicenses = 0 WHERE Name = 'Salesforce Integration'");
        return 0;
    });
    write_file(
        org.home / "ops.jsonl",
        R"({"id": "1", "ops": [{"object": "Event", "action": "upsert", "key": "o1", "fields": {"Subject": "x", "StartDateTime": "2026-11-20T01:00:00Z", "DurationInMinutes": 5}, "owner": {"email": "nobody@example.jp", "if_missing": ["create_integration_user", "connection_user"]}}]})"
        "\n");
    write_file(org.home / "manifests/gen.json",
               R"({"module": "gen", "plugin": {"id": "test-ops"}, "crm": "sf", "config": {"file": ")" + (org.home / "ops.jsonl") +
                   R"("}})");
    auto report = org.run();
    CHECK(report.counts.created == 1);
    CHECK(report.counts.extra.at("owner_connection_user_fallbacks") == 1);
    auto owner = org.sf->with_engine(
        [](mockcrm::Engine& e) { return e.query("SELECT Owner.Username FROM Event").rows.at(0).at("Owner"); });
    CHECK(owner.at("Username") == "admin@crmsync.mock");
}

TEST_CASE("salesforce: create_missing adds a value to a restricted custom picklist through the Tooling API") {
    Org org(1'000'000, R"({"Event": {"fields": {"CrmSync_Key__c": {"type": "string", "length": 255, "external_id": true},
                              "Channel__c": {"type": "picklist", "length": 40, "restricted": true, "values": ["Email"]}}}})");
    auto op = [](const std::string& key, const std::string& field, const std::string& value) {
        return R"({"id": ")" + key + R"(", "ops": [{"object": "Event", "action": "upsert", "key": ")" + key +
               R"(", "fields": {"Subject": "x", "StartDateTime": "2026-11-20T01:00:00Z", "DurationInMinutes": 5, ")" + field +
               R"(": ")" + value + R"("}, "picklists": {")" + field + R"(": "create_missing"}}]})";
    };
    write_file(org.home / "ops.jsonl", op("custom", "Channel__c", "LINE") + "\n" + op("custom2", "Channel__c", "LINE") + "\n" +
                                           op("standard", "Type", "メール") + "\n");
    write_file(org.home / "manifests/gen.json",
               R"({"module": "gen", "plugin": {"id": "test-ops"}, "crm": "sf", "config": {"file": ")" + (org.home / "ops.jsonl") +
                   R"("}})");
    auto report = org.run();
    CHECK(report.counts.created == 2);
    CHECK(report.counts.failed == 1);
    CHECK(org.sf->calls("tooling") == 2);  // looked up and changed once, not per record
    auto values = org.sf->with_engine([](mockcrm::Engine& e) { return e.picklist_values("Event", "Channel__c"); });
    CHECK(std::count(values.begin(), values.end(), "LINE") == 1);
    auto errors = open_sqlite_store(org.home / "var/state.db").value()->errors(std::nullopt, 0);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].code == "PICKLIST_VALUE_NOT_ADDED");
    CHECK_THAT(errors[0].message, Catch::Contains("restricted standard picklist") && Catch::Contains("in Setup"));
}

TEST_CASE("salesforce: helpdesk-tickets events land as Events through the real plugin") {
    // As in most orgs, Event.Type is an unrestricted standard picklist: new channel names are taken as they are.
    Org org(1'000'000, R"({"Event": {"fields": {"CrmSync_Key__c": {"type": "string", "length": 255, "external_id": true},
                                                "Type": {"restricted": false}}}})");
    org.sf->with_engine([](mockcrm::Engine& e) {
        e.seed(json::parse(R"({"Contact": [{"LastName": "Tanaka", "Email": "tanaka@customer.jp", "Phone": "03-1234-5678"}],
                               "Lead": [{"LastName": "Sato", "Company": "Fuji", "Phone": "045-111-2222"}]})")
                   .as_object());
        return 0;
    });
    write_file(
        org.home / "events/a.jsonl",
        R"({"event_id": "m1", "channel": "mail", "action": "sent", "subject": "ご請求について", "agent": {"email": "admin@crmsync.mock"}, "mail": {"draft_saved_at": "2026-11-20T10:00:00+09:00", "sent_at": "2026-11-20T10:07:40+09:00", "to": ["tanaka@customer.jp"], "body": "本文"}}
{"event_id": "c1", "channel": "call", "action": "memo_recorded", "subject": "折り返し", "agent": {"email": "new.agent@inbox.example"}, "call": {"call_ended": true, "memo_recorded": true, "started_at": "2026-11-20T06:00:00Z", "ended_at": "2026-11-20T06:12:00Z", "number": "+81 45 111 2222"}}
{"event_id": "x1", "channel": "chat_widget", "action": "closed", "subject": "", "agent": {"email": "admin@crmsync.mock"}, "chat": {"sent": false}}
)");
    write_file(org.home / "manifests/gen.json",
               R"({"module": "gen", "plugin": {"id": "helpdesk-tickets"}, "crm": "sf", "services": {"default_country_code": "81"},
                   "config": {"folder": ")" +
                   (org.home / "events") + R"("}})");
    auto report = org.run();
    INFO(report.message);
    CHECK(report.counts.created == 2);
    CHECK(report.counts.ignored == 1);
    auto rows = org.sf->with_engine([](mockcrm::Engine& e) {
        return e
            .query("SELECT CrmSync_Key__c, Subject, Type, WhoId, Owner.Username, EndDateTime FROM Event ORDER BY CrmSync_Key__c")
            .rows;
    });
    REQUIRE(rows.size() == 2);
    CHECK(rows[1].at("Subject") == "【メール】ご請求について");
    CHECK(rows[1].at("Type") == "メール");
    CHECK(rows[1].at("EndDateTime") == "2026-11-20T01:07:40.000+0000");
    CHECK(rows[0].at("Type") == "通話メモ");
    CHECK(rows[0].at("Owner").at("Username") == "new.agent@inbox.example.crmsync");  // a new integration user
    auto who = [&](const std::string& soql) {
        return org.sf->with_engine([&](mockcrm::Engine& e) { return e.query(soql).rows.at(0).at("Id"); });
    };
    CHECK(rows[1].at("WhoId") == who("SELECT Id FROM Contact WHERE LastName = 'Tanaka'"));
    CHECK(rows[0].at("WhoId") == who("SELECT Id FROM Lead WHERE LastName = 'Sato'"));  // by phone, a lead alone
}

TEST_CASE("salesforce: a user create answered 500 after it was applied is looked up, never sent again blind") {
    Org org;
    std::string ops;
    for (int i = 1; i <= 3; ++i) {
        std::string n = std::to_string(i);
        ops += R"({"id": ")" + n + R"(", "ops": [{"object": "Event", "action": "upsert", "key": "a)" + n +
               R"(", "fields": {"Subject": "call )" + n +
               R"(", "StartDateTime": "2026-11-20T01:00:00Z", "DurationInMinutes": 5}, "owner": {"email": "agent)" + n +
               R"(@inbox.example", "if_missing": ["create_integration_user", "error"]}}]})" + "\n";
    }
    write_file(org.home / "ops.jsonl", ops);
    write_file(
        org.home / "manifests/gen.json",
        R"({"module": "gen", "plugin": {"id": "test-ops"}, "crm": "sf", "retry": {"base_ms": 5, "cap_ms": 20, "max_attempts": 4},
                   "config": {"file": ")" +
            (org.home / "ops.jsonl") + R"("}})");
    sfemu::Faults faults;
    faults.error_after_apply_rate = 1.0;  // every write lands, and every answer is a 500
    org.sf->set_faults(faults);
    auto first = org.run();
    CHECK(first.status == RunStatus::failed);  // the Event writes never got an answer: unreachable, nothing committed
    CHECK(first.unreachable);
    CHECK(first.counts.failed == 0);
    const char* users = "SELECT COUNT() FROM User WHERE Username LIKE '%.crmsync%'";
    CHECK(org.count(users) == 3);  // one per agent, however often the answer was lost
    CHECK(first.counts.extra.at("creates_found_applied").as_int64() == 3);

    org.sf->set_faults({});
    auto second = org.run();
    CHECK(second.status == RunStatus::succeeded);
    CHECK(org.count("SELECT COUNT() FROM Event") == 3);
    CHECK(org.count(users) == 3);
}

TEST_CASE(
    "salesforce: under every fault at once, with calls in flight together, 10,000 records each land exactly once and no error "
    "stays open") {
    // 10% 503s, 5% lock errors, tokens expiring every 2 s, 3% of writes answered 500 after
    // they were applied, 1% of answers slower than the client's timeout, and the day's API
    // budget used up once inside the lookups and once inside the write.
    const bool small = std::getenv("CRMSYNC_TEST_SCALE") && std::string(std::getenv("CRMSYNC_TEST_SCALE")) == "small";
    const int n = small ? 1'000 : 10'000;
    Org org;
    org.sf->with_engine([](mockcrm::Engine& e) {
        json::array contacts;
        for (int c = 0; c < 10'000; c += 50)
            contacts.push_back(
                json::object{{"LastName", "C" + std::to_string(c)}, {"Email", "c" + std::to_string(c) + "@customer.example"}});
        e.seed(json::object{{"Contact", contacts}});
        return 0;
    });
    org.connection("client_credentials", "client_secret", "never");  // sObject Collections, 200 a call
    write_file(org.home / "manifests/crm.json",
               testing::read_file(org.home / "manifests/crm.json")
                   .replace(testing::read_file(org.home / "manifests/crm.json").find("\"timeout_ms\": 15000"), 19,
                            "\"timeout_ms\": 1000"));
    std::string ops;
    for (int i = 0; i < n; ++i) {
        std::string k = std::to_string(i);
        ops += R"({"id": ")" + k + R"(", "ops": [{"object": "Event", "action": "upsert", "key": "f)" + k +
               R"(", "fields": {"Subject": "event )" + k +
               R"(", "StartDateTime": "2026-11-20T01:00:00Z", "DurationInMinutes": 5}, )" +
               R"("owner": {"email": "admin@crmsync.mock"}, "related": {"emails": ["c)" + k + R"(@customer.example"]}}]})" +
               "\n";  // a lookup in every batch
    }
    write_file(org.home / "ops.jsonl", ops);
    write_file(
        org.home / "manifests/gen.json",
        R"({"module": "gen", "plugin": {"id": "test-ops"}, "crm": "sf", "retry": {"base_ms": 5, "cap_ms": 50, "max_attempts": 10},
                   "failed_records": {"backoff": "0s"}, "config": {"file": ")" +
            (org.home / "ops.jsonl") + R"("}})");
    sfemu::Faults faults;
    faults.error_503_rate = 0.10;
    faults.lock_rate = 0.05;
    faults.token_ttl_s = 2;
    faults.error_after_apply_rate = 0.03;
    faults.slow_ms = 1500;
    faults.slow_rate = 0.01;
    faults.budget_gone_on = "composite";
    faults.budget_gone_at = org.sf->calls("composite") + 1;  // the first batch's Contact and Lead lookup
    org.sf->set_faults(faults);

    std::vector<std::string> stops;
    std::string history;
    int64_t retries = 0;
    bool write_fault_set = false;
    RunReport last;
    for (int run = 0; run < 40; ++run) {
        last = org.run();
        history += "run " + std::to_string(run) + ": " + std::string(run_status_name(last.status)) + " " + last.message + "\n";
        retries += last.counts.retries;
        if (last.status == RunStatus::succeeded && last.counts.fetched == 0 && last.counts.retried == 0) break;
        if (last.status == RunStatus::stopped) {
            stops.push_back(last.message);
            // The next day: the budget is back. Then it runs out once more, inside a write.
            org.sf->with_engine([](mockcrm::Engine& e) {
                e.database().exec("DELETE FROM _api_usage");
                return 0;
            });
            org.runner.a_day_passes_for_the_api_budget();
            if (!write_fault_set) {
                faults.budget_gone_on = "collections";
                faults.budget_gone_at = org.sf->calls("collections") + 3;
                write_fault_set = true;
            } else {
                faults.budget_gone_on.clear();
            }
            org.sf->set_faults(faults);
        }
    }
    org.sf->set_faults({});
    INFO(history);
    CHECK(retries > 0);
    CHECK(org.sf->most_at_once() >= 2);  // the writes and look-ups went out several at once
    CHECK(last.status == RunStatus::succeeded);
    REQUIRE(stops.size() >= 2);
    CHECK_THAT(stops[0], Catch::Contains("lookup") && Catch::Contains("REQUEST_LIMIT_EXCEEDED"));
    CHECK_THAT(stops[1], Catch::Contains("CRM write") && Catch::Contains("REQUEST_LIMIT_EXCEEDED"));
    CHECK(org.count("SELECT COUNT() FROM Event") == n);
    CHECK(org.sf->with_engine([](mockcrm::Engine& e) {
        return e.database().execAndGet("SELECT COUNT(*) - COUNT(DISTINCT CrmSync_Key__c) FROM Event").getInt64();
    }) == 0);
    auto store = open_sqlite_store(org.home / "var/state.db");
    REQUIRE(store);
    CHECK(store.value()->errors(std::string("gen"), 0).empty());  // nothing left open
    CHECK(store.value()->all_links("gen", std::nullopt, 2 * n).size() == static_cast<size_t>(n));
}

namespace {

// Sets one top-level key of the connection manifest.
void set_connection_key(Org& org, const std::string& key, json::value value) {
    auto manifest = json::parse(testing::read_file(org.home / "manifests/crm.json")).as_object();
    manifest[key] = std::move(value);
    write_file(org.home / "manifests/crm.json", json::serialize(manifest));
}

// A test-ops module "gen" writing one Event per line of `events`: {key, subject}.
void event_module(Org& org, const std::vector<std::pair<std::string, std::string>>& events, const std::string& retry) {
    std::string ops;
    for (size_t i = 0; i < events.size(); ++i)
        ops += json::serialize(json::object{
                   {"id", std::to_string(i)},
                   {"ops", json::array{json::object{{"object", "Event"},
                                                    {"action", "upsert"},
                                                    {"key", events[i].first},
                                                    {"fields", json::object{{"Subject", events[i].second},
                                                                            {"StartDateTime", "2026-11-20T01:00:00Z"},
                                                                            {"DurationInMinutes", 5}}}}}}}) +
               "\n";
    write_file(org.home / "ops.jsonl", ops);
    write_file(org.home / "manifests/gen.json", R"({"module": "gen", "plugin": {"id": "test-ops"}, "crm": "sf", "retry": )" +
                                                    retry + R"(, "config": {"file": ")" + (org.home / "ops.jsonl") + R"("}})");
}

// A run that stopped for a reason not its records' failed none and left no error open; the
// next run, the next day (the budget back), lands all `n` Events once. Answers that run.
RunReport stopped_then_complete(Org& org, const RunReport& stopped, int64_t n) {
    INFO(stopped.message);
    CHECK(stopped.status == RunStatus::stopped);
    CHECK(stopped.counts.failed == 0);
    auto store = open_sqlite_store(org.home / "var/state.db");
    REQUIRE(store);
    CHECK(store.value()->errors(std::string("gen"), 0).empty());
    org.sf->with_engine([](mockcrm::Engine& e) {
        e.database().exec("DELETE FROM _api_usage");
        return 0;
    });
    org.runner.a_day_passes_for_the_api_budget();
    auto next = org.run();
    CHECK(next.status == RunStatus::succeeded);
    CHECK(org.count("SELECT COUNT() FROM Event") == n);
    CHECK(store.value()->errors(std::string("gen"), 0).empty());
    return next;
}

}  // namespace

TEST_CASE("salesforce: a batch's writes go out at once, never more than max_parallel_requests, a key written twice in order") {
    for (int width : {1, 3}) {
        INFO("max_parallel_requests " << width);
        const auto started = std::chrono::steady_clock::now();
        Org org;
        org.connection("client_credentials", "client_secret", "never");
        set_connection_key(org, "max_parallel_requests", width);
        // 1,200 Events; the 1,101st writes the key of the 801st again, in the same page (of
        // 200 a call for each call at once) but in another call: it must land after it.
        std::vector<std::pair<std::string, std::string>> events;
        for (int i = 0; i < 1200; ++i) events.emplace_back("e" + std::to_string(i), "event " + std::to_string(i));
        events[1100] = {"e800", "event 800, second version"};
        event_module(org, events, R"({"base_ms": 20, "cap_ms": 200, "max_attempts": 8})");
        sfemu::Faults slow;  // every answer takes a while, so calls made at once are seen at once
        slow.slow_ms = 100;
        slow.slow_rate = 1.0;
        org.sf->set_faults(slow);
        auto report = org.run();
        org.sf->set_faults({});
        INFO(report.message);
        CHECK(report.status == RunStatus::succeeded);
        CHECK(report.counts.created == 1199);
        CHECK(org.count("SELECT COUNT() FROM Event") == 1199);
        CHECK(org.sf->with_engine([](mockcrm::Engine& e) {
            return e.database().execAndGet("SELECT Subject FROM Event WHERE CrmSync_Key__c = 'e800'").getString();
        }) == "event 800, second version");
        CHECK(org.sf->most_at_once() <= width);
        if (width > 1) CHECK(org.sf->most_at_once() >= 2);
        // What the bench reads of the emulator: how long its engine's lock was held — one
        // holder at a time, so never more than the time since it started.
        httplib::Client client(org.sf->base_url());
        auto stats = client.Get("/emulator/stats");
        REQUIRE(stats);
        const double held = json::parse(stats->body).at("engine_held_seconds").to_number<double>();
        const double since_start = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        CHECK(held > 0);
        CHECK(held < since_start);
    }
}

TEST_CASE("salesforce: pages read ahead ask their look-ups early, and a run over unchanged records still asks none") {
    Org org;
    org.connection("client_credentials", "client_secret", "never");
    set_connection_key(org, "max_parallel_requests", 2);  // pages of 400: a 1,000-record run reads two ahead
    org.sf->with_engine([](mockcrm::Engine& e) {
        json::array contacts;
        for (int c = 0; c < 1000; ++c)
            contacts.push_back(
                json::object{{"LastName", "C" + std::to_string(c)}, {"Email", "a" + std::to_string(c) + "@x.example"}});
        e.seed(json::object{{"Contact", contacts}});
        return 0;
    });
    std::string ops;
    for (int i = 0; i < 1000; ++i)
        ops += json::serialize(json::object{
                   {"id", std::to_string(i)},
                   {"ops", json::array{json::object{
                               {"object", "Event"},
                               {"action", "upsert"},
                               {"key", "la" + std::to_string(i)},
                               {"fields", json::object{{"Subject", "event " + std::to_string(i)},
                                                       {"StartDateTime", "2026-11-20T01:00:00Z"},
                                                       {"DurationInMinutes", 5}}},
                               {"related", json::object{{"emails", json::array{"a" + std::to_string(i) + "@x.example"}}}}}}}}) +
               "\n";
    write_file(org.home / "ops.jsonl", ops);
    write_file(org.home / "manifests/gen.json",
               R"({"module": "gen", "plugin": {"id": "test-ops"}, "crm": "sf", "config": {"file": ")" + (org.home / "ops.jsonl") +
                   R"("}})");
    auto first = org.run();
    INFO(first.message);
    REQUIRE(first.status == RunStatus::succeeded);
    CHECK(first.counts.created == 1000);
    CHECK(org.sf->with_engine([](mockcrm::Engine& e) {
        return e.database().execAndGet("SELECT COUNT(*) FROM Event WHERE WhoId IS NULL OR WhoId = ''").getInt64();
    }) == 0);  // every Event found its Contact, whichever turn asked for it
    const auto lookups = org.sf->calls("composite"), writes = org.sf->calls("collections");
    auto again = org.run(true);  // everything read again, nothing changed
    CHECK(again.status == RunStatus::succeeded);
    CHECK(again.counts.unchanged == 1000);
    CHECK(org.sf->calls("composite") == lookups);  // no look-up for an unchanged record, ahead or not
    CHECK(org.sf->calls("collections") == writes);
}

TEST_CASE("salesforce: a write call that hits the daily limit beside one with lock errors fails no record of either") {
    Org org;
    org.connection("client_credentials", "client_secret", "never");
    set_connection_key(org, "max_parallel_requests", 4);
    std::vector<std::pair<std::string, std::string>> events;
    for (int i = 0; i < 800; ++i) events.emplace_back("b" + std::to_string(i), "event " + std::to_string(i));
    event_module(org, events, R"({"base_ms": 5, "cap_ms": 20, "max_attempts": 5})");
    sfemu::Faults faults;
    faults.lock_rate = 0.5;  // the calls that get through: half their records locked
    faults.slow_ms = 200;    // all four calls in flight together...
    faults.slow_rate = 1.0;
    faults.budget_gone_on = "collections";  // ...and the day's budget gone at the second of them
    faults.budget_gone_at = org.sf->calls("collections") + 2;
    org.sf->set_faults(faults);
    auto stopped = org.run();
    org.sf->set_faults({});
    stopped_then_complete(org, stopped, 800);
}

TEST_CASE("salesforce: a run stopped while it waits to retry a lock error fails no record and moves no cursor") {
    Org org;
    org.connection("client_credentials", "client_secret", "never");
    std::vector<std::pair<std::string, std::string>> events;
    for (int i = 0; i < 50; ++i) events.emplace_back("w" + std::to_string(i), "event " + std::to_string(i));
    event_module(org, events, R"({"base_ms": 60000, "cap_ms": 60000, "max_attempts": 3})");
    sfemu::Faults locked;
    locked.lock_rate = 1.0;  // every record: UNABLE_TO_LOCK_ROW, which is retried after a back-off
    org.sf->set_faults(locked);
    RunReport stopped;
    std::thread run([&] { stopped = org.run(); });
    for (int waited = 0; org.sf->calls("collections") < 1 && waited < 3000; ++waited)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    org.runner.cancel = true;  // as SIGINT would, while the run waits to retry
    run.join();
    org.runner.cancel = false;
    org.sf->set_faults({});
    auto next = stopped_then_complete(org, stopped, 50);
    CHECK(next.counts.fetched == 50);
    CHECK(next.counts.created == 50);
}

TEST_CASE("salesforce: product-analytics rows land on Leads by Email and on a custom object by GUID, in few calls") {
    Org org(1'000'000, R"({"Lead": {"fields": {"WalkMe_Logins_last_30_days__c": {"type": "double"},
                                              "WalkMe_Last_Login__c": {"type": "datetime"}}},
                          "Product_User__c": {"fields": {"User_Guid__c": {"type": "string", "length": 64},
                                                         "Logins__c": {"type": "double"}}}})");
    // More matched rows than the bulk threshold (2,000), so the updates go through Bulk API 2.0.
    const int leads = 2'500, unmatched = 20;
    auto email = [](int i) { return "user-" + std::to_string(i) + "@a-customer-domain.example.com"; };
    org.sf->with_engine([&](mockcrm::Engine& e) {
        json::array list;
        for (int i = 0; i < leads; ++i)
            list.push_back(json::object{{"LastName", "L" + std::to_string(i)}, {"Company", "C"}, {"Email", email(i)}});
        for (const char* name : {"Dup1", "Dup2"})
            list.push_back(json::object{{"LastName", name}, {"Company", "C"}, {"Email", "dup@a-customer-domain.example.com"}});
        e.seed(json::object{{"Lead", list},
                            {"Product_User__c", json::array{json::object{{"Name", "Upper"}, {"User_Guid__c", "AbC-123"}},
                                                            json::object{{"Name", "Lower"}, {"User_Guid__c", "abc-123"}}}}});
        return 0;
    });
    std::string csv = "email,last_login,logins_30d\n";
    for (int i = 0; i < leads; ++i) {
        std::string e = email(i);
        if (i % 7 == 0) e[0] = 'U';  // the Email field compares case-insensitively
        csv += e + ",2026-11-20T09:00:00Z," + std::to_string(i % 40) + "\n";
    }
    csv += "dup@a-customer-domain.example.com,2026-11-20T09:00:00Z,1\n";
    for (int i = 0; i < unmatched; ++i) csv += "nobody-" + std::to_string(i) + "@elsewhere.example,2026-11-20T09:00:00Z,1\n";
    write_file(org.home / "reports/logins.csv", csv);
    write_file(org.home / "reports-guid/usage.csv", "guid,logins\nAbC-123,7\n");
    write_file(org.home / "manifests/logins.json",
               R"({"module": "logins", "plugin": {"id": "product-analytics"}, "crm": "sf", "config": {"folder": ")" +
                   org.home / "reports" +
                   R"(", "report": "Logins", "object": "Lead", "key": {"column": "email", "field": "Email"},
                   "columns": {"last_login": {"field": "WalkMe_Last_Login__c", "type": "datetime"},
                               "logins_30d": {"field": "WalkMe_Logins_last_30_days__c", "type": "number"}}}})");
    write_file(org.home / "manifests/usage.json",
               R"({"module": "usage", "plugin": {"id": "product-analytics"}, "crm": "sf", "config": {"folder": ")" +
                   org.home / "reports-guid" + R"(", "report": "Usage", "object": "Product_User__c",
                   "key": {"column": "guid", "field": "User_Guid__c", "compare": "exact"},
                   "columns": {"logins": {"field": "Logins__c", "type": "number"}}}})");

    auto report = org.runner.run("logins");
    INFO(report.message);
    CHECK(report.status == RunStatus::partial);  // the duplicate's error
    CHECK(report.counts.updated == leads);
    CHECK(report.counts.no_match == unmatched);
    CHECK(report.counts.failed == 1);
    CHECK(org.sf->calls("bulk") > 0);        // the updates by Id went as a bulk job
    CHECK(org.sf->calls("query") == 0);      // every lookup went in Composite calls...
    CHECK(org.sf->calls("composite") <= 3);  // ...of five statements each
    CHECK(org.count("SELECT COUNT() FROM Lead WHERE WalkMe_Logins_last_30_days__c = 39") == leads / 40);
    CHECK(org.count("SELECT COUNT() FROM Lead WHERE WalkMe_Last_Login__c != null") == leads);
    CHECK(org.count("SELECT COUNT() FROM Lead WHERE LastName LIKE 'Dup%' AND WalkMe_Logins_last_30_days__c != null") == 0);

    // The same report again: nothing changed, nothing looked up or written.
    const auto bulk = org.sf->calls("bulk"), composite = org.sf->calls("composite");
    RunOptions full;
    full.full = true;
    auto again = org.runner.run("logins", full);
    CHECK(again.counts.unchanged == leads);
    CHECK(org.sf->calls("bulk") == bulk);
    CHECK(org.sf->calls("composite") == composite + 1);  // the unmatched and duplicate rows are looked up again

    // A lookup subrequest that fails inside its Composite answer is not the rows' fault:
    // the run stops with nothing failed or moved, and goes on once the org answers again.
    write_file(org.home / "reports/logins2.csv", "email,last_login,logins_30d\n" + email(7) + ",2026-11-21T09:00:00Z,41\n");
    sfemu::Faults broken;
    broken.subrequest_error_rate = 1;
    org.sf->set_faults(broken);
    auto stopped = org.runner.run("logins");
    INFO(stopped.message);
    CHECK(stopped.status != RunStatus::succeeded);
    CHECK(stopped.status != RunStatus::partial);
    CHECK(stopped.counts.failed == 0);
    CHECK_THAT(stopped.message, Catch::Contains("UNKNOWN_EXCEPTION"));
    org.sf->set_faults(sfemu::Faults{});
    auto resumed = org.runner.run("logins");
    INFO(resumed.message);
    CHECK(resumed.counts.updated == 1);
    CHECK(org.count("SELECT COUNT() FROM Lead WHERE WalkMe_Logins_last_30_days__c = 41") == 1);

    // A custom object, by a GUID that must match case for case.
    auto usage = org.runner.run("usage");
    INFO(usage.message);
    CHECK(usage.counts.updated == 1);
    CHECK(org.count("SELECT COUNT() FROM Product_User__c WHERE Name = 'Upper' AND Logins__c = 7") == 1);
    CHECK(org.count("SELECT COUNT() FROM Product_User__c WHERE Name = 'Lower' AND Logins__c = null") == 1);
}

TEST_CASE("salesforce: feedback-companies reads Accounts through the real plugin, in pages, deletions archived") {
    Org org(1'000'000, R"({"Account": {"fields": {}}})");
    const int accounts = 2'100;  // two pages of changes, the boundary inside a shared SystemModstamp
    org.frozen_ms->store(1'795'000'000'000);
    org.sf->with_engine([&](mockcrm::Engine& e) {
        json::array list;
        for (int i = 0; i < accounts; ++i)
            list.push_back(json::object{{"Name", "Account " + std::to_string(i)},
                                        {"Industry", i % 2 ? "Retail" : "Technology"},
                                        {"Type", "Customer - Direct"}});
        e.seed(json::object{{"Account", list}});
        return 0;
    });
    org.frozen_ms->store(0);
    CHECK(org.count("SELECT COUNT() FROM Account WHERE SystemModstamp = 2026-11-18T11:06:40Z") == accounts);
    write_file(org.home / "manifests/companies.json",
               R"({"module": "companies", "plugin": {"id": "feedback-companies"}, "crm": "sf",
                   "config": {"object": "Account", "destination": {"folder": ")" +
                   org.home / "export" + R"("},
                              "filters": [{"field": "Type", "op": "equals", "value": "Customer - Direct"}],
                              "fields": {"industry": {"from": "Industry", "type": "single_select"}}}})");
    auto first = org.runner.run("companies");
    INFO(first.message);
    CHECK(first.status == RunStatus::succeeded);
    CHECK(first.counts.created == accounts);
    CHECK_THAT(first.message, Catch::Contains("first sync completed"));
    auto lines = [&] {
        std::string text = testing::read_file(org.home / "export/companies.jsonl");
        return std::count(text.begin(), text.end(), '\n');
    };
    CHECK(lines() == accounts);  // each once, whatever page boundaries fell inside a shared SystemModstamp
    CHECK_THAT(testing::read_file(org.home / "export/options.jsonl"), Catch::Contains("Retail"));

    // Nothing changed: a describe and one Composite call (the changes and the deletions);
    // nothing written.
    const auto before = org.sf->calls();
    auto idle = org.runner.run("companies");
    CHECK(idle.counts.fetched == 0);
    CHECK(idle.counts.api_calls == 2);
    auto after_idle = org.sf->calls();
    CHECK(after_idle["describe"] == before.at("describe") + 1);
    CHECK(after_idle["composite"] == before.at("composite") + 1);
    CHECK(after_idle["query"] == (before.count("query") ? before.at("query") : 0));
    CHECK(lines() == accounts);

    // An Account deleted in Salesforce: its company is archived.
    const std::string gone = org.sf->with_engine([](mockcrm::Engine& e) {
        return std::string(e.query("SELECT Id FROM Account LIMIT 1").rows.at(0).at("Id").as_string());
    });
    org.sf->with_engine([&](mockcrm::Engine& e) {
        e.remove("Account", gone);
        return 0;
    });
    auto after = org.runner.run("companies");
    INFO(after.message);
    CHECK(after.counts.extra.at("archived") == 1);
    CHECK_THAT(testing::read_file(org.home / "export/companies.jsonl"),
               Catch::Contains(R"({"external_id":")" + gone + R"(","action":"archive"})"));
}

TEST_CASE("salesforce: connect signs in through the browser with PKCE and stores the refresh token the runs then use") {
    Org org;
    std::filesystem::remove(org.home / "secrets/refresh_token");  // none yet: this is the first sign-in
    org.connection("refresh_token");
    const std::string plugins = std::string("CRMSYNC_PLUGIN_PATH=") + CRMSYNC_PLUGIN_DIR;

    // Started as an operator would; its stdout is read as it goes (it prints the address, then waits).
    int out[2];
    REQUIRE(pipe(out) == 0);
    const std::string home = org.home.str();
    pid_t pid = fork();
    if (pid == 0) {
        dup2(out[1], STDOUT_FILENO);
        close(out[0]);
        putenv(const_cast<char*>(plugins.c_str()));
        execl(CRMSYNC_BIN, CRMSYNC_BIN, "connect", "sf", "--port", "0", "--home", home.c_str(), static_cast<char*>(nullptr));
        _exit(127);
    }
    close(out[1]);
    std::string printed, url;
    char buffer[4096];
    while (printed.find("/callback\n") == std::string::npos) {
        ssize_t n = read(out[0], buffer, sizeof buffer);
        if (n <= 0) break;
        printed.append(buffer, static_cast<size_t>(n));
    }
    auto at = printed.find("  http");
    REQUIRE(at != std::string::npos);
    url = printed.substr(at + 2, printed.find('\n', at) - at - 2);
    CHECK_THAT(url,
               Catch::StartsWith(org.sf->base_url() + "/services/oauth2/authorize?response_type=code&client_id=test-client-id") &&
                   Catch::Contains("&code_challenge_method=S256"));

    // The browser: Salesforce sends it back to the loopback callback with a code.
    httplib::Client salesforce(org.sf->base_url());
    auto signed_in = salesforce.Get(url.substr(org.sf->base_url().size()));
    REQUIRE(signed_in);
    REQUIRE(signed_in->status == 302);
    std::string location = signed_in->get_header_value("Location");
    REQUIRE(location.rfind("http://localhost:", 0) == 0);
    int port = std::stoi(location.substr(std::string("http://localhost:").size()));
    httplib::Client loopback("127.0.0.1", port);
    // A request that did not come from this sign-in (another state) is refused and changes nothing.
    auto forged = loopback.Get("/callback?code=stolen&state=not-ours");
    REQUIRE(forged);
    CHECK(forged->status == 400);
    auto back = loopback.Get(location.substr(location.find("/callback")));
    REQUIRE(back);
    CHECK(back->status == 200);
    CHECK_THAT(back->body, Catch::Contains("signed in"));

    while (read(out[0], buffer, sizeof buffer) > 0) {}
    close(out[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    const std::string token_file = org.home / "secrets/refresh_token";
    struct stat st {};
    REQUIRE(stat(token_file.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    CHECK_THAT(testing::read_file(token_file), Catch::StartsWith("5Aep"));
    // Every command after signs in with it.
    auto query =
        testing::run_command({CRMSYNC_BIN, "crm", "query", "SELECT COUNT() FROM User", "--home", org.home.str()}, {plugins});
    CHECK(query.status == 0);

    // A token reference that is no file cannot be written: said before anyone signs in.
    write_file(org.home / "manifests/crm.json", std::regex_replace(testing::read_file(org.home / "manifests/crm.json"),
                                                                   std::regex(R"("refresh_token": \{"file": "[^"]*"\})"),
                                                                   R"("refresh_token": {"env": "SF_TOKEN"})"));
    auto env_ref = testing::run_command({CRMSYNC_BIN, "connect", "sf", "--port", "0", "--home", org.home.str()}, {plugins});
    CHECK(env_ref.status == 2);
    CHECK_THAT(env_ref.err, Catch::Contains("\"credentials.refresh_token\" must be {\"file\": \"path\"}"));
}
