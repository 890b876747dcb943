// cs-timeline: every timeline activity of a type with "sync to CRM" on becomes a Salesforce
// Task or Event (upserted on the activity's key, so edits update it), with the author as
// owner, external attendees as Contacts, the company's Account as What, and attachments
// added after the switch-on as Files. The CRM id goes back onto the activity. Activities
// come from the timeline's REST API or from a folder of JSON Lines exports; the rules are in
// activity.cpp, the API in api.cpp, the activity shape in README.md.
#include <crmsync/plugin.h>
#include <crmsync/support/json_plugin.hpp>
#include <openssl/evp.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>

#include "activity.h"
#include "api.h"

namespace {

using namespace cstimeline;
using crmsync::support::checkpoint_item;
using crmsync::support::emit;
using crmsync::support::fail;
using crmsync::support::guarded;
using crmsync::support::record_item;

const char* const kConfigSchema = R"json({
  "$schema": "http://json-schema.org/draft-07/schema#",
  "type": "object",
  "additionalProperties": false,
  "required": ["sync_to", "activity_types"],
  "properties": {
    "sync_to": {"enum": ["Task", "Event"], "description": "the Salesforce object every synced activity becomes"},
    "status": {"type": "string", "minLength": 1, "description": "Task: the Status every synced task gets (a value of Task.Status)"},
    "priority": {"type": "string", "minLength": 1, "description": "Task: the Priority every synced task gets (a value of Task.Priority)"},
    "activity_types": {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1, "uniqueItems": true,
                       "description": "the timeline activity types with \"sync to CRM\" on, e.g. [\"Meeting\", \"Call\"]"},
    "sync_attachments": {"type": "object", "additionalProperties": false, "required": ["since"],
                         "properties": {"since": {"type": "string", "description": "when the switch was turned on (ISO 8601 with a zone); only files added from then on sync"}}},
    "folder": {"type": "string", "description": "a folder of *.jsonl activity exports (attachments by \"path\" inside it)"},
    "api": {"type": "object", "additionalProperties": false, "required": ["base_url"],
            "description": "read the timeline's REST API (needs the credential access_key)",
            "properties": {"base_url": {"type": "string", "pattern": "^https?://"},
                           "page_size": {"type": "integer", "minimum": 1, "maximum": 500}}},
    "writeback_file": {"type": "string", "description": "folder mode: append each activity's CRM id here (the API mode writes it onto the activity)"}
  },
  "oneOf": [{"required": ["folder"]}, {"required": ["api"]}],
  "if": {"properties": {"sync_to": {"const": "Task"}}},
  "then": {"required": ["status", "priority"]}
})json";

struct Instance {
    const crmsync_host_api* host;
    Settings settings;
    std::string folder;
    std::string writeback_file;
    std::optional<TimelineApi> api;
};

Instance* self(crmsync_instance* i) { return reinterpret_cast<Instance*>(i); }

std::string base64(const std::string& bytes) {
    std::string out(4 * ((bytes.size() + 2) / 3), '\0');
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(bytes.data()),
                            static_cast<int>(bytes.size()));
    out.resize(static_cast<size_t>(n));
    return out;
}

crmsync_instance* create(const crmsync_host_api* host, crmsync_call* call, const char* config_json) noexcept {
    crmsync_instance* created = nullptr;
    guarded(host, call, [&]() -> int32_t {
        auto c = crmsync::support::parse_object(config_json);
        auto in = std::make_unique<Instance>();
        in->host = host;
        in->settings.sync_to = std::string(c.at("sync_to").as_string());
        if (auto* s = c.if_contains("status")) in->settings.status = std::string(s->as_string());
        if (auto* p = c.if_contains("priority")) in->settings.priority = std::string(p->as_string());
        for (const auto& t : c.at("activity_types").as_array()) in->settings.activity_types.emplace(t.as_string());
        if (auto* a = c.if_contains("sync_attachments")) {
            std::string since(a->at("since").as_string());
            in->settings.attachments_since_ms = parse_timestamp_ms(since);
            if (!in->settings.attachments_since_ms)
                return fail(
                    host, call, CRMSYNC_STATUS_ERROR,
                    "config.sync_attachments.since: \"" + since + "\" is not a date-time with a zone, e.g. 2026-11-01T00:00:00Z");
        }
        if (auto* f = c.if_contains("folder")) in->folder = std::string(f->as_string());
        if (auto* w = c.if_contains("writeback_file")) in->writeback_file = std::string(w->as_string());
        if (auto* a = c.if_contains("api")) {
            ApiConfig api;
            api.base_url = std::string(a->at("base_url").as_string());
            while (!api.base_url.empty() && api.base_url.back() == '/') api.base_url.pop_back();
            if (auto* size = a->as_object().if_contains("page_size")) api.page_size = static_cast<int>(size->as_int64());
            in->api.emplace(host, api);
        }
        in->settings.writeback = in->api.has_value() || !in->writeback_file.empty();
        created = reinterpret_cast<crmsync_instance*>(in.release());
        return CRMSYNC_STATUS_OK;
    });
    return created;
}

