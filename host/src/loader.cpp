#include "loader.h"

#include "isolation/abi_exchange.h"
#include "library_image.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <utility>

#include "digest.h"
#include <crmsync/support/text.hpp>

namespace crmsync {
namespace fs = std::filesystem;

namespace {

PluginFacts facts_of(const crmsync_plugin& d, uint32_t abi_minor) {
    auto text = [](const char* s) { return std::string(s ? s : ""); };
    return {text(d.id),     text(d.version), text(d.description), text(d.config_schema),
            d.capabilities, abi_minor,       abi::entry_points(d)};
}

}  // namespace

std::string facts_problem(const PluginManifest& m, const PluginFacts& f) {
    using wire::Entry;
    if (m.id != f.id)
        return "library says its id is \"" + f.id.substr(0, 128) + "\" but the manifest says \"" + m.id +
               "\" (the manifest belongs to another plugin)";
    auto declared = parse_version(f.version);
    if (!declared || *declared != m.version)
        return "library says its version is \"" + f.version.substr(0, 64) + "\" but the manifest says \"" + m.version.text() +
               "\" (rebuild the plugin)";
    if (!f.has(Entry::create)) return "descriptor has no create function";
    uint32_t caps = f.capabilities;
    if ((caps & CRMSYNC_CAP_FETCH) && !f.has(Entry::fetch)) return "declares FETCH but has no fetch function";
    if ((caps & CRMSYNC_CAP_MAP) && !f.has(Entry::map)) return "declares MAP but has no map function";
    if ((caps & CRMSYNC_CAP_WRITE) && !f.has(Entry::write)) return "declares WRITE but has no write function";
    if ((caps & CRMSYNC_CAP_READS_CRM) && f.abi_minor < 1)
        return "declares READS_CRM, which ABI 1.1 added, but speaks ABI 1." + std::to_string(f.abi_minor);
    if ((caps & CRMSYNC_CAP_READS_CRM) && !(f.has(Entry::fetch) && f.has(Entry::map) && f.has(Entry::write)))
        return "declares READS_CRM but lacks fetch, map or write (it answers crm_read, maps CRM records, writes them)";
    return "";
}

Result<std::unique_ptr<RunnerProcess>> start_runner(const VerifiedLibrary& library, const Isolation& isolation, int channels) {
    const std::string& where = library.manifest.manifest_path;
    auto runner = RunnerProcess::start(library.manifest.id, library.fd, isolation, channels);
    if (!runner) return runner.status().prefixed(where + ": ");
    if (auto problem = facts_problem(library.manifest, runner.value()->facts()); !problem.empty())
        return Status::config(where + ": " + problem);
    return runner;
}

LoadedPlugin::LoadedPlugin(const VerifiedLibrary& verified, boost::dll::shared_library library, const crmsync_plugin& descriptor,
                           uint32_t abi_minor)
    : manifest_(verified.manifest),
      signature_(verified.signature),
      library_(std::move(library)),
      descriptor_(descriptor),
      facts_(facts_of(descriptor, abi_minor)) {}

LoadedPlugin::LoadedPlugin(const VerifiedLibrary& verified, PluginFacts facts)
    : manifest_(verified.manifest), signature_(verified.signature), descriptor_{}, facts_(std::move(facts)) {}

std::string LoadedPlugin::description() const {
    std::string_view text = facts_.description;
    text = text.substr(0, std::min(text.find('\n'), size_t{4096}));
    std::string line;
    for (char c : text)
        if (static_cast<unsigned char>(c) >= 0x20 && c != 0x7f) line += c;
    return support::utf8_prefix_bytes(line, 200);
}

PluginLoader::PluginLoader(std::vector<std::string> search_path, const Diagnostics& diagnostics, TrustManifest trust)
    : search_path_(std::move(search_path)), diagnostics_(diagnostics), trust_(std::move(trust)) {
    for (const auto& folder : search_path_) {
        std::error_code ec;
        if (!fs::is_directory(folder, ec)) {
            diagnostics_.debug("plugin folder " + folder + " does not exist; skipped");
            continue;
        }
        std::vector<fs::path> manifests;
        // A plugin is a folder with <id>.plugin.json beside its library; manifests directly
        // in the search folder are found too.
        for (auto it = fs::recursive_directory_iterator(folder, ec); it != fs::recursive_directory_iterator(); it.increment(ec)) {
            if (ec) break;
            if (it.depth() > 1) it.disable_recursion_pending();
            const auto& p = it->path();
            if (it->is_regular_file(ec) && p.filename().string().ends_with(".plugin.json")) manifests.push_back(p);
        }
        std::sort(manifests.begin(), manifests.end());
        for (const auto& path : manifests) {
            PluginCandidate candidate;
            candidate.manifest_path = path.string();
            auto parsed = parse_plugin_manifest(candidate.manifest_path);
            if (parsed) {
                diagnostics_.debug("found plugin " + parsed->id + " " + parsed->version.text() + " in " +
                                   candidate.manifest_path);
                candidate.manifest = std::move(parsed.value());
            } else {
                candidate.problem = parsed.status();
                diagnostics_.warn(parsed.status().message());
            }
            candidates_.push_back(std::move(candidate));
        }
    }
}

Result<std::shared_ptr<LoadedPlugin>> PluginLoader::load(const std::string& id, const VersionRange& range) {
    return choose(id, range, &PluginLoader::load_candidate);
}

Result<std::shared_ptr<VerifiedLibrary>> PluginLoader::verify(const std::string& id, const VersionRange& range) {
    return choose(id, range, &PluginLoader::verify_candidate);
}

template <class T>
Result<T> PluginLoader::choose(const std::string& id, const VersionRange& range,
                               Result<T> (PluginLoader::*step)(PluginCandidate&)) {
    std::vector<PluginCandidate*> matching;
    for (auto& c : candidates_)
        if (c.manifest && c.manifest->id == id) matching.push_back(&c);
    if (matching.empty()) {
        std::string where;
        for (const auto& f : search_path_) where += (where.empty() ? "" : ":") + f;
        return Status::config("plugin \"" + id + "\" is not installed (no " + id + ".plugin.json under " + where +
                              "; install it or set CRMSYNC_PLUGIN_PATH)");
    }
    // The newest version in range; of equal versions, the one earliest on the search path.
    std::stable_sort(matching.begin(), matching.end(),
                     [](auto* a, auto* b) { return a->manifest->version > b->manifest->version; });
    std::string reasons, refused;
    for (auto* c : matching) {
        if (!range.contains(c->manifest->version)) {
            diagnostics_.debug(c->manifest_path + ": version " + c->manifest->version.text() + " is outside \"" + range.text() +
                               "\"");
            reasons +=
                "\n  " + c->manifest_path + ": version " + c->manifest->version.text() + " is outside \"" + range.text() + "\"";
            continue;
        }
        auto loaded = (this->*step)(*c);
        if (loaded) {
            // A copy earlier on the path (or newer) was refused: say which one runs instead.
            if (!refused.empty() && !std::exchange(c->told_fallback, true))
                diagnostics_.warn("plugin \"" + id + "\": using " + c->manifest_path + " because" + refused);
            return loaded;
        }
        refused += "\n  " + loaded.status().message();
        reasons += "\n  " + loaded.status().message();
    }
    return Status::config("no usable version of plugin \"" + id + "\" matches \"" + range.text() + "\":" + reasons);
}

namespace {

std::string versions(uint32_t major, uint32_t minor) { return std::to_string(major) + "." + std::to_string(minor); }

}  // namespace

Status PluginLoader::judge(const PluginManifest& m, const SignatureCheck& signature) {
    using State = SignatureCheck::State;
    if (trust_.policy == TrustManifest::Policy::off || signature.state == State::trusted) return Status::ok();
    std::string what = "plugin " + m.id + " " + m.version.text() + " is " + signature.text();
    std::string fix =
        signature.state == State::none
            ? "get " + m.library_path + ".minisig from its vendor, or sign it yourself: minisign -S -t \"crmsync-plugin " + m.id +
                  " " + m.version.text() + "\" -m " + m.library_path
        : signature.state == State::untrusted
            ? "if you trust whoever holds key " + signature.key_id + ", add its public key to \"keys\" in " + trust_.manifest_path
            : "reinstall the plugin from its vendor";
    if (!trust_.problem.empty())
        return Status::config(what + ", and the trust manifest " + trust_.manifest_path +
                              " is broken, so no plugin is trusted (fix it: " + trust_.problem + ")");
    if (trust_.policy == TrustManifest::Policy::require)
        return Status::config(what + "; the trust policy in " + trust_.manifest_path + " requires a trusted signature (" + fix +
                              ")");
    diagnostics_.warn(what + " (" + fix + "; the trust policy in " + trust_.manifest_path + " is \"warn\")");
    return Status::ok();
}

namespace {}  // namespace

Result<std::shared_ptr<VerifiedLibrary>> PluginLoader::verify_candidate(PluginCandidate& candidate) {
    if (candidate.verified) return candidate.verified;
    if (!candidate.problem.is_ok()) return candidate.problem;
    auto refuse = [&](std::string message) -> Result<std::shared_ptr<VerifiedLibrary>> {
        candidate.problem = Status::config(candidate.manifest_path + ": " + message);
        diagnostics_.debug("refused " + candidate.manifest_path + ": " + message);
        return candidate.problem;
    };
    const PluginManifest& m = *candidate.manifest;
    std::error_code ec;
    if (!fs::is_regular_file(m.library_path, ec))
        return refuse("library " + m.library_path + " not found (reinstall the plugin or fix \"library_path\")");
    if (m.abi_major != CRMSYNC_ABI_MAJOR)
        return refuse("plugin ABI " + versions(m.abi_major, m.abi_minor) + " does not match host ABI " +
                      versions(CRMSYNC_ABI_MAJOR, CRMSYNC_ABI_MINOR) +
                      " (major versions differ; use a build of the plugin for ABI " + std::to_string(CRMSYNC_ABI_MAJOR) + ".x)");
    if (m.abi_minor > CRMSYNC_ABI_MINOR)
        return refuse("plugin ABI " + versions(m.abi_major, m.abi_minor) + " is newer than host ABI " +
                      versions(CRMSYNC_ABI_MAJOR, CRMSYNC_ABI_MINOR) + " (upgrade crmsync or use an older plugin build)");
    // The bytes checked are the bytes loaded: a private sealed copy, not the file again.
    auto verified = std::make_shared<VerifiedLibrary>();
    verified->manifest = m;
    auto image = verified_library_copy(m.library_path, m.sha256, m.id, [&](std::string_view bytes) {
        // The .minisig beside the library, when there is one (a real one is four short lines).
        auto signature = read_file_prefix(m.library_path + ".minisig", kMaxSignatureFile);
        verified->signature = check_signature(bytes, signature, m.id, m.version.text(), trust_.keys);
        return judge(m, verified->signature);
    });
    if (!image) return refuse(image.status().message());
    diagnostics_.debug(m.library_path + ": sha256 verified; " + verified->signature.text());
    verified->fd = image->fd;
    verified->path = image->path;
    candidate.verified = verified;
    return candidate.verified;
}

Result<std::shared_ptr<LoadedPlugin>> PluginLoader::load_candidate(PluginCandidate& candidate) {
    if (candidate.loaded) return candidate.loaded;
    if (!candidate.problem.is_ok()) return candidate.problem;
    auto refuse = [&](std::string message) -> Result<std::shared_ptr<LoadedPlugin>> {
        candidate.problem = Status::config(candidate.manifest_path + ": " + message);
        diagnostics_.debug("refused " + candidate.manifest_path + ": " + message);
        return candidate.problem;
    };
    auto verified = verify_candidate(candidate);
    if (!verified) return verified.status();
    const PluginManifest& m = verified.value()->manifest;

    boost::dll::shared_library library;
    try {
        // The throwing overload: its message carries dlerror's text (e.g. a missing dependency).
        library.load(verified.value()->path, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
    } catch (const std::exception& e) {
        return refuse(std::string("library ") + m.library_path + " cannot be opened: " + e.what() +
                      " (a library it depends on may be missing: check `ldd " + m.library_path + "`)");
    }
    if (!library.has(CRMSYNC_ENTRY_SYMBOL))
        return refuse(std::string("library does not export ") + CRMSYNC_ENTRY_SYMBOL +
                      " (not a crmsync plugin, or built without CRMSYNC_EXPORT)");
    auto negotiate = library.get<int32_t(crmsync_negotiation*)>(CRMSYNC_ENTRY_SYMBOL);

    int32_t rc = 0;
    crmsync_negotiation n = abi::negotiate(negotiate, host_api(), rc);
    diagnostics_.debug(m.id + ": negotiate returned " + std::to_string(rc) + ", plugin ABI " +
                       versions(n.plugin_abi_major, n.plugin_abi_minor));
    if (n.plugin_abi_major != CRMSYNC_ABI_MAJOR)
        return refuse("plugin speaks ABI " + versions(n.plugin_abi_major, n.plugin_abi_minor) + ", host speaks ABI " +
                      versions(CRMSYNC_ABI_MAJOR, CRMSYNC_ABI_MINOR) +
                      " (major versions differ; rebuild the plugin against this crmsync)");
    if (n.plugin_abi_minor > CRMSYNC_ABI_MINOR)
        return refuse("plugin speaks ABI " + versions(n.plugin_abi_major, n.plugin_abi_minor) + ", newer than host ABI " +
                      versions(CRMSYNC_ABI_MAJOR, CRMSYNC_ABI_MINOR) + " (upgrade crmsync or use an older plugin build)");
    if (rc != CRMSYNC_STATUS_OK || !n.plugin)
        return refuse("crmsync_negotiate refused this host (status " + std::to_string(rc) + ")");
    if (n.plugin->struct_size < offsetof(crmsync_plugin, write) + sizeof(n.plugin->write))
        return refuse("plugin descriptor is " + std::to_string(n.plugin->struct_size) +
                      " bytes, smaller than ABI 1.0's (corrupt or not a crmsync plugin)");
    crmsync_plugin descriptor = abi::sized_copy(n.plugin);
    if (auto problem = facts_problem(m, facts_of(descriptor, n.plugin_abi_minor)); !problem.empty()) return refuse(problem);

    diagnostics_.debug("loaded " + m.id + " " + m.version.text() + " from " + m.library_path);
    candidate.loaded = std::make_shared<LoadedPlugin>(*verified.value(), std::move(library), descriptor, n.plugin_abi_minor);
    return candidate.loaded;
}

}  // namespace crmsync
