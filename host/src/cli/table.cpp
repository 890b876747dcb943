#include "table.h"

#include <algorithm>
#include <cstdio>

namespace crmsync::cli {
namespace {
size_t width(const std::string& s) {
    size_t n = 0;
    for (unsigned char c : s)
        if ((c & 0xC0) != 0x80) n += c >= 0xE0 ? 2 : 1;  // CJK takes two columns
    return n;
}
std::string cut(const std::string& s, size_t max) {
    std::string flat;
    for (char c : s) flat += (c == '\n' || c == '\r' || c == '\t') ? ' ' : c;
    if (width(flat) <= max) return flat;
    std::string out;
    size_t w = 0;
    for (size_t i = 0; i < flat.size();) {
        unsigned char c = static_cast<unsigned char>(flat[i]);
        size_t len = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
        size_t cw = c >= 0xE0 ? 2 : 1;
        if (w + cw > max - 1) break;
        out += flat.substr(i, len);
        w += cw;
        i += len;
    }
    return out + "…";
}
}  // namespace

std::string render_table(const Row& header, const std::vector<Row>& rows, size_t max_width) {
    std::vector<Row> cells{header};
    for (const auto& r : rows) {
        Row c;
        for (const auto& v : r) c.push_back(cut(v, max_width));
        cells.push_back(c);
    }
    std::vector<size_t> widths(header.size(), 0);
    for (const auto& r : cells)
        for (size_t i = 0; i < r.size() && i < widths.size(); ++i) widths[i] = std::max(widths[i], width(r[i]));
    std::string out;
    for (const auto& r : cells) {
        std::string line;
        for (size_t i = 0; i < r.size() && i < widths.size(); ++i) {
            line += r[i];
            if (i + 1 < r.size()) line += std::string(widths[i] - width(r[i]) + 2, ' ');
        }
        out += line + "\n";
    }
    return out;
}

std::string render_csv(const Row& header, const std::vector<Row>& rows) {
    auto field = [](const std::string& v) {
        if (v.find_first_of(",\"\r\n") == std::string::npos) return v;
        std::string q = "\"";
        for (char c : v) q += c == '"' ? std::string("\"\"") : std::string(1, c);
        return q + "\"";
    };
    std::string out;
    auto line = [&](const Row& r) {
        for (size_t i = 0; i < r.size(); ++i) {
            if (i) out += ',';
            out += field(r[i]);
        }
        out += "\r\n";
    };
    line(header);
    for (const auto& r : rows) line(r);
    return out;
}

}  // namespace crmsync::cli
