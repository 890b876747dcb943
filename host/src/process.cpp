#include "process.h"

#include <malloc.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace crmsync {
namespace {
std::string hostname() {
    char host[256] = {};
    if (gethostname(host, sizeof host - 1) != 0) return "localhost";
    return host;
}
}  // namespace

std::string this_process_holder() { return hostname() + ":" + std::to_string(getpid()); }

bool holder_may_be_alive(const std::string& holder) {
    auto colon = holder.rfind(':');
    if (colon == std::string::npos || holder.substr(0, colon) != hostname()) return true;
    long pid = 0;
    auto [end, ec] = std::from_chars(holder.data() + colon + 1, holder.data() + holder.size(), pid);
    if (ec != std::errc() || end != holder.data() + holder.size() || pid <= 0) return true;
    return kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH;
}

void keep_freed_memory() {
    // A block is carved from the heap up to the largest size the C library allows for this
    // (32 MiB), not mapped and unmapped on its own; the heap's free top is kept up to
    // kKeptFreeBytes. Setting either also stops the library's own adjusting of them.
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, static_cast<int>(kKeptFreeBytes));
}

void return_freed_memory() { malloc_trim(0); }

std::optional<std::string> huge_page_tunables(const char* current, std::string_view thp_enabled) {
    if (current) return std::nullopt;
    if (thp_enabled.find("[madvise]") == std::string_view::npos) return std::nullopt;
    return "glibc.malloc.hugetlb=1";
}

void restart_with_heap_on_huge_pages(char** argv) {
#if defined(__SANITIZE_ADDRESS__)
    (void)argv;  // AddressSanitizer has its own allocator: glibc's tunables do not reach it
#else
    std::ifstream file("/sys/kernel/mm/transparent_hugepage/enabled");
    std::stringstream thp;
    thp << file.rdbuf();
    auto tunables = huge_page_tunables(std::getenv("GLIBC_TUNABLES"), thp.str());
    if (!tunables) return;
    // By the program's own path, not /proc/self/exe: the kernel names a process after the
    // file it executes, and ps, top and pkill should still see "crmsync", not "exe".
    char self[4096];
    ssize_t length = readlink("/proc/self/exe", self, sizeof self - 1);
    if (length <= 0) return;
    self[length] = '\0';
    if (std::string_view(self).ends_with(" (deleted)")) return;  // replaced since it started
    if (setenv("GLIBC_TUNABLES", tunables->c_str(), 1) != 0) return;
    execv(self, argv);
    unsetenv("GLIBC_TUNABLES");  // could not start again: go on as it is
#endif
}

}  // namespace crmsync
