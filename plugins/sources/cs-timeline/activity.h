#pragma once
// The sync rules: one timeline activity -> the Salesforce Task or Event it becomes, plus one
// ContentVersion per attachment added after the switch-on. Pure functions of the activity
// and the module's settings; README.md documents the activity shape.
#include <boost/json.hpp>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace cstimeline {

namespace json = boost::json;

// 25 MB: Task sync takes files under it, Event sync files up to it (the seed's two rules).
inline constexpr int64_t kMaxAttachmentBytes = 25LL * 1024 * 1024;

struct Settings {
    std::string sync_to = "Task";                 // Task or Event
    std::string status, priority;                 // Task: fixed on every synced task
    std::set<std::string> activity_types;         // types with "sync to CRM" on
    std::optional<int64_t> attachments_since_ms;  // sync_attachments switched on at
    bool writeback = false;                       // ask the host to send the CRM id back
};

// The CRM key of the Task/Event an activity becomes.
std::string activity_key(const std::string& activity_id);

struct Mapped {
    std::vector<json::object> operations;  // empty: the activity's type is not synced
    std::vector<std::string> warnings;     // e.g. an attachment over 25 MB, named
};

// Throws std::invalid_argument naming the activity and the field when it cannot be mapped.
Mapped activity_operations(const json::object& activity, const Settings& settings);

// Why a file of `bytes` is left out under the module's mode (Task: 25 MB or more; Event:
// over 25 MB), naming it as `what`; nothing when it syncs. Applied to the declared `size`
// when the activity is mapped, and again to the content itself when it is fetched.
std::optional<std::string> attachment_left_out(const std::string& what, int64_t bytes, const Settings& settings);

// What the fixed default mappings write, as `target` items for the host.
std::vector<json::object> targets(const Settings& settings);

// Notes as plain text: tags dropped (block ends become line breaks), entities decoded,
// blank runs collapsed.
std::string html_to_text(std::string_view html);

// ISO 8601 date-time with Z or an offset -> milliseconds since the epoch.
std::optional<int64_t> parse_timestamp_ms(std::string_view text);
// Milliseconds since the epoch -> "YYYY-MM-DDTHH:MM:SSZ".
std::string format_utc(int64_t ms);

}  // namespace cstimeline
