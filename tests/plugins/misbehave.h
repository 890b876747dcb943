#pragma once
// A plugin that goes wrong on purpose, for the isolation tests: config
// {"misbehave": {"in": "<entry point>", "how": "crash|abort|hang|hog", "after": N}} makes the
// named entry point segfault, abort, never return, or allocate without bound — on its
// (N+1)th call (default: the first). Run in process, each of these ends the host; run
// isolated, the host reports it and goes on.
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cerrno>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

extern char** environ;

namespace testplugin {

// The misbehave schema fragment both test plugins accept in their config.
#define TEST_MISBEHAVE_SCHEMA                                                                      \
    R"("misbehave": {"type": "object", "additionalProperties": false, "required": ["in", "how"],)" \
    R"("properties": {"in": {"enum": ["create", "authenticate", "fetch", "map", "write"]},)"       \
    R"("how": {"enum": ["crash", "abort", "hang", "hog", "network", "exec"]}, "after": {"type": "integer", "minimum": 0}}})"

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

    std::string why;  // what went wrong, when at() says false

    // Goes wrong here when told to. False (with `why`) for a hog that found no limit, and for
    // a network socket or a program the sandbox refused.
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
        if (how == "network") {
            int s = ::socket(AF_INET, SOCK_STREAM, 0);
            if (s < 0) return why = std::string("socket(AF_INET): ") + std::strerror(errno), false;
            ::close(s);
            return true;
        }
        if (how == "exec") {
            pid_t pid = 0;
            const char* argv[] = {"/bin/true", nullptr};
            int rc = posix_spawn(&pid, "/bin/true", nullptr, nullptr, const_cast<char* const*>(argv), environ);
            if (rc != 0) return why = std::string("posix_spawn(/bin/true): ") + std::strerror(rc), false;
            waitpid(pid, nullptr, 0);
            return true;
        }
        if (how == "hog") {
            // 16 MiB at a time, each touched, kept for ever; stop at 8 GiB so that a limit
            // that does not hold fails the test instead of the machine.
            static std::vector<char*> kept;
            for (int i = 0; i < 512; ++i) {
                auto* block = new char[16u << 20];
                std::memset(block, 1, 16u << 20);
                kept.push_back(block);
            }
            why = "allocated 8 GiB without meeting a limit";
            return false;
        }
        return true;
    }
};

}  // namespace testplugin
