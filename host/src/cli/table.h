#pragma once
// Plain-text tables and CSV for command output.
#include <string>
#include <vector>

namespace crmsync::cli {

using Row = std::vector<std::string>;

// Columns padded to their widest cell (by UTF-8 characters); cells cut at max_width.
std::string render_table(const Row& header, const std::vector<Row>& rows, size_t max_width = 60);
// RFC 4180: fields with commas, quotes or line breaks quoted, quotes doubled.
std::string render_csv(const Row& header, const std::vector<Row>& rows);

}  // namespace crmsync::cli
