#include "services.h"

#include <algorithm>
#include <cctype>
#include <functional>

namespace crmsync {
namespace {

constexpr size_t kKeysPerQuery = 200;  // keeps each SOQL statement far under 100,000 characters

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
}

std::string soql_literal(std::string_view value) {
    std::string out = "'";
    for (char c : value) {
        if (c == '\'' || c == '\\') out += '\\';
        out += c;
    }
    return out + "'";
}

std::string soql_list(const std::vector<std::string>& values) {
    std::string out;
    for (const auto& v : values) out += (out.empty() ? "" : ", ") + soql_literal(v);
    return "(" + out + ")";
}

// Values in the order first seen, each once: the keys a batch looks up.
struct Distinct {
    std::vector<std::string> values;
    std::set<std::string> seen;
    void add(const std::string& v) {
        if (seen.insert(v).second) values.push_back(v);
    }
};

// Calls `fn` with each run of at most kKeysPerQuery values, one query's worth.
void for_each_chunk(const std::vector<std::string>& values, const std::function<void(const std::vector<std::string>&)>& fn) {
    for (size_t start = 0; start < values.size(); start += kKeysPerQuery)
        fn(std::vector<std::string>(values.begin() + static_cast<long>(start),
                                    values.begin() + static_cast<long>(std::min(values.size(), start + kKeysPerQuery))));
}

// at(), not operator[]: operator[] may grow the object and invalidate pointers into it.
json::object& fields_of(PendingOperation& p) { return p.op.at("fields").as_object(); }

void bump(RunCounts& counts, const std::string& name) {
    auto* v = counts.extra.if_contains(name);
    counts.extra[name] = (v && v->is_int64() ? v->get_int64() : 0) + 1;
}

}  // namespace

Result<ServiceSettings> ServiceSettings::from_manifest(const ModuleManifest& module) {
    ServiceSettings s;
    s.new_user = json::object{{"TimeZoneSidKey", "GMT"}, {"LocaleSidKey", "en_US"}, {"LanguageLocaleKey", "en_US"},
                              {"EmailEncodingKey", "UTF-8"}};
    auto* services = module.services.if_object();
    if (!services) return s;
    if (auto* cc = services->if_contains("default_country_code")) {
        std::string code = cc->is_string() ? std::string(cc->get_string()) : cc->is_int64() ? std::to_string(cc->get_int64()) : "";
        if (code.empty() || code.find_first_not_of("0123456789") != std::string::npos)
            return Status::config(module.manifest_path + ": \"services.default_country_code\" must be digits, e.g. \"81\"");
        s.default_country_code = code;
    }
    if (auto* user = find_object(*services, "new_user"))
        for (const auto& [k, v] : *user) s.new_user[k] = v;
    return s;
}

Services::Services(PluginInstance& crm, const ModuleManifest& module, std::vector<FieldMapping> mappings,
                   ServiceSettings settings, bool dry_run, std::function<bool(int)> backoff)
    : crm_(crm),
      module_(module),
      mappings_(std::move(mappings)),
      settings_(std::move(settings)),
      dry_run_(dry_run),
      backoff_(std::move(backoff)) {}

Result<Services::Targets> Services::list_targets(PluginInstance& source) {
    Targets t;
    auto outcome = source.fetch(json::object{{"type", "targets"}}, [&](json::value&& item) -> int32_t {
        auto* o = item.if_object();
        if (!o || find_string(*o, "type") != "target") return CRMSYNC_STATUS_OK;
        auto object = find_text(*o, "object");
        auto& fields = t.fields[object];
        if (auto* list = find_array(*o, "fields"))
            for (const auto& f : *list)
                if (f.is_string()) fields.insert(std::string(f.get_string()));
        if (auto* any = find_array(*o, "required_any"))
            for (const auto& g : *any)
                if (g.is_object()) {
                    auto group = g.get_object();
                    group["object"] = object;
                    t.required_any.push_back(std::move(group));
                }
        if (auto* values = find_object(*o, "values"))
            for (const auto& [field, value] : *values)
                if (value.is_string()) t.values.push_back({{"object", object}, {"field", field}, {"value", value}});
        return CRMSYNC_STATUS_OK;
    });
    if (outcome.status == CRMSYNC_STATUS_NOT_SUPPORTED) return Targets{};
    if (!outcome.ok()) return Status::config("plugin " + source.plugin().id() + " could not list the CRM fields it writes: " + outcome.message);
    t.listed = true;
    return t;
}

