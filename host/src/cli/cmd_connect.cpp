// crmsync connect CONNECTION: a person signs the connection in once through a browser
// (OAuth's authorization-code flow with PKCE on a loopback redirect), and the secret the
// CRM gives back (a refresh token) is stored where the connection's credential reference
// points. The host runs the listener, the state check, PKCE and the file; the plugin knows
// its CRM's URLs (fetch "authorize_url" and "authorize_code").
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <mutex>

#include "../digest.h"
#include "../serve/http_listener.h"
#include "commands.h"

namespace crmsync::cli {
namespace {

std::optional<std::string> random_token(size_t bytes) {
    std::string buffer(bytes, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char*>(buffer.data()), static_cast<int>(bytes)) != 1) return std::nullopt;
    return base64url(buffer);
}

// Replaces `path` with `value`, readable by its owner only, whole or not at all.
Status write_secret_file(const std::string& path, const std::string& value) {
    const std::string temp = path + ".tmp-" + std::to_string(getpid());
    int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return Status::config("cannot write " + temp + " (does its folder exist, and may crmsync write there?)");
    std::string text = value + "\n";
    bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && fsync(fd) == 0;
    ok = ::close(fd) == 0 && ok;
    if (!ok || std::rename(temp.c_str(), path.c_str()) != 0) {
        ::unlink(temp.c_str());
        return Status::config("cannot write " + path);
    }
    int dir = ::open(std::filesystem::path(path).parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir >= 0) {
        fsync(dir);
        ::close(dir);
    }
    return Status::ok();
}

// What the browser brings back to the loopback listener.
struct Callback {
    std::mutex mutex;
    std::condition_variable arrived;
    bool done = false;
    std::string code, error;
};

}  // namespace

