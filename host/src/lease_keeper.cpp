#include "lease_keeper.h"

#include <algorithm>
#include <chrono>

namespace crmsync {

LeaseKeeper::LeaseKeeper(std::unique_ptr<StateStore> store, LeaseRow lease, int64_t ttl_ms, const Clock& clock)
    : store_(std::move(store)), lease_(std::move(lease)), ttl_ms_(ttl_ms), clock_(clock), thread_([this] { keep(); }) {}

LeaseKeeper::~LeaseKeeper() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
}

void LeaseKeeper::keep() {
    const auto every = std::chrono::milliseconds(std::max<int64_t>(ttl_ms_ / 3, 1));
    std::unique_lock lock(mutex_);
    while (!wake_.wait_for(lock, every, [this] { return stopping_; })) {
        auto renewed = store_->renew_lease(lease_, clock_.now_ms(), ttl_ms_);
        // A store that failed for a moment is tried again next time; the lease outlives it.
        if (renewed && !*renewed) {
            lost_.store(true);
            return;
        }
    }
}

}  // namespace crmsync
