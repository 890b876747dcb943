// run_at_once and run_beside (host/src/parallel.h): the CRM writes and look-ups of a batch,
// and a batch's write beside the next one's reading, on helper threads kept between calls.
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "parallel.h"

using crmsync::run_at_once;
using crmsync::run_beside;

namespace {

// Tasks that each wait until `expected` of them have come in: they can only all finish when
// that many run at once. A wait that gives up (after far longer than any run takes) says so.
class Gathering {
public:
    explicit Gathering(size_t expected) : expected_(expected) {}
    bool arrive() {
        std::unique_lock lock(mutex_);
        ++arrived_;
        all_in_.notify_all();
        return all_in_.wait_for(lock, std::chrono::seconds(60), [&] { return arrived_ >= expected_; });
    }

private:
    std::mutex mutex_;
    std::condition_variable all_in_;
    size_t expected_, arrived_ = 0;
};

}  // namespace

TEST_CASE("parallel: every task runs once and no more run at once than the width") {
    for (size_t width : {size_t{0}, size_t{1}, size_t{2}, size_t{3}, size_t{8}}) {
        std::vector<std::atomic<int>> runs(40);
        std::atomic<int> running{0}, most{0};
        run_at_once(runs.size(), width, [&](size_t i) {
            const int now = ++running;
            for (int seen = most.load(); now > seen && !most.compare_exchange_weak(seen, now);) {}
            ++runs[i];
            std::this_thread::yield();
            --running;
        });
        INFO("width " << width);
        for (auto& r : runs) CHECK(r.load() == 1);
        CHECK(most.load() <= static_cast<int>(std::max<size_t>(width, 1)));
    }
    run_at_once(0, 4, [](size_t) { FAIL("no task to run"); });
}

TEST_CASE("parallel: as many tasks as the width run at once, each on its own thread") {
    Gathering all(4);
    std::mutex mutex;
    std::set<pid_t> threads;
    std::atomic<int> gathered{0};
    run_at_once(4, 4, [&](size_t) {
        if (all.arrive()) ++gathered;
        std::lock_guard lock(mutex);
        threads.insert(gettid());
    });
    CHECK(gathered.load() == 4);
    CHECK(threads.size() == 4);
    CHECK(threads.count(gettid()) == 1);  // the caller's thread is one of them
}

TEST_CASE("parallel: helper threads are kept from one call to the next") {
    // 100 calls that each need two helpers at once: threads started per call would be 200.
    std::mutex mutex;
    std::set<pid_t> helpers;
    int gathered = 0;
    for (int call = 0; call < 100; ++call) {
        Gathering all(3);
        std::atomic<int> in{0};
        run_at_once(3, 3, [&](size_t) {
            if (all.arrive()) ++in;
            std::lock_guard lock(mutex);
            if (gettid() != getpid()) helpers.insert(gettid());
        });
        gathered += in.load();
    }
    CHECK(gathered == 300);
    INFO(helpers.size() << " helper threads");
    CHECK(helpers.size() <= 32);
}

TEST_CASE("parallel: the first exception is thrown again once every task has finished") {
    std::atomic<int> ran{0};
    try {
        run_at_once(10, 3, [&](size_t i) {
            ++ran;
            if (i == 2 || i == 5) throw std::runtime_error("task " + std::to_string(i) + " failed");
        });
        FAIL("no exception");
    } catch (const std::runtime_error& e) {
        CHECK(ran.load() == 10);
        CHECK_THAT(e.what(), Catch::Matches("task [25] failed"));
    }
}

TEST_CASE("parallel: a task may run tasks at once itself") {
    std::atomic<int> inner{0};
    run_at_once(4, 4, [&](size_t) { run_at_once(4, 4, [&](size_t) { ++inner; }); });
    CHECK(inner.load() == 16);
}

TEST_CASE("parallel: run_beside runs one part on another thread while the other runs here") {
    Gathering both(2);
    pid_t beside_thread = 0;
    bool beside_met = false, here_met = false;
    run_beside(
        [&] {
            beside_thread = gettid();
            beside_met = both.arrive();
        },
        [&] { here_met = both.arrive(); });
    CHECK(beside_met);
    CHECK(here_met);
    CHECK(beside_thread != gettid());

    SECTION("both run when one throws, and the exception comes back") {
        bool beside_ran = false;
        CHECK_THROWS_WITH(run_beside([&] { beside_ran = true; }, [] { throw std::runtime_error("here failed"); }), "here failed");
        CHECK(beside_ran);
        bool here_ran = false;
        CHECK_THROWS_WITH(run_beside([] { throw std::runtime_error("beside failed"); }, [&] { here_ran = true; }),
                          "beside failed");
        CHECK(here_ran);
    }
}

TEST_CASE("parallel: a forked child starts helpers of its own") {
    // The parent's helpers exist: the child has none of them, only their bookkeeping.
    Gathering parent(3);
    run_at_once(3, 3, [&](size_t) { parent.arrive(); });
    pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        Gathering all(3);
        std::atomic<int> in{0};
        run_at_once(3, 3, [&](size_t) {
            if (all.arrive()) ++in;
        });
        _exit(in.load() == 3 ? 0 : 1);
    }
    int status = 0;
    REQUIRE(waitpid(child, &status, 0) == child);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
}
