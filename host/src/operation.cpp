#include "operation.h"

#include <crmsync/support/text.hpp>

#include <algorithm>
#include <cctype>

#include "clock.h"
#include "digest.h"

namespace crmsync {
namespace {

Status problem(std::string message) { return Status::error(Status::Kind::record, std::move(message)); }

// A list of strings at `key` in `o`; absent is empty.
Result<std::vector<std::string>> strings_at(const json::object& o, std::string_view key, std::string_view where) {
    std::vector<std::string> out;
    auto* v = o.if_contains(key);
    if (!v) return out;
    if (!v->is_array())
        return problem("operation \"" + std::string(where) + "." + std::string(key) + "\" must be a list of strings");
    for (const auto& item : v->get_array()) {
        if (!item.is_string())
            return problem("operation \"" + std::string(where) + "." + std::string(key) + "\" must be a list of strings");
        out.emplace_back(item.get_string());
    }
    return out;
}

// An object of field -> non-empty string (refs, blobs, picklists), in the plugin's order.
Result<FieldDirectives> field_directives(const json::object& op, const char* name) {
    FieldDirectives out;
    auto* d = op.if_contains(name);
    if (!d) return out;
    if (!d->is_object()) return problem(std::string("operation \"") + name + "\" must be an object of field -> string");
    for (const auto& [field, value] : d->get_object()) {
        if (!value.is_string() || value.get_string().empty())
            return problem(std::string("operation \"") + name + "\"." + std::string(field) + " must be a non-empty string");
        out.emplace_back(std::string(field), std::string(value.get_string()));
    }
    return out;
}

Result<OwnerDirective> parse_owner(const json::value& v) {
    auto* o = v.if_object();
    if (!o) return problem("operation \"owner\" must be an object with \"email\"");
    OwnerDirective owner;
    owner.email = find_text(*o, "email");
    auto steps = strings_at(*o, "if_missing", "owner");
    if (!steps) return steps.status();
    owner.if_missing = std::move(steps.value());
    return owner;
}

Result<RelatedDirective> parse_related(const json::value& v) {
    auto* o = v.if_object();
    if (!o) return problem("operation \"related\" must be an object");
    RelatedDirective related;
    auto emails = strings_at(*o, "emails", "related");
    auto phones = strings_at(*o, "phones", "related");
    auto prefer = strings_at(*o, "prefer", "related");
    for (auto* list : {&emails, &phones, &prefer})
        if (!*list) return list->status();
    related.emails = std::move(emails.value());
    related.phones = std::move(phones.value());
    related.prefer = std::move(prefer.value());
    related.max_contacts = std::clamp<int64_t>(find_int(*o, "max_contacts").value_or(50), 1, 50);
    related.open_opportunity = find_bool(*o, "open_opportunity").value_or(false);
    return related;
}

// A CRM API name (Lead, Org_Id__c, ns__Usage__c): what may go into SOQL unquoted.
bool is_api_name(std::string_view name) {
    if (name.empty() || name.size() > 80 || !std::isalpha(static_cast<unsigned char>(name.front()))) return false;
    return std::all_of(name.begin(), name.end(), [](unsigned char c) { return std::isalnum(c) || c == '_'; });
}

Result<MatchKey> parse_match_key(const json::value& v) {
    auto* o = v.if_object();
    auto* value = o ? o->if_contains("value") : nullptr;
    if (!o || find_text(*o, "field").empty() || !value || value->is_null()) return problem("\"match\" needs a field and a value");
    if (!is_api_name(find_text(*o, "field")))
        return problem("\"match\" field \"" + find_text(*o, "field") + "\" is not a field name (letters, digits, _)");
    if (!value->is_string() && !value->is_number() && !value->is_bool())
        return problem("\"match\" value of " + find_text(*o, "field") + " must be text, a number or true/false");
    return MatchKey{find_text(*o, "field"), *value, scalar_text(*value), find_bool(*o, "case_sensitive").value_or(false)};
}

// One {field, value} pair, or a list of them that must all match.
Result<MatchDirective> parse_match(const json::value& v) {
    MatchDirective match;
    const json::array* list = v.if_array();
    if (list && (list->empty() || list->size() > MatchDirective::kMaxMatchKeys))
        return problem("\"match\" lists 1 to " + std::to_string(MatchDirective::kMaxMatchKeys) + " keys, not " +
                       std::to_string(list->size()));
    for (const auto& item : list ? *list : json::array{v}) {
        auto key = parse_match_key(item);
        if (!key) return key.status();
        for (const auto& seen : match.keys)
            if (support::ascii_lower(seen.field) == support::ascii_lower(key->field))
                return problem("\"match\" names the field " + key->field + " twice; each field is matched by one key");
        match.keys.push_back(std::move(key.value()));
    }
    return match;
}

json::object match_key_json(const MatchKey& key) {
    json::object o{{"field", key.field}, {"value", key.value}};
    if (key.case_sensitive) o["case_sensitive"] = true;
    return o;
}

json::object directives_json(const FieldDirectives& d) {
    json::object o;
    for (const auto& [field, text] : d) o[field] = text;
    return o;
}

json::array strings_json(const std::vector<std::string>& list) {
    json::array a;
    for (const auto& s : list) a.emplace_back(s);
    return a;
}

}  // namespace

bool RelatedDirective::allows(std::string_view object) const {
    if (prefer.empty()) return object == "Contact" || object == "Lead";
    return std::find(prefer.begin(), prefer.end(), object) != prefer.end();
}

std::string MatchDirective::describe() const {
    std::string text;
    for (const auto& key : keys) text += (text.empty() ? "" : " and ") + key.field + " = " + key.value_text;
    return text;
}

std::string MatchDirective::field_list() const {
    std::string text;
    for (const auto& key : keys) text += (text.empty() ? "" : ", ") + key.field;
    return text;
}

std::string text_value_problem(std::string_view field, std::string_view text) {
    auto nul = text.find('\0');
    if (nul == std::string_view::npos) return "";
    return "field " + std::string(field) + " holds a NUL character (U+0000) at byte " + std::to_string(nul) +
           ", which CRM text cannot carry (it would be cut off there); remove it in the source";
}

Result<Operation> Operation::parse(const json::value& emitted, const std::string& record_id) {
    auto* o = emitted.if_object();
    if (!o) return problem("an operation must be a JSON object");
    Operation op;
    op.object = find_text(*o, "object");
    if (op.object.empty()) return problem("operation has no \"object\"");
    if (!is_api_name(op.object))
        return problem("operation \"object\" \"" + op.object + "\" is not an object name (letters, digits, _)");
    op.key = find_text(*o, "key");
    if (op.key.empty()) return problem("operation has no \"key\" (every operation needs a deterministic key)");
    if (op.key.size() > 255) return problem("operation \"key\" is longer than 255 characters");
    op.action = find_text(*o, "action");
    if (op.action != "upsert" && op.action != "update" && op.action != "archive")
        return problem("operation \"action\" must be \"upsert\", \"update\" or \"archive\"");
    auto* fields = find_object(*o, "fields");
    if (!fields && op.action != "archive") return problem("operation has no \"fields\" object");
    if (fields) op.fields = *fields;
    for (const auto& [field, value] : op.fields)
        if (value.is_string())
            if (auto why = text_value_problem(field, value.get_string()); !why.empty()) return problem(why);
    op.source_id = find_string(*o, "source_id").value_or(record_id);
    op.id = find_text(*o, "id");
    op.writeback = find_bool(*o, "writeback").value_or(false);
    if (auto* v = o->if_contains("version"); v && !v->is_null()) {
        int64_t ms = 0;
        if (v->is_int64() && v->get_int64() >= 0) op.version = v->get_int64();
        else if (v->is_string() && parse_iso8601(std::string(v->get_string()), ms)) op.version = ms;
        else
            return problem("operation \"version\" must be a non-negative integer or an RFC 3339 time, not " +
                           json::serialize(*v));
    }
    if (auto* v = o->if_contains("owner")) {
        auto owner = parse_owner(*v);
        if (!owner) return owner.status();
        op.owner = std::move(owner.value());
    }
    if (auto* v = o->if_contains("related")) {
        auto related = parse_related(*v);
        if (!related) return related.status();
        op.related = std::move(related.value());
    }
    if (auto* v = o->if_contains("match")) {
        auto match = parse_match(*v);
        if (!match) return match.status();
        op.match = std::move(match.value());
    }
    auto picklists = field_directives(*o, "picklists");
    auto refs = field_directives(*o, "refs");
    auto blobs = field_directives(*o, "blobs");
    for (auto* d : {&picklists, &refs, &blobs})
        if (!*d) return d->status();
    op.picklists = std::move(picklists.value());
    op.refs = std::move(refs.value());
    op.blobs = std::move(blobs.value());
    return op;
}

const std::string* Operation::picklist_policy(std::string_view field) const {
    for (const auto& [name, policy] : picklists)
        if (name == field) return &policy;
    return nullptr;
}

json::object Operation::to_write_json() const {
    json::object o{{"object", object}, {"action", action}, {"key", key}, {"source_id", source_id}, {"fields", fields}};
    if (!id.empty()) o["id"] = id;
    return o;
}

json::object Operation::to_json() const {
    json::object o = to_write_json();
    if (writeback) o["writeback"] = true;
    if (owner) o["owner"] = json::object{{"email", owner->email}, {"if_missing", strings_json(owner->if_missing)}};
    if (related)
        o["related"] = json::object{{"emails", strings_json(related->emails)},
                                    {"phones", strings_json(related->phones)},
                                    {"prefer", strings_json(related->prefer)},
                                    {"max_contacts", related->max_contacts},
                                    {"open_opportunity", related->open_opportunity}};
    if (match && match->keys.size() == 1) {
        o["match"] = match_key_json(match->keys.front());
    } else if (match) {
        json::array keys;
        for (const auto& key : match->keys) keys.emplace_back(match_key_json(key));
        o["match"] = std::move(keys);
    }
    if (!picklists.empty()) o["picklists"] = directives_json(picklists);
    if (!refs.empty()) o["refs"] = directives_json(refs);
    if (!blobs.empty()) o["blobs"] = directives_json(blobs);
    return o;
}

std::string Operation::canonical_text() const {
    // The members to_json() writes, each in canonical_json's (bytewise) key order.
    std::string out;
    out.reserve(256 + 64 * fields.size());
    bool first = true;
    auto member = [&](std::string_view name) {
        if (!first) out += ',';
        first = false;
        append_json_string(name, out);
        out += ':';
    };
    auto strings = [&](const std::vector<std::string>& list) {
        out += '[';
        for (size_t i = 0; i < list.size(); ++i) {
            if (i) out += ',';
            append_json_string(list[i], out);
        }
        out += ']';
    };
    out += '{';
    member("action");
    append_json_string(action, out);
    if (!blobs.empty()) member("blobs"), append_canonical(directives_json(blobs), out);
    member("fields");
    append_canonical(fields, out);
    if (!id.empty()) member("id"), append_json_string(id, out);
    member("key");
    append_json_string(key, out);
    if (match) {
        member("match");
        if (match->keys.size() == 1) {
            append_canonical(match_key_json(match->keys.front()), out);
        } else {
            json::array keys;
            for (const auto& k : match->keys) keys.emplace_back(match_key_json(k));
            append_canonical(keys, out);
        }
    }
    member("object");
    append_json_string(object, out);
    if (owner) {
        member("owner");
        out += "{\"email\":";
        append_json_string(owner->email, out);
        out += ",\"if_missing\":";
        strings(owner->if_missing);
        out += '}';
    }
    if (!picklists.empty()) member("picklists"), append_canonical(directives_json(picklists), out);
    if (!refs.empty()) member("refs"), append_canonical(directives_json(refs), out);
    if (related) {
        member("related");
        out += "{\"emails\":";
        strings(related->emails);
        out += ",\"max_contacts\":" + std::to_string(related->max_contacts);
        out += related->open_opportunity ? ",\"open_opportunity\":true" : ",\"open_opportunity\":false";
        out += ",\"phones\":";
        strings(related->phones);
        out += ",\"prefer\":";
        strings(related->prefer);
        out += '}';
    }
    member("source_id");
    append_json_string(source_id, out);
    if (writeback) member("writeback"), out += "true";
    out += '}';
    return out;
}

std::string PendingOperation::write_json_text() const {
    std::string out = "{\"object\":";
    append_json_string(op.object, out);
    out += ",\"action\":";
    append_json_string(op.action, out);
    out += ",\"key\":";
    append_json_string(write_key(), out);
    out += ",\"source_id\":";
    append_json_string(op.source_id, out);
    if (!op.id.empty()) out += ",\"id\":", append_json_string(op.id, out);
    out += ",\"fields\":";
    out += json::serialize(op.fields);
    out += '}';
    return out;
}

std::string crm_key_for(std::string_view key) {
    auto plain = [](unsigned char c) { return c < 0x80 && c != '%' && !(c >= 'A' && c <= 'Z') && c > 0x20; };
    if (std::all_of(key.begin(), key.end(), plain)) return std::string(key);
    static const char* const kHex = "0123456789abcdef";
    std::string out;
    out.reserve(key.size() * 3);
    for (unsigned char c : key) {
        if (plain(c)) {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += kHex[c >> 4];
            out += kHex[c & 15];
        }
    }
    constexpr size_t kMax = 255;
    if (out.size() <= kMax) return out;
    // Cut at an escape's start, so the prefix stays well formed.
    size_t cut = 255 - 2 - 64;
    while (cut > 0 && (out[cut - 1] == '%' || (cut >= 2 && out[cut - 2] == '%'))) --cut;
    return out.substr(0, cut) + "%%" + sha256_hex(key);
}

const json::value& RecordText::value() const {
    if (!value_) {
        auto parsed = parse_json(text_);
        value_ = parsed && parsed->is_object() ? std::move(parsed.value()) : json::value(json::object{});
    }
    return *value_;
}

}  // namespace crmsync
