// example-jsonl: the template source plugin. Reads a folder of JSON Lines exports (one
// record per line, files taken in name order) and maps each record to one CRM upsert
// through a field table in its config. Copy this folder to start a plugin of your own;
// docs/plugin-authors.md walks through it.
#include <crmsync/plugin.h>
#include <crmsync/support/json_plugin.hpp>  // optional helpers: emit, fail, JSON Lines folders

#include <memory>
#include <string>
#include <vector>

namespace {

namespace json = boost::json;
using crmsync::support::emit;
using crmsync::support::fail;
using crmsync::support::guarded;

// Declared once; the host validates every module's config against it before create().
const char* const kConfigSchema = R"json({
  "$schema": "http://json-schema.org/draft-07/schema#",
  "type": "object",
  "required": ["folder", "object", "fields"],
  "additionalProperties": false,
  "properties": {
    "folder": {"type": "string", "minLength": 1, "description": "folder of *.jsonl exports"},
    "object": {"type": "string", "minLength": 1, "description": "CRM object each record becomes, e.g. Task"},
    "fields": {"type": "object", "minProperties": 1, "additionalProperties": {"type": "string"},
               "description": "CRM field -> record property"},
    "key_prefix": {"type": "string", "default": "example-jsonl"},
    "id_property": {"type": "string", "default": "id"},
    "version_property": {"type": "string", "minLength": 1,
                         "description": "the record's version: a growing number or an updated-at time (RFC 3339)"}
  }
})json";

struct Instance {
    const crmsync_host_api* host;
    std::string folder, object, key_prefix = "example-jsonl", id_property = "id", version_property;
    std::vector<std::pair<std::string, std::string>> fields;  // CRM field, record property
};

Instance* self(crmsync_instance* i) { return reinterpret_cast<Instance*>(i); }

crmsync_instance* create(const crmsync_host_api* host, crmsync_call* call, const char* config_json) noexcept {
    crmsync_instance* created = nullptr;
    guarded(host, call, [&]() -> int32_t {
        auto config = crmsync::support::parse_object(config_json);  // already checked against kConfigSchema
        auto in = std::make_unique<Instance>();
        in->host = host;
        in->folder = std::string(config.at("folder").as_string());
        in->object = std::string(config.at("object").as_string());
        if (auto* p = config.if_contains("key_prefix")) in->key_prefix = std::string(p->as_string());
        if (auto* p = config.if_contains("id_property")) in->id_property = std::string(p->as_string());
        if (auto* p = config.if_contains("version_property")) in->version_property = std::string(p->as_string());
        for (const auto& [field, property] : config.at("fields").as_object())
            in->fields.emplace_back(std::string(field), std::string(property.as_string()));
        created = reinterpret_cast<crmsync_instance*>(in.release());
        return CRMSYNC_STATUS_OK;
    });
    return created;
}

void destroy(crmsync_instance* instance) noexcept { delete self(instance); }

// The cursor is {"file": name, "line": n} (crmsync/support/jsonl_folder.hpp).
int32_t fetch(crmsync_instance* instance, crmsync_call* call, const char* request_json) noexcept {
    auto* in = self(instance);
    return guarded(in->host, call, [&]() -> int32_t {
        auto request = crmsync::support::parse_object(request_json);
        std::string type(request.at("type").as_string());
        if (type == "targets") {
            json::array fields;
            for (const auto& [field, property] : in->fields) fields.emplace_back(field);
            return emit(in->host, call, json::object{{"type", "target"}, {"object", in->object}, {"fields", fields}});
        }
        if (type != "records") return fail(in->host, call, CRMSYNC_STATUS_NOT_SUPPORTED, "example-jsonl does not answer " + type);
        // A bad line is still a record: map() fails it alone, naming the file and line.
        return crmsync::support::answer_jsonl_records(in->host, call, in->folder, request, in->id_property);
    });
}

int32_t map(crmsync_instance* instance, crmsync_call* call, const char* record_json) noexcept {
    auto* in = self(instance);
    return guarded(in->host, call, [&]() -> int32_t {
        // The record and the operation made of it die with this call: one arena for both.
        json::monotonic_resource arena;
        auto record = crmsync::support::parse_object(record_json, &arena);
        if (int32_t rc; crmsync::support::map_invalid(in->host, call, record, rc)) return rc;
        const auto& id = record.at(in->id_property);
        std::string id_text = crmsync::support::id_text(id).value_or("");  // fetch checked it: a string or "#24"
        json::object fields(&arena);
        for (const auto& [field, property] : in->fields)
            if (auto* v = record.if_contains(property)) fields[field] = *v;
        json::object op({{"object", in->object},
                         {"action", "upsert"},
                         {"key", in->key_prefix + ":" + id_text},
                         {"source_id", id_text},
                         {"fields", std::move(fields)}},
                        &arena);
        // The host never writes an older version over a newer one; a bad one fails the record.
        if (auto* v = in->version_property.empty() ? nullptr : record.if_contains(in->version_property); v && !v->is_null())
            op["version"] = *v;
        return emit(in->host, call, op);
    });
}

// Fields by name, in declaration order as C++20 wants; a NULL entry point is one the
// plugin does not support. Id and version come from crmsync_add_plugin.
const crmsync_plugin kPlugin = {
    .struct_size = sizeof(crmsync_plugin),
    .id = CRMSYNC_PLUGIN_ID,
    .version = CRMSYNC_PLUGIN_VERSION,
    .description = "Template source plugin: JSON Lines exports -> one CRM upsert per record",
    .config_schema = kConfigSchema,
    .capabilities = CRMSYNC_CAP_FETCH | CRMSYNC_CAP_MAP,
    .create = create,
    .destroy = destroy,
    .authenticate = nullptr,
    .fetch = fetch,
    .map = map,
    .write = nullptr,
};

}  // namespace

CRMSYNC_DEFINE_ENTRY(kPlugin)
