#pragma once
// A plugin that goes wrong on purpose, for the isolation tests: config
// {"misbehave": {"in": "<entry point>", "how": "crash|abort|hang|hog", "after": N}} makes the
// named entry point segfault, abort, never return, or allocate without bound — on its
// (N+1)th call (default: the first). Run in process, each of these ends the host; run
// isolated, the host reports it and goes on.
#include <boost/json.hpp>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <thread>
#include <vector>

namespace testplugin {

// The misbehave schema fragment both test plugins accept in their config.
#define TEST_MISBEHAVE_SCHEMA                                                                      \
    R"("misbehave": {"type": "object", "additionalProperties": false, "required": ["in", "how"],)" \
    R"("properties": {"in": {"enum": ["create", "authenticate", "fetch", "map", "write"]},)"       \
    R"("how": {"enum": ["crash", "abort", "hang", "hog"]}, "after": {"type": "integer", "minimum": 0}}})"

struct Misbehaviour {
    std::string in, how;
    long long after = 0;
    long long calls = 0;

    explicit Misbehaviour(const boost::json::object& config) {
        if (auto* m = config.if_contains("misbehave")) {
            in = std::string(m->at("in").as_string());
            how = std::string(m->at("how").as_string());
            if (auto* a = m->as_object().if_contains("after")) after = a->as_int64();
        }
    }

    // Goes wrong here when told to; returns (with false) only for a hog that found no limit.
    bool at(std::string_view entry) {
        if (entry != in || calls++ < after) return true;
        if (how == "crash") {
            // SIGSEGV: a store to an address no process maps (not null, which UBSan would
            // catch first and turn into an orderly exit).
            volatile std::uintptr_t nowhere = 16;
            *reinterpret_cast<volatile int*>(nowhere) = 1;
        }
        if (how == "abort") std::abort();
        if (how == "hang")
            for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
        if (how == "hog") {
            // 16 MiB at a time, each touched, kept for ever; stop at 8 GiB so that a limit
            // that does not hold fails the test instead of the machine.
            static std::vector<char*> kept;
            for (int i = 0; i < 512; ++i) {
                auto* block = new char[16u << 20];
                std::memset(block, 1, 16u << 20);
                kept.push_back(block);
            }
            return false;
        }
        return true;
    }
};

}  // namespace testplugin
