#pragma once
// Who this process is, as a lease holder ("hostname:pid"), and whether another holder on
// this machine is still alive — so a killed run's lease is taken over at once instead of
// blocking its module until the lease expires. And how it keeps the memory it frees.
#include <cstddef>
#include <string>

namespace crmsync {

std::string this_process_holder();
// False only when the holder names this host and no such process exists.
bool holder_may_be_alive(const std::string& holder);

// A run frees and allocates the same few tens of MB page after page. By default the C
// library hands large blocks and the heap's free top back to the kernel at once, and the
// next page touches them afresh: a page fault each 4 KiB, several microseconds apiece on a
// virtual machine — a fifth of a run's CPU. Called first thing in main: freed memory is
// kept for the next page instead (up to kKeptFreeBytes), and handed back between runs.
void keep_freed_memory();
inline constexpr size_t kKeptFreeBytes = size_t{256} << 20;
// Hands the freed memory kept back to the kernel: serve, once a tick passes without a run.
void return_freed_memory();

}  // namespace crmsync
