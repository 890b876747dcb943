#include "notify.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <thread>

#include "digest.h"
#include "http.h"

namespace crmsync {
namespace {

std::string hostname() {
    char name[256] = {};
    if (gethostname(name, sizeof name - 1) != 0 || !*name) return "localhost";
    return name;
}

// The one line a person reads first (Slack's "text", the mail's first line).
std::string event_text(const std::string& event, const ModuleManifest& module, const RunReport& r) {
    const std::string run =
        r.run_id ? " (run " + std::to_string(r.run_id) + " on " + hostname() + ")" : " (on " + hostname() + ", no run started)";
    if (event == "recovered") return "crmsync: " + module.name + " recovered: " + std::string(run_status_name(r.status)) + run;
    if (event == "budget")
        return "crmsync: " + module.name + ": the CRM's daily API budget is under the module's reserve (" +
               std::to_string(r.api_limit - r.api_used) + " of " + std::to_string(r.api_limit) + " calls left)" + run;
    if (event == "errors")
        return "crmsync: " + module.name + ": " + std::to_string(r.counts.failed + r.counts.gave_up) + " record(s) failed" + run +
               "; see `crmsync errors " + module.name + "`";
    return "crmsync: " + module.name + " " + std::string(run_status_name(r.status)) + run +
           (r.message.empty() ? "" : ": " + r.message);
}

// Runs `argv` with `input` on its standard input; true when it exits 0 within the deadline.
bool run_with_input(const std::vector<std::string>& argv, const std::string& input, std::chrono::milliseconds deadline,
                    std::string& why) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        why = "no pipe";
        return false;
    }
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]), close(fds[1]);
        why = "fork failed";
        return false;
    }
    if (pid == 0) {
        dup2(fds[0], STDIN_FILENO);
        execv(args[0], args.data());
        _exit(127);
    }
    close(fds[0]);
    // A program that exits before reading all must not kill us with SIGPIPE.
    sigset_t pipe_signal, old_mask;
    sigemptyset(&pipe_signal);
    sigaddset(&pipe_signal, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_signal, &old_mask);
    size_t written = 0;
    while (written < input.size()) {
        ssize_t n = write(fds[1], input.data() + written, input.size() - written);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        written += static_cast<size_t>(n);
    }
    close(fds[1]);
    timespec none{0, 0};
    while (sigtimedwait(&pipe_signal, nullptr, &none) > 0) {}
    pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);

    const auto until = std::chrono::steady_clock::now() + deadline;
    int status = 0;
    while (waitpid(pid, &status, WNOHANG) == 0) {
        if (std::chrono::steady_clock::now() > until) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            why = "it did not finish within " + std::to_string(deadline.count() / 1000) + " s";
            return false;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return true;
    why = WIFEXITED(status) ? "it exited with " + std::to_string(WEXITSTATUS(status)) : "it was killed";
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127) why = "it could not be run";
    return false;
}

}  // namespace

std::string sync_state(const ModuleManifest& module, const RunReport& r, const NotificationManifest& n) {
    if (r.api_limit > 0 && static_cast<double>(r.api_limit - r.api_used) <= r.api_limit * module.api_reserve) return "budget";
    if (r.status == RunStatus::failed || r.status == RunStatus::stopped) return "failed";
    if (r.counts.failed + r.counts.gave_up >= n.errors_threshold) return "errors";
    return "ok";
}

Notifier::Notifier(const ManifestSet& manifests, StateStore& store, const Diagnostics& diagnostics, const Clock& clock)
    : manifests_(manifests), store_(store), diagnostics_(diagnostics), clock_(clock) {}

void Notifier::after_run(const ModuleManifest& module, const RunReport& report) {
    // A run that did not start, or that was stopped on purpose (a restart of serve, Ctrl-C),
    // tells nothing new about the module: neither a failure nor a recovery.
    if (report.status == RunStatus::busy || report.interrupted) return;
    for (const auto& n : manifests_.notifications) {
        if (!n.enabled || !n.watches(module.name)) continue;
        auto told = store_.notify_state(n.name, module.name);
        if (!told) {
            diagnostics_.warn("notification " + n.name + ": " + told.status().message());
            continue;
        }
        const std::string now = sync_state(module, report, n);
        if (now == told.value()) continue;
        // The change is claimed before it is told: of the workers that saw it (two quick runs
        // of the module, or each one finding a broken manifest), one tells it. A worker that
        // dies between the claim and the telling loses that one message; the next change is
        // told as ever.
        auto claimed = store_.change_notify_state(n.name, module.name, told.value(), now, clock_.now_ms());
        if (!claimed) {
            diagnostics_.warn("notification " + n.name + ": " + claimed.status().message());
            continue;
        }
        if (!claimed.value()) continue;  // another worker has told it
        const std::string event = now == "ok" ? "recovered" : now;
        bool delivered = true;
        if (n.wants(event)) {
            const std::string text = event_text(event, module, report);
            json::object o = run_report_json(module.name, report);
            o["text"] = text;
            o["event"] = event;
            o["message"] = report.message;
            o["host"] = hostname();
            o["at"] = iso8601_utc(clock_.now_ms());
            if (report.api_limit > 0) o["api_budget"] = json::object{{"used", report.api_used}, {"limit", report.api_limit}};
            delivered = deliver(n, o, text);
            if (delivered) diagnostics_.info("notification " + n.name + ": told about " + module.name + " (" + event + ")");
        }
        if (delivered) continue;
        // Not delivered: the claim goes back, and the change is told after the next run.
        if (auto back = store_.change_notify_state(n.name, module.name, now, told.value(), clock_.now_ms()); !back)
            diagnostics_.warn("notification " + n.name + ": " + back.status().message());
    }
}

