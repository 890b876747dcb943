#pragma once
// LeaseKeeper: keeps a run's module lease while the run lives. It renews the lease from its
// own thread and its own store connection every third of the lease's time to live — through
// slow pages, retry backoff and bulk jobs alike, not only between commits — and notes when
// the lease is no longer the run's (taken over under a new fence). The fence check in each
// batch's commit is what makes a lost lease harmless; lost() lets the run stop sooner.
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "clock.h"
#include "store.h"

namespace crmsync {

class LeaseKeeper {
public:
    LeaseKeeper(std::unique_ptr<StateStore> store, LeaseRow lease, int64_t ttl_ms, const Clock& clock);
    ~LeaseKeeper();  // stops renewing (the lease itself is released by its holder)
    LeaseKeeper(const LeaseKeeper&) = delete;
    LeaseKeeper& operator=(const LeaseKeeper&) = delete;

    // True once a renewal found the lease held by someone else.
    bool lost() const { return lost_.load(); }

private:
    void keep();

    std::unique_ptr<StateStore> store_;
    const LeaseRow lease_;
    const int64_t ttl_ms_;
    const Clock& clock_;
    std::atomic<bool> lost_{false};
    std::mutex mutex_;
    std::condition_variable wake_;
    bool stopping_ = false;
    std::thread thread_;
};

}  // namespace crmsync
