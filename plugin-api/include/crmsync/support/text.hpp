// crmsync/support/text.hpp — optional C++17 text helpers for CRM field values, shared by
// the host and the plugins: CRM lengths count characters, never bytes, and a cut never
// splits a UTF-8 sequence. Not part of the ABI: header-only, no dependencies.
#ifndef CRMSYNC_SUPPORT_TEXT_HPP
#define CRMSYNC_SUPPORT_TEXT_HPP

#include <cstddef>
#include <string>
#include <string_view>

namespace crmsync::support {

// ASCII letters lowered, the rest as it is (emails, header names, tag names).
inline std::string ascii_lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return out;
}

// Characters (code points) in UTF-8 text.
inline std::size_t utf8_length(std::string_view s) {
    std::size_t n = 0;
    for (unsigned char c : s)
        if ((c & 0xC0) != 0x80) ++n;
    return n;
}

// At most `chars` characters of UTF-8 text.
inline std::string utf8_prefix(std::string_view s, std::size_t chars) {
    std::size_t n = 0, i = 0;
    for (; i < s.size(); ++i)
        if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80 && n++ == chars) break;
    return std::string(s.substr(0, i));
}

// At most `bytes` bytes of UTF-8 text, never ending inside a character.
inline std::string utf8_prefix_bytes(std::string_view s, std::size_t bytes) {
    if (s.size() <= bytes) return std::string(s);
    while (bytes > 0 && (static_cast<unsigned char>(s[bytes]) & 0xC0) == 0x80) --bytes;
    return std::string(s.substr(0, bytes));
}

// At most `lines` lines, without the line breaks that ended the last one kept.
inline std::string cut_lines(const std::string& text, int lines) {
    std::size_t pos = 0;
    for (int n = 0; n < lines; ++n) {
        pos = text.find('\n', pos);
        if (pos == std::string::npos) return text;
        ++pos;
    }
    std::string out = text.substr(0, pos);
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
    return out;
}

}  // namespace crmsync::support

#endif
