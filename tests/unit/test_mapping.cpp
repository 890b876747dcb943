#include <catch2/catch.hpp>

#include "services/mapping.h"

using namespace crmsync;

namespace {
FieldMapping mapping(const std::string& type, const std::string& extra = "") {
    auto parsed =
        parse_mappings(json::parse(R"([{"source": "v", "field": "F__c", "type": ")" + type + "\"" + extra + "}]").as_array());
    REQUIRE(parsed);
    return parsed->at(0);
}
std::string converted(const FieldMapping& m, const json::value& v) {
    auto r = convert_value(m, v);
    REQUIRE(r);
    return json::serialize(r.value());
}
std::string failure(const FieldMapping& m, const json::value& v) {
    auto r = convert_value(m, v);
    REQUIRE_FALSE(r);
    return r.status().message();
}
}  // namespace

TEST_CASE("mapping: a datetime with an offset goes out in UTC") {
    CHECK(converted(mapping("datetime"), "2026-11-20T10:02:03+09:00") == "\"2026-11-20T01:02:03.000Z\"");
    CHECK(converted(mapping("datetime"), "2026-11-20T01:02:03Z") == "\"2026-11-20T01:02:03.000Z\"");
}

TEST_CASE("mapping: a source time without an offset takes the mapping's timezone") {
    CHECK(converted(mapping("datetime", R"(, "timezone": "Asia/Tokyo")"), "2026-11-20T10:00:00") ==
          "\"2026-11-20T01:00:00.000Z\"");
    CHECK(converted(mapping("datetime", R"(, "timezone": "Asia/Tokyo", "format": "%Y/%m/%d %H:%M")"), "2026/11/20 09:30") ==
          "\"2026-11-20T00:30:00.000Z\"");
    CHECK_THAT(failure(mapping("datetime"), "2026-11-20T10:00:00"),
               Catch::Contains("has no UTC offset") && Catch::Contains("timezone"));
}

TEST_CASE("mapping: a date-only value stays the same date, whatever the timezone") {
    CHECK(converted(mapping("date", R"(, "timezone": "Pacific/Kiritimati")"), "2026-11-20") == "\"2026-11-20\"");
    CHECK(converted(mapping("date", R"(, "format": "%Y/%m/%d")"), "2026/11/20") == "\"2026-11-20\"");
    CHECK_THAT(failure(mapping("date"), "20th November"),
               Catch::Contains("mappings[0] (v → F__c)") && Catch::Contains("is not a date"));
}

TEST_CASE("mapping: numbers and bools parse strictly, naming the path, value and type") {
    CHECK(converted(mapping("number"), "42") == "42");
    CHECK(convert_value(mapping("number"), "4.5").value() == 4.5);
    CHECK(converted(mapping("number"), 7) == "7");
    CHECK_THAT(failure(mapping("number"), "42abc"), Catch::Contains("\"42abc\" is not a number"));
    CHECK_THAT(failure(mapping("number"), ""), Catch::Contains("is not a number"));
    CHECK(converted(mapping("bool"), "true") == "true");
    CHECK_THAT(failure(mapping("bool"), "yes"), Catch::Contains("\"yes\" is not true or false"));
    CHECK_THAT(failure(mapping("bool"), 1), Catch::Contains("1 is not true or false"));
}

TEST_CASE("mapping: text keeps max_lines, multipicklist joins with semicolons") {
    CHECK(converted(mapping("text", R"(, "max_lines": 2)"), "a\nb\nc\nd") == "\"a\\nb\"");
    CHECK(converted(mapping("multipicklist"), json::array{"A", "B"}) == "\"A;B\"");
}

TEST_CASE("mapping: dotted paths with array indexes find nested values") {
    auto record = json::parse(R"({"contact": {"emails": ["a@x.jp", "b@x.jp"]}, "n": null})");
    REQUIRE(lookup_path(record, "contact.emails[1]"));
    CHECK(*lookup_path(record, "contact.emails[1]") == "b@x.jp");
    CHECK(lookup_path(record, "contact.emails[2]") == nullptr);
    CHECK(lookup_path(record, "contact.phone") == nullptr);
    Operation op;
    op.object = "Task";
    auto mappings = parse_mappings(json::parse(R"([{"source": "contact.emails[0]", "field": "Email__c"},
        {"source": "missing", "field": "Region__c", "default": "APAC"}])")
                                       .as_array());
    REQUIRE(apply_mappings(mappings.value(), record, op));
    CHECK(op.fields.at("Email__c") == "a@x.jp");
    CHECK(op.fields.at("Region__c") == "APAC");
}

TEST_CASE("mapping: a custom mapping onto one of the plugin's fixed fields is refused, naming it") {
    auto mappings = parse_mappings(json::parse(R"([{"source": "x", "field": "Subject"}])").as_array());
    std::map<std::string, std::set<std::string>> defaults{{"Event", {"Subject", "StartDateTime"}}};
    auto status = check_against_defaults(mappings.value(), defaults, "helpdesk-tickets");
    REQUIRE_FALSE(status);
    CHECK_THAT(status.message(), Catch::Contains("\"Subject\" on Event is one of plugin helpdesk-tickets's fixed fields"));
    auto other = parse_mappings(json::parse(R"([{"source": "x", "field": "Region__c"}])").as_array());
    CHECK(check_against_defaults(other.value(), defaults, "p"));
}

TEST_CASE("mapping: when the plugin writes several objects a mapping must say which one it is on") {
    auto mappings = parse_mappings(json::parse(R"([{"source": "x", "field": "Region__c"}])").as_array());
    std::map<std::string, std::set<std::string>> defaults{{"Task", {"Subject"}}, {"ContentVersion", {"Title"}}};
    auto status = check_against_defaults(mappings.value(), defaults, "cs-timeline");
    REQUIRE_FALSE(status);
    CHECK_THAT(status.message(), Catch::Contains("\"mappings[0]\": plugin cs-timeline writes ContentVersion, Task; say which one "
                                                 "\"Region__c\" is on with \"object\""));
    auto scoped = parse_mappings(json::parse(R"([{"source": "x", "field": "Region__c", "object": "Task"}])").as_array());
    CHECK(check_against_defaults(scoped.value(), defaults, "cs-timeline"));
}

TEST_CASE("mapping: bad mapping declarations are configuration errors") {
    CHECK_THAT(parse_mappings(json::parse(R"([{"field": "X"}])").as_array()).status().message(), Catch::Contains("\"source\""));
    CHECK_THAT(parse_mappings(json::parse(R"([{"source": "a", "field": "X", "type": "colour"}])").as_array()).status().message(),
               Catch::Contains("\"colour\" is not a mapping type"));
    CHECK_THAT(parse_mappings(
                   json::parse(R"([{"source": "a", "field": "X", "type": "datetime", "timezone": "Mars/Olympus"}])").as_array())
                   .status()
                   .message(),
               Catch::Contains("not an IANA time zone"));
}
