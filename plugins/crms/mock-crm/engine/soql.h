#pragma once
// A SOQL subset, parsed and translated to one SQLite statement over mock-crm's tables:
//   SELECT f, Rel.f, ... | COUNT() FROM Object
//   [WHERE cond with = != <> < > <= >= IN, NOT IN, LIKE, AND, OR, NOT, parentheses]
//   [ORDER BY f [ASC|DESC] [NULLS FIRST|LAST], ...] [LIMIT n] [OFFSET n]
// Not a query engine: SQLite does the work. Errors are CrmError with Salesforce's codes
// (MALFORMED_QUERY, INVALID_FIELD, INVALID_TYPE).
#include <string>
#include <variant>
#include <vector>

#include "schema.h"

namespace mockcrm {

using SqlValue = std::variant<std::nullptr_t, int64_t, double, std::string>;

struct SelectedField {
    std::vector<std::string> path;  // {"Name"} or {"Account", "Name"}, canonical case
    const Field* field = nullptr;
};

struct TranslatedQuery {
    const Object* object = nullptr;
    bool count = false;
    std::vector<SelectedField> fields;
    std::string sql;
    std::vector<SqlValue> binds;
};

TranslatedQuery translate_soql(const std::string& soql, const Schema& schema);

// Column values are stored the way SOQL compares them; these normalise input.
// Datetimes: "YYYY-MM-DDTHH:MM:SS.sss+0000" in UTC. Returns false when not a datetime.
bool normalize_datetime(std::string_view text, std::string& out);
// An ISO 8601 date-time with an offset (stored ones included) as ms since the epoch.
bool parse_datetime_ms(std::string_view text, int64_t& ms);
// ms since the epoch in the stored form above.
std::string format_datetime(int64_t ms);
bool is_date(std::string_view text);

}  // namespace mockcrm
