#include <catch2/catch.hpp>

#include "clock.h"
#include "serve/schedule.h"

using namespace crmsync;

namespace {
int64_t at(const std::string& iso) {
    int64_t ms = 0;
    REQUIRE(parse_iso8601(iso, ms));
    return ms;
}
Schedule every(int64_t seconds) {
    Schedule s;
    s.kind = Schedule::Kind::every;
    s.every_seconds = seconds;
    return s;
}
Schedule daily(int minute) {
    Schedule s;
    s.kind = Schedule::Kind::daily_at;
    s.daily_minute = minute;
    return s;
}
}  // namespace

TEST_CASE("schedule: a 4-hourly module restarted 3 hours after its last run is due in 1 hour, not 4") {
    auto last = at("2026-11-20T00:00:00Z");
    auto restarted = at("2026-11-20T03:00:00Z");
    CHECK(next_due(every(4 * 3600), last, restarted) == at("2026-11-20T04:00:00Z"));
    CHECK(next_due(every(4 * 3600), std::nullopt, restarted) == restarted);  // never ran: now
}

TEST_CASE("schedule: daily_at runs at the UTC slot, catches up a missed slot, and waits for the first one") {
    auto slot = 8 * 60;
    CHECK(next_due(daily(slot), at("2026-11-19T08:00:05Z"), at("2026-11-20T07:00:00Z")) == at("2026-11-20T08:00:00Z"));
    CHECK(next_due(daily(slot), at("2026-11-20T08:00:01Z"), at("2026-11-20T09:00:00Z")) == at("2026-11-21T08:00:00Z"));
    // The process was down at 08:00: due at once (the 08:00 slot is in the past).
    CHECK(next_due(daily(slot), at("2026-11-19T08:00:01Z"), at("2026-11-20T10:00:00Z")) == at("2026-11-20T08:00:00Z"));
    CHECK(next_due(daily(slot), std::nullopt, at("2026-11-20T10:00:00Z")) == at("2026-11-21T08:00:00Z"));
    CHECK(next_due(daily(slot), std::nullopt, at("2026-11-20T06:00:00Z")) == at("2026-11-20T08:00:00Z"));
}

TEST_CASE("schedule: manual never comes due, realtime catches up every 5 minutes") {
    Schedule manual;
    CHECK_FALSE(next_due(manual, std::nullopt, at("2026-11-20T00:00:00Z")).has_value());
    Schedule realtime;
    realtime.kind = Schedule::Kind::realtime;
    CHECK(next_due(realtime, at("2026-11-20T00:00:00Z"), at("2026-11-20T00:01:00Z")) == at("2026-11-20T00:05:00Z"));
}
