#pragma once
// crmsync serve: runs every enabled module on its schedule and takes realtime events by
// webhook. One worker thread runs modules (one at a time, each under its lease, so a
// `crmsync run` elsewhere never runs a module twice). Several serve processes may share one
// PostgreSQL store: each slot runs once (claimed under the lease), any of them takes
// webhooks and any drains them, and a run a dead worker left is taken up at once; the HTTP listener's I/O threads answer
// POST /hooks/MODULE, GET /healthz and GET /metrics, slow clients or not. An accepted event is committed to the
// inbox (fsync'd) before the 202 goes out, then drained through map → services → write.
// SIGHUP (the `reload` flag) reads the manifests and plugins again between runs: accepted
// events wait in the inbox meanwhile, and requests in flight finish on the catalog they began with.
#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <string>

#include "../catalog.h"
#include "../pipeline.h"
#include "http_listener.h"

namespace crmsync {

struct ServeOptions {
    std::string host = "127.0.0.1";
    int port = 8787;      // 0: any free port (printed)
    ListenerLimits http;  // body size, deadlines, connection bounds
    int64_t replay_window_ms = 5 * 60 * 1000;
    int64_t tick_ms = 1000;  // how often schedules are looked at
    // A module whose due run has not started this long after it is due is "overdue" in /healthz.
    int64_t overdue_after_ms = 15 * 60 * 1000;
};

// Reads the manifests and discovers the plugins afresh (on SIGHUP).
using CatalogFactory = std::function<std::shared_ptr<Catalog>()>;

class Server {
public:
    // `catalog` is the one to start with (it must outlive the server); `reload_catalog` makes
    // the next when `reload` is set.
    Server(Catalog& catalog, CatalogFactory reload_catalog, const Clock& clock, std::atomic<bool>& stop,
           std::atomic<bool>& reload, const Diagnostics& diagnostics, ServeOptions options);
    ~Server();
    // Binds the listener and logs every module with its schedule and each problem found;
    // an address in use or not ours is a configuration error.
    Status start();
    int port() const { return port_; }
    // Runs schedules and drains the inbox until `stop` is set, then stops taking webhooks,
    // lets the batch in hand finish, and returns.
    void run();

private:
    // The catalog in force; a reload swaps it, and whoever holds the old one finishes with it.
    std::shared_ptr<Catalog> catalog() const;
    void reload_catalog();
    // One line per module (schedule, webhook) and a warning per problem.
    void announce(Catalog& catalog);
    HttpAnswer answer(const IncomingRequest& request);
    HttpAnswer handle_hook(const std::string& module, const IncomingRequest& request);
    std::string metrics();
    HttpAnswer health(bool strict);
    // A scheduled run passes the last start its slot was reckoned from, and whether it takes
    // up a run left unfinished rather than a slot that fell due (RunOptions::claim_after_start,
    // take_up).
    void run_module(Catalog& catalog, const ModuleManifest& module, const std::string& trigger, bool inbox, StateStore& store,
                    std::optional<int64_t> claim_after_start = std::nullopt, bool take_up = false);
    void reject(const std::string& reason);

    mutable std::mutex catalog_mutex_;
    std::shared_ptr<Catalog> catalog_;
    CatalogFactory make_catalog_;
    const Clock& clock_;
    std::atomic<bool>& stop_;
    std::atomic<bool>& reload_;
    const Diagnostics& diagnostics_;
    ServeOptions options_;
    std::unique_ptr<HttpListener> http_;
    int port_ = 0;

    std::mutex store_mutex_;  // guards web_store_ (HTTP threads share it)
    std::unique_ptr<StateStore> web_store_;

    std::mutex wake_mutex_;
    std::condition_variable wake_;
    bool work_waiting_ = false;

    std::mutex metrics_mutex_;
    std::map<std::string, int64_t> rejects_;                        // reason -> count
    std::map<std::string, std::vector<int64_t>> duration_buckets_;  // module -> cumulative bucket counts
    std::map<std::string, double> duration_sum_;
    std::map<std::string, std::pair<int64_t, int64_t>> api_budget_;  // connection -> (used, limit)
    std::set<std::string> broken_modules_;
    // A module whose webhook drain failed or stopped (CRM away, budget under the reserve)
    // drains again after a wait (5 s, doubling to 5 min) instead of every tick; its events wait
    // in the inbox. Guarded by metrics_mutex_ (/healthz shows it).
    struct DrainWait {
        int64_t until_ms = 0;
        int64_t wait_ms = 0;
    };
    std::map<std::string, DrainWait> drain_waits_;
    bool may_drain(const std::string& module);
    void after_drain(const std::string& module, const RunReport& report);
    // Each CRM connection's plugin instance, kept from run to run so that it signs in once
    // and keeps its caches, until the manifests are read again or a run ends failed or
    // unreachable (the next run then starts with a fresh one). Only the run loop uses it.
    std::map<std::string, std::unique_ptr<PluginInstance>> connections_;
};

}  // namespace crmsync
