#include "server.h"

#include <openssl/crypto.h>

#include <charconv>
#include <chrono>
#include <regex>
#include <set>
#include <utility>

#include "../digest.h"
#include "../notify.h"
#include "../process.h"
#include "schedule.h"

namespace crmsync {
namespace {

const double kDurationBuckets[] = {0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600};

bool is_loopback(const std::string& host) { return host == "127.0.0.1" || host == "localhost" || host == "::1"; }

// A run left "running" by a worker that died (its lease expired, released, or held by a
// process gone from this machine) is taken up now, not at the module's next slot. So is one
// left "interrupted": the worker taking it up died too, after marking it and before its own
// run began, so the slot has not completed.
bool abandoned_run(StateStore& store, const std::string& module, const std::string& last_status, int64_t now_ms) {
    if (last_status != "running" && last_status != "interrupted") return false;
    auto lease = store.lease(module);
    if (!lease) return false;  // the store cannot say now: the next tick asks again
    return !*lease || (*lease)->expires_ms <= now_ms || !holder_may_be_alive((*lease)->holder);
}

std::string label(const std::string& value) {
    std::string out;
    for (char c : value) {
        if (c == '\\' || c == '"') out += '\\';
        if (c == '\n') {
            out += "\\n";
            continue;
        }
        out += c;
    }
    return out;
}

}  // namespace

Server::Server(Catalog& catalog, CatalogFactory reload_catalog, const Clock& clock, std::atomic<bool>& stop,
               std::atomic<bool>& reload, const Diagnostics& diagnostics, ServeOptions options)
    : catalog_(std::shared_ptr<Catalog>(), &catalog),  // not owned: the caller's
      make_catalog_(std::move(reload_catalog)),
      clock_(clock),
      stop_(stop),
      reload_(reload),
      diagnostics_(diagnostics),
      options_(std::move(options)) {}

std::shared_ptr<Catalog> Server::catalog() const {
    std::lock_guard<std::mutex> lock(catalog_mutex_);
    return catalog_;
}

void Server::announce(Catalog& catalog) {
    const auto& modules = catalog.manifests().modules;
    if (modules.empty())
        diagnostics_.warn("no modules in " + catalog.environment().manifest_dirs.front() +
                          ": nothing to run (add manifests, then send SIGHUP)");
    for (const auto& m : modules) {
        std::string line = "module " + m.name + ": ";
        line += m.enabled ? "schedule " + m.schedule.text() : "disabled";
        if (m.enabled && m.webhook_secret_env) line += ", webhooks at POST /hooks/" + m.name;
        diagnostics_.report(Level::info, line,
                            json::object{{"module", m.name}, {"enabled", m.enabled}, {"schedule", m.schedule.text()}});
        if (!m.enabled) continue;
        for (const auto& problem : catalog.offline_problems(m))
            diagnostics_.report(Level::warn, m.name + ": " + problem, json::object{{"module", m.name}});
        if (m.webhook_secret_env) {
            const char* secret = std::getenv(m.webhook_secret_env->c_str());
            if (!secret || !*secret)
                diagnostics_.report(Level::warn,
                                    m.name + ": webhook secret variable " + *m.webhook_secret_env +
                                        " is not set: its webhooks are refused (404) until it is set and crmsync restarted",
                                    json::object{{"module", m.name}});
        }
    }
}

void Server::reload_catalog() {
    std::shared_ptr<Catalog> fresh = make_catalog_(), before;
    {
        std::lock_guard<std::mutex> lock(catalog_mutex_);
        before = std::exchange(catalog_, fresh);
    }
    broken_modules_.clear();
    connections_.clear();  // made from the manifests read before
    std::set<std::string> was, is;
    for (const auto& m : before->manifests().modules) was.insert(m.name);
    for (const auto& m : fresh->manifests().modules) is.insert(m.name);
    std::string added, removed;
    for (const auto& name : is)
        if (!was.count(name)) added += (added.empty() ? "" : ", ") + name;
    for (const auto& name : was)
        if (!is.count(name)) removed += (removed.empty() ? "" : ", ") + name;
    diagnostics_.info("SIGHUP: manifests and plugins read again: " + std::to_string(is.size()) + " module(s)" +
                      (added.empty() ? "" : "; added " + added) + (removed.empty() ? "" : "; removed " + removed) +
                      (removed.empty() ? "" : " (their accepted webhooks wait in the inbox)"));
    announce(*fresh);
}

Server::~Server() {
    if (http_) http_->stop();
}

Status Server::start() {
    auto store = catalog()->open_store();
    if (!store) return store.status();
    web_store_ = std::move(store.value());
    if (!is_loopback(options_.host))
        diagnostics_.warn("listening on " + options_.host + ", beyond this machine: put TLS and a firewall in front of it");
    http_ = std::make_unique<HttpListener>([this](const IncomingRequest& request) { return answer(request); }, options_.http,
                                           [this](const std::string& reason) { reject(reason); });
    if (auto started = http_->start(options_.host, options_.port); !started)
        return Status::config(started.message() +
                              " (in use, or not an address of this machine; choose another with --listen HOST:PORT)");
    port_ = http_->port();
    diagnostics_.info("listening on http://" + options_.host + ":" + std::to_string(port_));
    announce(*catalog());
    return Status::ok();
}

HttpAnswer Server::answer(const IncomingRequest& request) {
    static const std::regex hook(R"(/hooks/([a-z0-9_-]{1,64}))");
    std::smatch match;
    std::string path = request.target.substr(0, request.target.find('?'));
    if (std::regex_match(path, match, hook)) {
        if (request.method != "POST") return {405, "application/json", R"({"error":"method","message":"use POST"})"};
        return handle_hook(match[1], request);
    }
    if (path == "/healthz" || path == "/metrics") {
        if (request.method != "GET") return {405, "application/json", R"({"error":"method","message":"use GET"})"};
        if (path == "/healthz") {
            auto query = request.query();
            auto strict = query.find("strict");
            return health(strict != query.end() && strict->second != "0" && strict->second != "false");
        }
        return {200, "text/plain; version=0.0.4", metrics()};
    }
    return {404, "application/json",
            R"({"error":"not_found","message":"crmsync serves POST /hooks/MODULE, GET /healthz and GET /metrics"})"};
}

void Server::reject(const std::string& reason) {
    std::lock_guard<std::mutex> lock(metrics_mutex_);
    ++rejects_[reason];
}

HttpAnswer Server::handle_hook(const std::string& name, const IncomingRequest& request) {
    const std::string& body = request.body;
    const std::string signature = request.header("x-crmsync-signature");
    const std::string timestamp = request.header("x-crmsync-timestamp");
    auto refuse = [&](int code, const std::string& reason, const std::string& message) {
        reject(reason);
        return HttpAnswer{code, "application/json", json::serialize(json::object{{"error", reason}, {"message", message}})};
    };
    auto current = catalog();
    const ModuleManifest* module = current->manifests().module(name);
    if (!module || !module->enabled || !module->webhook_secret_env)
        return refuse(404, "unknown_module", "no enabled module \"" + name + "\" takes webhooks here");
    const char* secret = std::getenv(module->webhook_secret_env->c_str());
    if (!secret || !*secret) return refuse(404, "unknown_module", "webhooks for \"" + name + "\" have no secret configured");
    if (signature.empty() || timestamp.empty())
        return refuse(401, "unsigned", "X-Crmsync-Signature and X-Crmsync-Timestamp are required");
    // Unix seconds, in a range that cannot overflow once made milliseconds (up to year 5138).
    int64_t seconds = -1;
    auto [end, ec] = std::from_chars(timestamp.data(), timestamp.data() + timestamp.size(), seconds);
    if (ec != std::errc() || end != timestamp.data() + timestamp.size() || seconds < 0 || seconds > 99'999'999'999)
        return refuse(401, "stale", "X-Crmsync-Timestamp must be Unix seconds");
    const int64_t sent = seconds * 1000;
    if (std::llabs(clock_.now_ms() - sent) > options_.replay_window_ms)
        return refuse(401, "stale", "the timestamp is more than 5 minutes from now");
    // Signed: "<timestamp>.<raw body>", so the timestamp cannot be swapped to replay a body.
    std::string expected = "sha256=" + hmac_sha256_hex(secret, timestamp + "." + body);
    if (signature.size() != expected.size() || CRYPTO_memcmp(signature.data(), expected.data(), expected.size()) != 0)
        return refuse(401, "bad_signature", "the signature does not match");
    auto parsed = parse_json(body);
    if (!parsed || !parsed->is_object()) return refuse(400, "not_json", "the body must be one JSON object (a source event)");
    StateStore::InboxAdded added;
    {
        std::lock_guard<std::mutex> lock(store_mutex_);
        try {
            // Committed (fsync) before we answer. The same signed request again within its
            // window (a capture replayed) is a duplicate, answered but not applied twice.
            auto stored = web_store_->inbox_add(name, body, clock_.now_ms(), signature, sent + options_.replay_window_ms);
            if (!stored) return refuse(503, "store", "the event could not be stored; send it again");
            added = stored.value();
        } catch (const std::exception& e) {
            diagnostics_.error(std::string("webhook for ") + name + " not stored: " + e.what());
            return refuse(503, "store", "the event could not be stored; send it again");
        }
    }
    if (added.duplicate) {
        reject("duplicate");
        return {200, "application/json",
                json::serialize(json::object{{"duplicate", added.id}, {"message", "this signed request was already accepted"}})};
    }
    {
        std::lock_guard<std::mutex> lock(wake_mutex_);
        work_waiting_ = true;
    }
    wake_.notify_one();
    return {202, "application/json", json::serialize(json::object{{"accepted", added.id}})};
}

// Each module's state: ok, disabled, failing (its last run failed or stopped: see its
// message), overdue (due for longer than overdue_after_ms and not started: the worker is
// stuck behind another module, or the module cannot be loaded), or never run. The answer is
// 503 only when the store cannot be written — unless ?strict, which is 503 whenever any
// module is failing or overdue too (for a monitor, not a liveness probe).
HttpAnswer Server::health(bool strict) {
    auto current = catalog();
    json::object modules;
    json::array problems;
    bool writable = false;
    const int64_t now = clock_.now_ms();
    try {
        std::lock_guard<std::mutex> lock(store_mutex_);
        writable = web_store_->writable();
        for (const auto& m : current->manifests().modules) {
            auto last = web_store_->last_run(m.name);
            auto success = web_store_->last_success(m.name);
            // Manual and disabled modules are never due (-1).
            int64_t due = -1;
            if (m.enabled) due = next_due(m.schedule, web_store_->last_scheduled_start(m.name), now).value_or(-1);
            std::string state = "ok";
            if (!m.enabled) state = "disabled";
            else if (last && (last->status == "failed" || last->status == "stopped")) state = "failing";
            else if (due >= 0 && now - due > options_.overdue_after_ms) state = "overdue";
            else if (!last) state = "never run";
            if (state == "failing") problems.emplace_back(m.name + ": last run " + last->status + ": " + last->message);
            if (state == "overdue")
                problems.emplace_back(m.name + ": due since " + iso8601_utc(due) + " and not started (" +
                                      duration_text(now - due) + ")");
            modules[m.name] =
                json::object{{"enabled", m.enabled},
                             {"state", state},
                             {"last_run", last ? json::value(last->status) : json::value(nullptr)},
                             {"last_started", last ? json::value(iso8601_utc(last->started_ms)) : json::value(nullptr)},
                             {"last_success", success ? json::value(iso8601_utc(*success)) : json::value(nullptr)},
                             {"next_due", due >= 0 ? json::value(iso8601_utc(due)) : json::value(nullptr)}};
            std::lock_guard<std::mutex> waits(metrics_mutex_);
            if (auto w = drain_waits_.find(m.name); w != drain_waits_.end() && w->second.until_ms > now)
                modules[m.name].as_object()["webhooks_wait_until"] = iso8601_utc(w->second.until_ms);
        }
    } catch (const std::exception& e) {
        diagnostics_.error(std::string("/healthz: the store could not be read: ") + e.what());
        writable = false;
    }
    std::string status = !writable ? "store not writable" : problems.empty() ? "ok" : "degraded";
    int code = !writable || (strict && !problems.empty()) ? 503 : 200;
    return {code, "application/json",
            json::serialize(
                json::object{{"status", status}, {"store_writable", writable}, {"problems", problems}, {"modules", modules}})};
}

std::string Server::metrics() {
    std::string out;
    auto family = [&](const char* name, const char* type, const char* help) {
        out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
    };
    std::vector<RunTotals> totals;
    std::map<std::string, int64_t> depth;
    std::map<std::string, int64_t> last_success;
    {
        auto current = catalog();
        std::lock_guard<std::mutex> lock(store_mutex_);
        totals = web_store_->run_totals();
        for (const auto& m : current->manifests().modules) {
            depth[m.name] = web_store_->inbox_depth(m.name);
            if (auto at = web_store_->last_success(m.name)) last_success[m.name] = *at;
        }
    }
    family("crmsync_runs_total", "counter", "Runs finished, by module and status.");
    for (const auto& t : totals)
        out += "crmsync_runs_total{module=\"" + label(t.module) + "\",status=\"" + label(t.status) + "\"} " +
               std::to_string(t.runs) + "\n";
    family("crmsync_records_total", "counter", "Records by outcome.");
    std::map<std::pair<std::string, std::string>, int64_t> records;
    std::map<std::string, int64_t> api;
    for (const auto& t : totals) {
        for (auto [outcome, n] : {std::pair<const char*, int64_t>{"fetched", t.counts.fetched},
                                  {"created", t.counts.created},
                                  {"updated", t.counts.updated},
                                  {"unchanged", t.counts.unchanged},
                                  {"ignored", t.counts.ignored},
                                  {"failed", t.counts.failed},
                                  {"no_match", t.counts.no_match},
                                  {"retried", t.counts.retried},
                                  {"recovered", t.counts.recovered},
                                  {"gave_up", t.counts.gave_up}})
            records[{t.module, outcome}] += n;
        api[t.module] += t.counts.api_calls;
    }
    for (const auto& [k, n] : records)
        out +=
            "crmsync_records_total{module=\"" + label(k.first) + "\",outcome=\"" + k.second + "\"} " + std::to_string(n) + "\n";
    family("crmsync_api_calls_total", "counter", "API calls spent, by module.");
    for (const auto& [m, n] : api) out += "crmsync_api_calls_total{module=\"" + label(m) + "\"} " + std::to_string(n) + "\n";
    family("crmsync_inbox_depth", "gauge", "Webhook events waiting, by module.");
    for (const auto& [m, n] : depth) out += "crmsync_inbox_depth{module=\"" + label(m) + "\"} " + std::to_string(n) + "\n";
    family("crmsync_last_success_timestamp_seconds", "gauge",
           "When the module's last run that went through (succeeded or partial) finished, Unix seconds.");
    for (const auto& [m, ms] : last_success) {
        char seconds[32];
        std::snprintf(seconds, sizeof seconds, "%.3f", ms / 1000.0);
        out += "crmsync_last_success_timestamp_seconds{module=\"" + label(m) + "\"} " + seconds + "\n";
    }
    std::lock_guard<std::mutex> lock(metrics_mutex_);
    family("crmsync_api_budget_remaining", "gauge", "The CRM's remaining daily API calls as last reported, by connection.");
    for (const auto& [c, b] : api_budget_)
        out += "crmsync_api_budget_remaining{connection=\"" + label(c) + "\"} " + std::to_string(b.second - b.first) + "\n";
    family("crmsync_webhook_rejects_total", "counter", "Webhook requests refused, by reason.");
    for (const char* reason : {"unknown_module", "unsigned", "bad_signature", "stale", "duplicate", "too_large", "not_json",
                               "store", "bad_request", "timeout", "too_many_connections"})
        out += "crmsync_webhook_rejects_total{reason=\"" + std::string(reason) + "\"} " +
               std::to_string(rejects_.count(reason) ? rejects_.at(reason) : 0) + "\n";
    family("crmsync_run_duration_seconds", "histogram", "Run durations since this process started, by module.");
    for (const auto& [m, buckets] : duration_buckets_) {
        for (size_t i = 0; i < std::size(kDurationBuckets); ++i) {
            char le[32];
            std::snprintf(le, sizeof le, "%g", kDurationBuckets[i]);
            out += "crmsync_run_duration_seconds_bucket{module=\"" + label(m) + "\",le=\"" + le + "\"} " +
                   std::to_string(buckets[i]) + "\n";
        }
        out += "crmsync_run_duration_seconds_bucket{module=\"" + label(m) + "\",le=\"+Inf\"} " + std::to_string(buckets.back()) +
               "\n";
        char sum[64];
        std::snprintf(sum, sizeof sum, "%.3f", duration_sum_[m]);
        out += "crmsync_run_duration_seconds_sum{module=\"" + label(m) + "\"} " + sum + "\n";
        out += "crmsync_run_duration_seconds_count{module=\"" + label(m) + "\"} " + std::to_string(buckets.back()) + "\n";
    }
    return out;
}

void Server::run_module(Catalog& catalog, const ModuleManifest& module, const std::string& trigger, bool inbox, StateStore& store,
                        std::optional<int64_t> claim_after_start, bool take_up) {
    Notifier notifier(catalog.manifests(), store, diagnostics_, clock_);
    auto instances = catalog.instantiate_module(module.name);
    if (!instances) {
        if (broken_modules_.insert(module.name).second) {
            diagnostics_.error(instances.status().message() + " — not run until fixed");
            notifier.not_loaded(module, instances.status().message());
        }
        return;
    }
    broken_modules_.erase(module.name);
    auto& mi = instances.value();
    const std::string& connection = mi.connection->name;
    if (auto kept = connections_.extract(connection)) mi.crm = std::move(kept.mapped());
    RunReport report;
    {
        Pipeline pipeline(store, ModuleBinding{*mi.module, *mi.connection, *mi.source, *mi.crm}, clock_, stop_, diagnostics_);
        RunOptions options;
        options.trigger = trigger;
        options.inbox = inbox;
        options.lease_holder = this_process_holder();
        options.claim_after_start = claim_after_start;
        options.take_up = take_up;
        report = pipeline.run(options);
    }
    if (report.status != RunStatus::failed && !report.unreachable) connections_[connection] = std::move(mi.crm);
    if (report.status == RunStatus::busy) return;
    if (inbox) after_drain(module.name, report);
    notifier.after_run(module, report);
    // One line per run: the summary `crmsync run` prints, and in JSON its parts as fields.
    std::string line = run_summary(module.name, report);
    for (auto& c : line)
        if (c == '\n') c = ' ';
    // A run stopped because serve is stopping is logged as what it is, not as an error.
    bool bad = report.status == RunStatus::failed || (report.status == RunStatus::stopped && !report.interrupted);
    json::object fields = run_report_json(module.name, report);
    fields["trigger"] = trigger;
    diagnostics_.report(bad                                   ? Level::error
                        : report.status == RunStatus::partial ? Level::warn
                                                              : Level::info,
                        line + " [" + trigger + "]", fields);
    std::lock_guard<std::mutex> lock(metrics_mutex_);
    auto& buckets = duration_buckets_[module.name];
    buckets.resize(std::size(kDurationBuckets) + 1, 0);
    double seconds = report.duration_ms / 1000.0;
    for (size_t i = 0; i < std::size(kDurationBuckets); ++i)
        if (seconds <= kDurationBuckets[i]) ++buckets[i];
    ++buckets.back();
    duration_sum_[module.name] += seconds;
    if (report.api_limit > 0) api_budget_[module.crm] = {report.api_used, report.api_limit};
}

bool Server::may_drain(const std::string& module) {
    std::lock_guard<std::mutex> lock(metrics_mutex_);
    auto it = drain_waits_.find(module);
    return it == drain_waits_.end() || clock_.now_ms() >= it->second.until_ms;
}

void Server::after_drain(const std::string& module, const RunReport& report) {
    constexpr int64_t kFirstWaitMs = 5'000, kLongestWaitMs = 5 * 60'000;
    std::lock_guard<std::mutex> lock(metrics_mutex_);
    if (report.status == RunStatus::succeeded || report.status == RunStatus::partial) {
        drain_waits_.erase(module);
        return;
    }
    DrainWait& w = drain_waits_[module];
    w.wait_ms = std::min(kLongestWaitMs, std::max(kFirstWaitMs, 2 * w.wait_ms));
    w.until_ms = clock_.now_ms() + w.wait_ms;
    diagnostics_.info(module + ": its webhook events wait in the inbox until " + iso8601_utc(w.until_ms) + " (the last drain " +
                      std::string(run_status_name(report.status)) + ")");
}

void Server::run() {
    auto store = catalog()->open_store();
    if (!store) {
        diagnostics_.error(store.status().message());
        return;
    }
    bool ran = false;  // a run since the memory it kept was handed back
    while (!stop_.load()) {
        bool ran_now = false;
        if (reload_.exchange(false)) {
            try {
                reload_catalog();
            } catch (const std::exception& e) {
                diagnostics_.error(std::string("SIGHUP: the manifests could not be read again; the ones before stay: ") +
                                   e.what());
            }
        }
        auto current = catalog();
        std::vector<std::string> names;
        for (const auto& module : current->manifests().modules)
            if (module.enabled) names.push_back(module.name);
        // Every module's schedule and inbox in one read, read again only after a run (which
        // takes time, during which other workers may have run modules too).
        std::optional<std::map<std::string, StateStore::ModuleGlance>> view;
        for (const auto& module : current->manifests().modules) {
            if (stop_.load() || reload_.load()) break;
            if (!module.enabled) continue;
            try {
                if (!view) view = store.value()->glance(names);
                if (module.webhook_secret_env && may_drain(module.name) && (*view)[module.name].inbox_depth > 0) {
                    run_module(*current, module, "webhook", true, *store.value());
                    ran_now = true;
                    view = store.value()->glance(names);
                }
                if (stop_.load()) break;
                const StateStore::ModuleGlance seen = (*view)[module.name];
                auto due = next_due(module.schedule, seen.last_scheduled_start, clock_.now_ms());
                const bool slot = due && *due <= clock_.now_ms();
                if (slot || abandoned_run(*store.value(), module.name, seen.last_status, clock_.now_ms())) {
                    run_module(*current, module, "schedule", false, *store.value(), seen.last_scheduled_start.value_or(-1),
                               !slot);
                    ran_now = true;
                    view.reset();
                }
            } catch (const std::exception& e) {
                // The store was busy or failed: say so and try again on the next tick.
                diagnostics_.error(module.name + ": " + e.what());
                view.reset();
            }
        }
        // Runs keep the memory they free for the next page (keep_freed_memory); once a tick
        // passes with none, it goes back to the system while serve waits.
        if (ran_now) {
            ran = true;
        } else if (ran) {
            return_freed_memory();
            ran = false;
        }
        std::unique_lock<std::mutex> lock(wake_mutex_);
        wake_.wait_for(lock, std::chrono::milliseconds(std::min<int64_t>(options_.tick_ms, 200)),
                       [this] { return work_waiting_ || stop_.load() || reload_.load(); });
        work_waiting_ = false;
    }
    // Stop taking webhooks first; what was accepted stays in the inbox for the next start.
    http_->stop();
}

}  // namespace crmsync
