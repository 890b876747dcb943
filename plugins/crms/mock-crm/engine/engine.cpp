#include "engine.h"
#include "engine_internal.h"

#include <crmsync/support/phone.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>

namespace mockcrm {
using namespace detail;

Engine::Engine(EngineOptions options)
    : options_(std::move(options)),
      schema_(Schema::build(options_.schema)),
      db_(options_.database, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE | SQLite::OPEN_FULLMUTEX) {
    if (!options_.now_ms)
        options_.now_ms = [] {
            using namespace std::chrono;
            return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
        };
    db_.setBusyTimeout(30'000);
    // WAL is a property of the file: set it once. The switch is a step SQLite may answer
    // "locked" without its busy handler while another process has the file open.
    if (db_.execAndGet("PRAGMA journal_mode").getString() != "wal") db_.exec("PRAGMA journal_mode=WAL");
    db_.exec("PRAGMA synchronous=NORMAL");
    // Each record is saved under a savepoint; its sub-journal would otherwise spill to a temp
    // file past 64 KiB and cost a page write for every page a record touches.
    db_.exec("PRAGMA temp_store=MEMORY");
    transaction([&] { ensure_tables(); });
    SQLite::Statement users(db_, "SELECT COUNT(*) FROM \"User\"");
    users.executeStep();
    if (users.getColumn(0).getInt64() == 0) transaction([&] { seed_default_org(); });
    running_user_ = find_user_by_username("admin@crmsync.mock");
}

Engine::CachedStatement Engine::statement(const std::string& sql) {
    auto& slot = statements_[sql];
    if (!slot) slot = std::make_unique<SQLite::Statement>(db_, sql);
    return CachedStatement(*slot);
}

void Engine::transaction(const std::function<void()>& fn) {
    SQLite::Transaction tx(db_, SQLite::TransactionBehavior::IMMEDIATE);
    fn();
    tx.commit();
}

void Engine::ensure_tables() {
    db_.exec(
        "CREATE TABLE IF NOT EXISTS _sequence (prefix TEXT PRIMARY KEY, next INTEGER NOT NULL);"
        "CREATE TABLE IF NOT EXISTS _who_relation (ActivityId TEXT NOT NULL, RelationId TEXT NOT NULL, Seq INTEGER NOT NULL);"
        "CREATE INDEX IF NOT EXISTS _who_relation_activity ON _who_relation(ActivityId, Seq);"
        "CREATE INDEX IF NOT EXISTS _who_relation_relation ON _who_relation(RelationId);"
        "CREATE TABLE IF NOT EXISTS _picklist (object TEXT NOT NULL, field TEXT NOT NULL, value TEXT NOT NULL COLLATE NOCASE,"
        " seq INTEGER NOT NULL, PRIMARY KEY (object, field, value));"
        "CREATE TABLE IF NOT EXISTS _api_usage (day TEXT NOT NULL, kind TEXT NOT NULL, count INTEGER NOT NULL,"
        " PRIMARY KEY (day, kind));"
        "CREATE TABLE IF NOT EXISTS _seed_ref (ref TEXT PRIMARY KEY, id TEXT NOT NULL);"
        "CREATE TABLE IF NOT EXISTS _deleted (object TEXT NOT NULL, Id TEXT NOT NULL, SystemModstamp TEXT NOT NULL,"
        " MasterRecordId TEXT, PRIMARY KEY (object, Id));");
    for (const auto& [name, obj] : schema_.objects()) {
        db_.exec("CREATE TABLE IF NOT EXISTS " + q(name) +
                 " (_seq INTEGER PRIMARY KEY AUTOINCREMENT, \"Id\" TEXT NOT NULL UNIQUE, \"CreatedDate\" TEXT NOT NULL,"
                 " \"LastModifiedDate\" TEXT NOT NULL, \"SystemModstamp\" TEXT NOT NULL)");
        std::set<std::string, CaseInsensitiveLess> columns;
        SQLite::Statement info(db_, "PRAGMA table_info(" + q(name) + ")");
        while (info.executeStep()) columns.insert(info.getColumn(1).getString());
        for (const auto& f : obj.fields) {
            if (f.type == "junctionidlist") continue;
            if (!columns.count(f.name)) {
                std::string type = f.type == "boolean" || f.type == "int"                              ? "INTEGER"
                                   : f.type == "double" || f.type == "currency" || f.type == "percent" ? "REAL"
                                                                                                       : "TEXT COLLATE NOCASE";
                db_.exec("ALTER TABLE " + q(name) + " ADD COLUMN " + q(f.name) + " " + type);
                if (f.is_phone()) db_.exec("ALTER TABLE " + q(name) + " ADD COLUMN " + q("_digits_" + f.name) + " TEXT");
            }
            if (f.type == "email" || f.external_id || f.unique || f.type == "reference")
                db_.exec("CREATE INDEX IF NOT EXISTS " + q("ix_" + name + "_" + f.name) + " ON " + q(name) + "(" + q(f.name) +
                         ")");
            if (f.is_phone())
                db_.exec("CREATE INDEX IF NOT EXISTS " + q("ix_" + name + "_digits_" + f.name) + " ON " + q(name) + "(" +
                         q("_digits_" + f.name) + ")");
            if (f.type == "picklist" || f.type == "multipicklist") {
                SQLite::Statement ins(db_, "INSERT OR IGNORE INTO _picklist(object, field, value, seq) VALUES (?, ?, ?, ?)");
                int seq = 0;
                for (const auto& v : f.picklist) {
                    ins.bind(1, name);
                    ins.bind(2, f.name);
                    ins.bind(3, v);
                    ins.bind(4, ++seq);
                    ins.exec();
                    ins.reset();
                }
            }
        }
    }
    SQLite::Statement all(db_, "SELECT object, field, value FROM _picklist ORDER BY object, field, seq");
    while (all.executeStep())
        picklists_[all.getColumn(0).getString() + "." + all.getColumn(1).getString()].insert(all.getColumn(2).getString());
}

void Engine::seed_default_org() {
    json::object org;
    json::array licenses;
    for (const auto& [name, total] : options_.licenses)
        licenses.push_back(json::object{{"_ref", "license:" + name}, {"Name", name}, {"TotalLicenses", total}});
    org["UserLicense"] = licenses;
    org["Profile"] = json::array{
        json::object{{"_ref", "profile:admin"}, {"Name", "System Administrator"}, {"UserLicenseId", "@license:Salesforce"}},
        json::object{{"_ref", "profile:standard"}, {"Name", "Standard User"}, {"UserLicenseId", "@license:Salesforce"}},
        json::object{{"_ref", "profile:integration"},
                     {"Name", "Minimum Access - API Only Integrations"},
                     {"UserLicenseId", "@license:Salesforce Integration"}}};
    org["User"] = json::array{json::object{{"_ref", "user:admin"},
                                           {"Username", "admin@crmsync.mock"},
                                           {"LastName", "Admin"},
                                           {"Email", "admin@crmsync.mock"},
                                           {"Alias", "admin"},
                                           {"TimeZoneSidKey", "GMT"},
                                           {"LocaleSidKey", "en_US"},
                                           {"EmailEncodingKey", "UTF-8"},
                                           {"LanguageLocaleKey", "en_US"},
                                           {"ProfileId", "@profile:admin"}}};
    seed(org);
}

std::string Engine::now_text() { return format_datetime(options_.now_ms()); }

std::string Engine::next_id(const Object& obj) {
    {
        auto seed_handle = statement("INSERT OR IGNORE INTO _sequence(prefix, next) VALUES (?, 1)");
        auto& seed_row = *seed_handle;
        seed_row.bind(1, obj.prefix);
        seed_row.exec();
    }
    auto read_handle = statement("UPDATE _sequence SET next = next + 1 WHERE prefix = ? RETURNING next - 1");
    auto& read = *read_handle;
    read.bind(1, obj.prefix);
    read.executeStep();
    int64_t n = read.getColumn(0).getInt64();
    // 15-character id + 3-character suffix, as Salesforce's 18-character ids look.
    static const char alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    std::string body(12, '0');
    for (int i = 11; i >= 0 && n > 0; --i, n /= 62) body[static_cast<size_t>(i)] = alphabet[n % 62];
    return obj.prefix + body + "AAA";
}

std::string Engine::find_user_by_username(const std::string& username) {
    SQLite::Statement st(db_, "SELECT \"Id\" FROM \"User\" WHERE \"Username\" = ?");
    st.bind(1, username);
    return st.executeStep() ? st.getColumn(0).getString() : "";
}

json::object Engine::describe(const std::string& object) {
    const Object* obj = schema_.object(object);
    if (!obj)
        throw CrmError("NOT_FOUND", "The requested resource does not exist: sObject type '" + object + "' is not supported.");
    json::array fields;
    auto base = [](const std::string& name, const std::string& type) {
        return json::object{{"name", name},
                            {"type", type},
                            {"nillable", false},
                            {"createable", false},
                            {"updateable", false},
                            {"defaultedOnCreate", true},
                            {"externalId", false},
                            {"custom", false},
                            {"restrictedPicklist", false},
                            {"picklistValues", json::array{}},
                            {"referenceTo", json::array{}},
                            {"relationshipName", nullptr},
                            {"length", 0}};
    };
    fields.push_back(base("Id", "id"));
    fields.back().as_object()["length"] = 18;
    for (const char* audit : {"CreatedDate", "LastModifiedDate", "SystemModstamp"}) fields.push_back(base(audit, "datetime"));
    for (const auto& f : obj->fields) {
        json::object d = base(f.name, f.type);
        d["length"] = f.length;
        d["nillable"] = !f.required && f.type != "boolean";
        d["createable"] = f.createable;
        d["updateable"] = f.updateable;
        d["defaultedOnCreate"] = f.defaulted;
        d["externalId"] = f.external_id;
        d["unique"] = f.unique;
        d["custom"] = f.custom;
        d["restrictedPicklist"] = f.restricted;
        if (f.type == "picklist" || f.type == "multipicklist") {
            json::array values;
            for (const auto& v : picklist_values(obj->name, f.name))
                values.push_back(json::object{{"value", v}, {"label", v}, {"active", true}});
            d["picklistValues"] = values;
        }
        json::array to;
        for (const auto& t : f.reference_to) to.emplace_back(t);
        d["referenceTo"] = to;
        if (!f.relationship.empty()) d["relationshipName"] = f.relationship;
        fields.push_back(std::move(d));
    }
    // Salesforce names a child relationship by the plural of the child (Account.Opportunities,
    // Account.Contacts) or, for custom objects, __r.
    json::array children;
    for (const auto& [name, other] : schema_.objects())
        for (const auto& f : other.fields)
            if (std::find(f.reference_to.begin(), f.reference_to.end(), obj->name) != f.reference_to.end()) {
                std::string plural = name.size() > 3 && name.compare(name.size() - 3, 3, "__c") == 0
                                         ? name.substr(0, name.size() - 3) + "__r"
                                     : name.back() == 'y' ? name.substr(0, name.size() - 1) + "ies"
                                     : name.back() == 's' ? name + "es"
                                                          : name + "s";
                children.push_back(json::object{{"childSObject", name}, {"field", f.name}, {"relationshipName", plural}});
            }
    return json::object{
        {"name", obj->name},  {"custom", obj->custom}, {"keyPrefix", obj->prefix}, {"createable", true},
        {"updateable", true}, {"queryable", true},     {"fields", fields},         {"childRelationships", children}};
}

void Engine::deactivate_picklist_value(const std::string& object, const std::string& field, const std::string& value) {
    SQLite::Statement del(db_, "DELETE FROM _picklist WHERE object = ? AND field = ? AND value = ?");
    del.bind(1, object);
    del.bind(2, field);
    del.bind(3, value);
    del.exec();
}

void Engine::remove(const std::string& object, const std::string& id, const std::string& merged_into) {
    const Object* obj = schema_.object(object);
    if (!obj) throw CrmError("NOT_FOUND", "sObject type '" + object + "' is not supported.");
    transaction([&] {
        SQLite::Statement del(db_, "DELETE FROM " + q(obj->name) + " WHERE \"Id\" = ?");
        del.bind(1, id);
        if (del.exec() == 0) throw CrmError("ENTITY_IS_DELETED", "entity is deleted or does not exist: " + id);
        SQLite::Statement tomb(db_,
                               "INSERT OR REPLACE INTO _deleted(object, Id, SystemModstamp, MasterRecordId) VALUES (?, ?, ?, ?)");
        tomb.bind(1, obj->name);
        tomb.bind(2, id);
        tomb.bind(3, now_text());
        if (merged_into.empty()) tomb.bind(4);
        else tomb.bind(4, merged_into);
        tomb.exec();
    });
}

std::vector<json::object> Engine::changes(const std::string& object, const std::vector<std::string>& fields,
                                          const std::string& after_modstamp, const std::string& after_id, int64_t limit) {
    const Object* obj = schema_.object(object);
    if (!obj) throw CrmError("NOT_FOUND", "sObject type '" + object + "' is not supported.");
    std::string select = "Id, SystemModstamp";
    for (const auto& f : fields)
        if (!iequals(f, "Id") && !iequals(f, "SystemModstamp")) select += ", " + f;
    std::string after;
    if (!after_modstamp.empty()) {
        std::string quoted_id = "'";
        for (char c : after_id) quoted_id += c == '\'' ? std::string("\\'") : std::string(1, c);
        after = " WHERE SystemModstamp > " + after_modstamp + " OR (SystemModstamp = " + after_modstamp + " AND Id > " +
                quoted_id + "')";
    }
    auto live =
        query("SELECT " + select + " FROM " + obj->name + after + " ORDER BY SystemModstamp, Id LIMIT " + std::to_string(limit))
            .rows;
    std::string normalized;
    if (!after_modstamp.empty() && !normalize_datetime(after_modstamp, normalized))
        throw CrmError("MALFORMED_QUERY", "invalid SystemModstamp " + after_modstamp);
    SQLite::Statement gone(db_,
                           "SELECT Id, SystemModstamp, MasterRecordId FROM _deleted WHERE object = ?1 AND (?2 = '' OR "
                           "SystemModstamp > ?2 OR (SystemModstamp = ?2 AND Id > ?3)) ORDER BY SystemModstamp, Id LIMIT ?4");
    gone.bind(1, obj->name);
    gone.bind(2, normalized);
    gone.bind(3, after_id);
    gone.bind(4, limit);
    std::vector<json::object> deleted;
    while (gone.executeStep())
        deleted.push_back(json::object{
            {"attributes", json::object{{"type", obj->name}}},
            {"Id", gone.getColumn(0).getString()},
            {"SystemModstamp", gone.getColumn(1).getString()},
            {"IsDeleted", true},
            {"MasterRecordId", gone.getColumn(2).isNull() ? json::value(nullptr) : json::value(gone.getColumn(2).getString())}});
    // Both lists in (SystemModstamp, Id) order: merged, the first `limit`.
    std::vector<json::object> out;
    auto key = [](const json::object& r) {
        return std::pair(std::string(r.at("SystemModstamp").as_string()), std::string(r.at("Id").as_string()));
    };
    size_t a = 0, b = 0;
    while (static_cast<int64_t>(out.size()) < limit && (a < live.size() || b < deleted.size())) {
        if (b == deleted.size() || (a < live.size() && key(live[a]) < key(deleted[b]))) out.push_back(std::move(live[a++]));
        else out.push_back(std::move(deleted[b++]));
    }
    return out;
}

json::array Engine::deleted(const std::string& object, const std::string& start, const std::string& end) {
    std::string from, to;
    if (!normalize_datetime(start, from) || !normalize_datetime(end, to))
        throw CrmError("INVALID_REPLICATION_DATE", "start and end must be date-times, e.g. 2026-11-23T00:00:00Z");
    // As Salesforce reports them: to the second.
    SQLite::Statement q(
        db_,
        "SELECT Id, substr(SystemModstamp, 1, 19) || '.000+0000' AS at FROM _deleted WHERE object = ? "
        "AND substr(SystemModstamp, 1, 19) >= substr(?, 1, 19) AND substr(SystemModstamp, 1, 19) <= substr(?, 1, 19) "
        "ORDER BY at, Id");
    q.bind(1, object);
    q.bind(2, from);
    q.bind(3, to);
    json::array out;
    while (q.executeStep())
        out.push_back(json::object{{"id", q.getColumn(0).getString()}, {"deletedDate", q.getColumn(1).getString()}});
    return out;
}

std::vector<std::string> Engine::picklist_values(const std::string& object, const std::string& field) {
    SQLite::Statement st(db_, "SELECT value FROM _picklist WHERE object = ? AND field = ? ORDER BY seq");
    const Object* obj = schema_.object(object);
    const Field* f = obj ? obj->field(field) : nullptr;
    if (!f) return {};
    st.bind(1, obj->name);
    st.bind(2, f->name);
    std::vector<std::string> out;
    while (st.executeStep()) out.push_back(st.getColumn(0).getString());
    return out;
}

void Engine::add_picklist_value(const std::string& object, const std::string& field, const std::string& value) {
    const Object* obj = schema_.object(object);
    const Field* f = obj ? obj->field(field) : nullptr;
    if (!f || (f->type != "picklist" && f->type != "multipicklist"))
        throw CrmError("INVALID_FIELD", object + "." + field + " is not a picklist");
    if (value.empty() || utf8_length(value) > 255)
        throw CrmError("FIELD_INTEGRITY_EXCEPTION", "picklist values are 1 to 255 characters");
    SQLite::Statement ins(db_,
                          "INSERT OR IGNORE INTO _picklist(object, field, value, seq) "
                          "SELECT ?, ?, ?, COALESCE(MAX(seq), 0) + 1 FROM _picklist WHERE object = ? AND field = ?");
    ins.bind(1, obj->name);
    ins.bind(2, f->name);
    ins.bind(3, value);
    ins.bind(4, obj->name);
    ins.bind(5, f->name);
    ins.exec();
    picklists_[obj->name + "." + f->name].insert(value);
}

void Engine::spend_api_call(const std::string& kind) {
    const std::string text = now_text().substr(0, 10);  // the UTC day
    transaction([&] {
        SQLite::Statement used(db_, "SELECT COALESCE(SUM(count), 0) FROM _api_usage WHERE day = ?");
        used.bind(1, text);
        used.executeStep();
        if (used.getColumn(0).getInt64() >= options_.daily_api_limit)
            throw CrmError("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.");
        SQLite::Statement add(db_,
                              "INSERT INTO _api_usage(day, kind, count) VALUES (?, ?, 1) "
                              "ON CONFLICT(day, kind) DO UPDATE SET count = count + 1");
        add.bind(1, text);
        add.bind(2, kind);
        add.exec();
    });
}

int64_t Engine::api_used_today() {
    const std::string text = now_text().substr(0, 10);  // the UTC day
    SQLite::Statement used(db_, "SELECT COALESCE(SUM(count), 0) FROM _api_usage WHERE day = ?");
    used.bind(1, text);
    used.executeStep();
    return used.getColumn(0).getInt64();
}

void Engine::use_up_api_budget() {
    const int64_t left = options_.daily_api_limit - api_used_today();
    if (left <= 0) return;
    SQLite::Statement add(db_,
                          "INSERT INTO _api_usage(day, kind, count) VALUES (?, 'others', ?) "
                          "ON CONFLICT(day, kind) DO UPDATE SET count = count + excluded.count");
    add.bind(1, now_text().substr(0, 10));
    add.bind(2, left);
    add.exec();
}

int64_t Engine::api_calls(const std::string& kind) {
    SQLite::Statement st(db_, "SELECT COALESCE(SUM(count), 0) FROM _api_usage WHERE kind = ?");
    st.bind(1, kind);
    st.executeStep();
    return st.getColumn(0).getInt64();
}

SaveResult Engine::create(const std::string& object, const json::object& fields) {
    const Object* obj = schema_.object(object);
    if (!obj) return failure("NOT_FOUND", "sObject type '" + object + "' is not supported.");
    return save(*obj, nullptr, fields);
}

SaveResult Engine::update(const std::string& object, const std::string& id, const json::object& fields) {
    const Object* obj = schema_.object(object);
    if (!obj) return failure("NOT_FOUND", "sObject type '" + object + "' is not supported.");
    if (schema_.object_for_id(id) != obj) return failure("MALFORMED_ID", "malformed id " + id, {"Id"});
    return save(*obj, &id, fields);
}

SaveResult Engine::upsert(const std::string& object, const std::string& external_field, const std::string& value,
                          const json::object& fields) {
    const Object* obj = schema_.object(object);
    if (!obj) return failure("NOT_FOUND", "sObject type '" + object + "' is not supported.");
    const Field* f = obj->field(external_field);
    if (!f && iequals(external_field, "Id")) {
        if (value.empty()) return save(*obj, nullptr, fields);
        return update(object, value, fields);
    }
    if (!f) return failure("NOT_FOUND", "Provided external ID field does not exist or is not accessible: " + external_field);
    if (!f->external_id)
        return failure("INVALID_FIELD", "Field " + f->name + " is not an external ID or indexed field for " + obj->name);
    if (value.empty()) return failure("REQUIRED_FIELD_MISSING", "External ID value is empty", {f->name});
    auto find_handle = statement("SELECT \"Id\" FROM " + q(obj->name) + " WHERE " + q(f->name) + " = ? LIMIT 2");
    auto& find = *find_handle;
    find.bind(1, value);
    std::vector<std::string> ids;
    while (find.executeStep()) ids.push_back(find.getColumn(0).getString());
    if (ids.size() > 1)
        return failure("DUPLICATE_EXTERNAL_ID",
                       f->name + ": more than one record found for external id field: [" + ids[0] + ", " + ids[1] + "]",
                       {f->name});
    json::object with_key = fields;
    with_key.erase(f->name);
    if (ids.empty()) {
        with_key[f->name] = value;
        return save(*obj, nullptr, with_key);
    }
    return save(*obj, &ids[0], with_key);
}

json::value Engine::column_value(const SQLite::Column& c, const Field* field, bool) {
    if (c.isNull()) return nullptr;
    if (field && field->type == "boolean") return c.getInt64() != 0;
    if (field && field->type == "junctionidlist") {
        auto parsed = json::parse(c.getString());
        return parsed;
    }
    if (c.getType() == SQLite::INTEGER) return c.getInt64();
    if (c.getType() == SQLite::FLOAT) return c.getDouble();
    return json::string(c.getString());
}

QueryResult Engine::query(const std::string& soql) {
    TranslatedQuery t = translate_soql(soql, schema_);
    SQLite::Statement st(db_, t.sql);
    int i = 1;
    for (const auto& b : t.binds) bind(st, i++, b);
    QueryResult out;
    out.count = t.count;
    if (t.count) {
        st.executeStep();
        out.total = st.getColumn(0).getInt64();
        return out;
    }
    while (st.executeStep()) {
        json::object row{{"attributes", json::object{{"type", t.object->name}}}};
        for (size_t c = 0; c < t.fields.size(); ++c) {
            const auto& sel = t.fields[c];
            json::value v = column_value(st.getColumn(static_cast<int>(c)), sel.field, false);
            if (sel.path.size() == 1) {
                row[sel.path[0]] = std::move(v);
            } else {
                auto& parent = row[sel.path[0]];
                if (!parent.is_object()) {
                    const Field* ref = t.object->relationship(sel.path[0]);
                    parent = json::object{{"attributes", json::object{{"type", ref ? ref->reference_to[0] : ""}}}};
                }
                parent.as_object()[sel.path[1]] = std::move(v);
            }
        }
        // A relationship whose parent is absent reads as null, as Salesforce returns it.
        for (auto& [k, v] : row) {
            if (k == "attributes" || !v.is_object()) continue;
            bool all_null = true;
            for (auto& [pk, pv] : v.as_object())
                if (pk != "attributes" && !pv.is_null()) all_null = false;
            if (all_null) v = nullptr;
        }
        out.rows.push_back(std::move(row));
    }
    out.total = static_cast<int64_t>(out.rows.size());
    return out;
}

std::vector<json::object> Engine::find(const std::string& object, const std::vector<std::string>& emails,
                                       const std::vector<std::string>& phones, const std::string& country_code) {
    const Object* obj = schema_.object(object);
    if (!obj) throw CrmError("INVALID_TYPE", "sObject type '" + object + "' is not supported.");
    std::vector<std::string> columns{"Id", "CreatedDate"}, conditions;
    std::vector<SqlValue> binds;
    std::vector<const Field*> email_fields, phone_fields;
    for (const auto& f : obj->fields) {
        if (f.type == "email") email_fields.push_back(&f);
        if (f.is_phone()) phone_fields.push_back(&f);
        if (f.type == "email" || f.is_phone() || (obj->name == "Lead" && f.name == "IsConverted")) columns.push_back(f.name);
    }
    std::string marks;
    auto list = [&](const std::vector<std::string>& values) {
        std::string m;
        for (const auto& v : values) {
            m += (m.empty() ? "?" : ", ?");
            binds.push_back(v);
        }
        return "(" + m + ")";
    };
    if (!emails.empty())
        for (const auto* f : email_fields) conditions.push_back(q(f->name) + " IN " + list(emails));
    std::vector<std::string> digit_forms;
    for (const auto& phone : phones)
        for (auto& form : crmsync::support::phone_forms(phone, country_code)) digit_forms.push_back(std::move(form));
    if (!digit_forms.empty())
        for (const auto* f : phone_fields) conditions.push_back(q("_digits_" + f->name) + " IN " + list(digit_forms));
    std::vector<json::object> out;
    if (conditions.empty()) return out;
    std::string select;
    for (const auto& c : columns) select += (select.empty() ? "" : ", ") + q(c);
    std::string where;
    for (const auto& c : conditions) where += (where.empty() ? "" : " OR ") + c;
    SQLite::Statement st(db_,
                         "SELECT " + select + " FROM " + q(obj->name) + " WHERE " + where + " ORDER BY \"CreatedDate\", _seq");
    int i = 1;
    for (const auto& b : binds) bind(st, i++, b);
    while (st.executeStep()) {
        json::object row{{"attributes", json::object{{"type", obj->name}}}};
        for (size_t c = 0; c < columns.size(); ++c)
            row[columns[c]] = column_value(st.getColumn(static_cast<int>(c)), obj->field(columns[c]), false);
        out.push_back(std::move(row));
    }
    return out;
}

void Engine::seed(const json::object& data) {
    // "@name" finds the record an earlier seed (this one, or the org's built-in records:
    // license:<name>, profile:admin, profile:standard, profile:integration, user:admin) gave
    // that _ref.
    SQLite::Statement find_ref(db_, "SELECT id FROM _seed_ref WHERE ref = ?");
    SQLite::Statement keep_ref(db_, "INSERT OR REPLACE INTO _seed_ref(ref, id) VALUES (?, ?)");
    auto lookup = [&](const std::string& name) -> std::optional<std::string> {
        find_ref.reset();
        find_ref.bind(1, name);
        if (!find_ref.executeStep()) return std::nullopt;
        return find_ref.getColumn(0).getString();
    };
    seeding_ = true;
    try {
        for (const auto& [object, records] : data) {
            if (!records.is_array())
                throw CrmError("INVALID_SEED", "seed." + std::string(object) + " must be an array of records");
            int index = 0;
            for (const auto& record : records.get_array()) {
                std::string where = "seed." + std::string(object) + "[" + std::to_string(index++) + "]";
                if (!record.is_object()) throw CrmError("INVALID_SEED", where + " must be an object");
                json::object fields = record.get_object();
                std::string ref;
                if (auto* r = fields.if_contains("_ref")) {
                    ref = std::string(r->as_string());
                    fields.erase("_ref");
                }
                for (auto& [k, v] : fields) {
                    auto resolve = [&](json::value& item) {
                        if (!item.is_string() || !item.get_string().starts_with("@")) return;
                        std::string name(item.get_string().subview(1));
                        auto id = lookup(name);
                        if (!id)
                            throw CrmError("INVALID_SEED",
                                           where + "." + std::string(k) + ": no earlier record has _ref \"" + name +
                                               "\" (the built-in ones: license:Salesforce, " +
                                               "license:Salesforce Integration, profile:admin, profile:standard, " +
                                               "profile:integration, user:admin)");
                        item = *id;
                    };
                    if (v.is_array())
                        for (auto& item : v.as_array()) resolve(item);
                    else resolve(v);
                }
                auto result = create(std::string(object), fields);
                if (!result.success)
                    throw CrmError("INVALID_SEED", where + ": " + result.errors[0].code + ": " + result.errors[0].message);
                if (!ref.empty()) {
                    keep_ref.reset();
                    keep_ref.bind(1, ref);
                    keep_ref.bind(2, result.id);
                    keep_ref.exec();
                }
            }
        }
    } catch (...) {
        seeding_ = false;
        throw;
    }
    seeding_ = false;
}

}  // namespace mockcrm
