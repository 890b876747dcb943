#include "json.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <sstream>
#include <vector>

namespace crmsync {

Result<json::value> parse_json(std::string_view text) {
    json::stream_parser parser;
    boost::system::error_code ec;
    std::size_t consumed = parser.write_some(text.data(), text.size(), ec);
    if (!ec) parser.finish(ec);
    if (ec) {
        // Where the parser stopped is where the operator should look.
        std::size_t line = 1, column = 1;
        for (std::size_t i = 0; i < consumed && i < text.size(); ++i) {
            if (text[i] == '\n') {
                ++line;
                column = 1;
            } else {
                ++column;
            }
        }
        return Status::config("line " + std::to_string(line) + ", column " + std::to_string(column) + ": " + ec.message());
    }
    return parser.release();
}

Result<json::value> read_json_file(const std::string& path, size_t max_bytes) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return Status::config(path + ": cannot be read (check the path and its permissions)");
    std::string text(max_bytes + 1, '\0');
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(static_cast<size_t>(in.gcount()));
    if (text.size() > max_bytes)
        return Status::config(path + ": larger than " + std::to_string(max_bytes) +
                              " bytes, more than such a file ever needs (is it the right file?); refused unread");
    auto parsed = parse_json(text);
    if (!parsed) return parsed.status().prefixed(path + ": not valid JSON at ");
    return parsed;
}

namespace {
void write_canonical(const json::value& value, std::string& out) {
    if (value.is_object()) {
        const auto& object = value.get_object();
        std::vector<const json::key_value_pair*> entries;
        entries.reserve(object.size());
        for (const auto& entry : object) entries.push_back(&entry);
        std::sort(entries.begin(), entries.end(), [](auto* a, auto* b) { return a->key() < b->key(); });
        out += '{';
        bool first = true;
        for (auto* entry : entries) {
            if (!first) out += ',';
            first = false;
            out += json::serialize(json::string_view(entry->key()));
            out += ':';
            write_canonical(entry->value(), out);
        }
        out += '}';
    } else if (value.is_array()) {
        out += '[';
        bool first = true;
        for (const auto& item : value.get_array()) {
            if (!first) out += ',';
            first = false;
            write_canonical(item, out);
        }
        out += ']';
    } else {
        out += json::serialize(value);
    }
}
}  // namespace

std::string canonical_json(const json::value& value) {
    std::string out;
    write_canonical(value, out);
    return out;
}

const json::value* find(const json::object& object, std::string_view key) { return object.if_contains(key); }
const json::object* find_object(const json::object& object, std::string_view key) {
    auto* v = object.if_contains(key);
    return v ? v->if_object() : nullptr;
}
const json::array* find_array(const json::object& object, std::string_view key) {
    auto* v = object.if_contains(key);
    return v ? v->if_array() : nullptr;
}
std::optional<std::string> find_string(const json::object& object, std::string_view key) {
    auto* v = object.if_contains(key);
    if (!v || !v->is_string()) return std::nullopt;
    return std::string(v->get_string());
}
std::string find_text(const json::object& object, std::string_view key) { return find_string(object, key).value_or(""); }

std::optional<int64_t> find_int(const json::object& object, std::string_view key) {
    auto* v = object.if_contains(key);
    if (!v) return std::nullopt;
    if (v->is_int64()) return v->get_int64();
    if (v->is_uint64() && v->get_uint64() <= static_cast<uint64_t>(INT64_MAX)) return static_cast<int64_t>(v->get_uint64());
    return std::nullopt;
}
std::optional<bool> find_bool(const json::object& object, std::string_view key) {
    auto* v = object.if_contains(key);
    if (!v || !v->is_bool()) return std::nullopt;
    return v->get_bool();
}

std::string scalar_text(const json::value& value) {
    if (value.is_string()) return std::string(value.get_string());
    if (value.is_double()) {
        // As a person writes it: 18, 18.5 — not Boost.JSON's 1.8E1.
        const double d = value.get_double();
        char buf[32];
        auto [end, ec] = std::abs(d) < 1e15 && d == static_cast<double>(static_cast<int64_t>(d))
                             ? std::to_chars(buf, buf + sizeof buf, static_cast<int64_t>(d))
                             : std::to_chars(buf, buf + sizeof buf, d);
        if (ec == std::errc()) return std::string(buf, end);
    }
    return json::serialize(value);
}

}  // namespace crmsync
