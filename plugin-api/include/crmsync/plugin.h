/*
 * crmsync plugin ABI — the whole contract between the crmsync host and a plugin.
 *
 * Control plane: the typed C structs below. Data plane: UTF-8 JSON text whose shapes are
 * documented as JSON Schemas in plugin-api/schemas/ (installed beside this header).
 *
 * Rules that hold for every struct and function here:
 *  - Every struct starts with `uint32_t struct_size`. Fields are only ever appended, grouped
 *    under a comment naming the ABI minor that added them. A reader copies
 *    min(struct_size, sizeof) into a zeroed local and treats a field as present only if it
 *    lies inside struct_size and is non-NULL.
 *  - Memory: what one side passes in is borrowed for the duration of the call. What a plugin
 *    emits is copied by the host before emit() returns. Nothing is freed across the boundary.
 *  - Errors never cross as exceptions. Every entry point on both sides is noexcept / catches
 *    everything; details go through host->fail().
 *  - Threading: the host serializes calls on one instance unless the plugin declares
 *    CRMSYNC_CAP_THREADSAFE. Different instances may be called at once from different
 *    threads. Host services may be called from the thread that is running the entry point
 *    they were handed a call for, and only until that entry point returns.
 *
 * This header compiles as C99 with -Wall -Wextra -pedantic -Werror.
 */
#ifndef CRMSYNC_PLUGIN_H
#define CRMSYNC_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CRMSYNC_ABI_MAJOR 1
#define CRMSYNC_ABI_MINOR 1

/* The one symbol a plugin library exports. */
#define CRMSYNC_ENTRY_SYMBOL "crmsync_negotiate"

#if defined(_WIN32)
#define CRMSYNC_EXPORT __declspec(dllexport)
#else
#define CRMSYNC_EXPORT __attribute__((visibility("default")))
#endif

/* ---- Status codes (int32_t). Any value not listed here is treated as ERROR. ---------- */
#define CRMSYNC_STATUS_OK 0
/* Transient: the host backs off and retries the same call. */
#define CRMSYNC_STATUS_RETRY 1
/* This input is bad; retrying it will not help. */
#define CRMSYNC_STATUS_ERROR 2
/* Credentials were refused or have expired; the host re-authenticates at most once. */
#define CRMSYNC_STATUS_AUTH_FAILED 3
/* The outside system's rate or daily limit is reached; the host stops the run cleanly. */
#define CRMSYNC_STATUS_RATE_LIMITED 4
/* The plugin does not implement this request or verb. */
#define CRMSYNC_STATUS_NOT_SUPPORTED 5
/* The call stopped because host->cancelled() said so. */
#define CRMSYNC_STATUS_CANCELLED 6

/* ---- Capability flags (uint32_t, OR-ed) ---------------------------------------------- */
#define CRMSYNC_CAP_FETCH 0x1u
#define CRMSYNC_CAP_MAP 0x2u
#define CRMSYNC_CAP_WRITE 0x4u
/* Calls on one instance may run concurrently. */
#define CRMSYNC_CAP_THREADSAFE 0x100u
/* ABI 1.1: the run turned round. The module's plugin reads the CRM and writes its own
 * system: it answers a `crm_read` fetch request with what to read (object, fields, the
 * picklists whose values it keeps in step); the host fetches those records from the CRM
 * plugin (`changes` requests, paged by SystemModstamp and Id, deletions included), hands
 * each to map(), and sends the operations to this plugin's write(). */
#define CRMSYNC_CAP_READS_CRM 0x8u

/* ---- Log levels (int32_t) ------------------------------------------------------------ */
#define CRMSYNC_LOG_DEBUG 0
#define CRMSYNC_LOG_INFO 1
#define CRMSYNC_LOG_WARN 2
#define CRMSYNC_LOG_ERROR 3

/* Opaque, host-owned context of one entry-point invocation. Valid until that entry point
 * returns; never store it. */
typedef struct crmsync_call crmsync_call;

/* Opaque, plugin-owned state created by create() and released by destroy(). */
typedef struct crmsync_instance crmsync_instance;

