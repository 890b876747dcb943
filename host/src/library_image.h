#pragma once
// A plugin library's bytes, read once, checked (sha256, a whole ELF shared object for this
// machine) and sealed in memory for dlopen: what is loaded is exactly what was verified,
// whatever happens to the file afterwards, and a truncated or malformed file is refused
// instead of crashing the dynamic loader. One consequence: $ORIGIN in the library's RUNPATH
// names no folder, so a plugin's own dependencies (which no manifest verifies) are not
// loaded from beside it.
#include <functional>
#include <string>
#include <string_view>

#include "status.h"

namespace crmsync {

struct SealedImage {
    int fd = -1;
    std::string path;  // "/proc/self/fd/N"
};

// Reads `path` (at most 256 MiB), checks its SHA-256 against `sha256_hex`, its ELF image and
// whatever `also_check` checks of the same bytes (the signature), and answers the sealed
// copy (its fd, and the path dlopen reads it from). The copies live as long as the process,
// one per distinct library (by digest): the dynamic loader knows a library by its path, so
// a path must never come to mean other bytes.
Result<SealedImage> verified_library_copy(const std::string& path, const std::string& sha256_hex, const std::string& name,
                                          const std::function<Status(std::string_view image)>& also_check = {});

// Why `image` is not a whole ELF shared object for this machine; empty when it is.
std::string elf_image_problem(std::string_view image);

}  // namespace crmsync
