#include "diagnostics.h"

#include <cstdio>
#include <cstdlib>
#include <string>

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

Diagnostics Diagnostics::to_stderr(Level threshold) {
    return Diagnostics(
        [](Level level, std::string_view message) {
            std::string line = "crmsync: ";
            line += level_name(level);
            line += ": ";
            line += message;
            line += '\n';
            std::fwrite(line.data(), 1, line.size(), stderr);
        },
        threshold);
}

Diagnostics Diagnostics::from_environment() {
    const char* value = std::getenv("CRMSYNC_LOG");
    std::string setting = value ? value : "";
    Level level = Level::warn;
    if (setting == "debug") level = Level::debug;
    else if (setting == "info") level = Level::info;
    else if (setting == "error") level = Level::error;
    return to_stderr(level);
}

}  // namespace crmsync
