#pragma once
// What both sides of the runner boundary do with a plugin's ABI structs the same way: name
// its entry points, read a struct the other side sized, negotiate, and fill an http response
// within the size the plugin declared. Header-only, used by the host (loader, instance) and
// by crmsync-plugin-runner alike; it knows only plugin.h and the wire's entry names.
#include <crmsync/plugin.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "wire.h"

namespace crmsync::abi {

// The entry points a descriptor has, as wire::Entry bits.
inline uint32_t entry_points(const crmsync_plugin& d) {
    using wire::Entry;
    return (d.create ? uint32_t(Entry::create) : 0) | (d.destroy ? uint32_t(Entry::destroy) : 0) |
           (d.authenticate ? uint32_t(Entry::authenticate) : 0) | (d.fetch ? uint32_t(Entry::fetch) : 0) |
           (d.map ? uint32_t(Entry::map) : 0) | (d.write ? uint32_t(Entry::write) : 0);
}

// The descriptor's function for a call on an instance (authenticate, fetch, map, write);
// nullptr for another entry or one the plugin lacks.
using EntryFunction = int32_t (*)(crmsync_instance*, crmsync_call*, const char*);
inline EntryFunction entry_function(const crmsync_plugin& d, wire::Entry entry) {
    switch (entry) {
        case wire::Entry::authenticate: return d.authenticate;
        case wire::Entry::fetch: return d.fetch;
        case wire::Entry::map: return d.map;
        case wire::Entry::write: return d.write;
        default: return nullptr;
    }
}

// A copy of a struct the other side sized: what both know is copied, the rest zeroed.
template <class T>
T sized_copy(const T* source) {
    T local;
    std::memset(&local, 0, sizeof local);
    uint32_t size = source->struct_size;
    std::memcpy(&local, source, std::min<size_t>(size, sizeof local));
    local.struct_size = size;
    return local;
}

// Calls a plugin's crmsync_negotiate as this host (ABI CRMSYNC_ABI_MAJOR.MINOR, services
// `host`); `rc` is what it returned.
inline crmsync_negotiation negotiate(crmsync_negotiate_fn fn, const crmsync_host_api* host, int32_t& rc) {
    crmsync_negotiation n;
    std::memset(&n, 0, sizeof n);
    n.struct_size = sizeof n;
    n.host_abi_major = CRMSYNC_ABI_MAJOR;
    n.host_abi_minor = CRMSYNC_ABI_MINOR;
    n.host = host;
    rc = fn(&n);
    return n;
}

// Answers an http request into the plugin's response struct, within its struct_size. Without
// `body` (no response arrived) only the size is set. The strings must outlive the call.
inline void fill_http_response(crmsync_http_response* response, int32_t status, const std::string* body,
                               const std::string* headers) {
    crmsync_http_response out;
    std::memset(&out, 0, sizeof out);
    out.struct_size = sizeof out;
    if (body) {
        out.status = status;
        out.body = body->c_str();
        out.body_size = body->size();
        out.headers = headers ? headers->c_str() : "";
    }
    uint32_t size = std::min<uint32_t>(response->struct_size, sizeof out);
    std::memcpy(response, &out, size);
    response->struct_size = size;
}

}  // namespace crmsync::abi
