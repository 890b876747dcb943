#pragma once
// The runner protocol: how the host and a plugin runner process (isolation "process") talk
// over a socketpair channel. A frame is [u32 size][u8 type][payload]; payload fields are
// u32/i64 little-endian-as-stored (both ends are the same machine and build) and strings as
// [u32 size][bytes]. A channel runs its calls one after another: the host sends
// `create`/`call` (several ahead, to keep a runner of map calls busy), the runner answers each
// with host-service requests (some wait for a reply) and ends it with `done`, in order. A
// call carries an id, and so do its `done` and any `emit_refused` the host sends for it. Both sides bound what they accept: a frame past kMaxFrame, a short
// payload or an unknown type is a broken channel, never a crash.
// Used by the host (runner_process.cpp) and the runner (runner_main.cpp); knows neither.
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace crmsync::wire {

enum class Type : uint8_t {
    // runner -> host
    hello = 1,      // abi_minor, capabilities, entry-point bits, id, version, description, config schema
    refused,        // why the library could not be opened or negotiated
    log,            // level, message (no reply)
    emit,           // JSON text (no reply; a refusal comes back as emit_refused)
    http,           // method, url, headers, body, timeout, idempotent -> http_reply
    secret,         // name -> secret_reply
    now,            // -> now_reply
    cancelled,      // -> cancelled_reply
    api_usage,      // used, limit (no reply)
    done,           // call id, status, fail message (ends the call)
    out_of_memory,  // the runner hit its memory limit (no reply)
    // host -> runner
    create = 32,      // call id, config JSON
    call,             // call id, entry point, argument
    destroy,          // destroy the instance and exit
    http_reply,       // rc, HTTP status, headers, body, fail message
    secret_reply,     // present, value
    now_reply,        // ms
    cancelled_reply,  // flag
    emit_refused,     // call id, the status the host's emit() returned for its item (not OK)
};

// The entry points a call names, and the bits `hello` uses to say which exist.
enum class Entry : uint32_t { create = 1, destroy = 2, authenticate = 4, fetch = 8, map = 16, write = 32 };
const char* entry_name(Entry entry);

constexpr uint32_t kMaxFrame = 512u << 20;  // a write batch of 10,000 operations is far smaller

class Writer {
public:
    explicit Writer(Type type);
    Writer& u32(uint32_t v);
    Writer& i64(int64_t v);
    Writer& str(std::string_view v);
    // The whole frame, its size filled in.
    const std::string& frame();

private:
    template <class T>
    Writer& put(T v) {
        bytes_.append(reinterpret_cast<const char*>(&v), sizeof v);
        return *this;
    }
    std::string bytes_;
};

class Reader {
public:
    explicit Reader(std::string_view payload) : rest_(payload) {}
    uint32_t u32();
    int64_t i64();
    std::string_view str();
    // False once any read ran past the payload: the frame was malformed.
    bool ok() const { return ok_; }

private:
    template <class T>
    T get() {
        T v{};
        if (rest_.size() < sizeof v) return ok_ = false, T{};
        std::memcpy(&v, rest_.data(), sizeof v);
        rest_.remove_prefix(sizeof v);
        return v;
    }
    std::string_view rest_;
    bool ok_ = true;
};

// One end of a channel: buffered frame reads, whole-frame writes.
class Channel {
public:
    explicit Channel(int fd = -1) : fd_(fd) {}
    Channel(Channel&& other) noexcept;
    Channel& operator=(Channel&& other) noexcept;
    Channel(const Channel&) = delete;
    Channel& operator=(const Channel&) = delete;
    ~Channel();
    int fd() const { return fd_; }

    enum class Got { frame, closed, timeout, broken };
    // Waits at most timeout_ms (-1: for ever) for the next frame.
    Got read(Type& type, std::string& payload, int timeout_ms);
    // True when a whole frame is already buffered or readable without waiting.
    bool readable_now();
    // Sends (or, with `later`, queues until the next send or flush) one frame.
    bool send(std::string_view frame, bool later = false);
    bool flush();
    size_t queued() const { return out_.size(); }

private:
    int fd_;
    std::string in_;
    size_t in_at_ = 0;
    std::string out_;
};

}  // namespace crmsync::wire
