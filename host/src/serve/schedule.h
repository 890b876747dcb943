#pragma once
// When a module is next due, from its schedule and when it last started — both kept in
// the store, so the answer survives a restart: a 4-hourly module restarted 3 hours after
// its last run is due in 1 hour, not 4. Pure functions of their inputs (the clock is passed).
#include <cstdint>
#include <optional>

#include "../manifest.h"

namespace crmsync {

// Realtime modules also poll their source this often, to catch what no webhook announced.
constexpr int64_t kRealtimeCatchUpMs = 5 * 60 * 1000;

// The next time (ms, UTC) the module should start, or nullopt for manual modules.
// last_start_ms: when its last run (of any trigger) started; nullopt if it never ran.
std::optional<int64_t> next_due(const Schedule& schedule, std::optional<int64_t> last_start_ms, int64_t now_ms);

}  // namespace crmsync
