#pragma once
// JSON Schema (draft 7) validation through valijson, reporting the first failures with
// their JSON path ("config.sync_to: ...").
#include <memory>
#include <string>

#include "json.h"
#include "status.h"

namespace valijson {
class Schema;
}

namespace crmsync {

// A JSON Schema parsed once and validated against many times.
class CompiledSchema {
public:
    // `what` names the schema in messages ("the plugin's config schema").
    static Result<CompiledSchema> parse(std::string_view schema_text, std::string_view what);
    // The deepest failure, as "\"root.path\": description".
    Status validate(const json::value& document, std::string_view root) const;

private:
    std::shared_ptr<const valijson::Schema> schema_;
};

// Whether this build checks every item a plugin emits against plugin-api/schemas/ (the
// test builds: CMake option CRMSYNC_CHECK_EMITTED).
bool checks_emitted_items();
// Validates one emitted item against the named schema file of plugin-api/schemas/.
Status check_emitted_item(std::string_view schema_file, const json::value& item);

// Validates `document` against `schema_text`. `root` names the document in messages
// (e.g. "config"). A schema that does not parse is reported as such.
Status validate_against_schema(std::string_view schema_text, const json::value& document, std::string_view root);

}  // namespace crmsync
