// crmsync/support/csv.hpp — an optional helper for plugins: RFC 4180 CSV (fields quoted when
// they hold a comma, quote or line break; quotes doubled; rows end in LF, CRLF read too), as
// Salesforce's Bulk API 2.0 and report exports speak it. Header-only; not part of the ABI.
#pragma once
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace crmsync::support::csv {

// Appends `value` to `out` as one field, quoted when it must be.
inline void append_field(std::string& out, std::string_view value) {
    if (value.find_first_of(",\"\r\n") == std::string_view::npos) {
        out += value;
        return;
    }
    out += '"';
    for (char c : value) {
        if (c == '"') out += '"';
        out += c;
    }
    out += '"';
}

inline std::string field(std::string_view value) {
    std::string out;
    append_field(out, value);
    return out;
}

inline std::string row(const std::vector<std::string>& values) {
    std::string out;
    for (size_t i = 0; i < values.size(); ++i) {
        if (i) out += ',';
        append_field(out, values[i]);
    }
    return out + "\n";
}

// Reads a text a row at a time, for a text too large to hold parsed whole: each row goes
// into the same vector, its strings' storage used again.
class Reader {
public:
    explicit Reader(std::string_view text) : text_(text) {}

    // The next row into `row`; false when the text has no more.
    bool next(std::vector<std::string>& row) {
        size_t cells = 0;
        auto start_cell = [&]() -> std::string& {
            if (cells == row.size()) row.emplace_back();
            std::string& cell = row[cells++];
            cell.clear();
            return cell;
        };
        std::string* value = &start_cell();
        bool quoted = false, any = false;
        for (; at_ < text_.size(); ++at_) {
            char c = text_[at_];
            if (quoted) {
                if (c == '"' && at_ + 1 < text_.size() && text_[at_ + 1] == '"') *value += '"', ++at_;
                else if (c == '"') quoted = false;
                else *value += c;
                continue;
            }
            if (c == '"') quoted = true, any = true;
            else if (c == ',') value = &start_cell(), any = true;
            else if (c == '\r') continue;
            else if (c == '\n') {
                ++at_;
                row.resize(cells);
                return true;
            } else *value += c, any = true;
        }
        row.resize(cells);
        return any;  // a last row without its line end, or nothing (a trailing \r)
    }

private:
    std::string_view text_;
    size_t at_ = 0;
};

inline std::vector<std::vector<std::string>> parse(std::string_view text) {
    std::vector<std::vector<std::string>> rows;
    Reader reader(text);
    std::vector<std::string> row;
    while (reader.next(row)) rows.push_back(std::move(row));  // its strings are the rows' now
    return rows;
}

}  // namespace crmsync::support::csv
