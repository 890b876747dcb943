// salesforce: the CRM plugin operators run in production. Reads with SOQL (paged by
// nextRecordsUrl), SOSL for phones, describe (cached) and /limits; writes with sObject
// Collections, 200 records a call, allOrNone false, upserting on the connection's
// external-id field. See README.md for its config and credentials.
#include <crmsync/plugin.h>
#include <crmsync/support/json_plugin.hpp>
#include <crmsync/support/phone.hpp>
#include <crmsync/support/soql.hpp>

#include <algorithm>
#include <ctime>
#include <map>
#include <memory>
#include <mutex>

#include "bulk.h"
#include "client.h"

namespace {

using crmsync::support::crm_row_item;
using crmsync::support::emit;
using crmsync::support::fail;
using crmsync::support::guarded;
using crmsync::support::text;

using namespace salesforce;

const char* const kConfigSchema = R"json({
  "$schema": "http://json-schema.org/draft-07/schema#",
  "type": "object",
  "required": ["login_url", "auth"],
  "additionalProperties": false,
  "properties": {
    "login_url": {"type": "string", "pattern": "^https?://", "description": "https://login.salesforce.com (production), https://test.salesforce.com (sandbox), or the org's My Domain URL (client_credentials needs My Domain)"},
    "environment": {"enum": ["production", "sandbox"], "description": "chooses the JWT audience; default from login_url"},
    "auth": {"enum": ["client_credentials", "jwt_bearer", "refresh_token"]},
    "username": {"type": "string", "description": "the Salesforce user a JWT bearer login acts as"},
    "jwt_audience": {"type": "string", "description": "override the JWT aud (normally derived from environment)"},
    "api_version": {"type": "string", "pattern": "^[0-9]+\\.[0-9]$", "default": "62.0"},
    "timeout_ms": {"type": "integer", "minimum": 1000}
  }
})json";

// Calls on one instance may run at once (CRMSYNC_CAP_THREADSAFE): the client guards its
// session, the describe cache its own mutex.
struct Instance {
    const crmsync_host_api* host;
    std::unique_ptr<Client> client;
    std::mutex describes_mutex;
    struct Described {
        json::object describe;
        int64_t at_ms = 0;
    };
    std::map<std::string, Described> describes;  // by object, for kDescribeTtlMs
};

// How long a describe answer is reused. An instance may live from run to run (crmsync serve
// keeps it): a field added in Setup is seen within this time.
constexpr int64_t kDescribeTtlMs = 10 * 60 * 1000;

// Salesforce takes at most 37.5 MB of base64 (50 MB of text) in a non-multipart request.
constexpr size_t kMaxRequestBytes = 37'500'000;

Instance* self(crmsync_instance* i) { return reinterpret_cast<Instance*>(i); }

crmsync_instance* create(const crmsync_host_api* host, crmsync_call* call, const char* config_json) noexcept {
    crmsync_instance* created = nullptr;
    guarded(host, call, [&]() -> int32_t {
        auto c = crmsync::support::parse_object(config_json);
        Config config;
        config.login_url = text(c, "login_url");
        while (!config.login_url.empty() && config.login_url.back() == '/') config.login_url.pop_back();
        config.auth = text(c, "auth");
        config.username = text(c, "username");
        if (c.contains("api_version")) config.api_version = text(c, "api_version");
        if (auto* t = c.if_contains("timeout_ms")) config.timeout_ms = static_cast<uint32_t>(t->as_int64());
        std::string environment = text(c, "environment");
        bool sandbox = environment == "sandbox" ||
                       (environment.empty() && config.login_url.find("test.salesforce.com") != std::string::npos);
        config.audience = c.contains("jwt_audience") ? text(c, "jwt_audience")
                          : sandbox                  ? "https://test.salesforce.com"
                                                     : "https://login.salesforce.com";
        bool generic_login =
            config.login_url == "https://login.salesforce.com" || config.login_url == "https://test.salesforce.com";
        if (config.auth == "client_credentials" && generic_login)
            return fail(host, call, CRMSYNC_STATUS_ERROR,
                        "config.login_url: the client_credentials flow needs the org's My Domain URL "
                        "(e.g. https://example.my.salesforce.com), not login/test.salesforce.com");
        if (config.auth == "jwt_bearer" && config.username.empty())
            return fail(host, call, CRMSYNC_STATUS_ERROR,
                        "config.username: the jwt_bearer flow needs the Salesforce username it acts as");
        auto in = std::make_unique<Instance>();
        in->host = host;
        in->client = std::make_unique<Client>(host, config);
        created = reinterpret_cast<crmsync_instance*>(in.release());
        return CRMSYNC_STATUS_OK;
    });
    return created;
}

