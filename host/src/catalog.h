#pragma once
// The catalog: where a crmsync process finds its home, manifests, plugins and state, and
// how a module manifest becomes live plugin instances. Commands (run, check, serve, ...)
// start here. Config strings may use ${home} and ${manifest_dir}, expanded here so plugins
// receive plain paths.
#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "clock.h"
#include "diagnostics.h"
#include "instance.h"
#include "loader.h"
#include "manifest.h"
#include "store.h"

namespace crmsync {

struct Environment {
    std::string home;                        // --home, $CRMSYNC_HOME, else the current folder
    std::vector<std::string> manifest_dirs;  // --manifests, $CRMSYNC_MANIFEST_PATH, else home/manifests
    std::vector<std::string> plugin_dirs;    // $CRMSYNC_PLUGIN_PATH, then $CRMSYNC_PLUGIN_SYSTEM_PATH
                                             // (default <exe>/../lib/crmsync/plugins)
    std::string state_path() const { return home + "/var/state.db"; }
};

Environment resolve_environment(const std::optional<std::string>& home_flag, const std::optional<std::string>& manifests_flag,
                                const std::string& executable_dir);

// A module's live plugins: its own and its CRM connection's.
struct ModuleInstances {
    const ModuleManifest* module = nullptr;
    const ConnectionManifest* connection = nullptr;
    std::unique_ptr<PluginInstance> source;
    std::unique_ptr<PluginInstance> crm;
};

class Catalog {
public:
    Catalog(Environment environment, const Diagnostics& diagnostics, const Clock& clock);

    const Environment& environment() const { return env_; }
    const ManifestSet& manifests() const { return manifests_; }
    PluginLoader& loader() { return loader_; }
    const Diagnostics& diagnostics() const { return diagnostics_; }

    // A live instance of `ref`'s plugin, in this process or, isolated, in a runner process
    // with `channels` channels (the most calls on it at once).
    Result<std::unique_ptr<PluginInstance>> instantiate(const PluginRef& ref, const json::object& config,
                                                        const std::string& manifest_path, const Isolation& isolation = {},
                                                        int channels = 1);
    // What `ref`'s plugin is (descriptor, signature) without making an instance: read in
    // this process, or from a runner that is started and stopped for it when isolated, so
    // that an isolated plugin's code never runs in this process.
    Result<std::shared_ptr<LoadedPlugin>> describe(const PluginRef& ref, const Isolation& isolation);
    // Ok when a manifest declares module `name`; otherwise a configuration error naming the
    // module it probably meant, or the ones there are.
    Status module_exists(const std::string& name) const;
    // The connection manifest a module names as its "crm", or an error saying to add it.
    Result<const ConnectionManifest*> connection_for(const ModuleManifest& module) const;
    // What can be known wrong with a module without starting a plugin or the network: its
    // and its connection's plugins verify and load, the connection exists, both configs
    // match their plugin's schema. One line per problem, each naming its manifest.
    std::vector<std::string> offline_problems(const ModuleManifest& module);
    Result<ModuleInstances> instantiate_module(const std::string& name);
    Result<std::unique_ptr<PluginInstance>> instantiate_connection(const std::string& name);

    Result<std::unique_ptr<StateStore>> open_store() const;

private:
    json::object expand(const json::object& config, const std::string& manifest_path) const;
    Environment env_;
    const Diagnostics& diagnostics_;
    const Clock& clock_;
    ManifestSet manifests_;
    PluginLoader loader_;
    std::map<const VerifiedLibrary*, Result<std::shared_ptr<LoadedPlugin>>> described_;  // isolated, by describe()
};

}  // namespace crmsync
