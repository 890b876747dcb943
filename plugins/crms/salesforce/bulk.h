#pragma once
// Bulk API 2.0 upserts (see bulk.cpp).
#include <string>
#include <vector>

#include "client.h"

namespace salesforce {

// Upserts `ops` (all of `object`) on `external`; fills one result per operation, in order.
int32_t bulk_upsert(Client& client, const crmsync_host_api* host, crmsync_call* call, const std::string& object,
                    const std::string& external, const json::array& ops, std::vector<json::object>& results, std::string& error);

}  // namespace salesforce