void destroy(crmsync_instance* instance) noexcept { delete self(instance); }

int32_t authenticate(crmsync_instance* instance, crmsync_call* call, const char* credentials_json) noexcept {
    auto* in = self(instance);
    return guarded(in->host, call, [&]() -> int32_t {
        auto c = crmsync::support::parse_object(credentials_json);
        Credentials credentials{text(c, "client_id"), text(c, "client_secret"), text(c, "private_key"), text(c, "refresh_token")};
        return in->client->authenticate(call, credentials);
    });
}

// ---- reads ------------------------------------------------------------------------------

// The records of a query answer, then of each further page it points to.
int32_t read_pages(Instance* in, crmsync_call* call, json::object body, const std::function<int32_t(json::object&&)>& row) {
    for (;;) {
        for (auto& record : body.at("records").as_array())
            if (row(std::move(record.as_object())) == CRMSYNC_STATUS_CANCELLED) return CRMSYNC_STATUS_CANCELLED;
        auto* next = body.if_contains("nextRecordsUrl");
        if (!next || !next->is_string() || body.at("done").as_bool()) return CRMSYNC_STATUS_OK;
        if (in->host->cancelled(call)) return CRMSYNC_STATUS_CANCELLED;
        auto res = in->client->request(call, "GET", std::string(next->get_string()));
        if (res.status != CRMSYNC_STATUS_OK) return fail(in->host, call, res.status, "query failed: " + res.message);
        body = std::move(res.body.as_object());
    }
}

int32_t query(Instance* in, crmsync_call* call, const std::string& soql, const std::function<int32_t(json::object&&)>& row) {
    auto res = in->client->request(call, "GET", "/query?q=" + url_encode(soql));
    if (res.status != CRMSYNC_STATUS_OK) return fail(in->host, call, res.status, "query failed: " + res.message);
    return read_pages(in, call, std::move(res.body.as_object()), row);
}

// Why a Composite subrequest failed, as a failed response would say: a transient failure
// (5xx, the daily limit, an expired session) stops the run, never fails records.
int32_t subrequest_failed(Instance* in, crmsync_call* call, const json::object& answer, const std::string& what) {
    auto failed = error_answer(answer.at("httpStatusCode").to_number<int>(), answer.at("body"));
    return fail(in->host, call, failed.status, what + " failed: " + failed.message);
}

constexpr size_t kQueriesPerComposite = 5, kSubrequestUrlBytes = 15'000;

// The URL-encoded length a statement may take in a Composite query subrequest.
size_t statement_budget(Instance* in) { return kSubrequestUrlBytes - in->client->data_path("/query?q=").size(); }

