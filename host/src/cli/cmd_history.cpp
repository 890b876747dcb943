// What happened: crmsync runs, log, errors, unmatched and links.
#include <cstdio>

#include "commands.h"
#include "table.h"

namespace crmsync::cli {

Result<std::unique_ptr<StateStore>> store_or_report(Context& ctx) {
    auto store = ctx.catalog.open_store();
    if (!store) std::fprintf(stderr, "crmsync: %s\n", store.status().message().c_str());
    return store;
}

std::optional<std::vector<std::string>> modules_named(Context& ctx, const std::optional<std::string>& module, bool all) {
    if (!all) return std::vector<std::string>{module.value_or("")};
    std::vector<std::string> names;
    for (const auto& m : ctx.catalog.manifests().modules)
        if (m.enabled) names.push_back(m.name);
    if (names.empty()) {
        std::fprintf(stderr, "crmsync: no enabled modules in %s\n", ctx.catalog.environment().manifest_dirs.front().c_str());
        return std::nullopt;
    }
    return names;
}

namespace {

std::string counts_text(const RunCounts& c) {
    return "fetched " + std::to_string(c.fetched) + ", created " + std::to_string(c.created) + ", updated " +
           std::to_string(c.updated) + ", unchanged " + std::to_string(c.unchanged) + ", failed " + std::to_string(c.failed) +
           ", API " + std::to_string(c.api_calls);
}

}  // namespace

int runs(Context& ctx, const std::optional<std::string>& module, int last, bool as_json) {
    auto store = store_or_report(ctx);
    if (!store) return store_exit(store.status());
    auto rows = store.value()->runs(module, last);
    if (as_json) {
        json::array out;
        for (const auto& r : rows)
            out.push_back(json::object{{"id", r.id},
                                       {"module", r.module},
                                       {"connection", r.connection},
                                       {"trigger", r.trigger},
                                       {"started", iso8601_utc(r.started_ms)},
                                       {"duration_ms", r.finished_ms ? r.finished_ms - r.started_ms : 0},
                                       {"status", r.status},
                                       {"message", r.message},
                                       {"counts", r.counts.to_json()}});
        std::printf("%s\n", json::serialize(out).c_str());
        return kOk;
    }
    std::vector<Row> table;
    for (const auto& r : rows)
        table.push_back({std::to_string(r.id), r.module, r.connection, r.trigger, iso8601_utc(r.started_ms),
                         r.finished_ms ? duration_text(r.finished_ms - r.started_ms) : "-", r.status, counts_text(r.counts)});
    if (table.empty()) std::printf("no runs yet\n");
    else
        std::printf("%s", render_table({"ID", "MODULE", "CONNECTION", "TRIGGER", "START (UTC)", "DURATION", "STATUS", "COUNTS"},
                                       table, 90)
                              .c_str());
    return kOk;
}

int log(Context& ctx, int64_t run_id, bool as_json) {
    auto store = store_or_report(ctx);
    if (!store) return store_exit(store.status());
    auto run = store.value()->run(run_id);
    if (!run) {
        std::fprintf(stderr, "crmsync: no run %lld (see `crmsync runs`)\n", static_cast<long long>(run_id));
        return kConfig;
    }
    if (as_json) {
        json::array lines;
        for (const auto& line : store.value()->run_log(run_id))
            lines.push_back(json::object{{"at", iso8601_utc(line.at_ms)}, {"level", line.level}, {"message", line.message}});
        std::printf("%s\n",
                    json::serialize(json::object{{"id", run->id},
                                                 {"module", run->module},
                                                 {"connection", run->connection},
                                                 {"trigger", run->trigger},
                                                 {"started", iso8601_utc(run->started_ms)},
                                                 {"finished", run->finished_ms ? json::value(iso8601_utc(run->finished_ms))
                                                                               : json::value(nullptr)},
                                                 {"status", run->status},
                                                 {"message", run->message},
                                                 {"counts", run->counts.to_json()},
                                                 {"log", lines}})
                        .c_str());
        return kOk;
    }
    std::printf("run %lld of %s (%s), started %s, %s\n", (long long)run->id, run->module.c_str(), run->trigger.c_str(),
                iso8601_utc(run->started_ms).c_str(), run->status.c_str());
    for (const auto& line : store.value()->run_log(run_id))
        std::printf("%s %-7s %s\n", iso8601_utc(line.at_ms).c_str(), line.level.c_str(), line.message.c_str());
    std::printf("%s\n", counts_text(run->counts).c_str());
    return kOk;
}

int errors(Context& ctx, const std::optional<std::string>& module, const std::string& since, const std::string& format,
           bool with_closed) {
    auto seconds = parse_duration(since);
    if (!seconds) {
        std::fprintf(stderr, "crmsync: --since \"%s\" is not a duration (use e.g. 30d, 24h, 365d)\n", since.c_str());
        return kConfig;
    }
    if (format != "table" && format != "csv" && format != "json") {
        std::fprintf(stderr, "crmsync: --format must be table, csv or json\n");
        return kConfig;
    }
    auto store = store_or_report(ctx);
    if (!store) return store_exit(store.status());
    auto rows = store.value()->errors(module, ctx.clock.now_ms() - *seconds * 1000, with_closed);
    auto state_text = [](const ErrorRow& e) {
        if (e.state == "closed") return "closed: " + e.closed_reason;
        return e.state == "gave_up" ? std::string("gave up") : e.state;
    };
    auto fields_text = [](const ErrorRow& e) {
        std::string out;
        for (const auto& f : e.fields) out += (out.empty() ? "" : ";") + f;
        return out;
    };
    if (format == "json") {
        json::array out;
        for (const auto& e : rows) {
            json::array fields;
            for (const auto& f : e.fields) fields.emplace_back(f);
            auto payload = parse_json(e.payload);
            out.push_back(json::object{{"id", e.id},
                                       {"run_id", e.run_id},
                                       {"module", e.module},
                                       {"connection", e.connection},
                                       {"occurred_at", iso8601_utc(e.at_ms)},
                                       {"entity_id", e.entity_id},
                                       {"key", e.key},
                                       {"object", e.object},
                                       {"exception_type", e.code},
                                       {"message", e.message},
                                       {"fields", fields},
                                       {"payload", payload ? payload.value() : json::value(e.payload)},
                                       {"state", e.state},
                                       {"closed_reason", e.closed_reason},
                                       {"closed_at", e.closed_ms ? json::value(iso8601_utc(e.closed_ms)) : nullptr}});
        }
        std::printf("%s\n", json::serialize(out).c_str());
        return kOk;
    }
    std::vector<Row> table;
    for (const auto& e : rows) {
        if (format == "csv")
            table.push_back({std::to_string(e.id), std::to_string(e.run_id), e.module, iso8601_utc(e.at_ms), e.entity_id, e.key,
                             e.object, e.code, e.message, fields_text(e), e.payload, e.connection, e.state, e.closed_reason,
                             e.closed_ms ? iso8601_utc(e.closed_ms) : ""});
        else table.push_back({iso8601_utc(e.at_ms), e.module, e.entity_id, state_text(e), e.code, fields_text(e), e.message});
    }
    if (format == "csv") {
        std::printf("%s", render_csv({"id", "run_id", "module", "occurred_at", "entity_id", "key", "object", "exception_type",
                                      "message", "fields", "payload", "connection", "state", "closed_reason", "closed_at"},
                                     table)
                              .c_str());
        return kOk;
    }
    if (table.empty())
        std::printf(with_closed ? "no errors in the last %s\n" : "no open errors in the last %s (--all for the history)\n",
                    since.c_str());
    else
        std::printf(
            "%s",
            render_table({"TIME (UTC)", "MODULE", "ENTITY", "STATE", "EXCEPTION TYPE", "FIELDS", "MESSAGE"}, table, 80).c_str());
    return kOk;
}

int unmatched(Context& ctx, const std::string& module, std::optional<int64_t> run_id, const std::string& format) {
    auto store = store_or_report(ctx);
    if (!store) return store_exit(store.status());
    std::optional<RunRow> run = run_id ? store.value()->run(*run_id) : store.value()->last_run(module);
    if (!run || run->module != module) {
        if (run_id)
            std::fprintf(stderr, "crmsync: %s has no run %lld (see `crmsync runs %s`)\n", module.c_str(),
                         static_cast<long long>(*run_id), module.c_str());
        else std::fprintf(stderr, "crmsync: %s has not run yet (see `crmsync runs`)\n", module.c_str());
        return kConfig;
    }
    auto rows = store.value()->unmatched(run->id);
    if (format == "json") {
        json::array out;
        for (const auto& u : rows)
            out.push_back(json::object{{"run_id", u.run_id},
                                       {"at", iso8601_utc(u.at_ms)},
                                       {"object", u.object},
                                       {"fields", u.fields},
                                       {"key", u.key},
                                       {"source_id", u.source_id}});
        std::printf("%s\n", json::serialize(out).c_str());
        return kOk;
    }
    std::vector<Row> table;
    for (const auto& u : rows)
        table.push_back({std::to_string(u.run_id), iso8601_utc(u.at_ms), u.object, u.fields, u.key, u.source_id});
    if (format == "csv") {
        std::printf("%s", render_csv({"run_id", "at", "object", "fields", "key", "source_id"}, table).c_str());
        return kOk;
    }
    if (table.empty() && run->counts.no_match > 0)
        std::printf("run %lld counted %lld without a match; its list is no longer kept (the last %d runs' are)\n",
                    static_cast<long long>(run->id), static_cast<long long>(run->counts.no_match), kUnmatchedRunsKept);
    else if (table.empty()) std::printf("every row of run %lld found its record\n", static_cast<long long>(run->id));
    else std::printf("%s", render_table({"RUN", "TIME (UTC)", "OBJECT", "FIELDS", "KEY", "SOURCE"}, table, 60).c_str());
    return kOk;
}

int links(Context& ctx, const std::string& module, const std::optional<std::string>& connection, int last, bool as_json) {
    auto store = store_or_report(ctx);
    if (!store) return store_exit(store.status());
    auto rows = store.value()->all_links(module, connection, last);
    if (as_json) {
        json::array out;
        for (const auto& l : rows)
            out.push_back(json::object{{"connection", l.connection},
                                       {"key", l.key},
                                       {"source_id", l.source_id},
                                       {"object", l.object},
                                       {"crm_id", l.crm_id},
                                       {"updated", iso8601_utc(l.updated_ms)}});
        std::printf("%s\n", json::serialize(out).c_str());
        return kOk;
    }
    std::vector<Row> table;
    for (const auto& l : rows) table.push_back({l.source_id, l.connection, l.object, l.crm_id, iso8601_utc(l.updated_ms), l.key});
    if (table.empty()) std::printf("nothing synced yet for %s\n", module.c_str());
    else std::printf("%s", render_table({"SOURCE", "CONNECTION", "OBJECT", "CRM ID", "UPDATED (UTC)", "KEY"}, table).c_str());
    return kOk;
}

}  // namespace crmsync::cli
