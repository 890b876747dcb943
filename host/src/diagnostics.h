#pragma once
// Where the host's own diagnostics go (not a run's log, which lives in the store).
// The level comes from CRMSYNC_LOG (debug, info, warn, error); at debug the loader
// explains every decision it makes. Passed by reference to whoever reports; no globals.
#include <functional>
#include <string>
#include <string_view>

namespace crmsync {

enum class Level { debug = 0, info = 1, warn = 2, error = 3 };

class Diagnostics {
public:
    using Sink = std::function<void(Level, std::string_view)>;
    // Writes "crmsync: <level>: message" lines to stderr at or above `threshold`.
    static Diagnostics to_stderr(Level threshold);
    // Reads the threshold from CRMSYNC_LOG, defaulting to warn.
    static Diagnostics from_environment();
    explicit Diagnostics(Sink sink, Level threshold) : sink_(std::move(sink)), threshold_(threshold) {}

    void debug(std::string_view message) const { report(Level::debug, message); }
    void info(std::string_view message) const { report(Level::info, message); }
    void warn(std::string_view message) const { report(Level::warn, message); }
    void error(std::string_view message) const { report(Level::error, message); }
    void report(Level level, std::string_view message) const {
        if (level >= threshold_ && sink_) sink_(level, message);
    }
    bool enabled(Level level) const { return level >= threshold_; }

private:
    Sink sink_;
    Level threshold_;
};

std::string_view level_name(Level level);

}  // namespace crmsync
