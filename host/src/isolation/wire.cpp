#include "wire.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <utility>

namespace crmsync::wire {

const char* entry_name(Entry entry) {
    switch (entry) {
        case Entry::create: return "create";
        case Entry::destroy: return "destroy";
        case Entry::authenticate: return "authenticate";
        case Entry::fetch: return "fetch";
        case Entry::map: return "map";
        case Entry::write: return "write";
    }
    return "?";
}

Writer::Writer(Type type) {
    bytes_.resize(4);
    bytes_.push_back(static_cast<char>(type));
}

Writer& Writer::u32(uint32_t v) { return put(v); }
Writer& Writer::i64(int64_t v) { return put(v); }

Writer& Writer::str(std::string_view v) {
    u32(static_cast<uint32_t>(v.size()));
    bytes_.append(v);
    return *this;
}

const std::string& Writer::frame() {
    auto size = static_cast<uint32_t>(bytes_.size() - 4);
    std::memcpy(bytes_.data(), &size, sizeof size);
    return bytes_;
}

uint32_t Reader::u32() { return get<uint32_t>(); }
int64_t Reader::i64() { return get<int64_t>(); }

std::string_view Reader::str() {
    uint32_t size = u32();
    if (!ok_ || rest_.size() < size) return ok_ = false, std::string_view();
    std::string_view v = rest_.substr(0, size);
    rest_.remove_prefix(size);
    return v;
}

Channel::Channel(Channel&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), in_(std::move(other.in_)), in_at_(other.in_at_), out_(std::move(other.out_)) {}

Channel& Channel::operator=(Channel&& other) noexcept {
    if (this != &other) {
        if (fd_ >= 0) ::close(fd_);
        fd_ = std::exchange(other.fd_, -1);
        in_ = std::move(other.in_);
        in_at_ = other.in_at_;
        out_ = std::move(other.out_);
    }
    return *this;
}

Channel::~Channel() {
    if (fd_ >= 0) ::close(fd_);
}

namespace {

// The size of the frame at the front of `buffer` when all of it is there; 0 when not yet;
// SIZE_MAX when its header is out of range.
size_t whole_frame(std::string_view buffer) {
    if (buffer.size() < 5) return 0;
    uint32_t size = 0;
    std::memcpy(&size, buffer.data(), sizeof size);
    if (size < 1 || size > kMaxFrame) return SIZE_MAX;
    return buffer.size() - 4 >= size ? size_t{size} + 4 : 0;
}

}  // namespace

Channel::Got Channel::read(Type& type, std::string& payload, int timeout_ms) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms < 0 ? 0 : timeout_ms);
    for (;;) {
        std::string_view buffered = std::string_view(in_).substr(in_at_);
        size_t whole = whole_frame(buffered);
        if (whole == SIZE_MAX) return Got::broken;
        if (whole) {
            type = static_cast<Type>(buffered[4]);
            payload.assign(buffered.substr(5, whole - 5));
            in_at_ += whole;
            if (in_at_ == in_.size()) in_.clear(), in_at_ = 0;
            return Got::frame;
        }
        if (in_at_ > 0) in_.erase(0, in_at_), in_at_ = 0;
        if (timeout_ms >= 0) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            pollfd p{fd_, POLLIN, 0};
            int ready = ::poll(&p, 1, static_cast<int>(std::max<int64_t>(left.count(), 0)));
            if (ready < 0 && errno == EINTR) continue;
            if (ready == 0) return Got::timeout;
        }
        size_t have = in_.size();
        in_.resize(have + (1 << 16));
        ssize_t n = ::read(fd_, in_.data() + have, 1 << 16);
        in_.resize(have + (n > 0 ? static_cast<size_t>(n) : 0));
        if (n < 0 && errno == EINTR) continue;
        if (n == 0) return Got::closed;
        if (n < 0) return errno == ECONNRESET ? Got::closed : Got::broken;
    }
}

bool Channel::readable_now() {
    if (whole_frame(std::string_view(in_).substr(in_at_))) return true;
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, 0) > 0;
}

bool Channel::send(std::string_view frame, bool later) {
    out_.append(frame);
    return later ? true : flush();
}

bool Channel::flush() {
    size_t done = 0;
    while (done < out_.size()) {
        ssize_t n = ::send(fd_, out_.data() + done, out_.size() - done, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            out_.clear();
            return false;
        }
        done += static_cast<size_t>(n);
    }
    out_.clear();
    return true;
}

}  // namespace crmsync::wire
