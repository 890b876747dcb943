#include "schema.h"

#include <algorithm>
#include <cctype>

namespace mockcrm {

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
           });
}

bool CaseInsensitiveLess::operator()(const std::string& a, const std::string& b) const {
    return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
        return std::tolower(static_cast<unsigned char>(x)) < std::tolower(static_cast<unsigned char>(y));
    });
}

bool Field::is_text() const {
    return type == "string" || type == "textarea" || type == "email" || type == "phone" || type == "url" || type == "picklist" ||
           type == "multipicklist" || type == "id" || type == "reference" || type == "base64";
}

const Field* Object::field(std::string_view n) const {
    for (const auto& f : fields)
        if (iequals(f.name, n)) return &f;
    return nullptr;
}

const Field* Object::relationship(std::string_view n) const {
    for (const auto& f : fields)
        if (!f.relationship.empty() && iequals(f.relationship, n)) return &f;
    return nullptr;
}

const Object* Schema::object(std::string_view name) const {
    auto it = objects_.find(std::string(name));
    return it == objects_.end() ? nullptr : &it->second;
}

const Object* Schema::object_for_id(std::string_view id) const {
    if (id.size() != 15 && id.size() != 18) return nullptr;
    for (const auto& [name, o] : objects_)
        if (id.substr(0, 3) == o.prefix) return &o;
    return nullptr;
}

namespace {

const char* kTypes[] = {"string", "textarea", "email",   "phone", "url",      "picklist",  "multipicklist",  "boolean", "int",
                        "double", "currency", "percent", "date",  "datetime", "reference", "junctionidlist", "base64"};

Field parse_field(const std::string& object, const std::string& name, const json::object& spec, bool custom) {
    Field f;
    f.name = name;
    f.custom = custom;
    auto where = object + "." + name;
    auto* type = spec.if_contains("type");
    if (!type || !type->is_string()) throw CrmError("INVALID_SCHEMA", where + ": \"type\" is required");
    f.type = std::string(type->get_string());
    if (std::find(std::begin(kTypes), std::end(kTypes), f.type) == std::end(kTypes))
        throw CrmError("INVALID_SCHEMA", where + ": unknown field type \"" + f.type + "\"");
    auto flag = [&](const char* key, bool fallback) {
        auto* v = spec.if_contains(key);
        return v && v->is_bool() ? v->get_bool() : fallback;
    };
    if (auto* l = spec.if_contains("length"); l && l->is_int64()) f.length = static_cast<int>(l->get_int64());
    if (f.length == 0 && (f.type == "string" || f.type == "email" || f.type == "url" || f.type == "phone")) f.length = 255;
    if (f.length == 0 && f.type == "textarea") f.length = 32000;
    f.required = flag("required", false);
    f.defaulted = flag("defaulted", false);
    f.createable = flag("create", true);
    f.updateable = flag("update", true);
    f.external_id = flag("external_id", false);
    f.unique = flag("unique", false);
    f.restricted = flag("restricted", false);
    if (auto* d = spec.if_contains("default")) f.default_value = *d;
    if (auto* to = spec.if_contains("to"); to && to->is_array())
        for (const auto& t : to->get_array()) f.reference_to.emplace_back(t.as_string());
    if (auto* rel = spec.if_contains("rel"); rel && rel->is_string()) f.relationship = std::string(rel->get_string());
    if (auto* values = spec.if_contains("values"); values && values->is_array())
        for (const auto& v : values->get_array()) f.picklist.emplace_back(v.as_string());
    if (f.type == "reference" && f.reference_to.empty())
        throw CrmError("INVALID_SCHEMA", where + ": a reference field needs \"to\"");
    if (f.type == "reference" && f.relationship.empty() && custom && name.ends_with("__c"))
        f.relationship = name.substr(0, name.size() - 1) + "r";
    return f;
}

}  // namespace

Schema Schema::build(const json::object& custom) {
    Schema schema;
    auto standard = json::parse(standard_objects_json()).as_object();
    for (const auto& [name, spec] : standard) {
        Object o;
        o.name = std::string(name);
        o.prefix = std::string(spec.at("prefix").as_string());
        for (const auto& [fname, fspec] : spec.at("fields").as_object())
            o.fields.push_back(parse_field(o.name, std::string(fname), fspec.as_object(), false));
        schema.objects_.emplace(o.name, std::move(o));
    }
    int next_prefix = 1;
    for (const auto& [name, spec] : custom) {
        std::string object_name(name);
        if (!spec.is_object()) throw CrmError("INVALID_SCHEMA", "schema." + object_name + " must be an object");
        auto* existing = schema.object(object_name);
        Object* target;
        if (existing) {
            target = &schema.objects_.find(object_name)->second;
        } else {
            if (!object_name.ends_with("__c"))
                throw CrmError("INVALID_SCHEMA",
                               "schema." + object_name + ": not a standard object, and custom object names end with __c");
            Object o;
            o.name = object_name;
            o.custom = true;
            char prefix[16];
            std::snprintf(prefix, sizeof prefix, "a%02d", next_prefix++);
            o.prefix = spec.as_object().contains("prefix") ? std::string(spec.at("prefix").as_string()) : prefix;
            o.fields.push_back(parse_field(object_name, "Name", json::object{{"type", "string"}, {"length", 80}}, false));
            o.fields.push_back(parse_field(
                object_name, "OwnerId",
                json::object{{"type", "reference"}, {"to", json::array{"User"}}, {"rel", "Owner"}, {"defaulted", true}}, false));
            target = &schema.objects_.emplace(object_name, std::move(o)).first->second;
        }
        auto* fields = spec.as_object().if_contains("fields");
        if (!fields) continue;
        if (!fields->is_object()) throw CrmError("INVALID_SCHEMA", "schema." + object_name + ".fields must be an object");
        for (const auto& [fname, fspec] : fields->get_object()) {
            std::string field_name(fname);
            if (auto* existing = target->field(field_name)) {
                // A standard field may only change whether its picklist is restricted, as an
                // org's admin can; anything else about it is Salesforce's.
                if (fspec.is_object())
                    if (auto* r = fspec.get_object().if_contains("restricted"); r && r->is_bool() && !existing->custom)
                        for (auto& f : target->fields)
                            if (&f == existing) f.restricted = r->get_bool();
                continue;
            }
            if (!field_name.ends_with("__c"))
                throw CrmError("INVALID_SCHEMA",
                               "schema." + object_name + "." + field_name + ": custom field names end with __c");
            if (!fspec.is_object())
                throw CrmError("INVALID_SCHEMA", "schema." + object_name + "." + field_name + " must be an object");
            target->fields.push_back(parse_field(object_name, field_name, fspec.get_object(), true));
        }
    }
    return schema;
}

}  // namespace mockcrm
