#include <catch2/catch.hpp>
#include <crmsync/support/json_plugin.hpp>

#include "clock.h"
#include "json.h"
#include "operation.h"
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

TEST_CASE("canonical JSON writes every value as Boost.JSON serializes it, so content hashes stay what they were") {
    // Links keep the hash of what was written: a change of form would rewrite every record once.
    for (int c = 0; c < 256; ++c) {
        std::string text = "a";
        text += static_cast<char>(c);
        text += "b";
        json::value v = json::string(text);
        INFO("byte " << c);
        CHECK(canonical_json(v) == json::serialize(v));
        CHECK(canonical_json(json::object{{text, 1}}) == json::serialize(json::object{{text, 1}}));
    }
    // Long enough for the eight-bytes-at-a-time scan: each byte at each place, among ASCII and
    // among UTF-8 (bytes from 0x80 up need no escape, and must not be taken for ones that do).
    for (const std::string& filler : {std::string(24, 'x'), std::string("éééééééééééé")})
        for (int c = 0; c < 256; ++c)
            for (size_t at = 0; at < filler.size(); at += 3) {
                std::string text = filler;
                text[at] = static_cast<char>(c);
                json::value v = json::string(text);
                if (canonical_json(v) != json::serialize(v)) FAIL("byte " << c << " at " << at << " in " << filler);
            }
    for (const json::value& v : {json::value("日本語 é \"quoted\" \\ /"), json::value(-9223372036854775807LL - 1),
                                 json::value(18446744073709551615ULL), json::value(0), json::value(1.5), json::value(-2e-7),
                                 json::value(true), json::value(false), json::value(nullptr), json::value(json::array{})})
        CHECK(canonical_json(v) == json::serialize(v));
    CHECK(canonical_json(parse_json(R"({"z": [1, "x\ty", {"k": 2.0}], "a": ""})").value()) ==
          R"({"a":"","z":[1,"x\ty",{"k":2E0}]})");
}

TEST_CASE("an operation's canonical text and write text are its JSON forms, directives and all, so content hashes stay") {
    // Every member to_json() may write, alone and together, with text that needs escaping.
    const std::vector<std::string> emitted{
        R"({"object": "Task", "action": "upsert", "key": "k1", "fields": {"Subject": "a", "B": 1}})",
        R"({"object": "Event", "action": "upsert", "key": "k\"2", "source_id": "s\\2", "id": "00U000000000001AAA",
            "fields": {"Subject": "【メール】x\n", "DurationInMinutes": 15, "Z": null, "A": [1, 2.5, true, {"y": 1, "x": [0]}]},
            "owner": {"email": "o@x.test", "if_missing": ["connection_user", "error"]},
            "related": {"emails": ["c@x.test", "d@x.test"], "phones": ["+81 3-1234-5678"], "prefer": ["Lead", "Contact"],
                        "max_contacts": 7, "open_opportunity": true},
            "match": {"field": "Email", "value": "c@x.test", "case_sensitive": true},
            "picklists": {"Type": "create_missing", "Status": "error"}, "refs": {"WhatId": "t1"}, "blobs": {"VersionData": "f1"},
            "writeback": true, "version": 5})",
        R"({"object": "Lead", "action": "update", "key": "k3", "fields": {},
            "owner": {"email": "o@x.test"}, "related": {"emails": []},
            "match": [{"field": "Email", "value": "a@x.test"}, {"field": "Phone", "value": "0312345678"}]})"};
    for (const auto& text : emitted) {
        auto value = json::parse(text);
        auto op = Operation::parse(value, "record-1");
        REQUIRE(op);
        CHECK(op->canonical_text() == canonical_json(op->to_json()));
        CHECK(json::parse(op->canonical_text()) == op->to_json());
        // What the CRM plugin's write() gets, written as text, is the same JSON as write_json().
        PendingOperation pending;
        pending.op = *op;
        CHECK(json::parse(pending.write_json_text()) == pending.write_json());
        pending.crm_key = "earlier-Key";
        CHECK(json::parse(pending.write_json_text()) == pending.write_json());
    }
}

