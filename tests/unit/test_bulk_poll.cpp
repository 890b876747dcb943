// When the salesforce plugin polls a running Bulk API 2.0 job (plugins/crms/salesforce/poll.h):
// at the backoff, or sooner when the job's progress says it will be done sooner.
// The end-to-end bulk loads are in tests/e2e/test_salesforce.cpp.
#include <catch2/catch.hpp>

#include "poll.h"

using salesforce::next_poll_ms;

TEST_CASE("bulk poll: a poll comes sooner than the backoff when the records left take less") {
    // 5,000 of 10,000 in 250 ms: 20 a ms, so 5,000 more take 250 ms, and a tenth more.
    CHECK(next_poll_ms(375, 10'000, 0, 5'000, 250) == 276);
    // 9,000 of 10,000, 4,000 of them in the last 200 ms: 1,000 left take 50 ms (55).
    CHECK(next_poll_ms(375, 10'000, 5'000, 9'000, 200) == 56);
    // The last poll took 100 ms to answer: the next one reads the job's state that much later.
    CHECK(next_poll_ms(375, 10'000, 0, 5'000, 250, 100) == 176);
    // Nearly done, fast: never closer than 50 ms (a poll is an API call).
    CHECK(next_poll_ms(375, 10'000, 5'000, 9'990, 100) == salesforce::kMinPollMs);
    CHECK(next_poll_ms(375, 10'000, 0, 5'000, 250, 400) == salesforce::kMinPollMs);
}

TEST_CASE("bulk poll: never later than the backoff") {
    // 5,000 left at 20 a ms would take 275 ms: the 250 ms backoff comes first.
    CHECK(next_poll_ms(250, 10'000, 0, 5'000, 250) == 250);
    // A slow job: 100 records in 5 s, 9,800 left.
    CHECK(next_poll_ms(562, 10'000, 100, 200, 5'000) == 562);
}

TEST_CASE("bulk poll: the backoff stands when the job says nothing new") {
    CHECK(next_poll_ms(250, 10'000, 0, 0, 10) == 250);           // nothing processed yet
    CHECK(next_poll_ms(375, 10'000, 4'000, 4'000, 250) == 375);  // no progress since the last poll
    CHECK(next_poll_ms(375, 10'000, -1, 4'000, 250) == 375);     // no count the last time
    CHECK(next_poll_ms(375, 10'000, 0, -1, 250) == 375);         // no count this time
    CHECK(next_poll_ms(375, 10'000, 0, 20'000, 250) == 375);     // more than the job holds
    CHECK(next_poll_ms(375, 10'000, 0, 5'000, 0) == 375);        // no time between the polls
    CHECK(next_poll_ms(375, 0, 0, 0, 250) == 375);               // an empty job
    // The backoff itself is kept within the bounds.
    CHECK(next_poll_ms(10, 10'000, 0, 0, 250) == salesforce::kMinPollMs);
    CHECK(next_poll_ms(60'000, 10'000, 0, 0, 250) == salesforce::kMaxPollMs);
}

TEST_CASE("bulk poll: every record processed, the job not yet complete: soon, not at the backoff") {
    CHECK(next_poll_ms(1'265, 10'000, 9'000, 10'000, 100) == salesforce::kDonePollMs);
    CHECK(next_poll_ms(100, 10'000, 9'000, 10'000, 100) == 100);
}
