#pragma once
// The manifest kinds and their parsing. Parsing checks shape and meaning of every
// field and names the file and field in each message; it never opens a library.
//  - plugin manifest (<id>.plugin.json beside the library, written by the plugin's build)
//  - module manifest (operator, manifests/*.json with "module")
//  - CRM connection manifest (operator, manifests/*.json with "connection")
//  - notification manifest (operator, manifests/*.json with "notification")
//  - trust manifest (operator, at most one, manifests/*.json with "trust")
//  - state manifest (operator, at most one, manifests/*.json with "state")
#include <optional>
#include <string>
#include <vector>

#include "json.h"
#include "semver.h"
#include "signature.h"
#include "status.h"

namespace crmsync {

struct PluginManifest {
    std::string manifest_path;
    std::string id;
    Version version;
    int abi_major = 0;
    int abi_minor = 0;
    std::string library_path;  // resolved against the manifest's folder
    std::string sha256;        // lowercase hex
};

Result<PluginManifest> parse_plugin_manifest(const std::string& path);

// A secret named in a manifest by reference only.
struct CredentialRef {
    std::string name;
    enum class Source { env, file } source;
    std::string where;  // variable name or file path (resolved against the manifest folder)
};

struct Schedule {
    enum class Kind { manual, realtime, every, daily_at } kind = Kind::manual;
    int64_t every_seconds = 0;
    int daily_minute = 0;  // minutes after 00:00 UTC
    std::string text() const;
};

struct RetryPolicy {
    int max_attempts = 5;
    int64_t base_ms = 500;
    int64_t cap_ms = 30'000;
};

// Records that failed for their own reasons are kept and tried again in later runs: after
// backoff, doubled each time up to a day, until max_attempts, when the record "gave up".
struct FailedRecordPolicy {
    int max_attempts = 8;
    int64_t backoff_ms = 5 * 60'000;
    static constexpr int64_t kCapMs = 24 * 3600'000LL;
    // When a record that has failed `attempts` times is tried again.
    int64_t next_attempt_ms(int64_t now_ms, int64_t attempts) const;
};

struct PluginRef {
    std::string id;
    VersionRange range;
};

// How a module's or connection's plugin runs: inside crmsync, or in a runner process of its
// own whose crash, hang or memory blow-up fails the run and nothing else.
struct Isolation {
    enum class Mode { in_process, process } mode = Mode::in_process;
    int64_t timeout_seconds = 300;  // silence from an isolated plugin that counts as a hang
    int64_t memory_mb = 4096;       // the runner's address space
    bool sandbox = true;            // a seccomp filter: no sockets of its own, no exec, no ptrace
    bool isolated() const { return mode == Mode::process; }
    std::string text() const { return isolated() ? "process" : "in-process"; }
};

struct ModuleManifest {
    std::string manifest_path;
    std::string name;
    PluginRef plugin;
    bool enabled = true;
    std::string crm;  // connection name
    Schedule schedule;
    json::object config;
    json::array mappings;
    json::value services;  // host service settings: default_country_code, new_user
    std::vector<CredentialRef> credentials;
    double api_reserve = 0.10;  // stop when remaining daily API share falls under this
    RetryPolicy retry;
    FailedRecordPolicy failed_records;
    std::optional<std::string> webhook_secret_env;
    Isolation isolation;
};

// When the host hands the CRM plugin one large batch to load with a bulk API.
struct BulkPolicy {
    enum class Mode { automatic, always, never } mode = Mode::automatic;
    int64_t threshold = 2000;         // more operations of one kind than this in a batch: bulk
    int64_t max_operations = 10'000;  // operations gathered (across pages) into one batch
};

struct ConnectionManifest {
    std::string manifest_path;
    std::string name;
    PluginRef plugin;
    json::object config;
    std::vector<CredentialRef> credentials;
    std::string external_id_field = "CrmSync_Key__c";
    // CRM calls a run keeps in flight at once, when the CRM plugin is THREADSAFE.
    int64_t max_parallel_requests = 8;
    BulkPolicy bulk;
    Isolation isolation;
};

// Where a home keeps its state (state-manifest.schema.json): without a state manifest, the
// SQLite file var/state.db; with "postgres", a database that several workers share.
struct StateManifest {
    std::string manifest_path;
    std::optional<CredentialRef> postgres;  // the connection string, by reference
    // Set when the manifest is broken: then no store opens (state split between a SQLite
    // file and the shared database would be worse than no run).
    std::string problem;
};

// Which plugin signatures a home trusts (trust-manifest.schema.json); without a trust
// manifest the policy is off.
struct TrustManifest {
    std::string manifest_path;
    enum class Policy { off, warn, require } policy = Policy::off;
    std::vector<TrustedKey> keys;
    std::string problem;  // set when the manifest is broken: then it trusts nothing
    std::string_view policy_name() const;
};

// Who is told when a module's sync goes wrong or recovers (notification-manifest.schema.json).
struct NotificationManifest {
    std::string manifest_path;
    std::string name;
    bool enabled = true;
    std::vector<std::string> modules;  // empty: every module
    std::vector<std::string> on;       // failed, errors, budget, recovered
    int64_t errors_threshold = 10;
    enum class Channel { webhook, email } channel = Channel::webhook;
    std::string webhook_url;                       // when given in the manifest
    std::optional<CredentialRef> webhook_url_ref;  // when it is a secret
    std::optional<CredentialRef> webhook_secret;
    int64_t timeout_ms = 10'000;
    std::vector<std::string> email_to;
    std::string email_from;  // empty: crmsync@<hostname>
    std::string sendmail = "/usr/sbin/sendmail";
    bool watches(std::string_view module) const;
    bool wants(std::string_view event) const;
};

// What a manifest folder held: the good ones, and one line per bad file.
struct ManifestSet {
    std::vector<ModuleManifest> modules;
    std::vector<ConnectionManifest> connections;
    std::vector<NotificationManifest> notifications;
    TrustManifest trust;
    StateManifest state;
    std::vector<std::string> problems;
    const ModuleManifest* module(std::string_view name) const;
    const ConnectionManifest* connection(std::string_view name) const;
};

Result<ModuleManifest> parse_module_manifest(const std::string& path, const json::object& root);
Result<ConnectionManifest> parse_connection_manifest(const std::string& path, const json::object& root);
Result<NotificationManifest> parse_notification_manifest(const std::string& path, const json::object& root);
Result<TrustManifest> parse_trust_manifest(const std::string& path, const json::object& root);
Result<StateManifest> parse_state_manifest(const std::string& path, const json::object& root);

// Reads every *.json in each folder, sorted by name. A bad file adds one problem and is
// skipped; the rest load. Two manifests declaring the same name: the later is refused.
ManifestSet load_manifests(const std::vector<std::string>& folders);

Result<Schedule> parse_schedule(const json::value& value);
// "15m", "4h", "30s", "1d" -> seconds; nothing past ten years, and "0s" only when allowed.
std::optional<int64_t> parse_duration(std::string_view text, bool allow_zero = false);

// Resolves references to their values: {name: value}. Messages name the reference, never
// a value.
Result<json::object> resolve_credentials(const std::vector<CredentialRef>& refs);

}  // namespace crmsync
