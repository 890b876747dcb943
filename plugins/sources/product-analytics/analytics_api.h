#pragma once
// The analytics tool's reporting API (WalkMe Insights-style), through the host's HTTP service:
//   POST {base}/oauth/token          OAuth 2.0 client credentials (form) → a bearer token
//   GET  {base}/v1/reports           {"reports": [{"id", "name", "tags", "columns", "refreshed_at"}]}
//   GET  {base}/v1/reports/{id}/rows?limit=N[&cursor=C]
//                                    {"columns", "rows": [[cell, ...]], "next_cursor", "refreshed_at"}
// A 429 is waited out as Retry-After says; a 401 gets a new token once; 5xx and a 429 that
// does not end are RETRY (the run stops, the cursor stays). 410 means the report was
// refreshed under a cursor: read it again from the start.
#include <crmsync/plugin.h>

#include <boost/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace analytics {

namespace json = boost::json;

struct Report {
    std::string id, name, refreshed_at;
    std::vector<std::string> tags, columns;
};

struct RowsPage {
    std::vector<std::string> columns;
    std::vector<std::vector<std::string>> rows;  // cells as text ("" for an empty one)
    std::optional<std::string> next_cursor;
    std::string refreshed_at;
    bool cursor_expired = false;  // 410: the report was refreshed under the cursor
};

class AnalyticsApi {
public:
    AnalyticsApi(const crmsync_host_api* host, std::string base_url) : host_(host), base_url_(std::move(base_url)) {}

    // Gets a token for the client. AUTH_FAILED names the credentials (never their values).
    int32_t authenticate(crmsync_call* call, std::string client_id, std::string client_secret, std::string& error);
    int32_t reports(crmsync_call* call, std::vector<Report>& out, std::string& error);
    int32_t rows(crmsync_call* call, const std::string& report_id, const std::optional<std::string>& cursor, int64_t limit,
                 RowsPage& out, std::string& error);

private:
    // A GET under the token; a 401 renews the token once.
    int32_t get(crmsync_call* call, const std::string& url, int& status, json::value& body, std::string& error);
    int32_t request_token(crmsync_call* call, std::string& error);

    const crmsync_host_api* host_;
    std::string base_url_, client_id_, client_secret_, token_;
};

}  // namespace analytics
