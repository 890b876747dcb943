#include "manifest.h"

#include "schema.h"
#include "services/mapping.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace crmsync {
namespace fs = std::filesystem;

namespace {

std::string in_quotes(std::string_view field) {
    std::string quoted(1, '"');
    quoted.append(field) += '"';
    return quoted;
}

Status missing(std::string_view field, std::string_view what) {
    return Status::config(in_quotes(field) + " is missing (" + std::string(what) + ")");
}

Result<std::string> required_string(const json::object& o, std::string_view field, std::string_view what) {
    auto* v = o.if_contains(field);
    if (!v) return missing(field, what);
    if (!v->is_string() || v->get_string().empty())
        return Status::config(in_quotes(field) + " must be a non-empty string (" + std::string(what) + ")");
    return std::string(v->get_string());
}

Result<PluginRef> parse_plugin_ref(const json::object& root) {
    auto* v = root.if_contains("plugin");
    if (!v) return missing("plugin", "e.g. {\"id\": \"mock-crm\", \"version\": \"^1.0\"}");
    PluginRef ref{};
    std::string range_text = "*";
    if (v->is_string()) {
        ref.id = std::string(v->get_string());
    } else if (v->is_object()) {
        auto id = required_string(v->get_object(), "id", "the plugin's id");
        if (!id) return id.status().prefixed("plugin.");
        ref.id = id.value();
        if (auto* r = v->get_object().if_contains("version")) {
            if (!r->is_string()) return Status::config("\"plugin.version\" must be a version range string such as \"^1.0\"");
            range_text = std::string(r->get_string());
        }
    } else {
        return Status::config("\"plugin\" must be an object {\"id\": ..., \"version\": ...}");
    }
    if (ref.id.empty()) return Status::config("\"plugin\" names no plugin id");
    auto range = VersionRange::parse(range_text);
    if (!range)
        return Status::config("\"plugin.version\": " + in_quotes(range_text) +
                              " is not a version range (use e.g. \"^1.0\", \">=1.0.0 <2.0.0\" or \"1.2.3\")");
    ref.range = *range;
    return ref;
}

// {"env": "NAME"} or {"file": "path"} (the schema has checked the shape), a file resolved
// against the manifest's folder.
CredentialRef secret_ref(std::string name, const json::object& o, const fs::path& base) {
    if (auto env = find_string(o, "env")) return {std::move(name), CredentialRef::Source::env, *env};
    fs::path p(find_string(o, "file").value_or(""));
    return {std::move(name), CredentialRef::Source::file, (p.is_absolute() ? p : base / p).lexically_normal().string()};
}

// The schema has refused inline secrets and bad variable names already.
std::vector<CredentialRef> parse_credentials(const json::object& root, const fs::path& base) {
    std::vector<CredentialRef> refs;
    if (auto* v = find_object(root, "credentials"))
        for (const auto& [key, ref] : *v) refs.push_back(secret_ref(std::string(key), ref.as_object(), base));
    return refs;
}

// The manifest's shape, against its JSON Schema in plugin-api/schemas/: every unknown key
// (with "did you mean") and every wrong type or range at once, before any value is read.
Status check_shape(const std::string& path, const json::value& document, std::string_view schema_file) {
    const CompiledSchema* schema = embedded_schema(schema_file);
    if (!schema) return Status::config("this host's " + std::string(schema_file) + " does not parse (a build problem)");
    auto problems = schema->problems(document, "");
    if (problems.empty()) return Status::ok();
    std::string text = path + ": ";
    if (problems.size() > 1) text += std::to_string(problems.size()) + " problems: ";
    for (size_t i = 0; i < problems.size(); ++i) text += (i ? "; " : "") + problems[i];
    return Status::config(text);
}

}  // namespace

std::string Schedule::text() const {
    switch (kind) {
        case Kind::manual: return "manual";
        case Kind::realtime: return "realtime";
        case Kind::every: {
            if (every_seconds % 3600 == 0) return "every " + std::to_string(every_seconds / 3600) + "h";
            if (every_seconds % 60 == 0) return "every " + std::to_string(every_seconds / 60) + "m";
            return "every " + std::to_string(every_seconds) + "s";
        }
        case Kind::daily_at: {
            char buf[32];
            std::snprintf(buf, sizeof buf, "daily at %02d:%02d UTC", daily_minute / 60, daily_minute % 60);
            return buf;
        }
    }
    return "manual";
}

