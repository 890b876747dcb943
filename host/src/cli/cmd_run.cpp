// crmsync run: one run of one module (or every enabled one) now, with progress on a
// terminal and a summary line per module.
#include <unistd.h>

#include <cstdio>

#include "../notify.h"
#include "../pipeline.h"
#include "../process.h"
#include "commands.h"
#include "table.h"

namespace crmsync::cli {

int run(Context& ctx, const RunFlags& flags) {
    auto names = modules_named(ctx, flags.module, flags.all);
    if (!names) return kConfig;
    auto store = store_or_report(ctx);
    if (!store) return store_exit(store.status());
    const bool tty = isatty(STDERR_FILENO) && !flags.as_json;
    json::array reports;  // --json
    Notifier notifier(ctx.catalog.manifests(), *store.value(), ctx.catalog.diagnostics(), ctx.clock);
    int exit_code = kOk;
    auto worse = [&](int code) { exit_code = worse_exit(exit_code, code); };
    for (const auto& name : *names) {
        if (ctx.cancel.load()) break;
        auto instances = ctx.catalog.instantiate_module(name);
        if (!instances) {
            std::fprintf(stderr, "crmsync: %s\n", instances.status().message().c_str());
            worse(kConfig);
            if (flags.as_json)
                reports.push_back(json::object{
                    {"module", name}, {"run", nullptr}, {"status", "failed"}, {"message", instances.status().message()}});
            if (const auto* module = ctx.catalog.manifests().module(name); module && !flags.dry_run)
                notifier.not_loaded(*module, instances.status().message());
            continue;
        }
        auto& mi = instances.value();
        Pipeline pipeline(*store.value(), ModuleBinding{*mi.module, *mi.connection, *mi.source, *mi.crm}, ctx.clock, ctx.cancel,
                          ctx.catalog.diagnostics());
        RunOptions options;
        options.dry_run = flags.dry_run;
        options.full = flags.full;
        options.limit = flags.limit;
        options.lease_holder = this_process_holder();
        if (tty)
            options.progress = [&](const RunCounts& c) {
                std::fprintf(stderr, "\r%s: fetched %lld, written %lld, unchanged %lld, failed %lld ", name.c_str(),
                             (long long)c.fetched, (long long)(c.created + c.updated), (long long)c.unchanged,
                             (long long)c.failed);
            };
        RunReport report;
        try {
            report = pipeline.run(options);
        } catch (const std::exception& e) {
            // The run itself was finished and its lease released (Pipeline's RunScope).
            std::fprintf(stderr, "%scrmsync: %s: the run stopped on an unexpected error: %s\n", tty ? "\n" : "", name.c_str(),
                         e.what());
            worse(kUnreachable);
            continue;
        }
        if (tty) std::fprintf(stderr, "\r\033[K");
        if (flags.as_json) {
            json::object o = run_report_json(name, report);
            o["message"] = report.message;
            if (flags.dry_run) o["would"] = json::value_from(report.dry_run);
            reports.push_back(std::move(o));
        } else {
            if (flags.dry_run) {
                std::printf("%s: dry run — nothing was written\n", name.c_str());
                for (const auto& line : report.dry_run) std::printf("  would %s\n", line.c_str());
            }
            std::printf("%s\n", run_summary(name, report).c_str());
            std::fflush(stdout);
        }
        if (!flags.dry_run) notifier.after_run(*mi.module, report);
        if (report.status == RunStatus::busy) worse(kUnreachable);
        else if (report.status == RunStatus::failed) worse(report.unreachable ? kUnreachable : kConfig);
        else if (report.unreachable) worse(kUnreachable);
        else if (report.counts.failed > 0 && !flags.dry_run) worse(kRecordErrors);
    }
    if (flags.as_json) std::printf("%s\n", json::serialize(json::object{{"runs", reports}}).c_str());
    // Ctrl-C or SIGTERM: what was committed stays, but this is not a finished run.
    if (ctx.cancel.load()) {
        std::fprintf(stderr,
                     "crmsync: interrupted; everything up to the last saved batch stays, the next run goes on from there\n");
        return kInterrupted;
    }
    return exit_code;
}

}  // namespace crmsync::cli
