// crmsync/support/csv.hpp — an optional helper for plugins: RFC 4180 CSV (fields quoted when
// they hold a comma, quote or line break; quotes doubled; rows end in LF, CRLF read too), as
// Salesforce's Bulk API 2.0 and report exports speak it. Header-only; not part of the ABI.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace crmsync::support::csv {

inline std::string field(std::string_view value) {
    if (value.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(value);
    std::string out = "\"";
    for (char c : value) {
        if (c == '"') out += '"';
        out += c;
    }
    return out + "\"";
}

inline std::string row(const std::vector<std::string>& values) {
    std::string out;
    for (size_t i = 0; i < values.size(); ++i) {
        if (i) out += ',';
        out += field(values[i]);  // appended, not "," + field: no temporary per cell
    }
    return out + "\n";
}

inline std::vector<std::vector<std::string>> parse(std::string_view text) {
    std::vector<std::vector<std::string>> rows;
    std::vector<std::string> current;
    std::string value;
    bool quoted = false, any = false;
    for (size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (quoted) {
            if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') value += '"', ++i;
            else if (c == '"') quoted = false;
            else value += c;
            continue;
        }
        if (c == '"') quoted = true, any = true;
        else if (c == ',') current.push_back(std::move(value)), value.clear(), any = true;
        else if (c == '\r') continue;
        else if (c == '\n') {
            current.push_back(std::move(value));
            value.clear();
            rows.push_back(std::move(current));
            current.clear();
            any = false;
        } else value += c, any = true;
    }
    if (any || !current.empty()) {
        current.push_back(std::move(value));
        rows.push_back(std::move(current));
    }
    return rows;
}

}  // namespace crmsync::support::csv
