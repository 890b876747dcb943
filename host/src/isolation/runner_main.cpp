// crmsync-plugin-runner: the process an isolated plugin ("isolation": "process") runs in.
// The host starts it with the channels (socketpair ends) on fds 3 .. 3+N-1 and the verified,
// sealed library on fd 3+N: what runs here is the very bytes the host checked. It caps its
// own address space, opens the library, negotiates, tells the host what the plugin is
// (`hello`), and then serves each channel on a thread of its own: every host service the
// plugin calls becomes a frame to the host. It knows nothing of the host's internals; the
// host trusts nothing it says (every reply is checked there as an in-process plugin's would
// be). It exits when the host says `destroy`, closes a channel, or dies.
#include <crmsync/plugin.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <boost/dll/shared_library.hpp>
#include <cstdlib>
#include <deque>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "abi_exchange.h"
#include "wire.h"

namespace {

using crmsync::wire::Channel;
using crmsync::wire::Entry;
using crmsync::wire::Type;
using crmsync::wire::Writer;

const crmsync_plugin* g_plugin = nullptr;
crmsync_instance* g_instance = nullptr;
std::mutex g_instance_mutex;  // create and destroy happen once each, on any channel
int64_t g_memory_mb = 0;
thread_local int t_channel_fd = -1;  // the channel of the call this thread runs

}  // namespace

// One channel as this runner serves it: calls the host sent ahead wait in `pending` while
// the one running waits for a reply.
struct Line {
    Channel channel;
    std::deque<std::pair<Type, std::string>> pending;
};

// The per-invocation context behind the opaque crmsync_call, runner side.
struct crmsync_call {
    Line* line = nullptr;
    uint32_t id = 0;
    std::string fail_message;             // fail()'s; its status is what the entry point returns
    int32_t refused = CRMSYNC_STATUS_OK;  // the last status the host gave an emitted item
    std::vector<std::unique_ptr<std::string>> kept;
    std::chrono::steady_clock::time_point flushed = std::chrono::steady_clock::now();
    Channel& channel() { return line->channel; }
};

