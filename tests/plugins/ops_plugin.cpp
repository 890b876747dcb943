// test-ops: a source plugin for service tests. Each line of `file` is a record
// {"id": ..., "ops": [operation, ...]} whose operations map() emits exactly as written, so
// a test states the directives it exercises. `defaults` lists its "fixed" fields per object.
#include <crmsync/plugin.h>
#include <crmsync/support/json_plugin.hpp>

#include <boost/json.hpp>
#include <fstream>
#include <memory>
#include <string>

#include "misbehave.h"

namespace {
namespace json = boost::json;
using crmsync::support::emit;

const char* const kSchema = R"json({
  "type": "object", "required": ["file"], "additionalProperties": false,
  "properties": {"file": {"type": "string"}, "defaults": {"type": "object"}, "required_any": {"type": "array"},
                 "targets": {"type": "array", "description": "target items answered as they are"},
                 "blobs": {"type": "object", "description": "ref -> base64 content answered to blob requests"},
                 "writeback_file": {"type": "string", "description": "where write() appends the write-backs it receives"},
                 )json" TEST_MISBEHAVE_SCHEMA R"json(}
})json";

struct Instance {
    Instance(const crmsync_host_api* h, json::object c) : host(h), config(std::move(c)), misbehave(config) {}
    const crmsync_host_api* host;
    json::object config;
    testplugin::Misbehaviour misbehave;
};
Instance* self(crmsync_instance* i) { return reinterpret_cast<Instance*>(i); }

crmsync_instance* create(const crmsync_host_api* host, crmsync_call*, const char* config) noexcept {
    try {
        return reinterpret_cast<crmsync_instance*>(new Instance(host, crmsync::support::parse_object(config)));
    } catch (...) {
        return nullptr;
    }
}
void destroy(crmsync_instance* i) noexcept { delete self(i); }

int32_t fetch(crmsync_instance* instance, crmsync_call* call, const char* request_json) noexcept {
    auto* in = self(instance);
    return crmsync::support::guarded(in->host, call, [&]() -> int32_t {
        auto req = crmsync::support::parse_object(request_json);
        if (req.at("type") == "targets") {
            if (auto* listed = in->config.if_contains("targets"))  // target items as given, "type" added
                for (const auto& t : listed->as_array()) {
                    json::object target = t.as_object();
                    target["type"] = "target";
                    emit(in->host, call, target);
                }
            if (auto* d = in->config.if_contains("defaults"))
                for (const auto& [object, fields] : d->as_object()) {
                    json::object target{{"type", "target"}, {"object", object}, {"fields", fields}};
                    if (auto* any = in->config.if_contains("required_any")) target["required_any"] = *any;
                    emit(in->host, call, target);
                }
            return CRMSYNC_STATUS_OK;
        }
        if (req.at("type") == "blob") {
            auto* blobs = in->config.if_contains("blobs");
            auto* data = blobs ? blobs->as_object().if_contains(req.at("ref").as_string()) : nullptr;
            if (!data) {
                in->host->fail(call, CRMSYNC_STATUS_ERROR, ("no blob " + json::serialize(req.at("ref"))).c_str());
                return CRMSYNC_STATUS_ERROR;
            }
            return emit(in->host, call, json::object{{"type", "blob"}, {"data_base64", *data}});
        }
        // The cursor is the byte offset after the last line emitted: a page costs its own lines.
        int64_t offset = req.at("cursor").is_int64() ? req.at("cursor").as_int64() : 0;
        int64_t limit = req.at("limit").as_int64(), emitted = 0;
        std::ifstream file(std::string(in->config.at("file").as_string()));
        file.seekg(offset);
        std::string line;
        bool more = false;
        // Offsets are counted, not asked of the stream (tellg is a system call a line).
        for (int64_t next = offset; std::getline(file, line); offset = next) {
            next = offset + static_cast<int64_t>(line.size()) + (file.eof() ? 0 : 1);
            if (line.empty()) continue;
            if (emitted == limit) {
                more = true;
                break;
            }
            // A string id read alone, and the line sent as it is; any other line parsed whole.
            if (auto found = crmsync::support::object_member(line, "id"); found && found->is_string()) {
                crmsync::support::emit_record_text(in->host, call, found->get_string(), line);
            } else {
                json::monotonic_resource arena;  // the line's record, gone at once
                auto rec = crmsync::support::parse_object(line, &arena);
                const auto& id = rec.at("id");
                json::object item({{"type", "record"}, {"id", id}}, &arena);
                item["record"] = std::move(rec);
                emit(in->host, call, item);
            }
            ++emitted;
        }
        if (!more) {
            file.clear();
            file.seekg(0, std::ios::end);
            offset = file.tellg();
        }
        return emit(in->host, call, json::object{{"type", "checkpoint"}, {"cursor", offset}, {"more", more}});
    });
}

int32_t map(crmsync_instance* instance, crmsync_call* call, const char* record_json) noexcept {
    auto* in = self(instance);
    return crmsync::support::guarded(in->host, call, [&]() -> int32_t {
        json::monotonic_resource arena;
        auto rec = crmsync::support::parse_object(record_json, &arena);
        for (const auto& op : rec.at("ops").as_array()) emit(in->host, call, op);
        return CRMSYNC_STATUS_OK;
    });
}

// Write-back: appends each {action: writeback, ...} to `writeback_file`, one JSON line each.
int32_t write(crmsync_instance* instance, crmsync_call* call, const char* batch_json) noexcept {
    auto* in = self(instance);
    return crmsync::support::guarded(in->host, call, [&]() -> int32_t {
        auto batch = crmsync::support::parse_object(batch_json);
        if (!in->misbehave.at("write")) return CRMSYNC_STATUS_ERROR;
        std::string path = in->config.contains("writeback_file") ? std::string(in->config.at("writeback_file").as_string()) : "";
        std::ofstream out(path, std::ios::app);
        for (const auto& op : batch.at("operations").as_array()) {
            bool ok = !path.empty() && op.at("action") == "writeback";
            if (ok) out << json::serialize(op) << "\n";
            emit(in->host, call, json::object{{"key", op.at("key")}, {"success", ok}, {"id", op.at("source_id")}});
        }
        return CRMSYNC_STATUS_OK;
    });
}

const crmsync_plugin kPlugin = {sizeof(crmsync_plugin),
                                CRMSYNC_PLUGIN_ID,
                                CRMSYNC_PLUGIN_VERSION,
                                "operations from a file, for service tests",
                                kSchema,
                                CRMSYNC_CAP_FETCH | CRMSYNC_CAP_MAP | CRMSYNC_CAP_WRITE,
                                create,
                                destroy,
                                nullptr,
                                fetch,
                                map,
                                write};
}  // namespace

CRMSYNC_DEFINE_ENTRY(kPlugin)