void Notifier::not_loaded(const ModuleManifest& module, const std::string& why) {
    RunReport report;
    report.status = RunStatus::failed;
    report.message = why;
    after_run(module, report);
}

bool Notifier::deliver(const NotificationManifest& n, const json::object& event, const std::string& text) {
    if (n.channel == NotificationManifest::Channel::webhook) return post(n, json::serialize(event));
    std::string body = text + "\n\n";
    body += "module:  " + std::string(event.at("module").as_string()) + "\n";
    body += "event:   " + std::string(event.at("event").as_string()) + "\n";
    body += "run:     " + std::to_string(event.at("run").as_int64()) + " (crmsync log " +
            std::to_string(event.at("run").as_int64()) + ")\n";
    body += "status:  " + std::string(event.at("status").as_string()) + "\n";
    body += "counts:  " + json::serialize(event.at("counts")) + "\n";
    body += "at:      " + std::string(event.at("at").as_string()) + "\n";
    return mail(n, "[crmsync] " + std::string(event.at("module").as_string()) + ": " + std::string(event.at("event").as_string()),
                body);
}

bool Notifier::post(const NotificationManifest& n, const std::string& body) {
    std::vector<CredentialRef> refs;
    if (n.webhook_url_ref) refs.push_back(*n.webhook_url_ref);
    if (n.webhook_secret) refs.push_back(*n.webhook_secret);
    auto secrets = resolve_credentials(refs);
    if (!secrets) {
        diagnostics_.warn("notification " + n.name + ": " + secrets.status().message() + "; not sent");
        return false;
    }
    std::string url = n.webhook_url_ref ? std::string(secrets->at("webhook.url").as_string()) : n.webhook_url;
    if (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0) {
        diagnostics_.warn("notification " + n.name + ": webhook.url does not hold an http(s) URL; not sent");
        return false;
    }
    HttpRequest request;
    request.method = "POST";
    request.url = url;
    request.body = body;
    request.timeout_ms = n.timeout_ms;
    request.headers = {"Content-Type: application/json"};
    if (n.webhook_secret) {
        // Signed as crmsync's own webhooks are: HMAC-SHA256 of "<timestamp>.<body>".
        std::string ts = std::to_string(clock_.now_ms() / 1000);
        request.headers.push_back("X-Crmsync-Timestamp: " + ts);
        request.headers.push_back("X-Crmsync-Signature: sha256=" +
                                  hmac_sha256_hex(std::string(secrets->at("webhook.secret").as_string()), ts + "." + body));
    }
    HttpClient http;
    http.max_attempts = 1;  // a POST that timed out may have arrived: never repeated blind
    auto answer = http.perform(request);
    if (!answer) {
        diagnostics_.warn("notification " + n.name + ": " + answer.status().message() + "; told again after the next run");
        return false;
    }
    if (answer->status < 200 || answer->status > 299) {
        diagnostics_.warn("notification " + n.name + ": " + url_origin(url) + " answered " + std::to_string(answer->status) +
                          "; told again after the next run");
        return false;
    }
    return true;
}

bool Notifier::mail(const NotificationManifest& n, const std::string& subject, const std::string& text) {
    std::string to;
    for (const auto& address : n.email_to) to += (to.empty() ? "" : ", ") + address;
    const std::string from = n.email_from.empty() ? "crmsync@" + hostname() : n.email_from;
    std::string message = "From: " + from + "\nTo: " + to + "\nSubject: " + subject +
                          "\nMIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\n\n" +
                          text;
    std::string why;
    if (run_with_input({n.sendmail, "-t", "-oi"}, message, std::chrono::seconds(30), why)) return true;
    diagnostics_.warn("notification " + n.name + ": " + n.sendmail + " did not take the mail (" + why +
                      "); told again after the next run");
    return false;
}

}  // namespace crmsync
