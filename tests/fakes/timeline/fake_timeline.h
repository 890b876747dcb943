#pragma once
// A fake of the customer-success timeline's REST API (Gainsight-style) on 127.0.0.1:
//   GET   /v1/ant/timeline/activities?modifiedAfter=<ISO UTC>&pageNumber=N&pageSize=K
//   GET   /v1/ant/timeline/attachments/<id>
//   PATCH /v1/ant/timeline/activities/<id>   {"salesforceTaskId"|"salesforceEventId": ...}
// each with the `Accesskey` header (401 otherwise). Activities come oldest `modified_at`
// first (then by id), modifiedAfter inclusive; `throttle(n)` answers the next n requests
// with 429 and Retry-After: 1. Write-backs are recorded (they do not change modified_at,
// as the timeline's system fields do not). Counts every request.
#include <boost/json.hpp>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "loopback_server.h"

namespace fakes {

class FakeTimeline {
public:
    explicit FakeTimeline(std::string access_key);
    ~FakeTimeline();
    int start();
    std::string base_url() const { return http_.base_url(); }

    // Adds an activity, or replaces the one with its id (an edit: give it a later modified_at).
    void put_activity(boost::json::object activity);
    void put_attachment(const std::string& id, std::string bytes);
    // The fixture: every case the sync rules name (see fake_timeline.cpp). `account_id` is
    // the CRM Account the timeline company "Acme" carries.
    void load_fixture(const std::string& account_id);
    static constexpr const char* kSwitchedOn = "2026-11-10T00:00:00Z";  // sync_attachments.since for the fixture

    void throttle(int requests);
    // While on, attachment downloads answer 503 (the file store is down).
    void fail_downloads(bool on);
    // {"id": activity id, "field": salesforceTaskId|salesforceEventId, "value": CRM id}, in order.
    std::vector<boost::json::object> writebacks();
    boost::json::object activity(const std::string& id);
    int requests();
    int throttled();

private:
    std::string access_key_;
    LoopbackServer http_;
    std::mutex mutex_;
    std::vector<boost::json::object> activities_;
    std::map<std::string, std::string> attachments_;
    std::vector<boost::json::object> writebacks_;
    int throttle_ = 0, requests_ = 0, throttled_ = 0;
    bool fail_downloads_ = false;
};

}  // namespace fakes