int connect(Context& ctx, const std::string& name, int port, int64_t timeout_s) {
    const ConnectionManifest* connection = ctx.catalog.manifests().connection(name);
    if (!connection) {
        std::string known;
        for (const auto& c : ctx.catalog.manifests().connections) known += (known.empty() ? "" : ", ") + c.name;
        std::fprintf(stderr, "crmsync connect: no connection \"%s\" (connections: %s)\n", name.c_str(),
                     known.empty() ? "none" : known.c_str());
        return kConfig;
    }
    auto instance = ctx.catalog.instantiate_connection(name);
    if (!instance) {
        std::fprintf(stderr, "crmsync connect: %s\n", instance.status().message().c_str());
        return kConfig;
    }
    // The credentials there are so far; the one this sign-in gives is missing, or stale.
    json::object known;
    for (const auto& ref : connection->credentials)
        if (auto value = resolve_credentials({ref})) known[ref.name] = value->at(ref.name);

    auto state = random_token(32), verifier = random_token(48);
    if (!state || !verifier) {
        std::fprintf(stderr, "crmsync connect: no random bytes from OpenSSL\n");
        return kConfig;
    }
    Callback callback;
    HttpListener listener(
        [&](const IncomingRequest& request) -> HttpAnswer {
            if (request.target.substr(0, request.target.find('?')) != "/callback")
                return {404, "text/plain", "crmsync connect waits on /callback only\n"};
            auto query = request.query();
            if (query["state"].size() != state->size() || CRYPTO_memcmp(query["state"].data(), state->data(), state->size()) != 0)
                return {400, "text/plain", "crmsync: this sign-in is not the one crmsync started (state differs); ignored\n"};
            std::lock_guard<std::mutex> lock(callback.mutex);
            if (callback.done) return {409, "text/plain", "crmsync: this sign-in was already answered\n"};
            callback.done = true;
            callback.code = query["code"];
            callback.error = query.count("error")
                                 ? query["error"] + (query.count("error_description") ? " (" + query["error_description"] + ")"
                                                                                      : std::string())
                                 : std::string();
            if (callback.code.empty() && callback.error.empty()) callback.error = "no code in the answer";
            callback.arrived.notify_all();
            return {200, "text/plain",
                    callback.error.empty() ? "crmsync: signed in. You can close this window.\n"
                                           : "crmsync: the sign-in was refused: " + callback.error + "\n"};
        },
        ListenerLimits{}, [](const std::string&) {});
    if (auto started = listener.start("127.0.0.1", port); !started) {
        std::fprintf(stderr, "crmsync connect: cannot listen on 127.0.0.1:%d: %s (choose another with --port)\n", port,
                     started.message().c_str());
        return kConfig;
    }
    const std::string redirect_uri = "http://localhost:" + std::to_string(listener.port()) + "/callback";

    std::string url;
    std::vector<std::string> gives;
    auto asked = instance.value()->fetch(json::object{{"type", "authorize_url"},
                                                      {"redirect_uri", redirect_uri},
                                                      {"state", *state},
                                                      {"code_challenge", sha256_base64url(*verifier)},
                                                      {"credentials", known}},
                                         [&](json::value&& item) -> int32_t {
                                             const auto& o = item.as_object();
                                             url = find_text(o, "url");
                                             if (auto* names = find_array(o, "credentials"))
                                                 for (const auto& n : *names) gives.emplace_back(n.as_string());
                                             return CRMSYNC_STATUS_OK;
                                         });
    if (asked.status == CRMSYNC_STATUS_NOT_SUPPORTED) {
        std::fprintf(stderr,
                     "crmsync connect: plugin %s does not sign in through a browser; see its README for its credentials\n",
                     connection->plugin.id.c_str());
        return kConfig;
    }
    if (!asked.ok() || url.empty()) {
        std::fprintf(stderr, "crmsync connect: %s\n", asked.message.c_str());
        return kConfig;
    }
    // Each secret the sign-in gives goes to the file its reference names; say so before the sign-in.
    std::map<std::string, std::string> files;
    for (const auto& credential : gives) {
        auto ref = std::find_if(connection->credentials.begin(), connection->credentials.end(),
                                [&](const CredentialRef& r) { return r.name == credential; });
        if (ref == connection->credentials.end() || ref->source != CredentialRef::Source::file) {
            std::fprintf(stderr,
                         "crmsync connect: %s: \"credentials.%s\" must be {\"file\": \"path\"} so that the signed-in %s can be "
                         "stored there\n",
                         connection->manifest_path.c_str(), credential.c_str(), credential.c_str());
            return kConfig;
        }
        files[credential] = ref->where;
    }
    std::printf("Open this address in a browser and sign in (as the integration user):\n\n  %s\n\n", url.c_str());
    std::printf("Waiting up to %lld s for the browser to come back to %s\n", static_cast<long long>(timeout_s),
                redirect_uri.c_str());
    std::printf("(on another machine: ssh -L %d:127.0.0.1:%d to this one first)\n", listener.port(), listener.port());
    std::fflush(stdout);

    std::unique_lock<std::mutex> lock(callback.mutex);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
    while (!callback.done && !ctx.cancel.load() && std::chrono::steady_clock::now() < deadline)
        callback.arrived.wait_for(lock, std::chrono::milliseconds(200));
    if (!callback.done) {
        std::fprintf(stderr, "crmsync connect: %s; nothing was stored\n",
                     ctx.cancel.load() ? "interrupted" : "no sign-in came back in time");
        return ctx.cancel.load() ? kInterrupted : kUnreachable;
    }
    const std::string code = callback.code, refused = callback.error;
    lock.unlock();
    listener.stop();
    if (!refused.empty()) {
        std::fprintf(stderr, "crmsync connect: the sign-in was refused: %s; nothing was stored\n", refused.c_str());
        return kConfig;
    }

    std::map<std::string, std::string> obtained;
    auto exchanged = instance.value()->fetch(json::object{{"type", "authorize_code"},
                                                          {"redirect_uri", redirect_uri},
                                                          {"code", code},
                                                          {"code_verifier", *verifier},
                                                          {"credentials", known}},
                                             [&](json::value&& item) -> int32_t {
                                                 const auto& o = item.as_object();
                                                 obtained[find_text(o, "name")] = find_text(o, "value");
                                                 return CRMSYNC_STATUS_OK;
                                             });
    if (!exchanged.ok()) {
        std::fprintf(stderr, "crmsync connect: %s; nothing was stored\n", exchanged.message.c_str());
        return exchanged.status == CRMSYNC_STATUS_RETRY ? kUnreachable : kConfig;
    }
    for (const auto& [credential, value] : obtained) {
        auto file = files.find(credential);
        if (file == files.end()) continue;  // not announced: not stored
        if (auto written = write_secret_file(file->second, value); !written) {
            std::fprintf(stderr, "crmsync connect: %s\n", written.message().c_str());
            return kConfig;
        }
        std::printf("stored the %s in %s (mode 0600)\n", credential.c_str(), file->second.c_str());
    }
    // Prove it: sign in with what is stored now, as every run will.
    auto all = resolve_credentials(connection->credentials);
    if (!all) {
        std::fprintf(stderr, "crmsync connect: %s\n", all.status().message().c_str());
        return kConfig;
    }
    instance.value()->services().set_secrets(*all);
    if (auto signed_in = instance.value()->authenticate(*all); !signed_in.ok()) {
        std::fprintf(stderr, "crmsync connect: the stored credentials do not sign in: %s\n", signed_in.message.c_str());
        return kUnreachable;
    }
    std::printf("connected: %s signs in\n", name.c_str());
    return kOk;
}

}  // namespace crmsync::cli
