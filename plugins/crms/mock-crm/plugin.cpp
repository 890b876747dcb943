// mock-crm: the embedded CRM as a crmsync plugin. Answers the CRM fetch requests (query,
// describe, limits, whoami) and writes batches with external-id upsert, counting API
// calls by kind as Salesforce would (one per write call of up to 200, one per query page
// of 2,000 rows, one per describe).
#include <crmsync/plugin.h>
#include <crmsync/support/json_plugin.hpp>
#include <crmsync/support/soql.hpp>

#include <algorithm>
#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "engine/engine.h"

namespace {

using crmsync::support::crm_row_item;
using crmsync::support::emit;
using crmsync::support::fail;
using crmsync::support::guarded;
using crmsync::support::text;

namespace json = boost::json;
using mockcrm::CrmError;

const char* const kConfigSchema = R"json({
  "$schema": "http://json-schema.org/draft-07/schema#",
  "type": "object",
  "required": ["database"],
  "additionalProperties": false,
  "properties": {
    "database": {"type": "string", "minLength": 1, "description": "SQLite file of the mock org; created when missing"},
    "seed": {"type": "string", "description": "JSON file of records loaded when the database is created"},
    "schema": {"type": "object", "description": "custom objects and fields, e.g. {\"Task\": {\"fields\": {\"CrmSync_Key__c\": {\"type\": \"string\", \"external_id\": true}}}}"},
    "daily_api_limit": {"type": "integer", "minimum": 1},
    "licenses": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}},
    "run_as": {"type": "string", "description": "Username the connection acts as (default admin@crmsync.mock)"},
    "abi_1_0_requests": {"type": "boolean", "description": "answer only the fetch requests ABI 1.0 had (no lookup, no changes), as an older CRM plugin would: for QA of the host's fallbacks"}
  }
})json";

struct Instance {
    const crmsync_host_api* host;
    std::unique_ptr<mockcrm::Engine> engine;
    std::string run_as = "admin@crmsync.mock";
    bool abi_1_0_requests = false;  // answer lookup and changes NOT_SUPPORTED
};

Instance* self(crmsync_instance* i) { return reinterpret_cast<Instance*>(i); }

void report_usage(Instance* in, crmsync_call* call) {
    in->host->api_usage(call, in->engine->api_used_today(), in->engine->api_limit());
}

crmsync_instance* create(const crmsync_host_api* host, crmsync_call* call, const char* config_json) noexcept {
    crmsync_instance* created = nullptr;
    guarded(host, call, [&]() -> int32_t {
        auto config = crmsync::support::parse_object(config_json);
        auto in = std::make_unique<Instance>();
        in->host = host;
        mockcrm::EngineOptions options;
        options.database = std::string(config.at("database").as_string());
        if (auto* s = config.if_contains("schema")) options.schema = s->as_object();
        if (auto* l = config.if_contains("daily_api_limit")) options.daily_api_limit = l->as_int64();
        if (auto* l = config.if_contains("licenses"))
            for (const auto& [name, count] : l->as_object()) options.licenses[std::string(name)] = count.as_int64();
        if (auto* r = config.if_contains("run_as")) in->run_as = std::string(r->as_string());
        if (auto* old = config.if_contains("abi_1_0_requests")) in->abi_1_0_requests = old->as_bool();
        options.now_ms = [host] { return host->now_ms(nullptr); };
        std::error_code ec;
        auto parent = std::filesystem::path(options.database).parent_path();
        if (!parent.empty()) std::filesystem::create_directories(parent, ec);
        bool fresh = !std::filesystem::exists(options.database, ec);
        in->engine = std::make_unique<mockcrm::Engine>(options);
        if (fresh && config.contains("seed")) {
            std::string path(config.at("seed").as_string());
            std::ifstream file(path);
            if (!file) throw CrmError("INVALID_SEED", "seed file " + path + " cannot be read");
            std::stringstream text;
            text << file.rdbuf();
            boost::system::error_code jec;
            auto data = json::parse(text.str(), jec);
            if (jec || !data.is_object()) throw CrmError("INVALID_SEED", "seed file " + path + " is not a JSON object");
            in->engine->transaction([&] { in->engine->seed(data.as_object()); });
        }
        created = reinterpret_cast<crmsync_instance*>(in.release());
        return CRMSYNC_STATUS_OK;
    });
    return created;
}

