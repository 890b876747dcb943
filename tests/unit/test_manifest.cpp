#include <catch2/catch.hpp>

#include "manifest.h"
#include "test_support.h"

using namespace crmsync;
using testing::TempDir;
using testing::write_file;

namespace {
const char* kModule = R"({"module": "tasks", "plugin": {"id": "example-jsonl", "version": "^1.0"}, "crm": "mock",
  "schedule": {"every": "4h"}, "config": {}})";
}

TEST_CASE("schedules: manual, realtime, every N minutes or hours, daily at a UTC time") {
    CHECK(parse_schedule(json::value("manual"))->kind == Schedule::Kind::manual);
    CHECK(parse_schedule(json::value("realtime"))->kind == Schedule::Kind::realtime);
    auto every = parse_schedule(json::object{{"every", "15m"}});
    REQUIRE(every);
    CHECK(every->every_seconds == 900);
    auto daily = parse_schedule(json::object{{"daily_at", "08:00"}});
    REQUIRE(daily);
    CHECK(daily->daily_minute == 480);
    auto bad = parse_schedule(json::object{{"every", "4x"}});
    REQUIRE_FALSE(bad);
    CHECK_THAT(bad.status().message(), Catch::Contains("\"schedule.every\": \"4x\" is not a duration"));
    CHECK_FALSE(parse_schedule(json::object{{"daily_at", "25:00"}}));
}

TEST_CASE("one bad manifest is skipped with a line naming the file, the rest load") {
    TempDir dir;
    write_file(dir / "a-good.json", kModule);
    write_file(dir / "b-broken.json", "{\"module\": \"x\",\n \"plugin\": }");
    write_file(dir / "c-no-crm.json", R"({"module": "nocrm", "plugin": "example-jsonl"})");
    write_file(dir / "d-conn.json", R"({"connection": "mock", "plugin": {"id": "mock-crm"}, "config": {"database": "x.db"}})");
    write_file(dir / "e-neither.json", R"({"hello": 1})");
    auto set = load_manifests({dir.str()});
    REQUIRE(set.modules.size() == 1);
    CHECK(set.modules[0].name == "tasks");
    CHECK(set.modules[0].schedule.every_seconds == 4 * 3600);
    REQUIRE(set.connections.size() == 1);
    REQUIRE(set.problems.size() == 3);
    CHECK_THAT(set.problems[0], Catch::StartsWith(dir / "b-broken.json") && Catch::Contains("line 2, column"));
    CHECK_THAT(set.problems[1], Catch::Contains("c-no-crm.json") && Catch::Contains("\"crm\" is missing"));
    CHECK_THAT(set.problems[2], Catch::Contains("none of \"module\", \"connection\", \"notification\", \"trust\" or \"state\""));
}

TEST_CASE("an inline secret in a manifest is refused, references resolve from env and file") {
    TempDir dir;
    write_file(dir / "inline.json", R"({"module": "m", "plugin": "p", "crm": "c", "credentials": {"token": "s3cr3t"}})");
    auto set = load_manifests({dir.str()});
    REQUIRE(set.problems.size() == 1);
    CHECK_THAT(set.problems[0],
               Catch::Contains(
                   "\"credentials.token\" must be {\"env\": \"NAME\"} or {\"file\": \"path\"}; an inline secret is refused"));
    CHECK_THAT(set.problems[0], !Catch::Contains("s3cr3t"));
    // A secret pasted where the variable's name belongs is refused, and not repeated.
    write_file(dir / "inline.json",
               R"({"module": "m", "plugin": "p", "crm": "c", "credentials": {"token": {"env": "sk-live-9f8e7d6c"}}})");
    set = load_manifests({dir.str()});
    REQUIRE(set.problems.size() == 1);
    CHECK_THAT(set.problems[0], Catch::Contains("\"credentials.token.env\" must be the NAME of an environment variable") &&
                                    !Catch::Contains("sk-live-9f8e7d6c"));
    write_file(dir / "inline.json",
               R"({"module": "m", "plugin": "p", "crm": "c", "webhook": {"secret": {"env": "whsec 0123 abc"}}})");
    set = load_manifests({dir.str()});
    REQUIRE(set.problems.size() == 1);
    CHECK_THAT(set.problems[0], Catch::Contains("\"webhook.secret.env\" must be the NAME of an environment variable") &&
                                    !Catch::Contains("whsec"));
    std::filesystem::remove(dir / "inline.json");

    write_file(dir / "key.txt", "file-secret\n");
    setenv("CRMSYNC_TEST_TOKEN", "env-secret", 1);
    std::vector<CredentialRef> refs{{"token", CredentialRef::Source::env, "CRMSYNC_TEST_TOKEN"},
                                    {"key", CredentialRef::Source::file, dir / "key.txt"}};
    auto resolved = resolve_credentials(refs);
    REQUIRE(resolved);
    CHECK(resolved->at("token").as_string() == "env-secret");
    CHECK(resolved->at("key").as_string() == "file-secret");
    refs.push_back({"missing", CredentialRef::Source::env, "CRMSYNC_TEST_UNSET_VARIABLE"});
    auto missing = resolve_credentials(refs);
    REQUIRE_FALSE(missing);
    CHECK_THAT(missing.status().message(), Catch::Contains("CRMSYNC_TEST_UNSET_VARIABLE is not set"));
}

