#include "api.h"

#include <crmsync/support/json_plugin.hpp>

#include <algorithm>
#include <set>

namespace helpdesk {
using crmsync::support::header_value;
using crmsync::support::text;
using crmsync::support::url_encode;

namespace {

int64_t header_int(const std::string& headers, const char* name) {
    return std::atoll(header_value(headers.c_str(), name).c_str());
}

}  // namespace

int32_t fetch_events(const crmsync_host_api* host, crmsync_call* call, const ApiConfig& config, const std::string& token,
                     const json::value& cursor, int64_t limit, const std::function<int32_t(json::object&&)>& emit_event,
                     json::value& next, bool& more, std::string& error) {
    json::object boxes_cursor;
    if (auto* c = cursor.if_object())
        if (auto* b = c->if_contains("boxes"); b && b->is_object()) boxes_cursor = b->get_object();
    more = false;
    std::string auth = "Authorization: Bearer " + token;
    for (const auto& box : config.message_boxes) {
        json::object state = boxes_cursor.contains(box) ? boxes_cursor[box].as_object() : json::object{};
        std::string since = text(state, "since");
        std::set<std::string> done;
        if (auto* d = state.if_contains("done"); d && d->is_array())
            for (const auto& id : d->as_array()) done.insert(std::string(id.as_string()));

        // Every page after the cursor, so events come out strictly oldest first.
        std::vector<json::object> events;
        for (int page = 1;;) {
            if (host->cancelled(call)) return error = "stopped", CRMSYNC_STATUS_CANCELLED;
            std::string url = config.base_url + "/api/v2/" + box + "/tickets/search?per_page=50&page=" + std::to_string(page) +
                              (since.empty() ? "" : "&since=" + url_encode(since));
            auto res = crmsync::support::http(host, call, "GET", url, {auth, "Accept: application/json"}, "", true);
            if (res.rc != CRMSYNC_STATUS_OK) return error = "the helpdesk API did not answer (" + config.base_url + ")", res.rc;
            if (res.status == 403 && header_int(res.headers, "X-RateLimit-Reset") > 0) {
                // Over the rate limit: wait for the reset, then ask again.
                int64_t wait = header_int(res.headers, "X-RateLimit-Reset") * 1000 - host->now_ms(call) + 100;
                wait = std::clamp<int64_t>(wait, 100, 120'000);
                host->log(call, CRMSYNC_LOG_INFO,
                          ("helpdesk rate limit reached; waiting " + std::to_string(wait) + " ms").c_str());
                if (!crmsync::support::wait_unless_cancelled(host, call, wait))
                    return error = "stopped", CRMSYNC_STATUS_CANCELLED;
                continue;
            }
            if (res.status == 401 || res.status == 403)
                return error = "the helpdesk refused the API token (HTTP " + std::to_string(res.status) + ")",
                       CRMSYNC_STATUS_AUTH_FAILED;
            if (res.status >= 500)
                return error = "the helpdesk API answered HTTP " + std::to_string(res.status), CRMSYNC_STATUS_RETRY;
            if (res.status != 200)
                return error = "the helpdesk API answered HTTP " + std::to_string(res.status), CRMSYNC_STATUS_ERROR;
            boost::system::error_code ec;
            auto body = json::parse(res.body, ec);
            if (ec || !body.is_array())
                return error = "the helpdesk API answered something that is not a ticket list", CRMSYNC_STATUS_ERROR;
            for (const auto& ticket : body.as_array()) {
                if (!ticket.is_object())
                    return error = "the helpdesk API answered a ticket that is not a JSON object (page " + std::to_string(page) +
                                   " of message box " + box + ")",
                           CRMSYNC_STATUS_ERROR;
                const auto& t = ticket.get_object();
                auto* actions = t.if_contains("actions");
                if (!actions || !actions->is_array()) continue;
                for (const auto& a : actions->as_array()) {
                    if (!a.is_object())
                        return error = "the helpdesk API answered an action of ticket " + text(t, "ticket_id") +
                                       " that is not a JSON object",
                               CRMSYNC_STATUS_ERROR;
                    json::object event = a.get_object();
                    std::string at = text(event, "occurred_at");
                    if (at < since || (at == since && done.count(text(event, "event_id")))) continue;
                    if (!event.contains("subject")) event["subject"] = t.contains("subject") ? t.at("subject") : json::value("");
                    event["ticket_id"] = t.contains("ticket_id") ? t.at("ticket_id") : json::value(nullptr);
                    events.push_back(std::move(event));
                }
            }
            if (body.as_array().size() < 50) break;
            ++page;
        }
        std::stable_sort(events.begin(), events.end(), [](const json::object& a, const json::object& b) {
            auto ta = text(a, "occurred_at"), tb = text(b, "occurred_at");
            return ta != tb ? ta < tb : text(a, "event_id") < text(b, "event_id");
        });
        for (auto& event : events) {
            if (limit <= 0) {
                more = true;
                break;
            }
            std::string at = text(event, "occurred_at");
            if (at != since) {
                since = at;
                done.clear();
            }
            done.insert(text(event, "event_id"));
            --limit;
            if (emit_event(std::move(event)) == CRMSYNC_STATUS_CANCELLED) return error = "stopped", CRMSYNC_STATUS_CANCELLED;
        }
        json::array done_list;
        for (const auto& id : done) done_list.emplace_back(id);
        boxes_cursor[box] = json::object{{"since", since}, {"done", done_list}};
        if (more) break;
    }
    next = json::object{{"boxes", boxes_cursor}};
    return CRMSYNC_STATUS_OK;
}

}  // namespace helpdesk
