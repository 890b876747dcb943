#pragma once
// The shared hard parts, resolved for a whole batch at once (never one API call per
// record): the operator's field mappings, checks against the CRM's describe (cached per
// run), assignment lookup (`owner`), related-to resolution (`related`), unique-key
// matching (`match`) and picklist values (`picklists`). Plugins declare what they need
// inside each operation; the rules live here, once. One Services object per run; it talks
// to the CRM only through its plugin (query, describe, find, whoami, write).
#include <map>
#include <set>
#include <string>
#include <vector>

#include "../instance.h"
#include "../manifest.h"
#include "../pipeline.h"
#include "mapping.h"

namespace crmsync {

// The active values of a picklist field in a describe answer, in the CRM's order.
std::vector<std::string> active_picklist_values(const json::object& describe_field);

struct ServiceSettings {
    std::string default_country_code;  // e.g. "81": 03-1234-5678 == +81 3 1234 5678
    json::object new_user;             // TimeZoneSidKey, LocaleSidKey, LanguageLocaleKey, EmailEncodingKey
    static Result<ServiceSettings> from_manifest(const ModuleManifest& module);
};

class Services {
public:
    // backoff(attempt) waits before retry number attempt+1 and returns false when the run
    // is stopping: the pipeline's own policy, so both sides back off alike.
    Services(PluginInstance& crm, const ModuleManifest& module, std::vector<FieldMapping> mappings, ServiceSettings settings,
             bool dry_run, std::function<bool(int attempt)> backoff);

    // What a source plugin's fixed default mappings write (its `targets` answer).
    struct Targets {
        bool listed = false;                                  // false: the plugin does not say
        std::map<std::string, std::set<std::string>> fields;  // object -> fields
        std::vector<json::object> required_any;               // groups, each with "object"
        std::vector<json::object> values;                     // {"object", "field", "value"} fixed values
    };
    static Result<Targets> list_targets(PluginInstance& source);
    // Refuses custom mappings onto the plugin's fixed fields. Returns the configuration
    // error, naming the manifest and the field.
    static Status check_mappings(const Targets& targets, const ModuleManifest& module, const std::vector<FieldMapping>& mappings,
                                 const std::string& plugin_id);

    void set_required_any(std::vector<json::object> groups) { required_any_ = std::move(groups); }
    // Local and free: the operator's mappings onto each operation, before its content hash.
    void apply_field_mappings(std::vector<PendingOperation>& ops) const;
    // The pipeline's service step, for operations that will be written (skipped ones, with
    // a skip_reason, are left alone).
    void resolve(std::vector<PendingOperation>& ops, RunCounts& counts, std::vector<LogLine>& log);

private:
    struct Describe {
        std::map<std::string, json::object> fields;  // by name
        bool ok = false;
        std::string problem;
    };
    struct Party {
        std::string id, object, created, email;
        std::vector<std::string> phones;  // digits with the country code
        bool converted = false;
    };

    void resolve_match(std::vector<PendingOperation>& ops, RunCounts& counts, std::vector<LogLine>& log);
    void resolve_owner(std::vector<PendingOperation>& ops, RunCounts& counts, std::vector<LogLine>& log);
    void resolve_related(std::vector<PendingOperation>& ops, RunCounts& counts);
    void check_against_describe(std::vector<PendingOperation>& ops, RunCounts& counts, std::vector<LogLine>& log);

    const Describe& describe(const std::string& object);
    void load_describes(const std::set<std::string>& objects);
    Outcome query(const std::string& soql, std::vector<json::object>& rows);
    // The CRM plugin's fetch and write, retried with backoff while they answer RETRY. What
    // a failed attempt emitted is dropped, so the sink sees one complete answer.
    Outcome fetch_crm(const json::value& request, const std::function<int32_t(json::value&&)>& sink);
    Outcome write_crm(const json::value& batch, std::vector<json::value>& results);
    std::string normalize_phone(std::string_view phone) const;
    std::string connection_user();
    std::string integration_profile();
    // Creates an integration user; empty id with `why` when the CRM refuses.
    std::string create_integration_user(const std::string& email, std::string& code, std::string& why);

    PluginInstance& crm_;
    const ModuleManifest& module_;
    std::vector<FieldMapping> mappings_;
    ServiceSettings settings_;
    bool dry_run_;
    std::function<bool(int)> backoff_;
    std::vector<json::object> required_any_;

    std::map<std::string, Describe> describes_;
    std::map<std::string, std::string> owners_;  // lower-case email -> user id ("" = none found)
    std::set<std::string> owner_logged_;
    std::map<std::string, std::vector<Party>> parties_by_key_;  // "e:email" / "p:digits" -> matches
    std::set<std::string> keys_looked_up_;
    std::string connection_user_, integration_profile_;
    std::set<std::string> picklist_added_;
};

}  // namespace crmsync
