#pragma once
// JSON helpers shared by the host: parsing that reports line and column, canonical text
// for content hashes, and small typed accessors that produce operator-grade messages.
#include <boost/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "status.h"

namespace crmsync {

namespace json = boost::json;

// Parses text; on failure the message is "line L, column C: <reason>".
// The value is made in `storage` (a per-call monotonic resource for what plugins emit: one
// block freed at once instead of a malloc and free per string and container).
Result<json::value> parse_json(std::string_view text, json::storage_ptr storage = {});

// A record item as a source's fetch emits it, {"type": "record", "id": "…", "record": {…}},
// read without building the record: its id, and the record's text as the plugin wrote it
// (views into `text`). Boost.JSON's parser checks the whole text first, to the same depth
// and UTF-8 rules as parse_json. Nothing when the text is not such an item in this plain
// form (another type, a key or id with an escape, a member twice, not JSON at all):
// parse_json then reads it whole, and says what is wrong with it.
struct RecordItemText {
    std::string id;
    std::string_view record;
};
std::optional<RecordItemText> read_record_item(std::string_view text);
// Whether text is one well-formed JSON value (checked without building it).
bool is_json(std::string_view text);

// Reads and parses a file; messages start with the path.
// A file over `max_bytes` is refused unread (a wrong file, or one grown by accident).
Result<json::value> read_json_file(const std::string& path, size_t max_bytes = 1 << 20);
// At most the first max_bytes + 1 bytes of a file (one more than allowed, so a caller can
// tell it was larger), or nullopt when it cannot be read.
std::optional<std::string> read_file_prefix(const std::string& path, size_t max_bytes);

// Serialization with object keys sorted at every level, so equal values give equal text.
std::string canonical_json(const json::value& value);
// The same, appended to `out`: for text written in pieces (Operation::canonical_text).
void append_canonical(const json::value& value, std::string& out);
void append_canonical(const json::object& object, std::string& out);
// A string as canonical_json writes it, quotes included.
void append_json_string(std::string_view text, std::string& out);

// Typed look-ups that return nullptr / nullopt when absent or of another type.
const json::value* find(const json::object& object, std::string_view key);
const json::object* find_object(const json::object& object, std::string_view key);
const json::array* find_array(const json::object& object, std::string_view key);
std::optional<std::string> find_string(const json::object& object, std::string_view key);
// The string at key, or "" when absent or not a string.
std::string find_text(const json::object& object, std::string_view key);
std::optional<int64_t> find_int(const json::object& object, std::string_view key);
std::optional<bool> find_bool(const json::object& object, std::string_view key);

// Scalar as text the way an operator would write it (strings unquoted).
std::string scalar_text(const json::value& value);

}  // namespace crmsync
