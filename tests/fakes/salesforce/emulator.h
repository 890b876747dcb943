#pragma once
// A Salesforce REST emulator on 127.0.0.1: mock-crm's engine behind cpp-httplib, with the
// endpoints, bodies, status codes and headers Salesforce documents — OAuth token (client
// credentials, JWT bearer, refresh token), sObject Collections, sObject create/update,
// query with nextRecordsUrl, a SOSL subset for phones, describe, limits — plus switchable
// faults and a count of calls by endpoint. Used by the salesforce plugin's tests and the
// benchmark. Thread-safe: requests are served concurrently, the engine under one lock (a
// Collections request's body is parsed, and its answer written, outside it).
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <set>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>

#include "engine/engine.h"

#include "loopback_server.h"

namespace sfemu {

namespace json = boost::json;

struct Faults {
    double error_503_rate = 0;  // share of API requests answered 503
    double lock_rate = 0;       // share of records failing with UNABLE_TO_LOCK_ROW
    int64_t slow_ms = 0;        // delay before answering...
    double slow_rate = 0;       // ...this share of API requests
    int64_t token_ttl_s = 0;    // tokens expire after this many seconds (0: never)
    // Share of writes (POST, PATCH, DELETE) answered 500 after they were applied, as when a
    // request times out or a proxy fails on the way back: the client cannot tell.
    double error_after_apply_rate = 0;
    // Share of Composite subrequests answered 500 inside a 200 Composite answer.
    double subrequest_error_rate = 0;
    // The day's API budget is used up (by other integrations) when call number
    // budget_gone_at to endpoint budget_gone_on ("query", "composite", ...) arrives.
    std::string budget_gone_on;
    int64_t budget_gone_at = 0;
    // Added to every request (the login too), as a WAN round trip to an org would be.
    int64_t latency_ms = 0;
};

struct Settings {
    std::string database;             // mock-crm SQLite file
    std::function<int64_t()> now_ms;  // the org's clock (UTC ms); the system's when empty
    json::object schema;              // custom objects and fields
    json::object seed;                // records loaded when the database is new
    int64_t daily_api_limit = 100'000;
    std::map<std::string, int64_t> licenses{{"Salesforce", 10}, {"Salesforce Integration", 5}};
    std::string client_id = "test-client-id";
    std::string client_secret = "test-client-secret";
    std::string refresh_token = "test-refresh-token";
    std::string jwt_public_key_pem;  // verifies JWT bearer assertions
    std::string jwt_audience = "https://login.salesforce.com";
    std::string username = "admin@crmsync.mock";  // the user tokens act as
    int query_page_size = 2000;
    int bulk_polls_before_complete = 2;  // a bulk job reports InProgress this many times first
};

// The emulator's one lock, which also sums how long it has been held. A request's engine
// work (its SQLite reads and writes) is done under it, one request at a time, so no client
// gets more records a second through the emulator than records / held seconds.
class HeldMutex {
public:
    void lock() {
        mutex_.lock();
        since_ = std::chrono::steady_clock::now();
    }
    void unlock() {
        held_ns_ += std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - since_).count();
        mutex_.unlock();
    }
    double held_seconds() const { return static_cast<double>(held_ns_.load()) / 1e9; }

private:
    std::mutex mutex_;
    std::chrono::steady_clock::time_point since_;  // written and read with mutex_ held
    std::atomic<int64_t> held_ns_{0};
};

class Emulator {
public:
    explicit Emulator(Settings settings);
    ~Emulator();
    // Listens on 127.0.0.1 at a free port; returns it.
    int start();
    void stop();
    std::string base_url() const { return http_.base_url(); }

    void set_faults(const Faults& faults);
    // Calls answered, by endpoint name ("token", "query", "composite", "collections",
    // "describe", ...); "composite-query" counts the queries inside Composite calls.
    std::map<std::string, int64_t> calls();
    int64_t calls(const std::string& endpoint);
    // The most API requests (the login aside) that were being answered at one moment.
    int64_t most_at_once() const { return most_at_once_.load(); }
    // Seconds the lock has been held so far (see HeldMutex).
    double engine_held_seconds() const { return mutex_.held_seconds(); }
    // Runs fn with the engine under the lock (for test assertions).
    template <class Fn>
    auto with_engine(Fn&& fn) {
        std::lock_guard<HeldMutex> lock(mutex_);
        return fn(*engine_);
    }

private:
    void routes();
    Settings settings_;
    std::unique_ptr<mockcrm::Engine> engine_;
    fakes::LoopbackServer http_;
    HeldMutex mutex_;
    Faults faults_;
    std::map<std::string, int64_t> calls_;
    std::atomic<int64_t> at_once_{0}, most_at_once_{0};
    std::map<std::string, int64_t> tokens_;  // access token -> expiry (ms, 0: never)
    // The web-server flow: codes handed out (once each) and the refresh tokens they became.
    struct AuthorizationCode {
        std::string client_id, redirect_uri, challenge;
    };
    std::map<std::string, AuthorizationCode> codes_;
    std::set<std::string> refresh_tokens_;
    std::map<std::string, std::vector<json::object>> cursors_;  // query locator -> remaining rows
    struct BulkJob {
        std::string object, external, state = "Open", data, successful, failed;
        int polls = 0;
        bool update = false;  // an update job (records by Id), else an upsert by `external`
        bool processed_all = false;
        int64_t processed = 0, failures = 0;
    };
    // Runs on a worker thread, as Salesforce processes jobs after UploadComplete; takes the
    // lock per 200 rows so polls and other calls are answered meanwhile, and the job's
    // numberRecordsProcessed grows with each 200.
    void process(const std::string& id);
    std::map<std::string, BulkJob> jobs_;
    std::vector<std::thread> workers_;
    std::mt19937 random_{12345};
    int64_t token_counter_ = 0;
};

}  // namespace sfemu