TEST_CASE("one parser serves many texts: a bad text does not spoil the next, a large one is read whole") {
    CHECK_FALSE(parse_json(R"({"a": [1, 2)"));
    CHECK(parse_json(R"({"a": [1, 2]})").value() == json::value(json::object{{"a", json::array{1, 2}}}));
    std::string large(3u << 20, 'x');
    auto parsed = parse_json("\"" + large + "\"");
    REQUIRE(parsed);
    CHECK(parsed->get_string().size() == large.size());
    CHECK(parse_json("[true]").value() == json::value(json::array{true}));
}

TEST_CASE("a record item is read without building its record: the id, and the record's text as written") {
    SECTION("the plain form, with space anywhere the grammar allows it") {
        std::string text = R"({"type":"record","id":"t-1","record":{"a":[1,{"b":"}"}],"c":"x\"y"}})";
        auto item = read_record_item(text);
        REQUIRE(item);
        CHECK(item->id == "t-1");
        CHECK(item->record == R"({"a":[1,{"b":"}"}],"c":"x\"y"})");
        CHECK(item->record.data() >= text.data());  // a view into the text, not a copy

        item = read_record_item(" {\n \"record\" :\t{ \"n\": 1.50 } ,\r\n \"id\": \"7\", \"type\" : \"record\" }\n");
        REQUIRE(item);
        CHECK(item->id == "7");
        CHECK(item->record == R"({ "n": 1.50 })");  // numbers as the plugin wrote them

        item = read_record_item(R"({"id":"a\u00e9\"b","record":{},"type":"record","extra":[{"record":1}]})");
        REQUIRE(item);
        CHECK(item->id == "a\xc3\xa9\"b");  // an escaped id is unescaped, as a parsed one is
        CHECK(item->record == "{}");
    }
    SECTION("anything else is left to the full parse, which says what is wrong") {
        for (const char* text : {
                 R"({"type":"checkpoint","cursor":null,"more":false})",
                 R"({"type":"record","id":"1","record":[1]})",
                 R"({"type":"record","id":1,"record":{}})",
                 R"({"type":"record","record":{}})",
                 R"({"type":"record","id":"1"})",
                 R"({"type":"record","id":"1","record":{},"record":{}})",
                 R"({"type":"record","id":"1","id":"2","record":{}})",
                 R"({"type":"record","id":"1","rec\u006frd":{}})",
                 R"({"type":"record","id":"1","record":{},"n\u0061me":2})",
                 R"({"type":"record","id":"1","record":{"a":1})",
                 R"({"type":"record","id":"1","record":{}} x)",
                 "{\"type\":\"record\",\"id\":\"1\",\"record\":{\"a\":\"\xff\"}}",  // not UTF-8
                 R"({"type":"record","id":"1","record":{} /* c */})",
                 R"([{"type":"record","id":"1","record":{}}])",
                 "",
             }) {
            INFO(text);
            CHECK_FALSE(read_record_item(text));
        }
    }
    SECTION("no deeper than a full parse goes") {
        std::string deep = std::string(40, '[') + std::string(40, ']');
        CHECK_FALSE(read_record_item(R"({"type":"record","id":"1","record":{"a":)" + deep + "}}"));
        CHECK_FALSE(parse_json(R"({"type":"record","id":"1","record":{"a":)" + deep + "}}"));
    }
    CHECK(is_json(R"({"a":1})"));
    CHECK(is_json("\"text\""));
    CHECK_FALSE(is_json("{\"a\":"));
    CHECK_FALSE(is_json("not json"));
}

TEST_CASE("a plugin reads one member of a record's text without building the record") {
    using crmsync::support::object_member;
    auto id = object_member(R"({"subject": {"id": "inner"}, "id": "a\"b", "n": [1, {"id": 2}]})", "id");
    REQUIRE(id);
    CHECK(*id == json::value("a\"b"));
    CHECK(*object_member(R"({"id": 24})", "id") == json::value(24));
    CHECK(*object_member(R"({"id": 18446744073709551615})", "id") == json::value(18446744073709551615ull));
    CHECK(object_member(R"({"id": null})", "id")->is_null());
    CHECK(*object_member(R"({"i\u0064": "esc"})", "id") == json::value("esc"));  // the key as parsed
    for (const char* text : {
             R"({"name": "no id"})",
             R"({"id": "1", "id": "2"})",
             R"({"id": {"x": 1}})",
             R"({"id": [1]})",
             R"(["id", "1"])",
             R"({"id": "1"} trailing)",
             R"({"id": "1")",
             "",
         }) {
        INFO(text);
        CHECK_FALSE(object_member(text, "id"));
    }
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
