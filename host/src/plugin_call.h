#pragma once
// How a run calls its plugins, and what each ABI status means for the run — the one place
// that decides, for fetch, the services' lookups and the CRM write alike:
//   OK                        done;
//   RETRY                     back off and try again, up to the module's max_attempts;
//   AUTH_FAILED               authenticate again once, then try again;
//   ERROR, NOT_SUPPORTED      the input's fault: the record fails (a fetch: the run fails);
//   RATE_LIMITED, CANCELLED   stop the run cleanly; the next run resumes where it stopped;
//   RETRY or AUTH_FAILED that outlived the retries: the other side is unreachable — stop.
// A stop is never a record error and never moves a cursor: the batch it hit is not
// committed, so the next run does it.
#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "instance.h"
#include "manifest.h"
#include "store.h"

namespace crmsync {

enum class RunStatus { succeeded, partial, failed, stopped, busy };
std::string_view run_status_name(RunStatus status);

// Why a run ends before its source is exhausted.
struct RunStop {
    RunStatus status = RunStatus::stopped;
    std::string message;
    bool unreachable = false;  // the CRM or source could not be reached or refused us
};

// True when a failed outcome is the input's own fault (fail the record, not the run).
bool is_input_fault(const Outcome& outcome);
// The stop an outcome that is not the input's fault means; `what` names the step
// ("CRM write", "user lookup") and starts the message.
RunStop stop_for(const Outcome& outcome, std::string_view what);

class PluginCaller {
public:
    using LogSink = std::function<void(Level, std::string)>;
    PluginCaller(const RetryPolicy& retry, const std::atomic<bool>& cancel, LogSink log);

    // Resolves the credentials and authenticates. A credential that cannot be resolved (an
    // unset variable, an unreadable file) is a configuration error; a refusal by the plugin
    // or the system behind it is unreachable. Messages never carry a secret.
    Status authenticate(PluginInstance& plugin, const std::vector<CredentialRef>& credentials) const;
    // The same, unless the instance already signed in with these very credentials (one kept
    // from run to run by serve): a login a run would spend the CRM's allowance of logins.
    Status sign_in(PluginInstance& plugin, const std::vector<CredentialRef>& credentials) const;
    // Calls `attempt` until it is neither RETRY nor a first AUTH_FAILED, backing off
    // between tries; counts each retry in `counts`.
    Outcome call(PluginInstance& plugin, const std::vector<CredentialRef>& credentials, const std::function<Outcome()>& attempt,
                 RunCounts& counts) const;
    // Waits before retry number attempt+1; false when the run is being cancelled.
    bool backoff(int attempt) const;
    const RetryPolicy& retry() const { return retry_; }

private:
    const RetryPolicy& retry_;
    const std::atomic<bool>& cancel_;
    LogSink log_;
};

}  // namespace crmsync
