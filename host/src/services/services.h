#pragma once
// The shared hard parts, resolved for a whole batch at once (never one API call per
// record): the operator's field mappings, checks against the CRM's describe (cached per
// run), assignment lookup (`owner`), related-to resolution (`related`), unique-key
// matching (`match`) and picklist values (`picklists`). Plugins declare what they need
// inside each operation; the rules live here, once. One Services object per run; it talks
// to the CRM only through its plugin (query, describe, find, whoami, write), through the
// run's PluginCaller, so a lookup retries and re-authenticates as the write does.
//
// A record's own bad data fails that record. A lookup that could not run (budget, 5xx,
// timeout, auth) fails no record: resolve() answers the stop and the batch goes no further.
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "../instance.h"
#include "../manifest.h"
#include "../operation.h"
#include "../plugin_call.h"
#include "../store.h"
#include "mapping.h"

namespace crmsync {

// The active values of a picklist field in a describe answer, in the CRM's order.
std::vector<std::string> active_picklist_values(const json::object& describe_field);

struct ServiceSettings {
    std::string default_country_code;  // e.g. "81": 03-1234-5678 == +81 3 1234 5678
    json::object new_user;             // TimeZoneSidKey, LocaleSidKey, LanguageLocaleKey, EmailEncodingKey
    static Result<ServiceSettings> from_manifest(const ModuleManifest& module);
};

// The CRM plugin as the services reach it: the instance, its credentials (to
// authenticate again), the run's caller and how many calls may run at once.
struct CrmAccess {
    PluginInstance& plugin;
    const std::vector<CredentialRef>& credentials;
    const PluginCaller& caller;
    size_t parallel = 1;
};

// One field of a describe, with what every operation's check reads worked out once.
struct DescribedField {
    json::object raw;  // as the CRM described it (picklist values and all)
    std::string type;
    bool text = false;        // a string, email, picklist, id… type: a JSON string, cut to `length`
    int64_t length = 0;       // characters; 0 when unbounded
    bool restricted = false;  // a restricted picklist or multipicklist
    bool create_only = false;
};

class Services {
public:
    Services(CrmAccess crm, const ModuleManifest& module, std::vector<FieldMapping> mappings, ServiceSettings settings,
             bool dry_run);

    // What a source plugin's fixed default mappings write (its `targets` answer).
    struct Targets {
        bool listed = false;                                              // false: the plugin does not say
        std::map<std::string, std::set<std::string>> fields;              // object -> fields
        std::vector<json::object> required_any;                           // groups, each with "object"
        std::vector<json::object> values;                                 // {"object", "field", "value"} fixed values
        std::map<std::string, std::map<std::string, std::string>> types;  // object -> field -> text|number|...
        std::set<std::string> by_match;  // objects written only by match: no external-id field needed
    };
    static Result<Targets> list_targets(PluginInstance& source);
    // Refuses custom mappings onto the plugin's fixed fields. Returns the configuration
    // error, naming the manifest and the field.
    static Status check_mappings(const Targets& targets, const ModuleManifest& module, const std::vector<FieldMapping>& mappings,
                                 const std::string& plugin_id);

    void set_required_any(std::vector<json::object> groups) { required_any_ = std::move(groups); }
    // Local and free: the operator's mappings onto each operation, before its content hash.
    void apply_field_mappings(std::vector<PendingOperation>& ops) const;
    // Resolves the directives of the active operations into fields, or fails them. A
    // lookup that could not run answers the stop; the operations are then left as they are.
    std::optional<RunStop> resolve(std::vector<PendingOperation>& ops, RunCounts& counts, std::vector<LogLine>& log);
    // The owner and Contact/Lead look-ups these operations will need, asked now into the
    // run's caches (a page read ahead). Decides nothing and stops nothing: what fails here
    // is asked again by resolve().
    void look_up_ahead(const std::vector<const PendingOperation*>& ops, RunCounts& counts, std::vector<LogLine>& log);

private:
    struct Describe {
        std::map<std::string, DescribedField, std::less<>> fields;  // by name
        bool ok = false;
        std::string problem;
        // What a create must give: not nillable, createable, not defaulted (Id, OwnerId and
        // checkboxes aside). Worked out once, not for every operation.
        std::vector<std::string> required;
    };
    struct Party {
        std::string id, object, created, email;
        std::vector<std::string> phones;  // digits with the country code
        bool converted = false;
    };

