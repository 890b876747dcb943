// product-analytics: rows of a product-analytics report (per-user logins, NPS, onboarding,
// course progress) onto the fields of any CRM object, each row matched to its record by a
// unique key (a report column ↔ one field of the object, usually the email). A row whose
// key matches one record updates it; none: counted and listed as no match; several: an
// error naming the candidates — the host's `match` service does all three.
//
// This version reads the report as CSV exports in a folder (files in name order, a header
// row naming the columns); the analytics tool's API comes next.
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
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace json = boost::json;
namespace fs = std::filesystem;
using crmsync::support::emit;
using crmsync::support::fail;
using crmsync::support::guarded;

const char* const kConfigSchema = R"json({
  "$schema": "http://json-schema.org/draft-07/schema#",
  "type": "object",
  "required": ["folder", "report", "object", "key", "columns"],
  "additionalProperties": false,
  "properties": {
    "folder": {"type": "string", "minLength": 1, "description": "folder of the report's CSV exports"},
    "report": {"type": "string", "minLength": 1, "description": "the report's name, for keys and the run log"},
    "object": {"type": "string", "minLength": 1, "description": "the CRM object each row updates, e.g. Lead"},
    "key": {"type": "object", "required": ["column", "field"], "additionalProperties": false,
            "properties": {"column": {"type": "string", "minLength": 1}, "field": {"type": "string", "minLength": 1},
                           "compare": {"enum": ["ignore_case", "exact"], "default": "ignore_case"}},
            "description": "the report's unique-identifier column and the object's field it matches; compare exact for a GUID"},
    "columns": {"type": "object", "minProperties": 1,
                "additionalProperties": {"type": "object", "required": ["field"], "additionalProperties": false,
                  "properties": {"field": {"type": "string", "minLength": 1},
                                 "type": {"enum": ["text", "number", "percent", "date", "datetime", "bool"]}}},
                "description": "report column -> {field, type}: what each row writes"}
  }
})json";

struct Column {
    std::string name, field, type = "text";
};

struct Instance {
    const crmsync_host_api* host;
    std::string folder, report, object, key_column, key_field;
    bool exact = false;  // keys compare exactly (GUIDs), else case-insensitively (emails)
    std::vector<Column> columns;
    // The file last parsed, kept for the pages after the first.
    std::string cached_file;
    std::vector<std::vector<std::string>> cached_rows;
};

Instance* self(crmsync_instance* i) { return reinterpret_cast<Instance*>(i); }

crmsync_instance* create(const crmsync_host_api* host, crmsync_call* call, const char* config_json) noexcept {
    crmsync_instance* created = nullptr;
    guarded(host, call, [&]() -> int32_t {
        auto config = json::parse(config_json).as_object();  // checked against kConfigSchema
        auto in = std::make_unique<Instance>();
        in->host = host;
        in->folder = std::string(config.at("folder").as_string());
        in->report = std::string(config.at("report").as_string());
        in->object = std::string(config.at("object").as_string());
        in->key_column = std::string(config.at("key").at("column").as_string());
        in->key_field = std::string(config.at("key").at("field").as_string());
        if (auto* compare = config.at("key").as_object().if_contains("compare")) in->exact = compare->as_string() == "exact";
        std::map<std::string, std::string> written_by;  // field -> column
        for (const auto& [name, spec] : config.at("columns").as_object()) {
            Column c{std::string(name), std::string(spec.at("field").as_string())};
            if (auto* t = spec.as_object().if_contains("type")) c.type = std::string(t->as_string());
            if (auto [it, fresh] = written_by.emplace(c.field, c.name); !fresh)
                return fail(host, call, CRMSYNC_STATUS_ERROR,
                            "config.columns: " + in->object + "." + c.field + " is written by both \"" + it->second +
                                "\" and \"" + c.name + "\"; map each field from one column");
            // The key field is the one identifier this integration matches by: only the key
            // column itself may write it.
            if (c.field == in->key_field && c.name != in->key_column)
                return fail(host, call, CRMSYNC_STATUS_ERROR,
                            "config.columns." + c.name + ": " + in->object + "." + c.field + " is matched by the key column \"" +
                                in->key_column + "\"; a second report column cannot match or write it");
            in->columns.push_back(std::move(c));
        }
        created = reinterpret_cast<crmsync_instance*>(in.release());
        return CRMSYNC_STATUS_OK;
    });
    return created;
}

void destroy(crmsync_instance* i) noexcept { delete self(i); }

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