void destroy(crmsync_instance* instance) noexcept { delete self(instance); }

int32_t authenticate(crmsync_instance* instance, crmsync_call* call, const char*) noexcept {
    auto* in = self(instance);
    return guarded(in->host, call, [&]() -> int32_t {
        std::string id = in->engine->find_user_by_username(in->run_as);
        if (id.empty())
            return fail(in->host, call, CRMSYNC_STATUS_AUTH_FAILED,
                        "invalid_grant: no active user " + in->run_as + " in the mock org");
        auto rows = in->engine->query("SELECT Id FROM User WHERE Id = '" + id + "' AND IsActive = true");
        if (rows.rows.empty())
            return fail(in->host, call, CRMSYNC_STATUS_AUTH_FAILED, "invalid_grant: user " + in->run_as + " is inactive");
        in->engine->set_running_user(id);
        return CRMSYNC_STATUS_OK;
    });
}

int32_t fetch(crmsync_instance* instance, crmsync_call* call, const char* request_json) noexcept {
    auto* in = self(instance);
    try {
        auto request = crmsync::support::parse_object(request_json);
        std::string type(request.at("type").as_string());
        if (type == "query") {
            in->engine->spend_api_call("read");
            auto result = in->engine->query(std::string(request.at("soql").as_string()));
            // Salesforce pages query results at 2,000 rows; each further page is a call.
            for (size_t extra = 2000; extra < result.rows.size(); extra += 2000) in->engine->spend_api_call("read");
            report_usage(in, call);
            if (result.count) return emit(in->host, call, json::object{{"type", "count"}, {"count", result.total}});
            for (auto& row : result.rows) {
                int32_t rc = emit(in->host, call, crm_row_item(std::move(row)));
                if (rc == CRMSYNC_STATUS_CANCELLED) return rc;
            }
            return CRMSYNC_STATUS_OK;
        }
        if (in->abi_1_0_requests && (type == "changes" || type == "lookup"))
            return fail(in->host, call, CRMSYNC_STATUS_NOT_SUPPORTED, "mock-crm is answering as an ABI 1.0 CRM plugin would");
        if (type == "changes") {
            // ABI 1.1: a page of changed records, deletions included, after the
            // {"modstamp", "id"} cursor; one call, as one SOQL query would be.
            std::string after_modstamp, after_id;
            if (auto* c = request.at("cursor").if_object()) {
                after_modstamp = crmsync::support::text(*c, "modstamp");
                after_id = crmsync::support::text(*c, "id");
            }
            std::vector<std::string> fields;
            for (const auto& f : request.at("fields").as_array()) fields.emplace_back(f.as_string());
            const int64_t limit = std::clamp<int64_t>(request.at("limit").to_number<int64_t>(), 1, 2000);
            in->engine->spend_api_call("read");
            auto rows =
                in->engine->changes(std::string(request.at("object").as_string()), fields, after_modstamp, after_id, limit);
            report_usage(in, call);
            for (auto& row : rows) {
                after_modstamp = std::string(row.at("SystemModstamp").as_string());
                after_id = std::string(row.at("Id").as_string());
                if (emit(in->host, call, crm_row_item(std::move(row))) == CRMSYNC_STATUS_CANCELLED)
                    return CRMSYNC_STATUS_CANCELLED;
            }
            json::value cursor = after_modstamp.empty()
                                     ? json::value(nullptr)
                                     : json::value(json::object{{"modstamp", after_modstamp}, {"id", after_id}});
            return emit(in->host, call,
                        crmsync::support::checkpoint_item(std::move(cursor), static_cast<int64_t>(rows.size()) == limit));
        }
        if (type == "lookup") {
            // Like Salesforce's statements: up to 100,000 characters each, a call apiece.
            std::string why;
            auto lookup = crmsync::support::soql::Lookup::parse(request, why);
            if (!lookup) return fail(in->host, call, CRMSYNC_STATUS_ERROR, why);
            for (const auto& soql : lookup->statements(100'000, [](const std::string& s) { return s.size(); })) {
                in->engine->spend_api_call("read");
                for (auto& row : in->engine->query(soql).rows)
                    if (emit(in->host, call, crm_row_item(std::move(row))) == CRMSYNC_STATUS_CANCELLED)
                        return CRMSYNC_STATUS_CANCELLED;
            }
            report_usage(in, call);
            return CRMSYNC_STATUS_OK;
        }
        if (type == "describe") {
            for (const auto& object : request.at("objects").as_array()) {
                in->engine->spend_api_call("read");
                auto d = in->engine->describe(std::string(object.as_string()));
                d["type"] = "describe";
                d["object"] = d["name"];
                emit(in->host, call, d);
            }
            report_usage(in, call);
            return CRMSYNC_STATUS_OK;
        }
        if (type == "limits") {
            in->engine->spend_api_call("read");
            report_usage(in, call);
            return emit(
                in->host, call,
                json::object{{"type", "limits"}, {"used", in->engine->api_used_today()}, {"limit", in->engine->api_limit()}});
        }
        if (type == "find") {
            auto strings = [&](const char* key) {
                std::vector<std::string> out;
                if (auto* list = request.if_contains(key); list && list->is_array())
                    for (const auto& v : list->as_array())
                        if (v.is_string()) out.emplace_back(v.get_string());
                return out;
            };
            auto emails = strings("emails"), phones = strings("phones");
            std::string country = request.contains("country_code") ? std::string(request.at("country_code").as_string()) : "";
            for (const auto& object : request.at("objects").as_array()) {
                // As on Salesforce: one SOQL for the emails, one SOSL for the phones, per object.
                if (!emails.empty()) in->engine->spend_api_call("read");
                if (!phones.empty()) in->engine->spend_api_call("read");
                for (auto& row : in->engine->find(std::string(object.as_string()), emails, phones, country)) {
                    if (emit(in->host, call, crm_row_item(std::move(row))) == CRMSYNC_STATUS_CANCELLED)
                        return CRMSYNC_STATUS_CANCELLED;
                }
            }
            report_usage(in, call);
            return CRMSYNC_STATUS_OK;
        }
        if (type == "whoami") {
            auto rows = in->engine->query("SELECT Id, Username, Email FROM User WHERE Id = '" + in->engine->running_user() + "'");
            if (rows.rows.empty()) return fail(in->host, call, CRMSYNC_STATUS_AUTH_FAILED, "not authenticated");
            return emit(in->host, call,
                        json::object{{"type", "record"}, {"id", in->engine->running_user()}, {"record", rows.rows[0]}});
        }
        return fail(in->host, call, CRMSYNC_STATUS_NOT_SUPPORTED, "mock-crm does not answer fetch type \"" + type + "\"");
    } catch (const CrmError& e) {
        int32_t status = e.code == "REQUEST_LIMIT_EXCEEDED" ? CRMSYNC_STATUS_RATE_LIMITED : CRMSYNC_STATUS_ERROR;
        return fail(in->host, call, status, e.code + ": " + e.what());
    } catch (const std::exception& e) {
        return fail(in->host, call, CRMSYNC_STATUS_ERROR, e.what());
    }
}

json::object result_json(const std::string& key, const mockcrm::SaveResult& r) {
    json::object out{{"key", key}, {"success", r.success}};
    if (r.success) {
        out["id"] = r.id;
        out["created"] = r.created;
        return out;
    }
    json::array errors;
    for (const auto& e : r.errors) {
        json::array fields;
        for (const auto& f : e.fields) fields.emplace_back(f);
        errors.push_back(json::object{{"code", e.code}, {"message", e.message}, {"fields", fields}});
    }
    out["errors"] = errors;
    return out;
}

int32_t write(crmsync_instance* instance, crmsync_call* call, const char* batch_json) noexcept {
    auto* in = self(instance);
    try {
        auto batch = crmsync::support::parse_object(batch_json);
        std::string external_field = batch.contains("external_id_field") ? std::string(batch.at("external_id_field").as_string())
                                                                         : std::string("CrmSync_Key__c");
        const auto& operations = batch.at("operations").as_array();
        bool bulk = batch.contains("bulk") && batch.at("bulk").is_bool() && batch.at("bulk").as_bool();
        if (operations.size() > 200 && !bulk)
            return fail(in->host, call, CRMSYNC_STATUS_ERROR,
                        "EXCEEDED_ID_LIMIT: record limit reached. cannot submit more than 200 records into this call");
        in->engine->spend_api_call("write");
        std::vector<json::object> results;
        in->engine->transaction([&] {
            for (const auto& value : operations) {
                const auto& op = value.as_object();
                std::string key = op.contains("key") ? std::string(op.at("key").as_string()) : "";
                std::string object(op.at("object").as_string());
                std::string action = op.contains("action") ? std::string(op.at("action").as_string()) : "upsert";
                const auto& fields = op.at("fields").as_object();
                mockcrm::SaveResult r;
                if (action == "picklist_add") {
                    try {
                        in->engine->add_picklist_value(object, std::string(op.at("field").as_string()),
                                                       std::string(op.at("value").as_string()));
                        r.success = true;
                    } catch (const CrmError& e) {
                        r.errors.push_back({e.code, e.what(), {}});
                    }
                } else if (action == "create") {
                    r = in->engine->create(object, fields);
                } else if (action == "update") {
                    std::string id = op.contains("id") ? std::string(op.at("id").as_string()) : "";
                    r = id.empty()
                            ? mockcrm::SaveResult{false, "", false, {{"MISSING_ARGUMENT", "update needs the record id", {"Id"}}}}
                            : in->engine->update(object, id, fields);
                } else {
                    r = in->engine->upsert(object, external_field, key, fields);
                }
                results.push_back(result_json(key, r));
            }
        });
        report_usage(in, call);
        for (const auto& r : results) emit(in->host, call, r);
        return CRMSYNC_STATUS_OK;
    } catch (const CrmError& e) {
        int32_t status = e.code == "REQUEST_LIMIT_EXCEEDED" ? CRMSYNC_STATUS_RATE_LIMITED : CRMSYNC_STATUS_ERROR;
        return fail(in->host, call, status, e.code + ": " + e.what());
    } catch (const std::exception& e) {
        // A locked database file is transient: another process holds the write lock.
        std::string what = e.what();
        int32_t status = what.find("locked") != std::string::npos || what.find("busy") != std::string::npos
                             ? CRMSYNC_STATUS_RETRY
                             : CRMSYNC_STATUS_ERROR;
        return fail(in->host, call, status, what);
    }
}

const crmsync_plugin kPlugin = {
    sizeof(crmsync_plugin),
    "mock-crm",
    CRMSYNC_PLUGIN_VERSION,
    "An embedded CRM over SQLite with Salesforce's semantics, for QA and the demo",
    kConfigSchema,
    CRMSYNC_CAP_FETCH | CRMSYNC_CAP_WRITE,
    create,
    destroy,
    authenticate,
    fetch,
    nullptr,
    write,
};

}  // namespace

CRMSYNC_DEFINE_ENTRY(kPlugin)
