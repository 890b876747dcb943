// The pipeline's source side: gathering a page (the source plugin's fetch, the CRM's changes
// for a module that reads the CRM, or the webhook inbox) and writing CRM ids back to the source.
#include "pipeline.h"

namespace crmsync {

Pipeline::Page Pipeline::gather(const RunOptions& options, const json::value& cursor, int64_t fetched) {
    return options.inbox ? gather_inbox() : gather_source(options, cursor, fetched);
}

// Webhook events, oldest first: each body is one source record.
Pipeline::Page Pipeline::gather_inbox() {
    Page page;
    auto pending = store_.inbox_pending(b_.module.name, static_cast<int>(kBatchSize));
    if (!pending) {
        page.stop = RunStop{RunStatus::failed, pending.status().message(), false};
        return page;
    }
    for (auto& row : *pending) {
        auto parsed = parse_json(row.body);
        const bool object = parsed && parsed->is_object();
        auto id = object ? find_string(parsed->get_object(), "id") : std::nullopt;
        page.records.push_back({id.value_or("inbox-" + std::to_string(row.id)),
                                object ? RecordText(std::move(row.body), std::move(parsed.value())) : RecordText("{}")});
        page.inbox_ids.push_back(row.id);
    }
    page.more = page.records.size() == kBatchSize;
    return page;
}

// A page of 200 records for each CRM call the run may have in flight at once; when the CRM
// may load in bulk, pages up to the bulk batch size; read from the CRM, a page of up to
// 2,000 (one query's page on Salesforce). A stop with records gathered still lets them go
// through; a failure drops them.
Pipeline::Page Pipeline::gather_source(const RunOptions& options, const json::value& cursor, int64_t fetched) {
    const auto& bulk = b_.connection.bulk;
    const size_t per_request = reads_crm() ? kChangesPerRequest : kBatchSize;
    const size_t gather = reads_crm()                            ? kChangesPerRequest
                          : bulk.mode == BulkPolicy::Mode::never ? kBatchSize * parallel_calls()
                                                                 : static_cast<size_t>(bulk.max_operations);
    Page page;
    json::value page_cursor = cursor;
    RunCounts counts;
    bool source_more = true;
    for (bool page_more = true; page_more && page.records.size() < gather;) {
        int64_t want = static_cast<int64_t>(std::min(per_request, gather - page.records.size()));
        if (options.limit) want = std::min<int64_t>(want, *options.limit - fetched - static_cast<int64_t>(page.records.size()));
        if (want <= 0 || (cancel_.load() && !page.records.empty())) break;
        bool overflowed = false;
        const size_t before = page.records.size();
        auto outcome = reads_crm() ? fetch_changes(page_cursor, want, page, counts)
                                   : fetch_page(page_cursor, options.full, want, page, overflowed, counts);
        if (outcome.status == CRMSYNC_STATUS_CANCELLED) {
            page.stop = RunStop{RunStatus::stopped, kInterrupted, false};
            break;
        }
        if (outcome.status == CRMSYNC_STATUS_RATE_LIMITED) {
            page.stop =
                RunStop{RunStatus::stopped,
                        "the source's rate limit was reached: " + outcome.message + " (the next run resumes here)", false};
            break;
        }
        if (!outcome.ok() || overflowed) {
            page.records.clear();
            page.retries = counts.retries;
            page.stop =
                outcome.ok()
                    ? RunStop{RunStatus::failed,
                              "plugin " + (reads_crm() ? b_.crm : b_.source).plugin().id() + " emitted more than the " +
                                  std::to_string(want) + " records asked for (a plugin bug); nothing from that page was saved",
                              false}
                : outcome.plugin_died ? stop_for(outcome, "fetch")
                                      : RunStop{RunStatus::failed, "fetch failed: " + outcome.message, !is_input_fault(outcome)};
            return page;
        }
        if (page.checkpoint) page_cursor = *page.checkpoint;
        page_more = source_more = page.more && page.records.size() > before;
    }
    page.more = source_more && page.checkpoint.has_value();
    page.retries = counts.retries;
    return page;
}

Outcome Pipeline::fetch_page(const json::value& cursor, bool full, int64_t want, Page& page, bool& overflowed,
                             RunCounts& counts) {
    json::object request{{"type", "records"}, {"cursor", cursor}, {"full", full}, {"limit", want}};
    return take_page(
        [&](const std::function<void()>& begin, const ItemSink& sink, const RecordSink* record_sink) {
            return call_source(
                [&] {
                    begin();
                    return b_.source.fetch(request, sink, record_sink);
                },
                counts);
        },
        want, page, overflowed);
}

Outcome Pipeline::take_page(const PageFetch& fetch, int64_t want, Page& page, bool& overflowed) {
    std::vector<SourceRecord> records;
    std::optional<json::value> checkpoint;
    bool more = false;
    auto begin = [&] {  // each attempt starts the page again
        records.clear();
        checkpoint.reset();
        overflowed = false;
    };
    auto take = [&](std::string&& id, RecordText&& record) -> int32_t {
        if (static_cast<int64_t>(records.size()) >= want) {
            overflowed = true;  // its checkpoint would skip records we never took
            return CRMSYNC_STATUS_CANCELLED;
        }
        records.push_back({std::move(id), std::move(record)});
        return CRMSYNC_STATUS_OK;
    };
    // Nearly every record comes as its text; one in another form (an escaped key, say) is
    // parsed whole, and its text written from that.
    const RecordSink as_text = [&](RecordItemText&& item) -> int32_t {
        return take(std::move(item.id), RecordText(std::string(item.record)));
    };
    auto outcome = fetch(
        begin,
        [&](json::value&& item) -> int32_t {
            auto* o = item.if_object();
            auto type = o ? find_string(*o, "type") : std::nullopt;
            if (type == "record") {
                auto id = find_string(*o, "id");
                auto* rec = o->if_contains("record");
                if (!id || !rec || !rec->is_object()) {
                    log(Level::error, "a record item without \"id\" or \"record\" was emitted");
                    return CRMSYNC_STATUS_ERROR;
                }
                std::string text = json::serialize(*rec);
                return take(std::move(*id), RecordText(std::move(text), std::move(*rec)));
            }
            if (type == "checkpoint") {
                checkpoint = o->contains("cursor") ? o->at("cursor") : json::value(nullptr);
                more = find_bool(*o, "more").value_or(false);
                return CRMSYNC_STATUS_OK;
            }
            log(Level::error, "an item of unknown type was emitted during a records fetch");
            return CRMSYNC_STATUS_ERROR;
        },
        &as_text);
    if (overflowed) return {CRMSYNC_STATUS_OK, "", false};
    if (!outcome.ok()) return outcome;
    for (auto& r : records) page.records.push_back(std::move(r));
    if (checkpoint) {
        page.checkpoint = std::move(checkpoint);
        page.more = more;
    } else {
        page.more = false;
    }
    return outcome;
}

// The CRM ids of what was written go back to the source, when it writes.
std::optional<RunStop> Pipeline::write_back(Batch& batch) {
    const auto& writebacks = batch.writebacks;
    for (size_t start = 0; start < writebacks.size(); start += kBatchSize) {
        json::array items;
        for (size_t i = start; i < std::min(writebacks.size(), start + kBatchSize); ++i) items.push_back(writebacks[i]);
        const size_t count = items.size();
        std::vector<json::value> results;
        json::object request{{"operations", std::move(items)}};
        auto outcome = call_source(
            [&] {
                results.clear();
                return b_.source.write(request, results);
            },
            batch.commit.counts);
        for (size_t i = 0; i < count; ++i) {
            const json::object* r = i < results.size() ? results[i].if_object() : nullptr;
            if (outcome.ok() && r && find_bool(*r, "success").value_or(false)) continue;
            const auto& item = writebacks[start + i];
            std::string message = !outcome.ok() ? outcome.message : "the source refused the write-back";
            log(Level::warn,
                "write-back of " + find_text(item, "id") + " to source " + find_text(item, "source_id") + " failed: " + message);
        }
        if (outcome.plugin_died) return stop_for(outcome, "write-back");
    }
    return std::nullopt;
}

}  // namespace crmsync
