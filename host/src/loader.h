#pragma once
// Finds plugin manifests, verifies each library before opening it (file, sha256, declared
// ABI), opens it with rtld_now|rtld_local through Boost.DLL, negotiates, and reads the
// descriptor by its struct_size. Every refusal is one message naming the file and the fix.
// Thread-safety: a PluginLoader is used from one thread; LoadedPlugin is immutable and
// shared by every instance made from it (it keeps the library mapped while any lives).
#include <crmsync/plugin.h>

#include <boost/dll/shared_library.hpp>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "diagnostics.h"
#include "manifest.h"
#include "status.h"

namespace crmsync {

class LoadedPlugin {
public:
    LoadedPlugin(PluginManifest manifest, boost::dll::shared_library library, const crmsync_plugin& descriptor,
                 uint32_t abi_minor);
    const PluginManifest& manifest() const { return manifest_; }
    // A zero-padded copy: fields beyond the plugin's struct_size read as NULL/0.
    const crmsync_plugin& descriptor() const { return descriptor_; }
    const std::string& id() const { return manifest_.id; }
    std::string version() const { return manifest_.version.text(); }
    // The descriptor's one line for `crmsync modules`: its first line, control characters
    // dropped, at most 200 bytes (the plugin wrote it; it is shown, never trusted).
    std::string description() const;
    std::string config_schema() const { return descriptor_.config_schema ? descriptor_.config_schema : ""; }
    uint32_t capabilities() const { return descriptor_.capabilities; }
    uint32_t abi_minor() const { return abi_minor_; }

private:
    PluginManifest manifest_;
    boost::dll::shared_library library_;
    crmsync_plugin descriptor_;
    uint32_t abi_minor_;
};

// One plugin manifest found on the search path, and what became of it.
struct PluginCandidate {
    std::string manifest_path;
    std::optional<PluginManifest> manifest;  // absent when the manifest itself is bad
    Status problem;                          // why it was refused, once it was tried
    std::shared_ptr<LoadedPlugin> loaded;
    bool told_fallback = false;  // already said it runs in place of a refused copy
};

class PluginLoader {
public:
    PluginLoader(std::vector<std::string> search_path, const Diagnostics& diagnostics);

    // Verifies and loads the highest version of `id` within `range` that loads; the error
    // lists every candidate's reason when none does.
    Result<std::shared_ptr<LoadedPlugin>> load(const std::string& id, const VersionRange& range);

    const std::vector<PluginCandidate>& candidates() const { return candidates_; }
    const std::vector<std::string>& search_path() const { return search_path_; }

private:
    Result<std::shared_ptr<LoadedPlugin>> load_candidate(PluginCandidate& candidate);
    std::vector<std::string> search_path_;
    const Diagnostics& diagnostics_;
    std::vector<PluginCandidate> candidates_;
};

// The host services table handed to crmsync_negotiate and create().
const crmsync_host_api* host_api();

}  // namespace crmsync
