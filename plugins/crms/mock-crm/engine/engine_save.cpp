// Engine::save: one record through Salesforce's rules, as the steps save() lists — the
// fields it was given (types, lengths, restricted picklists, references), the record as it
// will be (stored values under the new ones), required fields, Shared Activities, derived
// fields (Event timing, IsClosed, ContentSize), unique values and user licences — then
// into its table inside a savepoint.
#include <crmsync/support/phone.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "engine.h"
#include "engine_internal.h"

namespace mockcrm {
using namespace detail;

// One record on its way through save().
struct Engine::SaveDraft {
    const std::string* id = nullptr;  // null when creating
    bool creating() const { return id == nullptr; }
    std::map<std::string, SqlValue> values;  // canonical field name -> value to store
    std::vector<std::string> who_ids;        // EventWhoIds / TaskWhoIds, in order
    bool who_ids_given = false;
    std::string created_date, modified_date;  // given by seeds only
    std::map<std::string, SqlValue> merged;   // the record as it will be
    std::string previous_who;                 // an update's WhoId before it

    bool present(const std::string& name) const {
        auto it = merged.find(name);
        return it != merged.end() && !std::holds_alternative<std::nullptr_t>(it->second);
    }
    std::string text_of(const std::string& name) const {
        auto it = merged.find(name);
        return it != merged.end() && std::holds_alternative<std::string>(it->second) ? std::get<std::string>(it->second) : "";
    }
    std::optional<int64_t> int_of(const std::string& name) const {
        auto it = merged.find(name);
        if (it == merged.end() || !std::holds_alternative<int64_t>(it->second)) return std::nullopt;
        return std::get<int64_t>(it->second);
    }
};

SaveResult Engine::save(const Object& obj, const std::string* id, const json::object& fields) {
    SaveDraft d;
    d.id = id;
    if (auto problem = take_fields(obj, fields, d)) return *problem;
    if (auto problem = merge_stored(obj, d)) return *problem;
    if (auto problem = check_required(obj, d)) return *problem;
    if (auto problem = check_shared_activities(obj, d)) return *problem;
    if (auto problem = derive_fields(obj, d)) return *problem;
    if (auto problem = check_unique(obj, d)) return *problem;
    if (auto problem = check_licences(obj, d)) return *problem;
    return store(obj, d);
}

// The fields given, each checked against its describe and converted to its stored form.
Engine::SaveProblem Engine::take_fields(const Object& obj, const json::object& fields, SaveDraft& d) {
    for (const auto& [raw_name, value] : fields) {
        std::string name(raw_name);
        if (name == "attributes" || iequals(name, "Id")) continue;
        if (seeding_ && (iequals(name, "CreatedDate") || iequals(name, "LastModifiedDate"))) {
            std::string normalized;
            if (!value.is_string() || !normalize_datetime(value.get_string(), normalized))
                return failure("INVALID_TYPE_ON_FIELD_IN_RECORD", name + ": value not of required type");
            (iequals(name, "CreatedDate") ? d.created_date : d.modified_date) = normalized;
            continue;
        }
        const Field* f = obj.field(name);
        if (!f) return failure("INVALID_FIELD", "No such column '" + name + "' on sobject of type " + obj.name, {name});
        if (!seeding_ && ((d.creating() && !f->createable) || (!d.creating() && !f->updateable)))
            return failure("INVALID_FIELD_FOR_INSERT_UPDATE",
                           std::string("Unable to ") + (d.creating() ? "create" : "update") + " fields: " + f->name +
                               ". Please check the security settings of this field and verify that it is read/write for your "
                               "profile or permission set.",
                           {f->name});
        if (value.is_null()) {
            if (!d.creating() && f->required)
                return failure("REQUIRED_FIELD_MISSING", "Required fields are missing: [" + f->name + "]", {f->name});
            if (f->type == "junctionidlist") {
                d.who_ids_given = true;
                continue;
            }
            d.values[f->name] = nullptr;
            if (f->is_phone()) d.values["_digits_" + f->name] = nullptr;
            continue;
        }
        if (auto problem = take_value(obj, *f, value, d)) return problem;
    }
    return std::nullopt;
}

// One non-null value of field f of obj.
Engine::SaveProblem Engine::take_value(const Object& obj, const Field& f, const json::value& value, SaveDraft& d) {
    auto type_error = [&] {
        return failure("INVALID_TYPE_ON_FIELD_IN_RECORD", f.name + ": value not of required type: " + json::serialize(value),
                       {f.name});
    };
    auto too_long = [&](const std::string& text) -> SaveProblem {
        if (!f.length || utf8_length(text) <= static_cast<size_t>(f.length)) return std::nullopt;
        return failure("STRING_TOO_LONG",
                       f.name + ": data value too large: " + preview(text) + " (max length=" + std::to_string(f.length) + ")",
                       {f.name});
    };
    const std::string& t = f.type;
    if (t == "junctionidlist") {
        if (!value.is_array()) return type_error();
        d.who_ids_given = true;
        for (const auto& v : value.get_array()) {
            if (!v.is_string()) return type_error();
            d.who_ids.emplace_back(v.get_string());
        }
        return std::nullopt;
    }
    if (t == "boolean") {
        if (value.is_bool()) d.values[f.name] = int64_t{value.get_bool() ? 1 : 0};
        else if (value.is_string() && (value.get_string() == "true" || value.get_string() == "false"))
            d.values[f.name] = int64_t{value.get_string() == "true" ? 1 : 0};
        else return type_error();
        return std::nullopt;
    }
    if (t == "int") {
        if (value.is_int64()) d.values[f.name] = value.get_int64();
        else if (value.is_double() && value.get_double() == static_cast<double>(static_cast<int64_t>(value.get_double())))
            d.values[f.name] = static_cast<int64_t>(value.get_double());
        else return type_error();
        return std::nullopt;
    }
    if (t == "double" || t == "currency" || t == "percent") {
        if (!value.is_number()) return type_error();
        d.values[f.name] = value.to_number<double>();
        return std::nullopt;
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
        if (!target) return failure("MALFORMED_ID", f.name + ": id value of incorrect type: " + text, {f.name});
        bool allowed = std::any_of(f.reference_to.begin(), f.reference_to.end(),
                                   [&](const std::string& r) { return iequals(r, target->name); });
        if (!allowed) return failure("FIELD_INTEGRITY_EXCEPTION", f.name + ": id value of incorrect type: " + text, {f.name});
        std::string extra = target->name == "User" ? " AND \"IsActive\" = 1" : "";
        auto exists_handle = statement("SELECT 1 FROM " + q(target->name) + " WHERE \"Id\" = ?" + extra);
        auto& exists = *exists_handle;
        exists.bind(1, text);
        if (!exists.executeStep()) {
            if (target->name == "User")
                return failure("INACTIVE_OWNER_OR_USER",
                               "operation performed with inactive user [" + text + "] as owner of " + obj.name, {f.name});
            return failure("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", {f.name});
        }
    } else if (t == "picklist" || t == "multipicklist") {
        if (f.restricted) {
            auto& live = picklists_[obj.name + "." + f.name];
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
                                   f.name + ": bad value for restricted picklist field: " + part, {f.name});
        }
        if (auto problem = too_long(text)) return problem;
    } else if (t != "base64") {
        if (auto problem = too_long(text)) return problem;
        if (t == "email" && !plausible_email(text))
            return failure("INVALID_EMAIL_ADDRESS", f.name + ": invalid email address: " + text, {f.name});
    }
    if (f.is_phone()) d.values["_digits_" + f.name] = crmsync::support::phone_digits(text);
    d.values[f.name] = text;
    return std::nullopt;
}