/* One HTTP request made through the host (host->http). */
typedef struct crmsync_http_request {
    uint32_t struct_size;
    /* "GET", "POST", "PATCH", "PUT", "DELETE". */
    const char* method;
    /* Absolute http:// or https:// URL. */
    const char* url;
    /* "Name: value" strings; header_count of them. May be NULL when header_count is 0. */
    const char* const* headers;
    uint32_t header_count;
    /* Request body, body_size bytes; may be NULL when body_size is 0. */
    const char* body;
    size_t body_size;
    /* Whole-request timeout; 0 means the host's default (30 s). */
    uint32_t timeout_ms;
    /* Non-zero when repeating the request cannot do harm (reads, upserts by external id).
     * The host retries only such requests after a timeout or connection failure. */
    uint32_t idempotent;
} crmsync_http_request;

/* The answer to one host->http request. Filled by the host; every pointer is host-owned
 * and valid until the entry point that made the request returns. */
typedef struct crmsync_http_response {
    uint32_t struct_size;
    /* HTTP status code; 0 when no response arrived (see host->fail message). */
    int32_t status;
    const char* body;
    size_t body_size;
    /* The response headers as received, "Name: value\r\n" each, NUL-terminated. */
    const char* headers;
} crmsync_http_response;

/* Services the host offers to a plugin. Passed to crmsync_negotiate and to create(). */
typedef struct crmsync_host_api {
    uint32_t struct_size;
    uint32_t abi_major;
    uint32_t abi_minor;

    /* Write one line to the run log. message is borrowed; any thread the call is on. */
    void (*log)(crmsync_call* call, int32_t level, const char* message);

    /* Record why the current entry point is about to return a non-OK status. The last call
     * wins. message is borrowed and must not contain secrets. */
    void (*fail)(crmsync_call* call, int32_t status, const char* message);

    /* Hand one JSON value (json, size bytes of UTF-8) to the host. What it means depends on
     * the entry point (see schemas/). The host copies it before returning. Returns OK, ERROR
     * when the text is not valid JSON of the expected shape (details in the run log), or
     * CANCELLED when the host wants the call to stop early. */
    int32_t (*emit)(crmsync_call* call, const char* json, size_t size);

    /* Perform an HTTP request with the host's TLS settings, timeout, retry of idempotent
     * requests and API-call accounting. Blocks. Returns OK when a response arrived (of any
     * HTTP status), RETRY on timeout or connection failure, CANCELLED when the run stops.
     * response->struct_size must be set by the caller. */
    int32_t (*http)(crmsync_call* call, const crmsync_http_request* request, crmsync_http_response* response);

    /* The resolved value of the credential the module manifest names `name` (e.g. a private
     * key file's contents), or NULL. Host-owned, valid until the entry point returns. Never
     * log it. */
    const char* (*secret)(crmsync_call* call, const char* name);

    /* Current time, milliseconds since the Unix epoch, UTC. Injectable by tests. */
    int64_t (*now_ms)(crmsync_call* call);

    /* Non-zero when the host wants the current call to stop (shutdown, run stopped). Long
     * loops should check it and return CRMSYNC_STATUS_CANCELLED. */
    int32_t (*cancelled)(crmsync_call* call);

    /* Report the outside system's API budget as last seen (e.g. Salesforce's
     * Sforce-Limit-Info api-usage=used/limit). The host stops a run cleanly when the
     * remaining share falls under the module's reserve. */
    void (*api_usage)(crmsync_call* call, int64_t used, int64_t limit);
} crmsync_host_api;

/* What a plugin is: returned by crmsync_negotiate, must stay valid while the library is
 * loaded (a static const object is the usual choice). */
