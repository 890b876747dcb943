#include "parallel.h"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>

namespace crmsync {
namespace {

// One call's tasks, shared by its caller and the helpers that join it. A helper joins only
// while the job is open; the caller closes it and waits for the helpers inside before it
// returns, so no helper touches `task` (the caller's) afterwards.
class Job {
public:
    Job(size_t count, const std::function<void(size_t)>& task) : count_(count), task_(task) {}

    // A helper's part: tasks until none are left, unless the caller has closed the job.
    void help() {
        {
            std::lock_guard lock(mutex_);
            if (closed_) return;
            ++helping_;
        }
        work();
        std::lock_guard lock(mutex_);
        if (--helping_ == 0) done_.notify_all();
    }
    // The caller's part: tasks until none are left.
    void work() {
        for (size_t i; (i = next_++) < count_;) {
            try {
                task_(i);
            } catch (...) {
                std::lock_guard lock(mutex_);
                if (!first_) first_ = std::current_exception();
            }
        }
    }
    // No helper joins from now on; returns when those that did are out.
    void close() {
        std::unique_lock lock(mutex_);
        closed_ = true;
        done_.wait(lock, [&] { return helping_ == 0; });
    }
    void rethrow() const {
        if (first_) std::rethrow_exception(first_);
    }

private:
    std::atomic<size_t> next_{0};
    const size_t count_;
    const std::function<void(size_t)>& task_;
    std::mutex mutex_;
    std::condition_variable done_;
    size_t helping_ = 0;
    bool closed_ = false;
    std::exception_ptr first_;
};

// The helper threads, started as calls first need them and kept for the life of the
// process, each waiting for a job to join. As many run as calls have asked for at one time
// (at most kMaxThreads; past that a call gets fewer helpers and its caller does more).
class Pool {
public:
    static constexpr size_t kMaxThreads = 256;

    // Asks for `helpers` threads to join `job`; starts threads when too few are waiting.
    void offer(const std::shared_ptr<Job>& job, size_t helpers) {
        std::lock_guard lock(mutex_);
        for (size_t k = 0; k < helpers; ++k) queue_.push_back(job);
        while (waiting_ + starting_ < queue_.size() && threads_ < kMaxThreads) {
            try {
                std::thread([this] { serve(); }).detach();
            } catch (const std::system_error&) {
                break;  // no thread to be had now: the caller does the work itself
            }
            ++threads_;
            ++starting_;
        }
        for (size_t k = 0; k < helpers; ++k) wake_.notify_one();
    }
    // Takes back what no helper has taken up.
    void withdraw(const Job* job) {
        std::lock_guard lock(mutex_);
        std::erase_if(queue_, [&](const std::shared_ptr<Job>& queued) { return queued.get() == job; });
    }

    Pool* left_by_fork = nullptr;  // see forget_pool_after_fork

private:
    void serve() {
        pthread_setname_np(pthread_self(), "crmsync-helper");
        std::unique_lock lock(mutex_);
        --starting_;
        for (;;) {
            ++waiting_;
            wake_.wait(lock, [&] { return !queue_.empty(); });
            --waiting_;
            std::shared_ptr<Job> job = std::move(queue_.front());
            queue_.pop_front();
            lock.unlock();
            job->help();
            job.reset();
            lock.lock();
        }
    }

    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<std::shared_ptr<Job>> queue_;  // a job once for each helper it still wants
    size_t threads_ = 0, starting_ = 0, waiting_ = 0;
};

std::atomic<Pool*> g_pool{nullptr};
Pool* g_left_by_fork = nullptr;

// A forked child has only the thread that forked: the pool's threads are not there, and its
// lock may be held by one of them. The child starts a pool of its own when it needs one; the
// old one is kept reachable (a leak checker would report it otherwise) and never used.
void forget_pool_after_fork() {
    if (Pool* old = g_pool.load(std::memory_order_relaxed)) {
        old->left_by_fork = g_left_by_fork;
        g_left_by_fork = old;
    }
    g_pool.store(nullptr, std::memory_order_relaxed);
}

Pool& pool() {
    Pool* current = g_pool.load(std::memory_order_acquire);
    if (current) return *current;
    static std::once_flag registered;
    std::call_once(registered, [] { pthread_atfork(nullptr, nullptr, forget_pool_after_fork); });
    auto fresh = std::make_unique<Pool>();
    if (g_pool.compare_exchange_strong(current, fresh.get(), std::memory_order_acq_rel)) return *fresh.release();
    return *current;
}

// The caller works through the job, takes back what no helper took up, and waits for the
// helpers still inside.
void finish(Pool& pool, const std::shared_ptr<Job>& job) {
    job->work();
    pool.withdraw(job.get());
    job->close();
}

}  // namespace

void run_at_once(size_t count, size_t width, const std::function<void(size_t)>& task) {
    if (count == 0) return;
    const size_t helpers = std::min(width, count) - (width > 0 ? 1 : 0);
    if (helpers == 0) {  // this thread alone: nothing shared, nothing to allocate
        Job alone(count, task);
        alone.work();
        alone.rethrow();
        return;
    }
    auto job = std::make_shared<Job>(count, task);
    Pool& p = pool();
    p.offer(job, helpers);
    finish(p, job);
    job->rethrow();
}

void run_beside(const std::function<void()>& beside, const std::function<void()>& here) {
    const std::function<void(size_t)> task = [&](size_t) { beside(); };
    auto job = std::make_shared<Job>(1, task);
    Pool& p = pool();
    p.offer(job, 1);
    std::exception_ptr here_failed;
    try {
        here();
    } catch (...) {
        here_failed = std::current_exception();
    }
    finish(p, job);
    if (here_failed) std::rethrow_exception(here_failed);
    job->rethrow();
}

}  // namespace crmsync
