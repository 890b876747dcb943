// crmsync/support/json_outline.hpp — optional C++17 helpers for reading a few values out of
// a JSON text without building it: Boost.JSON's parser checks the whole text (the same
// depth, UTF-8 and no-comments rules as json::parse) and tells a handler only what it
// asks for. Shared by the host and the plugins. Not part of the ABI: header-only, Boost.JSON
// only.
#ifndef CRMSYNC_SUPPORT_JSON_OUTLINE_HPP
#define CRMSYNC_SUPPORT_JSON_OUTLINE_HPP

#include <boost/json.hpp>
#include <boost/json/basic_parser_impl.hpp>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace crmsync::support {

// A handler that wants nothing: derive from it and declare again only the events you need
// (the parser calls them by name, so the derived class's own are the ones called).
struct OutlineHandler {
    static constexpr std::size_t max_object_size = std::size_t(-1);
    static constexpr std::size_t max_array_size = std::size_t(-1);
    static constexpr std::size_t max_key_size = std::size_t(-1);
    static constexpr std::size_t max_string_size = std::size_t(-1);
    using error_code = boost::system::error_code;
    using string_view = boost::json::string_view;

    bool on_document_begin(error_code&) { return true; }
    bool on_document_end(error_code&) { return true; }
    bool on_object_begin(error_code&) { return true; }
    bool on_object_end(std::size_t, error_code&) { return true; }
    bool on_array_begin(error_code&) { return true; }
    bool on_array_end(std::size_t, error_code&) { return true; }
    bool on_key_part(string_view, std::size_t, error_code&) { return true; }
    bool on_key(string_view, std::size_t, error_code&) { return true; }
    bool on_string_part(string_view, std::size_t, error_code&) { return true; }
    bool on_string(string_view, std::size_t, error_code&) { return true; }
    bool on_number_part(string_view, error_code&) { return true; }
    bool on_int64(std::int64_t, string_view, error_code&) { return true; }
    bool on_uint64(std::uint64_t, string_view, error_code&) { return true; }
    bool on_double(double, string_view, error_code&) { return true; }
    bool on_bool(bool, error_code&) { return true; }
    bool on_null(error_code&) { return true; }
    bool on_comment_part(string_view, error_code&) { return true; }
    bool on_comment(string_view, error_code&) { return true; }
};

// The same, counting how deep the parser is (1: among the top-level object's members) and
// gathering a top-level key, or a top-level string, that comes in pieces. A handler that
// declares on_object_begin or on_array_begin again ends it with `return enter();`.
class TopLevelOutline : public OutlineHandler {
public:
    bool on_object_begin(error_code&) { return enter(); }
    bool on_object_end(std::size_t, error_code&) { return --depth_, true; }
    bool on_array_begin(error_code&) { return enter(); }
    bool on_array_end(std::size_t, error_code&) { return --depth_, true; }
    bool on_key_part(string_view s, std::size_t, error_code&) {
        if (depth_ == 1) pieces_.append(s.data(), s.size());
        return true;
    }

protected:
    bool enter() { return ++depth_, true; }
    int depth_ = 0;
    std::string pieces_;  // the top-level key or string read so far
};

// The handler, made from `args`, after the parser has read all of `text` as one JSON
// value; nothing when the text is not that.
template <class Handler, class... Args>
std::optional<Handler> outline_json(std::string_view text, Args&&... args) {
    boost::json::basic_parser<Handler> parser(boost::json::parse_options{}, std::forward<Args>(args)...);
    boost::system::error_code ec;
    const std::size_t consumed = parser.write_some(false, text.data(), text.size(), ec);
    if (ec || consumed != text.size() || !parser.done()) return std::nullopt;
    return std::move(parser.handler());
}

}  // namespace crmsync::support

#endif  // CRMSYNC_SUPPORT_JSON_OUTLINE_HPP
