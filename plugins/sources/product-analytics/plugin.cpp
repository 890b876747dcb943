// product-analytics: rows of a product-analytics report (per-user logins, NPS, onboarding,
// course progress) onto the fields of any CRM object, each row matched to its record by a
// unique key (a report column ↔ one field of the object, usually the email). A row whose
// key matches one record updates it; none: counted and listed as no match; several: an
// error naming the candidates — the host's `match` service does all three.
//
// The report comes from the analytics tool's API (analytics_api.h: only reports tagged for
// integrations are offered; the whole report is read again each time it is refreshed) or
// from CSV exports in a folder (files in name order, a header row naming the columns).
#include <crmsync/plugin.h>
#include <crmsync/support/csv.hpp>
#include <crmsync/support/json_plugin.hpp>
#include <crmsync/support/text.hpp>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "analytics_api.h"

namespace {

namespace json = boost::json;
namespace fs = std::filesystem;
using crmsync::support::emit;
using crmsync::support::fail;
using crmsync::support::guarded;

const char* const kConfigSchema = R"json({
  "$schema": "http://json-schema.org/draft-07/schema#",
  "type": "object",
  "required": ["report", "object", "key", "columns"],
  "oneOf": [{"required": ["folder"], "not": {"required": ["api"]}}, {"required": ["api"], "not": {"required": ["folder"]}}],
  "definitions": {
    "pair": {"type": "object", "required": ["column", "field"], "additionalProperties": false,
             "properties": {"column": {"type": "string", "minLength": 1},
                            "field": {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_]{0,79}$"},
                            "compare": {"enum": ["ignore_case", "exact"], "default": "ignore_case",
                                        "description": "exact for a key such as a GUID that must match case for case"}}}
  },
  "additionalProperties": false,
  "properties": {
    "folder": {"type": "string", "minLength": 1, "description": "folder of the report's CSV exports (or api)"},
    "api": {"type": "object", "required": ["base_url"], "additionalProperties": false,
            "properties": {"base_url": {"type": "string", "pattern": "^https?://"},
                           "tag": {"type": "string", "minLength": 1, "default": "integrations_salesforce",
                                   "description": "only reports with this tag are offered to the integration"},
                           "page_size": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 200}},
            "description": "the analytics tool's reporting API (or folder); credentials client_id and client_secret"},
    "report": {"type": "string", "minLength": 1, "maxLength": 200, "description": "the report's name, as the tool shows it"},
    "object": {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_]{0,79}$", "description": "the CRM object each row updates, e.g. Lead"},
    "key": {"oneOf": [{"$ref": "#/definitions/pair"},
                      {"type": "array", "minItems": 1, "maxItems": 5, "items": {"$ref": "#/definitions/pair"}}],
            "description": "the report's unique-identifier column and the object's field it matches; several pairs must all match"},
    "columns": {"type": "object", "minProperties": 1,
                "additionalProperties": {"type": "object", "required": ["field"], "additionalProperties": false,
                  "properties": {"field": {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_]{0,79}$"},
                                 "type": {"enum": ["text", "number", "percent", "date", "datetime", "bool"]}}},
                "description": "report column -> {field, type}: what each row writes"}
  }
})json";

struct Column {
    std::string name, field, type = "text";
};

// A report column matched to one field of the object.
struct KeyPair {
    std::string column, field;
    bool exact = false;  // compare exactly (GUIDs), else case-insensitively (emails)
};

struct Instance {
    const crmsync_host_api* host;
    std::string folder, report, object;
    std::vector<KeyPair> keys;  // a row's record is the one every pair matches
    std::vector<Column> columns;
    // From the API: the tag that offers a report, the page size, and the report once found.
    std::unique_ptr<analytics::AnalyticsApi> api;
    std::string tag = "integrations_salesforce";
    int64_t page_size = 200;
    std::optional<analytics::Report> found;
    // The CSV file last parsed, kept for the pages after the first.
    std::string cached_file;
    std::vector<std::vector<std::string>> cached_rows;
};

Instance* self(crmsync_instance* i) { return reinterpret_cast<Instance*>(i); }