// The record as it will be, for the rules that span fields: an update's stored row under the
// new values; a new record's defaults (OwnerId the running user) under them.
Engine::SaveProblem Engine::merge_stored(const Object& obj, SaveDraft& d) {
    if (!d.creating()) {
        auto current_handle = statement("SELECT * FROM " + q(obj.name) + " WHERE \"Id\" = ?");
        auto& current = *current_handle;
        current.bind(1, *d.id);
        if (!current.executeStep()) return failure("ENTITY_IS_DELETED", "entity is deleted", {"Id"});
        for (int i = 0; i < current.getColumnCount(); ++i) {
            auto c = current.getColumn(i);
            std::string n = current.getColumnName(i);
            if (c.isNull()) d.merged[n] = nullptr;
            else if (c.getType() == SQLite::INTEGER) d.merged[n] = c.getInt64();
            else if (c.getType() == SQLite::FLOAT) d.merged[n] = c.getDouble();
            else d.merged[n] = c.getString();
        }
        d.previous_who = d.text_of("WhoId");
    } else {
        for (const auto& f : obj.fields) {
            if (d.values.count(f.name) || f.type == "junctionidlist") continue;
            if (f.name == "OwnerId" && !running_user_.empty()) d.values[f.name] = running_user_;
            else if (f.defaulted && f.default_value.is_bool()) d.values[f.name] = int64_t{f.default_value.get_bool() ? 1 : 0};
            else if (f.defaulted && f.default_value.is_string()) d.values[f.name] = std::string(f.default_value.get_string());
        }
    }
    for (const auto& [k, v] : d.values) d.merged[k] = v;
    return std::nullopt;
}

