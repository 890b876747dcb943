// What every state store shares: run counters as JSON, and how much of a failed record
// the error log keeps.
#include "store.h"

#include <crmsync/support/text.hpp>

namespace crmsync {

// What the error log keeps of one record: enough to see what it was, not a 50 MB copy for a year.
std::string ErrorRow::bounded_payload(const std::string& payload) {
    if (payload.size() <= kMaxPayloadBytes) return payload;
    return json::serialize(json::object{
        {"cut", true}, {"bytes", payload.size()}, {"head", support::utf8_prefix_bytes(payload, kMaxPayloadBytes / 2)}});
}

std::string ErrorRow::bounded_message(const std::string& message) {
    if (message.size() <= kMaxMessageBytes) return message;
    return support::utf8_prefix_bytes(message, kMaxMessageBytes) + "… (" + std::to_string(message.size()) + " bytes in all)";
}

std::string ErrorRow::fields_json() const {
    json::array list;
    for (const auto& f : fields) list.emplace_back(f);
    return json::serialize(list);
}

void ErrorRow::set_fields_json(const std::string& text) {
    fields.clear();
    auto parsed = parse_json(text);
    if (parsed && parsed->is_array())
        for (const auto& f : parsed->get_array())
            if (f.is_string()) fields.emplace_back(f.get_string());
}

void RunCounts::add(const RunCounts& o) {
    fetched += o.fetched;
    created += o.created;
    updated += o.updated;
    unchanged += o.unchanged;
    ignored += o.ignored;
    failed += o.failed;
    no_match += o.no_match;
    api_calls += o.api_calls;
    retries += o.retries;
    retried += o.retried;
    recovered += o.recovered;
    gave_up += o.gave_up;
    for (const auto& [k, v] : o.extra) {
        auto before = extra.if_contains(k);
        int64_t base = before && before->is_int64() ? before->get_int64() : 0;
        extra[k] = base + (v.is_int64() ? v.get_int64() : 0);
    }
}

void RunCounts::bump(const std::string& name) {
    auto* v = extra.if_contains(name);
    extra[name] = (v && v->is_int64() ? v->get_int64() : 0) + 1;
}

json::object RunCounts::to_json() const {
    json::object o{{"fetched", fetched},     {"created", created},     {"updated", updated},
                   {"unchanged", unchanged}, {"ignored", ignored},     {"failed", failed},
                   {"no_match", no_match},   {"api_calls", api_calls}, {"retries", retries}};
    for (auto [name, value] : {std::pair{"retried", retried}, {"recovered", recovered}, {"gave_up", gave_up}})
        if (value) o[name] = value;
    if (!extra.empty()) o["services"] = extra;
    return o;
}

RunCounts RunCounts::from_json(const json::object& o) {
    RunCounts c;
    c.fetched = find_int(o, "fetched").value_or(0);
    c.created = find_int(o, "created").value_or(0);
    c.updated = find_int(o, "updated").value_or(0);
    c.unchanged = find_int(o, "unchanged").value_or(0);
    c.ignored = find_int(o, "ignored").value_or(0);
    c.failed = find_int(o, "failed").value_or(0);
    c.no_match = find_int(o, "no_match").value_or(0);
    c.api_calls = find_int(o, "api_calls").value_or(0);
    c.retries = find_int(o, "retries").value_or(0);
    c.retried = find_int(o, "retried").value_or(0);
    c.recovered = find_int(o, "recovered").value_or(0);
    c.gave_up = find_int(o, "gave_up").value_or(0);
    if (auto* s = find_object(o, "services")) c.extra = *s;
    return c;
}

}  // namespace crmsync