void destroy(crmsync_instance* i) noexcept { delete self(i); }

int32_t authenticate(crmsync_instance* instance, crmsync_call* call, const char* credentials_json) noexcept {
    auto* in = self(instance);
    return guarded(in->host, call, [&]() -> int32_t {
        if (!in->api) return CRMSYNC_STATUS_OK;
        auto c = crmsync::support::parse_object(credentials_json);
        auto* key = c.if_contains("access_key");
        if (!key || !key->is_string() || key->get_string().empty())
            return fail(in->host, call, CRMSYNC_STATUS_AUTH_FAILED,
                        "config.api needs the credential \"access_key\" in the module manifest");
        in->api->set_access_key(std::string(key->get_string()));
        return CRMSYNC_STATUS_OK;
    });
}

// A file named in a `blobs` ref: "id:<attachment id>" from the API, "path:<relative path>"
// inside the export folder.
int32_t fetch_blob(Instance* in, crmsync_call* call, const std::string& ref) {
    std::string bytes, error;
    if (ref.rfind("id:", 0) == 0) {
        if (!in->api)
            return fail(in->host, call, CRMSYNC_STATUS_ERROR,
                        "attachment " + ref.substr(3) + " needs config.api to be downloaded");
        if (int32_t rc = in->api->download(call, ref.substr(3), bytes, error); rc != CRMSYNC_STATUS_OK)
            return fail(in->host, call, rc, error);
    } else if (ref.rfind("path:", 0) == 0) {
        std::filesystem::path relative(ref.substr(5));
        bool inside = !relative.empty() && relative.is_relative();
        for (const auto& part : relative) inside = inside && part != "..";
        if (!inside)
            return fail(in->host, call, CRMSYNC_STATUS_ERROR,
                        "attachment path \"" + relative.string() + "\" must stay inside the export folder");
        auto path = std::filesystem::path(in->folder) / relative;
        std::ifstream file(path, std::ios::binary);
        if (!file) return fail(in->host, call, CRMSYNC_STATUS_ERROR, "attachment file " + path.string() + " cannot be read");
        std::ostringstream content;
        content << file.rdbuf();
        bytes = content.str();
    } else {
        return fail(in->host, call, CRMSYNC_STATUS_ERROR, "unknown attachment reference \"" + ref + "\"");
    }
    // The declared size may be missing or wrong: the content itself decides.
    if (auto left_out = attachment_left_out("attachment " + ref, static_cast<int64_t>(bytes.size()), in->settings))
        return emit(in->host, call, json::object{{"type", "blob"}, {"skip", *left_out}});
    return emit(in->host, call, json::object{{"type", "blob"}, {"data_base64", base64(bytes)}});
}

int32_t fetch(crmsync_instance* instance, crmsync_call* call, const char* request_json) noexcept {
    auto* in = self(instance);
    return guarded(in->host, call, [&]() -> int32_t {
        auto request = crmsync::support::parse_object(request_json);
        std::string type(request.at("type").as_string());
        if (type == "targets") {
            for (const auto& t : targets(in->settings))
                if (int32_t rc = emit(in->host, call, t); rc != CRMSYNC_STATUS_OK) return rc;
            return CRMSYNC_STATUS_OK;
        }
        if (type == "blob") return fetch_blob(in, call, std::string(request.at("ref").as_string()));
        if (type != "records") return fail(in->host, call, CRMSYNC_STATUS_NOT_SUPPORTED, "cs-timeline does not answer " + type);
        int64_t limit = request.at("limit").as_int64();
        if (in->api) {
            json::value next;
            bool more = false;
            std::string error;
            int32_t rc = in->api->list(
                call, request.at("cursor"), limit,
                [&](json::object&& activity) {
                    return emit(in->host, call, record_item(std::move(activity), "id", "a timeline activity"));
                },
                next, more, error);
            if (rc != CRMSYNC_STATUS_OK) return fail(in->host, call, rc, error);
            return emit(in->host, call, checkpoint_item(std::move(next), more));
        }
        return crmsync::support::answer_jsonl_records(in->host, call, in->folder, request, "id");
    });
}

