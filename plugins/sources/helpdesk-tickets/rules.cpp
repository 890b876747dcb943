#include "rules.h"

#include <crmsync/support/json_plugin.hpp>
#include <crmsync/support/text.hpp>

#include <algorithm>
#include <map>
#include <stdexcept>
#include <vector>

namespace helpdesk {

using crmsync::support::text;

namespace {

constexpr int64_t kMaxEventMinutes = 14 * 24 * 60;

const std::map<std::string, std::string>& channels() {
    static const std::map<std::string, std::string> table{{"mail", "メール"},
                                                          {"sms", "SMS"},
                                                          {"visit", "応対メモ"},
                                                          {"call", "通話メモ"},
                                                          {"line", "LINE"},
                                                          {"r-messe", "R-Messe"},
                                                          {"yahoo", "Yahoo!"},
                                                          {"chatplus", "Chatplus"},
                                                          {"chatwork", "Chatwork"},
                                                          {"instagram", "Instagram DM"},
                                                          {"messenger", "Messenger for Business"},
                                                          {"chat_widget", "チャットウィジェット"}};
    return table;
}

// The actions each kind of channel reports. Those the table does not list create nothing;
// any other is a typo or a new helpdesk feature, and fails the event naming it.
const std::vector<std::string>& actions_of(const std::string& channel) {
    static const std::vector<std::string> sends{"sent", "reserved", "cancelled", "draft_saved"};
    static const std::vector<std::string> visits{"recorded"};
    static const std::vector<std::string> calls{"memo_recorded", "call_ended"};
    static const std::vector<std::string> chats{"closed", "opened"};
    if (channel == "mail" || channel == "sms") return sends;
    if (channel == "visit") return visits;
    if (channel == "call") return calls;
    return chats;
}

std::string listed(const std::vector<std::string>& values) {
    std::string out;
    for (const auto& v : values) out += (out.empty() ? "" : ", ") + v;
    return out;
}

const json::object& object(const json::object& o, const char* key) {
    static const json::object empty;
    auto* v = o.if_contains(key);
    return v && v->is_object() ? v->get_object() : empty;
}

bool flag(const json::object& o, const char* key) {
    auto* v = o.if_contains(key);
    return v && v->is_bool() && v->get_bool();
}

std::string required(const json::object& o, const char* key, const std::string& where) {
    std::string v = text(o, key);
    if (v.empty()) throw std::invalid_argument(where + "." + key + " is missing");
    return v;
}

void add_party(const json::object& party, json::array& emails, json::array& phones) {
    if (auto e = text(party, "email"); !e.empty()) emails.emplace_back(e);
    if (auto p = text(party, "phone"); !p.empty()) phones.emplace_back(p);
}

json::array strings(const json::object& o, const char* key) {
    json::array out;
    if (auto* v = o.if_contains(key); v && v->is_array())
        for (const auto& item : v->get_array())
            if (item.is_string()) out.push_back(item);
    return out;
}

// Subject takes 255 characters.
std::string subject_of(const std::string& name, const std::string& title) {
    return crmsync::support::utf8_prefix("【" + name + "】" + title, 255);
}

}  // namespace

std::optional<std::string> channel_name(const std::string& channel) {
    auto it = channels().find(channel);
    if (it == channels().end()) return std::nullopt;
    return it->second;
}

std::optional<json::object> event_operation(const json::object& event, const Settings& settings) {
    std::string id = required(event, "event_id", "event");
    std::string channel = text(event, "channel");
    auto name = channel_name(channel);
    if (!name) {
        std::vector<std::string> known;
        for (const auto& [c, n] : channels()) known.push_back(c);
        throw std::invalid_argument("event.channel \"" + channel + "\" is not a channel this plugin knows (" + listed(known) +
                                    ")");
    }
    std::string action = text(event, "action");
    const auto& known_actions = actions_of(channel);
    if (std::find(known_actions.begin(), known_actions.end(), action) == known_actions.end())
        throw std::invalid_argument("event.action \"" + action + "\" is not an action of channel " + channel + " (" +
                                    listed(known_actions) + ")");
    if (flag(event, "broadcast")) return std::nullopt;
    std::string key = id;  // one Event per event, except a call: one per call
    std::string start, end, description;
    std::optional<int64_t> duration;  // visits end after their duration, the rest at a time
    json::array emails, phones;

    if (channel == "mail" || channel == "sms") {
        const auto& m = object(event, channel.c_str());
        std::string where = "event." + channel;
        if (action == "sent") {
            if (flag(m, "scheduled")) return std::nullopt;  // its Event was made when the send was reserved
            end = required(m, "sent_at", where);
        } else if (action == "reserved") {
            end = required(m, "reserved_at", where);  // when the reserve button was pressed, not the delivery time
        } else {
            return std::nullopt;  // cancelled, draft saved, ...
        }
        start = required(m, "draft_saved_at", where);
        description = text(m, "body");
        if (channel == "mail") {
            for (const char* field : {"to", "cc", "bcc"})
                for (auto& e : strings(m, field)) emails.push_back(e);
        } else {
            phones = strings(m, "numbers");
        }
    } else if (channel == "visit") {
        if (action != "recorded" || !flag(object(event, "visit"), "first")) return std::nullopt;  // re-records create nothing
        const auto& v = object(event, "visit");
        start = required(v, "visited_at", "event.visit");
        auto* minutes = v.if_contains("duration_minutes");
        if (!minutes || !minutes->is_int64()) throw std::invalid_argument("event.visit.duration_minutes is missing");
        // An Event lasts at most 14 days (Salesforce's limit for one that is not all-day).
        if (minutes->as_int64() < 0 || minutes->as_int64() > kMaxEventMinutes)
            throw std::invalid_argument("event.visit.duration_minutes " + std::to_string(minutes->as_int64()) +
                                        " is outside 0 to " + std::to_string(kMaxEventMinutes) + " (14 days)");
        description = text(v, "memo");
        add_party(object(v, "contact"), emails, phones);
        add_party(object(v, "address"), emails, phones);
        duration = minutes->as_int64();
    } else if (channel == "call") {
        const auto& c = object(event, "call");
        // The call ended and its memo recorded, in either order: the event that completes the
        // pair makes the Event. A memo recorded again (edited) makes nothing.
        if (action == "memo_recorded" && c.contains("first") && !flag(c, "first")) return std::nullopt;
        if (!flag(c, "call_ended") || !flag(c, "memo_recorded")) return std::nullopt;
        if (auto call_id = text(c, "call_id"); !call_id.empty()) key = "call:" + call_id;
        start = required(c, "started_at", "event.call");
        end = required(c, "ended_at", "event.call");
        description = text(c, "memo");
        if (auto n = text(c, "number"); !n.empty()) phones.emplace_back(n);
    } else {
        const auto& c = object(event, "chat");
        if (action != "closed" || !flag(c, "sent")) return std::nullopt;  // closed without sending: nothing
        start = required(c, "opened_at", "event.chat");
        end = required(c, "closed_at", "event.chat");
        if (auto* bubbles = c.if_contains("bubbles"); bubbles && bubbles->is_array())
            for (const auto& b : bubbles->get_array())
                if (b.is_object())
                    description +=
                        (description.empty() ? "" : "\n") + text(b.get_object(), "speaker") + ": " + text(b.get_object(), "text");
        add_party(object(c, "customer"), emails, phones);
        add_party(object(c, "visitor"), emails, phones);
        if (auto* members = c.if_contains("group_members"); members && members->is_array())
            for (const auto& member : members->get_array())
                if (member.is_object()) add_party(member.get_object(), emails, phones);
    }

    json::object fields{{"Subject", subject_of(*name, text(event, "subject"))},
                        {"Type", *name},
                        {"StartDateTime", start},
                        {"Description", crmsync::support::cut_lines(description, settings.max_description_lines)}};
    if (duration) fields["DurationInMinutes"] = *duration;
    else fields["EndDateTime"] = end;
    json::object op{
        {"object", "Event"}, {"action", "upsert"}, {"key", "helpdesk-tickets:" + key}, {"source_id", id}, {"fields", fields}};
    // A late or replayed older event never overwrites what a newer one wrote.
    if (auto at = text(event, "occurred_at"); !at.empty()) op["version"] = at;
    op["owner"] = json::object{{"email", text(object(event, "agent"), "email")},
                               {"if_missing", json::array{"create_integration_user", "connection_user"}}};
    op["related"] = json::object{{"emails", emails},
                                 {"phones", phones},
                                 {"prefer", settings.relate_to},
                                 {"max_contacts", 50},
                                 {"open_opportunity", settings.open_opportunity}};
    op["picklists"] = json::object{{"Type", "create_missing"}};
    return op;
}

}  // namespace helpdesk
