#pragma once
// Building SOQL, the dialect every CRM plugin answers (plugin.h): the host's one place for
// quoting values and making IN lists. Object and field names come from manifests and
// plugins' operations, which are checked against the CRM's describe before they get here.
#include <string>
#include <string_view>
#include <vector>

namespace crmsync::soql {

// 'value' with ' and \ escaped, as SOQL string literals want them.
std::string literal(std::string_view value);
// ('a', 'b', 'c')
std::string in_list(const std::vector<std::string>& values);

}  // namespace crmsync::soql
