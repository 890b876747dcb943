// Services: set-up, the calls to the CRM, match and owner. Related-to resolution is in
// related.cpp, the describe checks in describe_checks.cpp.
#include "services.h"

#include <crmsync/support/phone.hpp>
#include <crmsync/support/soql.hpp>
#include <crmsync/support/text.hpp>

#include <algorithm>
#include <cctype>

#include "../parallel.h"
#include "batch_keys.h"

namespace crmsync {

namespace soql = support::soql;

Result<ServiceSettings> ServiceSettings::from_manifest(const ModuleManifest& module) {
    ServiceSettings s;
    s.new_user = json::object{
        {"TimeZoneSidKey", "GMT"}, {"LocaleSidKey", "en_US"}, {"LanguageLocaleKey", "en_US"}, {"EmailEncodingKey", "UTF-8"}};
    auto* services = module.services.if_object();
    if (!services) return s;
    if (auto* cc = services->if_contains("default_country_code")) {
        std::string code = cc->is_string()  ? std::string(cc->get_string())
                           : cc->is_int64() ? std::to_string(cc->get_int64())
                                            : "";
        if (code.empty() || code.find_first_not_of("0123456789") != std::string::npos)
            return Status::config(module.manifest_path + ": \"services.default_country_code\" must be digits, e.g. \"81\"");
        s.default_country_code = code;
    }
    if (auto* user = find_object(*services, "new_user"))
        for (const auto& [k, v] : *user) s.new_user[k] = v;
    return s;
}

Services::Services(CrmAccess crm, const ModuleManifest& module, std::vector<FieldMapping> mappings, ServiceSettings settings,
                   bool dry_run)
    : crm_(crm), module_(module), mappings_(std::move(mappings)), settings_(std::move(settings)), dry_run_(dry_run) {}

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
        if (auto* types = find_object(*o, "types"))
            for (const auto& [field, type] : *types)
                if (type.is_string()) t.types[object][std::string(field)] = std::string(type.get_string());
        if (find_bool(*o, "by_match").value_or(false)) t.by_match.insert(object);
        if (auto* values = find_object(*o, "values"))
            for (const auto& [field, value] : *values)
                if (value.is_string()) t.values.push_back({{"object", object}, {"field", field}, {"value", value}});
        return CRMSYNC_STATUS_OK;
    });
    if (outcome.status == CRMSYNC_STATUS_NOT_SUPPORTED) return Targets{};
    if (!outcome.ok())
        return Status::config("plugin " + source.plugin().id() + " could not list the CRM fields it writes: " + outcome.message);
    t.listed = true;
    return t;
}

Status Services::check_mappings(const Targets& targets, const ModuleManifest& module, const std::vector<FieldMapping>& mappings,
                                const std::string& plugin_id) {
    return check_against_defaults(mappings, targets.fields, plugin_id).prefixed(module.manifest_path + ": ");
}

std::optional<RunStop> Services::resolve(std::vector<PendingOperation>& ops, RunCounts& counts, std::vector<LogLine>& log) {
    counts_ = &counts;
    log_ = &log;
    stop_.reset();
    for (auto step : {&Services::resolve_match, &Services::look_up, &Services::resolve_owner, &Services::resolve_related,
                      &Services::check_against_describe}) {
        (this->*step)(ops);
        if (stopped()) break;
    }
    counts_ = nullptr;
    log_ = nullptr;
    return std::exchange(stop_, std::nullopt);
}

void Services::apply_field_mappings(std::vector<PendingOperation>& ops) const {
    if (mappings_.empty()) return;
    for (auto& p : ops) {
        if (p.error_code || !p.record) continue;
        auto applied = apply_mappings(mappings_, p.record->value(), p.op);
        if (!applied) p.fail("MAPPING_FAILED", applied.message());
    }
}

void Services::note(std::string level, std::string message) {
    std::lock_guard lock(mutex_);
    log_->push_back({0, std::move(level), std::move(message)});
}

void Services::bump(const std::string& counter) {
    std::lock_guard lock(mutex_);
    counts_->bump(counter);
}

