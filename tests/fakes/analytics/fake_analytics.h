#pragma once
// A fake of a product-analytics tool's reporting API (WalkMe Insights-style) on 127.0.0.1:
//   POST /oauth/token  grant_type=client_credentials&client_id=…&client_secret=…
//        → {"access_token", "token_type": "Bearer", "expires_in": 3600}; 401 invalid_client
//   GET  /v1/reports   → {"reports": [{"id", "name", "tags": [...], "columns": [...], "refreshed_at"}]}
//   GET  /v1/reports/<id>/rows?limit=N&cursor=C   (limit 1..1000, default 100)
//        → {"columns": [...], "rows": [[cell, ...], ...], "next_cursor": "…" | null, "refreshed_at"}
// Every /v1 request carries "Authorization: Bearer <token>" (401 otherwise, and for a token
// expired by expire_tokens()). A cursor from before the report's last refresh answers 410.
// `throttle(n)` answers the next n /v1 requests 429 with Retry-After: 1. Counts requests.
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "loopback_server.h"

namespace fakes {

class FakeAnalytics {
public:
    FakeAnalytics(std::string client_id, std::string client_secret);
    ~FakeAnalytics();
    int start();
    std::string base_url() const { return http_.base_url(); }

    // Adds a report, or refreshes it (new rows, a later refreshed_at; old cursors expire).
    void put_report(const std::string& id, const std::string& name, std::vector<std::string> tags,
                    std::vector<std::string> columns, std::vector<std::vector<std::string>> rows);
    void throttle(int requests);
    void expire_tokens();
    // Requests answered by kind: "token", "reports", "rows"; and how many were 429.
    int requests(const std::string& kind);
    int throttled();

private:
    struct Report {
        std::string name;
        std::vector<std::string> tags, columns;
        std::vector<std::vector<std::string>> rows;
        int refresh = 0;
        std::string refreshed_at;
    };
    LoopbackServer http_;
    std::mutex mutex_;
    std::string client_id_, client_secret_;
    std::map<std::string, Report> reports_;
    std::set<std::string> tokens_;
    std::map<std::string, int> requests_;
    int throttle_ = 0, throttled_ = 0, issued_ = 0, refreshes_ = 0;
};

}  // namespace fakes
