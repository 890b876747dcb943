#pragma once
// What a module whose plugin reads the CRM (CRMSYNC_CAP_READS_CRM, ABI 1.1) reads: asked of
// the plugin (`crm_read`) and checked against the CRM's describe — every field readable by
// the connection's user, relationship paths only towards one record (many→one) — before
// anything is read. The run (pipeline_crm_read.cpp) and `crmsync check` share it.
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "plugin_call.h"

namespace crmsync {

struct CrmRead {
    std::string object;
    std::vector<std::string> fields;
    // CRM picklist field -> the destination's select field, and the values the CRM has.
    std::vector<std::pair<std::string, std::string>> options;
    std::map<std::string, std::vector<std::string>> option_values;
};

struct CrmReadParties {
    PluginInstance& source;  // the module's plugin
    const ModuleManifest& module;
    PluginInstance& crm;
    const ConnectionManifest& connection;
    const PluginCaller& caller;
};

// Fills `out`, or answers why the run cannot go on: a configuration problem (failed, the
// message naming the manifest and the field) or the CRM that could not be reached.
std::optional<RunStop> read_from_crm(const CrmReadParties& parties, RunCounts& counts, CrmRead& out);

}  // namespace crmsync
