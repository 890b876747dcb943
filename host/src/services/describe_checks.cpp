// Services: every operation checked against the CRM's describe before any API call is
// spent on it — unknown fields, types, lengths, required fields and restricted picklists
// (adding a missing value first when the operation asks for create_missing).
#include <crmsync/support/text.hpp>

#include <algorithm>

#include "services.h"

namespace crmsync {
namespace {

using crmsync::support::utf8_length;
using crmsync::support::utf8_prefix;

bool is_text_type(std::string_view t) {
    return t == "string" || t == "textarea" || t == "email" || t == "phone" || t == "url" || t == "picklist" ||
           t == "multipicklist" || t == "combobox" || t == "reference" || t == "id" || t == "base64" || t == "encryptedstring";
}

// The JSON value fits the describe type; the message says what was expected otherwise.
std::optional<std::string> type_problem(const DescribedField& f, const json::value& v) {
    if (v.is_null()) return std::nullopt;
    if (f.text) return v.is_string() ? std::nullopt : std::optional<std::string>("text");
    const std::string& t = f.type;
    if (t == "boolean") return v.is_bool() ? std::nullopt : std::optional<std::string>("true or false");
    if (t == "int") return v.is_int64() || v.is_uint64() ? std::nullopt : std::optional<std::string>("a whole number");
    if (t == "double" || t == "currency" || t == "percent")
        return v.is_number() ? std::nullopt : std::optional<std::string>("a number");
    if (t == "date") {
        bool ok = v.is_string() && v.get_string().size() == 10 && v.get_string()[4] == '-' && v.get_string()[7] == '-';
        return ok ? std::nullopt : std::optional<std::string>("a date YYYY-MM-DD");
    }
    if (t == "datetime")
        return v.is_string() && v.get_string().size() >= 19 ? std::nullopt : std::optional<std::string>("a date-time");
    if (t == "junctionidlist") return v.is_array() ? std::nullopt : std::optional<std::string>("a list of ids");
    return std::nullopt;
}

// An update cannot change create-only fields (a File's content, its name on disk, where it
// was first published): they were set when the record was created, so an update leaves them
// out instead of having the CRM refuse it.
void drop_create_only(Operation& op, const std::map<std::string, DescribedField, std::less<>>& describe) {
    auto create_only = [&](std::string_view name) {
        auto it = describe.find(name);
        return it != describe.end() && it->second.create_only;
    };
    std::vector<std::string> drop;
    for (const auto& [name, value] : op.fields)
        if (create_only(name)) drop.emplace_back(name);
    for (const auto& name : drop) op.fields.erase(name);
    for (auto* directives : {&op.refs, &op.blobs})
        std::erase_if(*directives, [&](const auto& d) { return create_only(d.first); });
}

std::vector<std::string> split_multipicklist(const std::string& s) {
    std::vector<std::string> parts;
    size_t start = 0;
    for (size_t semi; (semi = s.find(';', start)) != std::string::npos; start = semi + 1)
        parts.push_back(s.substr(start, semi - start));
    parts.push_back(s.substr(start));
    return parts;
}

std::string missing_field_message(const std::string& object, const std::string& name, const std::string& module) {
    return object + "." + name +
           " does not exist in the CRM (a configuration error: create the field or fix the mapping; `crmsync check " + module +
           "` lists these)";
}

}  // namespace

std::vector<std::string> active_picklist_values(const json::object& describe_field) {
    std::vector<std::string> out;
    if (auto* values = find_array(describe_field, "picklistValues"))
        for (const auto& v : *values)
            if (auto* vo = v.if_object(); vo && find_bool(*vo, "active").value_or(true)) out.push_back(find_text(*vo, "value"));
    return out;
}

void Services::load_describes(const std::set<std::string>& objects) {
    json::array missing;
    for (const auto& o : objects)
        if (!describes_.count(o)) missing.emplace_back(o);
    if (missing.empty()) return;
    std::map<std::string, Describe> got;
    auto outcome = fetch_crm(
        json::object{{"type", "describe"}, {"objects", missing}},
        [&](json::value&& item) -> int32_t {
            auto* o = item.if_object();
            if (!o || find_string(*o, "type") != "describe") return CRMSYNC_STATUS_OK;
            Describe d;
            d.ok = true;
            if (auto* fields = find_array(*o, "fields"))
                for (const auto& f : *fields)
                    if (auto* fo = f.if_object()) {
                        DescribedField field{.raw = *fo, .type = find_text(*fo, "type")};
                        field.text = is_text_type(field.type);
                        field.length = std::max<int64_t>(find_int(*fo, "length").value_or(0), 0);
                        field.restricted = (field.type == "picklist" || field.type == "multipicklist") &&
                                           find_bool(*fo, "restrictedPicklist").value_or(false);
                        field.create_only =
                            find_bool(*fo, "createable").value_or(true) && !find_bool(*fo, "updateable").value_or(true);
                        d.fields[find_text(*fo, "name")] = std::move(field);
                    }
            for (const auto& [name, field] : d.fields) {
                const json::object& f = field.raw;
                if (name == "Id" || name == "OwnerId" || field.type == "boolean") continue;
                if (!find_bool(f, "nillable").value_or(true) && find_bool(f, "createable").value_or(false) &&
                    !find_bool(f, "defaultedOnCreate").value_or(false))
                    d.required.push_back(name);
            }
            got[find_text(*o, "object")] = std::move(d);
            return CRMSYNC_STATUS_OK;
        },
        "the describe call");
    if (stopped()) return;  // nothing cached: the next run asks again
    for (const auto& o : missing) {
        std::string name(o.as_string());
        if (got.count(name)) describes_[name] = std::move(got[name]);
        else if (outcome.ok()) describes_[name] = Describe{{}, false, "the CRM has no object " + name, {}};
        else {
            // One describe call fails for all it asked; ask one by one so a bad name is named.
            if (missing.size() > 1) {
                load_describes({name});
                if (stopped()) return;
                continue;
            }
            describes_[name] = Describe{{}, false, outcome.message, {}};
        }
    }
}

const Services::Describe& Services::describe(const std::string& object) {
    load_describes({object});
    return describes_[object];
}

void Services::check_against_describe(std::vector<PendingOperation>& ops) {
    std::set<std::string> objects;
    for (const auto& p : ops)
        if (p.active()) objects.insert(p.op.object);
    load_describes(objects);
    if (stopped()) return;
    std::set<std::pair<std::string, std::string>> truncatable;
    for (const auto& m : mappings_)
        if (m.truncate) truncatable.insert({m.object, m.field});
    for (auto& p : ops) {
        if (!p.active()) continue;
        const Describe& d = describe(p.op.object);
        if (stopped()) return;
        if (!d.ok) {
            p.fail("INVALID_TYPE",
                   p.op.object + ": " + d.problem + " (a configuration error; see `crmsync check " + module_.name + "`)");
            continue;
        }
        check_operation(p, d, truncatable);
        if (stopped()) return;
    }
}

// Every field of one operation: it exists, its value has the field's type and fits its
// length (cut when the mapping truncates) and, on a restricted picklist, is a value of it.
void Services::check_operation(PendingOperation& p, const Describe& d,
                               const std::set<std::pair<std::string, std::string>>& truncatable) {
    const std::string& object = p.op.object;
    if (!p.may_create()) drop_create_only(p.op, d.fields);
    for (auto& [name_view, value] : p.op.fields) {
        auto it = d.fields.find(std::string_view(name_view));
        if (it == d.fields.end()) {
            p.fail("INVALID_FIELD", missing_field_message(object, std::string(name_view), module_.name),
                   {std::string(name_view)});
            return;
        }
        const std::string& name = it->first;
        const DescribedField& f = it->second;
        const std::string& type = f.type;
        if (auto expected = type_problem(f, value)) {
            p.fail("INVALID_TYPE_ON_FIELD_IN_RECORD",
                   object + "." + name + ": " + json::serialize(value) + " is not " + *expected, {name});
            return;
        }
        if (!value.is_string() || !f.text) continue;
        const std::string_view s = value.get_string();
        const int64_t length = f.length;
        if (length > 0 && utf8_length(s) > static_cast<size_t>(length) && type != "multipicklist") {
            if (!truncatable.count({object, name}) && !truncatable.count({"", name})) {
                p.fail("STRING_TOO_LONG",
                       object + "." + name + ": " + std::to_string(utf8_length(s)) + " characters, the field takes " +
                           std::to_string(length) + " (set \"truncate\": true on the mapping to cut it)",
                       {name});
                return;
            }
            value = json::string(utf8_prefix(s, static_cast<size_t>(length)));
        }
        if (f.restricted) check_picklist(p, name, f.raw, std::string(value.get_string()));
        if (p.error_code || stopped()) return;
    }
    // Fields filled at write time (refs, blobs) must exist and count as given.
    std::set<std::string> filled_later;
    for (const auto* directives : {&p.op.refs, &p.op.blobs})
        for (const auto& [name, v] : *directives) filled_later.insert(name);
    for (const auto& name : filled_later)
        if (!d.fields.count(name)) {
            p.fail("INVALID_FIELD", missing_field_message(object, name, module_.name), {name});
            return;
        }
    // Required fields matter only when the write may create the record.
    if (p.may_create()) check_required(p, d, filled_later);
}

// A restricted picklist's value (each of a multipicklist's) must be active; a missing one
// is added first when the operation says create_missing.
void Services::check_picklist(PendingOperation& p, const std::string& name, const json::object& field, const std::string& value) {
    const std::string& object = p.op.object;
    auto active = active_picklist_values(field);
    std::set<std::string> allowed(active.begin(), active.end());
    const std::string* policy = p.op.picklist_policy(name);
    const bool create = policy && *policy == "create_missing";
    for (const auto& part :
         find_text(field, "type") == "multipicklist" ? split_multipicklist(value) : std::vector<std::string>{value}) {
        if (allowed.count(part)) continue;
        if (!create) {
            p.fail("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                   object + "." + name + ": \"" + part + "\" is not a value of this restricted picklist", {name});
            return;
        }
        if (dry_run_) {
            note("info", "would add \"" + part + "\" to " + object + "." + name);
            continue;
        }
        if (!add_picklist_value(p, name, part)) return;
        allowed.insert(part);
    }
}

bool Services::add_picklist_value(PendingOperation& p, const std::string& name, const std::string& value) {
    const std::string& object = p.op.object;
    std::vector<json::value> results;
    auto outcome = write_crm(json::object{{"operations", json::array{json::object{{"object", object},
                                                                                  {"action", "picklist_add"},
                                                                                  {"key", "picklist:" + object + "." + name},
                                                                                  {"field", name},
                                                                                  {"value", value},
                                                                                  {"fields", json::object{}}}}}},
                             results, "adding a picklist value");
    if (stopped()) return false;
    const json::object* r = results.empty() ? nullptr : results[0].if_object();
    if (!outcome.ok() || !r || !find_bool(*r, "success").value_or(false)) {
        std::string why = !outcome.ok() ? outcome.message : "the CRM refused";
        if (r)
            if (auto* errors = find_array(*r, "errors"); errors && !errors->empty())
                why = find_text(errors->at(0).as_object(), "message");
        p.fail("PICKLIST_VALUE_NOT_ADDED", object + "." + name + ": \"" + value + "\" could not be added: " + why, {name});
        return false;
    }
    note("info", "added \"" + value + "\" to the picklist " + object + "." + name);
    // Remember it in the cached describe so the next operation does not add it again.
    auto& cached = describes_[object].fields[name].raw;
    if (auto* values = cached.if_contains("picklistValues"); values && values->is_array())
        values->as_array().push_back(json::object{{"value", value}, {"active", true}});
    return true;
}

// REQUIRED_FIELD_MISSING for every required field left empty, and for each of the
// plugin's required_any groups none of whose fields is given.
void Services::check_required(PendingOperation& p, const Describe& d, const std::set<std::string>& filled_later) {
    const auto& fields = p.op.fields;
    auto given = [&](std::string_view name) {
        auto* v = fields.if_contains(name);
        return (v && !v->is_null()) || filled_later.count(std::string(name));
    };
    std::vector<std::string> missing;
    for (const auto& name : d.required)
        if (!given(name)) missing.push_back(name);
    for (const auto& group : required_any_) {
        if (find_text(group, "object") != p.op.object) continue;
        if (auto unless = find_string(group, "unless_true"); unless && fields.contains(*unless) && fields.at(*unless) == true)
            continue;
        auto* list = find_array(group, "fields");
        if (!list || list->empty()) continue;
        bool covered = std::any_of(list->begin(), list->end(), [&](const json::value& f) { return given(f.as_string()); });
        if (!covered) missing.emplace_back(list->front().as_string());
    }
    if (missing.empty()) return;
    std::string list;
    for (const auto& m : missing) list += (list.empty() ? "" : ", ") + m;
    p.fail("REQUIRED_FIELD_MISSING", "Required fields are missing: [" + list + "]", missing);
}

}  // namespace crmsync
