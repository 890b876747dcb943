#include "schema.h"

#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

#include <valijson/adapters/boost_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validator.hpp>

namespace crmsync {

Result<CompiledSchema> CompiledSchema::parse(std::string_view schema_text, std::string_view what) {
    auto schema_doc = parse_json(schema_text);
    if (!schema_doc) return Status::config(std::string(what) + " is not valid JSON: " + schema_doc.status().message());
    auto schema = std::make_shared<valijson::Schema>();
    try {
        valijson::SchemaParser parser;
        valijson::adapters::BoostJsonAdapter adapter(schema_doc.value());
        parser.populateSchema(adapter, *schema);
    } catch (const std::exception& e) {
        return Status::config(std::string(what) + " cannot be used: " + e.what());
    }
    CompiledSchema compiled;
    compiled.schema_ = std::move(schema);
    return compiled;
}

Status validate_against_schema(std::string_view schema_text, const json::value& document, std::string_view root) {
    if (schema_text.empty()) return Status::ok();
    auto schema = CompiledSchema::parse(schema_text, "the plugin's config schema");
    if (!schema) return schema.status();
    return schema->validate(document, root);
}

bool checks_emitted_items() {
#ifdef CRMSYNC_CHECK_EMITTED
    return true;
#else
    return false;
#endif
}

Status check_emitted_item(std::string_view schema_file, const json::value& item) {
#ifdef CRMSYNC_CHECK_EMITTED
    static std::mutex mutex;
    static std::map<std::string, Result<CompiledSchema>, std::less<>> schemas;
    const CompiledSchema* schema = nullptr;
    {
        std::lock_guard<std::mutex> lock(mutex);
        auto it = schemas.find(schema_file);
        if (it == schemas.end()) {
            std::string path = std::string(CRMSYNC_SCHEMA_DIR) + "/" + std::string(schema_file);
            std::ifstream in(path, std::ios::binary);
            std::stringstream text;
            text << in.rdbuf();
            it = schemas.emplace(std::string(schema_file), CompiledSchema::parse(text.str(), path)).first;
        }
        if (!it->second) return it->second.status();
        schema = &it->second.value();
    }
    return schema->validate(item, "item");
#else
    (void)schema_file;
    (void)item;
    return Status::ok();
#endif
}

Status CompiledSchema::validate(const json::value& document, std::string_view root) const {
    valijson::Validator validator;
    valijson::ValidationResults results;
    valijson::adapters::BoostJsonAdapter target(document);
    if (validator.validate(*schema_, target, &results)) return Status::ok();
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