Status Services::check_mappings(const Targets& targets, const ModuleManifest& module, const std::vector<FieldMapping>& mappings,
                                const std::string& plugin_id) {
    return check_against_defaults(mappings, targets.fields, plugin_id).prefixed(module.manifest_path + ": ");
}

void Services::resolve(std::vector<PendingOperation>& ops, RunCounts& counts, std::vector<LogLine>& log) {
    resolve_match(ops, counts, log);
    resolve_owner(ops, counts, log);
    resolve_related(ops, counts);
    check_against_describe(ops, counts, log);
    // Directives are resolved into fields now; what goes to the CRM is plain data.
    for (auto& p : ops) {
        for (const char* directive : {"owner", "related", "match", "picklists"}) p.op.erase(directive);
    }
}

void Services::apply_field_mappings(std::vector<PendingOperation>& ops) const {
    if (mappings_.empty()) return;
    for (auto& p : ops) {
        if (p.error_code || !p.record) continue;
        auto applied = apply_mappings(mappings_, *p.record, p.op);
        if (!applied) p.fail("MAPPING_FAILED", applied.message());
    }
}

Outcome Services::fetch_crm(const json::value& request, const std::function<int32_t(json::value&&)>& sink) {
    for (int attempt = 0;; ++attempt) {
        std::vector<json::value> items;
        auto outcome = crm_.fetch(request, [&](json::value&& item) -> int32_t {
            items.push_back(std::move(item));
            return CRMSYNC_STATUS_OK;
        });
        if (outcome.status == CRMSYNC_STATUS_RETRY && attempt + 1 < module_.retry.max_attempts && backoff_(attempt)) continue;
        if (outcome.ok())
            for (auto& item : items) sink(std::move(item));
        return outcome;
    }
}

Outcome Services::write_crm(const json::value& batch, std::vector<json::value>& results) {
    for (int attempt = 0;; ++attempt) {
        results.clear();
        auto outcome = crm_.write(batch, results);
        if (outcome.status != CRMSYNC_STATUS_RETRY || attempt + 1 >= module_.retry.max_attempts || !backoff_(attempt)) return outcome;
    }
}

Outcome Services::query(const std::string& soql, std::vector<json::object>& rows) {
    return fetch_crm(json::object{{"type", "query"}, {"soql", soql}}, [&](json::value&& item) -> int32_t {
        if (auto* o = item.if_object())
            if (auto* r = find_object(*o, "record")) rows.push_back(*r);
        return CRMSYNC_STATUS_OK;
    });
}

// ---- match: update the one record whose field equals the key ---------------------------