crmsync_instance* create(const crmsync_host_api* host, crmsync_call* call, const char* config_json) noexcept {
    crmsync_instance* created = nullptr;
    guarded(host, call, [&]() -> int32_t {
        auto config = crmsync::support::parse_object(config_json);  // checked against kConfigSchema
        auto in = std::make_unique<Instance>();
        in->host = host;
        if (auto* folder = config.if_contains("folder")) in->folder = std::string(folder->as_string());
        if (auto* api = config.if_contains("api")) {
            const auto& a = api->as_object();
            in->api = std::make_unique<analytics::AnalyticsApi>(host, std::string(a.at("base_url").as_string()));
            if (auto* tag = a.if_contains("tag")) in->tag = std::string(tag->as_string());
            if (auto* size = a.if_contains("page_size")) in->page_size = size->to_number<int64_t>();
        }
        in->report = std::string(config.at("report").as_string());
        in->object = std::string(config.at("object").as_string());
        const auto& key = config.at("key");
        for (const auto& pair : key.is_array() ? key.get_array() : json::array{key}) {
            KeyPair k{std::string(pair.at("column").as_string()), std::string(pair.at("field").as_string())};
            if (auto* compare = pair.as_object().if_contains("compare")) k.exact = compare->as_string() == "exact";
            // As in the seed: each identifier field of the object is matched by one report key.
            for (const auto& seen : in->keys)
                if (crmsync::support::ascii_lower(seen.field) == crmsync::support::ascii_lower(k.field))
                    return fail(host, call, CRMSYNC_STATUS_ERROR,
                                "config.key: " + in->object + "." + k.field + " is matched by both \"" + seen.column +
                                    "\" and \"" + k.column +
                                    "\"; each identifier field can be matched by only one report key per integration");
            in->keys.push_back(std::move(k));
        }
        std::map<std::string, std::string> written_by;  // field -> column
        for (const auto& [name, spec] : config.at("columns").as_object()) {
            Column c{std::string(name), std::string(spec.at("field").as_string())};
            if (auto* t = spec.as_object().if_contains("type")) c.type = std::string(t->as_string());
            if (auto [it, fresh] = written_by.emplace(crmsync::support::ascii_lower(c.field), c.name); !fresh)
                return fail(host, call, CRMSYNC_STATUS_ERROR,
                            "config.columns: " + in->object + "." + c.field + " is written by both \"" + it->second +
                                "\" and \"" + c.name + "\"; map each field from one column");
            // A key field is an identifier this integration matches by: only its own key
            // column may write it.
            for (const auto& k : in->keys)
                if (crmsync::support::ascii_lower(c.field) == crmsync::support::ascii_lower(k.field) && c.name != k.column)
                    return fail(host, call, CRMSYNC_STATUS_ERROR,
                                "config.columns." + c.name + ": " + in->object + "." + c.field +
                                    " is matched by the key column \"" + k.column +
                                    "\"; a second report column cannot match or write it");
            in->columns.push_back(std::move(c));
        }
        created = reinterpret_cast<crmsync_instance*>(in.release());
        return CRMSYNC_STATUS_OK;
    });
    return created;
}

void destroy(crmsync_instance* i) noexcept { delete self(i); }

int32_t authenticate(crmsync_instance* instance, crmsync_call* call, const char* credentials_json) noexcept {
    auto* in = self(instance);
    return guarded(in->host, call, [&]() -> int32_t {
        if (!in->api) return CRMSYNC_STATUS_OK;  // CSV exports need no credentials
        auto c = crmsync::support::parse_object(credentials_json);
        std::string id = crmsync::support::text(c, "client_id"), secret = crmsync::support::text(c, "client_secret");
        if (id.empty() || secret.empty())
            return fail(in->host, call, CRMSYNC_STATUS_AUTH_FAILED,
                        "config.api needs the credentials \"client_id\" and \"client_secret\" in the module manifest");
        std::string error;
        if (int32_t rc = in->api->authenticate(call, id, secret, error); rc != CRMSYNC_STATUS_OK)
            return fail(in->host, call, rc, error);
        return CRMSYNC_STATUS_OK;
    });
}

