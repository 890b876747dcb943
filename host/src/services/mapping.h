#pragma once
// Field mapping: the operator's `mappings` in a module manifest, applied by the host to
// each source record on top of the plugin's fixed defaults. A mapping takes a value at a
// source path ("contact.emails[0]"), converts it strictly to its type and writes it to a
// CRM field. Datetimes go out in UTC; dates stay dates and are never shifted.
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "../json.h"
#include "../operation.h"
#include "../status.h"

namespace crmsync {

struct FieldMapping {
    int index = 0;              // position in the manifest, for messages
    std::string source;         // dotted path, array index allowed
    std::string field;          // CRM field
    std::string object;         // only operations on this object; empty: all
    std::string type = "text";  // text, number, bool, date, datetime, picklist, multipicklist
    json::value fallback;       // "default": used when the source value is absent or null
    bool truncate = false;      // cut to the CRM field's length instead of failing
    std::optional<int> max_lines;
    std::string format;    // strptime-style format for dates/datetimes not in ISO 8601
    std::string timezone;  // IANA zone for source times without an offset
    std::string label() const;
};

Result<std::vector<FieldMapping>> parse_mappings(const json::array& mappings);

// Refuses custom mappings onto a plugin's fixed fields: `defaults` is object -> fields.
Status check_against_defaults(const std::vector<FieldMapping>& mappings,
                              const std::map<std::string, std::set<std::string>>& defaults, const std::string& plugin_id);

// The value at a path like "a.b[2].c", or nullptr.
const json::value* lookup_path(const json::value& root, std::string_view path);

// Converts one source value to the mapping's type. The message names the mapping, the
// value and the expected type.
Result<json::value> convert_value(const FieldMapping& mapping, const json::value& value);

// Applies every mapping for the operation's object; the first failure is returned.
Status apply_mappings(const std::vector<FieldMapping>& mappings, const json::value& record, Operation& operation);

}  // namespace crmsync
