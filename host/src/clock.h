#pragma once
// The host's notion of now, passed in so tests can move time.
#include <atomic>
#include <cstdint>
#include <string>

namespace crmsync {

class Clock {
public:
    virtual ~Clock() = default;
    // Milliseconds since the Unix epoch, UTC.
    virtual int64_t now_ms() const = 0;
};

class SystemClock final : public Clock {
public:
    int64_t now_ms() const override;
};

// A clock a test sets by hand.
class ManualClock final : public Clock {
public:
    explicit ManualClock(int64_t start_ms) : now_(start_ms) {}
    int64_t now_ms() const override { return now_.load(); }
    void set(int64_t ms) { now_.store(ms); }
    void advance(int64_t ms) { now_.fetch_add(ms); }

private:
    std::atomic<int64_t> now_;
};

// "2026-11-20T01:02:03.456Z" (milliseconds shown only when not zero).
std::string iso8601_utc(int64_t ms);
// "850ms", "12.5s", "3m07s".
std::string duration_text(int64_t ms);
// Parses "YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM)"; returns false when it is not one.
bool parse_iso8601(const std::string& text, int64_t& ms_out);

}  // namespace crmsync