Engine::SaveProblem Engine::check_required(const Object& obj, const SaveDraft& d) {
    if (!d.creating()) return std::nullopt;  // an update is checked field by field in take_fields
    std::vector<std::string> missing;
    for (const auto& f : obj.fields)
        if (f.required && !f.defaulted && !d.present(f.name)) missing.push_back(f.name);
    if (missing.empty()) return std::nullopt;
    std::string list;
    for (const auto& m : missing) list += (list.empty() ? "" : ", ") + m;
    return failure("REQUIRED_FIELD_MISSING", "Required fields are missing: [" + list + "]", missing);
}

// Shared Activities: up to 50 contacts, or one lead alone; the first is the primary Who.
Engine::SaveProblem Engine::check_shared_activities(const Object& obj, SaveDraft& d) {
    if (!d.who_ids_given) return std::nullopt;
    const std::string field = obj.name + "WhoIds";
    if (d.who_ids.size() > 50) return failure("FIELD_INTEGRITY_EXCEPTION", field + ": you can relate up to 50 contacts", {field});
    int leads = 0;
    for (const auto& w : d.who_ids) {
        const Object* target = schema_.object_for_id(w);
        if (!target || (target->name != "Contact" && target->name != "Lead"))
            return failure("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id: " + w, {field});
        auto exists_handle = statement("SELECT 1 FROM " + q(target->name) + " WHERE \"Id\" = ?");
        auto& exists = *exists_handle;
        exists.bind(1, w);
        if (!exists.executeStep()) return failure("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id: " + w, {field});
        if (target->name == "Lead") ++leads;
    }
    if (leads > 0 && d.who_ids.size() > 1)
        return failure("FIELD_INTEGRITY_EXCEPTION",
                       field + ": a lead can only be related alone, never with contacts or other leads", {field});
    d.values["WhoId"] = d.who_ids.empty() ? SqlValue(nullptr) : SqlValue(d.who_ids.front());
    d.merged["WhoId"] = d.values["WhoId"];
    return std::nullopt;
}

