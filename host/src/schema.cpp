#include "schema.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <mutex>

// GCC 12 at -O2 warns -Wrestrict inside libstdc++'s string::replace as valijson's
// json_pointer inlines it: a false positive (GCC bug 105651), silenced for valijson only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wrestrict"
#endif
#include <valijson/adapters/boost_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validator.hpp>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

namespace crmsync {
namespace {

using Path = std::vector<std::string>;

// The embedded schemas as parsed JSON, parsed once; entries are never removed, so the
// pointers handed out stay valid.
const json::value* embedded_document(std::string_view uri) {
    static std::mutex mutex;
    static std::map<std::string, json::value, std::less<>> documents;
    std::string_view file = uri.substr(uri.rfind('/') == std::string_view::npos ? 0 : uri.rfind('/') + 1);
    file = file.substr(0, file.find('#'));
    std::lock_guard<std::mutex> lock(mutex);
    if (auto it = documents.find(file); it != documents.end()) return &it->second;
    auto text = embedded_schema_text(file);
    if (!text) return nullptr;
    auto parsed = parse_json(*text);
    if (!parsed) return nullptr;
    return &documents.emplace(std::string(file), std::move(parsed.value())).first->second;
}

// Where a schema node lives: the document it came from (for its "#/…" references) and the node.
struct SchemaNode {
    const json::value* document = nullptr;
    const json::object* node = nullptr;
};

const json::value* pointer(const json::value& document, std::string_view fragment) {
    if (fragment.empty() || fragment == "/") return &document;
    boost::system::error_code ec;
    const json::value* found = document.find_pointer(fragment, ec);
    return ec ? nullptr : found;
}

// Follows "$ref" (inside the document, or to another embedded schema) up to a depth.
SchemaNode resolve(SchemaNode at) {
    for (int depth = 0; at.node && depth < 16; ++depth) {
        auto ref = find_string(*at.node, "$ref");
        if (!ref) return at;
        auto hash = ref->find('#');
        std::string file = ref->substr(0, hash);
        std::string fragment = hash == std::string::npos ? "" : ref->substr(hash + 1);
        const json::value* document = file.empty() ? at.document : embedded_document(file);
        const json::value* target = document ? pointer(*document, fragment) : nullptr;
        if (!target || !target->is_object()) return {};
        at = {document, &target->get_object()};
    }
    return at;
}

SchemaNode child(SchemaNode at, const json::value* next) {
    if (!next || !next->is_object()) return {};
    return resolve({at.document, &next->get_object()});
}

// The branches of a oneOf/anyOf node that describe an object.
std::vector<SchemaNode> object_branches(SchemaNode at) {
    std::vector<SchemaNode> out;
    for (const char* key : {"oneOf", "anyOf"})
        if (auto* list = find_array(*at.node, key))
            for (const auto& branch : *list) {
                SchemaNode b = child(at, &branch);
                if (b.node && (find_string(*b.node, "type") == "object" || b.node->contains("properties"))) out.push_back(b);
            }
    return out;
}

// The schema of a property (or array item) of the value `at` describes; empty when none does.
SchemaNode step(SchemaNode at, const std::string& segment) {
    if (!at.node) return {};
    if (auto* properties = find_object(*at.node, "properties"))
        if (auto* p = properties->if_contains(segment)) return child(at, p);
    if (auto* additional = at.node->if_contains("additionalProperties"); additional && additional->is_object())
        return child(at, additional);
    if (auto* items = at.node->if_contains("items");
        items && !segment.empty() && std::isdigit(static_cast<unsigned char>(segment[0])))
        return child(at, items);
    for (auto branch : object_branches(at))
        if (auto found = step(branch, segment); found.node) return found;
    return {};
}

std::string format_path(std::string_view root, const Path& path) {
    std::string out(root);
    for (const auto& segment : path) {
        bool index = !segment.empty() && segment.find_first_not_of("0123456789") == std::string::npos;
        out += index ? "[" + segment + "]" : (out.empty() ? "" : ".") + segment;
    }
    return out.empty() ? "the document" : "\"" + out + "\"";
}

void walk(SchemaNode at, const json::value& value, std::string_view root, Path& path, std::vector<std::string>& out);

// Unknown keys, where the schema closes an object ("additionalProperties": false): each one,
// with the nearest known key when it looks like a typo.
void unknown_keys(SchemaNode at, const json::object& value, std::string_view root, Path& path, std::vector<std::string>& out) {
    if (!at.node->contains("properties") && !at.node->contains("additionalProperties")) {
        auto branches = object_branches(at);
        if (!branches.empty()) unknown_keys(branches.front(), value, root, path, out);
        return;
    }
    const auto* properties = find_object(*at.node, "properties");
    const json::value* additional = at.node->if_contains("additionalProperties");
    bool closed = additional && additional->is_bool() && !additional->get_bool();
    std::vector<std::string> known;
    if (properties)
        for (const auto& property : *properties) known.emplace_back(property.key());
    for (const auto& [key, member] : value) {
        path.emplace_back(key);
        if (properties && properties->contains(key)) {
            walk(child(at, properties->if_contains(key)), member, root, path, out);
        } else if (closed) {
            std::string line = format_path(root, path) + " is not a known key here";
            if (auto near = did_you_mean(key, known)) {
                line += " (did you mean \"" + *near + "\"?)";
            } else if (!known.empty() && known.size() <= 24) {
                line += " (known: ";
                for (size_t i = 0; i < known.size(); ++i) line += (i ? ", " : "") + known[i];
                line += ")";
            }
            out.push_back(std::move(line));
        } else if (additional && additional->is_object()) {
            walk(child(at, additional), member, root, path, out);
        }
        path.pop_back();
    }
}

void walk(SchemaNode at, const json::value& value, std::string_view root, Path& path, std::vector<std::string>& out) {
    if (!at.node) return;
    if (value.is_object()) return unknown_keys(at, value.get_object(), root, path, out);
    if (!value.is_array()) return;
    SchemaNode items = child(at, at.node->if_contains("items"));
    for (size_t i = 0; items.node && i < value.get_array().size(); ++i) {
        path.push_back(std::to_string(i));
        walk(items, value.get_array()[i], root, path, out);
        path.pop_back();
    }
}

bool is_prefix(const Path& a, const Path& b) { return a.size() <= b.size() && std::equal(a.begin(), a.end(), b.begin()); }

Path clean(const std::vector<std::string>& context) {
    Path out;
    for (const auto& part : context) {
        if (part == "<root>") continue;
        // valijson writes "[name]" for properties and "[0]" for items.
        out.push_back(part.size() >= 2 && part.front() == '[' ? part.substr(1, part.size() - 2) : part);
    }
    return out;
}

}  // namespace

std::optional<std::string> did_you_mean(std::string_view word, const std::vector<std::string>& candidates) {
    // Optimal string alignment distance: a swapped pair of letters counts as one edit.
    auto distance = [](std::string_view a, std::string_view b) {
        std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
        for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
        for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
        for (size_t i = 1; i <= a.size(); ++i)
            for (size_t j = 1; j <= b.size(); ++j) {
                size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
                d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
                if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                    d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
            }
        return d[a.size()][b.size()];
    };
    if (word.size() > 256) return std::nullopt;
    std::optional<std::string> best;
    size_t best_distance = 3;
    // A key cut short ("external_id" for "external_id_field").
    if (word.size() >= 4)
        for (const auto& c : candidates)
            if (c.size() > word.size() && c.compare(0, word.size(), word) == 0) return c;
    for (const auto& c : candidates) {
        size_t d = distance(word, c);
        if (d < best_distance && d * 3 <= std::max(word.size(), c.size())) {
            best = c;
            best_distance = d;
        }
    }
    return best;
}

Result<CompiledSchema> CompiledSchema::parse(std::string_view schema_text, std::string_view what) {
    auto schema_doc = parse_json(schema_text);
    if (!schema_doc) return Status::config(std::string(what) + " is not valid JSON: " + schema_doc.status().message());
    auto schema = std::make_shared<valijson::Schema>();
    try {
        valijson::SchemaParser parser;
        valijson::adapters::BoostJsonAdapter adapter(schema_doc.value());
        // References to the other plugin-api schemas are served from the embedded copies.
        auto fetch = [](const std::string& uri) -> const json::value* {
            const json::value* document = embedded_document(uri);
            if (!document) throw std::runtime_error("no schema \"" + uri + "\" is built in");
            return new json::value(*document);
        };
        auto free_doc = [](const json::value* document) { delete document; };
        parser.populateSchema(adapter, *schema, fetch, free_doc);
    } catch (const std::exception& e) {
        return Status::config(std::string(what) + " cannot be used: " + e.what());
    }
    CompiledSchema compiled;
    compiled.schema_ = std::move(schema);
    compiled.source_ = std::make_shared<const json::value>(std::move(schema_doc.value()));
    compiled.validators_ = std::make_shared<Validators>();
    return compiled;
}

struct CompiledSchema::Validators {
    std::mutex mutex;
    std::vector<std::unique_ptr<valijson::Validator>> idle;

