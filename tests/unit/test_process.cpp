// This process: the memory a run frees is kept for the next page, and handed back on ask.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <fstream>
#include <memory>
#include <vector>

#include "process.h"

namespace {
// Resident memory of this process, in KiB.
long resident_kib() {
    std::ifstream statm("/proc/self/statm");
    long size = 0, resident = 0;
    statm >> size >> resident;
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}
}  // namespace

TEST_CASE("memory a run frees stays for the next page, and goes back to the system when serve idles") {
#if defined(__SANITIZE_ADDRESS__)
    WARN("AddressSanitizer has its own allocator: nothing to see of glibc's here");
    return;
#endif
    crmsync::keep_freed_memory();
    const long before = resident_kib();
    {
        // 64 blocks of 1 MiB, each touched: glibc's default would map each one apart and
        // unmap it when freed (or trim the heap's top past a few MiB).
        std::vector<std::unique_ptr<char[]>> blocks;
        for (int i = 0; i < 64; ++i) {
            blocks.emplace_back(new char[1 << 20]);
            std::memset(blocks.back().get(), 1, 1 << 20);
        }
    }
    const long kept = resident_kib();
    INFO("resident before " << before << " KiB, after the blocks were freed " << kept << " KiB");
    CHECK(kept >= before + 48 * 1024);
    crmsync::return_freed_memory();
    CHECK(resident_kib() <= kept - 48 * 1024);
}

TEST_CASE("the heap goes on huge pages when the kernel gives them on request, unless the operator set tunables") {
    using crmsync::huge_page_tunables;
    CHECK(huge_page_tunables(nullptr, "always [madvise] never\n") == "glibc.malloc.hugetlb=1");
    CHECK_FALSE(huge_page_tunables("glibc.malloc.hugetlb=0", "always [madvise] never\n"));
    CHECK_FALSE(huge_page_tunables("glibc.malloc.arena_max=2", "always [madvise] never\n"));
    CHECK_FALSE(huge_page_tunables(nullptr, "[always] madvise never\n"));  // all memory has them already
    CHECK_FALSE(huge_page_tunables(nullptr, "always madvise [never]\n"));
    CHECK_FALSE(huge_page_tunables(nullptr, ""));  // no such file: a kernel without them
}
