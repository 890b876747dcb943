#pragma once
// Status and Result<T>: how host operations that can fail for reasons the caller must
// handle say so. Exceptions are for programming errors and never cross a plugin boundary
// or a thread. A message says what failed, on what (file, field, record) and what to do.
#include <string>
#include <utility>
#include <variant>

namespace crmsync {

class [[nodiscard]] Status {
public:
    enum class Kind {
        ok,
        config,       // bad manifest, flag or setting: exit code 2
        unreachable,  // the CRM or source could not be reached or refused us: exit code 3
        record,       // one record failed; the run goes on
        io,           // local files or the state store
        conflict,     // someone else holds what this needed (a module's lease)
        cancelled,
        internal,
    };

    Status() = default;
    static Status ok() { return {}; }
    static Status error(Kind kind, std::string message) { return Status(kind, std::move(message)); }
    static Status config(std::string message) { return {Kind::config, std::move(message)}; }
    static Status unreachable(std::string message) { return {Kind::unreachable, std::move(message)}; }
    static Status io(std::string message) { return {Kind::io, std::move(message)}; }

    bool is_ok() const { return kind_ == Kind::ok; }
    explicit operator bool() const { return is_ok(); }
    Kind kind() const { return kind_; }
    const std::string& message() const { return message_; }

    // The same failure with context in front: "manifests/a.json: " + message.
    Status prefixed(std::string_view context) const {
        if (is_ok()) return *this;
        return Status(kind_, std::string(context) + message_);
    }

private:
    Status(Kind kind, std::string message) : kind_(kind), message_(std::move(message)) {}
    Kind kind_ = Kind::ok;
    std::string message_;
};

template <class T>
class [[nodiscard]] Result {
public:
    Result(T value) : v_(std::move(value)) {}
    Result(Status status) : v_(std::move(status)) {}

    bool is_ok() const { return v_.index() == 0; }
    explicit operator bool() const { return is_ok(); }
    T& value() & { return std::get<0>(v_); }
    const T& value() const& { return std::get<0>(v_); }
    T&& value() && { return std::get<0>(std::move(v_)); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    T& operator*() & { return value(); }
    const Status& status() const {
        static const Status ok_status;
        return is_ok() ? ok_status : std::get<1>(v_);
    }

private:
    std::variant<T, Status> v_;
};

}  // namespace crmsync
