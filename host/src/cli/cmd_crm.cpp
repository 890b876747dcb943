// crmsync crm query: ask the CRM through its plugin, the same on mock-crm and Salesforce.
#include <cstdio>

#include "commands.h"
#include "table.h"

namespace crmsync::cli {
namespace {
void flatten(const json::object& o, const std::string& prefix, std::vector<std::pair<std::string, std::string>>& out) {
    for (const auto& [k, v] : o) {
        if (k == "attributes") continue;
        std::string name = prefix + std::string(k);
        if (v.is_object()) flatten(v.get_object(), name + ".", out);
        else out.emplace_back(name, v.is_null() ? "" : v.is_array() ? json::serialize(v) : scalar_text(v));
    }
}
}  // namespace

int crm_query(Context& ctx, const std::string& soql, const std::optional<std::string>& crm, bool as_json) {
    std::string name;
    if (crm) name = *crm;
    else if (ctx.catalog.manifests().connections.size() == 1) name = ctx.catalog.manifests().connections.front().name;
    else {
        std::string names;
        for (const auto& c : ctx.catalog.manifests().connections) names += (names.empty() ? "" : ", ") + c.name;
        if (names.empty())
            std::fprintf(stderr, "crmsync: no CRM connection is configured in %s\n",
                         ctx.catalog.environment().manifest_dirs.front().c_str());
        else std::fprintf(stderr, "crmsync: choose a CRM connection with --crm NAME: %s\n", names.c_str());
        return kConfig;
    }
    auto instance = ctx.catalog.instantiate_connection(name);
    if (!instance) {
        std::fprintf(stderr, "crmsync: %s\n", instance.status().message().c_str());
        return kConfig;
    }
    auto& crm_plugin = *instance.value();
    const auto* connection = ctx.catalog.manifests().connection(name);
    auto credentials = resolve_credentials(connection->credentials);
    if (!credentials) {
        std::fprintf(stderr, "crmsync: %s\n", credentials.status().message().c_str());
        return kConfig;
    }
    crm_plugin.services().set_secrets(*credentials);
    if (auto auth = crm_plugin.authenticate(*credentials); !auth.ok()) {
        std::fprintf(stderr, "crmsync: %s could not authenticate: %s\n", name.c_str(), auth.message.c_str());
        return kUnreachable;
    }
    json::array records;
    std::optional<int64_t> count;
    auto outcome = crm_plugin.fetch(json::object{{"type", "query"}, {"soql", soql}}, [&](json::value&& item) -> int32_t {
        auto* o = item.if_object();
        if (!o) return CRMSYNC_STATUS_ERROR;
        if (find_string(*o, "type") == "count") count = find_int(*o, "count");
        else if (auto* r = find_object(*o, "record")) records.push_back(*r);
        return CRMSYNC_STATUS_OK;
    });
    if (!outcome.ok()) {
        std::fprintf(stderr, "crmsync: query failed: %s\n", outcome.message.c_str());
        return outcome.status == CRMSYNC_STATUS_ERROR ? kConfig : kUnreachable;
    }
    if (as_json) {
        std::printf("%s\n", count ? json::serialize(json::object{{"totalSize", *count}}).c_str()
                                  : json::serialize(json::object{{"totalSize", records.size()}, {"records", records}}).c_str());
        return kOk;
    }
    if (count) {
        std::printf("%lld\n", static_cast<long long>(*count));
        return kOk;
    }
    Row header;
    std::vector<Row> rows;
    for (const auto& r : records) {
        std::vector<std::pair<std::string, std::string>> cells;
        flatten(r.as_object(), "", cells);
        if (header.empty())
            for (const auto& [k, v] : cells) header.push_back(k);
        Row row;
        for (const auto& [k, v] : cells) row.push_back(v);
        rows.push_back(row);
    }
    if (!rows.empty()) std::printf("%s", render_table(header, rows).c_str());
    std::printf("(%zu record%s)\n", rows.size(), rows.size() == 1 ? "" : "s");
    return kOk;
}

}  // namespace crmsync::cli
