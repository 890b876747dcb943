#include <catch2/catch.hpp>

#include "clock.h"
#include "json.h"
#include "semver.h"

using namespace crmsync;

TEST_CASE("bad JSON is reported with its line and column") {
    auto r = parse_json("{\n  \"a\": 1,\n  \"b\": ]\n}");
    REQUIRE_FALSE(r);
    CHECK_THAT(r.status().message(), Catch::Contains("line 3, column 8"));
}

TEST_CASE("canonical JSON sorts keys at every level, so equal content hashes equally") {
    auto a = parse_json(R"({"b": 1, "a": {"y": [1, {"q": 2, "p": 1}], "x": null}})").value();
    auto b = parse_json(R"({"a": {"x": null, "y": [1, {"p": 1, "q": 2}]}, "b": 1})").value();
    CHECK(canonical_json(a) == canonical_json(b));
    CHECK(canonical_json(a) == R"({"a":{"x":null,"y":[1,{"p":1,"q":2}]},"b":1})");
}

TEST_CASE("version ranges: caret, tilde, comparators, partial versions") {
    auto v = [](const char* t) { return parse_version(t).value(); };
    auto r = [](const char* t) { return VersionRange::parse(t).value(); };
    CHECK(r("^1.2").contains(v("1.9.0")));
    CHECK_FALSE(r("^1.2").contains(v("2.0.0")));
    CHECK_FALSE(r("^1.2").contains(v("1.1.9")));
    CHECK(r("~1.2").contains(v("1.2.7")));
    CHECK_FALSE(r("~1.2").contains(v("1.3.0")));
    CHECK(r(">=1.0.0 <2.0.0").contains(v("1.5.0")));
    CHECK_FALSE(r(">=1.0.0 <2.0.0").contains(v("2.0.0")));
    CHECK(r("1.2").contains(v("1.2.3")));
    CHECK(r("*").contains(v("9.9.9")));
    CHECK_FALSE(VersionRange::parse("^one").has_value());
    CHECK_FALSE(parse_version("1.2").has_value());
}

TEST_CASE("ISO 8601 times parse with offsets and print in UTC") {
    int64_t ms = 0;
    REQUIRE(parse_iso8601("2026-11-20T10:02:03+09:00", ms));
    CHECK(iso8601_utc(ms) == "2026-11-20T01:02:03Z");
    REQUIRE(parse_iso8601("2026-11-20T01:02:03.250Z", ms));
    CHECK(iso8601_utc(ms) == "2026-11-20T01:02:03.250Z");
    CHECK_FALSE(parse_iso8601("2026-11-20T01:02:03", ms));  // no offset: ambiguous
    CHECK_FALSE(parse_iso8601("2026-13-20T01:02:03Z", ms));
}
