#include "api.h"

#include <crmsync/support/json_plugin.hpp>

#include <algorithm>
#include <set>

namespace cstimeline {
using crmsync::support::header_value;
using crmsync::support::text;
using crmsync::support::url_encode;

int32_t TimelineApi::send(crmsync_call* call, const char* method, const std::string& url, const std::string& body,
                          bool idempotent, Answer& answer, std::string& error) {
    const std::vector<std::string> headers{"Accesskey: " + access_key_, "Accept: application/json",
                                           "Content-Type: application/json"};
    auto res = crmsync::support::http_waiting_out_429(host_, call, method, url, headers, body, idempotent, "timeline API");
    if (res.rc == CRMSYNC_STATUS_CANCELLED) return error = "stopped", CRMSYNC_STATUS_CANCELLED;
    if (res.rc != CRMSYNC_STATUS_OK) return error = "the timeline API did not answer (" + config_.base_url + ")", res.rc;
    answer.status = res.status;
    answer.body = std::move(res.body);
    if (res.status == 401 || res.status == 403)
        return error = "the timeline refused the access key (HTTP " + std::to_string(res.status) +
                       "); check the credential access_key",
               CRMSYNC_STATUS_AUTH_FAILED;
    if (res.status == 429) return error = "the timeline API kept answering 429 (rate limited)", CRMSYNC_STATUS_RETRY;
    if (res.status >= 500) return error = "the timeline API answered HTTP " + std::to_string(res.status), CRMSYNC_STATUS_RETRY;
    return CRMSYNC_STATUS_OK;
}

int32_t TimelineApi::list(crmsync_call* call, const json::value& cursor, int64_t limit,
                          const std::function<int32_t(json::object&&)>& emit, json::value& next, bool& more, std::string& error) {
    std::string after;
    std::set<std::string> done;
    if (auto* c = cursor.if_object()) {
        after = text(*c, "modified_after");
        if (auto* d = c->if_contains("done"); d && d->is_array())
            for (const auto& id : d->get_array())
                if (id.is_string()) done.insert(std::string(id.get_string()));
    }
    const std::string query_after = after;
    more = false;
    for (int page = 1; limit > 0; ++page) {
        std::string url = config_.base_url + "/v1/ant/timeline/activities?pageNumber=" + std::to_string(page) +
                          "&pageSize=" + std::to_string(config_.page_size) +
                          (query_after.empty() ? "" : "&modifiedAfter=" + url_encode(query_after));
        Answer answer;
        if (int32_t rc = send(call, "GET", url, "", true, answer, error); rc != CRMSYNC_STATUS_OK) return rc;
        if (answer.status != 200)
            return error = "the timeline API answered HTTP " + std::to_string(answer.status) + " to the activity list",
                   CRMSYNC_STATUS_ERROR;
        boost::system::error_code ec;
        auto body = json::parse(answer.body, ec);
        const json::array* activities = nullptr;
        if (!ec && body.is_object())
            if (auto* data = body.get_object().if_contains("data"); data && data->is_object())
                if (auto* list = data->get_object().if_contains("activities"); list && list->is_array())
                    activities = &list->get_array();
        if (!activities) return error = "the timeline API answered something that is not an activity list", CRMSYNC_STATUS_ERROR;
        size_t i = 0;
        for (; i < activities->size() && limit > 0; ++i) {
            if (!(*activities)[i].is_object()) continue;
            json::object activity = (*activities)[i].get_object();
            std::string modified = text(activity, "modified_at"), id = text(activity, "id");
            if (modified == after && done.count(id)) continue;  // emitted before, at the cursor's instant
            if (modified != after) {
                after = modified;
                done.clear();
            }
            done.insert(id);
            --limit;
            if (emit(std::move(activity)) == CRMSYNC_STATUS_CANCELLED) return error = "stopped", CRMSYNC_STATUS_CANCELLED;
        }
        if (i < activities->size() || (limit == 0 && activities->size() == static_cast<size_t>(config_.page_size))) {
            more = true;
            break;
        }
        if (activities->size() < static_cast<size_t>(config_.page_size)) break;
    }
    json::array done_list;
    for (const auto& id : done) done_list.emplace_back(id);
    next = after.empty() ? json::value(nullptr) : json::value(json::object{{"modified_after", after}, {"done", done_list}});
    return CRMSYNC_STATUS_OK;
}

int32_t TimelineApi::download(crmsync_call* call, const std::string& attachment_id, std::string& bytes, std::string& error) {
    Answer answer;
    std::string url = config_.base_url + "/v1/ant/timeline/attachments/" + url_encode(attachment_id);
    if (int32_t rc = send(call, "GET", url, "", true, answer, error); rc != CRMSYNC_STATUS_OK) return rc;
    if (answer.status == 404)
        return error = "attachment " + attachment_id + " is no longer in the timeline (HTTP 404)", CRMSYNC_STATUS_ERROR;
    if (answer.status != 200)
        return error = "the timeline API answered HTTP " + std::to_string(answer.status) + " for attachment " + attachment_id,
               CRMSYNC_STATUS_ERROR;
    bytes = std::move(answer.body);
    return CRMSYNC_STATUS_OK;
}

int32_t TimelineApi::write_back(crmsync_call* call, const std::string& activity_id, const std::string& object,
                                const std::string& crm_id, std::string& error) {
    Answer answer;
    std::string field = object == "Event" ? "salesforceEventId" : "salesforceTaskId";
    std::string url = config_.base_url + "/v1/ant/timeline/activities/" + url_encode(activity_id);
    if (int32_t rc = send(call, "PATCH", url, json::serialize(json::object{{field, crm_id}}), true, answer, error);
        rc != CRMSYNC_STATUS_OK)
        return rc;
    if (answer.status != 200 && answer.status != 204)
        return error = "the timeline API answered HTTP " + std::to_string(answer.status) + " to the write-back of " + activity_id,
               CRMSYNC_STATUS_ERROR;
    return CRMSYNC_STATUS_OK;
}

}  // namespace cstimeline