// One report row as a record item, its id the row's key value(s). A row without a key is
// still a record, named by `where`, that map() fails alone.
json::object row_item(const Instance* in, const std::vector<std::string>& header, const std::vector<std::string>& cells,
                      const std::string& where) {
    json::object record{{"_where", where}};
    for (size_t c = 0; c < header.size() && c < cells.size(); ++c) record[header[c]] = cells[c];
    std::string id;
    for (const auto& k : in->keys) {
        auto* value = record.if_contains(k.column);
        if (!value) {
            record["_invalid"] = where + ": the report has no column \"" + k.column + "\" (a key)";
            return {{"type", "record"}, {"id", where}, {"record", std::move(record)}};
        }
        if (value->get_string().empty()) {
            record["_invalid"] = where + ": the key column \"" + k.column + "\" is empty";
            return {{"type", "record"}, {"id", where}, {"record", std::move(record)}};
        }
        id += (id.empty() ? "" : " | ") + std::string(value->get_string());
    }
    return {{"type", "record"}, {"id", id}, {"record", std::move(record)}};
}

// ---- the report from CSV exports --------------------------------------------------------

const std::vector<std::vector<std::string>>& rows_of(Instance* in, const std::string& file) {
    if (in->cached_file != file) {
        std::ifstream stream(fs::path(in->folder) / file, std::ios::binary);
        if (!stream) throw std::runtime_error("report file " + (fs::path(in->folder) / file).string() + " cannot be read");
        std::ostringstream text;
        text << stream.rdbuf();
        in->cached_rows = crmsync::support::csv::parse(text.str());
        in->cached_file = file;
    }
    return in->cached_rows;
}

std::string key_text(const Instance* in) {
    std::string text;
    for (const auto& k : in->keys) text += (text.empty() ? "" : " and ") + k.column + " = " + k.field;
    return text;
}

// Rows after the {"file", "row"} cursor.
int32_t csv_records(Instance* in, crmsync_call* call, const json::object& request) {
    std::string after_file;
    int64_t after_row = 0;
    if (auto* c = request.at("cursor").if_object()) {
        after_file = std::string(c->at("file").as_string());
        after_row = c->at("row").as_int64();
    }
    const auto limit = request.at("limit").as_int64();
    std::error_code ec;
    if (!fs::is_directory(in->folder, ec))
        return fail(in->host, call, CRMSYNC_STATUS_ERROR, "report folder " + in->folder + " not found");
    std::vector<std::string> files;
    for (const auto& entry : fs::directory_iterator(in->folder, ec))
        if (entry.is_regular_file() && entry.path().extension() == ".csv") files.push_back(entry.path().filename().string());
    std::sort(files.begin(), files.end());
    int64_t emitted = 0;
    std::string file = after_file;
    int64_t row = after_row;
    for (const auto& name : files) {
        if (name < after_file) continue;
        const auto& rows = rows_of(in, name);
        if (rows.empty()) continue;
        int64_t start = name == after_file ? after_row : 0;
        if (start == 0 && rows.size() > 1)  // the run log names the report, the object and the file
            in->host->log(call, CRMSYNC_LOG_INFO,
                          ("report " + in->report + " -> " + in->object + " (by " + key_text(in) + "): reading " + name + ", " +
                           std::to_string(rows.size() - 1) + " row(s)")
                              .c_str());
        for (int64_t r = start; r + 1 < static_cast<int64_t>(rows.size()); ++r) {
            if (emitted == limit)
                return emit(in->host, call, crmsync::support::checkpoint_item(json::object{{"file", name}, {"row", r}}, true));
            // Named by the file's line, the header being line 1.
            if (int32_t rc = emit(in->host, call,
                                  row_item(in, rows[0], rows[static_cast<size_t>(r + 1)], name + ":" + std::to_string(r + 2)));
                rc != CRMSYNC_STATUS_OK)
                return rc;
            ++emitted;
        }
        file = name;
        row = static_cast<int64_t>(rows.size()) - 1;
    }
    return emit(in->host, call, crmsync::support::checkpoint_item(json::object{{"file", file}, {"row", row}}, false));
}

// ---- the report from the analytics tool's API -------------------------------------------

