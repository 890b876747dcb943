#pragma once
// Where the companies go: the feedback tool's REST API (Flyle-style), through the host's
// HTTP service with a bearer token —
//   GET  {base}/v1/custom-fields                     the custom fields and their select options
//   POST {base}/v1/custom-fields/{key}/options       {"value"}: a new option (409: there already)
//   PUT  {base}/v1/companies/external/{id}           {"name", "custom_fields"}: upsert by external id
//   POST {base}/v1/companies/external/{id}/archive   archive (404: no such company, nothing to do)
// — or an export folder (companies.jsonl and options.jsonl, one JSON line per write), for the
// demo. A 429 is waited out as Retry-After says; 5xx and a 429 that does not end are RETRY
// (every request here may be repeated: upserts by id, adding an option that exists, archiving).
#include <crmsync/plugin.h>

#include <boost/json.hpp>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace feedback {

namespace json = boost::json;

// One write's answer: a crmsync write result, or a status that stops the whole call.
struct Written {
    int32_t status = CRMSYNC_STATUS_OK;  // not OK: the call stops (`error` says why)
    std::string error;
    json::object result;  // {"success", "id", "created"} or {"success": false, "errors": [...]}
};

class Destination {
public:
    // API when base_url is set, else the export folder.
    Destination(const crmsync_host_api* host, std::string base_url, std::string folder)
        : host_(host), base_url_(std::move(base_url)), folder_(std::move(folder)) {}
    bool is_api() const { return !base_url_.empty(); }
    void set_token(std::string token) { token_ = std::move(token); }

    Written upsert(crmsync_call* call, const std::string& external_id, const json::object& company);
    Written archive(crmsync_call* call, const std::string& external_id);
    // Adds each of `values` the select field lacks; never removes one.
    Written follow_options(crmsync_call* call, const std::string& field, const std::vector<std::string>& values);

private:
    struct Answer {
        int32_t rc = CRMSYNC_STATUS_OK;
        int status = 0;
        json::value body;
        std::string error;
    };
    Answer send(crmsync_call* call, const char* method, const std::string& path, const std::string& body);
    Written append(const std::string& file, const json::object& line, const std::string& id);

    const crmsync_host_api* host_;
    std::string base_url_, folder_, token_;
};

}  // namespace feedback
