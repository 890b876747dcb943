#pragma once
// JSON Schema (draft 7) validation through valijson, reporting every problem with its JSON
// path: unknown keys (where the schema closes an object) with the nearest known key, wrong
// types and ranges in the words of the field's own "description".
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "json.h"
#include "status.h"

namespace valijson {
class Schema;
class Validator;
}  // namespace valijson

namespace crmsync {

// A JSON Schema parsed once and validated against many times. A "$ref" may name another
// schema of plugin-api/schemas/ ("manifest-definitions.schema.json#/definitions/x").
class CompiledSchema {
public:
    // `what` names the schema in messages ("the plugin's config schema").
    static Result<CompiledSchema> parse(std::string_view schema_text, std::string_view what);
    // One line per problem, each starting with the JSON path under `root` ("config.sync_to"):
    // "\"retry.max_attempts\" must be an integer from 1 to 20". Empty: valid.
    std::vector<std::string> problems(const json::value& document, std::string_view root) const;
    // All problems joined with "; ".
    Status validate(const json::value& document, std::string_view root) const;

private:
    friend const CompiledSchema* embedded_schema(std::string_view file);
    std::shared_ptr<const valijson::Schema> schema_;
    // crmsync's own schemas word each "description" as what a value must be ("an integer
    // from 1 to 20"); a plugin's describe what a field is, so they are quoted beside the fault.
    bool descriptions_say_must_be_ = false;
    std::shared_ptr<const json::value> source_;
    // Validators kept for the next validation: each compiles a "pattern" regex once (the
    // first use), not on every document. One a thread at a time; more are made as needed.
    struct Validators;
    std::shared_ptr<Validators> validators_;
};

// The schemas of plugin-api/schemas/ built into the host (manifests are checked against them
// in every build, installed or not). Nullptr for a name that is not one of them.
const CompiledSchema* embedded_schema(std::string_view file);
std::optional<std::string_view> embedded_schema_text(std::string_view file);

// Whether this build checks every item a plugin emits against plugin-api/schemas/ (the
// test builds: CMake option CRMSYNC_CHECK_EMITTED).
bool checks_emitted_items();
// Validates one emitted item against the named schema file of plugin-api/schemas/.
Status check_emitted_item(std::string_view schema_file, const json::value& item);

// Validates `document` against `schema_text`. `root` names the document in messages
// (e.g. "config"). A schema that does not parse is reported as such.
Status validate_against_schema(std::string_view schema_text, const json::value& document, std::string_view root);

// The candidate nearest to `word` when it is a likely typo of it (an edit or two away).
std::optional<std::string> did_you_mean(std::string_view word, const std::vector<std::string>& candidates);

}  // namespace crmsync
