#pragma once
// The operator's commands (DESIGN's CLI contract). Each returns the process exit code:
// 0 success, 1 the run had record errors, 2 usage or configuration error, 3 the CRM or
// source could not be reached or refused us.
#include <atomic>
#include <optional>
#include <string>

#include "../catalog.h"

namespace crmsync::cli {

// Exit codes, as the README lists them.
enum Exit { kOk = 0, kRecordErrors = 1, kConfig = 2, kUnreachable = 3, kInterrupted = 4 };
// The worse of two exit codes, so that across modules the worst cause shows: configuration
// beats unreachable beats record errors.
inline int worse_exit(int a, int b) {
    auto rank = [](int c) { return c == kConfig ? 3 : c == kUnreachable ? 2 : c == kRecordErrors ? 1 : 0; };
    return rank(b) > rank(a) ? b : a;
}

struct Context {
    Catalog& catalog;
    const Clock& clock;
    std::atomic<bool>& cancel;
    std::atomic<bool>& reload;  // SIGHUP: read the manifests again (serve)
};

// The home's state store, or nothing after saying on stderr why it cannot be opened.
Result<std::unique_ptr<StateStore>> store_or_report(Context& ctx);
// The exit code for a store that did not open: a database server that cannot be reached is
// kUnreachable, anything else (a bad manifest, a file that cannot be made) kConfig.
inline int store_exit(const Status& why) { return why.kind() == Status::Kind::unreachable ? kUnreachable : kConfig; }
// The module named, or (all) every enabled one; nothing after saying there are none.
std::optional<std::vector<std::string>> modules_named(Context& ctx, const std::optional<std::string>& module, bool all);

int modules(Context& ctx, bool as_json);
// check of one module, or (all) of every enabled one in turn; the worst exit code.
int check_modules(Context& ctx, const std::string& module, bool all, bool as_json);
struct RunFlags {
    std::optional<std::string> module;
    bool all = false, dry_run = false, full = false;
    std::optional<int64_t> limit;
    bool as_json = false;  // one JSON document at the end instead of summary lines
};
int run(Context& ctx, const RunFlags& flags);
int runs(Context& ctx, const std::optional<std::string>& module, int last, bool as_json);
int log(Context& ctx, int64_t run_id, bool as_json);
int errors(Context& ctx, const std::optional<std::string>& module, const std::string& since, const std::string& format,
           bool with_closed);
// Closes open errors an operator gives up on: one record's (by key or source id), or a module's.
int dismiss(Context& ctx, const std::optional<std::string>& key, const std::optional<std::string>& module);
// The source rows of a run (default: the module's last) whose match keys found no record.
int unmatched(Context& ctx, const std::string& module, std::optional<int64_t> run_id, const std::string& format);
int links(Context& ctx, const std::string& module, const std::optional<std::string>& connection, int last, bool as_json);
int reset(Context& ctx, const std::string& module, const std::optional<std::string>& connection, bool yes);
int serve(Context& ctx, const std::string& listen);
// Signs CONNECTION in through a browser (OAuth authorization code + PKCE on 127.0.0.1:port)
// and stores the secret it gives where the connection's reference points.
int connect(Context& ctx, const std::string& connection, int port, int64_t timeout_s);
int crm_query(Context& ctx, const std::string& soql, const std::optional<std::string>& crm, bool as_json);

}  // namespace crmsync::cli
