#include "clock.h"

#include <chrono>
#include <cstdio>

namespace crmsync {

int64_t SystemClock::now_ms() const {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

std::string iso8601_utc(int64_t ms) {
    using namespace std::chrono;
    sys_time<milliseconds> tp{milliseconds(ms)};
    auto day = floor<days>(tp);
    year_month_day ymd{day};
    hh_mm_ss<milliseconds> hms{tp - day};
    char buf[40];
    int millis = static_cast<int>(hms.subseconds().count());
    if (millis)
        std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ", int(ymd.year()), unsigned(ymd.month()),
                      unsigned(ymd.day()), int(hms.hours().count()), int(hms.minutes().count()), int(hms.seconds().count()),
                      millis);
    else
        std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02dZ", int(ymd.year()), unsigned(ymd.month()),
                      unsigned(ymd.day()), int(hms.hours().count()), int(hms.minutes().count()), int(hms.seconds().count()));
    return buf;
}

bool parse_iso8601(const std::string& text, int64_t& ms_out) {
    int y, mo, d, h, mi, s;
    int consumed = 0;
    if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &s, &consumed) != 6) return false;
    using namespace std::chrono;
    year_month_day ymd{year(y), month(unsigned(mo)), day(unsigned(d))};
    if (!ymd.ok() || h > 23 || mi > 59 || s > 60) return false;
    int64_t ms = duration_cast<milliseconds>(sys_days(ymd).time_since_epoch()).count() + ((h * 60LL + mi) * 60 + s) * 1000;
    size_t pos = static_cast<size_t>(consumed);
    if (pos < text.size() && text[pos] == '.') {
        ++pos;
        int digits = 0, frac = 0;
        while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
            if (digits < 3) frac = frac * 10 + (text[pos] - '0'), ++digits;
            ++pos;
        }
        while (digits < 3) frac *= 10, ++digits;
        ms += frac;
    }
    if (pos < text.size() && text[pos] == 'Z') {
        ++pos;
    } else if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
        int oh = 0, om = 0;
        int sign = text[pos] == '-' ? -1 : 1;
        if (std::sscanf(text.c_str() + pos + 1, "%2d:%2d", &oh, &om) == 2) pos += 6;
        else if (std::sscanf(text.c_str() + pos + 1, "%2d%2d", &oh, &om) == 2) pos += 5;
        else return false;
        ms -= sign * (oh * 60LL + om) * 60000;
    } else {
        return false;  // no offset: ambiguous, the caller decides
    }
    if (pos != text.size()) return false;
    ms_out = ms;
    return true;
}

std::string duration_text(int64_t ms) {
    char buf[32];
    if (ms < 1000) std::snprintf(buf, sizeof buf, "%lldms", static_cast<long long>(ms));
    else if (ms < 60'000) std::snprintf(buf, sizeof buf, "%.1fs", ms / 1000.0);
    else
        std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(ms / 60'000),
                      static_cast<long long>(ms / 1000 % 60));
    return buf;
}

}  // namespace crmsync
