#pragma once
// Calls that may run at once: the CRM writes of a batch, its look-ups, a batch's write beside
// the next batch's reading. The helper threads are kept between calls: a run makes one or
// more such calls a batch, and `crmsync serve` makes them for as long as it runs, so the
// start of a thread for each (a clone, a stack mapped, and unmapped once glibc's cache of
// stacks is full) is not repeated.
#include <cstddef>
#include <functional>

namespace crmsync {

// Runs task(0) … task(count - 1) on up to `width` threads, the caller's among them, and
// returns when every one has finished. The first exception a task threw is thrown again
// here, after the others have finished. The caller works through the tasks too, so every
// one runs even when no helper is free, and a task may itself call run_at_once.
void run_at_once(size_t count, size_t width, const std::function<void(size_t)>& task);

// Runs `beside` on a helper thread while `here` runs on this one (what only this thread may
// do, such as reading the state store, goes in `here`); returns when both have finished. If
// no helper has taken `beside` by the time `here` is done, this thread runs it. Both always
// run; an exception from `here` is thrown again, else one from `beside`.
void run_beside(const std::function<void()>& beside, const std::function<void()>& here);

}  // namespace crmsync
