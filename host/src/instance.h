#pragma once
// PluginInstance: one created plugin instance (a module's or a CRM connection's) and the
// only place the host calls into a plugin — in this process, or in the instance's runner
// process when it runs isolated (the same host services serve both). Each verb builds a
// call context, converts what the plugin emits into JSON values, and turns the status into
// an Outcome; unknown status values become ERROR. Calls are serialized by a mutex unless
// the plugin is THREADSAFE; each call has an HTTP client of its own.
#include <crmsync/plugin.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "clock.h"
#include "diagnostics.h"
#include "http.h"
#include "json.h"
#include "loader.h"

namespace crmsync {

// Where a fetch's record items go when the host takes them unparsed (read_record_item):
// the record's id, and its text as a view valid during the call.
using RecordSink = std::function<int32_t(RecordItemText&&)>;

// What the host services table does for calls on one instance. Owned by the instance;
// the run that uses the instance points the sinks at itself.
class HostServices {
public:
    const Clock* clock = nullptr;
    const std::atomic<bool>* cancel = nullptr;
    std::function<void(Level, std::string_view)> log;
    std::function<void(int64_t used, int64_t limit)> api_usage;
    HttpPool http;  // a call takes its own client, so THREADSAFE plugins' calls run at once

    // The resolved credentials, by name (host->secret); set again on each authentication,
    // maybe while calls beside it read them.
    void set_secrets(json::object secrets) {
        std::lock_guard lock(secrets_mutex_);
        secrets_ = std::move(secrets);
    }
    std::optional<std::string> secret(std::string_view name) const {
        std::lock_guard lock(secrets_mutex_);
        auto* value = secrets_.if_contains(name);
        if (!value || !value->is_string()) return std::nullopt;
        return std::string(value->get_string());
    }

private:
    mutable std::mutex secrets_mutex_;
    json::object secrets_;
};

struct Outcome {
    int32_t status = CRMSYNC_STATUS_OK;
    std::string message;
    // An isolated plugin's runner crashed, hung or ran out of memory: the plugin is gone,
    // and no input is to blame for it.
    bool plugin_died = false;
    bool ok() const { return status == CRMSYNC_STATUS_OK; }
};

std::string_view status_name(int32_t status);

class PluginInstance {
public:
    // Validates config against the plugin's schema (messages name the JSON path), then
    // calls create(). `context` (e.g. the manifest path) starts every message.
    static Result<std::unique_ptr<PluginInstance>> create(std::shared_ptr<LoadedPlugin> plugin, const json::object& config,
                                                          std::unique_ptr<HostServices> services, std::string_view context);
    // The same for a plugin that runs isolated: starts its runner process (with `channels`,
    // the most calls that may run at once), checks what it says the plugin is, and creates
    // the instance there.
    static Result<std::unique_ptr<PluginInstance>> create_isolated(const VerifiedLibrary& library, const Isolation& isolation,
                                                                   int channels, const json::object& config,
                                                                   std::unique_ptr<HostServices> services,
                                                                   std::string_view context);
    ~PluginInstance();
    PluginInstance(const PluginInstance&) = delete;
    PluginInstance& operator=(const PluginInstance&) = delete;

    Outcome authenticate(const json::object& credentials);
    // on_item gets every emitted value; its return is what emit() returns to the plugin
    // (OK, ERROR or CANCELLED). With on_record, a record item in the plain form
    // read_record_item knows goes there instead, its record left as the plugin wrote it.
    Outcome fetch(const json::value& request, const std::function<int32_t(json::value&&)>& on_item,
                  const RecordSink* on_record = nullptr);
    Outcome map(const json::value& record, std::vector<json::value>& operations);
    // map() of each record, in order: `on_mapped(i, outcome, operations)` gets each one's
    // answer, and mapping stops when it returns false. In process it is called as each call
    // returns, so a record's operations (and the arena they were parsed into) can go before
    // the next record is mapped; an isolated plugin gets the records sent ahead of its
    // answers, which are handed on in order once they are all in.
    using OnMapped = std::function<bool(size_t, Outcome&, std::vector<json::value>&)>;
    void map_each(const std::vector<const std::string*>& records, const OnMapped& on_mapped);
    Outcome write(const json::value& batch, std::vector<json::value>& results);
    // The same with the batch already written as JSON text.
    Outcome write(const std::string& batch_json, std::vector<json::value>& results);

    const LoadedPlugin& plugin() const { return *plugin_; }
    HostServices& services() { return *services_; }
    // A fingerprint of the credentials the last successful authenticate() took ("" before
    // one): an instance kept from run to run signs in again only when they changed.
    const std::string& signed_in_with() const { return signed_in_with_; }
    void set_signed_in_with(std::string fingerprint) { signed_in_with_ = std::move(fingerprint); }
    bool can(uint32_t capability) const { return (plugin_->capabilities() & capability) != 0; }

private:
    PluginInstance(std::shared_ptr<LoadedPlugin> plugin, std::unique_ptr<HostServices> services,
                   std::unique_ptr<RunnerProcess> runner = nullptr);
    // Validates the config and calls create(), here or in the runner.
    static Result<std::unique_ptr<PluginInstance>> finish_create(std::unique_ptr<PluginInstance> self, const json::object& config,
                                                                 std::string_view context);
    // `item_schema` names the plugin-api schema every emitted item must meet (checked in
    // test builds only).
    Outcome invoke(wire::Entry entry, const std::string& argument, const std::function<int32_t(json::value&&)>& on_item,
                   std::string_view item_schema = {}, const RecordSink* on_record = nullptr);
    std::vector<Outcome> invoke_all(wire::Entry entry, const std::vector<const std::string*>& arguments,
                                    const std::vector<const std::function<int32_t(json::value&&)>*>& on_items,
                                    std::string_view item_schema, const RecordSink* on_record = nullptr);

    std::shared_ptr<LoadedPlugin> plugin_;  // keeps the library mapped while we live
    std::unique_ptr<HostServices> services_;
    std::unique_ptr<RunnerProcess> runner_;  // isolated: where the instance lives
    crmsync_instance* instance_ = nullptr;
    std::mutex mutex_;
    std::string signed_in_with_;
};

}  // namespace crmsync

// The per-invocation context behind the opaque crmsync_call (host side only).
struct crmsync_call {
    crmsync::HostServices* services = nullptr;
    // This call's own HTTP client, taken from services->http at its first request.
    std::optional<crmsync::HttpPool::Lease> http;
    std::string_view plugin_id;  // the loaded plugin's, which outlives the call
    const std::function<int32_t(crmsync::json::value&&)>* on_item = nullptr;
    const crmsync::RecordSink* on_record = nullptr;  // record items, unparsed (fetch only)
    crmsync::json::storage_ptr items;                // what emitted items are parsed into, made at the first
    int32_t fail_status = CRMSYNC_STATUS_OK;
    std::string fail_message;
    std::vector<std::unique_ptr<std::string>> kept;  // returned strings, valid until return
};
