// feedback-companies: Salesforce Accounts or Opportunities → companies in a customer-feedback
// tool (Flyle-style), so that product managers weigh feedback by the customer's latest facts.
// The run turned round (ABI 1.1, CRMSYNC_CAP_READS_CRM): this plugin says what it reads from
// the CRM (`crm_read`), maps each changed CRM record to a company keyed by its Salesforce Id
// (the tool's external id), and writes the companies to the tool (feedback_api.h).
//   - a record that passes every filter becomes (or updates) its company;
//   - one that stops passing stays in the tool, or is archived with "on_leave": "archive";
//   - a deleted or merged record's company is archived;
//   - a mapped picklist keeps the tool's select options in step (added, never removed).
#include <crmsync/plugin.h>
#include <crmsync/support/json_plugin.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "feedback_api.h"

namespace {

namespace json = boost::json;
using crmsync::support::emit;
using crmsync::support::fail;
using crmsync::support::guarded;
using crmsync::support::scalar_text;

const char* const kConfigSchema = R"json({
  "$schema": "http://json-schema.org/draft-07/schema#",
  "type": "object",
  "required": ["object", "fields", "destination"],
  "additionalProperties": false,
  "definitions": {
    "path": {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_]{0,79}(\\.[A-Za-z][A-Za-z0-9_]{0,79}){0,4}$"}
  },
  "properties": {
    "object": {"enum": ["Account", "Opportunity"],
               "description": "the CRM object whose records become companies (Account is what the seed recommends)"},
    "filters": {"type": "array", "maxItems": 20, "items": {
      "type": "object", "required": ["field", "op"], "additionalProperties": false,
      "properties": {"field": {"$ref": "#/definitions/path"},
                     "op": {"enum": ["equals", "not_equals", "in", "not_in", "greater_than", "less_than",
                                     "at_least", "at_most", "is_empty", "is_not_empty"]},
                     "value": {}}},
      "description": "conditions a record must all meet to be synced"},
    "fields": {"type": "object", "minProperties": 1, "maxProperties": 100,
               "additionalProperties": {"type": "object", "required": ["from", "type"], "additionalProperties": false,
                                        "properties": {"from": {"$ref": "#/definitions/path"}, "type": {"type": "string"}}},
               "description": "the tool's custom field key -> {from: CRM field or many→one path, type}"},
    "on_leave": {"enum": ["keep", "archive"], "default": "keep",
                 "description": "a record that stops meeting the filters: its company stays (keep) or is archived"},
    "destination": {"type": "object", "additionalProperties": false,
                    "properties": {"base_url": {"type": "string", "pattern": "^https?://"},
                                   "folder": {"type": "string", "minLength": 1}},
                    "oneOf": [{"required": ["base_url"]}, {"required": ["folder"]}],
                    "description": "the tool's API (credential api_token), or an export folder"}
  }
})json";

// The custom field types the feedback tool has.
const std::set<std::string> kToolTypes{"text", "number", "date", "single_select", "multi_select"};

// Child relationships of Accounts and Opportunities: one→many, so no one value per company.
const std::set<std::string> kChildRelationships{"Opportunities",
                                                "Contacts",
                                                "Cases",
                                                "Contracts",
                                                "Assets",
                                                "Orders",
                                                "Quotes",
                                                "Tasks",
                                                "Events",
                                                "Notes",
                                                "Attachments",
                                                "OpportunityLineItems",
                                                "OpportunityContactRoles",
                                                "AccountContactRelations",
                                                "Partners",
                                                "ActivityHistories",
                                                "OpenActivities",
                                                "ChildAccounts"};

struct Filter {
    std::string field, op;
    json::value value;
};

struct Mapped {
    std::string key, from, type;
};

struct Instance {
    const crmsync_host_api* host;
    std::string object;
    std::vector<Filter> filters;
    std::vector<Mapped> fields;
    bool archive_on_leave = false;
    std::unique_ptr<feedback::Destination> destination;
};

Instance* self(crmsync_instance* i) { return reinterpret_cast<Instance*>(i); }

