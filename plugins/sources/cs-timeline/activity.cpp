#include "activity.h"

#include <crmsync/support/json_plugin.hpp>
#include <crmsync/support/text.hpp>

#include <chrono>
#include <cstdio>
#include <map>
#include <stdexcept>

namespace cstimeline {
using crmsync::support::text;
using crmsync::support::utf8_prefix;

namespace {

const json::object& object(const json::object& o, const char* key) {
    static const json::object empty;
    auto* v = o.if_contains(key);
    return v && v->is_object() ? v->get_object() : empty;
}

const json::array& array(const json::object& o, const char* key) {
    static const json::array empty;
    auto* v = o.if_contains(key);
    return v && v->is_array() ? v->get_array() : empty;
}

void append_utf8(std::string& out, uint32_t cp) {
    if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) cp = 0xFFFD;
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

// Decodes the entity starting at html[i] ('&'); returns the characters consumed, 0 if none.
size_t decode_entity(std::string_view html, size_t i, std::string& out) {
    static const std::map<std::string_view, uint32_t> named{
        {"amp", '&'},      {"lt", '<'},       {"gt", '>'},        {"quot", '"'},     {"apos", '\''},    {"nbsp", ' '},
        {"copy", 0xA9},    {"reg", 0xAE},     {"hellip", 0x2026}, {"mdash", 0x2014}, {"ndash", 0x2013}, {"yen", 0xA5},
        {"lsquo", 0x2018}, {"rsquo", 0x2019}, {"ldquo", 0x201C},  {"rdquo", 0x201D}, {"bull", 0x2022},  {"euro", 0x20AC}};
    size_t semi = html.find(';', i);
    if (semi == std::string_view::npos || semi - i > 10) return 0;
    std::string_view name = html.substr(i + 1, semi - i - 1);
    if (name.size() > 1 && name[0] == '#') {
        bool hex = name[1] == 'x' || name[1] == 'X';
        std::string digits(name.substr(hex ? 2 : 1));
        if (digits.empty()) return 0;
        char* end = nullptr;
        unsigned long cp = std::strtoul(digits.c_str(), &end, hex ? 16 : 10);
        if (*end != '\0') return 0;
        append_utf8(out, static_cast<uint32_t>(std::min<unsigned long>(cp, 0x110000)));
        return semi - i + 1;
    }
    auto it = named.find(name);
    if (it == named.end()) return 0;
    append_utf8(out, it->second);
    return semi - i + 1;
}

// Days since 1970-01-01 of a civil date (proleptic Gregorian).
int64_t days_from_civil(int y, unsigned m, unsigned d) {
    using namespace std::chrono;
    return sys_days{year{y} / month{m} / day{d}}.time_since_epoch().count();
}

std::string stem(const std::string& name) {
    auto dot = name.rfind('.');
    return dot == std::string::npos || dot == 0 ? name : name.substr(0, dot);
}

std::string megabytes(int64_t bytes) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f MB", static_cast<double>(bytes) / (1024.0 * 1024.0));
    return buf;
}

}  // namespace

std::string html_to_text(std::string_view html) {
    // Line breaks in HTML source are only layout: with tags present, the tags decide.
    const bool is_html = html.find('<') != std::string_view::npos;
    std::string raw;
    for (size_t i = 0; i < html.size();) {
        char c = html[i];
        if (c == '<') {
            size_t close = html.find('>', i);
            if (close == std::string_view::npos) break;  // an unclosed tag: drop the rest of it
            std::string tag = crmsync::support::ascii_lower(html.substr(i + 1, close - i - 1));
            std::string name = tag.substr(tag[0] == '/' ? 1 : 0);
            name = name.substr(0, name.find_first_of(" \t\r\n/"));
            if ((name == "script" || name == "style") && tag[0] != '/') {
                size_t end = crmsync::support::ascii_lower(html.substr(close)).find("</" + name);
                i = end == std::string::npos ? html.size() : html.find('>', close + end) + 1;
                if (i == 0) i = html.size();
                continue;
            }
            if (name == "br" || name == "p" || name == "div" || name == "tr" || name == "h1" || name == "h2" || name == "h3" ||
                name == "h4" || name == "blockquote" || name == "ul" || name == "ol")
                raw += '\n';
            else if (name == "li" && tag[0] != '/') raw += "\n- ";
            else if (name == "td" || name == "th") raw += ' ';
            i = close + 1;
        } else if (c == '&') {
            size_t used = decode_entity(html, i, raw);
            if (used == 0) raw += '&', used = 1;
            i += used;
        } else {
            raw += (c == '\r' || c == '\t' || (c == '\n' && is_html)) ? ' ' : c;
            ++i;
        }
    }
    // Lines trimmed, spaces collapsed, at most one blank line in a row.
    std::string out;
    std::string line;
    int blank = 0;
    auto flush = [&] {
        size_t a = line.find_first_not_of(' ');
        size_t b = line.find_last_not_of(' ');
        std::string t = a == std::string::npos ? "" : line.substr(a, b - a + 1);
        line.clear();
        if (t.empty()) {
            ++blank;
            return;
        }
        if (!out.empty()) out += blank > 0 ? "\n\n" : "\n";
        out += t;
        blank = 0;
    };
    for (char c : raw) {
        if (c == '\n') {
            flush();
            continue;
        }
        if (c == ' ' && !line.empty() && line.back() == ' ') continue;
        line += c;
    }
    flush();
    return out;
}

