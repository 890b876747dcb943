#pragma once
// The helpdesk's sync rules, as pure functions: which source event creates a Salesforce
// Event, and with which fields and directives. One table of channels, one function per
// kind of action (mail/SMS, visit memo, call memo, chat).
#include <boost/json.hpp>
#include <optional>
#include <string>

namespace helpdesk {

namespace json = boost::json;

struct Settings {
    json::array relate_to{"Contact", "Lead"};
    bool open_opportunity = false;
    int max_description_lines = 50;
};

// The channel's display name ("メール", "LINE", ...), or nullopt for channels that do not sync.
std::optional<std::string> channel_name(const std::string& channel);

// The operation one source event becomes, or nullopt when the event creates nothing
// (a cancelled send, a re-recorded memo, a chat closed without sending, a broadcast, ...).
// Throws std::invalid_argument naming the missing or malformed property.
std::optional<json::object> event_operation(const json::object& event, const Settings& settings);

}  // namespace helpdesk