    void resolve_match(std::vector<PendingOperation>& ops);
    Outcome lookup(const std::string& object, const std::vector<std::string>& by, const std::vector<std::string>& select,
                   const std::vector<std::vector<std::string>>& keys, std::vector<json::object>& rows);
    // The owners and the Contacts and Leads a batch names that the run has not looked up
    // yet, a CRM call per chunk of keys, the calls at once.
    void look_up(std::vector<PendingOperation>& ops);
    void ask_look_ups(const std::vector<const PendingOperation*>& ops);
    void look_up_owners(const std::vector<std::string>& emails);
    void find_parties(const json::array& emails, const json::array& phones);
    void resolve_owner(std::vector<PendingOperation>& ops);
    std::string owner_fallback(const OwnerDirective& owner, const std::string& email, std::string& code, std::string& why);
    void resolve_related(std::vector<PendingOperation>& ops);
    std::optional<std::string> relate(PendingOperation& p);  // the primary Contact when open_opportunity applies
    void attach_open_opportunities(const std::vector<std::pair<PendingOperation*, std::string>>& wanted);

    void check_against_describe(std::vector<PendingOperation>& ops);
    void check_operation(PendingOperation& p, const Describe& d,
                         const std::set<std::pair<std::string, std::string>>& truncatable);
    void check_picklist(PendingOperation& p, const std::string& name, const json::object& field, const std::string& value);
    bool add_picklist_value(PendingOperation& p, const std::string& name, const std::string& value);
    void check_required(PendingOperation& p, const Describe& d, const std::set<std::string>& filled_later);

    const Describe& describe(const std::string& object);
    void load_describes(const std::set<std::string>& objects);

    // The CRM plugin's verbs through the run's caller. An outcome that is not the input's
    // fault becomes the pass's stop; the caller then sees it failed and goes no further.
    Outcome fetch_crm(const json::value& request, const std::function<int32_t(json::value&&)>& sink, std::string_view what);
    Outcome call_crm(const std::function<Outcome()>& attempt, std::string_view what);
    Outcome write_crm(const json::value& batch, std::vector<json::value>& results, std::string_view what);
    Outcome create_once(const json::value& batch, const std::string& applied, std::vector<json::value>& results,
                        std::string_view what);
    Outcome query(const std::string& soql, std::vector<json::object>& rows, std::string_view what);
    bool stopped() const {
        std::lock_guard lock(mutex_);
        return stop_.has_value();
    }
    void note(std::string level, std::string message);
    void bump(const std::string& counter);

    std::string normalize_phone(std::string_view phone) const;
    std::string connection_user();
    std::string integration_profile();
    // Creates an integration user; empty id with `why` when the CRM refuses.
    std::string create_integration_user(const std::string& email, std::string& code, std::string& why);

    CrmAccess crm_;
    const ModuleManifest& module_;
    std::vector<FieldMapping> mappings_;
    ServiceSettings settings_;
    bool dry_run_;
    std::vector<json::object> required_any_;

    // Guards what the calls of look_up() share: the three below and the caches.
    mutable std::mutex mutex_;
    // Set for the duration of one resolve(): where counters, log lines and a stop go.
    RunCounts* counts_ = nullptr;
    std::vector<LogLine>* log_ = nullptr;
    std::optional<RunStop> stop_;
    std::optional<std::string> parties_failed_;  // why the CRM refused a Contact and Lead lookup

    // Cached for the run.
    std::map<std::string, Describe> describes_;
    std::map<std::string, std::string> owners_;  // lower-case email -> user id ("" = none found)
    std::set<std::string> owner_logged_;
    std::map<std::string, std::vector<Party>> parties_by_key_;  // "e:email" / "p:digits" -> matches
    std::set<std::string> keys_looked_up_;
    std::string connection_user_, integration_profile_;
};

}  // namespace crmsync
