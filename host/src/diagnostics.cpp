#include "diagnostics.h"

#include <boost/json/serialize.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "clock.h"

namespace crmsync {

std::string_view level_name(Level level) {
    switch (level) {
        case Level::debug: return "debug";
        case Level::info: return "info";
        case Level::warn: return "warning";
        case Level::error: return "error";
    }
    return "info";
}

std::string log_line(LogFormat format, int64_t now_ms, Level level, std::string_view message, const boost::json::object& fields) {
    std::string line;
    switch (format) {
        case LogFormat::plain:
            line = "crmsync: ";
            line += level_name(level);
            line += ": ";
            line += message;
            break;
        case LogFormat::text:
            line = iso8601_utc(now_ms);
            line += ' ';
            line += level_name(level);
            line += ' ';
            line += message;
            break;
        case LogFormat::json: {
            // time, level and message first (and never overridden by a field).
            boost::json::object o{{"time", iso8601_utc(now_ms)}, {"level", level_name(level)}, {"message", message}};
            for (const auto& [key, value] : fields) o.emplace(key, value);
            line = boost::json::serialize(o);
            break;
        }
    }
    line += '\n';
    return line;
}

Diagnostics Diagnostics::to_stderr(Level threshold, LogFormat format) {
    return Diagnostics(
        [format](Level level, std::string_view message, const boost::json::object& fields) {
            auto now = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch());
            std::string line = log_line(format, now.count(), level, message, fields);
            std::fwrite(line.data(), 1, line.size(), stderr);  // one write per line: lines never interleave
        },
        threshold);
}

Level Diagnostics::level_from_environment(Level fallback) {
    const char* value = std::getenv("CRMSYNC_LOG");
    std::string setting = value ? value : "";
    if (setting == "debug") return Level::debug;
    if (setting == "info") return Level::info;
    if (setting == "warn" || setting == "warning") return Level::warn;
    if (setting == "error") return Level::error;
    return fallback;
}

Diagnostics Diagnostics::from_environment() { return to_stderr(level_from_environment(Level::warn)); }

}  // namespace crmsync