std::optional<int64_t> parse_duration(std::string_view text, bool allow_zero) {
    constexpr int64_t kMaxSeconds = 3650LL * 86400;  // ten years: past that, a typo
    if (text.size() < 2) return std::nullopt;
    int64_t n = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size() - 1, n);
    if (ec != std::errc() || end != text.data() + text.size() - 1 || n < 0 || (n == 0 && !allow_zero)) return std::nullopt;
    int64_t unit = 0;
    switch (text.back()) {
        case 's': unit = 1; break;
        case 'm': unit = 60; break;
        case 'h': unit = 3600; break;
        case 'd': unit = 86400; break;
        default: return std::nullopt;
    }
    if (n > kMaxSeconds / unit) return std::nullopt;
    return n * unit;
}

Result<Schedule> parse_schedule(const json::value& value) {
    Schedule s;
    if (value.is_string()) {
        if (value.get_string() == "manual") return s;
        if (value.get_string() == "realtime") return s.kind = Schedule::Kind::realtime, s;
        return Status::config(
            "\"schedule\": " + in_quotes(value.get_string()) +
            " is not a schedule (use \"manual\", \"realtime\", {\"every\": \"4h\"} or {\"daily_at\": \"08:00\"})");
    }
    if (!value.is_object())
        return Status::config("\"schedule\" must be \"manual\", \"realtime\", {\"every\": \"4h\"} or {\"daily_at\": \"08:00\"}");
    const auto& o = value.get_object();
    if (auto every = find_string(o, "every")) {
        auto seconds = parse_duration(*every);
        if (!seconds || *seconds < 60)
            return Status::config("\"schedule.every\": " + in_quotes(*every) +
                                  " is not a duration of a minute or more (use e.g. \"15m\", \"4h\")");
        s.kind = Schedule::Kind::every;
        s.every_seconds = *seconds;
        return s;
    }
    if (auto at = find_string(o, "daily_at")) {
        int h = -1, m = -1;
        char extra = 0;
        if (std::sscanf(at->c_str(), "%2d:%2d%c", &h, &m, &extra) != 2 || h < 0 || h > 23 || m < 0 || m > 59 || at->size() != 5)
            return Status::config("\"schedule.daily_at\": " + in_quotes(*at) + " is not a UTC time HH:MM (e.g. \"08:00\")");
        s.kind = Schedule::Kind::daily_at;
        s.daily_minute = h * 60 + m;
        return s;
    }
    return Status::config("\"schedule\" object needs \"every\" (e.g. \"4h\") or \"daily_at\" (e.g. \"08:00\")");
}