void Services::resolve_match(std::vector<PendingOperation>& ops, RunCounts& counts, std::vector<LogLine>& log) {
    std::map<std::pair<std::string, std::string>, std::vector<std::string>> wanted;  // (object, field) -> values
    for (auto& p : ops) {
        auto* m = p.error_code || !p.skip_reason.empty() ? nullptr : find_object(p.op, "match");
        if (!m) continue;
        auto field = find_text(*m, "field");
        auto* value = m->if_contains("value");
        if (field.empty() || !value || value->is_null()) {
            p.fail("INVALID_OPERATION", "\"match\" needs a field and a value");
            continue;
        }
        wanted[{find_text(p.op, "object"), field}].push_back(scalar_text(*value));
    }
    for (auto& [target, values] : wanted) {
        std::sort(values.begin(), values.end());
        values.erase(std::unique(values.begin(), values.end()), values.end());
        std::map<std::string, std::vector<std::string>> ids;  // lower-case value -> ids
        bool failed = false;
        for_each_chunk(values, [&](const std::vector<std::string>& chunk) {
            if (failed) return;
            std::vector<json::object> rows;
            auto outcome = query("SELECT Id, " + target.second + " FROM " + target.first + " WHERE " + target.second + " IN " +
                                     soql_list(chunk),
                                 rows);
            if (!outcome.ok()) {
                failed = true;
                for (auto& p : ops)
                    if (auto* m = find_object(p.op, "match"); m && find_text(p.op, "object") == target.first)
                        p.fail("MATCH_FAILED", "looking up " + target.first + "." + target.second + " failed: " + outcome.message);
                return;
            }
            for (const auto& r : rows)
                if (auto* v = r.if_contains(target.second); v && !v->is_null())
                    ids[lower(scalar_text(*v))].push_back(find_text(r, "Id"));
        });
        for (auto& p : ops) {
            auto* m = p.error_code || !p.skip_reason.empty() ? nullptr : find_object(p.op, "match");
            if (!m || find_text(p.op, "object") != target.first || find_text(*m, "field") != target.second) continue;
            std::string value = scalar_text(m->at("value"));
            auto& found = ids[lower(value)];
            if (found.empty()) {
                p.skip_reason = "no " + target.first + " has " + target.second + " = " + value;
                ++counts.no_match;
                log.push_back({0, "info", "no match: " + p.skip_reason + " (source " + p.source_id + ")"});
            } else if (found.size() > 1) {
                std::string list;
                for (const auto& id : found) list += (list.empty() ? "" : ", ") + id;
                p.fail("DUPLICATE_MATCH", std::to_string(found.size()) + " " + target.first + " records have " + target.second +
                                               " = " + value + " (" + list + "); nothing was written", {target.second});
            } else {
                p.op["id"] = found.front();
                p.op["action"] = "update";
                p.known = true;
            }
        }
    }
}

// ---- owner: the active user with this email, else the fallbacks in order --------------

std::string Services::connection_user() {
    if (!connection_user_.empty()) return connection_user_;
    fetch_crm(json::object{{"type", "whoami"}}, [&](json::value&& item) -> int32_t {
        if (auto* o = item.if_object()) connection_user_ = find_text(*o, "id");
        return CRMSYNC_STATUS_OK;
    });
    return connection_user_;
}

std::string Services::integration_profile() {
    if (!integration_profile_.empty()) return integration_profile_;
    std::vector<json::object> rows;
    query("SELECT Id FROM Profile WHERE Name = 'Minimum Access - API Only Integrations'", rows);
    if (!rows.empty()) integration_profile_ = find_text(rows.front(), "Id");
    return integration_profile_;
}

std::string Services::create_integration_user(const std::string& email, std::string& code, std::string& why) {
    std::string profile = integration_profile();
    if (profile.empty()) {
        code = "INTEGRATION_PROFILE_MISSING";
        why = "the CRM has no profile \"Minimum Access - API Only Integrations\"";
        return "";
    }
    std::string local = email.substr(0, email.find('@'));
    std::string alias;
    for (char c : local)
        if (std::isalnum(static_cast<unsigned char>(c)) && alias.size() < 8) alias += c;
    if (alias.empty()) alias = "crmsync";
    for (int attempt = 0; attempt < 3; ++attempt) {
        // Usernames are unique across every org, so the address itself cannot be one.
        std::string username = email + ".crmsync" + (attempt ? std::to_string(attempt + 1) : "");
        json::object fields{{"Username", username}, {"Email", email}, {"LastName", local}, {"Alias", alias},
                            {"ProfileId", profile}, {"IsActive", true}};
        for (const auto& [k, v] : settings_.new_user) fields[k] = v;
        std::vector<json::value> results;
        auto outcome = write_crm(
            json::object{{"operations", json::array{json::object{{"object", "User"}, {"action", "create"},
                                                                 {"key", "user:" + email}, {"fields", fields}}}}},
            results);
        if (!outcome.ok()) {
            code = "USER_CREATE_FAILED";
            why = outcome.message;
            return "";
        }
        const json::object* r = results.empty() ? nullptr : results[0].if_object();
        if (r && find_bool(*r, "success").value_or(false)) return find_text(*r, "id");
        auto* errors = r ? find_array(*r, "errors") : nullptr;
        code = errors && !errors->empty() ? find_text(errors->at(0).as_object(), "code") : "USER_CREATE_FAILED";
        why = errors && !errors->empty() ? find_text(errors->at(0).as_object(), "message") : "no result";
        if (code != "DUPLICATE_USERNAME") return "";
    }
    return "";
}

