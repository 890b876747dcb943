// crmsync/support/json_plugin.hpp — optional C++17 helpers for plugins written with
// Boost.JSON: emitting items, failing a call, reading strings, calling HTTP through the
// host, and answering a `records` request from a folder of JSON Lines exports. Not part of
// the ABI: header-only, it only calls the host services of plugin.h. Include it after
// <boost/json.hpp> is available to your target (link Boost::json).
#ifndef CRMSYNC_SUPPORT_JSON_PLUGIN_HPP
#define CRMSYNC_SUPPORT_JSON_PLUGIN_HPP

#include <crmsync/plugin.h>
#include <crmsync/support/json_outline.hpp>
#include <crmsync/support/jsonl_folder.hpp>
#include <crmsync/support/text.hpp>

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace crmsync::support {

namespace json = boost::json;

// Sends one item (a fetch item, an operation, a write result) to the host.
inline int32_t emit(const crmsync_host_api* host, crmsync_call* call, const json::value& item) {
    std::string text = json::serialize(item);
    return host->emit(call, text.data(), text.size());
}
// The same for an object, serialized as it is: through the overload above it would first be
// copied, member by member, into a temporary json::value.
inline int32_t emit(const crmsync_host_api* host, crmsync_call* call, const json::object& item) {
    std::string text = json::serialize(item);
    return host->emit(call, text.data(), text.size());
}

// The object a JSON text holds — what the host passes to every entry point — moved out of
// the parsed value: `auto o = json::parse(text).as_object()` copies every member of it.
// Throws (within guarded(): a failed call) when the text is not a JSON object.
// Give it `sp` when the object dies with the call that parsed it — a record in map(), a
// batch in write(): with a json::monotonic_resource on the call's stack each member is a
// pointer bump, not an allocation, and nothing is freed member by member. Whatever is copied
// from the object, or moved into it, lands in the same arena: let nothing of it outlive the
// resource, and keep it to the calling thread (the resource is not thread-safe).
//   json::monotonic_resource arena;
//   auto record = parse_object(record_json, &arena);
inline json::object parse_object(std::string_view text, json::storage_ptr sp = {}) {
    json::value parsed = json::parse(text, std::move(sp));
    return std::move(parsed.as_object());
}

// Says why the call failed and returns `status`, for `return fail(...)`.
inline int32_t fail(const crmsync_host_api* host, crmsync_call* call, int32_t status, const std::string& message) {
    host->fail(call, status, message.c_str());
    return status;
}

// Runs the body of one entry point: whatever it throws becomes a failed call with its
// message, so no exception crosses the ABI.
//   return guarded(host, call, [&]() -> int32_t { ...; return CRMSYNC_STATUS_OK; });
template <class Body>
int32_t guarded(const crmsync_host_api* host, crmsync_call* call, Body&& body) noexcept {
    try {
        return body();
    } catch (const std::exception& e) {
        host->fail(call, CRMSYNC_STATUS_ERROR, e.what());
    } catch (...) {
        host->fail(call, CRMSYNC_STATUS_ERROR, "unexpected error (not a std::exception)");
    }
    return CRMSYNC_STATUS_ERROR;
}

// The string at `key`, or "" when it is absent or not a string.
inline std::string text(const json::object& o, std::string_view key) {
    auto* v = o.if_contains(key);
    return v && v->is_string() ? std::string(v->get_string()) : std::string();
}

// A scalar as text, as an operator would write it: a string as it is, null as "", true or
// false, a number without an exponent for everyday values (%.15g for a double).
inline std::string scalar_text(const json::value& v) {
    if (v.is_string()) return std::string(v.get_string());
    if (v.is_null()) return "";
    if (v.is_bool()) return v.get_bool() ? "true" : "false";
    if (v.is_double()) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.15g", v.get_double());
        return buf;
    }
    return json::serialize(v);
}

// Percent-encodes everything but RFC 3986's unreserved characters.
inline std::string url_encode(std::string_view s) {
    static const char hex[] = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : s) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') out += static_cast<char>(c);
        else out += {'%', hex[c >> 4], hex[c & 15]};
    }
    return out;
}

