// crmsync/support/jsonl_folder.hpp — an optional C++17 helper for source plugins that read
// a folder of JSON Lines exports (the demo, replays and backfills). Not part of the ABI:
// header-only, no JSON library assumed, nothing crosses the boundary.
//
// Files are taken in name order (new exports sort after old ones); the cursor says which
// file and how many of its lines are done. Blank lines are skipped but still consumed. A
// line is kept up to kMaxJsonlLineBytes: a longer one is counted, not held (see `cut()`).
#ifndef CRMSYNC_SUPPORT_JSONL_FOLDER_HPP
#define CRMSYNC_SUPPORT_JSONL_FOLDER_HPP

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace crmsync::support {

struct JsonlCursor {
    std::string file;  // the file being read ("" before the first)
    int64_t line = 0;  // lines of it already done
};

inline constexpr size_t kMaxJsonlLineBytes = size_t{16} << 20;

struct JsonlLine {
    std::string file;
    int64_t number = 0;  // 1-based, for messages ("a.jsonl:12")
    std::string text;    // at most kMaxJsonlLineBytes of it
    size_t bytes = 0;    // the whole line's length
    // Longer than a record may be: `text` is only its beginning.
    bool cut() const { return bytes > text.size(); }
};

// Reads one line (without its "\n") into `text`, keeping at most `max` bytes of it and
// counting them all in `bytes`. False at the end of the stream with nothing read.
inline bool read_bounded_line(std::istream& in, std::string& text, size_t& bytes, size_t max) {
    text.clear();
    bytes = 0;
    std::streambuf* buffer = in.rdbuf();
    bool any = false;
    for (;;) {
        int c = buffer->sbumpc();
        if (c == std::char_traits<char>::eof()) return any;
        any = true;
        if (c == '\n') return true;
        ++bytes;
        if (text.size() < max) text.push_back(static_cast<char>(c));
    }
}

struct JsonlPage {
    std::vector<JsonlLine> lines;
    JsonlCursor next;   // resume here
    bool more = false;  // another page follows
};

// Up to `limit` non-blank lines after `after`. Throws std::runtime_error when the folder
// does not exist.
inline JsonlPage read_jsonl_page(const std::string& folder, const JsonlCursor& after, size_t limit) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (!fs::is_directory(folder, ec)) throw std::runtime_error("export folder " + folder + " not found");
    std::vector<std::string> files;
    for (const auto& entry : fs::directory_iterator(folder, ec))
        if (entry.is_regular_file() && entry.path().extension() == ".jsonl") files.push_back(entry.path().filename().string());
    std::sort(files.begin(), files.end());
    JsonlPage page;
    page.next = after;
    for (const auto& name : files) {
        if (name < after.file) continue;
        int64_t skip = name == after.file ? after.line : 0;
        std::ifstream in(fs::path(folder) / name);
        std::string text;
        size_t bytes = 0;
        int64_t number = 0;
        while (read_bounded_line(in, text, bytes, kMaxJsonlLineBytes)) {
            if (++number <= skip) continue;
            if (page.lines.size() == limit) {
                page.more = true;
                return page;
            }
            page.next = {name, number};
            if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
            page.lines.push_back({name, number, text, bytes});
        }
    }
    return page;
}

}  // namespace crmsync::support

#endif
