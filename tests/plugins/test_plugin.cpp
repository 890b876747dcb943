// A configurable source plugin for tests, compiled several times with different defines to
// give the loader one plugin per failure mode (see CMakeLists.txt). As a working source it
// generates `count` records on the fly (cursor = next index) and maps each to a Task upsert.
// Config switches inject faults: fetch RETRY for the first N calls, a slow page, bad JSON.
#include <crmsync/plugin.h>
#include <crmsync/support/json_plugin.hpp>

#include <boost/json.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "misbehave.h"

#ifndef TEST_ABI_MAJOR
#define TEST_ABI_MAJOR CRMSYNC_ABI_MAJOR
#endif
#ifndef TEST_ABI_MINOR
#define TEST_ABI_MINOR CRMSYNC_ABI_MINOR
#endif

namespace {
using crmsync::support::emit;
namespace json = boost::json;

const char* const kSchema = R"json({
  "$schema": "http://json-schema.org/draft-07/schema#",
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "count": {"type": "integer", "minimum": 0},
    "object": {"type": "string"},
    "key_prefix": {"type": "string"},
    "retry_first_fetches": {"type": "integer", "minimum": 0},
    "page_delay_ms": {"type": "integer", "minimum": 0},
    "bad_every": {"type": "integer", "minimum": 0, "description": "every Nth record maps to a field the CRM lacks"},
    "mode": {"enum": ["normal", "emit_invalid_json", "emit_too_many"]},
    )json" TEST_MISBEHAVE_SCHEMA R"json(
  }
})json";

struct Instance {
    const crmsync_host_api* host;
    int64_t count = 10, retry_first = 0, delay_ms = 0, bad_every = 0;
    std::string object = "Task", prefix = "test", mode = "normal";
    int64_t fetches = 0;
    testplugin::Misbehaviour misbehave{json::object{}};
};
Instance* self(crmsync_instance* i) { return reinterpret_cast<Instance*>(i); }

crmsync_instance* create(const crmsync_host_api* host, crmsync_call* call, const char* config_json) noexcept {
#ifdef TEST_CREATE_FAILS
    (void)config_json;
    host->fail(call, CRMSYNC_STATUS_ERROR, "the test plugin was told to fail: region eu-9 does not exist");
    return nullptr;
#else
    try {
        auto c = crmsync::support::parse_object(config_json);
        auto in = std::make_unique<Instance>();
        in->host = host;
        if (auto* v = c.if_contains("count")) in->count = v->as_int64();
        if (auto* v = c.if_contains("object")) in->object = std::string(v->as_string());
        if (auto* v = c.if_contains("key_prefix")) in->prefix = std::string(v->as_string());
        if (auto* v = c.if_contains("retry_first_fetches")) in->retry_first = v->as_int64();
        if (auto* v = c.if_contains("page_delay_ms")) in->delay_ms = v->as_int64();
        if (auto* v = c.if_contains("bad_every")) in->bad_every = v->as_int64();
        if (auto* v = c.if_contains("mode")) in->mode = std::string(v->as_string());
        in->misbehave = testplugin::Misbehaviour(c);
        in->misbehave.at("create");
        return reinterpret_cast<crmsync_instance*>(in.release());
    } catch (const std::exception& e) {
        host->fail(call, CRMSYNC_STATUS_ERROR, e.what());
        return nullptr;
    }
#endif
}

void destroy(crmsync_instance* i) noexcept { delete self(i); }

int32_t authenticate(crmsync_instance* instance, crmsync_call*, const char*) noexcept {
    self(instance)->misbehave.at("authenticate");
    return CRMSYNC_STATUS_OK;
}

