#include "schedule.h"

namespace crmsync {

std::optional<int64_t> next_due(const Schedule& schedule, std::optional<int64_t> last_start_ms, int64_t now_ms) {
    constexpr int64_t day = 24LL * 3600 * 1000;
    switch (schedule.kind) {
        case Schedule::Kind::manual: return std::nullopt;
        case Schedule::Kind::realtime: return last_start_ms ? *last_start_ms + kRealtimeCatchUpMs : now_ms;
        case Schedule::Kind::every: return last_start_ms ? *last_start_ms + schedule.every_seconds * 1000 : now_ms;
        case Schedule::Kind::daily_at: {
            int64_t slot_of_day = schedule.daily_minute * 60'000LL;
            // The latest slot at or before now; due if the module has not started since it.
            int64_t today_slot = now_ms - ((now_ms % day) + day) % day + slot_of_day;
            int64_t latest_slot = today_slot <= now_ms ? today_slot : today_slot - day;
            // Never ran: the first slot to come. Missed a slot (the process was down): now.
            if (!last_start_ms) return today_slot > now_ms ? today_slot : today_slot + day;
            if (*last_start_ms < latest_slot) return latest_slot;
            return latest_slot + day;
        }
    }
    return std::nullopt;
}

}  // namespace crmsync