// Fields Salesforce sets itself: an Event's start, end and duration from each other, an
// Opportunity's IsClosed from its stage, a ContentVersion's size from its data.
Engine::SaveProblem Engine::derive_fields(const Object& obj, SaveDraft& d) {
    if (obj.name == "Event") {
        bool all_day = d.int_of("IsAllDayEvent") == 1;
        if (!d.present("StartDateTime") && d.present("ActivityDateTime"))
            d.values["StartDateTime"] = d.merged["StartDateTime"] = d.merged["ActivityDateTime"];
        if (!all_day) {
            if (!d.present("StartDateTime"))
                return failure("REQUIRED_FIELD_MISSING", "Required fields are missing: [ActivityDateTime]", {"ActivityDateTime"});
            std::string start = d.text_of("StartDateTime");
            int64_t start_ms = 0, end_ms = 0;
            parse_datetime_ms(start, start_ms);
            bool duration_given = d.values.count("DurationInMinutes") && d.present("DurationInMinutes");
            bool end_given = d.values.count("EndDateTime") && d.present("EndDateTime");
            auto stored_minutes = d.int_of("DurationInMinutes");
            if (!duration_given && !end_given && !d.present("EndDateTime") && !stored_minutes)
                return failure("REQUIRED_FIELD_MISSING", "Required fields are missing: [DurationInMinutes]",
                               {"DurationInMinutes"});
            if (end_given ||
                (!duration_given && d.present("EndDateTime") && (d.values.count("StartDateTime") || !stored_minutes))) {
                parse_datetime_ms(d.text_of("EndDateTime"), end_ms);
                if (end_ms < start_ms)
                    return failure("FIELD_INTEGRITY_EXCEPTION", "End Date Time: End time can't be before start time",
                                   {"EndDateTime"});
                d.values["DurationInMinutes"] = (end_ms - start_ms) / 60000;
            } else {
                int64_t minutes = *stored_minutes;
                // As Salesforce: an Event that is not all-day lasts at most 14 days.
                if (minutes < 0 || minutes > 14 * 24 * 60)
                    return failure("FIELD_INTEGRITY_EXCEPTION",
                                   "Duration: must be from 0 to 20160 minutes (14 days), not " + std::to_string(minutes),
                                   {"DurationInMinutes"});
                d.values["EndDateTime"] = format_datetime(start_ms + minutes * 60000);
            }
            d.values["ActivityDateTime"] = start;
            d.values["ActivityDate"] = start.substr(0, 10);
        }
    }
    if (obj.name == "Opportunity" && d.values.count("StageName"))
        d.values["IsClosed"] = int64_t{d.text_of("StageName").rfind("Closed", 0) == 0 ? 1 : 0};
    if (obj.name == "ContentVersion" && d.values.count("VersionData")) {
        // The decoded size: four base64 characters carry three bytes, less the padding.
        std::string data = d.text_of("VersionData");
        size_t padding = data.size() >= 2 ? static_cast<size_t>(std::count(data.end() - 2, data.end(), '=')) : 0;
        d.values["ContentSize"] = static_cast<int64_t>(data.size() / 4 * 3 - padding);
    }
    return std::nullopt;
}

// Unique fields (e.g. Username) stay unique.
Engine::SaveProblem Engine::check_unique(const Object& obj, SaveDraft& d) {
    for (const auto& f : obj.fields) {
        auto it = d.values.find(f.name);
        if (!f.unique || it == d.values.end() || !std::holds_alternative<std::string>(it->second)) continue;
        auto dup_handle = statement("SELECT \"Id\" FROM " + q(obj.name) + " WHERE " + q(f.name) + " = ? AND \"Id\" != ?");
        auto& dup = *dup_handle;
        dup.bind(1, std::get<std::string>(it->second));
        dup.bind(2, d.creating() ? std::string() : *d.id);
        if (dup.executeStep())
            return failure(
                obj.name == "User" && f.name == "Username" ? "DUPLICATE_USERNAME" : "DUPLICATE_VALUE",
                "duplicate value found: " + f.name + " duplicates value on record with id: " + dup.getColumn(0).getString(),
                {f.name});
    }
    return std::nullopt;
}

// User licences: an active user takes one of its profile's licence.
Engine::SaveProblem Engine::check_licences(const Object& obj, SaveDraft& d) {
    if (obj.name != "User" || !(d.creating() || d.values.count("IsActive") || d.values.count("ProfileId"))) return std::nullopt;
    bool active = d.int_of("IsActive").value_or(1) == 1;
    if (!active) return std::nullopt;
    SQLite::Statement lic(db_,
                          "SELECT l.\"Id\", l.\"Name\", l.\"TotalLicenses\" FROM \"Profile\" p JOIN \"UserLicense\" l "
                          "ON l.\"Id\" = p.\"UserLicenseId\" WHERE p.\"Id\" = ?");
    lic.bind(1, d.text_of("ProfileId"));
    if (!lic.executeStep()) return std::nullopt;
    std::string license_id = lic.getColumn(0).getString();
    std::string license_name = lic.getColumn(1).getString();
    int64_t total = lic.getColumn(2).getInt64();
    SQLite::Statement used(db_,
                           "SELECT COUNT(*) FROM \"User\" u JOIN \"Profile\" p ON p.\"Id\" = u.\"ProfileId\" "
                           "WHERE p.\"UserLicenseId\" = ? AND u.\"IsActive\" = 1 AND u.\"Id\" != ?");
    used.bind(1, license_id);
    used.bind(2, d.creating() ? std::string() : *d.id);
    used.executeStep();
    if (used.getColumn(0).getInt64() < total) return std::nullopt;
    return failure("LICENSE_LIMIT_EXCEEDED",
                   "License Limit Exceeded: all " + std::to_string(total) + " " + license_name + " licences are in use",
                   {"ProfileId"});
}

