// crmsync check MODULE: everything that can be known before a run — manifests, plugins,
// config, credentials, and the CRM objects and fields the module writes.
#include <cstdio>
#include <set>

#include "../services/services.h"
#include "commands.h"

namespace crmsync::cli {

int check(Context& ctx, const std::string& name) {
    int problems = 0;
    bool unreachable = false;
    auto problem = [&](const std::string& text) {
        ++problems;
        std::printf("  problem: %s\n", text.c_str());
    };
    std::printf("checking module %s\n", name.c_str());
    auto instances = ctx.catalog.instantiate_module(name);
    if (!instances) {
        problem(instances.status().message());
        return kConfig;
    }
    auto& mi = instances.value();
    std::printf("  plugin %s %s, CRM connection %s (%s %s)\n", mi.source->plugin().id().c_str(),
                mi.source->plugin().version().c_str(), mi.connection->name.c_str(), mi.crm->plugin().id().c_str(),
                mi.crm->plugin().version().c_str());
    for (auto [plugin, refs] : {std::pair{mi.source.get(), &mi.module->credentials},
                                std::pair{mi.crm.get(), &mi.connection->credentials}}) {
        auto credentials = resolve_credentials(*refs);
        if (!credentials) {
            problem(credentials.status().message());
            continue;
        }
        plugin->services().secrets = *credentials;
        auto outcome = plugin->authenticate(*credentials);
        if (!outcome.ok()) {
            unreachable = true;
            problem(plugin->plugin().id() + " could not authenticate: " + outcome.message);
        } else {
            std::printf("  %s: authenticated\n", plugin->plugin().id().c_str());
        }
    }
    // What the module writes: its plugin's targets plus the operator's mappings.
    Services::Targets listed;
    if (auto got = Services::list_targets(*mi.source); !got) problem(got.status().message());
    else listed = std::move(got.value());
    if (!listed.listed)
        std::printf("  note: %s does not list the CRM fields it writes; only mapped fields are checked\n",
                    mi.source->plugin().id().c_str());
    if (auto mappings = parse_mappings(mi.module->mappings); !mappings) problem(mappings.status().prefixed(mi.module->manifest_path + ": ").message());
    else if (auto clash = Services::check_mappings(listed, *mi.module, *mappings, mi.source->plugin().id()); !clash) problem(clash.message());
    auto targets = listed.fields;
    for (const auto& m : mi.module->mappings)
        if (auto* o = m.if_object())
            if (auto object = find_string(*o, "object"), field = find_string(*o, "field"); field)
                targets[object.value_or(targets.empty() ? "" : targets.begin()->first)].insert(*field);

    if (!unreachable && !targets.empty()) {
        json::array objects;
        for (const auto& [object, fields] : targets) objects.emplace_back(object);
        std::map<std::string, json::object> describes;
        auto described = mi.crm->fetch(json::object{{"type", "describe"}, {"objects", objects}}, [&](json::value&& item) -> int32_t {
            if (auto* o = item.if_object()) describes[find_string(*o, "object").value_or("")] = *o;
            return CRMSYNC_STATUS_OK;
        });
        if (!described.ok()) problem("the CRM could not describe " + json::serialize(objects) + ": " + described.message);
        for (const auto& [object, fields] : targets) {
            auto d = describes.find(object);
            if (d == describes.end()) continue;
            std::map<std::string, const json::object*> by_name;
            if (auto* list = find_array(d->second, "fields"))
                for (const auto& f : *list)
                    if (auto* fo = f.if_object()) by_name[find_string(*fo, "name").value_or("")] = fo;
            const std::string& ext = mi.connection->external_id_field;
            auto ext_it = by_name.find(ext);
            if (ext_it == by_name.end())
                problem(object + " has no field " + ext + " for crmsync's keys (create a Text(255) External ID field " + ext +
                        " on " + object + ", or set \"external_id_field\" in " + mi.connection->manifest_path + ")");
            else if (!find_bool(*ext_it->second, "externalId").value_or(false))
                problem(object + "." + ext + " is not marked External ID (tick \"External ID\" on the field)");
            for (const auto& f : fields)
                if (!by_name.count(f))
                    problem(object + "." + f + " does not exist in the CRM (the module writes it; create the field or fix the mapping)");
            std::printf("  %s: %zu field(s) checked\n", object.c_str(), fields.size());
        }
        for (const auto& fixed : listed.values) {
            auto object = find_text(fixed, "object"), field = find_text(fixed, "field"), value = find_text(fixed, "value");
            auto d = describes.find(object);
            if (d == describes.end()) continue;
            const json::object* f = nullptr;
            if (auto* list = find_array(d->second, "fields"))
                for (const auto& candidate : *list)
                    if (auto* fo = candidate.if_object(); fo && find_text(*fo, "name") == field) f = fo;
            auto* values = f ? find_array(*f, "picklistValues") : nullptr;
            if (!values) continue;  // not a picklist (a missing field is reported above)
            std::string allowed;
            bool found = false;
            for (const auto& v : *values)
                if (auto* vo = v.if_object(); vo && find_bool(*vo, "active").value_or(true)) {
                    found = found || find_text(*vo, "value") == value;
                    allowed += (allowed.empty() ? "" : ", ") + find_text(*vo, "value");
                }
            if (!found)
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
                problem(object + " needs " + names + " and no mapping always supplies one: " + find_string(group, "hint").value_or(""));
        }
    }
    if (problems == 0) {
        std::printf("ok: %s is ready to run\n", name.c_str());
        return kOk;
    }
    std::printf("%d problem(s)\n", problems);
    return unreachable ? kUnreachable : kConfig;
}

}  // namespace crmsync::cli
