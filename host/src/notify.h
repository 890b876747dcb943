#pragma once
// Telling people: after each run, every notification manifest watching the module learns
// the module's sync state — ok, failed (the run failed or stopped), errors (its failed
// records reached the threshold) or budget (the CRM's daily API budget under the module's
// reserve) — and is sent an event when that state changes: the state's name, or
// "recovered" on the way back to ok. A state repeated is not sent again, so a module failing
// every 5 minutes is one message, and its recovery another.
//
// Delivery is a signed webhook (JSON with a Slack-compatible "text") or mail through the
// system's sendmail. Neither is repeated blind (a POST that timed out may have arrived);
// a delivery that failed keeps the old state, so the next run's change is sent again. What
// was last told is kept in the store per (notification, module): a restart does not repeat
// an alert, nor lose a recovery.
#include <string>

#include "clock.h"
#include "diagnostics.h"
#include "manifest.h"
#include "pipeline.h"
#include "store.h"

namespace crmsync {

// "ok", "failed", "errors" or "budget" for a finished run, as `notification` counts errors.
std::string sync_state(const ModuleManifest& module, const RunReport& report, const NotificationManifest& notification);

class Notifier {
public:
    Notifier(const ManifestSet& manifests, StateStore& store, const Diagnostics& diagnostics, const Clock& clock);
    // After a run of `module` (not a dry run; a run that is busy elsewhere tells nobody).
    void after_run(const ModuleManifest& module, const RunReport& report);
    // When `module` could not even be loaded (its config, plugin or credentials): failed.
    void not_loaded(const ModuleManifest& module, const std::string& why);

private:
    // True when the receiver took the event.
    bool deliver(const NotificationManifest& n, const json::object& event, const std::string& text);
    bool post(const NotificationManifest& n, const std::string& body);
    bool mail(const NotificationManifest& n, const std::string& subject, const std::string& text);

    const ManifestSet& manifests_;
    StateStore& store_;
    const Diagnostics& diagnostics_;
    const Clock& clock_;
};

}  // namespace crmsync