TEST_CASE("plugin manifests: each missing or malformed field is named") {
    TempDir dir;
    write_file(dir / "p.plugin.json", R"({"file_format_version": "1.0", "id": "x", "version": "1.0",
        "abi": {"major": 1, "minor": 0}, "library_path": "./x.so", "sha256": "00"})");
    auto bad_version = parse_plugin_manifest(dir / "p.plugin.json");
    REQUIRE_FALSE(bad_version);
    // Every problem at once, each with what it must be.
    CHECK_THAT(bad_version.status().message(), Catch::Contains("2 problems") &&
                                                   Catch::Contains("\"version\" must be a semantic version, e.g. \"1.0.0\"") &&
                                                   Catch::Contains("\"sha256\" must be the library's SHA-256: 64 hex digits"));
    write_file(dir / "q.plugin.json", R"({"file_format_version": "1.0", "id": "x", "version": "1.0.0",
        "abi": {"major": 1, "minor": 0}, "library_path": "./x.so"})");
    auto no_sha = parse_plugin_manifest(dir / "q.plugin.json");
    REQUIRE_FALSE(no_sha);
    CHECK_THAT(no_sha.status().message(), Catch::Contains("\"sha256\" is missing"));
    write_file(dir / "r.plugin.json", R"({"file_format_version": "2.0", "id": "x"})");
    CHECK_THAT(parse_plugin_manifest(dir / "r.plugin.json").status().message(), Catch::Contains("reads 1.x"));
}

TEST_CASE("durations have a range: no zero unless allowed, nothing past ten years, no overflow") {
    CHECK(parse_duration("90s") == 90);
    CHECK(parse_duration("1d") == 86400);
    CHECK_FALSE(parse_duration("0s"));
    CHECK(parse_duration("0s", true) == 0);
    CHECK(parse_duration("3650d") == 3650LL * 86400);
    CHECK_FALSE(parse_duration("3651d"));
    CHECK_FALSE(parse_duration("106751991167301d"));
    CHECK_FALSE(parse_duration("9223372036854775807s"));
    CHECK_FALSE(parse_duration("-5m"));
    CHECK_FALSE(parse_duration("5w"));
}

