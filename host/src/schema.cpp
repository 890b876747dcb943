#include "schema.h"

#include <valijson/adapters/boost_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validator.hpp>

namespace crmsync {

Status validate_against_schema(std::string_view schema_text, const json::value& document, std::string_view root) {
    if (schema_text.empty()) return Status::ok();
    auto schema_doc = parse_json(schema_text);
    if (!schema_doc) return Status::config("the plugin's config schema is not valid JSON: " + schema_doc.status().message());
    valijson::Schema schema;
    try {
        valijson::SchemaParser parser;
        valijson::adapters::BoostJsonAdapter adapter(schema_doc.value());
        parser.populateSchema(adapter, schema);
    } catch (const std::exception& e) {
        return Status::config(std::string("the plugin's config schema cannot be used: ") + e.what());
    }
    valijson::Validator validator;
    valijson::ValidationResults results;
    valijson::adapters::BoostJsonAdapter target(document);
    if (validator.validate(schema, target, &results)) return Status::ok();
    // valijson reports the whole chain (oneOf branches, then the leaf); the deepest
    // path is the one that tells the operator which field to fix.
    valijson::ValidationResults::Error error, best;
    size_t best_depth = 0;
    bool have = false;
    while (results.popError(error)) {
        if (!have || error.context.size() > best_depth) {
            best = error;
            best_depth = error.context.size();
            have = true;
        }
    }
    std::string path(root);
    for (const auto& part : best.context) {
        if (part == "<root>") continue;
        // valijson writes "[name]" for properties and "[0]" for items.
        std::string inner = part.size() >= 2 && part.front() == '[' ? part.substr(1, part.size() - 2) : part;
        bool index = !inner.empty() && inner.find_first_not_of("0123456789") == std::string::npos;
        path += index ? "[" + inner + "]" : "." + inner;
    }
    return Status::config("\"" + path + "\": " + best.description);
}

}  // namespace crmsync