int32_t fetch(crmsync_instance* instance, crmsync_call* call, const char* request_json) noexcept {
    auto* in = self(instance);
    return crmsync::support::guarded(in->host, call, [&]() -> int32_t {
        auto req = crmsync::support::parse_object(request_json);
        if (req.at("type").as_string() == "targets")
            return emit(
                in->host, call,
                json::object{{"type", "target"}, {"object", in->object}, {"fields", json::array{"Subject", "Description"}}});
        if (req.at("type").as_string() != "records") return CRMSYNC_STATUS_NOT_SUPPORTED;
        if (!in->misbehave.at("fetch")) return CRMSYNC_STATUS_ERROR;
        if (in->fetches++ < in->retry_first) {
            in->host->fail(call, CRMSYNC_STATUS_RETRY, "503 Service Unavailable (injected)");
            return CRMSYNC_STATUS_RETRY;
        }
        if (in->delay_ms) std::this_thread::sleep_for(std::chrono::milliseconds(in->delay_ms));
        int64_t start = req.at("cursor").is_int64() ? req.at("cursor").as_int64() : 0;
        int64_t limit = req.at("limit").as_int64();
        if (in->mode == "emit_too_many") limit *= 2;
        int64_t end = std::min(in->count, start + limit);
        for (int64_t i = start; i < end; ++i) {
            if (in->mode == "emit_invalid_json") {
                const char bad[] = "{\"type\": \"record\", \"id\": ";
                in->host->emit(call, bad, sizeof bad - 1);
                continue;
            }
            json::object rec{{"n", i}, {"subject", "Generated task " + std::to_string(i)}};
            int32_t rc =
                emit(in->host, call, json::object{{"type", "record"}, {"id", "rec-" + std::to_string(i)}, {"record", rec}});
            if (rc == CRMSYNC_STATUS_CANCELLED) break;
        }
        return emit(in->host, call, json::object{{"type", "checkpoint"}, {"cursor", end}, {"more", end < in->count}});
    });
}

int32_t map(crmsync_instance* instance, crmsync_call* call, const char* record_json) noexcept {
    auto* in = self(instance);
    return crmsync::support::guarded(in->host, call, [&]() -> int32_t {
        auto rec = crmsync::support::parse_object(record_json);
        if (!in->misbehave.at("map")) {
            in->host->fail(call, CRMSYNC_STATUS_ERROR, in->misbehave.why.c_str());
            return CRMSYNC_STATUS_ERROR;
        }
        int64_t n = rec.at("n").as_int64();
        json::object fields{{"Subject", rec.at("subject")}, {"Description", "record " + std::to_string(n)}};
        if (in->bad_every && n % in->bad_every == 0) fields["No_Such_Field__c"] = "x";
        return emit(
            in->host, call,
            json::object{
                {"object", in->object}, {"action", "upsert"}, {"key", in->prefix + ":" + std::to_string(n)}, {"fields", fields}});
    });
}

[[maybe_unused]] const crmsync_plugin kPlugin = {
    sizeof(crmsync_plugin),
    CRMSYNC_PLUGIN_ID,
    CRMSYNC_PLUGIN_VERSION,
    "test source",
    kSchema,
    CRMSYNC_CAP_FETCH | CRMSYNC_CAP_MAP,
    create,
    destroy,
    authenticate,
    fetch,
    map,
    nullptr,
};
}  // namespace

#ifndef TEST_NO_ENTRY
extern "C" CRMSYNC_EXPORT int32_t crmsync_negotiate(crmsync_negotiation* n) {
    n->plugin_abi_major = TEST_ABI_MAJOR;
    n->plugin_abi_minor = TEST_ABI_MINOR;
    if (n->host_abi_major != TEST_ABI_MAJOR) return CRMSYNC_STATUS_ERROR;
    n->plugin = &kPlugin;
    return CRMSYNC_STATUS_OK;
}
#else
extern "C" CRMSYNC_EXPORT int not_a_crmsync_plugin(void) { return 0; }
#endif

#ifdef TEST_NEEDS_DEPENDENCY
extern "C" int crmsync_test_dependency_value(void);
extern "C" CRMSYNC_EXPORT int uses_dependency(void) { return crmsync_test_dependency_value(); }
#endif

#ifdef TEST_CONSTRUCTOR_MARKER
// Runs the moment the library is opened, before any ABI call: a library that was never
// verified must never get this far. It leaves a mark where the test asks.
#include <cstdio>
#include <cstdlib>
__attribute__((constructor)) static void leave_mark() {
    if (const char* path = std::getenv("CRMSYNC_TEST_CONSTRUCTOR_MARK"))
        if (FILE* f = std::fopen(path, "a")) {
            std::fputs("constructor ran\n", f);
            std::fclose(f);
        }
}
#endif
