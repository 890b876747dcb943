#include "json.h"

#include <crmsync/support/json_outline.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <vector>

namespace crmsync {

Result<json::value> parse_json(std::string_view text, json::storage_ptr storage) {
    // One parser a thread, reset for each text: constructing one costs more than parsing a
    // small operation or result, and the host parses one for every item a plugin emits.
    thread_local std::optional<json::stream_parser> reused;
    // A large text (a file's content) leaves the parser's buffers as large: start afresh after it.
    if (!reused || text.size() > (1u << 20)) reused.emplace();
    json::stream_parser& parser = *reused;
    parser.reset(std::move(storage));
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
        parser.reset();
        return Status::config("line " + std::to_string(line) + ", column " + std::to_string(column) + ": " + ec.message());
    }
    return parser.release();
}

namespace {

// Boost.JSON's parser, told only what a record item needs: whether the text is an object,
// its members "type", "id" (their string values) and "record" (whether it is an object, and
// where its key and the next member's key sit in the text). Keys and values deeper down
// are checked by the parser and otherwise ignored.
class ItemOutline : public support::TopLevelOutline {
public:
    explicit ItemOutline(std::string_view input) : input_(input) {}

    bool top_is_object = false;
    bool twice = false;  // "type", "id" or "record" more than once
    bool type_is_record = false;
    std::optional<std::string> id;
    bool record_is_object = false;
    const char* record_key = nullptr;  // the "record" key's text (in the input), else null
    const char* next_key = nullptr;    // the key of the member after "record" (in the input)
    bool record_followed = false;      // a member comes after "record"

    bool on_object_begin(error_code&) {
        if (depth_ == 0) top_is_object = true;
        if (depth_ == 1) {
            record_is_object = record_is_object || current_ == Member::record;
            current_ = Member::other;
        }
        return enter();
    }
    bool on_array_begin(error_code&) {
        if (depth_ == 1) current_ = Member::other;
        return enter();
    }
    bool on_key(string_view s, std::size_t, error_code&) {
        if (depth_ != 1) return true;
        const bool whole = pieces_.empty();
        pieces_.append(s.data(), s.size());
        const char* at = whole && in_input(s) ? s.data() : nullptr;  // an escaped key is not
        if (after_record_) {
            after_record_ = false;
            record_followed = true;
            next_key = at;
        }
        current_ = pieces_ == "type"     ? Member::type
                   : pieces_ == "id"     ? Member::id
                   : pieces_ == "record" ? Member::record
                                         : Member::other;
        if (current_ != Member::other) {
            const auto bit = 1u << static_cast<unsigned>(current_);
            twice = twice || (seen_ & bit) != 0;
            seen_ |= bit;
        }
        if (current_ == Member::record) {
            record_key = at;
            after_record_ = true;
        }
        pieces_.clear();
        return true;
    }
    bool on_string_part(string_view s, std::size_t, error_code&) {
        if (depth_ == 1) pieces_.append(s.data(), s.size());
        return true;
    }
    bool on_string(string_view s, std::size_t, error_code&) {
        if (depth_ != 1) return true;
        pieces_.append(s.data(), s.size());
        if (current_ == Member::type) type_is_record = pieces_ == "record";
        if (current_ == Member::id) id = pieces_;
        pieces_.clear();
        current_ = Member::other;
        return true;
    }
    bool on_int64(int64_t, string_view, error_code&) { return scalar(); }
    bool on_uint64(uint64_t, string_view, error_code&) { return scalar(); }
    bool on_double(double, string_view, error_code&) { return scalar(); }
    bool on_bool(bool, error_code&) { return scalar(); }
    bool on_null(error_code&) { return scalar(); }

private:
    enum class Member : unsigned { type, id, record, other };
    bool scalar() {
        if (depth_ == 1) current_ = Member::other;
        return true;
    }
    bool in_input(string_view s) const {
        return s.data() >= input_.data() && s.data() + s.size() <= input_.data() + input_.size();
    }
    std::string_view input_;
    Member current_ = Member::other;
    unsigned seen_ = 0;
    bool after_record_ = false;
};

bool json_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

}  // namespace

std::optional<RecordItemText> read_record_item(std::string_view text) {
    auto item = support::outline_json<ItemOutline>(text, text);
    if (!item || !item->top_is_object || item->twice || !item->type_is_record || !item->id || !item->record_is_object ||
        !item->record_key || (item->record_followed && !item->next_key))
        return std::nullopt;
    // The parser has checked the text, so between a key and the next only white space, a
    // colon, the value and a comma can stand: the record runs from the '{' after its key's
    // colon to the '}' before the next member's comma (or before the item's own '}').
    const char* const end = text.data() + text.size();
    const char* p = item->record_key + std::string_view("record").size() + 1;  // past the closing quote
    while (p < end && json_space(*p)) ++p;
    if (p == end || *p != ':') return std::nullopt;
    ++p;
    while (p < end && json_space(*p)) ++p;
    if (p == end || *p != '{') return std::nullopt;
    const char* q = item->record_followed ? item->next_key - 1 : end;  // the next key's quote, or the end
    while (q > p && json_space(q[-1])) --q;
    if (q == p || q[-1] != (item->record_followed ? ',' : '}')) return std::nullopt;
    --q;
    while (q > p && json_space(q[-1])) --q;
    if (q == p || q[-1] != '}') return std::nullopt;
    return RecordItemText{std::move(*item->id), std::string_view(p, static_cast<std::size_t>(q - p))};
}

