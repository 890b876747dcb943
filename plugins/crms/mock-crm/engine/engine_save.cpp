// Engine::save: one record through Salesforce's rules — field types and lengths,
// restricted picklists, references, required fields, Event timing, Shared Activities,
// unique values and user licences — then into its table inside a savepoint.
#include <crmsync/support/phone.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "engine.h"
#include "engine_internal.h"

namespace mockcrm {
using namespace detail;

SaveResult Engine::save(const Object& obj, const std::string* id, const json::object& fields) {
    const bool creating = id == nullptr;
    std::map<std::string, SqlValue> values;  // canonical field name -> stored value
    std::vector<std::string> who_ids;
    bool who_ids_given = false;
    std::string created_date, modified_date;

    for (const auto& [raw_name, value] : fields) {
        std::string name(raw_name);
        if (name == "attributes" || iequals(name, "Id")) continue;
        if (seeding_ && (iequals(name, "CreatedDate") || iequals(name, "LastModifiedDate"))) {
            std::string normalized;
            if (!value.is_string() || !normalize_datetime(value.get_string(), normalized))
                return failure("INVALID_TYPE_ON_FIELD_IN_RECORD", name + ": value not of required type");
            (iequals(name, "CreatedDate") ? created_date : modified_date) = normalized;
            continue;
        }
        const Field* f = obj.field(name);
        if (!f) return failure("INVALID_FIELD", "No such column '" + name + "' on sobject of type " + obj.name, {name});
        if (!seeding_ && ((creating && !f->createable) || (!creating && !f->updateable)))
            return failure("INVALID_FIELD_FOR_INSERT_UPDATE",
                           std::string("Unable to ") + (creating ? "create" : "update") + " fields: " + f->name +
                               ". Please check the security settings of this field and verify that it is read/write for your profile or permission set.",
                           {f->name});
        auto type_error = [&] {
            return failure("INVALID_TYPE_ON_FIELD_IN_RECORD",
                           f->name + ": value not of required type: " + json::serialize(value), {f->name});
        };
        if (value.is_null()) {
            if (!creating && f->required)
                return failure("REQUIRED_FIELD_MISSING", "Required fields are missing: [" + f->name + "]", {f->name});
            if (f->type == "junctionidlist") {
                who_ids_given = true;
                continue;
            }
            values[f->name] = nullptr;
            if (f->is_phone()) values["_digits_" + f->name] = nullptr;
            continue;
        }
        const std::string& t = f->type;
        if (t == "junctionidlist") {
            if (!value.is_array()) return type_error();
            who_ids_given = true;
            for (const auto& v : value.get_array()) {
                if (!v.is_string()) return type_error();
                who_ids.emplace_back(v.get_string());
            }
            continue;
        }
        if (t == "boolean") {
            if (value.is_bool()) values[f->name] = int64_t{value.get_bool() ? 1 : 0};
            else if (value.is_string() && (value.get_string() == "true" || value.get_string() == "false"))
                values[f->name] = int64_t{value.get_string() == "true" ? 1 : 0};
            else return type_error();
            continue;
        }
        if (t == "int") {
            if (value.is_int64()) values[f->name] = value.get_int64();
            else if (value.is_double() && value.get_double() == static_cast<double>(static_cast<int64_t>(value.get_double())))
                values[f->name] = static_cast<int64_t>(value.get_double());
            else return type_error();
            continue;
        }
        if (t == "double" || t == "currency" || t == "percent") {
            if (!value.is_number()) return type_error();
            values[f->name] = value.to_number<double>();
            continue;
        }
        if (!value.is_string()) return type_error();
        std::string text(value.get_string());
        if (t == "date") {
            if (!is_date(text)) return type_error();
        } else if (t == "datetime") {
            std::string normalized;
            if (!normalize_datetime(text, normalized)) return type_error();
            text = normalized;
        } else if (t == "reference") {
            const Object* target = schema_.object_for_id(text);
            bool allowed = target && std::any_of(f->reference_to.begin(), f->reference_to.end(),
                                                 [&](const std::string& r) { return iequals(r, target->name); });
            if (!target) return failure("MALFORMED_ID", f->name + ": id value of incorrect type: " + text, {f->name});
            if (!allowed)
                return failure("FIELD_INTEGRITY_EXCEPTION",
                               f->name + ": id value of incorrect type: " + text, {f->name});
            std::string extra = target->name == "User" ? " AND \"IsActive\" = 1" : "";
            auto exists_handle = statement("SELECT 1 FROM " + q(target->name) + " WHERE \"Id\" = ?" + extra);
            auto& exists = *exists_handle;
            exists.bind(1, text);
            if (!exists.executeStep()) {
                if (target->name == "User")
                    return failure("INACTIVE_OWNER_OR_USER", "operation performed with inactive user [" + text + "] as owner of " + obj.name, {f->name});
                return failure("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", {f->name});
            }
        } else if (t == "picklist" || t == "multipicklist") {
            if (f->restricted) {
                auto& live = picklists_[obj.name + "." + f->name];
                std::vector<std::string> parts;
                if (t == "multipicklist") {
                    size_t start = 0;
                    while (start <= text.size()) {
                        auto end = text.find(';', start);
                        parts.push_back(text.substr(start, end == std::string::npos ? std::string::npos : end - start));
                        if (end == std::string::npos) break;
                        start = end + 1;
                    }
                } else {
                    parts.push_back(text);
                }
                for (const auto& part : parts)
                    if (!live.count(part))
                        return failure("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                                       f->name + ": bad value for restricted picklist field: " + part, {f->name});
            }
            if (f->length && utf8_length(text) > static_cast<size_t>(f->length))
                return failure("STRING_TOO_LONG", f->name + ": data value too large: " + preview(text) +
                                                      " (max length=" + std::to_string(f->length) + ")", {f->name});
        } else if (t != "base64") {
            if (f->length && utf8_length(text) > static_cast<size_t>(f->length))
                return failure("STRING_TOO_LONG", f->name + ": data value too large: " + preview(text) +
                                                      " (max length=" + std::to_string(f->length) + ")", {f->name});
            if (t == "email" && !plausible_email(text))
                return failure("INVALID_EMAIL_ADDRESS", f->name + ": invalid email address: " + text, {f->name});
        }
        if (f->is_phone()) values["_digits_" + f->name] = crmsync::support::phone_digits(text);
        values[f->name] = text;
    }

    // The record as it will be: stored values under the new ones, for the rules that span fields.
    std::map<std::string, SqlValue> merged;
    std::string previous_who;  // an update's WhoId before it
    if (!creating) {
        auto current_handle = statement("SELECT * FROM " + q(obj.name) + " WHERE \"Id\" = ?");
        auto& current = *current_handle;
        current.bind(1, *id);
        if (!current.executeStep()) return failure("ENTITY_IS_DELETED", "entity is deleted", {"Id"});
        for (int i = 0; i < current.getColumnCount(); ++i) {
            auto c = current.getColumn(i);
            std::string n = current.getColumnName(i);
            if (c.isNull()) merged[n] = nullptr;
            else if (c.getType() == SQLite::INTEGER) merged[n] = c.getInt64();
            else if (c.getType() == SQLite::FLOAT) merged[n] = c.getDouble();
            else merged[n] = c.getString();
        }
        if (merged.count("WhoId") && std::holds_alternative<std::string>(merged["WhoId"])) previous_who = std::get<std::string>(merged["WhoId"]);
    } else {
        for (const auto& f : obj.fields) {
            if (values.count(f.name) || f.type == "junctionidlist") continue;
            if (f.name == "OwnerId" && !running_user_.empty()) values[f.name] = running_user_;
            else if (f.defaulted && f.default_value.is_bool()) values[f.name] = int64_t{f.default_value.get_bool() ? 1 : 0};
            else if (f.defaulted && f.default_value.is_string()) values[f.name] = std::string(f.default_value.get_string());
        }
    }
    for (const auto& [k, v] : values) merged[k] = v;
    auto present = [&](const std::string& n) {
        auto it = merged.find(n);
        return it != merged.end() && !std::holds_alternative<std::nullptr_t>(it->second);
    };
    auto text_of = [&](const std::string& n) {
        auto it = merged.find(n);
        return it != merged.end() && std::holds_alternative<std::string>(it->second) ? std::get<std::string>(it->second) : "";
    };

    if (creating) {
        std::vector<std::string> missing;
        for (const auto& f : obj.fields)
            if (f.required && !f.defaulted && !present(f.name)) missing.push_back(f.name);
        if (!missing.empty()) {
            std::string list;
            for (const auto& m : missing) list += (list.empty() ? "" : ", ") + m;
            return failure("REQUIRED_FIELD_MISSING", "Required fields are missing: [" + list + "]", missing);
        }
    }

    // Shared Activities: up to 50 contacts, or one lead alone; the first is the primary Who.
    if (who_ids_given) {
        if (who_ids.size() > 50)
            return failure("FIELD_INTEGRITY_EXCEPTION", obj.name + "WhoIds: you can relate up to 50 contacts", {obj.name + "WhoIds"});
        int leads = 0;
        for (const auto& w : who_ids) {
            const Object* target = schema_.object_for_id(w);
            if (!target || (target->name != "Contact" && target->name != "Lead"))
                return failure("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id: " + w, {obj.name + "WhoIds"});
            auto exists_handle = statement("SELECT 1 FROM " + q(target->name) + " WHERE \"Id\" = ?");
            auto& exists = *exists_handle;
            exists.bind(1, w);
            if (!exists.executeStep())
                return failure("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id: " + w, {obj.name + "WhoIds"});
            if (target->name == "Lead") ++leads;
        }
        if (leads > 0 && who_ids.size() > 1)
            return failure("FIELD_INTEGRITY_EXCEPTION",
                           obj.name + "WhoIds: a lead can only be related alone, never with contacts or other leads",
                           {obj.name + "WhoIds"});
        values["WhoId"] = who_ids.empty() ? SqlValue(nullptr) : SqlValue(who_ids.front());
        merged["WhoId"] = values["WhoId"];
    }

    if (obj.name == "Event") {
        bool all_day = merged.count("IsAllDayEvent") && std::holds_alternative<int64_t>(merged["IsAllDayEvent"]) &&
                       std::get<int64_t>(merged["IsAllDayEvent"]) == 1;
        if (!present("StartDateTime") && present("ActivityDateTime")) values["StartDateTime"] = merged["StartDateTime"] = merged["ActivityDateTime"];
        if (!all_day) {
            if (!present("StartDateTime"))
                return failure("REQUIRED_FIELD_MISSING", "Required fields are missing: [ActivityDateTime]", {"ActivityDateTime"});
            std::string start = text_of("StartDateTime");
            int64_t start_ms = 0, end_ms = 0;
            parse_datetime_ms(start, start_ms);
            bool duration_given = values.count("DurationInMinutes") && present("DurationInMinutes");
            bool end_given = values.count("EndDateTime") && present("EndDateTime");
            if (!duration_given && !end_given && !present("EndDateTime") && !present("DurationInMinutes"))
                return failure("REQUIRED_FIELD_MISSING", "Required fields are missing: [DurationInMinutes]", {"DurationInMinutes"});
            if (end_given || (!duration_given && present("EndDateTime") && values.count("StartDateTime"))) {
                parse_datetime_ms(text_of("EndDateTime"), end_ms);
                if (end_ms < start_ms)
                    return failure("FIELD_INTEGRITY_EXCEPTION", "End Date Time: End time can't be before start time", {"EndDateTime"});
                values["DurationInMinutes"] = (end_ms - start_ms) / 60000;
            } else {
                int64_t minutes = std::get<int64_t>(merged["DurationInMinutes"]);
                if (minutes < 0) return failure("FIELD_INTEGRITY_EXCEPTION", "Duration: must not be negative", {"DurationInMinutes"});
                values["EndDateTime"] = format_datetime(start_ms + minutes * 60000);
            }
            values["ActivityDateTime"] = start;
            values["ActivityDate"] = start.substr(0, 10);
        }
    }
    if (obj.name == "Opportunity" && values.count("StageName"))
        values["IsClosed"] = int64_t{text_of("StageName").rfind("Closed", 0) == 0 ? 1 : 0};
    if (obj.name == "ContentVersion" && values.count("VersionData")) {
        // The decoded size: four base64 characters carry three bytes, less the padding.
        std::string data = text_of("VersionData");
        size_t padding = data.size() >= 2 ? static_cast<size_t>(std::count(data.end() - 2, data.end(), '=')) : 0;
        values["ContentSize"] = static_cast<int64_t>(data.size() / 4 * 3 - padding);
    }

    // Unique fields (e.g. Username) must stay unique.
    for (const auto& f : obj.fields) {
        if (!f.unique || !values.count(f.name) || !std::holds_alternative<std::string>(values[f.name])) continue;
        auto dup_handle = statement("SELECT \"Id\" FROM " + q(obj.name) + " WHERE " + q(f.name) + " = ? AND \"Id\" != ?");
        auto& dup = *dup_handle;
        dup.bind(1, std::get<std::string>(values[f.name]));
        dup.bind(2, creating ? std::string() : *id);
        if (dup.executeStep())
            return failure(obj.name == "User" && f.name == "Username" ? "DUPLICATE_USERNAME" : "DUPLICATE_VALUE",
                           "duplicate value found: " + f.name + " duplicates value on record with id: " + dup.getColumn(0).getString(),
                           {f.name});
    }

    // User licences: an active user takes one of its profile's licence.
    if (obj.name == "User" && (creating || values.count("IsActive") || values.count("ProfileId"))) {
        bool active = !merged.count("IsActive") || !std::holds_alternative<int64_t>(merged["IsActive"]) ||
                      std::get<int64_t>(merged["IsActive"]) == 1;
        if (active) {
            SQLite::Statement lic(db_,
                                  "SELECT l.\"Id\", l.\"Name\", l.\"TotalLicenses\" FROM \"Profile\" p JOIN \"UserLicense\" l "
                                  "ON l.\"Id\" = p.\"UserLicenseId\" WHERE p.\"Id\" = ?");
            lic.bind(1, text_of("ProfileId"));
            if (lic.executeStep()) {
                std::string license_id = lic.getColumn(0).getString();
                std::string license_name = lic.getColumn(1).getString();
                int64_t total = lic.getColumn(2).getInt64();
                SQLite::Statement used(db_,
                                       "SELECT COUNT(*) FROM \"User\" u JOIN \"Profile\" p ON p.\"Id\" = u.\"ProfileId\" "
                                       "WHERE p.\"UserLicenseId\" = ? AND u.\"IsActive\" = 1 AND u.\"Id\" != ?");
                used.bind(1, license_id);
                used.bind(2, creating ? std::string() : *id);
                used.executeStep();
                if (used.getColumn(0).getInt64() >= total)
                    return failure("LICENSE_LIMIT_EXCEEDED",
                                   "License Limit Exceeded: all " + std::to_string(total) + " " + license_name +
                                       " licences are in use", {"ProfileId"});
            }
        }
    }

    std::string now = now_text();
    SaveResult result;
    result.success = true;
    result.created = creating;
    // A savepoint, so a failure half-way leaves the record as it was and the batch goes on.
    db_.exec("SAVEPOINT save_record");
    struct Rollback {
        SQLite::Database& db;
        bool armed = true;
        ~Rollback() {
            if (armed) try { db.exec("ROLLBACK TO save_record; RELEASE save_record"); } catch (...) {}
        }
    } rollback{db_};
    if (creating) {
        result.id = next_id(obj);
        std::string columns = "\"Id\", \"CreatedDate\", \"LastModifiedDate\", \"SystemModstamp\"", marks = "?, ?, ?, ?";
        for (const auto& [k, v] : values) {
            columns += ", " + q(k);
            marks += ", ?";
        }
        auto ins_handle = statement("INSERT INTO " + q(obj.name) + " (" + columns + ") VALUES (" + marks + ")");
        auto& ins = *ins_handle;
        ins.bind(1, result.id);
        ins.bind(2, created_date.empty() ? now : created_date);
        ins.bind(3, modified_date.empty() ? (created_date.empty() ? now : created_date) : modified_date);
        ins.bind(4, now);
        int i = 5;
        for (const auto& [k, v] : values) bind(ins, i++, v);
        ins.exec();
    } else {
        result.id = *id;
        std::string sets = "\"LastModifiedDate\" = ?, \"SystemModstamp\" = ?";
        for (const auto& [k, v] : values) sets += ", " + q(k) + " = ?";
        auto upd_handle = statement("UPDATE " + q(obj.name) + " SET " + sets + " WHERE \"Id\" = ?");
        auto& upd = *upd_handle;
        upd.bind(1, modified_date.empty() ? now : modified_date);
        upd.bind(2, now);
        int i = 3;
        for (const auto& [k, v] : values) bind(upd, i++, v);
        upd.bind(i, *id);
        upd.exec();
    }
    if (who_ids_given) {
        auto del_handle = statement("DELETE FROM _who_relation WHERE ActivityId = ?");
        auto& del = *del_handle;
        del.bind(1, result.id);
        del.exec();
        auto ins_handle = statement("INSERT INTO _who_relation(ActivityId, RelationId, Seq) VALUES (?, ?, ?)");
        auto& ins = *ins_handle;
        int seq = 0;
        for (const auto& w : who_ids) {
            ins.bind(1, result.id);
            ins.bind(2, w);
            ins.bind(3, ++seq);
            ins.exec();
            ins.reset();
        }
    } else if (values.count("WhoId") && (obj.name == "Task" || obj.name == "Event")) {
        // WhoId alone, as in Salesforce: the primary relation is replaced, the others stay.
        std::string who = std::holds_alternative<std::string>(values["WhoId"]) ? std::get<std::string>(values["WhoId"]) : "";
        auto del_handle = statement("DELETE FROM _who_relation WHERE ActivityId = ? AND RelationId IN (?, ?)");
        auto& del = *del_handle;
        del.bind(1, result.id);
        del.bind(2, previous_who);
        del.bind(3, who);
        del.exec();
        if (!who.empty()) {
            auto ins_handle = statement("INSERT INTO _who_relation(ActivityId, RelationId, Seq) VALUES (?, ?, 0)");
            auto& ins = *ins_handle;
            ins.bind(1, result.id);
            ins.bind(2, who);
            ins.exec();
        }
    }
    db_.exec("RELEASE save_record");
    rollback.armed = false;
    return result;
}

}  // namespace mockcrm
