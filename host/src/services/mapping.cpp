#include "mapping.h"

#include "../operation.h"

// gcc 12 at -O2 reports a false "may be used uninitialized" inside date::parse's template
// code; the values it names are always written before use.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <crmsync/support/text.hpp>
#include <date/date.h>
#include <date/tz.h>

#include <charconv>
#include <chrono>
#include <cmath>
#include <map>
#include <sstream>

namespace crmsync {

std::string FieldMapping::label() const { return "mappings[" + std::to_string(index) + "] (" + source + " → " + field + ")"; }

namespace {
const std::set<std::string> kTypes{"text", "number", "bool", "date", "datetime", "picklist", "multipicklist"};

Status mismatch(const FieldMapping& m, const json::value& value, const std::string& expected) {
    return Status::error(Status::Kind::record, m.label() + ": " + json::serialize(value) + " is not " + expected);
}

std::string two(unsigned v) {
    std::string text(v < 10 ? "0" : "");
    return text += std::to_string(v);
}

std::string ymd_text(const date::year_month_day& ymd) {
    return std::to_string(int(ymd.year())) + "-" + two(unsigned(ymd.month())) + "-" + two(unsigned(ymd.day()));
}

std::string utc_text(date::sys_time<std::chrono::milliseconds> tp) { return date::format("%FT%TZ", tp); }
}  // namespace

Result<std::vector<FieldMapping>> parse_mappings(const json::array& mappings) {
    std::vector<FieldMapping> out;
    for (size_t i = 0; i < mappings.size(); ++i) {
        std::string where = "\"mappings[" + std::to_string(i) + "]\"";
        if (!mappings[i].is_object()) return Status::config(where + " must be an object {\"source\", \"field\", \"type\"}");
        const auto& o = mappings[i].get_object();
        FieldMapping m;
        m.index = static_cast<int>(i);
        auto source = find_string(o, "source");
        auto field = find_string(o, "field");
        if (!source || source->empty()) return Status::config(where + ": \"source\" (the record path) is missing");
        if (!field || field->empty()) return Status::config(where + ": \"field\" (the CRM field) is missing");
        m.source = *source;
        m.field = *field;
        m.object = find_string(o, "object").value_or("");
        m.type = find_string(o, "type").value_or("text");
        if (!kTypes.count(m.type))
            return Status::config(where + ": \"type\": \"" + m.type +
                                  "\" is not a mapping type (text, number, bool, date, datetime, picklist, multipicklist)");
        if (auto* d = o.if_contains("default")) m.fallback = *d;
        m.truncate = find_bool(o, "truncate").value_or(false);
        if (auto lines = find_int(o, "max_lines")) {
            if (*lines < 1) return Status::config(where + ": \"max_lines\" must be 1 or more");
            m.max_lines = static_cast<int>(*lines);
        }
        m.format = find_string(o, "format").value_or("");
        m.timezone = find_string(o, "timezone").value_or("");
        if (!m.timezone.empty()) {
            try {
                date::locate_zone(m.timezone);
            } catch (const std::exception&) {
                return Status::config(where + ": \"timezone\": \"" + m.timezone +
                                      "\" is not an IANA time zone (e.g. \"Asia/Tokyo\")");
            }
        }
        for (const auto& prior : out)
            if (prior.field == m.field && prior.object == m.object)
                return Status::config(where + ": field \"" + m.field + "\" is already mapped by mappings[" +
                                      std::to_string(prior.index) + "]");
        out.push_back(std::move(m));
    }
    return out;
}

Status check_against_defaults(const std::vector<FieldMapping>& mappings,
                              const std::map<std::string, std::set<std::string>>& defaults, const std::string& plugin_id) {
    for (const auto& m : mappings) {
        if (m.object.empty() && defaults.size() > 1) {
            std::string objects;
            for (const auto& [object, fields] : defaults) objects += (objects.empty() ? "" : ", ") + object;
            return Status::config("\"mappings[" + std::to_string(m.index) + "]\": plugin " + plugin_id + " writes " + objects +
                                  "; say which one \"" + m.field + "\" is on with \"object\"");
        }
        for (const auto& [object, fields] : defaults) {
            if (!m.object.empty() && m.object != object) continue;
            if (fields.count(m.field))
                return Status::config("\"mappings[" + std::to_string(m.index) + "]\": \"" + m.field + "\" on " + object +
                                      " is one of plugin " + plugin_id +
                                      "'s fixed fields; custom mappings may add fields but not replace these");
        }
    }
    return Status::ok();
}

const json::value* lookup_path(const json::value& root, std::string_view path) {
    const json::value* at = &root;
    size_t i = 0;
    while (i < path.size() && at) {
        if (path[i] == '.') {
            ++i;
            continue;
        }
        if (path[i] == '[') {
            auto close = path.find(']', i);
            if (close == std::string_view::npos || !at->is_array()) return nullptr;
            size_t index = 0;
            auto [end, ec] = std::from_chars(path.data() + i + 1, path.data() + close, index);
            if (ec != std::errc() || end != path.data() + close || index >= at->get_array().size()) return nullptr;
            at = &at->get_array()[index];
            i = close + 1;
            continue;
        }
        auto end = path.find_first_of(".[", i);
        std::string_view key = path.substr(i, end == std::string_view::npos ? std::string_view::npos : end - i);
        if (!at->is_object()) return nullptr;
        at = at->get_object().if_contains(key);
        i = end == std::string_view::npos ? path.size() : end;
    }
    return at;
}

Result<json::value> convert_value(const FieldMapping& m, const json::value& value) {
    const std::string& t = m.type;
    if (value.is_null()) return json::value(nullptr);
    if (t == "text" || t == "picklist") {
        std::string text;
        if (value.is_string()) text = std::string(value.get_string());
        else if (value.is_number() || value.is_bool()) text = json::serialize(value);
        else return Status(mismatch(m, value, "text"));
        if (auto why = text_value_problem(m.field, text); !why.empty())
            return Status::error(Status::Kind::record, m.label() + ": " + why);
        if (m.max_lines) text = support::cut_lines(text, *m.max_lines);
        return json::value(json::string(text));
    }
    if (t == "multipicklist") {
        if (value.is_string()) return value;
        if (!value.is_array()) return Status(mismatch(m, value, "a list of picklist values"));
        std::string joined;
        for (const auto& v : value.get_array()) {
            if (!v.is_string()) return Status(mismatch(m, value, "a list of picklist values"));
            if (!joined.empty()) joined += ';';
            joined += v.get_string();
        }
        return json::value(json::string(joined));
    }
    if (t == "number") {
        if (value.is_int64() || value.is_uint64() || value.is_double()) return value;
        if (value.is_string()) {
            std::string s(value.get_string());
            double d = 0;
            auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
            if (ec == std::errc() && end == s.data() + s.size() && !s.empty() && std::isfinite(d)) {
                if (d == std::floor(d) && std::abs(d) < 9e15) return json::value(static_cast<int64_t>(d));
                return json::value(d);
            }
        }
        return Status(mismatch(m, value, "a number"));
    }
    if (t == "bool") {
        if (value.is_bool()) return value;
        if (value.is_string() && (value.get_string() == "true" || value.get_string() == "false"))
            return json::value(value.get_string() == "true");
        return Status(mismatch(m, value, "true or false"));
    }
    if (!value.is_string()) return Status(mismatch(m, value, t == "date" ? "a date" : "a date-time"));
    std::string s(value.get_string());
    std::istringstream in(s);
    if (t == "date") {
        // A date stays the calendar date it names: no time zone applies.
        date::year_month_day ymd{};
        in >> date::parse(m.format.empty() ? "%F" : m.format, ymd);
        if (in.fail() || !ymd.ok()) {
            std::istringstream again(s);
            date::local_time<std::chrono::seconds> lt;  // a date-time given for a date: keep its date
            again >> date::parse("%FT%T", lt);
            if (again.fail())
                return Status(mismatch(m, value, "a date (" + (m.format.empty() ? std::string("YYYY-MM-DD") : m.format) + ")"));
            ymd = date::year_month_day{date::floor<date::days>(lt)};
        }
        return json::value(json::string(ymd_text(ymd)));
    }
    // datetime: with an offset it is absolute; without one it needs the mapping's zone.
    using ms = std::chrono::milliseconds;
    if (m.format.empty()) {
        date::sys_time<ms> tp;
        std::istringstream z(s);
        z >> date::parse("%FT%T%Ez", tp);
        if (!z.fail()) return json::value(json::string(utc_text(tp)));
        std::istringstream zz(s);
        zz >> date::parse("%FT%TZ", tp);
        if (!zz.fail()) return json::value(json::string(utc_text(tp)));
    }
    date::local_time<ms> local;
    std::istringstream l(s);
    l >> date::parse(m.format.empty() ? "%FT%T" : m.format, local);
    if (l.fail()) return Status(mismatch(m, value, "a date-time (ISO 8601" + (m.format.empty() ? "" : " or " + m.format) + ")"));
    if (m.timezone.empty())
        return Status(Status::error(
            Status::Kind::record,
            m.label() + ": \"" + s + "\" has no UTC offset; set \"timezone\" on the mapping (e.g. \"Asia/Tokyo\")"));
    auto zoned = date::make_zoned(m.timezone, local, date::choose::earliest);
    return json::value(json::string(utc_text(zoned.get_sys_time())));
}

Status apply_mappings(const std::vector<FieldMapping>& mappings, const json::value& record, Operation& operation) {
    for (const auto& m : mappings) {
        if (!m.object.empty() && m.object != operation.object) continue;
        const json::value* v = lookup_path(record, m.source);
        json::value value = v ? *v : json::value(nullptr);
        if (value.is_null() && !m.fallback.is_null()) value = m.fallback;
        if (value.is_null()) continue;  // absent: leave the field alone
        auto converted = convert_value(m, value);
        if (!converted) return converted.status();
        operation.fields[m.field] = converted.value();
    }
    return Status::ok();
}

}  // namespace crmsync