namespace {

// Takes a frame that is not the reply being waited for: a refusal of one of this call's
// items, or a call sent ahead (kept for later). Anything else breaks the protocol, and the
// runner leaves: nothing sensible is left to do.
void aside(crmsync_call* call, Type type, std::string&& payload) {
    if (type == Type::emit_refused) {
        crmsync::wire::Reader r(payload);
        uint32_t id = r.u32();
        auto status = static_cast<int32_t>(r.u32());
        if (id == call->id) call->refused = status;
    } else if (type == Type::call || type == Type::create || type == Type::destroy) {
        call->line->pending.emplace_back(type, std::move(payload));
    } else {
        _exit(0);
    }
}

// Sends `request` (and what is queued before it) and waits for its reply of type `want`:
// the reply's payload. When the host is gone the call cannot go on, so the runner leaves.
std::string ask(crmsync_call* call, const std::string& request, Type want) {
    call->channel().send(request, true);
    if (!call->channel().flush()) _exit(0);
    call->flushed = std::chrono::steady_clock::now();
    Type type;
    std::string payload;
    for (;;) {
        if (call->channel().read(type, payload, -1) != Channel::Got::frame) _exit(0);
        if (type == want) return payload;
        aside(call, type, std::move(payload));
    }
}

void note_refusals(crmsync_call* call) {
    Type type;
    std::string payload;
    // A frame that has begun to arrive is read whole: the host sends each at once.
    while (call->channel().readable_now()) {
        if (call->channel().read(type, payload, -1) != Channel::Got::frame) _exit(0);
        aside(call, type, std::move(payload));
    }
}

void r_log(crmsync_call* call, int32_t level, const char* message) noexcept {
    try {
        if (!call || !message) return;
        call->channel().send(Writer(Type::log).u32(static_cast<uint32_t>(level)).str(message).frame(), true);
    } catch (...) {}
}

void r_fail(crmsync_call* call, int32_t, const char* message) noexcept {
    try {
        if (!call) return;
        call->fail_message = message ? message : "";
    } catch (...) {}
}

// Emitted items are queued, not answered one by one: a refusal (the host's emit() said
// ERROR or CANCELLED) comes back asynchronously and is returned from a later emit(). The
// host decides the call's outcome from what it saw, so nothing depends on the lag.
int32_t r_emit(crmsync_call* call, const char* json, size_t size) noexcept {
    try {
        if (!call || !json) return CRMSYNC_STATUS_ERROR;
        call->channel().send(Writer(Type::emit).str(std::string_view(json, size)).frame(), true);
        auto now = std::chrono::steady_clock::now();
        if (call->channel().queued() > (256u << 10) || now - call->flushed > std::chrono::milliseconds(200)) {
            if (!call->channel().flush()) _exit(0);
            call->flushed = now;
            note_refusals(call);
        }
        return call->refused;
    } catch (...) {
        return CRMSYNC_STATUS_ERROR;
    }
}

int32_t r_http(crmsync_call* call, const crmsync_http_request* request, crmsync_http_response* response) noexcept {
    try {
        if (!call || !request || !response) return CRMSYNC_STATUS_ERROR;
        crmsync_http_request req = crmsync::abi::sized_copy(request);
        Writer w(Type::http);
        w.str(req.method ? req.method : "").str(req.url ? req.url : "");
        w.u32(req.headers ? req.header_count : 0);
        for (uint32_t i = 0; req.headers && i < req.header_count; ++i) w.str(req.headers[i] ? req.headers[i] : "");
        w.str(req.body ? std::string_view(req.body, req.body_size) : std::string_view());
        w.u32(req.timeout_ms).u32(req.idempotent);
        std::string payload = ask(call, w.frame(), Type::http_reply);
        crmsync::wire::Reader r(payload);
        auto rc = static_cast<int32_t>(r.u32());
        auto status = static_cast<int32_t>(r.u32());
        auto* headers = call->kept.emplace_back(std::make_unique<std::string>(r.str())).get();
        auto* body = call->kept.emplace_back(std::make_unique<std::string>(r.str())).get();
        std::string_view failure = r.str();
        if (!failure.empty()) call->fail_message = failure;
        crmsync::abi::fill_http_response(response, status, rc == CRMSYNC_STATUS_OK ? body : nullptr, headers);
        return rc;
    } catch (...) {
        return CRMSYNC_STATUS_ERROR;
    }
}

const char* r_secret(crmsync_call* call, const char* name) noexcept {
    try {
        if (!call || !name) return nullptr;
        std::string payload = ask(call, Writer(Type::secret).str(name).frame(), Type::secret_reply);
        crmsync::wire::Reader r(payload);
        bool present = r.u32() != 0;
        std::string_view value = r.str();
        if (!present) return nullptr;
        return call->kept.emplace_back(std::make_unique<std::string>(value))->c_str();
    } catch (...) {
        return nullptr;
    }
}

int64_t r_now_ms(crmsync_call* call) noexcept {
    try {
        if (!call) return 0;
        return crmsync::wire::Reader(ask(call, Writer(Type::now).frame(), Type::now_reply)).i64();
    } catch (...) {
        return 0;
    }
}

int32_t r_cancelled(crmsync_call* call) noexcept {
    try {
        if (!call) return 0;
        std::string payload = ask(call, Writer(Type::cancelled).frame(), Type::cancelled_reply);
        return static_cast<int32_t>(crmsync::wire::Reader(payload).u32());
    } catch (...) {
        return 0;
    }
}

void r_api_usage(crmsync_call* call, int64_t used, int64_t limit) noexcept {
    try {
        if (call) call->channel().send(Writer(Type::api_usage).i64(used).i64(limit).frame(), true);
    } catch (...) {}
}

const crmsync_host_api kRunnerApi = {
    sizeof(crmsync_host_api),
    CRMSYNC_ABI_MAJOR,
    CRMSYNC_ABI_MINOR,
    r_log,
    r_fail,
    r_emit,
    r_http,
    r_secret,
    r_now_ms,
    r_cancelled,
    r_api_usage,
};

// The plugin asked for memory past the runner's limit: tell the host (with no allocation),
// then let operator new throw as it would have.
void on_out_of_memory() {
    static char frame[5] = {1, 0, 0, 0, static_cast<char>(Type::out_of_memory)};
    if (t_channel_fd >= 0) (void)!::write(t_channel_fd, frame, sizeof frame);
    std::set_new_handler(nullptr);
    throw std::bad_alloc();
}

void finish(crmsync_call& call, int32_t status) {
    call.channel().send(Writer(Type::done).u32(call.id).u32(static_cast<uint32_t>(status)).str(call.fail_message).frame());
}

// The next call for this line: one the host sent ahead, or the next frame. False when the
// host closed the channel or is gone.
bool next_call(Line& line, Type& type, std::string& payload) {
    if (line.pending.empty()) return line.channel.read(type, payload, -1) == Channel::Got::frame;
    type = line.pending.front().first;
    payload = std::move(line.pending.front().second);
    line.pending.pop_front();
    return true;
}

// Serves one channel until the host closes it or says destroy.
void serve(Line* line) {
    t_channel_fd = line->channel.fd();
    Type type;
    std::string payload;
    while (next_call(*line, type, payload)) {
        // A refusal of an item of a call that has ended came too late to matter.
        if (type == Type::emit_refused) continue;
        std::set_new_handler(on_out_of_memory);
        crmsync_call call;
        call.line = line;
        crmsync::wire::Reader r(payload);
        call.id = r.u32();
        if (type == Type::create) {
            std::lock_guard lock(g_instance_mutex);
            std::string config(r.str());
            if (!g_instance) g_instance = g_plugin->create(&kRunnerApi, &call, config.c_str());
            finish(call, g_instance ? CRMSYNC_STATUS_OK : CRMSYNC_STATUS_ERROR);
        } else if (type == Type::call) {
            auto entry = static_cast<Entry>(r.u32());
            std::string argument(r.str());
            auto fn = crmsync::abi::entry_function(*g_plugin, entry);
            finish(call, fn && g_instance ? fn(g_instance, &call, argument.c_str()) : CRMSYNC_STATUS_NOT_SUPPORTED);
        } else if (type == Type::destroy) {
            std::lock_guard lock(g_instance_mutex);
            if (g_instance && g_plugin->destroy) g_plugin->destroy(std::exchange(g_instance, nullptr));
            _exit(0);
        } else {
            _exit(0);
        }
    }
    _exit(0);  // the host closed the channel or is gone
}

// The seccomp filter of "sandbox": true. Everything is allowed but what an integration plugin
// has no need of and a hostile one would want: a network socket of its own (its HTTP goes
// through the host, which accounts and bounds it), starting a program, and reading or
// writing another process's memory. Each such call fails with EACCES/EPERM, which the
// plugin sees as any refused call. Returns why it could not be set up, or "".
std::string enter_sandbox() {
    scmp_filter_ctx filter = seccomp_init(SCMP_ACT_ALLOW);
    if (!filter) return "seccomp_init failed";
    int rc = 0;
    for (int domain : {AF_INET, AF_INET6, AF_PACKET})
        if (rc == 0)
            rc = seccomp_rule_add(filter, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(socket), 1,
                                  SCMP_A0(SCMP_CMP_EQ, static_cast<scmp_datum_t>(domain)));
    for (int call : {SCMP_SYS(execve), SCMP_SYS(execveat)})
        if (rc == 0) rc = seccomp_rule_add(filter, SCMP_ACT_ERRNO(EACCES), call, 0);
    std::vector<int> other_processes{SCMP_SYS(process_vm_readv), SCMP_SYS(process_vm_writev)};
#if !defined(__SANITIZE_ADDRESS__)
    other_processes.push_back(SCMP_SYS(ptrace));  // (LeakSanitizer stops threads with ptrace)
#endif
    for (int call : other_processes)
        if (rc == 0) rc = seccomp_rule_add(filter, SCMP_ACT_ERRNO(EPERM), call, 0);
    if (rc == 0) rc = seccomp_load(filter);  // sets no_new_privs first
    seccomp_release(filter);
    return rc == 0 ? "" : std::string("seccomp: ") + std::strerror(-rc);
}

void refuse(Channel& channel, const std::string& why) {
    channel.send(Writer(Type::refused).str(why).frame());
    _exit(1);
}

}  // namespace