int32_t map(crmsync_instance* instance, crmsync_call* call, const char* record_json) noexcept {
    auto* in = self(instance);
    return guarded(in->host, call, [&]() -> int32_t {
        auto activity = crmsync::support::parse_object(record_json);
        if (int32_t rc; crmsync::support::map_invalid(in->host, call, activity, rc)) return rc;
        auto mapped = activity_operations(activity, in->settings);
        for (const auto& warning : mapped.warnings) in->host->log(call, CRMSYNC_LOG_WARN, warning.c_str());
        for (const auto& op : mapped.operations)
            if (int32_t rc = emit(in->host, call, op); rc != CRMSYNC_STATUS_OK) return rc;
        return CRMSYNC_STATUS_OK;
    });
}

// Write-back: each {"action": "writeback", "source_id", "object", "id"} puts the CRM id onto
// its activity (API) or appends it to writeback_file (folder exports).
int32_t write(crmsync_instance* instance, crmsync_call* call, const char* batch_json) noexcept {
    auto* in = self(instance);
    return guarded(in->host, call, [&]() -> int32_t {
        auto batch = crmsync::support::parse_object(batch_json);
        std::ofstream file;
        if (!in->api && !in->writeback_file.empty()) {
            file.open(in->writeback_file, std::ios::app);
            if (!file)
                return fail(in->host, call, CRMSYNC_STATUS_ERROR,
                            "config.writeback_file " + in->writeback_file + " cannot be written");
        }
        for (const auto& item : batch.at("operations").as_array()) {
            const auto& op = item.as_object();
            std::string activity(op.at("source_id").as_string()), object(op.at("object").as_string()),
                id(op.at("id").as_string());
            std::string error;
            int32_t rc = CRMSYNC_STATUS_OK;
            if (op.at("action") != "writeback") rc = CRMSYNC_STATUS_NOT_SUPPORTED, error = "cs-timeline writes back CRM ids only";
            else if (in->api) rc = in->api->write_back(call, activity, object, id, error);
            else if (file.is_open())
                file << json::serialize(json::object{{"activity_id", activity}, {"object", object}, {"crm_id", id}}) << "\n";
            else rc = CRMSYNC_STATUS_NOT_SUPPORTED, error = "no timeline API or writeback_file configured";
            if (rc == CRMSYNC_STATUS_CANCELLED || rc == CRMSYNC_STATUS_AUTH_FAILED || rc == CRMSYNC_STATUS_RETRY)
                return fail(in->host, call, rc, error);
            json::object result{{"key", op.at("key")}, {"success", rc == CRMSYNC_STATUS_OK}};
            if (rc != CRMSYNC_STATUS_OK)
                result["errors"] = json::array{json::object{{"code", "WRITEBACK_FAILED"}, {"message", error}}};
            if (int32_t e = emit(in->host, call, result); e != CRMSYNC_STATUS_OK) return e;
        }
        file.flush();
        if (file.is_open() && !file)
            return fail(in->host, call, CRMSYNC_STATUS_ERROR,
                        "config.writeback_file " + in->writeback_file + " could not be written");
        return CRMSYNC_STATUS_OK;
    });
}

const crmsync_plugin kPlugin = {
    sizeof(crmsync_plugin),
    CRMSYNC_PLUGIN_ID,
    CRMSYNC_PLUGIN_VERSION,
    "Customer-success timeline: flagged activities become Salesforce Tasks or Events, with their files, and the CRM id goes back",
    kConfigSchema,
    CRMSYNC_CAP_FETCH | CRMSYNC_CAP_MAP | CRMSYNC_CAP_WRITE,
    create,
    destroy,
    authenticate,
    fetch,
    map,
    write,
};

}  // namespace

CRMSYNC_DEFINE_ENTRY(kPlugin)