// SELECT statements five to a Composite request, which Salesforce counts as one API call (it
// allows five queries among a composite's subrequests); further pages are plain GETs. Each
// statement's URL must stay within the 16,384 bytes Salesforce accepts for one subrequest.
int32_t composite_queries(Instance* in, crmsync_call* call, const std::vector<std::string>& statements, const std::string& what) {
    const std::string prefix = in->client->data_path("/query?q=");
    auto emit_row = [&](json::object&& row) { return emit(in->host, call, crm_row_item(std::move(row))); };
    for (size_t start = 0; start < statements.size(); start += kQueriesPerComposite) {
        json::array subrequests;
        for (size_t i = start; i < std::min(statements.size(), start + kQueriesPerComposite); ++i) {
            std::string reference(1, 'q');  // a reference id starts with a letter
            reference += std::to_string(i);
            subrequests.push_back(
                json::object{{"method", "GET"}, {"url", prefix + url_encode(statements[i])}, {"referenceId", reference}});
        }
        auto res = in->client->request(call, "POST", "/composite",
                                       json::serialize(json::object{{"compositeRequest", std::move(subrequests)}}));
        if (res.status != CRMSYNC_STATUS_OK) return fail(in->host, call, res.status, what + " failed: " + res.message);
        for (auto& sub : res.body.as_object().at("compositeResponse").as_array()) {
            auto& answer = sub.as_object();
            if (answer.at("httpStatusCode").to_number<int>() != 200) return subrequest_failed(in, call, answer, what + " query");
            if (int32_t rc = read_pages(in, call, std::move(answer.at("body").as_object()), emit_row); rc != CRMSYNC_STATUS_OK)
                return rc;
        }
    }
    return CRMSYNC_STATUS_OK;
}

// `lookup`: the records a batch's match keys find, its statements packed to the subrequest limit.
int32_t lookup(Instance* in, crmsync_call* call, const json::object& request) {
    std::string why;
    auto asked = crmsync::support::soql::Lookup::parse(request, why);
    if (!asked) return fail(in->host, call, CRMSYNC_STATUS_ERROR, why);
    return composite_queries(
        in, call, asked->statements(statement_budget(in), [](const std::string& s) { return url_encoded_size(s); }), "lookup");
}

// A SystemModstamp as a SOQL datetime literal. Salesforce keeps whole seconds
// ("…:05.000+0000" → "…:05Z", the form SOQL documents); a value with milliseconds keeps them.
std::string soql_datetime(const std::string& stamp) {
    std::string t = stamp.substr(0, 19);
    if (stamp.size() >= 23 && stamp[19] == '.' && stamp.compare(20, 3, "000") != 0) t += stamp.substr(19, 4);
    return t + "Z";
}