// One CRM call under the run's retry policy. A failure that is not the input's own (budget,
// 5xx, timeout, auth) stops the batch; the caller sees the outcome either way.
Outcome Services::call_crm(const std::function<Outcome()>& attempt, std::string_view what) {
    RunCounts counts;  // calls run at once: each counts its own retries
    auto outcome = crm_.caller.call(crm_.plugin, crm_.credentials, attempt, counts);
    std::lock_guard lock(mutex_);
    counts_->add(counts);
    if (!outcome.ok() && !is_input_fault(outcome) && !stop_) stop_ = stop_for(outcome, what);
    return outcome;
}

Outcome Services::fetch_crm(const json::value& request, const std::function<int32_t(json::value&&)>& sink,
                            std::string_view what) {
    // What a failed attempt emitted is dropped, so the sink sees one complete answer.
    std::vector<json::value> items;
    auto outcome = call_crm(
        [&] {
            items.clear();
            return crm_.plugin.fetch(request, [&](json::value&& item) -> int32_t {
                items.push_back(std::move(item));
                return CRMSYNC_STATUS_OK;
            });
        },
        what);
    if (outcome.ok())
        for (auto& item : items) sink(std::move(item));
    return outcome;
}

Outcome Services::write_crm(const json::value& batch, std::vector<json::value>& results, std::string_view what) {
    return call_crm(
        [&] {
            results.clear();
            return crm_.plugin.write(batch, results);
        },
        what);
}

// A create is not idempotent: after an attempt that may have been applied (a 5xx or a
// timeout answers RETRY) it is not sent again blind. `applied` is a query that finds the
// record if it was; when it does, its Id is the answer.
Outcome Services::create_once(const json::value& batch, const std::string& applied, std::vector<json::value>& results,
                              std::string_view what) {
    bool maybe_applied = false;
    return call_crm(
        [&]() -> Outcome {
            results.clear();
            if (maybe_applied) {
                std::string found;
                auto looked =
                    crm_.plugin.fetch(json::object{{"type", "query"}, {"soql", applied}}, [&](json::value&& item) -> int32_t {
                        if (auto* o = item.if_object())
                            if (auto* r = find_object(*o, "record")) found = find_text(*r, "Id");
                        return CRMSYNC_STATUS_OK;
                    });
                if (!looked.ok()) return looked;
                if (!found.empty()) {
                    bump("creates_found_applied");
                    results.emplace_back(json::object{{"success", true}, {"id", found}, {"created", true}});
                    return Outcome{};
                }
            }
            auto attempt = crm_.plugin.write(batch, results);
            if (attempt.status == CRMSYNC_STATUS_RETRY) maybe_applied = true;
            return attempt;
        },
        what);
}

Outcome Services::query(const std::string& soql, std::vector<json::object>& rows, std::string_view what) {
    return fetch_crm(
        json::object{{"type", "query"}, {"soql", soql}},
        [&](json::value&& item) -> int32_t {
            if (auto* o = item.if_object())
                if (auto* r = find_object(*o, "record")) rows.push_back(*r);
            return CRMSYNC_STATUS_OK;
        },
        what);
}

// ---- match: update the one record whose fields equal the keys ---------------------------

namespace {

// Whether a record's stored values equal the keys, as each key compares.
bool matches(const json::object& record, const MatchDirective& match) {
    for (const auto& key : match.keys) {
        auto* stored = record.if_contains(key.field);
        if (!stored || stored->is_null()) return false;
        std::string text = scalar_text(*stored);
        if (key.case_sensitive ? text != key.value_text : support::ascii_lower(text) != support::ascii_lower(key.value_text))
            return false;
    }
    return true;
}

}  // namespace

