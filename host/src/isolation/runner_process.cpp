#include "runner_process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <thread>

#include "instance.h"

extern char** environ;

namespace crmsync {
namespace {

using wire::Channel;
using wire::Entry;
using wire::Type;
using wire::Writer;

std::string signal_text(int sig) {
    switch (sig) {
        case SIGSEGV: return "SIGSEGV";
        case SIGABRT: return "SIGABRT";
        case SIGBUS: return "SIGBUS";
        case SIGFPE: return "SIGFPE";
        case SIGILL: return "SIGILL";
        case SIGKILL: return "SIGKILL";
        case SIGTERM: return "SIGTERM";
        case SIGTRAP: return "SIGTRAP";
        case SIGSYS: return "SIGSYS";
    }
    return "signal " + std::to_string(sig);
}

// How a child ended, waiting at most `grace` for it before killing it.
int reap(pid_t pid, std::chrono::milliseconds grace) {
    int status = 0;
    auto until = std::chrono::steady_clock::now() + grace;
    for (;;) {
        pid_t done = waitpid(pid, &status, WNOHANG);
        if (done == pid || (done < 0 && errno != EINTR)) return status;
        if (std::chrono::steady_clock::now() >= until) {
            kill(pid, SIGKILL);
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
            return status;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
}

// The environment for the runner: ours, and under AddressSanitizer (which cannot run with an
// address-space limit) an RSS limit that ASan itself enforces.
std::vector<std::string> runner_environment([[maybe_unused]] int64_t memory_mb) {
    std::vector<std::string> out;
    for (char** e = environ; e && *e; ++e) out.emplace_back(*e);
#if defined(__SANITIZE_ADDRESS__)
    std::string extra = "hard_rss_limit_mb=" + std::to_string(memory_mb);
    bool found = false;
    for (auto& v : out)
        if (v.starts_with("ASAN_OPTIONS=")) v += ":" + extra, found = true;
    if (!found) out.push_back("ASAN_OPTIONS=" + extra);
#endif
    return out;
}

}  // namespace

std::string RunnerProcess::runner_path() {
    if (const char* env = std::getenv("CRMSYNC_PLUGIN_RUNNER"); env && *env) return env;
    std::error_code ec;
    auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    return (exe.parent_path() / ".." / "lib" / "crmsync" / "crmsync-plugin-runner").lexically_normal().string();
}

Result<std::unique_ptr<RunnerProcess>> RunnerProcess::start(const std::string& plugin_id, int library_fd, const Isolation& limits,
                                                            int channels) {
    std::unique_ptr<RunnerProcess> self(new RunnerProcess(plugin_id, limits));
    std::string runner = runner_path();
    if (access(runner.c_str(), X_OK) != 0)
        return Status::config("cannot run plugin " + plugin_id + " isolated: the runner " + runner +
                              " is missing (reinstall crmsync, or set CRMSYNC_PLUGIN_RUNNER)");
    // The child's ends go to fds 3.. in the child. Take them far from those numbers first, so
    // that no dup2 overwrites an end another one still reads from.
    std::vector<int> child_ends;
    auto close_all = [&] {
        for (int fd : child_ends) ::close(fd);
    };
    for (int i = 0; i < channels; ++i) {
        int pair[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
            close_all();
            return Status::io("cannot make a channel to plugin " + plugin_id + "'s runner: " + std::strerror(errno));
        }
        self->channels_.push_back(std::make_unique<Channel>(pair[0]));
        int far = fcntl(pair[1], F_DUPFD_CLOEXEC, 100);
        ::close(pair[1]);
        child_ends.push_back(far);
    }
    int far_library = fcntl(library_fd, F_DUPFD_CLOEXEC, 100);
    child_ends.push_back(far_library);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    for (size_t i = 0; i < child_ends.size(); ++i)
        posix_spawn_file_actions_adddup2(&actions, child_ends[i], static_cast<int>(3 + i));
    std::string channels_text = std::to_string(channels), memory_text = std::to_string(limits.memory_mb);
    std::vector<const char*> argv{runner.c_str(),      "--channels", channels_text.c_str(),      "--memory-mb",
                                  memory_text.c_str(), "--sandbox",  limits.sandbox ? "1" : "0", nullptr};
    auto env = runner_environment(limits.memory_mb);
    std::vector<char*> envp;
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    pid_t pid = -1;
    int spawned = posix_spawn(&pid, runner.c_str(), &actions, nullptr, const_cast<char* const*>(argv.data()), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    close_all();
    if (spawned != 0)
        return Status::io("cannot start plugin " + plugin_id + "'s runner " + runner + ": " + std::strerror(spawned));
    self->pid_ = pid;
    for (auto& c : self->channels_) self->free_.push_back(c.get());

    Type type;
    std::string payload;
    auto got = self->channels_[0]->read(type, payload, static_cast<int>(std::min<int64_t>(limits.timeout_seconds, 60) * 1000));
    if (got != Channel::Got::frame || (type != Type::hello && type != Type::refused)) {
        auto gone = self->bury(Entry::create, got == Channel::Got::timeout ? "timeout" : "");
        return Status::config(gone.fail_message + " while being loaded");
    }
    wire::Reader r(payload);
    if (type == Type::refused) {
        std::string why(r.str());
        self->bury(Entry::create, "");
        return Status::config("plugin " + plugin_id + " cannot run isolated: " + why.substr(0, 2000));
    }
    PluginFacts& f = self->facts_;
    f.abi_minor = r.u32();
    f.capabilities = r.u32();
    f.entries = r.u32();
    f.id = r.str();
    f.version = r.str();
    f.description = r.str();
    f.config_schema = r.str();
    if (!r.ok()) {
        auto gone = self->bury(Entry::create, "a malformed message");
        return Status::config(gone.fail_message + " while being loaded");
    }
    return self;
}

RunnerProcess::~RunnerProcess() {
    if (pid_ < 0) return;
    bool alive;
    {
        std::lock_guard lock(mutex_);
        alive = !dead_;
    }
    if (alive && !channels_.empty()) channels_[0]->send(Writer(Type::destroy).frame());
    channels_.clear();  // closing every channel tells a runner that ignores destroy to go
    reap(pid_, std::chrono::milliseconds(alive ? 2000 : 0));
}

Channel* RunnerProcess::take_channel() {
    std::unique_lock lock(mutex_);
    free_cv_.wait(lock, [&] { return !free_.empty() || dead_; });
    if (dead_) return nullptr;
    Channel* c = free_.back();
    free_.pop_back();
    return c;
}

void RunnerProcess::give_back(Channel* channel) {
    {
        std::lock_guard lock(mutex_);
        free_.push_back(channel);
    }
    free_cv_.notify_one();
}

RemoteResult RunnerProcess::bury(Entry entry, const std::string& what) {
    std::lock_guard lock(mutex_);
    if (!dead_) {
        dead_ = true;
        bool hung = what == "timeout";
        int status = reap(pid_, std::chrono::milliseconds(hung || !what.empty() ? 0 : 1000));
        pid_ = -1;
        std::string how;
        if (out_of_memory_) how = "ran out of memory (its limit is " + std::to_string(limits_.memory_mb) + " MiB)";
        else if (hung) how = "did not answer for " + std::to_string(limits_.timeout_seconds) + " s (hung?) and was stopped";
        else if (!what.empty()) how = "sent " + what + " and was stopped";
        else if (WIFSIGNALED(status)) how = "crashed (" + signal_text(WTERMSIG(status)) + ")";
        else if (WIFEXITED(status)) how = "exited (status " + std::to_string(WEXITSTATUS(status)) + ")";
        else how = "ended";
        death_ = "plugin " + plugin_id_ + " " + how + " in " + wire::entry_name(entry);
    }
    free_cv_.notify_all();
    return {CRMSYNC_STATUS_ERROR, death_, true};
}

RemoteResult RunnerProcess::invoke(Entry entry, const std::string& argument, crmsync_call& call) {
    return invoke_all(entry, {&argument}, {&call}).front();
}

std::vector<RemoteResult> RunnerProcess::invoke_all(Entry entry, const std::vector<const std::string*>& arguments,
                                                    const std::vector<crmsync_call*>& calls) {
    // Calls go ahead of their answers up to this many, and this many bytes: well inside a
    // socket's buffer, which counts each frame's kernel overhead (about a KiB) besides its
    // bytes. So the host never blocks sending while the runner blocks sending to it.
    constexpr size_t kAheadCalls = 32;
    constexpr size_t kAheadBytes = 64u << 10;
    std::vector<RemoteResult> results(arguments.size());
    Channel* channel = take_channel();
    size_t sent = 0, done = 0, ahead = 0;
    const uint32_t first_id = next_id_.fetch_add(static_cast<uint32_t>(arguments.size()));
    while (channel && done < arguments.size()) {
        while (sent < arguments.size() &&
               (sent == done || (sent - done < kAheadCalls && ahead + arguments[sent]->size() < kAheadBytes))) {
            Writer w(entry == Entry::create ? Type::create : Type::call);
            w.u32(first_id + static_cast<uint32_t>(sent));
            if (entry != Entry::create) w.u32(static_cast<uint32_t>(entry));
            if (!channel->send(w.str(*arguments[sent]).frame())) break;
            ahead += arguments[sent++]->size();
        }
        if (sent == done) {
            results[done] = bury(entry, "");
            break;
        }
        results[done] = await_done(*channel, entry, first_id + static_cast<uint32_t>(done), *calls[done]);
        ahead -= arguments[done]->size();
        if (results[done++].died) break;
    }
    if (!channel || done < arguments.size()) {
        std::lock_guard lock(mutex_);
        for (size_t i = done; i < arguments.size(); ++i) results[i] = {CRMSYNC_STATUS_ERROR, death_, true};
    } else {
        give_back(channel);
    }
    return results;
}

RemoteResult RunnerProcess::await_done(Channel& channel, Entry entry, uint32_t id, crmsync_call& call) {
    const crmsync_host_api* api = host_api();
    const int timeout_ms = static_cast<int>(std::min<int64_t>(limits_.timeout_seconds, 86400) * 1000);
    int32_t last_refusal = CRMSYNC_STATUS_OK;
    Type type;
    std::string payload;
    for (;;) {
        auto got = channel.read(type, payload, timeout_ms);
        if (got == Channel::Got::timeout) return bury(entry, "timeout");
        if (got == Channel::Got::closed) return bury(entry, "");
        if (got == Channel::Got::broken) return bury(entry, "a malformed message");
        wire::Reader r(payload);
        bool replied = true;
        switch (type) {
            case Type::log: {
                auto level = static_cast<int32_t>(r.u32());
                std::string message(r.str());
                if (r.ok()) api->log(&call, level, message.c_str());
                break;
            }
            case Type::emit: {
                std::string_view text = r.str();
                if (!r.ok()) break;
                int32_t status = api->emit(&call, text.data(), text.size());
                if (status != CRMSYNC_STATUS_OK && status != last_refusal)
                    replied = channel.send(Writer(Type::emit_refused).u32(id).u32(static_cast<uint32_t>(status)).frame());
                if (status != CRMSYNC_STATUS_OK) last_refusal = status;
                break;
            }
            case Type::http: {
                std::string method(r.str()), url(r.str());
                uint32_t header_count = std::min<uint32_t>(r.u32(), 1000);
                std::vector<std::string> headers;
                for (uint32_t i = 0; i < header_count && r.ok(); ++i) headers.emplace_back(r.str());
                std::string_view body = r.str();
                crmsync_http_request request;
                std::memset(&request, 0, sizeof request);
                request.struct_size = sizeof request;
                request.timeout_ms = r.u32();
                request.idempotent = r.u32();
                if (!r.ok()) break;
                std::vector<const char*> header_pointers;
                for (const auto& h : headers) header_pointers.push_back(h.c_str());
                request.method = method.c_str();
                request.url = url.c_str();
                request.headers = header_pointers.data();
                request.header_count = static_cast<uint32_t>(header_pointers.size());
                request.body = body.data();
                request.body_size = body.size();
                crmsync_http_response response;
                std::memset(&response, 0, sizeof response);
                response.struct_size = sizeof response;
                // The host side of a remote call keeps no fail() of its own (the runner's is the
                // call's): what http() tells fail() goes back with the answer.
                call.fail_message.clear();
                int32_t rc = api->http(&call, &request, &response);
                const std::string& failure = call.fail_message;
                replied = channel.send(Writer(Type::http_reply)
                                           .u32(static_cast<uint32_t>(rc))
                                           .u32(static_cast<uint32_t>(response.status))
                                           .str(response.headers ? response.headers : "")
                                           .str(std::string_view(response.body ? response.body : "", response.body_size))
                                           .str(failure)
                                           .frame());
                break;
            }
            case Type::secret: {
                std::string name(r.str());
                const char* value = r.ok() ? api->secret(&call, name.c_str()) : nullptr;
                replied = channel.send(Writer(Type::secret_reply).u32(value ? 1 : 0).str(value ? value : "").frame());
                break;
            }
            case Type::now: replied = channel.send(Writer(Type::now_reply).i64(api->now_ms(&call)).frame()); break;
            case Type::cancelled:
                replied = channel.send(Writer(Type::cancelled_reply).u32(static_cast<uint32_t>(api->cancelled(&call))).frame());
                break;
            case Type::api_usage: {
                int64_t used = r.i64(), limit = r.i64();
                if (r.ok()) api->api_usage(&call, used, limit);
                break;
            }
            case Type::out_of_memory: {
                std::lock_guard lock(mutex_);
                out_of_memory_ = true;
                break;
            }
            case Type::done: {
                RemoteResult result;
                if (r.u32() != id) return bury(entry, "the answer to another call");
                result.status = static_cast<int32_t>(r.u32());
                result.fail_message = r.str();
                if (!r.ok()) return bury(entry, "a malformed message");
                bool oom;
                {
                    std::lock_guard lock(mutex_);
                    oom = out_of_memory_;
                }
                // A plugin that caught its bad_alloc may still answer: its heap is suspect, so
                // the runner goes all the same.
                if (oom) return bury(entry, "out of memory");
                return result;
            }
            default: return bury(entry, "a message of unknown type " + std::to_string(static_cast<int>(type)));
        }
        if (!r.ok()) return bury(entry, "a malformed message");
        if (!replied) return bury(entry, "");
    }
}

}  // namespace crmsync