// The configured report among those offered to integrations (tagged), or the reason not.
int32_t find_report(Instance* in, crmsync_call* call, bool again) {
    if (in->found && !again) return CRMSYNC_STATUS_OK;
    std::vector<analytics::Report> reports;
    std::string error;
    if (int32_t rc = in->api->reports(call, reports, error); rc != CRMSYNC_STATUS_OK) return fail(in->host, call, rc, error);
    std::string offered;
    const analytics::Report* untagged = nullptr;
    in->found.reset();
    for (const auto& r : reports) {
        const bool tagged = std::find(r.tags.begin(), r.tags.end(), in->tag) != r.tags.end();
        if (tagged) offered += (offered.empty() ? "" : ", ") + r.name;
        if (r.name == in->report && tagged) in->found = r;
        else if (r.name == in->report) untagged = &r;
    }
    in->host->log(call, CRMSYNC_LOG_INFO,
                  ("reports offered to integrations (tag " + in->tag + "): " + (offered.empty() ? "none" : offered)).c_str());
    if (in->found) return CRMSYNC_STATUS_OK;
    if (untagged)
        return fail(in->host, call, CRMSYNC_STATUS_ERROR,
                    "config.report: report \"" + in->report + "\" is not tagged " + in->tag +
                        ", and only reports with that tag are offered to integrations; tag it in the analytics tool");
    return fail(in->host, call, CRMSYNC_STATUS_ERROR,
                "config.report: no report \"" + in->report + "\" is offered to integrations (tag " + in->tag +
                    "); offered: " + (offered.empty() ? "none" : offered));
}

// A page of the report after the cursor {"refreshed_at", "next", "row"}. Each refresh of the
// report is read whole from its first row (rows whose values did not change cost the CRM
// nothing); a cursor of an earlier refresh starts again.
int32_t api_records(Instance* in, crmsync_call* call, const json::object& request) {
    if (int32_t rc = find_report(in, call, false); rc != CRMSYNC_STATUS_OK) return rc;
    std::string read_refresh;
    std::optional<std::string> next;
    int64_t row = 0;
    bool done = false;
    if (auto* c = request.at("cursor").if_object()) {
        read_refresh = crmsync::support::text(*c, "refreshed_at");
        if (auto* n = c->if_contains("next"); n && n->is_string()) next = std::string(n->get_string());
        if (auto* r = c->if_contains("row"); r && r->is_int64()) row = r->get_int64();
        done = !next;
    }
    for (int restarts = 0;; ++restarts) {
        if (read_refresh != in->found->refreshed_at) {
            next.reset();
            row = 0;
            done = false;
        }
        auto cursor = [&](const std::optional<std::string>& n, int64_t r) {
            return json::object{{"refreshed_at", in->found->refreshed_at}, {"next", n ? json::value(*n) : nullptr}, {"row", r}};
        };
        if (done) return emit(in->host, call, crmsync::support::checkpoint_item(cursor(next, row), false));
        if (row == 0)
            in->host->log(call, CRMSYNC_LOG_INFO,
                          ("report " + in->report + " (refreshed " + in->found->refreshed_at + ") -> " + in->object + " (by " +
                           key_text(in) + ")")
                              .c_str());
        analytics::RowsPage page;
        std::string error;
        const int64_t limit = std::min(request.at("limit").as_int64(), in->page_size);
        if (int32_t rc = in->api->rows(call, in->found->id, next, limit, page, error); rc != CRMSYNC_STATUS_OK)
            return fail(in->host, call, rc, error);
        if (page.cursor_expired) {
            // Refreshed while we read it: read the new version from its start.
            if (restarts > 2)
                return fail(in->host, call, CRMSYNC_STATUS_RETRY, "report " + in->report + " kept being refreshed while read");
            if (int32_t rc = find_report(in, call, true); rc != CRMSYNC_STATUS_OK) return rc;
            read_refresh.clear();
            continue;
        }
        for (const auto& cells : page.rows)
            if (int32_t rc = emit(in->host, call,
                                  row_item(in, page.columns, cells, "report " + in->report + " row " + std::to_string(++row)));
                rc != CRMSYNC_STATUS_OK)
                return rc;
        return emit(in->host, call,
                    crmsync::support::checkpoint_item(cursor(page.next_cursor, row), page.next_cursor.has_value()));
    }
}

