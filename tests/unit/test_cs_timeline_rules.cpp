// cs-timeline's sync rules (plugins/sources/cs-timeline/activity.cpp) as plain functions: notes to
// text, time stamps, and which operations one activity becomes. The end-to-end behaviour
// is in tests/e2e/test_cs_timeline.cpp.
#include <catch2/catch.hpp>

#include "activity.h"

using namespace cstimeline;

namespace {

Settings task_settings() {
    Settings s;
    s.sync_to = "Task";
    s.status = "Completed";
    s.priority = "Normal";
    s.activity_types = {"Meeting", "Call"};
    s.attachments_since_ms = parse_timestamp_ms("2026-11-10T00:00:00Z");
    return s;
}

json::object activity(const std::string& extra = "") {
    return json::parse(
               R"({"id": "a-1", "type": "Meeting", "subject": "S", "notes": "n", "activity_date": "2026-11-12T00:30:00+09:00")" +
               extra + "}")
        .as_object();
}

}  // namespace

TEST_CASE("cs-timeline rules: notes become plain text with tags dropped and entities decoded") {
    CHECK(html_to_text("<p>Hello <b>world</b> &amp; more</p><p>Second&nbsp;line</p>") == "Hello world & more\n\nSecond line");
    CHECK(html_to_text("a<br>b<br/>c") == "a\nb\nc");
    CHECK(html_to_text("<ul><li>one</li><li>two</li></ul>") == "- one\n- two");
    CHECK(html_to_text("x &lt;tag&gt; &#39;q&#39; &#x3042; &quot;z&quot;") == "x <tag> 'q' \xE3\x81\x82 \"z\"");
    CHECK(html_to_text("<style>p {color: red}</style><script>alert(1)</script>kept") == "kept");
    CHECK(html_to_text("plain\ntext   with  spaces\n\n\n\nend") == "plain\ntext with spaces\n\nend");
    CHECK(html_to_text("<p>wrapped\nsource</p>") == "wrapped source");
    CHECK(html_to_text("AT&T & co &unknown;") == "AT&T & co &unknown;");
    CHECK(html_to_text("") == "");
}

TEST_CASE("cs-timeline rules: time stamps with a zone convert to UTC, without one they are refused") {
    CHECK(format_utc(*parse_timestamp_ms("2026-11-12T10:00:00+09:00")) == "2026-11-12T01:00:00Z");
    CHECK(format_utc(*parse_timestamp_ms("2026-11-12T00:30:00+0900")) == "2026-11-11T15:30:00Z");
    CHECK(format_utc(*parse_timestamp_ms("2026-12-31T23:59:59.999Z")) == "2026-12-31T23:59:59Z");
    CHECK(format_utc(*parse_timestamp_ms("2026-11-12T10:00-05:00")) == "2026-11-12T15:00:00Z");
    CHECK_FALSE(parse_timestamp_ms("2026-11-12T10:00:00"));
    CHECK_FALSE(parse_timestamp_ms("2026-11-12"));
    CHECK_FALSE(parse_timestamp_ms("2026-13-12T10:00:00Z"));
    CHECK_FALSE(parse_timestamp_ms("soon"));
}

TEST_CASE("cs-timeline rules: a Task takes the activity's own date, the fixed status and priority, and asks for write-back") {
    auto s = task_settings();
    s.writeback = true;
    auto mapped = activity_operations(activity(R"(, "company": {"crm_account_id": "001A"}, "author": {"email": "a@x.jp"})"), s);
    REQUIRE(mapped.operations.size() == 1);
    const auto& op = mapped.operations[0];
    CHECK(op.at("object") == "Task");
    CHECK(op.at("key") == "cs-timeline:a-1");
    const auto& f = op.at("fields").as_object();
    CHECK(f.at("ActivityDate") == "2026-11-12");  // the author's day, not the UTC one (11-11)
    CHECK(f.at("Status") == "Completed");
    CHECK(f.at("Priority") == "Normal");
    CHECK(f.at("WhatId") == "001A");
    CHECK(op.at("owner").at("email") == "a@x.jp");
    CHECK(op.at("writeback") == true);
    CHECK_FALSE(op.contains("related"));  // no external attendees
}

