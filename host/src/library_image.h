#pragma once
// A plugin library's bytes, read once, checked (sha256, a whole ELF shared object for this
// machine) and sealed in memory for dlopen: what is loaded is exactly what was verified,
// whatever happens to the file afterwards, and a truncated or malformed file is refused
// instead of crashing the dynamic loader. One consequence: $ORIGIN in the library's RUNPATH
// names no folder, so a plugin's own dependencies (which no manifest verifies) are not
// loaded from beside it.
#include <string>
#include <string_view>

#include "status.h"

namespace crmsync {

// Reads `path` (at most 256 MiB), checks its SHA-256 against `sha256_hex` and its ELF
// image, and answers a path dlopen reads the sealed copy from ("/proc/self/fd/N"). The
// copies live as long as the process, one per distinct library (by digest): the dynamic
// loader knows a library by its path, so a path must never come to mean other bytes.
Result<std::string> verified_library_copy(const std::string& path, const std::string& sha256_hex, const std::string& name);

// Why `image` is not a whole ELF shared object for this machine; empty when it is.
std::string elf_image_problem(std::string_view image);

}  // namespace crmsync
