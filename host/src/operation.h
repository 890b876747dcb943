#pragma once
// Operation: one change a source plugin's map() asks for, parsed once where the plugin
// emits it (plugin-api/schemas/operation.schema.json) into typed members. Everything after
// map — field mappings, content hash, services, write — reads these members; JSON is made
// again only for the CRM plugin (to_write_json) and for the error log (to_json).
//
// PendingOperation is an operation on its way through one batch: the source record it
// came from, whether a link exists, and the first failure or skip reason. That record is
// kept as the text its plugin emitted (RecordText): map() gets it as it came.
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "json.h"

namespace crmsync {

// `owner`: the CRM user with this email, else the fallbacks in order.
struct OwnerDirective {
    std::string email;
    std::vector<std::string> if_missing;  // create_integration_user, connection_user, error
};

// `related`: Contacts (up to max_contacts) or else one Lead, by email or phone.
struct RelatedDirective {
    std::vector<std::string> emails;
    std::vector<std::string> phones;
    std::vector<std::string> prefer;  // as given; empty means Contact, then Lead
    int64_t max_contacts = 50;
    bool open_opportunity = false;
    bool allows(std::string_view object) const;
};

// `match`: update the one record of the operation's object whose fields equal the keys
// (one pair, usually an email; or several that must all match).
struct MatchKey {
    std::string field;
    json::value value;       // as the plugin gave it (a scalar)
    std::string value_text;  // the same as an operator would write it
    // Values compare exactly (a GUID), not case-insensitively as Salesforce compares text.
    bool case_sensitive = false;
};

struct MatchDirective {
    std::vector<MatchKey> keys;  // 1..kMaxMatchKeys, each on its own field
    static constexpr size_t kMaxMatchKeys = 5;
    // "Email = a@b.jp" or "Email = a@b.jp and Org_Id__c = 42": for messages.
    std::string describe() const;
    // The fields, in order, joined by commas: what one lookup selects by.
    std::string field_list() const;
};

// Ordered name -> text pairs: `refs` (field -> key of another operation), `blobs` (field ->
// the source's reference to the content), `picklists` (field -> policy).
using FieldDirectives = std::vector<std::pair<std::string, std::string>>;

// Why `text`, bound for field `field`, cannot be written as it is; empty when it can. A NUL
// (U+0000) is cut off by C strings and text columns on the way, so the value is refused
// whole rather than written short.
std::string text_value_problem(std::string_view field, std::string_view text);

struct Operation {
    std::string object;
    std::string action;     // upsert or update (plugins); the services also make create, picklist_add
    std::string key;        // deterministic per source change; the external-id value
    std::string source_id;  // the source entity; the fetched record's id unless the plugin says
    std::string id;         // the CRM id, when known (a match, or the plugin knows it)
    json::object fields;
    std::optional<OwnerDirective> owner;
    std::optional<RelatedDirective> related;
    std::optional<MatchDirective> match;
    FieldDirectives picklists, refs, blobs;
    bool writeback = false;
    // The source's version of the record (a number, or an updated-at time as epoch ms): a
    // version older than the one last written for the key is never written. Not part of the
    // content hash.
    std::optional<int64_t> version;

    // Parses what a plugin emitted; the message says what is wrong with it. `record_id`
    // is the fetched record's id, the default source_id.
    static Result<Operation> parse(const json::value& emitted, const std::string& record_id);

    const std::string* picklist_policy(std::string_view field) const;
    // The whole operation, directives included: content hashes and the error log.
    json::object to_json() const;
    // canonical_json(to_json()), written straight from the fields: what a content hash is
    // taken of, without building and copying the object.
    std::string canonical_text() const;
    // What the CRM plugin's write() gets: the directives resolved into fields.
    json::object to_write_json() const;
};

// The value an operation's key takes in the CRM's external-id field. Salesforce compares
// external ids case-insensitively (unless the field was made case-sensitive), and so does
// mock-crm, so keys that differ only in case ("CaseA", "casea") would land on one record.
// A key of lowercase letters, digits and punctuation other than '%' is its own value; any
// other key is percent-encoded (uppercase letters, '%' and non-ASCII bytes as %xx with
// lowercase hex), which leaves nothing that case could confuse and never equals a plain
// key. Past 255 characters it ends in "%%" and a SHA-256 of the key instead.
std::string crm_key_for(std::string_view key);

// A source record as its plugin emitted it: the JSON text of an object, handed to map()
// and kept for a retry as it is. Its value is parsed only when something reads the record's
// fields (the operator's field mappings), and then once.
class RecordText {
public:
    RecordText() = default;
    // `text` is JSON, a JSON object's but for a record kept from before that was not;
    // `value`, when given, is that text already parsed.
    explicit RecordText(std::string text, std::optional<json::value> value = std::nullopt)
        : text_(std::move(text)), value_(std::move(value)) {}
    const std::string& text() const { return text_; }
    // The record's fields (an empty object when the text is not an object's).
    const json::value& value() const;

private:
    std::string text_;
    mutable std::optional<json::value> value_;
};

// An operation in one batch of a run.
struct PendingOperation {
    Operation op;
    const RecordText* record = nullptr;  // the source record it was mapped from, owned by the batch
    std::string record_id;               // that record's id: what fails, is kept and tried again
    std::string skip_reason;             // set when there is nothing to write (e.g. no match)
    bool no_match = false;               // skipped because no record has the match keys
    std::string hash;
    bool known = false;                   // a link exists: an update, not a create
    std::string crm_key;                  // its external-id value: an earlier link's, else crm_key_for(op.key)
    std::optional<json::object> current;  // a dry run's matched record as the CRM holds it now
    std::optional<std::string> error_code;
    std::string error_message;
    std::vector<std::string> error_fields;

    // The operation as the CRM plugin gets it: keyed by its external-id value.
    json::object write_json() const {
        json::object o = op.to_write_json();
        o["key"] = write_key();
        return o;
    }
    // write_json() serialized, written straight from the operation (its fields not copied).
    std::string write_json_text() const;
    std::string write_key() const { return crm_key.empty() ? crm_key_for(op.key) : crm_key; }
    // Neither failed nor skipped: the services and the write still have work on it.
    bool active() const { return !error_code && skip_reason.empty(); }
    // The write may create the record (so required fields matter and create-only ones may go).
    bool may_create() const { return !known && op.action != "update"; }
    // Marks the operation failed; the first failure is the one reported.
    void fail(std::string code, std::string message, std::vector<std::string> fields = {}) {
        if (error_code) return;
        error_code = std::move(code);
        error_message = std::move(message);
        error_fields = std::move(fields);
    }
};

}  // namespace crmsync
