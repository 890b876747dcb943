#pragma once
// Finds plugin manifests, verifies each library before opening it (file, sha256, declared
// ABI, signature against the home's trust manifest), opens it with rtld_now|rtld_local
// through Boost.DLL, negotiates, and reads the descriptor by its struct_size — or, for a
// plugin that runs isolated, stops after verifying and leaves the opening to its runner
// process. Every refusal is one message naming the file and the fix.
// Thread-safety: a PluginLoader is used from one thread; LoadedPlugin is immutable and
// shared by every instance made from it (it keeps the library mapped while any lives).
#include <crmsync/plugin.h>

#include <boost/dll/shared_library.hpp>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "diagnostics.h"
#include "isolation/runner_process.h"
#include "manifest.h"
#include "signature.h"
#include "status.h"

namespace crmsync {

// A plugin library whose bytes passed every check, sealed in memory (fd) so that what is
// opened — here or in a runner process — is exactly what was checked.
struct VerifiedLibrary {
    PluginManifest manifest;
    int fd = -1;       // the sealed copy, open for the process's life
    std::string path;  // "/proc/self/fd/N", what dlopen reads in this process
    SignatureCheck signature;
};

// Why a descriptor does not fit its manifest or the ABI ("" when it does): id and version as
// the manifest says, a create function, an entry point for each capability.
std::string facts_problem(const PluginManifest& manifest, const PluginFacts& facts);

// A runner process for a plugin that runs isolated, started on `library` with `channels`
// channels, once what it says the plugin is fits the manifest. Messages name the manifest.
Result<std::unique_ptr<RunnerProcess>> start_runner(const VerifiedLibrary& library, const Isolation& isolation, int channels);

class LoadedPlugin {
public:
    // In process: the opened library and its descriptor.
    LoadedPlugin(const VerifiedLibrary& verified, boost::dll::shared_library library, const crmsync_plugin& descriptor,
                 uint32_t abi_minor);
    // Isolated: what the plugin's runner said it is; its code never runs in this process.
    LoadedPlugin(const VerifiedLibrary& verified, PluginFacts facts);
    const PluginManifest& manifest() const { return manifest_; }
    bool in_process() const { return library_.is_loaded(); }
    // In process only: a zero-padded copy, fields beyond the plugin's struct_size NULL/0.
    const crmsync_plugin& descriptor() const { return descriptor_; }
    const PluginFacts& facts() const { return facts_; }
    const SignatureCheck& signature() const { return signature_; }
    const std::string& id() const { return manifest_.id; }
    std::string version() const { return manifest_.version.text(); }
    // The descriptor's one line for `crmsync modules`: its first line, control characters
    // dropped, at most 200 bytes (the plugin wrote it; it is shown, never trusted).
    std::string description() const;
    const std::string& config_schema() const { return facts_.config_schema; }
    uint32_t capabilities() const { return facts_.capabilities; }
    uint32_t abi_minor() const { return facts_.abi_minor; }

private:
    PluginManifest manifest_;
    SignatureCheck signature_;
    boost::dll::shared_library library_;
    crmsync_plugin descriptor_;
    PluginFacts facts_;
};

// One plugin manifest found on the search path, and what became of it.
struct PluginCandidate {
    std::string manifest_path;
    std::optional<PluginManifest> manifest;  // absent when the manifest itself is bad
    Status problem;                          // why it was refused, once it was tried
    std::shared_ptr<VerifiedLibrary> verified;
    std::shared_ptr<LoadedPlugin> loaded;
    bool told_fallback = false;  // already said it runs in place of a refused copy
};

class PluginLoader {
public:
    PluginLoader(std::vector<std::string> search_path, const Diagnostics& diagnostics, TrustManifest trust = {});

    // Verifies and loads the highest version of `id` within `range` that loads; the error
    // lists every candidate's reason when none does.
    Result<std::shared_ptr<LoadedPlugin>> load(const std::string& id, const VersionRange& range);
    // The same choice, verified but not opened: for a plugin that runs in a runner process.
    Result<std::shared_ptr<VerifiedLibrary>> verify(const std::string& id, const VersionRange& range);
    const TrustManifest& trust() const { return trust_; }

    const std::vector<PluginCandidate>& candidates() const { return candidates_; }
    const std::vector<std::string>& search_path() const { return search_path_; }

private:
    // The newest candidate of `id` in `range` for which `step` succeeds.
    template <class T>
    Result<T> choose(const std::string& id, const VersionRange& range, Result<T> (PluginLoader::*step)(PluginCandidate&));
    Result<std::shared_ptr<VerifiedLibrary>> verify_candidate(PluginCandidate& candidate);
    Result<std::shared_ptr<LoadedPlugin>> load_candidate(PluginCandidate& candidate);
    // The trust policy's verdict on a verified signature: a refusal under "require".
    Status judge(const PluginManifest& manifest, const SignatureCheck& signature);
    std::vector<std::string> search_path_;
    const Diagnostics& diagnostics_;
    TrustManifest trust_;
    std::vector<PluginCandidate> candidates_;
};

// The host services table handed to crmsync_negotiate and create().
const crmsync_host_api* host_api();

}  // namespace crmsync