// "Account.Industry" -> the child relationship it starts with, if any.
std::string one_to_many(const std::string& path) {
    for (size_t start = 0, dot; (dot = path.find('.', start)) != std::string::npos; start = dot + 1)
        if (auto segment = path.substr(start, dot - start); kChildRelationships.count(segment)) return segment;
    return "";
}

crmsync_instance* create(const crmsync_host_api* host, crmsync_call* call, const char* config_json) noexcept {
    crmsync_instance* created = nullptr;
    guarded(host, call, [&]() -> int32_t {
        auto config = crmsync::support::parse_object(config_json);  // checked against kConfigSchema
        auto in = std::make_unique<Instance>();
        in->host = host;
        in->object = std::string(config.at("object").as_string());
        for (const auto& [key, spec] : config.at("fields").as_object()) {
            Mapped m{std::string(key), std::string(spec.at("from").as_string()), std::string(spec.at("type").as_string())};
            if (!kToolTypes.count(m.type))
                return fail(host, call, CRMSYNC_STATUS_ERROR,
                            "config.fields." + m.key + ": type \"" + m.type +
                                "\" is not one the feedback tool's custom fields take (text, number, date, single_select, "
                                "multi_select)");
            if (m.key == "name")
                return fail(host, call, CRMSYNC_STATUS_ERROR,
                            "config.fields.name: the company's name is always the record's Name; pick another key");
            if (auto child = one_to_many(m.from); !child.empty())
                return fail(host, call, CRMSYNC_STATUS_ERROR,
                            "config.fields." + m.key + ": " + m.from + " goes through " + child +
                                ", which is one→many (a record has many of them), so a company would have no one value; "
                                "only many→one paths (e.g. an Opportunity's Account.Industry) can be mapped");
            in->fields.push_back(std::move(m));
        }
        if (auto* filters = config.if_contains("filters"))
            for (const auto& f : filters->as_array()) {
                Filter filter{std::string(f.at("field").as_string()), std::string(f.at("op").as_string()), nullptr};
                if (auto* v = f.as_object().if_contains("value")) filter.value = *v;
                const bool list = filter.op == "in" || filter.op == "not_in";
                const bool none = filter.op == "is_empty" || filter.op == "is_not_empty";
                if (list != filter.value.is_array() || (!none && filter.value.is_null()))
                    return fail(host, call, CRMSYNC_STATUS_ERROR,
                                "config.filters: " + filter.field + " " + filter.op +
                                    (list   ? " takes a list of values"
                                     : none ? " takes no value"
                                            : " takes one value"));
                in->filters.push_back(std::move(filter));
            }
        if (auto* leave = config.if_contains("on_leave")) in->archive_on_leave = leave->as_string() == "archive";
        const auto& to = config.at("destination").as_object();
        in->destination = std::make_unique<feedback::Destination>(host, crmsync::support::text(to, "base_url"),
                                                                  crmsync::support::text(to, "folder"));
        created = reinterpret_cast<crmsync_instance*>(in.release());
        return CRMSYNC_STATUS_OK;
    });
    return created;
}

void destroy(crmsync_instance* i) noexcept { delete self(i); }

int32_t authenticate(crmsync_instance* instance, crmsync_call* call, const char* credentials_json) noexcept {
    auto* in = self(instance);
    return guarded(in->host, call, [&]() -> int32_t {
        if (!in->destination->is_api()) return CRMSYNC_STATUS_OK;
        auto token = crmsync::support::text(crmsync::support::parse_object(credentials_json), "api_token");
        if (token.empty())
            return fail(in->host, call, CRMSYNC_STATUS_AUTH_FAILED,
                        "destination.base_url needs the credential \"api_token\" in the module manifest");
        in->destination->set_token(token);
        return CRMSYNC_STATUS_OK;
    });
}