int main(int argc, char** argv) {
    // Leave with the host: a runner must never outlive the process that started it. (The
    // signal comes when the *thread* that started it ends: instances are made on threads that
    // live as long as their runs — the run's, serve's loop.)
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1) return 1;
    int channels = 0;
    bool sandboxed = false;
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string_view flag = argv[i];
        if (flag == "--channels") channels = std::atoi(argv[i + 1]);
        else if (flag == "--memory-mb") g_memory_mb = std::atoll(argv[i + 1]);
        else if (flag == "--sandbox") sandboxed = std::string_view(argv[i + 1]) == "1";
    }
    if (channels < 1 || channels > 64) {
        std::fprintf(stderr, "crmsync-plugin-runner is started by crmsync for an isolated plugin, not by hand\n");
        return 2;
    }
    std::vector<Line> lines(static_cast<size_t>(channels));
    for (int i = 0; i < channels; ++i) lines[static_cast<size_t>(i)].channel = Channel(3 + i);
    Channel& first = lines[0].channel;
    int library_fd = 3 + channels;
#if !defined(__SANITIZE_ADDRESS__)
    // AddressSanitizer reserves terabytes of address space; such builds bound memory by RSS
    // instead (the host passes hard_rss_limit_mb in ASAN_OPTIONS).
    if (g_memory_mb > 0) {
        rlimit limit{static_cast<rlim_t>(g_memory_mb) << 20, static_cast<rlim_t>(g_memory_mb) << 20};
        setrlimit(RLIMIT_AS, &limit);
    }
