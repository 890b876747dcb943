#include "plugin_call.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include "digest.h"

namespace crmsync {

std::string_view run_status_name(RunStatus status) {
    switch (status) {
        case RunStatus::succeeded: return "succeeded";
        case RunStatus::partial: return "partial";
        case RunStatus::failed: return "failed";
        case RunStatus::stopped: return "stopped";
        case RunStatus::busy: return "busy";
    }
    return "failed";
}

bool is_input_fault(const Outcome& outcome) {
    return !outcome.plugin_died && (outcome.status == CRMSYNC_STATUS_ERROR || outcome.status == CRMSYNC_STATUS_NOT_SUPPORTED);
}

RunStop stop_for(const Outcome& outcome, std::string_view what) {
    if (outcome.plugin_died)
        return {RunStatus::failed, outcome.message + "; the run stopped; nothing after the last commit was written", false};
    const std::string resume = " (the next run resumes before this batch)";
    switch (outcome.status) {
        case CRMSYNC_STATUS_CANCELLED:
            return {RunStatus::stopped, std::string(what) + " stopped: " + outcome.message + resume, false};
        case CRMSYNC_STATUS_RATE_LIMITED:
            return {RunStatus::stopped, std::string(what) + " stopped: " + outcome.message + resume, false};
        default: return {RunStatus::failed, std::string(what) + " stopped: " + outcome.message + resume, true};
    }
}

PluginCaller::PluginCaller(const RetryPolicy& retry, const std::atomic<bool>& cancel, LogSink log)
    : retry_(retry), cancel_(cancel), log_(std::move(log)) {}

bool PluginCaller::backoff(int attempt) const {
    int64_t delay = std::min<int64_t>(retry_.cap_ms, retry_.base_ms << std::min(attempt, 20));
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(delay);
    while (std::chrono::steady_clock::now() < until) {
        if (cancel_.load()) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(std::min<int64_t>(delay, 50)));
    }
    return true;
}

namespace {

Status authenticate_with(PluginInstance& plugin, const json::object& resolved, bool unless_signed_in) {
    std::string fingerprint = sha256_hex(canonical_json(resolved));
    if (unless_signed_in && plugin.signed_in_with() == fingerprint) return Status::ok();
    plugin.set_signed_in_with("");
    plugin.services().set_secrets(resolved);
    auto outcome = plugin.authenticate(resolved);
    if (outcome.plugin_died) return Status::unreachable(outcome.message);
    if (!outcome.ok()) return Status::unreachable(plugin.plugin().id() + " refused to authenticate: " + outcome.message);
    plugin.set_signed_in_with(std::move(fingerprint));
    return Status::ok();
}

}  // namespace

Status PluginCaller::authenticate(PluginInstance& plugin, const std::vector<CredentialRef>& credentials) const {
    auto resolved = resolve_credentials(credentials);
    if (!resolved) return resolved.status();
    return authenticate_with(plugin, *resolved, false);
}

Status PluginCaller::sign_in(PluginInstance& plugin, const std::vector<CredentialRef>& credentials) const {
    auto resolved = resolve_credentials(credentials);
    if (!resolved) return resolved.status();
    return authenticate_with(plugin, *resolved, true);
}

Outcome PluginCaller::call(PluginInstance& plugin, const std::vector<CredentialRef>& credentials,
                           const std::function<Outcome()>& attempt, RunCounts& counts) const {
    bool reauthenticated = false;
    for (int tries = 1;; ++tries) {
        Outcome outcome = attempt();
        if (outcome.status == CRMSYNC_STATUS_AUTH_FAILED && !reauthenticated) {
            reauthenticated = true;
            log_(Level::info, plugin.plugin().id() + ": session refused, authenticating again");
            if (auto again = authenticate(plugin, credentials); !again)
                return {CRMSYNC_STATUS_AUTH_FAILED, again.message(), false};
            continue;
        }
        if (outcome.status != CRMSYNC_STATUS_RETRY) return outcome;
        if (tries >= retry_.max_attempts) {
            outcome.message += " (gave up after " + std::to_string(tries) + " attempts)";
            return outcome;
        }
        ++counts.retries;
        log_(Level::warn,
             plugin.plugin().id() + ": " + outcome.message + "; retrying (attempt " + std::to_string(tries + 1) + ")");
        if (!backoff(tries - 1)) return {CRMSYNC_STATUS_CANCELLED, "stopped while waiting to retry", false};
    }
}

}  // namespace crmsync
