#include "crm_read.h"

#include "services/services.h"

namespace crmsync {
namespace {

std::vector<std::string> split_path(const std::string& path) {
    std::vector<std::string> parts;
    for (size_t start = 0;;) {
        auto dot = path.find('.', start);
        parts.push_back(path.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
        if (dot == std::string::npos) return parts;
        start = dot + 1;
    }
}

const json::object* field_named(const json::object& describe, const std::string& name) {
    if (auto* fields = find_array(describe, "fields"))
        for (const auto& f : *fields)
            if (auto* o = f.if_object(); o && find_text(*o, "name") == name) return o;
    return nullptr;
}

}  // namespace

std::optional<RunStop> read_from_crm(const CrmReadParties& p, RunCounts& counts, CrmRead& out) {
    auto config_failure = [&](std::string message) {
        return RunStop{RunStatus::failed, p.module.manifest_path + ": " + std::move(message), false};
    };
    CrmRead read;
    auto call_source = [&](const std::function<Outcome()>& attempt, RunCounts& c) {
        return p.caller.call(p.source, p.module.credentials, attempt, c);
    };
    auto call_crm = [&](const std::function<Outcome()>& attempt, RunCounts& c) {
        return p.caller.call(p.crm, p.connection.credentials, attempt, c);
    };
    auto asked = call_source(
        [&] {
            read = CrmRead{};
            return p.source.fetch(json::object{{"type", "crm_read"}}, [&](json::value&& item) -> int32_t {
                auto* o = item.if_object();
                if (!o || find_string(*o, "type") != "crm_read") return CRMSYNC_STATUS_OK;
                read.object = find_text(*o, "object");
                if (auto* fields = find_array(*o, "fields"))
                    for (const auto& f : *fields)
                        if (f.is_string()) read.fields.emplace_back(f.get_string());
                if (auto* options = find_object(*o, "options"))
                    for (const auto& [crm_field, to] : *options)
                        if (to.is_string()) read.options.emplace_back(std::string(crm_field), std::string(to.get_string()));
                return CRMSYNC_STATUS_OK;
            });
        },
        counts);
    if (!asked.ok())
        return RunStop{RunStatus::failed, "plugin " + p.source.plugin().id() + " could not say what it reads: " + asked.message,
                       !is_input_fault(asked)};
    if (read.object.empty()) return config_failure("plugin " + p.source.plugin().id() + " named no CRM object to read");

    // Each object on the fields' paths, described once.
    std::map<std::string, json::object> described;
    std::optional<RunStop> stop;
    auto describe = [&](const std::string& object) -> const json::object* {
        if (auto it = described.find(object); it != described.end()) return &it->second;
        json::object found;
        auto outcome = call_crm(
            [&] {
                return p.crm.fetch(json::object{{"type", "describe"}, {"objects", json::array{json::value(object)}}},
                                   [&](json::value&& item) -> int32_t {
                                       if (auto* o = item.if_object()) found = *o;
                                       return CRMSYNC_STATUS_OK;
                                   });
            },
            counts);
        if (!outcome.ok()) {
            stop = is_input_fault(outcome)
                       ? config_failure("the connection's user cannot read " + object + ": " + outcome.message)
                       : stop_for(outcome, "describing " + object);
            return nullptr;
        }
        return &(described[object] = std::move(found));
    };
    const json::object* root = describe(read.object);
    if (!root) return stop;
    // The describe of the field at the end of a path, or nothing with `stop` saying why.
    auto resolve = [&](const std::string& path) -> const json::object* {
        const json::object* on = root;
        std::string object = read.object;
        auto parts = split_path(path);
        for (size_t i = 0; i + 1 < parts.size(); ++i) {
            // A relationship towards one record (a lookup) may be followed; one towards many
            // (child records) has no one value to write.
            if (auto* children = find_array(*on, "childRelationships"))
                for (const auto& c : *children)
                    if (auto* co = c.if_object(); co && find_text(*co, "relationshipName") == parts[i]) {
                        stop = config_failure(path + ": " + object + "." + parts[i] + " is one→many (each " + object +
                                              " has many " + find_text(*co, "childSObject") +
                                              " records), so it has no one value per company; read from " +
                                              find_text(*co, "childSObject") + " and map " + object + ".… instead");
                        return nullptr;
                    }
            const json::object* lookup = nullptr;
            if (auto* fields = find_array(*on, "fields"))
                for (const auto& f : *fields)
                    if (auto* fo = f.if_object(); fo && find_string(*fo, "relationshipName") == parts[i]) lookup = fo;
            auto* targets = lookup ? find_array(*lookup, "referenceTo") : nullptr;
            if (!targets || targets->empty() || !targets->at(0).is_string()) {
                stop =
                    config_failure(path + ": " + object + " has no relationship " + parts[i] + " the connection's user can read");
                return nullptr;
            }
            object = std::string(targets->at(0).get_string());
            if (!(on = describe(object))) return nullptr;
        }
        const json::object* field = field_named(*on, parts.back());
        if (!field)
            stop = config_failure(path + ": the connection's user cannot read " + object + "." + parts.back() +
                                  " (no such field, or no field-level access)");
        return field;
    };
    for (const auto& path : read.fields)
        if (!resolve(path)) return stop;
    // A followed picklist may be the object's own or one a many→one path reaches.
    for (const auto& [field, to] : read.options) {
        const json::object* f = resolve(field);
        if (!f) return stop;
        if (const auto type = find_text(*f, "type"); type != "picklist" && type != "multipicklist")
            return config_failure(read.object + "." + field + " is not a picklist, so it has no options to follow for " + to);
        read.option_values[field] = active_picklist_values(*f);
    }
    out = std::move(read);
    return std::nullopt;
}

}  // namespace crmsync