#endif
    // Before the plugin's first instruction (its static constructors run when it is opened).
    if (sandboxed)
        if (std::string why = enter_sandbox(); !why.empty()) refuse(first, "the sandbox could not be set up: " + why);
    boost::dll::shared_library library;
    try {
        library.load("/proc/self/fd/" + std::to_string(library_fd),
                     boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
    } catch (const std::exception& e) {
        refuse(first, std::string("the library cannot be opened: ") + e.what());
    }
    if (!library.has(CRMSYNC_ENTRY_SYMBOL)) refuse(first, std::string("the library does not export ") + CRMSYNC_ENTRY_SYMBOL);
    auto negotiate = library.get<int32_t(crmsync_negotiation*)>(CRMSYNC_ENTRY_SYMBOL);
    int32_t rc = 0;
    crmsync_negotiation n = crmsync::abi::negotiate(negotiate, &kRunnerApi, rc);
    if (rc != CRMSYNC_STATUS_OK || !n.plugin || n.plugin_abi_major != CRMSYNC_ABI_MAJOR ||
        n.plugin->struct_size < offsetof(crmsync_plugin, write) + sizeof(n.plugin->write))
        refuse(first, "crmsync_negotiate refused this host (status " + std::to_string(rc) + ", plugin ABI " +
                          std::to_string(n.plugin_abi_major) + "." + std::to_string(n.plugin_abi_minor) + ")");
    static crmsync_plugin descriptor = crmsync::abi::sized_copy(n.plugin);
    g_plugin = &descriptor;
    auto text = [](const char* s) { return std::string_view(s ? s : ""); };
    first.send(Writer(Type::hello)
                   .u32(n.plugin_abi_minor)
                   .u32(descriptor.capabilities)
                   .u32(crmsync::abi::entry_points(descriptor))
                   .str(text(descriptor.id))
                   .str(text(descriptor.version))
                   .str(text(descriptor.description))
                   .str(text(descriptor.config_schema))
                   .frame());
    for (size_t i = 1; i < lines.size(); ++i) std::thread(serve, &lines[i]).detach();
    serve(&lines[0]);
}
