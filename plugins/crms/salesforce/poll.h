#pragma once
// When to ask again how a Bulk API 2.0 job is going (bulk.cpp). A plain function, so the
// unit tests can hold it to its cases.
#include <algorithm>
#include <cstdint>

namespace salesforce {

constexpr int64_t kMinPollMs = 50;    // a poll is an API call: never closer than this
constexpr int64_t kMaxPollMs = 5000;  // the backoff grows to this and no further
constexpr int64_t kDonePollMs = 250;  // every record processed, the job not yet complete

// The wait before the next poll of a job still in progress: the backoff `fallback_ms` (250 ms,
// growing by half each poll, within kMinPollMs and kMaxPollMs), or sooner when the job's
// numberRecordsProcessed says it will be done sooner. The estimate is the time the records
// left take at the rate the count moved between the last two polls, and a tenth more (so
// the poll comes once the job is done, not while it is nearly so), less `round_trip_ms`,
// what the last poll took to answer (the job's state is read that long after a poll is
// sent). Never later than the backoff: an estimate only brings a poll forward. No count, no
// progress since the last poll, or a count out of range: the backoff.
inline int64_t next_poll_ms(int64_t fallback_ms, int64_t records, int64_t processed_before, int64_t processed_now,
                            int64_t between_ms, int64_t round_trip_ms = 0) {
    const int64_t fallback = std::clamp(fallback_ms, kMinPollMs, kMaxPollMs);
    if (records <= 0 || processed_now > records || processed_now < 0) return fallback;
    if (processed_now == records) return std::min(fallback, kDonePollMs);
    if (processed_now <= processed_before || processed_before < 0 || between_ms <= 0) return fallback;
    const double per_ms = static_cast<double>(processed_now - processed_before) / static_cast<double>(between_ms);
    const double left_ms =
        static_cast<double>(records - processed_now) / per_ms * 1.1 - static_cast<double>(std::max<int64_t>(round_trip_ms, 0));
    if (left_ms >= static_cast<double>(fallback)) return fallback;
    return std::max(static_cast<int64_t>(left_ms) + 1, kMinPollMs);
}

}  // namespace salesforce
