// Fuzz target: the JSON Lines export reader (crmsync/support/jsonl_folder.hpp) and the JSON
// parse of each line. Reading in pages of 3 must give exactly the lines one big page gives,
// the cursor must only move forward, and no line may be lost or read twice.
#include <crmsync/support/jsonl_folder.hpp>

#include <boost/json.hpp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include "fuzz_check.h"

namespace {

const std::string& folder() {
    static const std::string path = [] {
        char name[] = "/tmp/crmsync-fuzz-jsonl-XXXXXX";
        return std::string(mkdtemp(name));
    }();
    return path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    namespace support = crmsync::support;
    // Two files: the input, and the input's second half (a resumed export).
    const std::string text(reinterpret_cast<const char*>(data), size);
    for (auto [name, part] : {std::pair<const char*, std::string>{"a.jsonl", text}, {"b.jsonl", text.substr(size / 2)}}) {
        FILE* f = std::fopen((folder() + "/" + name).c_str(), "wb");
        if (!f) return 0;
        std::fwrite(part.data(), 1, part.size(), f);
        std::fclose(f);
    }
    auto whole = support::read_jsonl_page(folder(), {}, 1 << 20);
    fuzz_require(!whole.more, "one page of a million lines holds a small input");
    std::vector<support::JsonlLine> paged;
    support::JsonlCursor cursor;
    for (int pages = 0;; ++pages) {
        fuzz_require(pages <= static_cast<int>(size) + 4, "paging must end");
        auto page = support::read_jsonl_page(folder(), cursor, 3);
        fuzz_require(page.lines.size() <= 3, "a page holds at most its limit");
        fuzz_require(page.next.file > cursor.file || (page.next.file == cursor.file && page.next.line >= cursor.line),
                     "the cursor only moves forward");
        paged.insert(paged.end(), page.lines.begin(), page.lines.end());
        cursor = page.next;
        if (!page.more) break;
    }
    fuzz_require(paged.size() == whole.lines.size(), "paged reading gives as many lines as one page");
    for (size_t i = 0; i < paged.size(); ++i)
        fuzz_require(paged[i].file == whole.lines[i].file && paged[i].number == whole.lines[i].number &&
                         paged[i].text == whole.lines[i].text,
                     "paged reading gives the same lines in the same order");
    for (const auto& line : whole.lines) {
        boost::system::error_code ec;
        boost::json::parse(line.text, ec);  // a bad line is an error for that record, never a crash
    }
    return 0;
}