// The row written (inserted with a new Id, or updated) with its Who relations, inside a
// savepoint, so a failure half-way leaves the record as it was and the batch goes on.
SaveResult Engine::store(const Object& obj, SaveDraft& d) {
    std::string now = now_text();
    SaveResult result;
    result.success = true;
    result.created = d.creating();
    db_.exec("SAVEPOINT save_record");
    struct Rollback {
        SQLite::Database& db;
        bool armed = true;
        ~Rollback() {
            if (armed) try {
                    db.exec("ROLLBACK TO save_record; RELEASE save_record");
                } catch (...) {}
        }
    } rollback{db_};
    if (d.creating()) {
        result.id = next_id(obj);
        std::string columns = "\"Id\", \"CreatedDate\", \"LastModifiedDate\", \"SystemModstamp\"", marks = "?, ?, ?, ?";
        for (const auto& [k, v] : d.values) {
            columns += ", " + q(k);
            marks += ", ?";
        }
        auto ins_handle = statement("INSERT INTO " + q(obj.name) + " (" + columns + ") VALUES (" + marks + ")");
        auto& ins = *ins_handle;
        ins.bind(1, result.id);
        ins.bind(2, d.created_date.empty() ? now : d.created_date);
        ins.bind(3, d.modified_date.empty() ? (d.created_date.empty() ? now : d.created_date) : d.modified_date);
        ins.bind(4, now);
        int i = 5;
        for (const auto& [k, v] : d.values) bind(ins, i++, v);
        ins.exec();
    } else {
        result.id = *d.id;
        std::string sets = "\"LastModifiedDate\" = ?, \"SystemModstamp\" = ?";
        for (const auto& [k, v] : d.values) sets += ", " + q(k) + " = ?";
        auto upd_handle = statement("UPDATE " + q(obj.name) + " SET " + sets + " WHERE \"Id\" = ?");
        auto& upd = *upd_handle;
        upd.bind(1, d.modified_date.empty() ? now : d.modified_date);
        upd.bind(2, now);
        int i = 3;
        for (const auto& [k, v] : d.values) bind(upd, i++, v);
        upd.bind(i, *d.id);
        upd.exec();
    }
    store_who_relations(obj, d, result.id);
    db_.exec("RELEASE save_record");
    rollback.armed = false;
    return result;
}

void Engine::store_who_relations(const Object& obj, SaveDraft& d, const std::string& id) {
    if (d.who_ids_given) {
        auto del_handle = statement("DELETE FROM _who_relation WHERE ActivityId = ?");
        auto& del = *del_handle;
        del.bind(1, id);
        del.exec();
        auto ins_handle = statement("INSERT INTO _who_relation(ActivityId, RelationId, Seq) VALUES (?, ?, ?)");
        auto& ins = *ins_handle;
        int seq = 0;
        for (const auto& w : d.who_ids) {
            ins.bind(1, id);
            ins.bind(2, w);
            ins.bind(3, ++seq);
            ins.exec();
            ins.reset();
        }
    } else if (d.values.count("WhoId") && (obj.name == "Task" || obj.name == "Event")) {
        // WhoId alone, as in Salesforce: the primary relation is replaced, the others stay.
        std::string who = std::holds_alternative<std::string>(d.values["WhoId"]) ? std::get<std::string>(d.values["WhoId"]) : "";
        auto del_handle = statement("DELETE FROM _who_relation WHERE ActivityId = ? AND RelationId IN (?, ?)");
        auto& del = *del_handle;
        del.bind(1, id);
        del.bind(2, d.previous_who);
        del.bind(3, who);
        del.exec();
        if (!who.empty()) {
            auto ins_handle = statement("INSERT INTO _who_relation(ActivityId, RelationId, Seq) VALUES (?, ?, 0)");
            auto& ins = *ins_handle;
            ins.bind(1, id);
            ins.bind(2, who);
            ins.exec();
        }
    }
}

}  // namespace mockcrm