int32_t fetch(crmsync_instance* instance, crmsync_call* call, const char* request_json) noexcept {
    auto* in = self(instance);
    return guarded(in->host, call, [&]() -> int32_t {
        auto request = crmsync::support::parse_object(request_json);
        auto type = std::string(request.at("type").as_string());
        if (type == "targets") {
            // From the API, the report must be one offered to integrations.
            if (in->api)
                if (int32_t rc = find_report(in, call, true); rc != CRMSYNC_STATUS_OK) return rc;
            json::array fields;
            json::object types;
            for (const auto& c : in->columns) {
                fields.emplace_back(c.field);
                types[c.field] = c.type;
            }
            for (const auto& k : in->keys)
                if (std::none_of(in->columns.begin(), in->columns.end(), [&](const Column& c) { return c.field == k.field; }))
                    fields.emplace_back(k.field);
            return emit(
                in->host, call,
                json::object{
                    {"type", "target"}, {"object", in->object}, {"fields", fields}, {"types", types}, {"by_match", true}});
        }
        if (type != "records")
            return fail(in->host, call, CRMSYNC_STATUS_NOT_SUPPORTED, "product-analytics does not answer " + type);
        return in->api ? api_records(in, call, request) : csv_records(in, call, request);
    });
}

// A cell as the field's type wants it. A value that is not one (e.g. "n/a" for a number)
// goes as text, so the CRM refuses it with its own code for that row alone.
json::value typed(const std::string& cell, const std::string& type) {
    if (type == "number" || type == "percent") {
        double v = 0;
        auto [end, ec] = std::from_chars(cell.data(), cell.data() + cell.size(), v);
        if (ec == std::errc() && end == cell.data() + cell.size()) {
            if (v == static_cast<double>(static_cast<int64_t>(v)) && v > -9e15 && v < 9e15) return static_cast<int64_t>(v);
            return v;
        }
        return json::value(cell);
    }
    if (type == "bool") {
        const std::string lower = crmsync::support::ascii_lower(cell);
        if (lower == "true" || lower == "yes" || lower == "1") return true;
        if (lower == "false" || lower == "no" || lower == "0") return false;
        return json::value(cell);
    }
    return json::value(cell);  // text, date (YYYY-MM-DD), datetime (RFC 3339): as exported
}

int32_t map(crmsync_instance* instance, crmsync_call* call, const char* record_json) noexcept {
    auto* in = self(instance);
    return guarded(in->host, call, [&]() -> int32_t {
        auto record = crmsync::support::parse_object(record_json);
        if (int32_t rc; crmsync::support::map_invalid(in->host, call, record, rc)) return rc;
        json::object fields;
        for (const auto& c : in->columns) {
            auto* cell = record.if_contains(c.name);
            if (!cell || !cell->is_string() || cell->get_string().empty()) continue;  // an empty cell leaves the field as it is
            fields[c.field] = typed(std::string(cell->get_string()), c.type);
        }
        if (fields.empty()) return CRMSYNC_STATUS_OK;  // nothing to write for this row
        // Keys compare as the field's values do: case-insensitively (an email), or exactly (a
        // GUID); the operation's key folds them the same way.
        json::array match;
        std::string source_id, folded;
        for (const auto& k : in->keys) {
            std::string value = crmsync::support::text(record, k.column.c_str());
            json::object pair{{"field", k.field}, {"value", value}};
            if (k.exact) pair["case_sensitive"] = true;
            match.push_back(std::move(pair));
            if (!source_id.empty()) source_id += " | ";
            source_id += value;
            if (!folded.empty()) folded += '|';
            folded += k.exact ? value : crmsync::support::ascii_lower(value);
        }
        json::object op{{"object", in->object},
                        {"action", "update"},
                        {"key", "product-analytics:" + in->report + ":" + folded},
                        {"source_id", source_id},
                        {"match", match.size() == 1 ? match.front() : json::value(std::move(match))},
                        {"fields", fields}};
        return emit(in->host, call, op);
    });
}

const crmsync_plugin kPlugin = {
    .struct_size = sizeof(crmsync_plugin),
    .id = CRMSYNC_PLUGIN_ID,
    .version = CRMSYNC_PLUGIN_VERSION,
    .description = "Product-analytics report rows onto any CRM object's fields, each row matched by a unique key",
    .config_schema = kConfigSchema,
    .capabilities = CRMSYNC_CAP_FETCH | CRMSYNC_CAP_MAP,
    .create = create,
    .destroy = destroy,
    .authenticate = authenticate,
    .fetch = fetch,
    .map = map,
    .write = nullptr,
};

}  // namespace

CRMSYNC_DEFINE_ENTRY(kPlugin)
