#include "parallel.h"

#include <atomic>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace crmsync {

void run_at_once(size_t count, size_t width, const std::function<void(size_t)>& task) {
    std::atomic<size_t> next{0};
    std::exception_ptr first;
    std::mutex first_mutex;
    auto work = [&] {
        for (size_t i; (i = next++) < count;) {
            try {
                task(i);
            } catch (...) {
                std::lock_guard lock(first_mutex);
                if (!first) first = std::current_exception();
            }
        }
    };
    std::vector<std::jthread> helpers;
    for (size_t t = 1; t < std::min(width, count); ++t) helpers.emplace_back(work);
    work();
    helpers.clear();  // joins
    if (first) std::rethrow_exception(first);
}

}  // namespace crmsync