// Rows after the {"file", "row"} cursor, each a record keyed by its key column's value.
int32_t answer_records(Instance* in, crmsync_call* call, const json::object& request) {
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
        const auto& header = rows[0];
        auto key_at = std::find(header.begin(), header.end(), in->key_column);
        int64_t start = name == after_file ? after_row : 0;
        if (start == 0 && rows.size() > 1)  // the run log names the report, the object and the file
            in->host->log(call, CRMSYNC_LOG_INFO,
                          ("report " + in->report + " -> " + in->object + " (by " + in->key_column + " = " + in->key_field +
                           "): reading " + name + ", " + std::to_string(rows.size() - 1) + " row(s)")
                              .c_str());
        for (int64_t r = start; r + 1 < static_cast<int64_t>(rows.size()); ++r) {
            if (emitted == limit)
                return emit(in->host, call, crmsync::support::checkpoint_item(json::object{{"file", name}, {"row", r}}, true));
            const auto& cells = rows[static_cast<size_t>(r + 1)];
            std::string where = name + ":" + std::to_string(r + 2);  // the file's line, the header being line 1
            json::object record{{"_where", where}};
            for (size_t c = 0; c < header.size() && c < cells.size(); ++c) record[header[c]] = cells[c];
            std::string id = key_at == header.end() || cells.size() <= static_cast<size_t>(key_at - header.begin())
                                 ? ""
                                 : cells[static_cast<size_t>(key_at - header.begin())];
            if (key_at == header.end())
                record["_invalid"] = where + ": the report has no column \"" + in->key_column + "\" (the key)";
            else if (id.empty()) record["_invalid"] = where + ": the key column \"" + in->key_column + "\" is empty";
            if (int32_t rc =
                    emit(in->host, call, json::object{{"type", "record"}, {"id", id.empty() ? where : id}, {"record", record}});
                rc != CRMSYNC_STATUS_OK)
                return rc;
            ++emitted;
            file = name;
            row = r + 1;
        }
        file = name;
        row = static_cast<int64_t>(rows.size()) - 1;
    }
    return emit(in->host, call, crmsync::support::checkpoint_item(json::object{{"file", file}, {"row", row}}, false));
}

int32_t fetch(crmsync_instance* instance, crmsync_call* call, const char* request_json) noexcept {
    auto* in = self(instance);
    return guarded(in->host, call, [&]() -> int32_t {
        auto request = json::parse(request_json).as_object();
        auto type = std::string(request.at("type").as_string());
        if (type == "targets") {
            json::array fields;
            json::object types;
            for (const auto& c : in->columns) {
                fields.emplace_back(c.field);
                types[c.field] = c.type;
            }
            if (std::none_of(in->columns.begin(), in->columns.end(), [&](const Column& c) { return c.field == in->key_field; }))
                fields.emplace_back(in->key_field);
            return emit(
                in->host, call,
                json::object{
                    {"type", "target"}, {"object", in->object}, {"fields", fields}, {"types", types}, {"by_match", true}});
        }
        if (type != "records")
            return fail(in->host, call, CRMSYNC_STATUS_NOT_SUPPORTED, "product-analytics does not answer " + type);
        return answer_records(in, call, request);
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
        auto record = json::parse(record_json).as_object();
        if (int32_t rc; crmsync::support::map_invalid(in->host, call, record, rc)) return rc;
        std::string key = crmsync::support::text(record, in->key_column.c_str());
        json::object fields;
        for (const auto& c : in->columns) {
            auto* cell = record.if_contains(c.name);
            if (!cell || !cell->is_string() || cell->get_string().empty()) continue;  // an empty cell leaves the field as it is
            fields[c.field] = typed(std::string(cell->get_string()), c.type);
        }
        if (fields.empty()) return CRMSYNC_STATUS_OK;  // nothing to write for this row
        // Keys compare as the field's values do: case-insensitively (an email), or exactly (a GUID).
        const std::string folded = in->exact ? key : crmsync::support::ascii_lower(key);
        json::object match{{"field", in->key_field}, {"value", key}};
        if (in->exact) match["case_sensitive"] = true;
        json::object op{{"object", in->object}, {"action", "update"}, {"key", "product-analytics:" + in->report + ":" + folded},
                        {"source_id", key},     {"match", match},     {"fields", fields}};
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
    .authenticate = nullptr,
    .fetch = fetch,
    .map = map,
    .write = nullptr,
};

}  // namespace

CRMSYNC_DEFINE_ENTRY(kPlugin)