// The records of `object` whose `by` fields equal one of the key tuples (a superset: the
// caller compares exactly). Asked of the CRM plugin as one `lookup`, which packs the keys
// into as few calls as it can; a plugin without `lookup` gets SOQL, a chunk of keys a query.
Outcome Services::lookup(const std::string& object, const std::vector<std::string>& by, const std::vector<std::string>& select,
                         const std::vector<std::vector<std::string>>& keys, std::vector<json::object>& rows) {
    json::array by_json, select_json, keys_json;
    for (const auto& f : by) by_json.emplace_back(f);
    for (const auto& f : select) select_json.emplace_back(f);
    for (const auto& tuple : keys) {
        json::array t;
        for (const auto& v : tuple) t.emplace_back(v);
        keys_json.emplace_back(std::move(t));
    }
    auto row_of = [&](json::value&& item) -> int32_t {
        if (auto* o = item.if_object())
            if (auto* r = find_object(*o, "record")) rows.push_back(std::move(*r));
        return CRMSYNC_STATUS_OK;
    };
    std::string what = "the " + object + " match lookup";
    auto asked = call_crm(
        [&] {
            rows.clear();
            return crm_.plugin.fetch(
                json::object{
                    {"type", "lookup"}, {"object", object}, {"by", by_json}, {"select", select_json}, {"keys", keys_json}},
                row_of);
        },
        what);
    // NOT_SUPPORTED is the input's kind of failure, never a stop: ask in SOQL instead.
    if (asked.status != CRMSYNC_STATUS_NOT_SUPPORTED) return asked;
    rows.clear();
    // Statements short enough for any plugin's query, also sent as a URL.
    soql::Lookup asked_for{object, by, select, keys};
    Outcome outcome;
    for (const auto& statement : asked_for.statements(4000, [](const std::string& s) { return s.size(); })) {
        std::vector<json::object> chunk;
        outcome = query(statement, chunk, what);
        if (!outcome.ok()) break;
        for (auto& r : chunk) rows.push_back(std::move(r));
    }
    return outcome;
}

void Services::resolve_match(std::vector<PendingOperation>& ops) {
    // One lookup per object and set of key fields.
    std::map<std::pair<std::string, std::string>, std::vector<PendingOperation*>> groups;
    for (auto& p : ops)
        if (p.active() && p.op.match) groups[{p.op.object, p.op.match->field_list()}].push_back(&p);
    for (auto& [target, group] : groups) {
        const std::string& object = target.first;
        const MatchDirective& shape = *group.front()->op.match;
        std::vector<std::string> by, select{"Id"};
        for (const auto& key : shape.keys) by.push_back(key.field);
        select.insert(select.end(), by.begin(), by.end());
        // A dry run also reads the fields the updates would write, to show what would change.
        if (dry_run_) {
            std::set<std::string> shown;
            for (const auto* p : group)
                for (const auto& [name, value] : p->op.fields)
                    if (name != "Id" && std::find(select.begin(), select.end(), name) == select.end()) shown.emplace(name);
            select.insert(select.end(), shown.begin(), shown.end());
        }
        std::vector<std::vector<std::string>> keys;
        std::set<std::vector<std::string>> seen;
        for (const auto* p : group) {
            std::vector<std::string> tuple;
            for (const auto& key : p->op.match->keys) tuple.push_back(key.value_text);
            if (seen.insert(tuple).second) keys.push_back(std::move(tuple));
        }
        std::vector<json::object> rows;
        auto outcome = lookup(object, by, select, keys, rows);
        if (stopped()) return;
        // Candidates by the first key's folded value; every key is then compared as it wants.
        std::map<std::string, std::vector<const json::object*>> by_first;
        for (const auto& r : rows)
            if (auto* v = r.if_contains(by.front()); v && !v->is_null())
                by_first[support::ascii_lower(scalar_text(*v))].push_back(&r);
        for (auto* p : group) {
            const auto& match = *p->op.match;
            std::vector<const json::object*> found;
            for (const auto* r : by_first[support::ascii_lower(match.keys.front().value_text)])
                if (matches(*r, match)) found.push_back(r);
            if (!outcome.ok()) {
                p->fail("MATCH_FAILED", "looking up " + object + " by " + match.field_list() + " failed: " + outcome.message);
            } else if (found.empty()) {
                p->skip_reason = "no " + object + " has " + match.describe();
                ++counts_->no_match;
                p->no_match = true;
                note("info", "no match: " + p->skip_reason + " (source " + p->op.source_id + ")");
            } else if (found.size() > 1) {
                std::string list;
                for (const auto* r : found) list += (list.empty() ? "" : ", ") + find_text(*r, "Id");
                p->fail("DUPLICATE_MATCH",
                        std::to_string(found.size()) + " " + object + " records have " + match.describe() + " (" + list +
                            "); nothing was written",
                        by);
            } else {
                p->op.id = find_text(*found.front(), "Id");
                p->op.action = "update";
                if (dry_run_) p->current = *found.front();
                p->known = true;
            }
        }
    }
}

