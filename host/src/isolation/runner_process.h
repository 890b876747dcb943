#pragma once
// RunnerProcess: the host's side of one isolated plugin instance. It starts
// crmsync-plugin-runner with the verified library and a few channels, reads what the plugin
// is (`hello`), and runs each entry point there, serving the plugin's host-service requests
// through the very host services table an in-process call gets. A crash, an abort, a hang
// (no word from the plugin for `timeout_seconds`), a memory limit hit or a broken frame
// ends the runner: that call and every later one fail with one message saying what
// happened and where ("plugin cs-timeline crashed (SIGSEGV) in map").
// Thread-safety: calls may come from several threads at once (one channel each).
#include <crmsync/plugin.h>
#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "manifest.h"
#include "status.h"
#include "wire.h"

namespace crmsync {

// What a plugin says about itself in its descriptor, read in-process or from a runner.
struct PluginFacts {
    std::string id, version, description, config_schema;
    uint32_t capabilities = 0;
    uint32_t abi_minor = 0;
    uint32_t entries = 0;  // wire::Entry bits
    bool has(wire::Entry e) const { return (entries & static_cast<uint32_t>(e)) != 0; }
};

// What a remote call came to: the entry point's status and fail()'s message, or the runner's end.
struct RemoteResult {
    int32_t status = CRMSYNC_STATUS_OK;
    std::string fail_message;
    bool died = false;  // the runner is gone; fail_message says why
};

class RunnerProcess {
public:
    // Starts a runner for the sealed library at `library_fd` with `channels` channels (the
    // most calls that may run at once) and waits for its hello.
    static Result<std::unique_ptr<RunnerProcess>> start(const std::string& plugin_id, int library_fd, const Isolation& limits,
                                                        int channels);
    ~RunnerProcess();
    RunnerProcess(const RunnerProcess&) = delete;
    RunnerProcess& operator=(const RunnerProcess&) = delete;

    const PluginFacts& facts() const { return facts_; }
    // Runs `entry` on `argument` (create: the config) in the runner; the plugin's host
    // requests go to the host services table with `call`.
    RemoteResult invoke(wire::Entry entry, const std::string& argument, crmsync_call& call);
    // Runs `entry` once per argument, in order, each with its own call: sent ahead on one
    // channel, so a runner of many short calls (map) does not wait for each round trip.
    // Once the runner is gone, the rest answer died.
    std::vector<RemoteResult> invoke_all(wire::Entry entry, const std::vector<const std::string*>& arguments,
                                         const std::vector<crmsync_call*>& calls);
    // Where the runner executable is: $CRMSYNC_PLUGIN_RUNNER, else
    // <this executable's folder>/../lib/crmsync/crmsync-plugin-runner.
    static std::string runner_path();

private:
    RunnerProcess(std::string plugin_id, const Isolation& limits) : plugin_id_(std::move(plugin_id)), limits_(limits) {}
    // Serves the frames of call `id` (already sent) until its `done`.
    RemoteResult await_done(wire::Channel& channel, wire::Entry entry, uint32_t id, crmsync_call& call);
    // Ends the runner (if it still runs) and turns how it ended into the message every
    // call now gets. `what` says what the host saw ("" when the channel just closed).
    RemoteResult bury(wire::Entry entry, const std::string& what);
    wire::Channel* take_channel();
    void give_back(wire::Channel* channel);

    std::string plugin_id_;
    Isolation limits_;
    pid_t pid_ = -1;
    PluginFacts facts_;
    std::mutex mutex_;
    std::condition_variable free_cv_;
    std::vector<std::unique_ptr<wire::Channel>> channels_;
    std::vector<wire::Channel*> free_;
    bool dead_ = false;
    bool out_of_memory_ = false;
    std::atomic<uint32_t> next_id_{1};
    std::string death_;  // why it is dead
};

}  // namespace crmsync