// The value of one header in a response's "Name: value\r\n..." block, matched
// case-insensitively; "" when absent.
inline std::string header_value(const char* headers, std::string name) {
    if (!headers) return "";
    std::string all(headers), lower = ascii_lower(all);
    name = ascii_lower(name) + ':';
    for (size_t at = lower.find(name); at != std::string::npos; at = lower.find(name, at + 1)) {
        if (at != 0 && lower[at - 1] != '\n') continue;
        size_t start = at + name.size(), end = all.find_first_of("\r\n", start);
        std::string v = all.substr(start, end == std::string::npos ? std::string::npos : end - start);
        v.erase(0, std::min(v.size(), v.find_first_not_of(' ')));
        return v;
    }
    return "";
}

// Waits `ms` milliseconds, waking every 50 ms to see whether the run is stopping; false when
// it is (the caller returns CRMSYNC_STATUS_CANCELLED). For rate limits and polling.
inline bool wait_unless_cancelled(const crmsync_host_api* host, crmsync_call* call, int64_t ms) {
    for (int64_t slept = 0; slept < ms; slept += 50) {
        if (host->cancelled(call)) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(std::min<int64_t>(50, ms - slept)));
    }
    return !host->cancelled(call);
}

// One request through the host's HTTP service. `rc` is the host's status (OK when any
// answer arrived, whatever its HTTP status); the answer is copied out.
struct HttpAnswer {
    int32_t rc = CRMSYNC_STATUS_ERROR;
    int status = 0;
    std::string body;
    std::string headers;
};

inline HttpAnswer http(const crmsync_host_api* host, crmsync_call* call, const char* method, const std::string& url,
                       const std::vector<std::string>& headers, const std::string& body = "", bool idempotent = false,
                       uint32_t timeout_ms = 0) {
    std::vector<const char*> header_ptrs;
    for (const auto& h : headers) header_ptrs.push_back(h.c_str());
    crmsync_http_request req;
    std::memset(&req, 0, sizeof req);
    req.struct_size = sizeof req;
    req.method = method;
    req.url = url.c_str();
    req.headers = header_ptrs.empty() ? nullptr : header_ptrs.data();
    req.header_count = static_cast<uint32_t>(header_ptrs.size());
    req.body = body.empty() ? nullptr : body.data();
    req.body_size = body.size();
    req.timeout_ms = timeout_ms;
    req.idempotent = idempotent ? 1 : 0;
    crmsync_http_response res;
    std::memset(&res, 0, sizeof res);
    res.struct_size = sizeof res;
    HttpAnswer answer;
    answer.rc = host->http(call, &req, &res);
    answer.status = res.status;
    if (res.body) answer.body.assign(res.body, res.body_size);
    if (res.headers) answer.headers = res.headers;
    return answer;
}

