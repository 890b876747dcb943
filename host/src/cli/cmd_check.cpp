// crmsync check MODULE: everything that can be known before a run — manifests, plugins,
// config, credentials, and the CRM objects and fields the module writes.
#include <algorithm>
#include <cstdio>
#include <map>
#include <set>

#include "../crm_read.h"
#include "../services/services.h"
#include "commands.h"

namespace crmsync::cli {
namespace {

// The Salesforce field type to create for a kind of value a plugin writes (target "types").
std::string salesforce_type_for(const std::string& type) {
    if (type == "number") return "a Number field";
    if (type == "percent") return "a Percent field";
    if (type == "date") return "a Date field";
    if (type == "datetime") return "a Date/Time field";
    if (type == "bool") return "a Checkbox field";
    return "a Text field";
}

// Whether a field of describe type `described` holds values of kind `type`.
bool holds(const std::string& described, const std::string& type) {
    static const std::map<std::string, std::set<std::string>> kinds{
        {"number", {"double", "int", "long", "currency", "percent"}},
        {"percent", {"percent", "double"}},
        {"date", {"date", "datetime"}},
        {"datetime", {"datetime"}},
        {"bool", {"boolean"}},
        {"text", {"string", "textarea", "email", "phone", "url", "picklist", "multipicklist", "encryptedstring"}}};
    auto it = kinds.find(type);
    return it == kinds.end() || it->second.count(described) > 0;
}

// What one module's check found: printed as it goes, or gathered for --json.
struct CheckReport {
    bool as_json = false;
    json::array notes, problems;
    void note(const std::string& text) {
        if (as_json) notes.emplace_back(text);
        else std::printf("  %s\n", text.c_str());
    }
    void problem(const std::string& text) {
        problems.emplace_back(text);
        if (!as_json) std::printf("  problem: %s\n", text.c_str());
    }
};

int check(Context& ctx, const std::string& name, CheckReport& out) {
    bool unreachable = false;
    auto problem = [&](const std::string& text) { out.problem(text); };
    auto verdict = [&] {
        if (out.problems.empty() && !out.as_json) std::printf("ok: %s is ready to run\n", name.c_str());
        if (out.problems.empty()) return kOk;
        if (!out.as_json) std::printf("%zu problem(s)\n", out.problems.size());
        return unreachable ? kUnreachable : kConfig;
    };
    if (!out.as_json) std::printf("checking module %s\n", name.c_str());
    auto instances = ctx.catalog.instantiate_module(name);
    if (!instances) {
        problem(instances.status().message());
        return kConfig;
    }
    auto& mi = instances.value();
    out.note("plugin " + mi.source->plugin().id() + " " + mi.source->plugin().version() + ", CRM connection " +
             mi.connection->name + " (" + mi.crm->plugin().id() + " " + mi.crm->plugin().version() + ")");
    for (auto [plugin, refs] :
         {std::pair{mi.source.get(), &mi.module->credentials}, std::pair{mi.crm.get(), &mi.connection->credentials}}) {
        auto credentials = resolve_credentials(*refs);
        if (!credentials) {
            problem(credentials.status().message());
            continue;
        }
        plugin->services().set_secrets(*credentials);
        auto outcome = plugin->authenticate(*credentials);
        if (!outcome.ok()) {
            unreachable = true;
            problem(plugin->plugin().id() + " could not authenticate: " + outcome.message);
        } else {
            out.note(plugin->plugin().id() + ": authenticated");
        }
    }
    // What the plugin says meanwhile (e.g. which reports it can read) is shown.
    mi.source->services().log = [&out](Level level, std::string_view message) {
        if (level >= Level::info) out.note(std::string(message));
    };
    // The source itself: a first page of one record, read and dropped (nothing is committed
    // and no cursor moves), so a missing export folder or a wrong URL shows here, not in a run.
    if (!unreachable && !mi.source->can(CRMSYNC_CAP_READS_CRM)) {
        int64_t records = 0;
        auto outcome = mi.source->fetch(json::object{{"type", "records"}, {"cursor", nullptr}, {"full", false}, {"limit", 1}},
                                        [&](json::value&& item) -> int32_t {
                                            if (auto* o = item.if_object(); o && find_string(*o, "type") == "record") ++records;
                                            return CRMSYNC_STATUS_OK;
                                        });
        if (outcome.status == CRMSYNC_STATUS_NOT_SUPPORTED) {
            out.note("source: " + mi.source->plugin().id() + " takes its records by webhook only");
        } else if (!outcome.ok()) {
            // Busy, throttled or refused: the system's state, not the module's configuration.
            unreachable = unreachable || outcome.status == CRMSYNC_STATUS_RETRY || outcome.status == CRMSYNC_STATUS_AUTH_FAILED ||
                          outcome.status == CRMSYNC_STATUS_RATE_LIMITED;
            problem("the source could not be read: " + outcome.message);
        } else {
            out.note("source: read; " + std::to_string(records) + " record(s) on a first page of one (nothing kept)");
        }
    }
    // A plugin that reads the CRM: every field it reads must be readable, and its paths
    // many→one. It writes its own system, so the CRM-write checks below do not apply.
    if (mi.source->can(CRMSYNC_CAP_READS_CRM)) {
        if (!unreachable) {
            PluginCaller caller(mi.module->retry, ctx.cancel, [](Level, std::string) {});
            CrmRead read;
            RunCounts counts;
            if (auto stop = read_from_crm({*mi.source, *mi.module, *mi.crm, *mi.connection, caller}, counts, read)) {
                unreachable = unreachable || stop->unreachable;
                problem(stop->message);
            } else {
                out.note("reads " + read.object + " from the CRM: " + std::to_string(read.fields.size()) +
                         " field(s), all readable; " + std::to_string(read.options.size()) + " picklist(s) followed");
            }
        }
        return verdict();
    }
    // What the module writes: its plugin's targets plus the operator's mappings.
    Services::Targets listed;
    if (auto got = Services::list_targets(*mi.source); !got) problem(got.status().message());
    else listed = std::move(got.value());
    if (!listed.listed)
        out.note("note: " + mi.source->plugin().id() + " does not list the CRM fields it writes; only mapped fields are checked");
    if (auto mappings = parse_mappings(mi.module->mappings); !mappings)
        problem(mappings.status().prefixed(mi.module->manifest_path + ": ").message());
    else if (auto clash = Services::check_mappings(listed, *mi.module, *mappings, mi.source->plugin().id()); !clash)
        problem(clash.message());
    auto targets = listed.fields;
    for (const auto& m : mi.module->mappings)
        if (auto* o = m.if_object())
            if (auto object = find_string(*o, "object"), field = find_string(*o, "field"); field)
                targets[object.value_or(targets.empty() ? "" : targets.begin()->first)].insert(*field);

    if (!unreachable && !targets.empty()) {
        json::array objects;
        for (const auto& [object, fields] : targets) objects.emplace_back(object);
        std::map<std::string, std::map<std::string, json::object>> described;  // object -> field name -> field
        auto outcome =
            mi.crm->fetch(json::object{{"type", "describe"}, {"objects", objects}}, [&](json::value&& item) -> int32_t {
                auto* o = item.if_object();
                auto& by_name = described[o ? find_text(*o, "object") : ""];
                if (auto* list = o ? find_array(*o, "fields") : nullptr)
                    for (const auto& f : *list)
                        if (auto* fo = f.if_object()) by_name[find_text(*fo, "name")] = *fo;
                return CRMSYNC_STATUS_OK;
            });
        if (!outcome.ok()) problem("the CRM could not describe " + json::serialize(objects) + ": " + outcome.message);
        for (const auto& [object, fields] : targets) {
            auto d = described.find(object);
            if (d == described.end()) continue;
            const auto& by_name = d->second;
            const std::string& ext = mi.connection->external_id_field;
            auto ext_it = by_name.find(ext);
            if (listed.by_match.count(object)) {
                // Written only by match (updates of found records): no key field needed.
            } else if (ext_it == by_name.end()) {
                problem(object + " has no field " + ext + " for crmsync's keys (create a Text(255) External ID field " + ext +
                        " on " + object + ", or set \"external_id_field\" in " + mi.connection->manifest_path + ")");
            } else if (!find_bool(ext_it->second, "externalId").value_or(false)) {
                problem(object + "." + ext + " is not marked External ID (tick \"External ID\" on the field)");
            }
            const auto types = listed.types.find(object);
            for (const auto& f : fields) {
                const std::string* type = nullptr;
                if (types != listed.types.end())
                    if (auto t = types->second.find(f); t != types->second.end()) type = &t->second;
                auto described_field = by_name.find(f);
                if (described_field == by_name.end())
                    problem(object + "." + f + " does not exist in the CRM (the module writes it; create the field" +
                            (type ? " as " + salesforce_type_for(*type) : std::string()) + " or fix the mapping)");
                else if (type && !holds(find_text(described_field->second, "type"), *type))
                    problem(object + "." + f + " is a " + find_text(described_field->second, "type") +
                            " field; the module writes " + *type + " values into it (make it " + salesforce_type_for(*type) +
                            ")");
            }
            out.note(object + ": " + std::to_string(fields.size()) + " field(s) checked");
        }
        for (const auto& fixed : listed.values) {
            auto object = find_text(fixed, "object"), field = find_text(fixed, "field"), value = find_text(fixed, "value");
            auto d = described.find(object);
            auto f = d == described.end() ? nullptr : d->second.count(field) ? &d->second.at(field) : nullptr;
            if (!f || !find_array(*f, "picklistValues")) continue;  // not a picklist (a missing field is reported above)
            auto active = active_picklist_values(*f);
            std::string allowed;
            for (const auto& v : active) allowed += (allowed.empty() ? "" : ", ") + v;
            if (std::find(active.begin(), active.end(), value) == active.end())
                problem(object + "." + field + ": \"" + value + "\" (set in " + mi.module->manifest_path +
                        ") is not one of its picklist values; use one of: " + allowed);
        }
        for (const auto& group : listed.required_any) {
            auto object = find_string(group, "object").value_or("");
            bool covered = false;
            std::string names;
            if (auto* list = find_array(group, "fields"))
                for (const auto& f : *list) {
                    std::string n(f.as_string());
                    names += (names.empty() ? "" : " or ") + n;
                    if (targets[object].count(n)) covered = true;
                }
            if (!covered)
                problem(object + " needs " + names +
                        " and no mapping always supplies one: " + find_string(group, "hint").value_or(""));
        }
    }
    return verdict();
}

}  // namespace

int check_modules(Context& ctx, const std::string& module, bool all, bool as_json) {
    auto names = modules_named(ctx, module, all);
    if (!names) return kConfig;
    int worst = kOk;
    json::array checks;
    for (size_t i = 0; i < names->size() && !ctx.cancel.load(); ++i) {
        if (i > 0 && !as_json) std::printf("\n");
        CheckReport out;
        out.as_json = as_json;
        int code = check(ctx, (*names)[i], out);
        worst = worse_exit(worst, code);
        checks.push_back(
            json::object{{"module", (*names)[i]}, {"ok", code == kOk}, {"problems", out.problems}, {"notes", out.notes}});
    }
    if (as_json) std::printf("%s\n", json::serialize(json::object{{"checks", checks}}).c_str());
    return worst;
}

}  // namespace crmsync::cli