std::optional<int64_t> parse_timestamp_ms(std::string_view s) {
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0, n = 0;
    std::string text(s);
    if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d%n", &y, &mo, &d, &h, &mi, &n) != 5 || n != 16) return std::nullopt;
    size_t i = 16;
    if (i < text.size() && text[i] == ':') {
        if (i + 3 > text.size() || !std::isdigit(static_cast<unsigned char>(text[i + 1])) ||
            !std::isdigit(static_cast<unsigned char>(text[i + 2])))
            return std::nullopt;
        sec = (text[i + 1] - '0') * 10 + (text[i + 2] - '0');
        i += 3;
    }
    int64_t ms = 0;
    if (i < text.size() && text[i] == '.') {
        int digits = 0;
        for (++i; i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])); ++i)
            if (digits++ < 3) ms = ms * 10 + (text[i] - '0');
        for (; digits < 3; ++digits) ms *= 10;
    }
    int64_t offset_min = 0;
    if (i < text.size() && (text[i] == 'Z' || text[i] == 'z')) {
        ++i;
    } else if (i < text.size() && (text[i] == '+' || text[i] == '-')) {
        int oh = 0, om = 0;
        std::string rest = text.substr(i + 1);
        if (rest.size() == 5 && rest[2] == ':') rest.erase(2, 1);
        if (rest.size() != 4 || std::sscanf(rest.c_str(), "%2d%2d", &oh, &om) != 2) return std::nullopt;
        offset_min = (oh * 60 + om) * (text[i] == '-' ? -1 : 1);
        i = text.size();
    } else {
        return std::nullopt;  // a time without a zone is ambiguous
    }
    if (i != text.size() || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return std::nullopt;
    int64_t days = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
    return ((days * 24 + h) * 60 + mi - offset_min) * 60'000 + sec * 1000 + ms;
}

std::string format_utc(int64_t ms) {
    using namespace std::chrono;
    auto tp = sys_time<milliseconds>(milliseconds(ms));
    auto day_point = floor<days>(tp);
    year_month_day ymd(day_point);
    hh_mm_ss<milliseconds> t(tp - day_point);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02dZ", static_cast<int>(ymd.year()),
                  static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()), static_cast<int>(t.hours().count()),
                  static_cast<int>(t.minutes().count()), static_cast<int>(t.seconds().count()));
    return buf;
}

std::string activity_key(const std::string& activity_id) { return "cs-timeline:" + activity_id; }

// The seed's limit differs by mode: Task sync leaves out files of 25 MB or more
// (「25MB以上は同期されません」), Event sync files over 25 MB (「25 MBを超える」).
std::optional<std::string> attachment_left_out(const std::string& what, int64_t bytes, const Settings& settings) {
    const bool event_mode = settings.sync_to == "Event";
    if (event_mode ? bytes <= kMaxAttachmentBytes : bytes < kMaxAttachmentBytes) return std::nullopt;
    return what + " is " + megabytes(bytes) + " (" + std::to_string(bytes) + " bytes), " +
           (event_mode ? "over the 25 MB (26,214,400 bytes) Event sync takes"
                       : "25 MB (26,214,400 bytes) or more, which Task sync leaves out") +
           "; not synced";
}