// What to read: Name, the mapped fields and the filtered ones; the picklists mapped to select
// fields (the object's own, or reached through a many→one path) have their options followed.
int32_t fetch(crmsync_instance* instance, crmsync_call* call, const char* request_json) noexcept {
    auto* in = self(instance);
    return guarded(in->host, call, [&]() -> int32_t {
        auto request = crmsync::support::parse_object(request_json);
        if (crmsync::support::text(request, "type") != "crm_read")
            return fail(in->host, call, CRMSYNC_STATUS_NOT_SUPPORTED, "feedback-companies reads the CRM; it answers crm_read");
        std::vector<std::string> fields{"Name"};
        auto add = [&](const std::string& f) {
            if (std::find(fields.begin(), fields.end(), f) == fields.end()) fields.push_back(f);
        };
        json::object options;
        for (const auto& m : in->fields) {
            add(m.from);
            if (m.type == "single_select" || m.type == "multi_select") options[m.from] = m.key;
        }
        for (const auto& f : in->filters) add(f.field);
        json::array list;
        for (const auto& f : fields) list.emplace_back(f);
        if (in->object == "Opportunity")
            in->host->log(call, CRMSYNC_LOG_WARN,
                          "companies are named after Opportunity names: use Opportunity only when its names identify the "
                          "customer (e.g. \"製品名_株式会社名\"); otherwise sync Account");
        return emit(in->host, call,
                    json::object{{"type", "crm_read"}, {"object", in->object}, {"fields", list}, {"options", options}});
    });
}

// ---- map: a CRM record to its company ----------------------------------------------------

// The value at a path ("Account.Industry") of a CRM record; null when any step is missing.
json::value at_path(const json::object& record, const std::string& path) {
    const json::object* on = &record;
    size_t start = 0;
    for (size_t dot; (dot = path.find('.', start)) != std::string::npos; start = dot + 1) {
        auto* next = on->if_contains(path.substr(start, dot - start));
        if (!next || !next->is_object()) return nullptr;
        on = &next->get_object();
    }
    auto* v = on->if_contains(path.substr(start));
    return v ? *v : json::value(nullptr);
}

std::optional<double> number_of(const json::value& v) {
    if (v.is_number()) return v.to_number<double>();
    if (!v.is_string()) return std::nullopt;
    const auto& s = v.get_string();
    double d = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
    if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
    return d;
}

bool empty(const json::value& v) { return v.is_null() || (v.is_string() && v.get_string().empty()); }

bool same(const json::value& a, const json::value& b) {
    if (auto x = number_of(a), y = number_of(b); x && y && (a.is_number() || b.is_number())) return *x == *y;
    return crmsync::support::ascii_lower(scalar_text(a)) == crmsync::support::ascii_lower(scalar_text(b));
}

// Numbers compare as numbers; anything else (dates, text) as text, which orders ISO dates.
int compare(const json::value& a, const json::value& b) {
    if (auto x = number_of(a), y = number_of(b); x && y) return *x < *y ? -1 : *x > *y ? 1 : 0;
    auto s = scalar_text(a), t = scalar_text(b);
    return s < t ? -1 : s > t ? 1 : 0;
}

bool passes(const Filter& f, const json::object& record) {
    json::value v = at_path(record, f.field);
    if (f.op == "is_empty") return empty(v);
    if (f.op == "is_not_empty") return !empty(v);
    if (f.op == "in" || f.op == "not_in") {
        bool found = false;
        for (const auto& option : f.value.get_array()) found = found || (!empty(v) && same(v, option));
        return found == (f.op == "in");
    }
    if (f.op == "equals") return !empty(v) && same(v, f.value);
    if (f.op == "not_equals") return empty(v) || !same(v, f.value);
    if (empty(v)) return false;
    const int c = compare(v, f.value);
    return f.op == "greater_than" ? c > 0 : f.op == "less_than" ? c < 0 : f.op == "at_least" ? c >= 0 : c <= 0;
}

// A CRM value as the tool's field type wants it. A value of the wrong kind goes as it is,
// and the tool's refusal fails that company alone.
json::value converted(const json::value& v, const std::string& type) {
    if (v.is_null()) return nullptr;
    if (type == "number") {
        if (auto d = number_of(v))
            return *d == static_cast<double>(static_cast<int64_t>(*d)) && std::abs(*d) < 9e15
                       ? json::value(static_cast<int64_t>(*d))
                       : json::value(*d);
        return v;
    }
    if (type == "date" && v.is_string() && v.get_string().size() >= 10) return json::string(v.get_string().subview(0, 10));
    if (type == "multi_select" && v.is_string()) {  // a multi-select picklist reads "A;B"
        json::array values;
        std::string s(v.get_string());
        for (size_t start = 0; start <= s.size();) {
            auto semi = s.find(';', start);
            auto part = s.substr(start, semi == std::string::npos ? std::string::npos : semi - start);
            if (!part.empty()) values.emplace_back(part);
            if (semi == std::string::npos) break;
            start = semi + 1;
        }
        return values;
    }
    if (type == "text" && !v.is_string()) return json::value(scalar_text(v));
    return v;
}