Result<PluginManifest> parse_plugin_manifest(const std::string& path) {
    auto parsed = read_json_file(path);
    if (!parsed) return parsed.status();
    auto fail = [&](const Status& s) { return s.prefixed(path + ": "); };
    if (!parsed->is_object()) return fail(Status::config("a plugin manifest must be a JSON object"));
    const auto& o = parsed->get_object();
    // The format version first: a newer format is "update crmsync", not a list of unknown keys.
    if (auto* format = o.if_contains("file_format_version");
        format && format->is_string() && !format->get_string().starts_with("1."))
        return fail(Status::config("\"file_format_version\": " + in_quotes(format->get_string()) +
                                   " is not understood by this host (it reads 1.x; update crmsync)"));
    if (auto shape = check_shape(path, *parsed, "plugin-manifest.schema.json"); !shape) return shape;
    PluginManifest m;
    m.manifest_path = path;
    auto id = required_string(o, "id", "the plugin's id");
    if (!id) return fail(id.status());
    m.id = *id;
    auto version = required_string(o, "version", "semantic version, e.g. \"1.0.0\"");
    if (!version) return fail(version.status());
    auto v = parse_version(*version);
    if (!v) return fail(Status::config("\"version\": " + in_quotes(*version) + " is not a semantic version (e.g. \"1.0.0\")"));
    m.version = *v;
    auto* abi = find_object(o, "abi");
    if (!abi) return fail(missing("abi", "{\"major\": 1, \"minor\": 0}"));
    auto major = find_int(*abi, "major");
    auto minor = find_int(*abi, "minor");
    if (!major || !minor || *major < 0 || *minor < 0)
        return fail(Status::config("\"abi\" needs integer \"major\" and \"minor\""));
    m.abi_major = static_cast<int>(*major);
    m.abi_minor = static_cast<int>(*minor);
    auto library = required_string(o, "library_path", "the library file, relative to this manifest");
    if (!library) return fail(library.status());
    // Inside the plugin's own folder: a manifest cannot point the host at a library elsewhere.
    fs::path lib = fs::path(*library).lexically_normal();
    if (lib.is_absolute() || lib.empty() || *lib.begin() == ".." || lib.filename().empty())
        return fail(Status::config("\"library_path\": " + in_quotes(*library) +
                                   " must name a file in the manifest's own folder or below, e.g. \"./" + m.id + ".so\""));
    m.library_path = (fs::path(path).parent_path() / lib).lexically_normal().string();
    auto sha = required_string(o, "sha256", "the library's SHA-256 in hex");
    if (!sha) return fail(sha.status());
    std::string hex = *sha;
    std::transform(hex.begin(), hex.end(), hex.begin(), [](unsigned char c) { return std::tolower(c); });
    if (hex.size() != 64 || hex.find_first_not_of("0123456789abcdef") != std::string::npos)
        return fail(Status::config("\"sha256\" must be 64 hex digits"));
    m.sha256 = hex;
    return m;
}

namespace {

// "isolation": a mode, or {"mode", "timeout_seconds", "memory_mb", "sandbox"} (ranges are the
// schema's).
Isolation parse_isolation(const json::object& o) {
    Isolation out;
    const json::value* v = o.if_contains("isolation");
    if (!v) return out;
    std::string mode = v->is_string() ? std::string(v->get_string()) : find_string(v->as_object(), "mode").value_or("in-process");
    out.mode = mode == "process" ? Isolation::Mode::process : Isolation::Mode::in_process;
    if (v->is_object()) {
        out.timeout_seconds = find_int(v->get_object(), "timeout_seconds").value_or(out.timeout_seconds);
        out.memory_mb = find_int(v->get_object(), "memory_mb").value_or(out.memory_mb);
        out.sandbox = find_bool(v->get_object(), "sandbox").value_or(out.sandbox);
    }
    return out;
}

}  // namespace