typedef struct crmsync_plugin {
    uint32_t struct_size;
    /* Stable id, e.g. "mock-crm"; equals the plugin manifest's id. */
    const char* id;
    /* Semantic version "MAJOR.MINOR.PATCH"; equals the plugin manifest's version. */
    const char* version;
    /* One line for `crmsync modules`. */
    const char* description;
    /* JSON Schema (draft 7) of the `config` object a module manifest passes to create().
     * The host validates config against it before create(); the plugin need not re-check. */
    const char* config_schema;
    /* CRMSYNC_CAP_* flags. */
    uint32_t capabilities;

    /* Make an instance for one module (or CRM connection). config_json is the validated
     * config object. Returns NULL after host->fail() when it cannot. */
    crmsync_instance* (*create)(const crmsync_host_api* host, crmsync_call* call, const char* config_json);
    /* Release an instance. Never fails; may be NULL for plugins with no state. */
    void (*destroy)(crmsync_instance* instance);
    /* Check credentials (schemas/credentials.schema.json: the resolved credential values by
     * name) and keep whatever session they yield. May be NULL when none are needed. */
    int32_t (*authenticate)(crmsync_instance* instance, crmsync_call* call, const char* credentials_json);
    /* Answer one request (schemas/fetch-request.schema.json) by emitting items
     * (schemas/fetch-item.schema.json). Present when CRMSYNC_CAP_FETCH.
     * A CRM plugin speaks the host's dialect, which is Salesforce's whatever the CRM behind
     * it: `query` requests carry SOQL (SELECT ... FROM ... WHERE = / IN / LIKE / AND / OR
     * ... ORDER BY ... LIMIT, relationship fields like Opportunity.IsClosed) and `describe`
     * answers are shaped like Salesforce's sObject describe (name, type, length, nillable,
     * createable, updateable, defaultedOnCreate, restrictedPicklist, picklistValues). */
    int32_t (*fetch)(crmsync_instance* instance, crmsync_call* call, const char* request_json);
    /* Turn one fetched record into zero or more operations
     * (schemas/operation.schema.json). Emitting none means "nothing to do for this record".
     * Present when CRMSYNC_CAP_MAP. */
    int32_t (*map)(crmsync_instance* instance, crmsync_call* call, const char* record_json);
    /* Write a batch (schemas/write-batch.schema.json) to the plugin's own system, emitting
     * exactly one result (schemas/write-result.schema.json) per operation, in order.
     * Present when CRMSYNC_CAP_WRITE. */
    int32_t (*write)(crmsync_instance* instance, crmsync_call* call, const char* batch_json);
    /* ABI 1.0 ends here. */
} crmsync_plugin;

/* The exchange of crmsync_negotiate. The host fills the first block; the plugin fills the
 * second (only fields inside struct_size). */
typedef struct crmsync_negotiation {
    uint32_t struct_size;
    uint32_t host_abi_major;
    uint32_t host_abi_minor;
    const crmsync_host_api* host;

    uint32_t plugin_abi_major;
    uint32_t plugin_abi_minor;
    const crmsync_plugin* plugin;
} crmsync_negotiation;

/* The entry symbol. Returns OK and fills the plugin block when it can serve this host;
 * returns ERROR (still filling plugin_abi_major/minor) when it cannot. The host refuses a
 * plugin whose major differs from its own or whose minor is newer than its own. */
typedef int32_t (*crmsync_negotiate_fn)(crmsync_negotiation* negotiation);

/* Defines crmsync_negotiate for a plugin whose descriptor is `descriptor` (a static
 * crmsync_plugin): it answers with the ABI this header declares, writes only fields that
 * lie inside the host's struct_size, and refuses a host of another major. Use it once, at
 * file scope:  CRMSYNC_DEFINE_ENTRY(kPlugin) */
#ifdef __cplusplus
#define CRMSYNC_ENTRY_LINKAGE extern "C"
#else
#define CRMSYNC_ENTRY_LINKAGE
#endif
#define CRMSYNC_DEFINE_ENTRY(descriptor)                                                                                   \
    CRMSYNC_ENTRY_LINKAGE CRMSYNC_EXPORT int32_t crmsync_negotiate(crmsync_negotiation* n) {                               \
        if (!n || n->struct_size < offsetof(crmsync_negotiation, plugin) + sizeof(n->plugin)) return CRMSYNC_STATUS_ERROR; \
        n->plugin_abi_major = CRMSYNC_ABI_MAJOR;                                                                           \
        n->plugin_abi_minor = CRMSYNC_ABI_MINOR;                                                                           \
        if (n->host_abi_major != CRMSYNC_ABI_MAJOR) return CRMSYNC_STATUS_ERROR;                                           \
        n->plugin = &(descriptor);                                                                                         \
        return CRMSYNC_STATUS_OK;                                                                                          \
    }

#ifdef __cplusplus
}
#endif

#endif /* CRMSYNC_PLUGIN_H */
