// The run turned round, for a module whose plugin reads the CRM (CRMSYNC_CAP_READS_CRM, ABI
// 1.1): what it reads (crm_read.h), pages of the CRM plugin's `changes` in (SystemModstamp,
// Id) order with deletions, and the destination's select options kept in step with the
// CRM's picklists. The stages after that are the run's own (pipeline.cpp).
#include "pipeline.h"

namespace crmsync {

std::optional<RunStop> Pipeline::prepare_crm_read() {
    RunCounts counts;
    crm_read_.emplace();
    return read_from_crm({b_.source, b_.module, b_.crm, b_.connection, caller_}, counts, *crm_read_);
}

// One operation per followed picklist: the destination's select field and the values the
// CRM has now. Unchanged since the last run, it costs nothing; a value the CRM no longer
// has is simply not in the list, and the destination keeps it.
std::optional<RunStop> Pipeline::sync_options(RunScope& scope, const RunOptions& options) {
    if (crm_read_->options.empty()) return std::nullopt;
    Batch batch;
    for (const auto& [field, to] : crm_read_->options) {
        json::array values;
        for (const auto& v : crm_read_->option_values[field]) values.emplace_back(v);
        PendingOperation p;
        p.op.object = "$options";
        p.op.action = "upsert";
        p.op.key = "options:" + to;
        p.op.source_id = crm_read_->object + "." + field;
        p.op.fields = json::object{{"field", to}, {"values", std::move(values)}};
        p.record_id = p.op.source_id;
        batch.ops.push_back(std::move(p));
    }
    return process(scope, batch, options);
}

// A page of the CRM's changes to the object after the cursor {"read": what was read,
// "changes": the CRM plugin's cursor, "synced": whether a whole pass has been read}. When
// what the plugin reads changed (another object, a field more), everything is read again:
// companies whose content did not change cost no write.
Outcome Pipeline::fetch_changes(const json::value& cursor, int64_t want, Page& page, RunCounts& counts) {
    std::string read = crm_read_->object;
    for (const auto& f : crm_read_->fields) read += " " + f;
    const json::object* wrapped = cursor.if_object();
    if (wrapped && find_text(*wrapped, "read") != read) {
        if (!find_text(*wrapped, "read").empty() || wrapped->contains("changes"))
            log(Level::info, "what the module reads from the CRM changed: reading every " + crm_read_->object + " again");
        wrapped = nullptr;
    }
    const json::value* after = wrapped ? wrapped->if_contains("changes") : nullptr;
    const bool synced = wrapped && find_bool(*wrapped, "synced").value_or(false);
    json::array fields;
    for (const auto& f : crm_read_->fields) fields.emplace_back(f);
    json::object request{{"type", "changes"},
                         {"object", crm_read_->object},
                         {"fields", std::move(fields)},
                         {"cursor", after ? *after : json::value(nullptr)},
                         {"limit", want}};
    bool overflowed = false;
    auto outcome = take_page(
        [&](const std::function<void()>& begin, const ItemSink& sink, const RecordSink* record_sink) {
            return call_crm(
                [&] {
                    begin();
                    return b_.crm.fetch(request, sink, record_sink);
                },
                counts);
        },
        want, page, overflowed);
    if (overflowed)
        return {CRMSYNC_STATUS_ERROR, "plugin " + b_.crm.plugin().id() + " answered more changes than asked for", false};
    if (outcome.ok() && page.checkpoint)
        page.checkpoint = json::object{{"read", read}, {"changes", *page.checkpoint}, {"synced", synced || !page.more}};
    return outcome;
}

}  // namespace crmsync
