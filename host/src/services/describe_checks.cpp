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

bool is_text_type(const std::string& t) {
    return t == "string" || t == "textarea" || t == "email" || t == "phone" || t == "url" || t == "picklist" ||
           t == "multipicklist" || t == "combobox" || t == "reference" || t == "id" || t == "base64" || t == "encryptedstring";
}

// The JSON value fits the describe type; the message says what was expected otherwise.
std::optional<std::string> type_problem(const std::string& t, const json::value& v) {
    if (v.is_null()) return std::nullopt;
    if (is_text_type(t)) return v.is_string() ? std::nullopt : std::optional<std::string>("text");
    if (t == "boolean") return v.is_bool() ? std::nullopt : std::optional<std::string>("true or false");
    if (t == "int") return v.is_int64() || v.is_uint64() ? std::nullopt : std::optional<std::string>("a whole number");
    if (t == "double" || t == "currency" || t == "percent") return v.is_number() ? std::nullopt : std::optional<std::string>("a number");
    if (t == "date") {
        bool ok = v.is_string() && v.get_string().size() == 10 && v.get_string()[4] == '-' && v.get_string()[7] == '-';
        return ok ? std::nullopt : std::optional<std::string>("a date YYYY-MM-DD");
    }
    if (t == "datetime") return v.is_string() && v.get_string().size() >= 19 ? std::nullopt : std::optional<std::string>("a date-time");
    if (t == "junctionidlist") return v.is_array() ? std::nullopt : std::optional<std::string>("a list of ids");
    return std::nullopt;
}

// An update cannot change create-only fields (a File's content, its name on disk, where it
// was first published): they were set when the record was created, so an update leaves them
// out instead of having the CRM refuse it.
void drop_create_only(PendingOperation& p, const std::map<std::string, json::object>& describe) {
    auto create_only = [&](std::string_view name) {
        auto it = describe.find(std::string(name));
        return it != describe.end() && find_bool(it->second, "createable").value_or(true) &&
               !find_bool(it->second, "updateable").value_or(true);
    };
    for (const char* member : {"fields", "refs", "blobs"}) {
        auto* o = p.op.if_contains(member);
        if (!o || !o->is_object()) continue;
        std::vector<std::string> drop;
        for (const auto& [name, value] : o->get_object())
            if (create_only(name)) drop.emplace_back(name);
        for (const auto& name : drop) o->get_object().erase(name);
        if (o->get_object().empty() && std::string_view(member) != "fields") p.op.erase(member);
    }
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
    auto outcome = fetch_crm(json::object{{"type", "describe"}, {"objects", missing}}, [&](json::value&& item) -> int32_t {
        auto* o = item.if_object();
        if (!o || find_string(*o, "type") != "describe") return CRMSYNC_STATUS_OK;
        Describe d;
        d.ok = true;
        if (auto* fields = find_array(*o, "fields"))
            for (const auto& f : *fields)
                if (auto* fo = f.if_object()) d.fields[find_text(*fo, "name")] = *fo;
        got[find_text(*o, "object")] = std::move(d);
        return CRMSYNC_STATUS_OK;
    });
    for (const auto& o : missing) {
        std::string name(o.as_string());
        if (got.count(name)) describes_[name] = std::move(got[name]);
        else if (outcome.ok()) describes_[name] = Describe{{}, false, "the CRM has no object " + name};
        else {
            // One describe call fails for all it asked; ask one by one so a bad name is named.
            if (missing.size() > 1) {
                load_describes({name});
                continue;
            }
            describes_[name] = Describe{{}, false, outcome.message};
        }
    }
}

const Services::Describe& Services::describe(const std::string& object) {
    load_describes({object});
    return describes_[object];
}

