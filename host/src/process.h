#pragma once
// Who this process is, as a lease holder ("hostname:pid"), and whether another holder on
// this machine is still alive — so a killed run's lease is taken over at once instead of
// blocking its module until the lease expires. And how it keeps the memory it frees.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

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

// Even kept, the heap is first touched page by page as a run grows to its peak: at 4 KiB a
// fault, a tenth of a run's CPU. In 2 MiB pages (the kernel's transparent huge pages) that
// is 500 times fewer faults. glibc puts its heap there when GLIBC_TUNABLES holds
// glibc.malloc.hugetlb=1, and reads its tunables only as a program starts: so main calls
// restart_with_heap_on_huge_pages first, which starts the program again in place (execv of
// its own file: the same pid, name, arguments and open files) with that set, and returns
// when it need not or cannot. Child processes inherit it. (Under valgrind, which does not
// follow the exec unless told, set GLIBC_TUNABLES yourself.)
//
// The tunables to start again with, given the GLIBC_TUNABLES this process has (null when
// unset) and the kernel's setting (the text of /sys/kernel/mm/transparent_hugepage/enabled).
// None when the process should go on as it is: the operator set tunables of their own (kept
// as they are; glibc.malloc.hugetlb=0 turns this off), or the kernel gives huge pages only
// to all memory already ("always") or to none ("never", or no such file).
std::optional<std::string> huge_page_tunables(const char* current, std::string_view thp_enabled);
void restart_with_heap_on_huge_pages(char** argv);

}  // namespace crmsync
