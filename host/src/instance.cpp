#include "instance.h"

#include <cstring>
#include <deque>
#include <thread>

#include "isolation/abi_exchange.h"
#include "schema.h"

namespace crmsync {

std::string_view status_name(int32_t status) {
    switch (status) {
        case CRMSYNC_STATUS_OK: return "OK";
        case CRMSYNC_STATUS_RETRY: return "RETRY";
        case CRMSYNC_STATUS_ERROR: return "ERROR";
        case CRMSYNC_STATUS_AUTH_FAILED: return "AUTH_FAILED";
        case CRMSYNC_STATUS_RATE_LIMITED: return "RATE_LIMITED";
        case CRMSYNC_STATUS_NOT_SUPPORTED: return "NOT_SUPPORTED";
        case CRMSYNC_STATUS_CANCELLED: return "CANCELLED";
    }
    return "ERROR";
}

namespace {

int32_t normalized(int32_t status) {
    return status >= CRMSYNC_STATUS_OK && status <= CRMSYNC_STATUS_CANCELLED ? status : CRMSYNC_STATUS_ERROR;
}

// ---- The host services table. Every entry is noexcept with a catch-all: nothing thrown
// here may unwind into plugin code.

void api_log(crmsync_call* call, int32_t level, const char* message) noexcept {
    try {
        if (!call || !call->services || !message) return;
        Level l = level <= CRMSYNC_LOG_DEBUG  ? Level::debug
                  : level == CRMSYNC_LOG_INFO ? Level::info
                  : level == CRMSYNC_LOG_WARN ? Level::warn
                                              : Level::error;
        if (call->services->log) call->services->log(l, std::string(call->plugin_id) + ": " + message);
    } catch (...) {}
}

void api_fail(crmsync_call* call, int32_t status, const char* message) noexcept {
    try {
        if (!call) return;
        call->fail_status = normalized(status);
        call->fail_message = message ? message : "";
    } catch (...) {}
}

int32_t api_emit(crmsync_call* call, const char* text, size_t size) noexcept {
    try {
        if (!call || !text) return CRMSYNC_STATUS_ERROR;
        if (!call->on_item) {
            api_log(call, CRMSYNC_LOG_ERROR, "emit() called from an entry point that emits nothing");
            return CRMSYNC_STATUS_ERROR;
        }
        // A source's record, in the plain form nearly every plugin emits, goes on as its text:
        // map() gets it as it came, without the host building it and writing it out again.
        if (call->on_record) {
            if (auto record = read_record_item(std::string_view(text, size))) return (*call->on_record)(std::move(*record));
        }
        // The items of one call share a monotonic resource, freed when the last of them goes.
        // Its first block holds a mapped record's operations whole (Boost's 1 KiB did not: two
        // or three mallocs a record, which perf found at 3% of the bench's client).
        if (!call->items.is_shared()) call->items = json::make_shared_resource<json::monotonic_resource>(4096);
        auto parsed = parse_json(std::string_view(text, size), call->items);
        if (!parsed) {
            api_log(call, CRMSYNC_LOG_ERROR, ("emitted text that is not JSON: " + parsed.status().message()).c_str());
            return CRMSYNC_STATUS_ERROR;
        }
        return (*call->on_item)(std::move(parsed.value()));
    } catch (const std::exception& e) {
        api_log(call, CRMSYNC_LOG_ERROR, (std::string("emit failed in the host: ") + e.what()).c_str());
        return CRMSYNC_STATUS_ERROR;
    } catch (...) {
        return CRMSYNC_STATUS_ERROR;
    }
}

int32_t api_http(crmsync_call* call, const crmsync_http_request* request, crmsync_http_response* response) noexcept {
    try {
        if (!call || !call->services || !request || !response) return CRMSYNC_STATUS_ERROR;
        crmsync_http_request req = abi::sized_copy(request);
        if (!req.method || !req.url) {
            api_fail(call, CRMSYNC_STATUS_ERROR, "http request without method or url");
            return CRMSYNC_STATUS_ERROR;
        }
        if (call->services->cancel && call->services->cancel->load()) return CRMSYNC_STATUS_CANCELLED;
        HttpRequest r;
        r.method = req.method;
        r.url = req.url;
        for (uint32_t i = 0; i < req.header_count && req.headers; ++i)
            if (req.headers[i]) r.headers.emplace_back(req.headers[i]);
        if (req.body && req.body_size) r.body.assign(req.body, req.body_size);
        if (req.timeout_ms) r.timeout_ms = req.timeout_ms;
        r.idempotent = req.idempotent != 0;
        if (!call->http) call->http.emplace(call->services->http.take());
        auto result = call->http->get()->perform(r);
        if (!result) {
            api_fail(call, CRMSYNC_STATUS_RETRY, result.status().message().c_str());
            abi::fill_http_response(response, 0, nullptr, nullptr);
            return CRMSYNC_STATUS_RETRY;
        }
        // Pointers to the strings, not to the vector's slots: the vector may grow.
        std::string* body = call->kept.emplace_back(std::make_unique<std::string>(std::move(result->body))).get();
        std::string* headers = call->kept.emplace_back(std::make_unique<std::string>(std::move(result->headers))).get();
        abi::fill_http_response(response, result->status, body, headers);
        return CRMSYNC_STATUS_OK;
    } catch (...) {
        return CRMSYNC_STATUS_ERROR;
    }
}

const char* api_secret(crmsync_call* call, const char* name) noexcept {
    try {
        if (!call || !call->services || !name) return nullptr;
        auto value = call->services->secret(name);
        if (!value) return nullptr;
        return call->kept.emplace_back(std::make_unique<std::string>(std::move(*value)))->c_str();
    } catch (...) {
        return nullptr;
    }
}

int64_t api_now_ms(crmsync_call* call) noexcept {
    if (call && call->services && call->services->clock) return call->services->clock->now_ms();
    return SystemClock().now_ms();
}

int32_t api_cancelled(crmsync_call* call) noexcept {
    return call && call->services && call->services->cancel && call->services->cancel->load() ? 1 : 0;
}

void api_usage(crmsync_call* call, int64_t used, int64_t limit) noexcept {
    try {
        if (call && call->services && call->services->api_usage) call->services->api_usage(used, limit);
    } catch (...) {}
}

const crmsync_host_api kHostApi = {
    sizeof(crmsync_host_api),
    CRMSYNC_ABI_MAJOR,
    CRMSYNC_ABI_MINOR,
    api_log,
    api_fail,
    api_emit,
    api_http,
    api_secret,
    api_now_ms,
    api_cancelled,
    api_usage,
};

}  // namespace

const crmsync_host_api* host_api() { return &kHostApi; }

PluginInstance::PluginInstance(std::shared_ptr<LoadedPlugin> plugin, std::unique_ptr<HostServices> services,
                               std::unique_ptr<RunnerProcess> runner)
    : plugin_(std::move(plugin)), services_(std::move(services)), runner_(std::move(runner)) {}

Result<std::unique_ptr<PluginInstance>> PluginInstance::create(std::shared_ptr<LoadedPlugin> plugin, const json::object& config,
                                                               std::unique_ptr<HostServices> services, std::string_view context) {
    return finish_create(std::unique_ptr<PluginInstance>(new PluginInstance(std::move(plugin), std::move(services))), config,
                         context);
}

Result<std::unique_ptr<PluginInstance>> PluginInstance::create_isolated(const VerifiedLibrary& library,
                                                                        const Isolation& isolation, int channels,
                                                                        const json::object& config,
                                                                        std::unique_ptr<HostServices> services,
                                                                        std::string_view context) {
    auto runner = start_runner(library, isolation, channels);
    if (!runner) return runner.status().prefixed(std::string(context) + ": ");
    auto plugin = std::make_shared<LoadedPlugin>(library, runner.value()->facts());
    return finish_create(
        std::unique_ptr<PluginInstance>(new PluginInstance(std::move(plugin), std::move(services), std::move(runner.value()))),
        config, context);
}

Result<std::unique_ptr<PluginInstance>> PluginInstance::finish_create(std::unique_ptr<PluginInstance> self,
                                                                      const json::object& config, std::string_view context) {
    std::string prefix = std::string(context) + ": ";
    const std::string& id = self->plugin_->id();
    auto valid = validate_against_schema(self->plugin_->config_schema(), config, "config");
    if (!valid) return valid.prefixed(prefix + "config does not match plugin " + id + "'s schema: ");
    crmsync_call call;
    call.services = self->services_.get();
    call.plugin_id = id;
    std::string config_text = json::serialize(config);
    if (self->runner_) {
        auto made = self->runner_->invoke(wire::Entry::create, config_text, call);
        if (made.status == CRMSYNC_STATUS_OK) return self;
        std::string why = made.fail_message.empty() ? "no reason given" : made.fail_message;
        return Status::config(prefix + "plugin " + id + " could not be created: " + why);
    }
    crmsync_instance* made = nullptr;
    try {
        made = self->plugin_->descriptor().create(host_api(), &call, config_text.c_str());
    } catch (...) {
        // A C++ plugin that lets an exception escape breaks the ABI; still, do not die of it.
        return Status::config(prefix + "plugin " + id + " threw from create() (a plugin bug)");
    }
    if (!made) {
        std::string why = call.fail_message.empty() ? "no reason given" : call.fail_message;
        return Status::config(prefix + "plugin " + id + " could not be created: " + why);
    }
    self->instance_ = made;
    return self;
}

PluginInstance::~PluginInstance() {
    if (instance_ && plugin_->in_process() && plugin_->descriptor().destroy) plugin_->descriptor().destroy(instance_);
}

namespace {

// One call of an entry point while it runs: its context, and the check of what it emits.
struct CallSlot {
    crmsync_call call;
    std::string violation;
    std::function<int32_t(json::value&&)> checked;
    RecordSink checked_record;
};

}  // namespace

Outcome PluginInstance::invoke(wire::Entry entry, const std::string& argument,
                               const std::function<int32_t(json::value&&)>& on_item, std::string_view item_schema,
                               const RecordSink* on_record) {
    return invoke_all(entry, {&argument}, {on_item ? &on_item : nullptr}, item_schema, on_record).front();
}

std::vector<Outcome> PluginInstance::invoke_all(wire::Entry entry, const std::vector<const std::string*>& arguments,
                                                const std::vector<const std::function<int32_t(json::value&&)>*>& on_items,
                                                std::string_view item_schema, const RecordSink* on_record) {
    const char* verb = wire::entry_name(entry);
    const size_t n = arguments.size();
    if (!plugin_->facts().has(entry))
        return std::vector<Outcome>(n, {CRMSYNC_STATUS_NOT_SUPPORTED, plugin_->id() + " has no " + verb + " entry point", false});
    std::unique_lock<std::mutex> lock(mutex_, std::defer_lock);
    if (!can(CRMSYNC_CAP_THREADSAFE)) lock.lock();
    std::deque<CallSlot> slots(n);
    for (size_t i = 0; i < n; ++i) {
        CallSlot& slot = slots[i];
        const auto* on_item = on_items[i];
        slot.call.services = services_.get();
        slot.call.plugin_id = plugin_->id();
        slot.call.on_item = on_item;
        slot.call.on_record = on_item ? on_record : nullptr;
        // Test builds hold every plugin to the published schemas of what it emits; a record
        // taken as text is checked as the item it came in.
        if (on_item && !item_schema.empty() && checks_emitted_items()) {
            auto breaks_schema = [&slot, item_schema](const json::value& item) {
                auto valid = check_emitted_item(item_schema, item);
                if (!valid && slot.violation.empty())
                    slot.violation = valid.message() + " in " + json::serialize(item).substr(0, 300);
                return !valid;
            };
            slot.checked = [breaks_schema, on_item](json::value&& item) -> int32_t {
                return breaks_schema(item) ? CRMSYNC_STATUS_ERROR : (*on_item)(std::move(item));
            };
            slot.call.on_item = &slot.checked;
            if (slot.call.on_record) {
                slot.checked_record = [breaks_schema, on_record](RecordItemText&& record) -> int32_t {
                    const json::value item =
                        json::object{{"type", "record"}, {"id", record.id}, {"record", json::parse(record.record)}};
                    return breaks_schema(item) ? CRMSYNC_STATUS_ERROR : (*on_record)(std::move(record));
                };
                slot.call.on_record = &slot.checked_record;
            }
        }
    }
    std::vector<Outcome> outcomes(n);
    if (runner_) {
        std::vector<crmsync_call*> calls;
        for (auto& slot : slots) calls.push_back(&slot.call);
        auto remote = runner_->invoke_all(entry, arguments, calls);
        for (size_t i = 0; i < n; ++i) {
            if (remote[i].died) {
                outcomes[i] = {CRMSYNC_STATUS_ERROR, remote[i].fail_message, true};
                continue;
            }
            outcomes[i].status = normalized(remote[i].status);
            slots[i].call.fail_message = std::move(remote[i].fail_message);
        }
    } else {
        auto fn = abi::entry_function(plugin_->descriptor(), entry);
        for (size_t i = 0; i < n; ++i) {
            try {
                outcomes[i].status = normalized(fn(instance_, &slots[i].call, arguments[i]->c_str()));
            } catch (...) {
                outcomes[i] = {CRMSYNC_STATUS_ERROR, plugin_->id() + " threw from " + verb + "() (a plugin bug)", false};
            }
        }
    }
    for (size_t i = 0; i < n; ++i) {
        Outcome& outcome = outcomes[i];
        if (outcome.plugin_died || !outcome.message.empty()) continue;
        if (!slots[i].violation.empty()) {
            outcome = {CRMSYNC_STATUS_ERROR,
                       plugin_->id() + "." + verb + " emitted an item that breaks plugin-api/schemas/" +
                           std::string(item_schema) + " (a plugin bug): " + slots[i].violation,
                       false};
        } else if (outcome.status != CRMSYNC_STATUS_OK) {
            const auto& call = slots[i].call;
            outcome.message = call.fail_message.empty()
                                  ? plugin_->id() + "." + verb + " returned " + std::string(status_name(outcome.status))
                                  : call.fail_message;
        }
    }
    return outcomes;
}

Outcome PluginInstance::authenticate(const json::object& credentials) {
    if (!plugin_->facts().has(wire::Entry::authenticate)) return {};
    return invoke(wire::Entry::authenticate, json::serialize(credentials), {});
}

Outcome PluginInstance::fetch(const json::value& request, const std::function<int32_t(json::value&&)>& on_item,
                              const RecordSink* on_record) {
    if (!can(CRMSYNC_CAP_FETCH)) return {CRMSYNC_STATUS_NOT_SUPPORTED, plugin_->id() + " does not fetch"};
    return invoke(wire::Entry::fetch, json::serialize(request), on_item, "fetch-item.schema.json", on_record);
}

Outcome PluginInstance::map(const json::value& record, std::vector<json::value>& operations) {
    Outcome outcome;
    const std::string text = json::serialize(record);
    map_each({&text}, [&](size_t, Outcome& answered, std::vector<json::value>& mapped) {
        outcome = std::move(answered);
        operations = std::move(mapped);
        return true;
    });
    return outcome;
}

void PluginInstance::map_each(const std::vector<const std::string*>& records, const OnMapped& on_mapped) {
    if (!can(CRMSYNC_CAP_MAP)) {
        for (size_t i = 0; i < records.size(); ++i) {
            Outcome refused{CRMSYNC_STATUS_NOT_SUPPORTED, plugin_->id() + " does not map", false};
            std::vector<json::value> none;
            if (!on_mapped(i, refused, none)) return;
        }
        return;
    }
    std::vector<std::vector<json::value>> operations(runner_ ? records.size() : 1);
    std::vector<std::function<int32_t(json::value &&)>> sinks;
    for (size_t i = 0; i < operations.size(); ++i)
        sinks.emplace_back([&operations, i](json::value&& v) {
            if (!v.is_object()) return int32_t{CRMSYNC_STATUS_ERROR};
            operations[i].push_back(std::move(v));
            return int32_t{CRMSYNC_STATUS_OK};
        });
    if (!runner_) {
        // In process there is no round trip to save: one record's text at a time, and its
        // operations handed on (and let go) before the next.
        auto& mapped = operations.front();
        for (size_t i = 0; i < records.size(); ++i) {
            mapped.clear();
            auto outcome = invoke(wire::Entry::map, *records[i], sinks.front(), "operation.schema.json");
            if (!on_mapped(i, outcome, mapped)) return;
        }
        return;
    }
    std::vector<const std::function<int32_t(json::value &&)>*> sink_pointers;
    for (size_t i = 0; i < records.size(); ++i) sink_pointers.push_back(&sinks[i]);
    auto outcomes = invoke_all(wire::Entry::map, records, sink_pointers, "operation.schema.json");
    for (size_t i = 0; i < records.size(); ++i) {
        const bool go_on = on_mapped(i, outcomes[i], operations[i]);
        std::vector<json::value>().swap(operations[i]);  // handed on: its items and their arena go
        if (!go_on) return;
    }
}

Outcome PluginInstance::write(const json::value& batch, std::vector<json::value>& results) {
    return write(json::serialize(batch), results);
}

Outcome PluginInstance::write(const std::string& batch_json, std::vector<json::value>& results) {
    if (!can(CRMSYNC_CAP_WRITE)) return {CRMSYNC_STATUS_NOT_SUPPORTED, plugin_->id() + " does not write"};
    std::function<int32_t(json::value &&)> sink = [&](json::value&& v) {
        if (!v.is_object()) return int32_t{CRMSYNC_STATUS_ERROR};
        results.push_back(std::move(v));
        return int32_t{CRMSYNC_STATUS_OK};
    };
    return invoke(wire::Entry::write, batch_json, sink, "write-result.schema.json");
}

}  // namespace crmsync