std::string utc_now_minus(int64_t seconds) {
    std::time_t t = std::time(nullptr) - seconds;
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

// ABI 1.1 `changes`: the records changed after the {"modstamp", "id", "deleted_until"}
// cursor, by SOQL in (SystemModstamp, Id) order — ties at a page boundary are told apart by
// Id — and, once those are exhausted, the records deleted (or merged away) since the last
// look (getDeleted; Salesforce keeps them 30 days) as {"Id", "IsDeleted": true,
// "SystemModstamp"}. Both go in one Composite call: one API call a page.
int32_t changes(Instance* in, crmsync_call* call, const json::object& request) {
    std::string modstamp, id, deleted_until;
    if (auto* c = request.at("cursor").if_object()) {
        modstamp = text(*c, "modstamp");
        id = text(*c, "id");
        deleted_until = text(*c, "deleted_until");
    }
    const std::string object = text(request, "object");
    const int64_t limit = std::clamp<int64_t>(request.at("limit").to_number<int64_t>(), 1, 2000);
    std::string select = "Id, SystemModstamp";
    for (const auto& f : request.at("fields").as_array())
        if (std::string name(f.as_string()); name != "Id" && name != "SystemModstamp") select += ", " + name;
    std::string soql = "SELECT " + select + " FROM " + object;
    if (!modstamp.empty())
        soql += " WHERE SystemModstamp > " + soql_datetime(modstamp) + " OR (SystemModstamp = " + soql_datetime(modstamp) +
                " AND Id > " + crmsync::support::soql::literal(id) + ")";
    soql += " ORDER BY SystemModstamp, Id LIMIT " + std::to_string(limit);
    const std::string start = deleted_until.empty() ? utc_now_minus(29 * 86400) : soql_datetime(deleted_until);
    json::array subrequests{
        json::object{
            {"method", "GET"}, {"url", in->client->data_path("/query?q=" + url_encode(soql))}, {"referenceId", "changed"}},
        json::object{{"method", "GET"},
                     {"url", in->client->data_path("/sobjects/" + url_encode(object) + "/deleted/?start=" + url_encode(start) +
                                                   "&end=" + url_encode(utc_now_minus(0)))},
                     {"referenceId", "deleted"}}};
    auto res = in->client->request(call, "POST", "/composite",
                                   json::serialize(json::object{{"compositeRequest", std::move(subrequests)}}));
    if (res.status != CRMSYNC_STATUS_OK) return fail(in->host, call, res.status, "reading changes failed: " + res.message);
    json::object changed, deleted;
    for (auto& sub : res.body.as_object().at("compositeResponse").as_array()) {
        auto& answer = sub.as_object();
        if (answer.at("httpStatusCode").to_number<int>() != 200)
            return subrequest_failed(in, call, answer, "reading changes of " + object);
        (text(answer, "referenceId") == "changed" ? changed : deleted) = std::move(answer.at("body").as_object());
    }
    int64_t emitted = 0;
    int32_t rc = read_pages(in, call, std::move(changed), [&](json::object&& row) {
        modstamp = text(row, "SystemModstamp");
        id = text(row, "Id");
        ++emitted;
        return emit(in->host, call, crm_row_item(std::move(row)));
    });
    if (rc != CRMSYNC_STATUS_OK) return rc;
    auto checkpoint = [&](bool more) {
        return emit(in->host, call,
                    crmsync::support::checkpoint_item(
                        json::object{{"modstamp", modstamp}, {"id", id}, {"deleted_until", deleted_until}}, more));
    };
    if (emitted == limit) return checkpoint(true);  // the deletions wait until the changes are read
    bool more = false;
    if (auto* list = deleted.if_contains("deletedRecords"); list && list->is_array())
        for (const auto& d : list->get_array()) {
            if (emitted == limit) {
                more = true;  // the rest next time, from this one's deletion time
                break;
            }
            const auto& o = d.as_object();
            deleted_until = text(o, "deletedDate");
            json::object row{{"attributes", json::object{{"type", object}}},
                             {"Id", text(o, "id")},
                             {"IsDeleted", true},
                             {"SystemModstamp", deleted_until}};
            if (int32_t rc2 = emit(in->host, call, crm_row_item(std::move(row))); rc2 != CRMSYNC_STATUS_OK) return rc2;
            ++emitted;
        }
    if (!more) deleted_until = text(deleted, "latestDateCovered");
    return checkpoint(more);
}

std::vector<std::string> find_fields(const std::string& object) {
    std::vector<std::string> fields{"Id", "Email", "Phone", "MobilePhone", "CreatedDate"};
    if (object == "Lead") fields.emplace_back("IsConverted");
    return fields;
}

int32_t find(Instance* in, crmsync_call* call, const json::object& request) {
    auto strings = [&](const char* key) {
        std::vector<std::string> out;
        if (auto* a = request.if_contains(key); a && a->is_array())
            for (const auto& v : a->as_array())
                if (v.is_string()) out.emplace_back(v.get_string());
        return out;
    };
    auto objects = strings("objects"), emails = strings("emails"), phones = strings("phones");
    std::string country = text(request, "country_code");
    auto emit_row = [&](json::object&& row) { return emit(in->host, call, crm_row_item(std::move(row))); };
    // Each object's statements packed to a subrequest's URL limit as a `lookup`'s are, by
    // Email, Contact and Lead together in Composite calls: one API call for up to five.
    std::vector<std::vector<std::string>> keys;
    for (const auto& email : emails) keys.push_back({email});
    std::vector<std::string> statements;
    for (const auto& object : objects)
        for (auto& statement : crmsync::support::soql::Lookup{object, {"Email"}, find_fields(object), keys}.statements(
                 statement_budget(in), [](const std::string& s) { return url_encoded_size(s); }))
            statements.push_back(std::move(statement));
    if (int32_t rc = composite_queries(in, call, statements, "the Contact and Lead lookup"); rc != CRMSYNC_STATUS_OK) return rc;
    if (phones.empty() || objects.empty()) return CRMSYNC_STATUS_OK;
    std::vector<std::string> forms;
    for (const auto& phone : phones)
        for (const auto& form : crmsync::support::phone_forms(phone, country))
            if (form.size() >= 6) forms.push_back(form);
    std::string returning;
    for (const auto& object : objects) {
        std::string fields;
        for (const auto& f : find_fields(object)) fields += (fields.empty() ? "" : ", ") + f;
        returning += (returning.empty() ? "" : ", ") + object + "(" + fields + ")";
    }
    // SOSL search terms are limited too: a few hundred digits strings per search at most.
    for (size_t start = 0; start < forms.size();) {
        std::string terms;
        while (start < forms.size() && terms.size() < 3000) terms += (terms.empty() ? "" : " OR ") + forms[start++];
        auto res = in->client->request(call, "GET",
                                       "/search?q=" + url_encode("FIND {" + terms + "} IN PHONE FIELDS RETURNING " + returning));
        if (res.status != CRMSYNC_STATUS_OK) return fail(in->host, call, res.status, "phone search failed: " + res.message);
        for (auto& row : res.body.as_object().at("searchRecords").as_array())
            if (emit_row(std::move(row.as_object())) == CRMSYNC_STATUS_CANCELLED) return CRMSYNC_STATUS_CANCELLED;
    }
    return CRMSYNC_STATUS_OK;
}

std::optional<json::object> describe(Instance* in, crmsync_call* call, const std::string& object, int32_t& status) {
    const int64_t now = in->host->now_ms(call);
    {
        std::lock_guard lock(in->describes_mutex);
        if (auto it = in->describes.find(object); it != in->describes.end() && now - it->second.at_ms < kDescribeTtlMs)
            return it->second.describe;
    }
    auto res = in->client->request(call, "GET", "/sobjects/" + url_encode(object) + "/describe");
    if (res.status != CRMSYNC_STATUS_OK) {
        status = fail(in->host, call, res.status, "describe " + object + " failed: " + res.message);
        return std::nullopt;
    }
    std::lock_guard lock(in->describes_mutex);
    return (in->describes[object] = {std::move(res.body.as_object()), now}).describe;
}

int32_t fetch(crmsync_instance* instance, crmsync_call* call, const char* request_json) noexcept {
    auto* in = self(instance);
    try {
        auto request = crmsync::support::parse_object(request_json);
        std::string type = text(request, "type");
        if (type == "query") {
            std::string soql = text(request, "soql");
            std::string head = soql.substr(0, 20);
            std::transform(head.begin(), head.end(), head.begin(), [](unsigned char c) { return std::toupper(c); });
            if (head.rfind("SELECT COUNT()", 0) == 0) {
                auto res = in->client->request(call, "GET", "/query?q=" + url_encode(soql));
                if (res.status != CRMSYNC_STATUS_OK) return fail(in->host, call, res.status, "query failed: " + res.message);
                return emit(in->host, call, json::object{{"type", "count"}, {"count", res.body.as_object().at("totalSize")}});
            }
            return query(in, call, soql, [&](json::object&& row) { return emit(in->host, call, crm_row_item(std::move(row))); });
        }
        if (type == "lookup") return lookup(in, call, request);
        if (type == "changes") return changes(in, call, request);
        if (type == "describe") {
            for (const auto& object : request.at("objects").as_array()) {
                int32_t status = CRMSYNC_STATUS_OK;
                auto item = describe(in, call, std::string(object.as_string()), status);
                if (!item) return status;
                (*item)["type"] = "describe";
                (*item)["object"] = (*item)["name"];
                emit(in->host, call, *item);
            }
            return CRMSYNC_STATUS_OK;
        }
        if (type == "find") return find(in, call, request);
        if (type == "limits") {
            auto res = in->client->request(call, "GET", "/limits");
            if (res.status != CRMSYNC_STATUS_OK) return fail(in->host, call, res.status, "limits failed: " + res.message);
            const auto& daily = res.body.as_object().at("DailyApiRequests").as_object();
            int64_t max = daily.at("Max").to_number<int64_t>(), remaining = daily.at("Remaining").to_number<int64_t>();
            return emit(in->host, call, json::object{{"type", "limits"}, {"used", max - remaining}, {"limit", max}});
        }
        if (type == "authorize_url" || type == "authorize_code") {
            // `crmsync connect`: the credentials known so far come with the request (there is
            // no refresh token yet to authenticate with).
            json::object c = request.contains("credentials") ? request.at("credentials").as_object() : json::object{};
            Credentials credentials{text(c, "client_id"), text(c, "client_secret"), "", ""};
            if (credentials.client_id.empty())
                return fail(in->host, call, CRMSYNC_STATUS_ERROR,
                            "signing in needs the credential \"client_id\" (the connected app's consumer key)");
            if (type == "authorize_url")
                return emit(
                    in->host, call,
                    json::object{{"type", "authorize_url"},
                                 {"url", in->client->authorize_url(credentials, text(request, "redirect_uri"),
                                                                   text(request, "state"), text(request, "code_challenge"))},
                                 {"credentials", json::array{"refresh_token"}}});
            std::string token = in->client->exchange_code(call, credentials, text(request, "redirect_uri"), text(request, "code"),
                                                          text(request, "code_verifier"));
            if (token.empty()) return CRMSYNC_STATUS_AUTH_FAILED;
            return emit(in->host, call, json::object{{"type", "credential"}, {"name", "refresh_token"}, {"value", token}});
        }
        if (type == "whoami") {
            std::string id = in->client->user_id();
            return query(in, call, "SELECT Id, Username, Email FROM User WHERE Id = '" + id + "'", [&](json::object&& row) {
                return emit(in->host, call, json::object{{"type", "record"}, {"id", id}, {"record", std::move(row)}});
            });
        }
        return fail(in->host, call, CRMSYNC_STATUS_NOT_SUPPORTED, "salesforce does not answer fetch type \"" + type + "\"");
    } catch (const std::exception& e) {
        return fail(in->host, call, CRMSYNC_STATUS_ERROR, std::string("salesforce: unexpected answer: ") + e.what());
    }
}

// ---- writes -----------------------------------------------------------------------------

json::object result_of(const std::string& key, const json::object& r) {
    bool success = r.contains("success") && r.at("success").as_bool();
    json::object out{{"key", key}, {"success", success}};
    if (success) {
        out["id"] = r.at("id");
        if (auto* created = r.if_contains("created")) out["created"] = *created;
        return out;
    }
    json::array errors;
    bool retryable = false;
    if (auto* list = r.if_contains("errors"); list && list->is_array())
        for (const auto& e : list->as_array()) {
            const auto& eo = e.as_object();
            std::string code = text(eo, "statusCode");  // Collections say statusCode, not errorCode
            retryable = retryable || code == "UNABLE_TO_LOCK_ROW";
            errors.push_back(json::object{{"code", code},
                                          {"message", text(eo, "message")},
                                          {"fields", eo.contains("fields") ? eo.at("fields") : json::array{}}});
        }
    out["errors"] = errors;
    out["retryable"] = retryable;
    return out;
}

// An unrestricted picklist takes any value as it is. A restricted custom one gets the value
// through the Tooling API (the field's Metadata, with the value appended). A restricted
// standard picklist can only be changed in Setup: the record fails saying so.
json::object add_picklist_value(Instance* in, crmsync_call* call, const json::object& op) {
    std::string key = text(op, "key"), object = text(op, "object"), field = text(op, "field"), value = text(op, "value");
    auto refused = [&](const std::string& code, const std::string& message) {
        return json::object{
            {"key", key},
            {"success", false},
            {"errors", json::array{json::object{{"code", code}, {"message", message}, {"fields", json::array{field}}}}}};
    };
    int32_t status = CRMSYNC_STATUS_OK;
    auto d = describe(in, call, object, status);
    if (!d) return refused("DESCRIBE_FAILED", "could not describe " + object);
    const json::object* f = nullptr;
    for (const auto& candidate : d->at("fields").as_array())
        if (text(candidate.as_object(), "name") == field) f = &candidate.as_object();
    if (!f) return refused("INVALID_FIELD", object + "." + field + " does not exist");
    bool restricted = f->contains("restrictedPicklist") && f->at("restrictedPicklist").as_bool();
    if (!restricted) return json::object{{"key", key}, {"success", true}, {"id", ""}};
    if (field.size() < 4 || field.compare(field.size() - 3, 3, "__c") != 0)
        return refused("PICKLIST_RESTRICTED",
                       object + "." + field + " is a restricted standard picklist: add \"" + value + "\" to it in Setup");
    std::string developer_name = field.substr(0, field.size() - 3);
    auto found =
        in->client->request(call, "GET",
                            "/tooling/query?q=" + url_encode("SELECT Id, Metadata FROM CustomField WHERE TableEnumOrId = '" +
                                                             object + "' AND DeveloperName = '" + developer_name + "'"));
    if (found.status != CRMSYNC_STATUS_OK)
        return refused("TOOLING_API_FAILED", "looking up " + object + "." + field + " failed: " + found.message);
    const auto& records = found.body.as_object().at("records").as_array();
    if (records.empty()) return refused("TOOLING_API_FAILED", "the Tooling API does not know " + object + "." + field);
    json::object metadata = records[0].at("Metadata").as_object();
    auto& values = metadata["valueSet"].as_object()["valueSetDefinition"].as_object()["value"].as_array();
    values.push_back(json::object{{"fullName", value}, {"label", value}, {"default", false}});
    std::string id = text(records[0].as_object(), "Id");
    auto patched = in->client->request(call, "PATCH", "/tooling/sobjects/CustomField/" + id,
                                       json::serialize(json::object{{"Metadata", metadata}}));
    if (patched.status != CRMSYNC_STATUS_OK)
        return refused("TOOLING_API_FAILED",
                       "adding \"" + value + "\" to " + object + "." + field + " failed: " + patched.message);
    std::lock_guard lock(in->describes_mutex);
    in->describes.erase(object);  // the next describe shows the new value
    return json::object{{"key", key}, {"success", true}, {"id", id}};
}

int32_t write(crmsync_instance* instance, crmsync_call* call, const char* batch_json) noexcept {
    auto* in = self(instance);
    try {
        // The batch dies with the call: parsed into one arena, each record's fields moved
        // out of it into its request's text without a copy.
        json::monotonic_resource arena;
        auto batch = crmsync::support::parse_object(batch_json, &arena);
        std::string external = batch.contains("external_id_field") ? text(batch, "external_id_field") : "CrmSync_Key__c";
        auto& ops = batch.at("operations").as_array();
        if (batch.contains("bulk") && batch.at("bulk").is_bool() && batch.at("bulk").as_bool() && !ops.empty()) {
            // The host sends one object's plain upserts, or its updates by Id, as a bulk batch.
            std::string error;
            int32_t rc = bulk_load(
                *in->client, in->host, call, text(ops[0].as_object(), "object"), external, ops,
                [&](const json::object& result) { emit(in->host, call, result); }, error);
            return rc == CRMSYNC_STATUS_OK ? rc : fail(in->host, call, rc, error);
        }
        std::vector<json::object> results(ops.size());
        // One Collections call per (action, object) group, keeping each result in its slot.
        std::map<std::pair<std::string, std::string>, std::vector<size_t>> groups;
        for (size_t i = 0; i < ops.size(); ++i) {
            const auto& op = ops[i].as_object();
            groups[{text(op, "action"), text(op, "object")}].push_back(i);
        }
        for (const auto& [group, indexes] : groups) {
            const auto& [action, object] = group;
            if (action == "picklist_add") {
                for (size_t i : indexes) results[i] = add_picklist_value(in, call, ops[i].as_object());
                continue;
            }
            // Records go 200 a request and, since a file rides along as base64, under the size
            // Salesforce takes in one non-multipart request.
            // Each record is serialized once, into its request's text ("records" joined by ',').
            std::vector<std::pair<std::vector<size_t>, std::string>> requests;
            size_t bytes = 0;
            for (size_t i : indexes) {
                auto& op = ops[i].as_object();
                json::object record = std::move(op.at("fields").as_object());  // only the key is read after
                record["attributes"] = json::object({{"type", object}}, record.storage());
                if (action == "upsert") record[external] = op.at("key");
                if (action == "update") record["Id"] = op.at("id");
                std::string record_json = json::serialize(record);
                const size_t size = record_json.size();
                if (size > kMaxRequestBytes) {
                    results[i] = json::object{
                        {"key", op.at("key")},
                        {"success", false},
                        {"errors",
                         json::array{json::object{
                             {"code", "REQUEST_TOO_LARGE"},
                             {"message", object + ": the record is " + std::to_string(size / 1'000'000) +
                                             " MB as JSON; Salesforce takes at most 37.5 MB of base64 in one request"}}}}};
                    continue;
                }
                if (requests.empty() || requests.back().first.size() == 200 || bytes + size > kMaxRequestBytes) {
                    requests.emplace_back();
                    bytes = 0;
                }
                auto& joined = requests.back().second;
                joined += joined.empty() ? "" : ",";
                joined += record_json;
                requests.back().first.push_back(i);
                bytes += size;
            }
            for (auto& [slots, records] : requests) {
                const std::string body = "{\"allOrNone\":false,\"records\":[" + records + "]}";
                Response res = action == "upsert"
                                   ? in->client->request(call, "PATCH", "/composite/sobjects/" + object + "/" + external, body)
                               : action == "update" ? in->client->request(call, "PATCH", "/composite/sobjects", body)
                                                    : in->client->request(call, "POST", "/composite/sobjects", body, false);
                if (res.status != CRMSYNC_STATUS_OK)
                    return fail(in->host, call, res.status, action + " " + object + " failed: " + res.message);
                const auto& answers = res.body.as_array();
                for (size_t n = 0; n < slots.size(); ++n) {
                    std::string key = text(ops[slots[n]].as_object(), "key");
                    results[slots[n]] =
                        n < answers.size()
                            ? result_of(key, answers[n].as_object())
                            : json::object{{"key", key},
                                           {"success", false},
                                           {"errors", json::array{json::object{{"code", "NO_RESULT"},
                                                                               {"message", "Salesforce returned no result"}}}}};
                }
            }
        }
        for (const auto& r : results) emit(in->host, call, r);
        return CRMSYNC_STATUS_OK;
    } catch (const std::exception& e) {
        return fail(in->host, call, CRMSYNC_STATUS_ERROR, std::string("salesforce: unexpected answer: ") + e.what());
    }
}

const crmsync_plugin kPlugin = {
    sizeof(crmsync_plugin),
    CRMSYNC_PLUGIN_ID,
    CRMSYNC_PLUGIN_VERSION,
    "Salesforce over its REST API (OAuth 2.0, sObject Collections, SOQL/SOSL)",
    kConfigSchema,
    CRMSYNC_CAP_FETCH | CRMSYNC_CAP_WRITE | CRMSYNC_CAP_THREADSAFE,
    create,
    destroy,
    authenticate,
    fetch,
    nullptr,
    write,
};

}  // namespace

CRMSYNC_DEFINE_ENTRY(kPlugin)