Mapped activity_operations(const json::object& activity, const Settings& settings) {
    std::string id = text(activity, "id");
    if (id.empty()) throw std::invalid_argument("activity has no \"id\"");
    std::string where = "activity " + id;
    std::string type = text(activity, "type");
    if (type.empty()) throw std::invalid_argument(where + ": \"type\" is missing");
    Mapped out;
    if (!settings.activity_types.count(type)) return out;  // "sync to CRM" is off for this type

    std::string when = text(activity, "activity_date");
    if (when.empty()) throw std::invalid_argument(where + ": \"activity_date\" is missing");
    json::object fields{{"Subject", utf8_prefix(text(activity, "subject"), 255)},
                        {"Description", utf8_prefix(html_to_text(text(activity, "notes")), 32000)}};
    if (settings.sync_to == "Task") {
        // A Task's due date is the activity's own calendar day, as the author saw it.
        if (when.size() < 10 || when[4] != '-' || when[7] != '-')
            throw std::invalid_argument(where + ": \"activity_date\" " + when + " is not a date (YYYY-MM-DD...)");
        fields["ActivityDate"] = when.substr(0, 10);
        fields["Status"] = settings.status;
        fields["Priority"] = settings.priority;
    } else {
        auto start = parse_timestamp_ms(when);
        if (!start)
            throw std::invalid_argument(
                where + ": \"activity_date\" " + when +
                " is not a date-time with a zone (e.g. 2026-11-20T10:00:00+09:00); an Event needs its start time");
        fields["StartDateTime"] = format_utc(*start);
        if (auto* minutes = activity.if_contains("duration_minutes"); minutes && !minutes->is_null()) {
            if (!minutes->is_int64() || minutes->as_int64() < 0)
                throw std::invalid_argument(where + ": \"duration_minutes\" must be a whole number of minutes, not " +
                                            json::serialize(*minutes));
            fields["DurationInMinutes"] = minutes->as_int64();
        }
    }
    if (auto account = text(object(activity, "company"), "crm_account_id"); !account.empty()) fields["WhatId"] = account;

    json::object op{
        {"object", settings.sync_to}, {"action", "upsert"}, {"key", activity_key(id)}, {"source_id", id}, {"fields", fields}};
    if (auto author = text(object(activity, "author"), "email"); !author.empty())
        op["owner"] = json::object{{"email", author}, {"if_missing", json::array{"create_integration_user", "connection_user"}}};
    json::array emails;
    for (const auto& a : array(activity, "external_attendees"))
        if (a.is_object())
            if (auto e = text(a.get_object(), "email"); !e.empty()) emails.emplace_back(e);
    if (!emails.empty())
        op["related"] = json::object{{"emails", emails}, {"prefer", json::array{"Contact"}}, {"max_contacts", 50}};
    if (settings.writeback) op["writeback"] = true;
    out.operations.push_back(std::move(op));

    if (!settings.attachments_since_ms) return out;
    for (const auto& a : array(activity, "attachments")) {
        if (!a.is_object()) continue;
        const auto& file = a.get_object();
        std::string file_id = text(file, "id"), name = text(file, "name");
        if (file_id.empty() || name.empty()) throw std::invalid_argument(where + ": an attachment has no \"id\" or \"name\"");
        auto added = parse_timestamp_ms(text(file, "added_at"));
        if (!added) throw std::invalid_argument(where + ": attachment " + name + " has no valid \"added_at\"");
        if (*added < *settings.attachments_since_ms) continue;  // added before the switch-on
        auto* size = file.if_contains("size");
        int64_t bytes = size && size->is_int64() ? size->as_int64() : 0;
        if (auto left_out = attachment_left_out(where + ": attachment \"" + name + "\"", bytes, settings)) {
            out.warnings.push_back(*left_out);
            continue;
        }
        std::string ref = file.contains("path") ? "path:" + text(file, "path") : "id:" + file_id;
        out.operations.push_back(
            json::object{{"object", "ContentVersion"},
                         {"action", "upsert"},
                         {"key", activity_key(id) + ":attachment:" + file_id},
                         {"source_id", id},
                         {"fields", json::object{{"Title", utf8_prefix(stem(name), 255)}, {"PathOnClient", name}}},
                         {"refs", json::object{{"FirstPublishLocationId", activity_key(id)}}},
                         {"blobs", json::object{{"VersionData", ref}}}});
    }
    return out;
}

std::vector<json::object> targets(const Settings& settings) {
    std::vector<json::object> out;
    if (settings.sync_to == "Task") {
        out.push_back({{"type", "target"},
                       {"object", "Task"},
                       {"fields", json::array{"Subject", "Description", "ActivityDate", "Status", "Priority", "OwnerId", "WhoId",
                                              "TaskWhoIds", "WhatId"}},
                       {"values", json::object{{"Status", settings.status}, {"Priority", settings.priority}}}});
    } else {
        out.push_back(
            {{"type", "target"},
             {"object", "Event"},
             {"fields", json::array{"Subject", "Description", "StartDateTime", "OwnerId", "WhoId", "EventWhoIds", "WhatId"}},
             {"required_any",
              json::array{json::object{
                  {"fields", json::array{"DurationInMinutes", "EndDateTime"}},
                  {"unless_true", "IsAllDayEvent"},
                  {"hint",
                   "activities without a duration have no end and fail with REQUIRED_FIELD_MISSING on DurationInMinutes; "
                   "add the custom mapping {\"source\": \"duration_minutes\", \"field\": \"DurationInMinutes\", "
                   "\"type\": \"number\", \"default\": 0, \"object\": \"Event\"} (real durations are kept, the rest "
                   "end when they start), or map \"activity_date\" to EndDateTime (every Event then ends when it starts)"}}}}});
    }
    if (settings.attachments_since_ms)
        out.push_back({{"type", "target"},
                       {"object", "ContentVersion"},
                       {"fields", json::array{"Title", "PathOnClient", "VersionData", "FirstPublishLocationId"}}});
    return out;
}

}  // namespace cstimeline
