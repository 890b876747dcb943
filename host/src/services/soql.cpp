#include "soql.h"

namespace crmsync::soql {

std::string literal(std::string_view value) {
    std::string out = "'";
    for (char c : value) {
        if (c == '\'' || c == '\\') out += '\\';
        out += c;
    }
    return out + "'";
}

std::string in_list(const std::vector<std::string>& values) {
    std::string out;
    for (const auto& v : values) out += (out.empty() ? "" : ", ") + literal(v);
    return "(" + out + ")";
}

}  // namespace crmsync::soql