void Services::resolve_owner(std::vector<PendingOperation>& ops, RunCounts& counts, std::vector<LogLine>& log) {
    Distinct unknown;
    for (auto& p : ops) {
        auto* owner = p.error_code || !p.skip_reason.empty() ? nullptr : find_object(p.op, "owner");
        if (!owner) continue;
        auto email = lower(find_text(*owner, "email"));
        if (!email.empty() && !owners_.count(email)) unknown.add(email);
    }
    for_each_chunk(unknown.values, [&](const std::vector<std::string>& chunk) {
        std::vector<json::object> rows;
        auto outcome = query("SELECT Id, Email FROM User WHERE IsActive = true AND Email IN " + soql_list(chunk) +
                                 " ORDER BY CreatedDate ASC",
                             rows);
        if (!outcome.ok()) {
            log.push_back({0, "error", "user lookup failed: " + outcome.message});
            return;
        }
        for (const auto& email : chunk) owners_.emplace(email, "");
        for (const auto& r : rows) {
            auto& slot = owners_[lower(find_text(r, "Email"))];
            if (slot.empty()) slot = find_text(r, "Id");
        }
    });
    for (auto& p : ops) {
        auto* owner = p.error_code || !p.skip_reason.empty() ? nullptr : find_object(p.op, "owner");
        if (!owner) continue;
        auto email = lower(find_text(*owner, "email"));
        auto found = owners_.find(email);
        if (email.empty() || found == owners_.end()) {
            p.fail("OWNER_NOT_FOUND", "owner email \"" + email + "\" could not be looked up", {"OwnerId"});
            continue;
        }
        if (found->second.empty()) {
            // Follow if_missing in order; what we settle on is remembered for the run.
            json::array steps = find_array(*owner, "if_missing") ? *find_array(*owner, "if_missing") : json::array{"error"};
            std::string chosen, code = "OWNER_NOT_FOUND", why = "no active user has the email " + email;
            for (const auto& step : steps) {
                std::string s = step.is_string() ? std::string(step.get_string()) : "";
                if (s == "create_integration_user") {
                    if (dry_run_) {
                        chosen = "(new integration user)";
                        break;
                    }
                    chosen = create_integration_user(email, code, why);
                    if (!chosen.empty()) {
                        bump(counts, "owner_integration_users_created");
                        log.push_back({0, "info", "created integration user " + chosen + " for " + email});
                        break;
                    }
                    if (code == "LICENSE_LIMIT_EXCEEDED") {
                        log.push_back({0, "warning", "no integration licence left for " + email + " (" + why + ")"});
                        continue;
                    }
                    break;
                }
                if (s == "connection_user") {
                    chosen = connection_user();
                    if (!chosen.empty()) {
                        bump(counts, "owner_connection_user_fallbacks");
                        if (owner_logged_.insert(email).second)
                            log.push_back({0, "info", "no CRM user for " + email + "; assigned to the connection's user"});
                    }
                    break;
                }
                if (s == "error") break;
            }
            if (chosen.empty()) {
                p.fail(code, why, {"OwnerId"});
                continue;
            }
            found->second = chosen;
        }
        if (found->second != "(new integration user)") fields_of(p)["OwnerId"] = found->second;
    }
}