void Services::check_against_describe(std::vector<PendingOperation>& ops, RunCounts&, std::vector<LogLine>& log) {
    std::set<std::string> objects;
    for (const auto& p : ops)
        if (!p.error_code && p.skip_reason.empty()) objects.insert(find_text(p.op, "object"));
    load_describes(objects);
    std::set<std::pair<std::string, std::string>> truncatable;
    for (const auto& m : mappings_)
        if (m.truncate) truncatable.insert({m.object, m.field});

    for (auto& p : ops) {
        if (p.error_code || !p.skip_reason.empty()) continue;
        auto object = find_text(p.op, "object");
        const Describe& d = describe(object);
        if (!d.ok) {
            p.fail("INVALID_TYPE", object + ": " + d.problem + " (a configuration error; see `crmsync check " + module_.name + "`)");
            continue;
        }
        auto& fields = p.op.at("fields").as_object();
        if (p.known || find_text(p.op, "action") == "update") drop_create_only(p, d.fields);
        const json::object* picklists = find_object(p.op, "picklists");
        for (auto& [name_view, value] : fields) {
            std::string name(name_view);
            auto it = d.fields.find(name);
            if (it == d.fields.end()) {
                p.fail("INVALID_FIELD", object + "." + name + " does not exist in the CRM (a configuration error: create the field or fix the mapping; `crmsync check " + module_.name + "` lists these)", {name});
                break;
            }
            const json::object& f = it->second;
            std::string type = find_text(f, "type");
            if (auto expected = type_problem(type, value)) {
                p.fail("INVALID_TYPE_ON_FIELD_IN_RECORD", object + "." + name + ": " + json::serialize(value) + " is not " + *expected, {name});
                break;
            }
            if (value.is_string() && is_text_type(type)) {
                int64_t length = find_int(f, "length").value_or(0);
                std::string s(value.get_string());
                if (length > 0 && utf8_length(s) > static_cast<size_t>(length) && type != "multipicklist") {
                    if (truncatable.count({object, name}) || truncatable.count({"", name})) {
                        value = json::string(utf8_prefix(s, static_cast<size_t>(length)));
                    } else {
                        p.fail("STRING_TOO_LONG", object + "." + name + ": " + std::to_string(utf8_length(s)) +
                                                       " characters, the field takes " + std::to_string(length) +
                                                       " (set \"truncate\": true on the mapping to cut it)", {name});
                        break;
                    }
                }
                if ((type == "picklist" || type == "multipicklist") && find_bool(f, "restrictedPicklist").value_or(false)) {
                    auto active = active_picklist_values(f);
                    std::set<std::string> allowed(active.begin(), active.end());
                    std::vector<std::string> parts;
                    if (type == "multipicklist") {
                        size_t start = 0;
                        for (size_t semi; (semi = s.find(';', start)) != std::string::npos; start = semi + 1) parts.push_back(s.substr(start, semi - start));
                        parts.push_back(s.substr(start));
                    } else {
                        parts.push_back(s);
                    }
                    bool create = picklists && find_string(*picklists, name) == "create_missing";
                    for (const auto& part : parts) {
                        if (allowed.count(part)) continue;
                        if (!create) {
                            p.fail("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                                 object + "." + name + ": \"" + part + "\" is not a value of this restricted picklist", {name});
                            break;
                        }
                        if (dry_run_) {
                            log.push_back({0, "info", "would add \"" + part + "\" to " + object + "." + name});
                            continue;
                        }
                        std::vector<json::value> results;
                        auto outcome = write_crm(json::object{{"operations", json::array{json::object{
                                                      {"object", object}, {"action", "picklist_add"}, {"key", "picklist:" + object + "." + name},
                                                      {"field", name}, {"value", part}, {"fields", json::object{}}}}}},
                                                  results);
                        const json::object* r = results.empty() ? nullptr : results[0].if_object();
                        if (!outcome.ok() || !r || !find_bool(*r, "success").value_or(false)) {
                            std::string why = !outcome.ok() ? outcome.message : "the CRM refused";
                            if (r)
                                if (auto* errors = find_array(*r, "errors"); errors && !errors->empty())
                                    why = find_text(errors->at(0).as_object(), "message");
                            p.fail("PICKLIST_VALUE_NOT_ADDED", object + "." + name + ": \"" + part + "\" could not be added: " + why, {name});
                            break;
                        }
                        log.push_back({0, "info", "added \"" + part + "\" to the picklist " + object + "." + name});
                        // Remember it in the cached describe so the next operation does not add it again.
                        auto& cached = describes_[object].fields[name];
                        if (auto* values = cached.if_contains("picklistValues"); values && values->is_array())
                            values->as_array().push_back(json::object{{"value", part}, {"active", true}});
                        allowed.insert(part);
                    }
                    if (p.error_code) break;
                }
            }
        }
        // Fields filled at write time (refs, blobs) must exist and count as given.
        std::set<std::string> filled_later;
        for (const char* directive : {"refs", "blobs"})
            if (auto* d = find_object(p.op, directive))
                for (const auto& [name, v] : *d) filled_later.insert(std::string(name));
        for (const auto& name : filled_later)
            if (!p.error_code && !d.fields.count(name))
                p.fail("INVALID_FIELD", object + "." + name + " does not exist in the CRM (a configuration error: create the field or fix the mapping; `crmsync check " + module_.name + "` lists these)", {name});
        if (p.error_code) continue;
        // Required fields matter only when the write may create the record.
        if (p.known || find_text(p.op, "action") == "update") continue;
        std::vector<std::string> missing;
        for (const auto& [name, f] : d.fields) {
            if (name == "Id" || find_text(f, "type") == "boolean") continue;
            bool required = !find_bool(f, "nillable").value_or(true) && find_bool(f, "createable").value_or(false) &&
                            !find_bool(f, "defaultedOnCreate").value_or(false);
            auto* v = fields.if_contains(name);
            if (required && (!v || v->is_null()) && name != "OwnerId" && !filled_later.count(name)) missing.push_back(name);
        }
        for (const auto& group : required_any_) {
            if (find_text(group, "object") != object) continue;
            if (auto unless = find_string(group, "unless_true"); unless && fields.contains(*unless) && fields.at(*unless) == true) continue;
            bool covered = false;
            std::string first;
            if (auto* list = find_array(group, "fields"))
                for (const auto& f : *list) {
                    if (first.empty()) first = std::string(f.as_string());
                    auto* v = fields.if_contains(f.as_string());
                    covered = covered || (v && !v->is_null()) || filled_later.count(std::string(f.as_string()));
                }
            if (!covered && !first.empty()) missing.push_back(first);
        }
        if (!missing.empty()) {
            std::string list;
            for (const auto& m : missing) list += (list.empty() ? "" : ", ") + m;
            p.fail("REQUIRED_FIELD_MISSING", "Required fields are missing: [" + list + "]", missing);
        }
    }
}

}  // namespace crmsync
