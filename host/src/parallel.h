#pragma once
// Calls that may run at once: the CRM writes of a batch, its look-ups.
#include <cstddef>
#include <functional>

namespace crmsync {

// Runs task(0) … task(count - 1) on up to `width` threads, the caller's among them, and
// returns when every one has finished. The first exception a task threw is thrown again
// here, after the others have finished.
void run_at_once(size_t count, size_t width, const std::function<void(size_t)>& task);

}  // namespace crmsync
