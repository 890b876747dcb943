#pragma once
// A fake of the shared-inbox helpdesk's REST API (Re:lation-style) on 127.0.0.1:
//   GET /api/v2/<message_box_id>/tickets/search?since=<ISO UTC>&page=N&per_page=50
// with `Authorization: Bearer <token>`, answering tickets (each with its actions, the
// source events) updated at or after `since`, oldest first, 50 a page; and a rate limit of
// N requests a minute answered with 403 and X-RateLimit-Reset. Counts every request.
#include <boost/json.hpp>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "loopback_server.h"

namespace fakes {

class FakeHelpdesk {
public:
    explicit FakeHelpdesk(std::string token);
    ~FakeHelpdesk();
    int start();
    std::string base_url() const { return http_.base_url(); }
    // A ticket: {"ticket_id", "subject", "last_updated_at", "actions": [event, ...]}.
    void put_ticket(const std::string& box, boost::json::object ticket);
    // At most `requests` per `window_s` seconds; past it, 403 with X-RateLimit-Reset.
    void rate_limit(int requests, int window_s);
    int requests();
    int rate_limited();

private:
    std::string token_;
    LoopbackServer http_;
    std::mutex mutex_;
    std::map<std::string, std::vector<boost::json::object>> tickets_;  // box -> tickets
    int limit_ = 0, window_s_ = 60, requests_ = 0, limited_ = 0;
    std::vector<int64_t> recent_;  // request times (ms) inside the window
};

}  // namespace fakes