// ---- owner: the active user with this email, else the fallbacks in order --------------

std::string Services::connection_user() {
    if (!connection_user_.empty()) return connection_user_;
    fetch_crm(
        json::object{{"type", "whoami"}},
        [&](json::value&& item) -> int32_t {
            if (auto* o = item.if_object()) connection_user_ = find_text(*o, "id");
            return CRMSYNC_STATUS_OK;
        },
        "asking the CRM who the connection's user is");
    return connection_user_;
}

std::string Services::integration_profile() {
    if (!integration_profile_.empty()) return integration_profile_;
    std::vector<json::object> rows;
    query("SELECT Id FROM Profile WHERE Name = " + soql::literal("Minimum Access - API Only Integrations"), rows,
          "the integration profile lookup");
    if (!rows.empty()) integration_profile_ = find_text(rows.front(), "Id");
    return integration_profile_;
}

std::string Services::create_integration_user(const std::string& email, std::string& code, std::string& why) {
    std::string profile = integration_profile();
    if (stopped()) return "";
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
        json::object fields{{"Username", username}, {"Email", email},       {"LastName", local},
                            {"Alias", alias},       {"ProfileId", profile}, {"IsActive", true}};
        for (const auto& [k, v] : settings_.new_user) fields[k] = v;
        std::vector<json::value> results;
        auto outcome = create_once(
            json::object{
                {"operations", json::array{json::object{
                                   {"object", "User"}, {"action", "create"}, {"key", "user:" + email}, {"fields", fields}}}}},
            "SELECT Id FROM User WHERE Username = " + soql::literal(username), results, "creating an integration user");
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

// Follows if_missing in order; an empty answer with `code` and `why` when none applies.
std::string Services::owner_fallback(const OwnerDirective& owner, const std::string& email, std::string& code, std::string& why) {
    std::vector<std::string> steps = owner.if_missing.empty() ? std::vector<std::string>{"error"} : owner.if_missing;
    for (const auto& step : steps) {
        if (step == "create_integration_user") {
            if (dry_run_) return "(new integration user)";
            std::string chosen = create_integration_user(email, code, why);
            if (!chosen.empty()) {
                bump("owner_integration_users_created");
                note("info", "created integration user " + chosen + " for " + email);
                return chosen;
            }
            if (code != "LICENSE_LIMIT_EXCEEDED" || stopped()) return "";
            note("warning", "no integration licence left for " + email + " (" + why + ")");
            continue;
        }
        if (step == "connection_user") {
            std::string chosen = connection_user();
            if (!chosen.empty()) {
                bump("owner_connection_user_fallbacks");
                if (owner_logged_.insert(email).second)
                    note("info", "no CRM user for " + email + "; assigned to the connection's user");
            }
            return chosen;
        }
        if (step == "error") return "";
    }
    return "";
}

// Keys of Contacts and Leads one `find` call asks for: a plugin packs them into as few
// requests as it can (the salesforce plugin: about a thousand emails a Composite call).
constexpr size_t kPartyKeysPerCall = 1000;

void Services::look_up(std::vector<PendingOperation>& ops) {
    std::vector<const PendingOperation*> active;
    for (const auto& p : ops)
        if (p.active()) active.push_back(&p);
    ask_look_ups(active);
    if (stopped()) return;
    if (auto why = std::exchange(parties_failed_, std::nullopt))
        for (auto& p : ops)
            if (p.active() && p.op.related) p.fail("RELATED_LOOKUP_FAILED", "finding Contacts and Leads failed: " + *why);
}

void Services::look_up_ahead(const std::vector<const PendingOperation*>& ops, RunCounts& counts, std::vector<LogLine>& log) {
    counts_ = &counts;
    log_ = &log;
    ask_look_ups(ops);
    stop_.reset();
    parties_failed_.reset();
    counts_ = nullptr;
    log_ = nullptr;
}

// One call per chunk of keys not in the run's caches, all at once.
void Services::ask_look_ups(const std::vector<const PendingOperation*>& ops) {
    Distinct owners, emails, phones;
    for (const auto* p : ops) {
        if (p->op.owner)
            if (auto email = support::ascii_lower(p->op.owner->email); !email.empty() && !owners_.count(email)) owners.add(email);
        if (!p->op.related) continue;
        for (const auto& e : p->op.related->emails)
            if (auto email = support::ascii_lower(e); !email.empty() && !keys_looked_up_.count("e:" + email)) emails.add(email);
        for (const auto& phone : p->op.related->phones)
            if (support::phone_digits(phone).size() >= 6 && !keys_looked_up_.count("p:" + normalize_phone(phone)))
                phones.add(phone);
    }
    std::vector<std::function<void()>> calls;
    for_each_chunk(owners.values,
                   [&](const std::vector<std::string>& chunk) { calls.emplace_back([this, chunk] { look_up_owners(chunk); }); });
    for (size_t start = 0; start < std::max(emails.values.size(), phones.values.size()); start += kPartyKeysPerCall) {
        json::array e, ph;
        for (size_t i = start; i < std::min(emails.values.size(), start + kPartyKeysPerCall); ++i)
            e.emplace_back(emails.values[i]);
        for (size_t i = start; i < std::min(phones.values.size(), start + kPartyKeysPerCall); ++i)
            ph.emplace_back(phones.values[i]);
        calls.emplace_back([this, e = std::move(e), ph = std::move(ph)] { find_parties(e, ph); });
    }
    run_at_once(calls.size(), crm_.parallel, [&](size_t i) { calls[i](); });
}

// A chunk of owner emails: each found active user's id, or "" for none (the oldest user
// wins when several share an email).
void Services::look_up_owners(const std::vector<std::string>& emails) {
    std::vector<json::object> rows;
    auto outcome = query(
        "SELECT Id, Email FROM User WHERE IsActive = true AND Email IN " + soql::in_list(emails) + " ORDER BY CreatedDate ASC",
        rows, "the user lookup");
    if (!outcome.ok()) {
        note("error", "user lookup failed: " + outcome.message);
        return;
    }
    std::lock_guard lock(mutex_);
    for (const auto& email : emails) owners_.emplace(email, "");
    for (const auto& r : rows) {
        auto& slot = owners_[support::ascii_lower(find_text(r, "Email"))];
        if (slot.empty()) slot = find_text(r, "Id");
    }
}

void Services::resolve_owner(std::vector<PendingOperation>& ops) {
    for (auto& p : ops) {
        if (stopped()) return;
        if (!p.active() || !p.op.owner) continue;
        auto email = support::ascii_lower(p.op.owner->email);
        auto found = owners_.find(email);
        if (email.empty() || found == owners_.end()) {
            p.fail("OWNER_NOT_FOUND", "owner email \"" + email + "\" could not be looked up", {"OwnerId"});
            continue;
        }
        if (found->second.empty()) {
            std::string code = "OWNER_NOT_FOUND", why = "no active user has the email " + email;
            std::string chosen = owner_fallback(*p.op.owner, email, code, why);
            if (stopped()) return;
            if (chosen.empty()) {
                p.fail(code, why, {"OwnerId"});
                continue;
            }
            found->second = chosen;  // what we settled on is remembered for the run
        }
        if (found->second != "(new integration user)") p.op.fields["OwnerId"] = found->second;
    }
}

}  // namespace crmsync