    std::unique_ptr<valijson::Validator> take() {
        std::lock_guard<std::mutex> lock(mutex);
        if (idle.empty()) return std::make_unique<valijson::Validator>();
        auto validator = std::move(idle.back());
        idle.pop_back();
        return validator;
    }
    void give_back(std::unique_ptr<valijson::Validator> validator) {
        std::lock_guard<std::mutex> lock(mutex);
        idle.push_back(std::move(validator));
    }
};

std::vector<std::string> CompiledSchema::problems(const json::value& document, std::string_view root) const {
    std::vector<std::string> out;
    valijson::ValidationResults results;
    valijson::adapters::BoostJsonAdapter target(document);
    auto validator = validators_->take();
    const bool valid = validator->validate(*schema_, target, &results);
    validators_->give_back(std::move(validator));
    if (valid) return out;  // valid: no unknown keys either
    // Unknown keys by name, with the key each probably meant (valijson names only the first).
    SchemaNode top = resolve({source_.get(), source_->if_object()});
    Path path;
    walk(top, document, root, path, out);
    struct Error {
        Path path;
        std::string text;
        bool missing = false;
        bool unknown_key = false;
    };
    std::vector<Error> errors;
    std::vector<Path> alternatives;  // where a oneOf/anyOf failed: reported there, as a whole
    valijson::ValidationResults::Error e;
    while (results.popError(e)) {
        Error error{clean(e.context), e.description};
        // An unknown key is reported above, by name; kept here only so that the parents it
        // failed are not reported instead.
        error.unknown_key = error.text.starts_with("Object contains a property that could not be validated");
        if (error.unknown_key) error.path.push_back("\x01");
        if (error.text.starts_with("Missing required property '")) {
            auto name = error.text.substr(27);
            error.path.push_back(name.substr(0, name.rfind('\'')));
            error.missing = true;
        }
        if (error.text.starts_with("Failed to validate against any child schemas allowed by oneOf") ||
            error.text.starts_with("Failed to validate against exactly one child schema") ||
            error.text.starts_with("Failed to validate against any schemas allowed by anyOf"))
            alternatives.push_back(error.path);
        errors.push_back(std::move(error));
    }
    // Each error is reported at the outermost failed choice above it, or where it is.
    std::map<Path, std::vector<const Error*>> by_place;
    for (const auto& error : errors) {
        const Path* place = &error.path;
        for (const auto& a : alternatives)
            if (is_prefix(a, error.path) && a.size() < place->size()) place = &a;
        by_place[*place].push_back(&error);
    }
    for (const auto& [place, list] : by_place) {
        // A parent that failed because a child did ("Failed to validate against schema
        // associated with property …") says nothing the child does not.
        bool parent = std::any_of(by_place.begin(), by_place.end(), [&](const auto& other) {
            return other.first.size() > place.size() && is_prefix(place, other.first);
        });
        if (parent || std::all_of(list.begin(), list.end(), [](const Error* x) { return x->unknown_key; })) continue;
        SchemaNode node = top;
        for (const auto& segment : place) node = step(node, segment);
        auto description = node.node ? find_string(*node.node, "description") : std::nullopt;
        bool missing = std::any_of(list.begin(), list.end(), [&](const Error* x) { return x->missing && x->path == place; });
        if (missing) {
            out.push_back(format_path(root, place) + " is missing" + (description ? " (" + *description + ")" : ""));
        } else if (description && descriptions_say_must_be_) {
            out.push_back(format_path(root, place) + " must be " + *description);
        } else {
            const Error* best = list.front();
            for (const Error* x : list)
                if (!x->text.starts_with("Failed to validate")) best = x;
            out.push_back(format_path(root, place) + ": " + best->text + (description ? " (" + *description + ")" : ""));
        }
    }
    return out;
}

Status CompiledSchema::validate(const json::value& document, std::string_view root) const {
    auto list = problems(document, root);
    if (list.empty()) return Status::ok();
    std::string text;
    for (const auto& p : list) text += (text.empty() ? "" : "; ") + p;
    return Status::config(text);
}

Status validate_against_schema(std::string_view schema_text, const json::value& document, std::string_view root) {
    if (schema_text.empty()) return Status::ok();
    auto schema = CompiledSchema::parse(schema_text, "the plugin's config schema");
    if (!schema) return schema.status();
    return schema->validate(document, root);
}

const CompiledSchema* embedded_schema(std::string_view file) {
    static std::mutex mutex;
    static std::map<std::string, std::optional<CompiledSchema>, std::less<>> compiled;
    std::lock_guard<std::mutex> lock(mutex);
    auto it = compiled.find(file);
    if (it == compiled.end()) {
        std::optional<CompiledSchema> schema;
        if (auto text = embedded_schema_text(file))
            if (auto parsed = CompiledSchema::parse(*text, file)) {
                schema = std::move(parsed.value());
                schema->descriptions_say_must_be_ = true;
            }
        it = compiled.emplace(std::string(file), std::move(schema)).first;
    }
    return it->second ? &*it->second : nullptr;
}

bool checks_emitted_items() {
#ifdef CRMSYNC_CHECK_EMITTED
    return true;
#else
    return false;
#endif
}

Status check_emitted_item(std::string_view schema_file, const json::value& item) {
    if (!checks_emitted_items()) return Status::ok();
    const CompiledSchema* schema = embedded_schema(schema_file);
    if (!schema) return Status::config("plugin-api/schemas/" + std::string(schema_file) + " is not built in or does not parse");
    return schema->validate(item, "item");
}

}  // namespace crmsync
