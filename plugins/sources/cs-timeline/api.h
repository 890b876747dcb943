#pragma once
// The timeline's REST API (Gainsight-style), through the host's HTTP service:
//   GET   {base}/v1/ant/timeline/activities?modifiedAfter=<ISO UTC>&pageNumber=N&pageSize=K
//   GET   {base}/v1/ant/timeline/attachments/{id}          (the file's bytes)
//   PATCH {base}/v1/ant/timeline/activities/{id}           {"salesforceTaskId"|"salesforceEventId": "..."}
// every request with the `Accesskey` header. Activities come oldest modification first
// (then by id), modifiedAfter inclusive; 429 means wait Retry-After seconds and ask again.
#include <crmsync/plugin.h>

#include <boost/json.hpp>
#include <functional>
#include <string>

namespace cstimeline {

namespace json = boost::json;

struct ApiConfig {
    std::string base_url;  // e.g. https://example.gainsightcloud.com
    int page_size = 100;
};

class TimelineApi {
public:
    TimelineApi(const crmsync_host_api* host, ApiConfig config) : host_(host), config_(std::move(config)) {}
    void set_access_key(std::string key) { access_key_ = std::move(key); }

    // Emits up to `limit` activities modified after `cursor` ({"modified_after", "done": [ids
    // at that instant]}) through `emit`; sets `next` and `more`. Returns a crmsync status,
    // with `error` set when it is not OK.
    int32_t list(crmsync_call* call, const json::value& cursor, int64_t limit, const std::function<int32_t(json::object&&)>& emit,
                 json::value& next, bool& more, std::string& error);
    int32_t download(crmsync_call* call, const std::string& attachment_id, std::string& bytes, std::string& error);
    // Records the CRM id on the activity, as the timeline's "Salesforce Task/Event ID".
    int32_t write_back(crmsync_call* call, const std::string& activity_id, const std::string& object, const std::string& crm_id,
                       std::string& error);

private:
    struct Answer {
        int status = 0;
        std::string body;
    };
    // One request; a 429 is waited out (Retry-After, capped) and asked again.
    int32_t send(crmsync_call* call, const char* method, const std::string& url, const std::string& body, bool idempotent,
                 Answer& answer, std::string& error);

    const crmsync_host_api* host_;
    ApiConfig config_;
    std::string access_key_;
};

}  // namespace cstimeline