TEST_CASE("cs-timeline rules: an unflagged type becomes nothing and a broken activity names its field") {
    auto s = task_settings();
    auto update = activity();
    update["type"] = "Update";
    CHECK(activity_operations(update, s).operations.empty());
    auto no_date = activity();
    no_date.erase("activity_date");
    CHECK_THROWS_WITH(activity_operations(no_date, s), Catch::Contains("activity a-1: \"activity_date\" is missing"));
    s.sync_to = "Event";
    auto local = activity();
    local["activity_date"] = "2026-11-12T10:00:00";
    CHECK_THROWS_WITH(activity_operations(local, s), Catch::Contains("not a date-time with a zone"));
}

TEST_CASE("cs-timeline rules: Task sync takes files added after the switch-on and under 25 MB, names and skips the rest") {
    auto s = task_settings();
    auto mapped = activity_operations(activity(R"(, "attachments": [
        {"id": "f0", "name": "old.pdf", "size": 10, "added_at": "2026-11-09T23:59:59Z"},
        {"id": "f1", "name": "deck.v2.pdf", "size": 26214399, "added_at": "2026-11-10T00:00:00Z"},
        {"id": "f2", "name": "huge.mov", "size": 26214400, "added_at": "2026-11-11T00:00:00Z"},
        {"id": "f3", "name": "local.txt", "size": 3, "added_at": "2026-11-11T00:00:00Z", "path": "files/local.txt"}])"),
                                      s);
    REQUIRE(mapped.operations.size() == 3);
    const auto& deck = mapped.operations[1];
    CHECK(deck.at("object") == "ContentVersion");
    CHECK(deck.at("key") == "cs-timeline:a-1:attachment:f1");
    CHECK(deck.at("fields").at("Title") == "deck.v2");
    CHECK(deck.at("fields").at("PathOnClient") == "deck.v2.pdf");
    CHECK(deck.at("refs").at("FirstPublishLocationId") == "cs-timeline:a-1");
    CHECK(deck.at("blobs").at("VersionData") == "id:f1");
    CHECK(mapped.operations[2].at("blobs").at("VersionData") == "path:files/local.txt");
    REQUIRE(mapped.warnings.size() == 1);
    CHECK_THAT(mapped.warnings[0], Catch::Contains("\"huge.mov\" is 25.0 MB (26214400 bytes)") &&
                                       Catch::Contains("25 MB (26,214,400 bytes) or more, which Task sync leaves out"));
    s.attachments_since_ms.reset();  // switched off: no files at all
    CHECK(activity_operations(
              activity(R"(, "attachments": [{"id": "f1", "name": "a", "size": 1, "added_at": "2026-11-11T00:00:00Z"}])"), s)
              .operations.size() == 1);
}

TEST_CASE("cs-timeline rules: an Event starts at the activity's time in UTC and lasts its duration when it has one") {
    auto s = task_settings();
    s.sync_to = "Event";
    auto mapped = activity_operations(
        activity(R"(, "duration_minutes": 45, "external_attendees": [{"email": "c@y.jp"}, {"name": "no email"}])"), s);
    const auto& f = mapped.operations[0].at("fields").as_object();
    CHECK(f.at("StartDateTime") == "2026-11-11T15:30:00Z");
    CHECK(f.at("DurationInMinutes") == 45);
    CHECK_FALSE(f.contains("Status"));
    CHECK(mapped.operations[0].at("related").at("emails") == json::array{"c@y.jp"});
    auto open_ended = activity_operations(activity(), s);
    CHECK_FALSE(open_ended.operations[0].at("fields").as_object().contains("DurationInMinutes"));
    CHECK_THROWS_WITH(activity_operations(activity(R"(, "duration_minutes": "an hour")"), s),
                      Catch::Contains("duration_minutes"));
}

TEST_CASE("cs-timeline rules: Event sync takes files up to 25 MB and skips only those over it") {
    auto s = task_settings();
    s.sync_to = "Event";
    auto mapped = activity_operations(activity(R"(, "attachments": [
        {"id": "f1", "name": "exactly.pdf", "size": 26214400, "added_at": "2026-11-10T00:00:00Z"},
        {"id": "f2", "name": "over.mov", "size": 26214401, "added_at": "2026-11-11T00:00:00Z"}])"),
                                      s);
    REQUIRE(mapped.operations.size() == 2);  // the Event and exactly.pdf
    CHECK(mapped.operations[1].at("fields").at("PathOnClient") == "exactly.pdf");
    REQUIRE(mapped.warnings.size() == 1);
    CHECK_THAT(mapped.warnings[0],
               Catch::Contains("\"over.mov\"") && Catch::Contains("over the 25 MB (26,214,400 bytes) Event sync takes"));
}
