/* Compiled as C99 by a test: the ABI header must be plain C and warning-free. */
#include <crmsync/plugin.h>

static int32_t negotiate(crmsync_negotiation* n) {
    n->plugin_abi_major = CRMSYNC_ABI_MAJOR;
    n->plugin_abi_minor = CRMSYNC_ABI_MINOR;
    return CRMSYNC_STATUS_OK;
}

static const crmsync_plugin kPlugin = {
    sizeof(crmsync_plugin), "c-plugin", "1.0.0", "a plugin in C", "{}", CRMSYNC_CAP_FETCH, NULL, NULL, NULL, NULL, NULL, NULL};
CRMSYNC_DEFINE_ENTRY(kPlugin)

int main(void) {
    crmsync_negotiation n = {0};
    crmsync_http_request request = {0};
    crmsync_http_response response = {0};
    crmsync_host_api host = {0};
    crmsync_plugin plugin = {0};
    crmsync_negotiate_fn fn = negotiate;
    n.struct_size = sizeof n;
    request.struct_size = sizeof request;
    response.struct_size = sizeof response;
    host.struct_size = sizeof host;
    plugin.struct_size = sizeof plugin;
    plugin.capabilities = CRMSYNC_CAP_FETCH | CRMSYNC_CAP_MAP | CRMSYNC_CAP_WRITE | CRMSYNC_CAP_THREADSAFE;
    return fn(&n) == CRMSYNC_STATUS_OK && crmsync_negotiate(&n) == CRMSYNC_STATUS_OK && host.log == NULL && response.body == NULL
               ? 0
               : 1;
}