// http(), waiting out "429 Too Many Requests" as its Retry-After says (1 s when it says
// nothing, at most 2 minutes a wait, at most `max_waits` waits), each wait logged under
// `api` ("the timeline API"). A stop meanwhile answers rc CANCELLED; otherwise the last
// answer, which is still a 429 when the API kept refusing.
inline HttpAnswer http_waiting_out_429(const crmsync_host_api* host, crmsync_call* call, const char* method,
                                       const std::string& url, const std::vector<std::string>& headers, const std::string& body,
                                       bool idempotent, const std::string& api, int max_waits = 20) {
    for (int waits = 0;; ++waits) {
        if (host->cancelled(call)) return HttpAnswer{CRMSYNC_STATUS_CANCELLED, 0, "", ""};
        auto answer = http(host, call, method, url, headers, body, idempotent);
        if (answer.rc != CRMSYNC_STATUS_OK || answer.status != 429 || waits >= max_waits) return answer;
        const std::string told = header_value(answer.headers.c_str(), "Retry-After");
        int64_t seconds = 1;
        if (!told.empty() && told.size() <= 6 && told.find_first_not_of("0123456789") == std::string::npos)
            seconds = std::stoll(told);
        const int64_t wait = std::clamp<int64_t>(seconds * 1000, 1000, 120'000);
        host->log(call, CRMSYNC_LOG_INFO, (api + " rate limit reached; waiting " + std::to_string(wait / 1000) + " s").c_str());
        if (!wait_unless_cancelled(host, call, wait)) return HttpAnswer{CRMSYNC_STATUS_CANCELLED, 0, "", ""};
    }
}

namespace detail {

// Only one member of the top-level object: its value when that is a scalar.
class MemberScalar : public TopLevelOutline {
public:
    explicit MemberScalar(std::string_view field) : field_(field) {}
    bool object = false;  // the text is an object
    int found = 0;        // how many times the member appears
    std::optional<json::value> value;

    bool on_object_begin(error_code&) {
        if (depth_ == 0) object = true;
        take(std::nullopt);
        return enter();
    }
    bool on_array_begin(error_code&) {
        take(std::nullopt);
        return enter();
    }
    bool on_key(string_view s, std::size_t, error_code&) {
        if (depth_ != 1) return true;
        pieces_.append(s.data(), s.size());
        current_ = pieces_ == field_;
        found += current_ ? 1 : 0;
        pieces_.clear();
        return true;
    }
    bool on_string_part(string_view s, std::size_t, error_code&) {
        if (depth_ == 1 && current_) pieces_.append(s.data(), s.size());
        return true;
    }
    bool on_string(string_view s, std::size_t, error_code&) {
        if (depth_ != 1) return true;
        if (current_) {
            pieces_.append(s.data(), s.size());
            take(json::value(json::string_view(pieces_)));
        }
        pieces_.clear();
        current_ = false;
        return true;
    }
    bool on_int64(int64_t v, string_view, error_code&) { return take(json::value(v)), true; }
    bool on_uint64(uint64_t v, string_view, error_code&) { return take(json::value(v)), true; }
    bool on_double(double v, string_view, error_code&) { return take(json::value(v)), true; }
    bool on_bool(bool v, error_code&) { return take(json::value(v)), true; }
    bool on_null(error_code&) { return take(json::value(nullptr)), true; }

private:
    // A value at the top level ends the member it belongs to.
    void take(std::optional<json::value> v) {
        if (depth_ != 1) return;
        if (current_) value = std::move(v);
        current_ = false;
    }
    std::string_view field_;
    bool current_ = false;
};

}  // namespace detail

// The value of `field` in the JSON object `text` holds, found without building the object
// (Boost.JSON's parser still checks the whole text). Nothing when the text is not an
// object, has the member not exactly once, or its value is an object or array: parse the
// text whole then (json::parse, parse_object).
inline std::optional<json::value> object_member(std::string_view text, std::string_view field) {
    auto found = outline_json<detail::MemberScalar>(text, field);
    if (!found || !found->object || found->found != 1) return std::nullopt;
    return std::move(found->value);
}

// A record id as text: a string as it is, an integer as "#24" — so that the number 24 and
// the string "24" stay two records. Anything else is no id.
inline std::optional<std::string> id_text(const json::value& id) {
    if (id.is_string()) return std::string(id.get_string());
    std::string text(1, '#');
    if (id.is_int64()) return text += std::to_string(id.get_int64());
    if (id.is_uint64()) return text += std::to_string(id.get_uint64());
    return std::nullopt;
}

// One source record as a `record` item, its id taken from `id_field`. A record that is
// not a JSON object, or has no id, is still a record, named by `where` (e.g. "a.jsonl:12")
// and carrying {"_invalid": "<where>: ..."} so map() fails it alone (see map_invalid).
inline json::object record_item(json::value record, std::string_view id_field, const std::string& where) {
    if (!record.is_object())
        return {{"type", "record"}, {"id", where}, {"record", json::object{{"_invalid", where + ": not a JSON object"}}}};
    auto& o = record.as_object();
    auto* id = o.if_contains(id_field);
    if (id && !id->is_null() && !id_text(*id)) {
        o["_invalid"] = where + ": \"" + std::string(id_field) + "\" must be a string or an integer, not " + json::serialize(*id);
        return {{"type", "record"}, {"id", where}, {"record", std::move(record)}};
    }
    std::string record_id = !id || id->is_null() ? where : *id_text(*id);
    if (record_id.empty()) record_id = where;
    if (record_id == where) o["_invalid"] = where + ": no \"" + std::string(id_field) + "\"";
    return {{"type", "record"}, {"id", record_id}, {"record", std::move(record)}};
}

// A `record` item around a record whose JSON text is at hand — a line just read, parsed
// only to find its id: the text goes in as it is instead of being serialized again from
// its values. `record_text` must be a JSON object's text; the host parses the item (and
// fails the call when it is not).
inline int32_t emit_record_text(const crmsync_host_api* host, crmsync_call* call, std::string_view id,
                                std::string_view record_text) {
    std::string item = R"({"type":"record","id":)";
    item.reserve(item.size() + id.size() + record_text.size() + 16);
    item += json::serialize(json::string_view(id.data(), id.size()));
    item += R"(,"record":)";
    item += record_text;
    item += '}';
    return host->emit(call, item.data(), item.size());
}

// One CRM row (a query, find or whoami answer) as a `record` item: its `id` is the row's
// Id, left out when the query did not select one (e.g. SELECT ContactId FROM ...).
inline json::object crm_row_item(json::object row) {
    json::object item{{"type", "record"}};
    if (auto* id = row.if_contains("Id"); id && id->is_string() && !id->get_string().empty()) item["id"] = *id;
    item["record"] = std::move(row);
    return item;
}

// The item that ends a `records` answer: where the next one resumes, and whether it should.
inline json::object checkpoint_item(json::value cursor, bool more) {
    return {{"type", "checkpoint"}, {"cursor", std::move(cursor)}, {"more", more}};
}

// One export line as a `record` item, named by file and line.
inline json::object jsonl_record_item(const JsonlLine& line, std::string_view id_field) {
    std::string where = line.file + ":" + std::to_string(line.number);
    if (line.cut())
        return {
            {"type", "record"},
            {"id", where},
            {"record", json::object{{"_invalid", where + ": a line of " + std::to_string(line.bytes) + " bytes, more than the " +
                                                     std::to_string(kMaxJsonlLineBytes >> 20) + " MiB a record may have"}}}};
    json::error_code ec;
    auto record = json::parse(line.text, ec);
    return record_item(ec ? json::value(nullptr) : std::move(record), id_field, where);
}

// Answers a `records` request from a folder of exports: at most `limit` record items after
// the {"file", "line"} cursor, then the checkpoint.
inline int32_t answer_jsonl_records(const crmsync_host_api* host, crmsync_call* call, const std::string& folder,
                                    const json::object& request, std::string_view id_field) {
    JsonlCursor after;
    if (auto* c = request.at("cursor").if_object()) after = {std::string(c->at("file").as_string()), c->at("line").as_int64()};
    auto page = read_jsonl_page(folder, after, static_cast<size_t>(request.at("limit").as_int64()));
    for (const auto& line : page.lines) {
        // A line that is an object with an id goes as its own text; any other is named by
        // file and line, and marked for map() to fail (jsonl_record_item).
        std::optional<std::string> id;
        if (!line.cut()) {
            const auto take = [&](const json::value* field) {
                if (field && !field->is_null()) id = id_text(*field);
            };
            // The id alone is read; only a line it cannot be read from that way is parsed whole.
            if (auto found = object_member(line.text, id_field)) {
                take(&*found);
            } else {
                json::monotonic_resource arena;
                json::error_code ec;
                auto parsed = json::parse(line.text, ec, &arena);
                take(!ec && parsed.is_object() ? parsed.get_object().if_contains(id_field) : nullptr);
            }
        }
        int32_t rc = id && !id->empty() ? emit_record_text(host, call, *id, line.text)
                                        : emit(host, call, jsonl_record_item(line, id_field));
        if (rc != CRMSYNC_STATUS_OK) return rc;
    }
    return emit(host, call, checkpoint_item(json::object{{"file", page.next.file}, {"line", page.next.line}}, page.more));
}

// In map(): a record jsonl_record_item marked unreadable fails the call with its message.
// Returns true when it did.
inline bool map_invalid(const crmsync_host_api* host, crmsync_call* call, const json::object& record, int32_t& status) {
    auto* invalid = record.if_contains("_invalid");
    if (!invalid || !invalid->is_string()) return false;
    status = fail(host, call, CRMSYNC_STATUS_ERROR, std::string(invalid->get_string()));
    return true;
}

}  // namespace crmsync::support

#endif