int32_t map(crmsync_instance* instance, crmsync_call* call, const char* record_json) noexcept {
    auto* in = self(instance);
    return guarded(in->host, call, [&]() -> int32_t {
        auto record = crmsync::support::parse_object(record_json);
        const std::string id = crmsync::support::text(record, "Id");
        if (id.empty()) return fail(in->host, call, CRMSYNC_STATUS_ERROR, "a CRM record without an Id");
        auto archive = [&] {
            return emit(in->host, call,
                        json::object{{"object", "company"}, {"action", "archive"}, {"key", id}, {"fields", json::object{}}});
        };
        // Deleted (or merged into another record) in the CRM: its company is archived.
        if (auto* deleted = record.if_contains("IsDeleted"); deleted && deleted->is_bool() && deleted->get_bool())
            return archive();
        for (const auto& f : in->filters)
            if (!passes(f, record)) return in->archive_on_leave ? archive() : CRMSYNC_STATUS_OK;
        json::object fields{{"name", at_path(record, "Name")}};
        for (const auto& m : in->fields) fields[m.key] = converted(at_path(record, m.from), m.type);
        return emit(in->host, call, json::object{{"object", "company"}, {"action", "upsert"}, {"key", id}, {"fields", fields}});
    });
}

// ---- write: companies and select options to the tool ------------------------------------

int32_t write(crmsync_instance* instance, crmsync_call* call, const char* batch_json) noexcept {
    auto* in = self(instance);
    return guarded(in->host, call, [&]() -> int32_t {
        auto batch = crmsync::support::parse_object(batch_json);
        std::vector<json::object> results;
        for (const auto& item : batch.at("operations").as_array()) {
            const auto& op = item.as_object();
            const std::string key = crmsync::support::text(op, "key"), action = crmsync::support::text(op, "action");
            const auto& fields = op.at("fields").as_object();
            feedback::Written w;
            if (crmsync::support::text(op, "object") == "$options") {
                std::vector<std::string> values;
                for (const auto& v : fields.at("values").as_array())
                    if (v.is_string()) values.emplace_back(v.get_string());
                w = in->destination->follow_options(call, crmsync::support::text(fields, "field"), values);
            } else if (action == "archive") {
                w = in->destination->archive(call, key);
            } else {
                json::object custom;
                for (const auto& [name, value] : fields)
                    if (name != "name") custom[name] = value;
                w = in->destination->upsert(call, key, json::object{{"name", fields.at("name")}, {"custom_fields", custom}});
            }
            if (w.status != CRMSYNC_STATUS_OK) return fail(in->host, call, w.status, w.error);
            w.result["key"] = key;
            results.push_back(std::move(w.result));
        }
        for (const auto& r : results)
            if (int32_t rc = emit(in->host, call, r); rc != CRMSYNC_STATUS_OK) return rc;
        return CRMSYNC_STATUS_OK;
    });
}

const crmsync_plugin kPlugin = {
    .struct_size = sizeof(crmsync_plugin),
    .id = CRMSYNC_PLUGIN_ID,
    .version = CRMSYNC_PLUGIN_VERSION,
    .description = "Salesforce Accounts or Opportunities as companies in a customer-feedback tool",
    .config_schema = kConfigSchema,
    .capabilities = CRMSYNC_CAP_FETCH | CRMSYNC_CAP_MAP | CRMSYNC_CAP_WRITE | CRMSYNC_CAP_READS_CRM,
    .create = create,
    .destroy = destroy,
    .authenticate = authenticate,
    .fetch = fetch,
    .map = map,
    .write = write,
};

}  // namespace

CRMSYNC_DEFINE_ENTRY(kPlugin)
