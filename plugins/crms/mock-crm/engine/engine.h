#pragma once
// mock-crm's engine: an embedded CRM over SQLite with Salesforce's semantics — one table
// per object (columns from the schema; indexes on Email, phone digits and external ids),
// field validation with Salesforce's error codes, external-id upsert, Shared Activities
// rules, user licences, a daily API counter and SOQL through soql.h. Used by the mock-crm
// plugin and, behind HTTP, by the Salesforce emulator. Not thread-safe: one Engine per
// thread, or a lock around it; several Engines (processes) may share a file.
#include <SQLiteCpp/SQLiteCpp.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "schema.h"
#include "soql.h"

namespace mockcrm {

struct EngineOptions {
    std::string database;  // SQLite file; created with a default org when new
    json::object schema;   // custom objects and fields (see Schema::build)
    int64_t daily_api_limit = 100'000;
    std::map<std::string, int64_t> licenses{{"Salesforce", 10}, {"Salesforce Integration", 5}};
    std::function<int64_t()> now_ms;  // UTC; defaults to the system clock
};

struct SaveError {
    std::string code;
    std::string message;
    std::vector<std::string> fields;
};

struct SaveResult {
    bool success = false;
    std::string id;
    bool created = false;
    std::vector<SaveError> errors;
};

struct QueryResult {
    bool count = false;
    int64_t total = 0;
    std::vector<json::object> rows;  // {"attributes": {"type": ...}, "Id": ..., "Account": {"Name": ...}}
};

class Engine {
public:
    explicit Engine(EngineOptions options);  // throws CrmError / SQLite::Exception

    const Schema& schema() const { return schema_; }
    // Salesforce describe shape (name, fields[...]); throws CrmError NOT_FOUND.
    json::object describe(const std::string& object);

    SaveResult create(const std::string& object, const json::object& fields);
    SaveResult update(const std::string& object, const std::string& id, const json::object& fields);
    // Creates or updates the one record whose external-id field equals value.
    SaveResult upsert(const std::string& object, const std::string& external_field, const std::string& value,
                      const json::object& fields);
    QueryResult query(const std::string& soql);
    // Records of `object` whose email fields equal any of `emails` (case-insensitively) or
    // whose phone fields hold any of `phones` (compared by digits, national and
    // international forms alike under `country_code`). Rows as query() returns them,
    // with Id, the email and phone fields, CreatedDate and (Lead) IsConverted.
    std::vector<json::object> find(const std::string& object, const std::vector<std::string>& emails,
                                   const std::vector<std::string>& phones, const std::string& country_code);

    // Deletes a record as Salesforce does: gone from queries, kept as a tombstone that
    // changes() reports, naming the record it was merged into when it was.
    void remove(const std::string& object, const std::string& id, const std::string& merged_into = "");
    // Records of `object` changed after (after_modstamp, after_id) — SystemModstamp, then Id
    // — with the `fields` (relationship paths too) and SystemModstamp; deletions included as
    // {"Id", "IsDeleted": true, "SystemModstamp", "MasterRecordId"}. At most `limit`.
    std::vector<json::object> changes(const std::string& object, const std::vector<std::string>& fields,
                                      const std::string& after_modstamp, const std::string& after_id, int64_t limit);
    // Records of `object` deleted from `start` to `end` (datetimes, inclusive, to the second):
    // {"id", "deletedDate"}, oldest first — Salesforce's getDeleted.
    json::array deleted(const std::string& object, const std::string& start, const std::string& end);

    // Runs fn in one transaction (a write call of up to 200 records).
    void transaction(const std::function<void()>& fn);

    // The daily API counter. spend() throws CrmError REQUEST_LIMIT_EXCEEDED once the day's
    // limit is used up. kind is "read" or "write".
    void spend_api_call(const std::string& kind);
    int64_t api_used_today();
    // Spends what is left of the day's budget, as other integrations on the org would.
    void use_up_api_budget();
    int64_t api_limit() const { return options_.daily_api_limit; }
    int64_t api_calls(const std::string& kind);

    // Adds a value to a picklist (restricted ones included), as an admin would.
    void add_picklist_value(const std::string& object, const std::string& field, const std::string& value);
    std::vector<std::string> picklist_values(const std::string& object, const std::string& field);
    // Deactivates a value: describe no longer lists it; records keep it.
    void deactivate_picklist_value(const std::string& object, const std::string& field, const std::string& value);

    // Seeds records: {"Account": [{"_ref": "acme", "Name": "Acme"}], "Contact": [{"AccountId": "@acme", ...}]}.
    // "@name" refers to an earlier record's _ref. Throws CrmError naming the record.
    void seed(const json::object& data);

    // The user API calls run as (OwnerId default, whoami).
    void set_running_user(const std::string& user_id) { running_user_ = user_id; }
    const std::string& running_user() const { return running_user_; }
    std::string find_user_by_username(const std::string& username);

    SQLite::Database& database() { return db_; }

private:
    // A prepared statement kept for reuse (saves re-preparing the same SQL for every
    // record); reset and unbound when the handle goes out of scope.
    class CachedStatement {
    public:
        explicit CachedStatement(SQLite::Statement& statement) : statement_(statement) {}
        ~CachedStatement() {
            try {
                statement_.reset();
                statement_.clearBindings();
            } catch (...) {}
        }
        SQLite::Statement& operator*() { return statement_; }

    private:
        SQLite::Statement& statement_;
    };
    CachedStatement statement(const std::string& sql);

    // save() and its steps (engine_save.cpp). Each step returns the failure that ends the
    // save, or nothing to go on.
    struct SaveDraft;
    using SaveProblem = std::optional<SaveResult>;
    SaveResult save(const Object& obj, const std::string* id, const json::object& fields);
    SaveProblem take_fields(const Object& obj, const json::object& fields, SaveDraft& d);
    SaveProblem take_value(const Object& obj, const Field& f, const json::value& value, SaveDraft& d);
    SaveProblem merge_stored(const Object& obj, SaveDraft& d);
    SaveProblem check_required(const Object& obj, const SaveDraft& d);
    SaveProblem check_shared_activities(const Object& obj, SaveDraft& d);
    SaveProblem derive_fields(const Object& obj, SaveDraft& d);
    SaveProblem check_unique(const Object& obj, SaveDraft& d);
    SaveProblem check_licences(const Object& obj, SaveDraft& d);
    SaveResult store(const Object& obj, SaveDraft& d);
    void store_who_relations(const Object& obj, SaveDraft& d, const std::string& id);
    void ensure_tables();
    void seed_default_org();
    std::string next_id(const Object& obj);
    std::string now_text();
    json::value column_value(const SQLite::Column& c, const Field* field, bool is_id_like);

    EngineOptions options_;
    Schema schema_;
    SQLite::Database db_;
    std::string running_user_;
    bool seeding_ = false;  // seeds may set audit dates and read-only fields
    std::map<std::string, std::set<std::string, CaseInsensitiveLess>> picklists_;  // "Object.Field" -> values
    // After db_, so the statements are finalized before the database closes.
    std::map<std::string, std::unique_ptr<SQLite::Statement>> statements_;
};

}  // namespace mockcrm