TEST_CASE("failed_records: attempts 1..100 and a backoff of 0s..1d, doubling to a day") {
    auto parse = [](const std::string& extra) {
        std::string text = kModule;
        text.insert(1, R"("failed_records": )" + extra + ", ");
        return parse_module_manifest("m.json", json::parse(text).as_object());
    };
    auto defaults = parse_module_manifest("m.json", json::parse(kModule).as_object());
    REQUIRE(defaults);
    CHECK(defaults->failed_records.max_attempts == 8);
    CHECK(defaults->failed_records.backoff_ms == 5 * 60'000);
    auto set = parse(R"({"max_attempts": 3, "backoff": "1m"})");
    REQUIRE(set);
    CHECK(set->failed_records.next_attempt_ms(0, 1) == 60'000);
    CHECK(set->failed_records.next_attempt_ms(0, 3) == 240'000);
    CHECK(set->failed_records.next_attempt_ms(0, 60) == FailedRecordPolicy::kCapMs);
    for (const char* bad : {R"({"max_attempts": 0})", R"({"max_attempts": 101})", R"({"max_attempts": 2.5})",
                            R"({"backoff": "2d"})", R"({"backoff": 60})", R"("often")"}) {
        auto refused = parse(bad);
        CHECK_FALSE(refused);
        CHECK_THAT(refused.status().message(), Catch::Contains("m.json") && Catch::Contains("\"failed_records"));
    }
}

namespace {
Result<ModuleManifest> module_from(const std::string& text) {
    return parse_module_manifest("m.json", json::parse(text).as_object());
}
}  // namespace

TEST_CASE("manifests: an unknown key is an error naming it, with the key it probably meant") {
    auto typo = module_from(R"({"module": "m", "plugin": "example-jsonl", "crm": "mock", "enabeld": false})");
    REQUIRE_FALSE(typo);
    CHECK_THAT(typo.status().message(),
               Catch::Contains("m.json: \"enabeld\" is not a known key here (did you mean \"enabled\"?)"));
    // A secret under a misspelt key is neither used nor kept quiet about, and not repeated.
    auto secret =
        module_from(R"({"module": "m", "plugin": "example-jsonl", "crm": "mock", "credentails": {"token": "sk-live-123456"}})");
    REQUIRE_FALSE(secret);
    CHECK_THAT(secret.status().message(),
               Catch::Contains("\"credentails\" is not a known key here (did you mean \"credentials\"?)") &&
                   !Catch::Contains("sk-live"));
    // Nested keys too, and a key far from any is answered with the ones there are.
    auto nested = module_from(R"({"module": "m", "plugin": "example-jsonl", "crm": "mock", "retry": {"max_atempts": 3},
                                  "schedule": {"every": "4h"}, "mappings": [{"source": "a", "field": "B", "zzz": 1}]})");
    REQUIRE_FALSE(nested);
    CHECK_THAT(nested.status().message(),
               Catch::Contains("2 problems") &&
                   Catch::Contains("\"retry.max_atempts\" is not a known key here (did you mean \"max_attempts\"?)") &&
                   Catch::Contains("\"mappings[0].zzz\" is not a known key here (known: source, field"));
    auto connection = parse_connection_manifest(
        "c.json", json::parse(R"({"connection": "c", "plugin": "mock-crm", "external_id": "X__c"})").as_object());
    REQUIRE_FALSE(connection);
    CHECK_THAT(connection.status().message(),
               Catch::Contains("\"external_id\" is not a known key here (did you mean \"external_id_field\"?)"));
}

TEST_CASE("manifests: wrong types are errors, all of them at once, and never echo the value") {
    auto wrong = module_from(R"({"module": "m", "plugin": "example-jsonl", "crm": "mock", "retry": "fast",
                                 "failed_records": {"max_attempts": 3.5}, "webhook": "secret-here", "enabled": "no"})");
    REQUIRE_FALSE(wrong);
    const auto& message = wrong.status().message();
    CHECK_THAT(message, Catch::Contains("4 problems"));
    CHECK_THAT(message, Catch::Contains("\"retry\" must be {\"max_attempts\": 1..20"));
    CHECK_THAT(message, Catch::Contains("\"failed_records.max_attempts\" must be an integer from 1 to 100"));
    CHECK_THAT(message, Catch::Contains("\"webhook\" must be {\"secret\": {\"env\": \"NAME\"}}"));
    CHECK_THAT(message, Catch::Contains("\"enabled\" must be true or false"));
    CHECK_THAT(message, !Catch::Contains("secret-here") && !Catch::Contains("fast"));
    auto missing = module_from(R"({"module": "m", "schedule": "hourly"})");
    REQUIRE_FALSE(missing);
    CHECK_THAT(missing.status().message(), Catch::Contains("\"plugin\" is missing") &&
                                               Catch::Contains("\"crm\" is missing (the name of a CRM connection manifest)") &&
                                               Catch::Contains("\"schedule\" must be \"manual\", \"realtime\""));
}

TEST_CASE("manifests: a file over 1 MiB is refused unread, and the others still load") {
    TempDir dir;
    write_file(dir / "a.json", kModule);
    write_file(dir / "big.json", R"({"module": "big", "config": {"pad": ")" + std::string(2 << 20, 'x') + "\"}}");
    auto set = load_manifests({dir.str()});
    REQUIRE(set.modules.size() == 1);
    REQUIRE(set.problems.size() == 1);
    CHECK_THAT(set.problems[0], Catch::Contains("big.json") && Catch::Contains("larger than 1048576 bytes"));
}

