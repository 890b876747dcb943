// Services: related-to resolution — Contacts by email or phone (up to max_contacts, the
// first the primary Who), else the oldest unconverted Lead alone, else nothing; optionally
// the primary Contact's most recently modified open Opportunity as What.
#include <crmsync/support/phone.hpp>
#include <crmsync/support/soql.hpp>
#include <crmsync/support/text.hpp>

#include <algorithm>
#include <set>

#include "batch_keys.h"
#include "services.h"

namespace crmsync {

namespace soql = support::soql;

std::string Services::normalize_phone(std::string_view phone) const {
    return support::phone_canonical(phone, settings_.default_country_code);
}

void Services::resolve_related(std::vector<PendingOperation>& ops) {
    std::vector<std::pair<PendingOperation*, std::string>> want_opportunity;
    for (auto& p : ops)
        if (p.active() && p.op.related)
            if (auto contact = relate(p)) want_opportunity.emplace_back(&p, *contact);
    attach_open_opportunities(want_opportunity);
}

// One call's worth of emails and phones into parties_by_key_. When the CRM refuses the
// lookup as bad input, parties_failed_ says why (look_up() fails the operations).
void Services::find_parties(const json::array& emails, const json::array& phones) {
    std::vector<Party> found;
    auto outcome = fetch_crm(
        json::object{{"type", "find"},
                     {"objects", json::array{"Contact", "Lead"}},
                     {"emails", emails},
                     {"phones", phones},
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
            party.email = support::ascii_lower(find_text(*r, "Email"));
            party.converted = find_bool(*r, "IsConverted").value_or(false);
            for (const char* f : {"Phone", "MobilePhone"})
                if (auto v = find_string(*r, f); v && !v->empty()) party.phones.push_back(normalize_phone(*v));
            found.push_back(std::move(party));
            return CRMSYNC_STATUS_OK;
        },
        "the Contact and Lead lookup");
    std::lock_guard lock(mutex_);
    if (!outcome.ok()) {
        if (!parties_failed_) parties_failed_ = outcome.message;
        return;
    }
    std::set<std::string> asked;
    for (const auto& v : emails) asked.insert("e:" + std::string(v.as_string()));
    for (const auto& v : phones) asked.insert("p:" + normalize_phone(v.as_string()));
    keys_looked_up_.insert(asked.begin(), asked.end());
    std::sort(found.begin(), found.end(),
              [](const Party& a, const Party& b) { return a.created != b.created ? a.created < b.created : a.id < b.id; });
    for (const auto& party : found) {
        if (!party.email.empty() && asked.count("e:" + party.email)) parties_by_key_["e:" + party.email].push_back(party);
        for (const auto& digits : party.phones)
            if (asked.count("p:" + digits)) parties_by_key_["p:" + digits].push_back(party);
    }
}

// Fills WhoId (and the *WhoIds list) of one operation from what find_parties found.
std::optional<std::string> Services::relate(PendingOperation& p) {
    const RelatedDirective& rel = *p.op.related;
    std::vector<std::string> keys;
    for (const auto& e : rel.emails) keys.push_back("e:" + support::ascii_lower(e));
    for (const auto& phone : rel.phones) keys.push_back("p:" + normalize_phone(phone));

    std::vector<std::string> who;
    if (rel.allows("Contact"))
        for (const auto& key : keys)
            for (const auto& party : parties_by_key_[key])
                if (party.object == "Contact" && who.size() < static_cast<size_t>(rel.max_contacts) &&
                    std::find(who.begin(), who.end(), party.id) == who.end())
                    who.push_back(party.id);
    const bool primary_is_contact = !who.empty();
    if (who.empty() && rel.allows("Lead")) {
        const Party* oldest = nullptr;
        for (const auto& key : keys)
            for (const auto& party : parties_by_key_[key])
                if (party.object == "Lead" && !party.converted &&
                    (!oldest || party.created < oldest->created || (party.created == oldest->created && party.id < oldest->id)))
                    oldest = &party;
        if (oldest) who.push_back(oldest->id);
    }
    if (who.empty()) {
        bump("related_none");
        return std::nullopt;
    }
    bump(primary_is_contact ? "related_contacts" : "related_lead");
    auto& fields = p.op.fields;
    fields["WhoId"] = who.front();
    // A new record with one Who needs nothing more (and stays plain enough for bulk
    // loading); an update sends the whole list so relations gone at the source go.
    const std::string& object = p.op.object;
    if ((object == "Event" || object == "Task") && (who.size() > 1 || p.known)) {
        json::array ids;
        for (const auto& id : who) ids.emplace_back(id);
        fields[object + "WhoIds"] = ids;
    }
    if (primary_is_contact && rel.open_opportunity && !fields.contains("WhatId")) return who.front();
    return std::nullopt;
}

void Services::attach_open_opportunities(const std::vector<std::pair<PendingOperation*, std::string>>& wanted) {
    if (wanted.empty()) return;
    Distinct contacts;
    for (const auto& [p, c] : wanted) contacts.add(c);
    std::map<std::string, std::string> opportunity_of;
    for_each_chunk(contacts.values, [&](const std::vector<std::string>& chunk) {
        if (stopped()) return;
        std::vector<json::object> rows;
        query("SELECT ContactId, OpportunityId FROM OpportunityContactRole WHERE Opportunity.IsClosed = false AND ContactId IN " +
                  soql::in_list(chunk) + " ORDER BY Opportunity.LastModifiedDate DESC",
              rows, "the open Opportunity lookup");
        for (const auto& r : rows) opportunity_of.emplace(find_text(r, "ContactId"), find_text(r, "OpportunityId"));
    });
    if (stopped()) return;
    for (const auto& [p, contact] : wanted)
        if (auto it = opportunity_of.find(contact); it != opportunity_of.end()) p->op.fields["WhatId"] = it->second;
}

}  // namespace crmsync
