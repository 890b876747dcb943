#pragma once
// A fuzz target's own checks: a broken promise aborts, so the driver keeps the input.
#include <cstdio>
#include <cstdlib>
#include <string>

inline void fuzz_require(bool ok, const std::string& what) {
    if (!ok) {
        std::fprintf(stderr, "fuzz check failed: %s\n", what.c_str());
        std::abort();
    }
}
