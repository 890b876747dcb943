#pragma once
// Bulk API 2.0 loads: upserts by an external id, updates by Id (see bulk.cpp).
#include <functional>
#include <string>
#include <vector>

#include "client.h"

namespace salesforce {

// Loads `ops` (all of `object`, all upserts or all updates): upserts on the `external` field
// by their key, updates by their id. Once the job has ended, hands `deliver` one result per
// operation, in order; nothing when it fails (then `error` says why).
int32_t bulk_load(Client& client, const crmsync_host_api* host, crmsync_call* call, const std::string& object,
                  const std::string& external, const json::array& ops, const std::function<void(const json::object&)>& deliver,
                  std::string& error);

}  // namespace salesforce
