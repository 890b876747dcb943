#pragma once
// JSON Schema (draft 7) validation through valijson, reporting the first failures with
// their JSON path ("config.sync_to: ...").
#include <string>

#include "json.h"
#include "status.h"

namespace crmsync {

// Validates `document` against `schema_text`. `root` names the document in messages
// (e.g. "config"). A schema that does not parse is reported as such.
Status validate_against_schema(std::string_view schema_text, const json::value& document, std::string_view root);

}  // namespace crmsync
