#include "catalog.h"

#include "schema.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <sstream>

namespace crmsync {
namespace fs = std::filesystem;

namespace {
std::vector<std::string> split_path_list(const std::string& text) {
    std::vector<std::string> out;
    std::stringstream in(text);
    std::string part;
    while (std::getline(in, part, ':'))
        if (!part.empty()) out.push_back(part);
    return out;
}

std::string absolute(const std::string& p) {
    std::error_code ec;
    auto a = fs::absolute(p, ec);
    return ec ? p : a.lexically_normal().string();
}
}  // namespace

Environment resolve_environment(const std::optional<std::string>& home_flag, const std::optional<std::string>& manifests_flag,
                                const std::string& executable_dir) {
    Environment env;
    const char* home_env = std::getenv("CRMSYNC_HOME");
    env.home = absolute(home_flag ? *home_flag : home_env && *home_env ? home_env : ".");
    while (env.home.size() > 1 && env.home.back() == '/') env.home.pop_back();
    const char* manifests_env = std::getenv("CRMSYNC_MANIFEST_PATH");
    if (manifests_flag) env.manifest_dirs = {absolute(*manifests_flag)};
    else if (manifests_env && *manifests_env) env.manifest_dirs = split_path_list(manifests_env);
    else env.manifest_dirs = {env.home + "/manifests"};
    // Like GStreamer's GST_PLUGIN_PATH / GST_PLUGIN_SYSTEM_PATH: the operator's folders come
    // first (a plugin there wins over a shipped one of the same version), then the shipped
    // ones; CRMSYNC_PLUGIN_SYSTEM_PATH replaces the latter, and set empty leaves them out.
    const char* plugins_env = std::getenv("CRMSYNC_PLUGIN_PATH");
    const char* system_env = std::getenv("CRMSYNC_PLUGIN_SYSTEM_PATH");
    std::vector<std::string> dirs;
    if (plugins_env) dirs = split_path_list(plugins_env);
    for (auto& dir :
         system_env ? split_path_list(system_env) : std::vector<std::string>{executable_dir + "/../lib/crmsync/plugins"})
        dirs.push_back(std::move(dir));
    for (const auto& dir : dirs) {
        std::string full = absolute(dir);
        if (std::find(env.plugin_dirs.begin(), env.plugin_dirs.end(), full) == env.plugin_dirs.end())
            env.plugin_dirs.push_back(full);
    }
    return env;
}

Catalog::Catalog(Environment environment, const Diagnostics& diagnostics, const Clock& clock)
    : env_(std::move(environment)),
      diagnostics_(diagnostics),
      clock_(clock),
      manifests_(load_manifests(env_.manifest_dirs)),
      loader_(env_.plugin_dirs, diagnostics, manifests_.trust) {
    for (const auto& problem : manifests_.problems) diagnostics_.warn(problem + " — skipped");
}

json::object Catalog::expand(const json::object& config, const std::string& manifest_path) const {
    std::string manifest_dir = fs::path(manifest_path).parent_path().string();
    std::function<json::value(const json::value&)> walk = [&](const json::value& v) -> json::value {
        if (v.is_string()) {
            std::string s(v.get_string());
            for (auto [token, value] : {std::pair<std::string, std::string>{"${home}", env_.home},
                                        std::pair<std::string, std::string>{"${manifest_dir}", manifest_dir}}) {
                for (size_t at = s.find(token); at != std::string::npos; at = s.find(token, at + value.size()))
                    s.replace(at, token.size(), value);
            }
            return json::string(s);
        }
        if (v.is_array()) {
            json::array out;
            for (const auto& item : v.get_array()) out.push_back(walk(item));
            return out;
        }
        if (v.is_object()) {
            json::object out;
            for (const auto& [k, item] : v.get_object()) out[k] = walk(item);
            return out;
        }
        return v;
    };
    return walk(config).as_object();
}

Result<std::unique_ptr<PluginInstance>> Catalog::instantiate(const PluginRef& ref, const json::object& config,
                                                             const std::string& manifest_path, const Isolation& isolation,
                                                             int channels) {
    auto services = std::make_unique<HostServices>();
    services->clock = &clock_;
    services->log = [this](Level level, std::string_view message) { diagnostics_.report(level, message); };
    if (isolation.isolated()) {
        auto library = loader_.verify(ref.id, ref.range);
        if (!library) return library.status().prefixed(manifest_path + ": ");
        return PluginInstance::create_isolated(*library.value(), isolation, channels, expand(config, manifest_path),
                                               std::move(services), manifest_path);
    }
    auto plugin = loader_.load(ref.id, ref.range);
    if (!plugin) return plugin.status().prefixed(manifest_path + ": ");
    return PluginInstance::create(plugin.value(), expand(config, manifest_path), std::move(services), manifest_path);
}

Result<std::shared_ptr<LoadedPlugin>> Catalog::describe(const PluginRef& ref, const Isolation& isolation) {
    if (!isolation.isolated()) return loader_.load(ref.id, ref.range);
    auto library = loader_.verify(ref.id, ref.range);
    if (!library) return library.status();
    // A runner is started once per library and command (`modules` asks for each module and
    // each connection, and again for their problems).
    auto known = described_.find(library.value().get());
    if (known == described_.end()) {
        using Described = Result<std::shared_ptr<LoadedPlugin>>;
        auto runner = start_runner(*library.value(), isolation, 1);
        known = described_
                    .emplace(library.value().get(),
                             runner ? Described(std::make_shared<LoadedPlugin>(*library.value(), runner.value()->facts()))
                                    : Described(runner.status()))
                    .first;
    }
    return known->second;
}

Status Catalog::module_exists(const std::string& name) const {
    if (manifests_.module(name)) return Status::ok();
    std::vector<std::string> names;
    std::string known;
    for (const auto& m : manifests_.modules) {
        names.push_back(m.name);
        known += (known.empty() ? "" : ", ") + m.name;
    }
    auto near = did_you_mean(name, names);
    return Status::config("no module \"" + name + "\" in " + env_.manifest_dirs.front() +
                          (near            ? " (did you mean \"" + *near + "\"?)"
                           : known.empty() ? " (no modules found)"
                                           : " (known: " + known + ")"));
}

Result<const ConnectionManifest*> Catalog::connection_for(const ModuleManifest& module) const {
    if (const ConnectionManifest* c = manifests_.connection(module.crm)) return c;
    return Status::config(module.manifest_path + ": \"crm\": no connection manifest named \"" + module.crm +
                          "\" (add one with \"connection\": \"" + module.crm + "\")");
}

std::vector<std::string> Catalog::offline_problems(const ModuleManifest& module) {
    std::vector<std::string> out;
    auto check = [&](const PluginRef& ref, const json::object& config, const std::string& manifest_path,
                     const Isolation& isolation) {
        auto plugin = describe(ref, isolation);
        if (!plugin) return out.push_back(plugin.status().message());
        auto valid = validate_against_schema(plugin.value()->config_schema(), expand(config, manifest_path), "config");
        if (!valid) out.push_back(manifest_path + ": config does not match plugin " + ref.id + "'s schema: " + valid.message());
    };
    check(module.plugin, module.config, module.manifest_path, module.isolation);
    auto connection = connection_for(module);
    if (!connection) out.push_back(connection.status().message());
    else
        check(connection.value()->plugin, connection.value()->config, connection.value()->manifest_path,
              connection.value()->isolation);
    return out;
}

Result<ModuleInstances> Catalog::instantiate_module(const std::string& name) {
    ModuleInstances out;
    if (auto found = module_exists(name); !found) return found;
    out.module = manifests_.module(name);
    auto connection = connection_for(*out.module);
    if (!connection) return connection.status();
    out.connection = connection.value();
    // An isolated source is called from the run's thread and the one reading ahead; an
    // isolated CRM plugin from as many as the connection keeps calls in flight, and two more.
    auto source = instantiate(out.module->plugin, out.module->config, out.module->manifest_path, out.module->isolation, 2);
    if (!source) return source.status();
    auto crm = instantiate(out.connection->plugin, out.connection->config, out.connection->manifest_path,
                           out.connection->isolation, static_cast<int>(out.connection->max_parallel_requests) + 2);
    if (!crm) return crm.status();
    if (!crm.value()->can(CRMSYNC_CAP_WRITE) || !crm.value()->can(CRMSYNC_CAP_FETCH))
        return Status::config(out.connection->manifest_path + ": plugin " + out.connection->plugin.id +
                              " cannot serve as a CRM (it needs FETCH and WRITE)");
    if (!source.value()->can(CRMSYNC_CAP_FETCH) || !source.value()->can(CRMSYNC_CAP_MAP))
        return Status::config(out.module->manifest_path + ": plugin " + out.module->plugin.id +
                              " cannot serve as a module's source (it needs FETCH and MAP)");
    out.source = std::move(source.value());
    out.crm = std::move(crm.value());
    return out;
}

Result<std::unique_ptr<PluginInstance>> Catalog::instantiate_connection(const std::string& name) {
    const ConnectionManifest* c = manifests_.connection(name);
    if (!c) {
        std::string known;
        for (const auto& m : manifests_.connections) known += (known.empty() ? "" : ", ") + m.name;
        return Status::config("no CRM connection \"" + name + "\"" +
                              (known.empty() ? " (none found)" : " (known: " + known + ")"));
    }
    return instantiate(c->plugin, c->config, c->manifest_path, c->isolation, static_cast<int>(c->max_parallel_requests) + 2);
}

Result<std::unique_ptr<StateStore>> Catalog::open_store() const {
    const StateManifest& state = manifests_.state;
    if (!state.problem.empty()) return Status::config(state.problem + " — no state store is opened until it is fixed");
    if (!state.postgres) return open_sqlite_store(env_.state_path());
    auto conninfo = resolve_credentials({*state.postgres});
    if (!conninfo) return conninfo.status().prefixed(state.manifest_path + ": ");
    auto store = open_postgres_store(std::string(conninfo->at("state.postgres").as_string()));
    if (!store) return store.status().prefixed(state.manifest_path + ": ");
    return store;
}

}  // namespace crmsync
