#pragma once
// Where the host's own diagnostics go (not a run's log, which lives in the store).
// The level comes from CRMSYNC_LOG (debug, info, warn, error); at debug the loader
// explains every decision it makes. Passed by reference to whoever reports; no globals.
//
// Commands print "crmsync: warning: …" lines. `crmsync serve` logs as a service does: each
// line with its UTC time and level, or one JSON object per line (--log-format json) whose
// extra fields (a run's module, status and counts) a log pipeline can read without parsing
// the message.
#include <boost/json/object.hpp>
#include <functional>
#include <string>
#include <string_view>

namespace crmsync {

enum class Level { debug = 0, info = 1, warn = 2, error = 3 };
enum class LogFormat {
    plain,  // crmsync: warning: message
    text,   // 2026-11-23T18:30:46.123Z warning message
    json,   // {"time":"2026-11-23T18:30:46.123Z","level":"warning","message":"…", fields…}
};

class Diagnostics {
public:
    using Sink = std::function<void(Level, std::string_view, const boost::json::object&)>;
    // Writes lines in `format` to stderr at or above `threshold`.
    static Diagnostics to_stderr(Level threshold, LogFormat format = LogFormat::plain);
    // Reads the threshold from CRMSYNC_LOG, defaulting to warn.
    static Diagnostics from_environment();
    // CRMSYNC_LOG's level, or `fallback` when it is unset or not a level.
    static Level level_from_environment(Level fallback);
    explicit Diagnostics(Sink sink, Level threshold) : sink_(std::move(sink)), threshold_(threshold) {}

    void debug(std::string_view message) const { report(Level::debug, message); }
    void info(std::string_view message) const { report(Level::info, message); }
    void warn(std::string_view message) const { report(Level::warn, message); }
    void error(std::string_view message) const { report(Level::error, message); }
    void report(Level level, std::string_view message, const boost::json::object& fields = {}) const {
        if (level >= threshold_ && sink_) sink_(level, message, fields);
    }
    bool enabled(Level level) const { return level >= threshold_; }

private:
    Sink sink_;
    Level threshold_;
};

std::string_view level_name(Level level);
// One line (with its '\n') as `format` writes it, `now_ms` its time.
std::string log_line(LogFormat format, int64_t now_ms, Level level, std::string_view message, const boost::json::object& fields);

}  // namespace crmsync
