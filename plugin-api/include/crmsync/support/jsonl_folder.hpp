// crmsync/support/jsonl_folder.hpp — an optional C++17 helper for source plugins that read
// a folder of JSON Lines exports (the demo, replays and backfills). Not part of the ABI:
// header-only, no JSON library assumed, nothing crosses the boundary.
//
// Files are taken in name order (new exports sort after old ones); the cursor says which
// file and how many of its lines are done. Blank lines are skipped but still consumed.
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

struct JsonlLine {
    std::string file;
    int64_t number = 0;  // 1-based, for messages ("a.jsonl:12")
    std::string text;
};

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
        int64_t number = 0;
        while (std::getline(in, text)) {
            if (++number <= skip) continue;
            if (page.lines.size() == limit) {
                page.more = true;
                return page;
            }
            page.next = {name, number};
            if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
            page.lines.push_back({name, number, text});
        }
    }
    return page;
}

}  // namespace crmsync::support

#endif