// ---- related: Contacts by email or phone (up to 50), else one Lead --------------------

std::string Services::normalize_phone(std::string_view phone) const {
    std::string digits;
    bool international = false;
    for (char c : phone) {
        if (c == '+' && digits.empty()) international = true;
        if (c >= '0' && c <= '9') digits += c;
    }
    if (digits.empty() || international || settings_.default_country_code.empty()) return digits;
    if (digits.size() > 1 && digits[0] == '0') return settings_.default_country_code + digits.substr(1);
    return digits;
}

void Services::resolve_related(std::vector<PendingOperation>& ops, RunCounts& counts) {
    Distinct email_set, phone_set;
    auto want = [&](Distinct& list, const std::string& key, const std::string& value) {
        if (!keys_looked_up_.count(key)) list.add(value);
    };
    for (auto& p : ops) {
        auto* rel = p.error_code || !p.skip_reason.empty() ? nullptr : find_object(p.op, "related");
        if (!rel) continue;
        if (auto* list = find_array(*rel, "emails"))
            for (const auto& e : *list)
                if (e.is_string() && !e.get_string().empty()) want(email_set, "e:" + lower(std::string(e.get_string())), lower(std::string(e.get_string())));
        if (auto* list = find_array(*rel, "phones"))
            for (const auto& ph : *list)
                if (ph.is_string()) {
                    auto n = normalize_phone(ph.get_string());
                    if (n.size() >= 6) want(phone_set, "p:" + n, std::string(ph.get_string()));
                }
    }
    const auto& emails = email_set.values;
    const auto& phones = phone_set.values;
    for (size_t start = 0; start < std::max(emails.size(), phones.size()); start += kKeysPerQuery) {
        json::array e, ph;
        for (size_t i = start; i < std::min(emails.size(), start + kKeysPerQuery); ++i) e.emplace_back(emails[i]);
        for (size_t i = start; i < std::min(phones.size(), start + kKeysPerQuery); ++i) ph.emplace_back(phones[i]);
        std::vector<Party> found;
        auto outcome = fetch_crm(
            json::object{{"type", "find"}, {"objects", json::array{"Contact", "Lead"}}, {"emails", e}, {"phones", ph},
                         {"country_code", settings_.default_country_code}},
            [&](json::value&& item) -> int32_t {
                auto* o = item.if_object();
                auto* r = o ? find_object(*o, "record") : nullptr;
                if (!r) return CRMSYNC_STATUS_OK;
                Party party;
                party.id = find_text(*r, "Id");
                auto* attributes = find_object(*r, "attributes");
                party.object = attributes ? find_text(*attributes, "type") : "";
                party.created = find_text(*r, "CreatedDate");
                party.email = lower(find_text(*r, "Email"));
                party.converted = find_bool(*r, "IsConverted").value_or(false);
                for (const char* f : {"Phone", "MobilePhone"})
                    if (auto v = find_string(*r, f); v && !v->empty()) party.phones.push_back(normalize_phone(*v));
                found.push_back(std::move(party));
                return CRMSYNC_STATUS_OK;
            });
        if (!outcome.ok()) {
            for (auto& p : ops)
                if (find_object(p.op, "related")) p.fail("RELATED_LOOKUP_FAILED", "finding Contacts and Leads failed: " + outcome.message);
            return;
        }
        for (const auto& v : e) keys_looked_up_.insert("e:" + std::string(v.as_string()));
        for (const auto& v : ph) keys_looked_up_.insert("p:" + normalize_phone(v.as_string()));
        std::sort(found.begin(), found.end(), [](const Party& a, const Party& b) {
            return a.created != b.created ? a.created < b.created : a.id < b.id;
        });
        for (const auto& party : found) {
            if (!party.email.empty() && keys_looked_up_.count("e:" + party.email)) parties_by_key_["e:" + party.email].push_back(party);
            for (const auto& digits : party.phones)
                if (keys_looked_up_.count("p:" + digits)) parties_by_key_["p:" + digits].push_back(party);
        }
    }

    std::vector<std::pair<PendingOperation*, std::string>> want_opportunity;
    for (auto& p : ops) {
        auto* rel = p.error_code || !p.skip_reason.empty() ? nullptr : find_object(p.op, "related");
        if (!rel) continue;
        std::vector<std::string> keys;
        if (auto* list = find_array(*rel, "emails"))
            for (const auto& e : *list)
                if (e.is_string()) keys.push_back("e:" + lower(std::string(e.get_string())));
        if (auto* list = find_array(*rel, "phones"))
            for (const auto& ph : *list)
                if (ph.is_string()) keys.push_back("p:" + normalize_phone(ph.get_string()));
        std::vector<std::string> prefer;
        if (auto* list = find_array(*rel, "prefer"))
            for (const auto& v : *list)
                if (v.is_string()) prefer.emplace_back(v.get_string());
        if (prefer.empty()) prefer = {"Contact", "Lead"};
        bool contacts_ok = std::find(prefer.begin(), prefer.end(), "Contact") != prefer.end();
        bool leads_ok = std::find(prefer.begin(), prefer.end(), "Lead") != prefer.end();
        size_t max_contacts = static_cast<size_t>(std::clamp<int64_t>(find_int(*rel, "max_contacts").value_or(50), 1, 50));

        std::vector<std::string> who;
        if (contacts_ok)
            for (const auto& key : keys)
                for (const auto& party : parties_by_key_[key])
                    if (party.object == "Contact" && who.size() < max_contacts &&
                        std::find(who.begin(), who.end(), party.id) == who.end())
                        who.push_back(party.id);
        bool primary_is_contact = !who.empty();
        if (who.empty() && leads_ok) {
            const Party* oldest = nullptr;
            for (const auto& key : keys)
                for (const auto& party : parties_by_key_[key])
                    if (party.object == "Lead" && !party.converted &&
                        (!oldest || party.created < oldest->created || (party.created == oldest->created && party.id < oldest->id)))
                        oldest = &party;
            if (oldest) who.push_back(oldest->id);
        }
        if (who.empty()) {
            bump(counts, "related_none");
            continue;
        }
        bump(counts, primary_is_contact ? "related_contacts" : "related_lead");
        auto object = find_text(p.op, "object");
        auto& fields = fields_of(p);
        fields["WhoId"] = who.front();
        // A new record with one Who needs nothing more (and stays plain enough for bulk
        // loading); an update sends the whole list so relations gone at the source go.
        if ((object == "Event" || object == "Task") && (who.size() > 1 || p.known)) {
            json::array ids;
            for (const auto& id : who) ids.emplace_back(id);
            fields[object + "WhoIds"] = ids;
        }
        if (primary_is_contact && find_bool(*rel, "open_opportunity").value_or(false) && !fields.contains("WhatId"))
            want_opportunity.emplace_back(&p, who.front());
    }
    if (want_opportunity.empty()) return;
    Distinct contacts;
    for (const auto& [p, c] : want_opportunity) contacts.add(c);
    std::map<std::string, std::string> opportunity_of;
    for_each_chunk(contacts.values, [&](const std::vector<std::string>& chunk) {
        std::vector<json::object> rows;
        query("SELECT ContactId, OpportunityId FROM OpportunityContactRole WHERE Opportunity.IsClosed = false AND ContactId IN " +
                  soql_list(chunk) + " ORDER BY Opportunity.LastModifiedDate DESC",
              rows);
        for (const auto& r : rows) opportunity_of.emplace(find_text(r, "ContactId"), find_text(r, "OpportunityId"));
    });
    for (const auto& [p, contact] : want_opportunity)
        if (auto it = opportunity_of.find(contact); it != opportunity_of.end()) fields_of(*p)["WhatId"] = it->second;
}

}  // namespace crmsync
