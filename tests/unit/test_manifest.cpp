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
    CHECK_THAT(set.problems[2], Catch::Contains("neither \"module\" nor \"connection\""));
}

TEST_CASE("an inline secret in a manifest is refused, references resolve from env and file") {
    TempDir dir;
    write_file(dir / "inline.json", R"({"module": "m", "plugin": "p", "crm": "c", "credentials": {"token": "s3cr3t"}})");
    auto set = load_manifests({dir.str()});
    REQUIRE(set.problems.size() == 1);
    CHECK_THAT(set.problems[0], Catch::Contains("\"credentials.token\": an inline secret is refused"));
    CHECK_THAT(set.problems[0], !Catch::Contains("s3cr3t"));
    // A secret pasted where the variable's name belongs is refused, and not repeated.
    write_file(dir / "inline.json",
               R"({"module": "m", "plugin": "p", "crm": "c", "credentials": {"token": {"env": "sk-live-9f8e7d6c"}}})");
    set = load_manifests({dir.str()});
    REQUIRE(set.problems.size() == 1);
    CHECK_THAT(set.problems[0], Catch::Contains("\"credentials.token.env\" is not an environment variable name") &&
                                    !Catch::Contains("sk-live-9f8e7d6c"));
    write_file(dir / "inline.json",
               R"({"module": "m", "plugin": "p", "crm": "c", "webhook": {"secret": {"env": "whsec 0123 abc"}}})");
    set = load_manifests({dir.str()});
    REQUIRE(set.problems.size() == 1);
    CHECK_THAT(set.problems[0],
               Catch::Contains("\"webhook.secret.env\" is not an environment variable name") && !Catch::Contains("whsec"));
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
    CHECK_THAT(bad_version.status().message(), Catch::Contains("\"version\": \"1.0\" is not a semantic version"));
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
        CHECK_THAT(refused.status().message(), Catch::Contains("m.json") && Catch::Contains("\"failed_records\""));
    }
}