Result<ModuleManifest> parse_module_manifest(const std::string& path, const json::object& o) {
    auto fail = [&](const Status& s) { return s.prefixed(path + ": "); };
    if (auto shape = check_shape(path, o, "module-manifest.schema.json"); !shape) return shape;
    ModuleManifest m;
    m.manifest_path = path;
    auto name = required_string(o, "module", "the module's name");
    if (!name) return fail(name.status());
    if (name->find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-_") != std::string::npos)
        return fail(Status::config("\"module\": " + in_quotes(*name) + " may use only a-z, 0-9, - and _"));
    m.name = *name;
    auto plugin = parse_plugin_ref(o);
    if (!plugin) return fail(plugin.status());
    m.plugin = *plugin;
    // Types and ranges are the schema's (checked above); what follows reads values and
    // checks only what a schema cannot say (durations, mappings, schedules).
    m.enabled = find_bool(o, "enabled").value_or(true);
    auto crm = required_string(o, "crm", "the name of a CRM connection manifest");
    if (!crm) return fail(crm.status());
    m.crm = *crm;
    if (auto* s = o.if_contains("schedule")) {
        auto schedule = parse_schedule(*s);
        if (!schedule) return fail(schedule.status());
        m.schedule = *schedule;
    }
    if (auto* c = find_object(o, "config")) m.config = *c;
    if (auto* mp = find_array(o, "mappings")) {
        m.mappings = *mp;
        if (auto parsed = parse_mappings(m.mappings); !parsed) return fail(parsed.status());
    }
    if (auto* sv = o.if_contains("services")) m.services = *sv;
    m.credentials = parse_credentials(o, fs::path(path).parent_path());
    if (auto* r = o.if_contains("api_reserve_percent")) m.api_reserve = r->to_number<double>() / 100.0;
    if (auto* r = find_object(o, "retry")) {
        m.retry.max_attempts = static_cast<int>(find_int(*r, "max_attempts").value_or(m.retry.max_attempts));
        m.retry.base_ms = find_int(*r, "base_ms").value_or(m.retry.base_ms);
        m.retry.cap_ms = find_int(*r, "cap_ms").value_or(m.retry.cap_ms);
    }
    if (auto* f = find_object(o, "failed_records")) {
        m.failed_records.max_attempts = static_cast<int>(find_int(*f, "max_attempts").value_or(m.failed_records.max_attempts));
        if (auto backoff = find_string(*f, "backoff")) {
            auto seconds = parse_duration(*backoff, true);
            if (!seconds || *seconds > 24 * 3600)
                return fail(Status::config("\"failed_records.backoff\" must be a duration from 0s to 1d, such as \"5m\""));
            m.failed_records.backoff_ms = *seconds * 1000;
        }
    }
    if (auto* w = find_object(o, "webhook")) m.webhook_secret_env = find_string(w->at("secret").as_object(), "env");
    m.isolation = parse_isolation(o);
    return m;
}

Result<ConnectionManifest> parse_connection_manifest(const std::string& path, const json::object& o) {
    auto fail = [&](const Status& s) { return s.prefixed(path + ": "); };
    if (auto shape = check_shape(path, o, "connection-manifest.schema.json"); !shape) return shape;
    ConnectionManifest c;
    c.manifest_path = path;
    auto name = required_string(o, "connection", "the connection's name, which modules give as \"crm\"");
    if (!name) return fail(name.status());
    c.name = *name;
    auto plugin = parse_plugin_ref(o);
    if (!plugin) return fail(plugin.status());
    c.plugin = *plugin;
    // Types and ranges are the schema's (checked above): only values are read here.
    if (auto* cfg = find_object(o, "config")) c.config = *cfg;
    c.credentials = parse_credentials(o, fs::path(path).parent_path());
    c.external_id_field = find_string(o, "external_id_field").value_or(c.external_id_field);
    c.max_parallel_requests = find_int(o, "max_parallel_requests").value_or(c.max_parallel_requests);
    if (auto* bo = find_object(o, "bulk")) {
        auto mode = find_string(*bo, "mode").value_or("auto");
        auto threshold = find_int(*bo, "threshold").value_or(c.bulk.threshold);
        auto max_ops = find_int(*bo, "max_operations").value_or(c.bulk.max_operations);
        c.bulk.mode = mode == "always"  ? BulkPolicy::Mode::always
                      : mode == "never" ? BulkPolicy::Mode::never
                                        : BulkPolicy::Mode::automatic;
        c.bulk.threshold = threshold;
        c.bulk.max_operations = max_ops;
    }
    c.isolation = parse_isolation(o);
    return c;
}

Result<NotificationManifest> parse_notification_manifest(const std::string& path, const json::object& o) {
    if (auto shape = check_shape(path, o, "notification-manifest.schema.json"); !shape) return shape;
    const fs::path base = fs::path(path).parent_path();
    NotificationManifest n;
    n.manifest_path = path;
    n.name = find_string(o, "notification").value_or("");
    n.enabled = find_bool(o, "enabled").value_or(true);
    auto strings = [](const json::array* a) {
        std::vector<std::string> out;
        if (a)
            for (const auto& v : *a) out.emplace_back(v.as_string());
        return out;
    };
    n.modules = strings(find_array(o, "modules"));
    n.on = strings(find_array(o, "on"));
    if (n.on.empty()) n.on = {"failed", "errors", "budget", "recovered"};
    n.errors_threshold = find_int(o, "errors_threshold").value_or(n.errors_threshold);
    if (auto* w = find_object(o, "webhook")) {
        const auto& url = w->at("url");
        if (url.is_string()) n.webhook_url = url.as_string();
        else n.webhook_url_ref = secret_ref("webhook.url", url.as_object(), base);
        if (auto* secret = find_object(*w, "secret")) n.webhook_secret = secret_ref("webhook.secret", *secret, base);
        n.timeout_ms = find_int(*w, "timeout_ms").value_or(n.timeout_ms);
    } else if (auto* e = find_object(o, "email")) {
        n.channel = NotificationManifest::Channel::email;
        n.email_to = strings(find_array(*e, "to"));
        n.email_from = find_string(*e, "from").value_or("");
        n.sendmail = find_string(*e, "sendmail").value_or(n.sendmail);
    }
    return n;
}

bool NotificationManifest::watches(std::string_view module) const {
    return modules.empty() || std::find(modules.begin(), modules.end(), module) != modules.end();
}

bool NotificationManifest::wants(std::string_view event) const { return std::find(on.begin(), on.end(), event) != on.end(); }

const ModuleManifest* ManifestSet::module(std::string_view name) const {
    for (const auto& m : modules)
        if (m.name == name) return &m;
    return nullptr;
}
const ConnectionManifest* ManifestSet::connection(std::string_view name) const {
    for (const auto& c : connections)
        if (c.name == name) return &c;
    return nullptr;
}

std::string_view TrustManifest::policy_name() const {
    switch (policy) {
        case Policy::off: return "off";
        case Policy::warn: return "warn";
        case Policy::require: return "require";
    }
    return "off";
}

Result<TrustManifest> parse_trust_manifest(const std::string& path, const json::object& o) {
    if (auto shape = check_shape(path, o, "trust-manifest.schema.json"); !shape) return shape;
    TrustManifest t;
    t.manifest_path = path;
    auto policy = find_string(o, "policy").value_or("off");
    t.policy = policy == "require" ? TrustManifest::Policy::require
               : policy == "warn"  ? TrustManifest::Policy::warn
                                   : TrustManifest::Policy::off;
    const fs::path base = fs::path(path).parent_path();
    if (auto* keys = find_array(o, "keys"))
        for (size_t i = 0; i < keys->size(); ++i) {
            const auto& entry = keys->at(i).as_object();
            std::string where = path + ": \"keys\"[" + std::to_string(i) + "]";
            std::string text;
            if (auto file = find_string(entry, "file")) {
                fs::path key_path = fs::path(*file).is_absolute() ? fs::path(*file) : base / *file;
                auto read = read_file_prefix(key_path.string(), 4096);
                if (!read) return Status::config(where + ": public key file " + key_path.string() + " cannot be read");
                text = std::move(*read);
                where += " (" + key_path.string() + ")";
            } else {
                text = find_string(entry, "public_key").value_or("");
            }
            auto key = parse_public_key(text, where);
            if (!key) return key.status();
            key->name = find_string(entry, "name").value_or("");
            t.keys.push_back(std::move(key.value()));
        }
    if (t.policy == TrustManifest::Policy::require && t.keys.empty())
        return Status::config(path +
                              ": \"policy\": \"require\" with no \"keys\" would refuse every plugin (list the keys "
                              "you trust)");
    return t;
}

Result<StateManifest> parse_state_manifest(const std::string& path, const json::object& o) {
    if (auto shape = check_shape(path, o, "state-manifest.schema.json"); !shape) return shape;
    StateManifest m;
    m.manifest_path = path;
    if (auto* pg = find_object(o.at("state").as_object(), "postgres"))
        m.postgres = secret_ref("state.postgres", *pg, fs::path(path).parent_path());
    return m;
}

ManifestSet load_manifests(const std::vector<std::string>& folders) {
    ManifestSet set;
    std::vector<fs::path> files;
    for (const auto& folder : folders) {
        std::error_code ec;
        if (!fs::is_directory(folder, ec)) {
            set.problems.push_back(folder + ": manifest folder not found (check --manifests or CRMSYNC_MANIFEST_PATH)");
            continue;
        }
        std::vector<fs::path> here;
        for (const auto& entry : fs::directory_iterator(folder, ec))
            if (entry.is_regular_file() && entry.path().extension() == ".json") here.push_back(entry.path());
        std::sort(here.begin(), here.end());
        files.insert(files.end(), here.begin(), here.end());
    }
    for (const auto& file : files) {
        std::string path = file.string();
        auto parsed = read_json_file(path);
        if (!parsed) {
            set.problems.push_back(parsed.status().message());
            continue;
        }
        if (!parsed->is_object()) {
            set.problems.push_back(path + ": a manifest must be a JSON object");
            continue;
        }
        const auto& root = parsed->get_object();
        if (root.contains("module")) {
            auto m = parse_module_manifest(path, root);
            if (!m) set.problems.push_back(m.status().message());
            else if (auto* prior = set.module(m->name))
                set.problems.push_back(path + ": module \"" + m->name + "\" is already declared in " + prior->manifest_path +
                                       " (rename one)");
            else set.modules.push_back(std::move(m.value()));
        } else if (root.contains("connection")) {
            auto c = parse_connection_manifest(path, root);
            if (!c) set.problems.push_back(c.status().message());
            else if (auto* prior = set.connection(c->name))
                set.problems.push_back(path + ": connection \"" + c->name + "\" is already declared in " + prior->manifest_path +
                                       " (rename one)");
            else set.connections.push_back(std::move(c.value()));
        } else if (root.contains("notification")) {
            auto n = parse_notification_manifest(path, root);
            if (!n) set.problems.push_back(n.status().message());
            else set.notifications.push_back(std::move(n.value()));
        } else if (root.contains("trust")) {
            auto t = parse_trust_manifest(path, root);
            if (!t) {
                // Fail closed: a trust manifest that does not parse trusts nothing.
                set.problems.push_back(t.status().message());
                set.trust = TrustManifest{path, TrustManifest::Policy::require, {}, t.status().message()};
            } else if (!set.trust.manifest_path.empty())
                set.problems.push_back(path + ": a trust manifest is already given by " + set.trust.manifest_path +
                                       " (a home has one; merge their keys)");
            else set.trust = std::move(t.value());
        } else if (root.contains("state")) {
            auto st = parse_state_manifest(path, root);
            if (!st) {
                set.problems.push_back(st.status().message());
                set.state = StateManifest{path, std::nullopt, st.status().message()};
            } else if (!set.state.manifest_path.empty())
                set.problems.push_back(path + ": the state store is already chosen by " + set.state.manifest_path +
                                       " (a home has one)");
            else set.state = std::move(st.value());
        } else {
            set.problems.push_back(
                path +
                ": none of \"module\", \"connection\", \"notification\", \"trust\" or \"state\" is set, so this "
                "is no crmsync manifest");
        }
    }
    // A notification watching a module no manifest declares would never fire: say so.
    std::vector<std::string> names;
    for (const auto& m : set.modules) names.push_back(m.name);
    for (const auto& n : set.notifications)
        for (const auto& watched : n.modules)
            if (!set.module(watched)) {
                auto near = did_you_mean(watched, names);
                set.problems.push_back(n.manifest_path + ": notification \"" + n.name + "\" watches module \"" + watched +
                                       "\", which no manifest declares" + (near ? " (did you mean \"" + *near + "\"?)" : ""));
            }
    return set;
}

Result<json::object> resolve_credentials(const std::vector<CredentialRef>& refs) {
    json::object out;
    for (const auto& ref : refs) {
        if (ref.source == CredentialRef::Source::env) {
            const char* value = std::getenv(ref.where.c_str());
            if (!value)
                return Status::config("credential \"" + ref.name + "\": environment variable " + ref.where + " is not set");
            out[ref.name] = value;
        } else {
            std::ifstream in(ref.where, std::ios::binary);
            if (!in) return Status::config("credential \"" + ref.name + "\": file " + ref.where + " cannot be read");
            std::stringstream buffer;
            buffer << in.rdbuf();
            std::string value = buffer.str();
            while (!value.empty() && (value.back() == '\n' || value.back() == '\r')) value.pop_back();
            out[ref.name] = value;
        }
    }
    return out;
}

}  // namespace crmsync

namespace crmsync {

int64_t FailedRecordPolicy::next_attempt_ms(int64_t now_ms, int64_t attempts) const {
    int64_t wait = backoff_ms;
    for (int64_t i = 1; i < attempts && wait < kCapMs; ++i) wait *= 2;
    return now_ms + std::min(wait, kCapMs);
}

}  // namespace crmsync
