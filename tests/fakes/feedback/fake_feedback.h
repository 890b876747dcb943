#pragma once
// A fake of a customer-feedback tool's REST API (Flyle-style companies) on 127.0.0.1:
//   GET  /v1/custom-fields                       {"fields": [{"key", "type", "options": [...]}]}
//   POST /v1/custom-fields/<key>/options         {"value": "..."} → 201; 409 when it is there already
//   PUT  /v1/companies/external/<external id>    {"name", "custom_fields": {key: value}}
//                                                → 201 created / 200 updated {"id", "external_id", "updated_at"}
//   POST /v1/companies/external/<external id>/archive  → 200; 404 when no such company
// Every request carries "Authorization: Bearer <token>" (401 otherwise); `throttle(n)`
// answers the next n with 429 and Retry-After: 1. Custom field types: text, number, date,
// single_select, multi_select; a value of the wrong kind, an option the field lacks or an
// unknown field answers 422 naming it. Counts requests.
#include <boost/json.hpp>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "loopback_server.h"

namespace fakes {

class FakeFeedback {
public:
    explicit FakeFeedback(std::string token);
    ~FakeFeedback();
    int start();
    std::string base_url() const { return http_.base_url(); }

    void define_field(const std::string& key, const std::string& type, std::vector<std::string> options = {});
    void throttle(int requests);
    // The company with this external id ({} when none): name, custom_fields, archived, writes.
    boost::json::object company(const std::string& external_id);
    size_t company_count();
    std::vector<std::string> options(const std::string& field);
    int requests(const std::string& kind);  // "fields", "options", "upsert", "archive"
    int throttled();

private:
    struct Field {
        std::string type;
        std::vector<std::string> options;
    };
    LoopbackServer http_;
    std::mutex mutex_;
    std::string token_;
    std::map<std::string, Field> fields_;
    std::map<std::string, boost::json::object> companies_;  // by external id
    std::map<std::string, int> requests_;
    int throttle_ = 0, throttled_ = 0, next_id_ = 0;
};

}  // namespace fakes
