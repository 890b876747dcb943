// crmsync modules: what was discovered, whether each module's plugin verifies and loads,
// everything else that can be checked without the network, and how each last ran. Exit 2
// when any module or manifest has a problem.
#include <algorithm>
#include <cstdio>

#include "commands.h"
#include "table.h"

namespace crmsync::cli {
namespace {

bool healthy(const json::array& modules, const Catalog& catalog) {
    if (!catalog.manifests().problems.empty()) return false;
    for (const auto& m : modules)
        if (m.as_object().contains("problem")) return false;
    return true;
}

// The SIGNATURE column: who signed it, briefly; the whole story is in --json and refusals.
std::string signature_column(const SignatureCheck& s) {
    switch (s.state) {
        case SignatureCheck::State::none: return "unsigned";
        case SignatureCheck::State::trusted: return s.key_name.empty() ? "trusted " + s.key_id : "trusted (" + s.key_name + ")";
        case SignatureCheck::State::untrusted: return "untrusted " + s.key_id;
        case SignatureCheck::State::invalid: return "INVALID";
    }
    return "";
}

json::value signature_json(const Result<std::shared_ptr<LoadedPlugin>>& plugin) {
    if (!plugin) return nullptr;
    const auto& s = plugin.value()->signature();
    return json::object{{"state", s.state_name()}, {"key_id", s.key_id}, {"text", s.text()}};
}

}  // namespace

int modules(Context& ctx, bool as_json) {
    auto& catalog = ctx.catalog;
    auto store = catalog.open_store();
    json::array out;
    std::vector<Row> rows;
    for (const auto& m : catalog.manifests().modules) {
        auto plugin = catalog.describe(m.plugin, m.isolation);
        std::optional<RunRow> last;
        if (store) last = store.value()->last_run(m.name);
        std::string last_text = last ? last->status + " " + iso8601_utc(last->started_ms) : "never";
        std::string problem;
        for (const auto& p : catalog.offline_problems(m)) problem += (problem.empty() ? "" : "; ") + p;
        json::object o{
            {"module", m.name},
            {"plugin", m.plugin.id},
            {"version", plugin ? plugin.value()->version() : ""},
            {"abi", plugin ? "1." + std::to_string(plugin.value()->abi_minor()) : ""},
            {"enabled", m.enabled},
            {"verified", plugin.is_ok()},
            {"signature", signature_json(plugin)},
            {"isolation", m.isolation.text()},
            {"schedule", m.schedule.text()},
            {"crm", m.crm},
            {"manifest", m.manifest_path},
            {"description", plugin ? plugin.value()->description() : ""},
            {"last_run", last ? json::value(json::object{
                                    {"id", last->id}, {"status", last->status}, {"started", iso8601_utc(last->started_ms)}})
                              : json::value(nullptr)}};
        if (!problem.empty()) o["problem"] = problem;
        out.push_back(o);
        rows.push_back({m.name, m.plugin.id, plugin ? plugin.value()->version() : "-",
                        plugin ? "1." + std::to_string(plugin.value()->abi_minor()) : "-", m.enabled ? "yes" : "no",
                        plugin ? "yes" : "REFUSED", plugin ? signature_column(plugin.value()->signature()) : "-",
                        m.isolation.text(), m.schedule.text(), last_text});
    }
    // The CRM connections' plugins are plugins too: who signed them, how they run.
    json::array connections;
    std::vector<Row> connection_rows;
    for (const auto& c : catalog.manifests().connections) {
        auto plugin = catalog.describe(c.plugin, c.isolation);
        connections.push_back(json::object{{"connection", c.name},
                                           {"plugin", c.plugin.id},
                                           {"version", plugin ? plugin.value()->version() : ""},
                                           {"verified", plugin.is_ok()},
                                           {"signature", signature_json(plugin)},
                                           {"isolation", c.isolation.text()},
                                           {"manifest", c.manifest_path}});
        connection_rows.push_back({c.name, c.plugin.id, plugin ? plugin.value()->version() : "-", plugin ? "yes" : "REFUSED",
                                   plugin ? signature_column(plugin.value()->signature()) : "-", c.isolation.text()});
    }
    if (as_json) {
        json::array problems;
        for (const auto& p : catalog.manifests().problems) problems.emplace_back(p);
        std::printf("%s\n",
                    json::serialize(
                        json::object{{"modules", out},
                                     {"connections", connections},
                                     {"problems", problems},
                                     {"signatures", json::object{{"policy", catalog.manifests().trust.policy_name()},
                                                                 {"trust_manifest", catalog.manifests().trust.manifest_path}}}})
                        .c_str());
        return healthy(out, catalog) ? kOk : kConfig;
    }
    if (rows.empty()) std::printf("no modules in %s\n", catalog.environment().manifest_dirs.front().c_str());
    else
        std::printf("%s", render_table({"MODULE", "PLUGIN", "VERSION", "ABI", "ENABLED", "VERIFIED", "SIGNATURE", "ISOLATION",
                                        "SCHEDULE", "LAST RUN"},
                                       rows)
                              .c_str());
    if (!connection_rows.empty())
        std::printf(
            "\n%s",
            render_table({"CONNECTION", "PLUGIN", "VERSION", "VERIFIED", "SIGNATURE", "ISOLATION"}, connection_rows).c_str());
    // Each plugin the modules use, once, with the line its descriptor gives.
    std::vector<std::string> described;
    for (const auto& o : out) {
        std::string id(o.at("plugin").as_string()), text(o.at("description").as_string());
        if (text.empty() || std::find(described.begin(), described.end(), id) != described.end()) continue;
        if (described.empty()) std::printf("\n");
        described.push_back(id);
        std::printf("%-20s %s\n", id.c_str(), text.c_str());
    }
    for (const auto& o : out)
        if (auto* p = o.as_object().if_contains("problem"))
            std::printf("\n%s: %s\n", std::string(o.at("module").as_string()).c_str(), std::string(p->as_string()).c_str());
    for (const auto& p : catalog.manifests().problems) std::printf("\nskipped: %s\n", p.c_str());
    const auto& trust = catalog.manifests().trust;
    std::printf("\nplugin signatures: policy %s%s\n", std::string(trust.policy_name()).c_str(),
                trust.manifest_path.empty() ? " (no trust manifest)" : (" (" + trust.manifest_path + ")").c_str());
    return healthy(out, catalog) ? kOk : kConfig;
}

}  // namespace crmsync::cli