TEST_CASE("plugin manifests: the library must be inside the plugin's folder") {
    TempDir dir;
    const std::string sha(64, 'a');
    for (const char* path : {"../../outside/x.so", "/usr/lib/x.so", "sub/../../x.so"}) {
        write_file(dir / "p.plugin.json", R"({"file_format_version": "1.0", "id": "x", "version": "1.0.0",
            "abi": {"major": 1, "minor": 0}, "library_path": ")" +
                                              std::string(path) + R"(", "sha256": ")" + sha + "\"}");
        auto refused = parse_plugin_manifest(dir / "p.plugin.json");
        REQUIRE_FALSE(refused);
        CHECK_THAT(refused.status().message(), Catch::Contains("\"library_path\"") && Catch::Contains("own folder"));
    }
    write_file(dir / "p.plugin.json", R"({"file_format_version": "1.0", "id": "x", "version": "1.0.0",
        "abi": {"major": 1, "minor": 0}, "library_path": "./lib/x.so", "sha256": ")" +
                                          sha + "\"}");
    auto inside = parse_plugin_manifest(dir / "p.plugin.json");
    REQUIRE(inside);
    CHECK(inside->library_path == (dir / "lib/x.so"));
}

TEST_CASE("manifests: a notification is read with its defaults, and one watching an unknown module is named") {
    TempDir dir;
    write_file(dir / "crm.json", R"({"connection": "mock", "plugin": "mock-crm"})");
    write_file(dir / "tasks.json", R"({"module": "tasks", "plugin": "example-jsonl", "crm": "mock"})");
    write_file(dir / "ops.json", R"({"notification": "ops", "webhook": {"url": {"env": "SLACK_URL"}}})");
    write_file(dir / "typo.json", R"({"notification": "typo", "modules": ["taks"], "email": {"to": ["a@example.com"]}})");
    write_file(dir / "both.json",
               R"({"notification": "both", "email": {"to": ["a@example.com"]}, "webhook": {"url": "https://x.example"}})");
    write_file(dir / "inject.json", R"({"notification": "inject", "email": {"to": ["a@example.com\nBcc: all@example.com"]}})");
    auto set = load_manifests({dir.str()});
    REQUIRE(set.notifications.size() == 2);
    const auto& ops = set.notifications[0];
    CHECK(ops.name == "ops");
    CHECK(ops.watches("tasks"));
    CHECK(ops.on == std::vector<std::string>{"failed", "errors", "budget", "recovered"});
    CHECK(ops.errors_threshold == 10);
    REQUIRE(ops.webhook_url_ref);
    CHECK(ops.webhook_url_ref->where == "SLACK_URL");
    CHECK(set.notifications[1].channel == NotificationManifest::Channel::email);
    REQUIRE(set.problems.size() == 3);
    CHECK_THAT(set.problems[0], Catch::Contains("both.json"));  // a webhook or an email, not both
    CHECK_THAT(set.problems[1], Catch::Contains("inject.json") && Catch::Contains("email.to[0]"));
    CHECK_THAT(set.problems[2], Catch::Contains("typo.json: notification \"typo\" watches module \"taks\", which no manifest "
                                                "declares (did you mean \"tasks\"?)"));
}