bool is_json(std::string_view text) { return support::outline_json<support::OutlineHandler>(text).has_value(); }

std::optional<std::string> read_file_prefix(const std::string& path, size_t max_bytes) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return std::nullopt;
    // Read in chunks: a small file costs its size, not the limit's (zeroed) buffer.
    std::string text;
    std::array<char, 65536> chunk;
    while (text.size() <= max_bytes) {
        const size_t want = std::min(chunk.size(), max_bytes + 1 - text.size());
        in.read(chunk.data(), static_cast<std::streamsize>(want));
        text.append(chunk.data(), static_cast<size_t>(in.gcount()));
        if (!in) break;
    }
    return text;
}

Result<json::value> read_json_file(const std::string& path, size_t max_bytes) {
    auto read = read_file_prefix(path, max_bytes);
    if (!read) return Status::config(path + ": cannot be read (check the path and its permissions)");
    const std::string& text = *read;
    if (text.size() > max_bytes)
        return Status::config(path + ": larger than " + std::to_string(max_bytes) +
                              " bytes, more than such a file ever needs (is it the right file?); refused unread");
    auto parsed = parse_json(text);
    if (!parsed) return parsed.status().prefixed(path + ": not valid JSON at ");
    return parsed;
}

namespace {

// Where the first byte at or after `i` that a JSON string must escape (a control, '"' or
// '\\') is, or the text's size. Eight bytes at a time: a word holds one when one of its
// bytes is below 0x20 or, XORed with the quote or the backslash, is zero; the tests are exact
// for "any" (bytes from 0x80 up never count), and a word that has one is read byte by byte.
size_t next_to_escape(std::string_view text, size_t i) {
    constexpr uint64_t kOnes = 0x0101010101010101ULL, kHighs = 0x8080808080808080ULL;
    for (; i + 8 <= text.size(); i += 8) {
        uint64_t w;
        std::memcpy(&w, text.data() + i, 8);
        const uint64_t quote = w ^ (kOnes * '"'), backslash = w ^ (kOnes * '\\');
        const uint64_t found = ((w - kOnes * 0x20) & ~w) | ((quote - kOnes) & ~quote) | ((backslash - kOnes) & ~backslash);
        if (found & kHighs) break;
    }
    for (; i < text.size(); ++i) {
        const unsigned char c = static_cast<unsigned char>(text[i]);
        if (c < 0x20 || c == '"' || c == '\\') return i;
    }
    return i;
}

}  // namespace

// A string as Boost.JSON serializes it (the form content hashes were first made in): `"`,
// `\\` and control characters escaped, everything else — UTF-8 included — as it is.
void append_json_string(std::string_view text, std::string& out) {
    static const char* const kHex = "0123456789abcdef";
    out += '"';
    size_t plain = 0;  // start of the run not yet copied
    for (size_t i = next_to_escape(text, 0); i < text.size(); i = next_to_escape(text, i + 1)) {
        const unsigned char c = static_cast<unsigned char>(text[i]);
        out.append(text, plain, i - plain);
        plain = i + 1;
        out += '\\';
        switch (c) {
            case '"': out += '"'; break;
            case '\\': out += '\\'; break;
            case '\b': out += 'b'; break;
            case '\f': out += 'f'; break;
            case '\n': out += 'n'; break;
            case '\r': out += 'r'; break;
            case '\t': out += 't'; break;
            default:
                out += "u00";
                out += kHex[c >> 4];
                out += kHex[c & 15];
        }
    }
    out.append(text, plain, text.size() - plain);
    out += '"';
}

void append_canonical(const json::object& object, std::string& out) {
    std::vector<const json::key_value_pair*> entries;
    entries.reserve(object.size());
    for (const auto& entry : object) entries.push_back(&entry);
    std::sort(entries.begin(), entries.end(), [](auto* a, auto* b) { return a->key() < b->key(); });
    out += '{';
    for (size_t i = 0; i < entries.size(); ++i) {
        if (i > 0) out += ',';
        append_json_string(entries[i]->key(), out);
        out += ':';
        append_canonical(entries[i]->value(), out);
    }
    out += '}';
}

void append_canonical(const json::value& value, std::string& out) {
    char digits[24];
    switch (value.kind()) {
        case json::kind::object: append_canonical(value.get_object(), out); return;
        case json::kind::array: {
            out += '[';
            bool first = true;
            for (const auto& item : value.get_array()) {
                if (!first) out += ',';
                first = false;
                append_canonical(item, out);
            }
            out += ']';
            return;
        }
        case json::kind::string: append_json_string(value.get_string(), out); return;
        case json::kind::int64: out.append(digits, std::to_chars(digits, digits + sizeof digits, value.get_int64()).ptr); return;
        case json::kind::uint64:
            out.append(digits, std::to_chars(digits, digits + sizeof digits, value.get_uint64()).ptr);
            return;
        case json::kind::bool_: out += value.get_bool() ? "true" : "false"; return;
        case json::kind::null: out += "null"; return;
        case json::kind::double_: out += json::serialize(value); return;  // Boost's own form
    }
}

std::string canonical_json(const json::value& value) {
    std::string out;
    append_canonical(value, out);
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
