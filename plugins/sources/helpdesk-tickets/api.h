#pragma once
// Polling the helpdesk's REST API (Re:lation-style): ticket search since the cursor, 50 a
// page, `Authorization: Bearer`; a 403 with X-RateLimit-Reset is waited out, not failed.
#include <crmsync/plugin.h>

#include <boost/json.hpp>
#include <functional>
#include <string>
#include <vector>

namespace helpdesk {

namespace json = boost::json;

struct ApiConfig {
    std::string base_url;                    // e.g. https://example.relationapp.jp
    std::vector<std::string> message_boxes;  // message box ids to read
};

// Emits up to `limit` events after `cursor` ({"boxes": {id: {"since", "done"}}}), oldest
// first, through `emit_event`; sets `next` and `more`. Returns a crmsync status, with
// `error` set when it is not OK.
int32_t fetch_events(const crmsync_host_api* host, crmsync_call* call, const ApiConfig& config, const std::string& token,
                     const json::value& cursor, int64_t limit, const std::function<int32_t(json::object&&)>& emit_event,
                     json::value& next, bool& more, std::string& error);

}  // namespace helpdesk
