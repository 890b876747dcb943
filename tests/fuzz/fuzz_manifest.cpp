// Fuzz target: the manifest readers (module, connection, notification and plugin manifests) on any bytes.
// Whatever the input, they answer a manifest or an error that names the file, never crash,
// and never repeat a credential reference's value as a secret.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "manifest.h"
#include "fuzz_check.h"

namespace {

const std::string& scratch_file() {
    static const std::string path = [] {
        char name[] = "/tmp/crmsync-fuzz-manifest-XXXXXX";
        int fd = mkstemp(name);
        if (fd >= 0) close(fd);
        return std::string(name);
    }();
    return path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace crmsync;
    const std::string text(reinterpret_cast<const char*>(data), size);
    if (auto parsed = parse_json(text); parsed && parsed->is_object()) {
        const auto& root = parsed->get_object();
        auto module = parse_module_manifest("m.json", root);
        fuzz_require(module || module.status().message().rfind("m.json: ", 0) == 0, "a module manifest error must name the file");
        if (module) {
            fuzz_require(!module->name.empty() && !module->crm.empty(), "an accepted module has a name and a crm");
            fuzz_require(module->schedule.kind != Schedule::Kind::every || module->schedule.every_seconds >= 60,
                         "an accepted schedule runs at most once a minute");
        }
        auto connection = parse_connection_manifest("c.json", root);
        fuzz_require(connection || connection.status().message().rfind("c.json: ", 0) == 0,
                     "a connection manifest error must name the file");
        auto notification = parse_notification_manifest("n.json", root);
        fuzz_require(notification || notification.status().message().rfind("n.json: ", 0) == 0,
                     "a notification manifest error must name the file");
        if (notification)
            fuzz_require(!notification->name.empty() && !notification->on.empty() &&
                             (notification->channel == NotificationManifest::Channel::email
                                  ? !notification->email_to.empty()
                                  : !notification->webhook_url.empty() || notification->webhook_url_ref.has_value()),
                         "an accepted notification has a name, events and somewhere to send them");
    }
    // The plugin manifest is read from a file, as the loader reads it.
    if (FILE* f = std::fopen(scratch_file().c_str(), "wb")) {
        std::fwrite(text.data(), 1, text.size(), f);
        std::fclose(f);
        auto plugin = parse_plugin_manifest(scratch_file());
        fuzz_require(plugin || plugin.status().message().find(scratch_file()) != std::string::npos,
                     "a plugin manifest error must name the file");
        if (plugin) fuzz_require(plugin->sha256.size() == 64, "an accepted plugin manifest has a whole sha256");
    }
    return 0;
}
