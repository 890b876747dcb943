#pragma once
// Small helpers shared by the engine's source files (not part of its interface).
#include <crmsync/support/text.hpp>

#include <string>
#include <string_view>

#include "engine.h"

namespace mockcrm::detail {

inline std::string q(const std::string& ident) { return "\"" + ident + "\""; }

using crmsync::support::utf8_length;

inline std::string preview(std::string_view s) {
    std::string p(s.substr(0, 40));
    return s.size() > 40 ? p + "(...)" : p;
}

inline bool plausible_email(std::string_view e) {
    auto at = e.find('@');
    return at != std::string_view::npos && at > 0 && e.find('.', at) != std::string_view::npos &&
           e.find(' ') == std::string_view::npos && e.back() != '.';
}

inline void bind(SQLite::Statement& st, int index, const SqlValue& v) {
    std::visit(
        [&](const auto& x) {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, std::nullptr_t>) st.bind(index);
            else if constexpr (std::is_same_v<T, int64_t>) st.bind(index, static_cast<int64_t>(x));
            else if constexpr (std::is_same_v<T, double>) st.bind(index, x);
            else st.bind(index, x);
        },
        v);
}

inline SaveResult failure(std::string code, std::string message, std::vector<std::string> fields = {}) {
    SaveResult r;
    r.errors.push_back({std::move(code), std::move(message), std::move(fields)});
    return r;
}

}  // namespace mockcrm::detail
