// helpdesk-tickets: every customer contact an agent makes in the shared inbox becomes a
// Salesforce Event on the customer's Contacts (or Lead), owned by the agent's user.
// Source events come by webhook (crmsync serve) and from a folder of JSON Lines exports;
// the rules are in rules.cpp, the event shape in README.md.
#include <crmsync/plugin.h>
#include <crmsync/support/json_plugin.hpp>

#include <memory>
#include <optional>

#include "api.h"
#include "rules.h"

namespace {

using namespace helpdesk;
using crmsync::support::checkpoint_item;
using crmsync::support::emit;
using crmsync::support::fail;
using crmsync::support::guarded;
using crmsync::support::record_item;

const char* const kConfigSchema = R"json({
  "$schema": "http://json-schema.org/draft-07/schema#",
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "folder": {"type": "string", "description": "folder of *.jsonl event exports (optional: webhooks alone also work)"},
    "api": {"type": "object", "additionalProperties": false, "required": ["base_url", "message_box_ids"],
            "description": "poll the helpdesk's REST API (needs the credential api_token)",
            "properties": {"base_url": {"type": "string", "pattern": "^https?://"},
                           "message_box_ids": {"type": "array", "items": {"type": "string"}, "minItems": 1}}},
    "relate_to": {"type": "array", "items": {"enum": ["Contact", "Lead"]}, "minItems": 1, "uniqueItems": true,
                  "description": "what an Event may be related to, in order (default [\"Contact\", \"Lead\"])"},
    "open_opportunity": {"type": "boolean", "description": "also relate the Contact's open Opportunity"}
  }
})json";

struct Instance {
    const crmsync_host_api* host;
    std::string folder;
    std::optional<ApiConfig> api;
    std::string token;
    Settings settings;
};

Instance* self(crmsync_instance* i) { return reinterpret_cast<Instance*>(i); }

crmsync_instance* create(const crmsync_host_api* host, crmsync_call* call, const char* config_json) noexcept {
    crmsync_instance* created = nullptr;
    guarded(host, call, [&]() -> int32_t {
        auto c = crmsync::support::parse_object(config_json);
        auto in = std::make_unique<Instance>();
        in->host = host;
        if (auto* f = c.if_contains("folder")) in->folder = std::string(f->as_string());
        if (auto* r = c.if_contains("relate_to")) in->settings.relate_to = r->as_array();
        if (auto* o = c.if_contains("open_opportunity")) in->settings.open_opportunity = o->as_bool();
        if (auto* a = c.if_contains("api")) {
            ApiConfig api;
            api.base_url = std::string(a->at("base_url").as_string());
            while (!api.base_url.empty() && api.base_url.back() == '/') api.base_url.pop_back();
            for (const auto& id : a->at("message_box_ids").as_array()) api.message_boxes.emplace_back(id.as_string());
            in->api = api;
        }
        created = reinterpret_cast<crmsync_instance*>(in.release());
        return CRMSYNC_STATUS_OK;
    });
    return created;
}

void destroy(crmsync_instance* i) noexcept { delete self(i); }

int32_t authenticate(crmsync_instance* instance, crmsync_call* call, const char* credentials_json) noexcept {
    auto* in = self(instance);
    return guarded(in->host, call, [&]() -> int32_t {
        auto c = crmsync::support::parse_object(credentials_json);
        if (auto* t = c.if_contains("api_token"); t && t->is_string()) in->token = std::string(t->get_string());
        if (in->api && in->token.empty())
            return fail(in->host, call, CRMSYNC_STATUS_AUTH_FAILED,
                        "config.api needs the credential \"api_token\" in the module manifest");
        return CRMSYNC_STATUS_OK;
    });
}

int32_t fetch(crmsync_instance* instance, crmsync_call* call, const char* request_json) noexcept {
    auto* in = self(instance);
    return guarded(in->host, call, [&]() -> int32_t {
        auto request = crmsync::support::parse_object(request_json);
        std::string type(request.at("type").as_string());
        if (type == "targets")
            return emit(
                in->host, call,
                json::object{{"type", "target"},
                             {"object", "Event"},
                             {"fields", json::array{"Subject", "Type", "StartDateTime", "EndDateTime", "DurationInMinutes",
                                                    "Description", "OwnerId", "WhoId", "EventWhoIds", "WhatId"}}});
        if (type != "records")
            return fail(in->host, call, CRMSYNC_STATUS_NOT_SUPPORTED, "helpdesk-tickets does not answer " + type);
        if (in->api) {
            json::value next;
            bool more = false;
            std::string error;
            int32_t rc = fetch_events(
                in->host, call, *in->api, in->token, request.at("cursor"), request.at("limit").as_int64(),
                [&](json::object&& event) {
                    return emit(in->host, call, record_item(std::move(event), "event_id", "a helpdesk API event"));
                },
                next, more, error);
            if (rc != CRMSYNC_STATUS_OK) return fail(in->host, call, rc, error);
            return emit(in->host, call, checkpoint_item(std::move(next), more));
        }
        if (in->folder.empty()) return emit(in->host, call, checkpoint_item(nullptr, false));  // webhook-only: nothing to poll
        return crmsync::support::answer_jsonl_records(in->host, call, in->folder, request, "event_id");
    });
}

int32_t map(crmsync_instance* instance, crmsync_call* call, const char* record_json) noexcept {
    auto* in = self(instance);
    return guarded(in->host, call, [&]() -> int32_t {
        auto event = crmsync::support::parse_object(record_json);
        if (int32_t rc; crmsync::support::map_invalid(in->host, call, event, rc)) return rc;
        auto op = event_operation(event, in->settings);
        if (op) return emit(in->host, call, *op);
        return CRMSYNC_STATUS_OK;  // this action creates no Event
    });
}

const crmsync_plugin kPlugin = {
    sizeof(crmsync_plugin),
    CRMSYNC_PLUGIN_ID,
    CRMSYNC_PLUGIN_VERSION,
    "Shared-inbox helpdesk: each mail, SMS, call, visit or chat an agent makes becomes a Salesforce Event",
    kConfigSchema,
    CRMSYNC_CAP_FETCH | CRMSYNC_CAP_MAP,
    create,
    destroy,
    authenticate,
    fetch,
    map,
    nullptr,
};

}  // namespace

CRMSYNC_DEFINE_ENTRY(kPlugin)
