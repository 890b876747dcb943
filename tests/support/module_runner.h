#pragma once
// Runs one module of a test home through the real catalog, loader and pipeline, as
// `crmsync run` does, in this process: what the integration and end-to-end fixtures share.
#include <SQLiteCpp/SQLiteCpp.h>
#include <catch2/catch.hpp>

#include <atomic>
#include <string>

#include "catalog.h"
#include "pipeline.h"

namespace testing {

struct ModuleRunner {
    explicit ModuleRunner(std::string home_dir) : home(std::move(home_dir)) {}

    std::string home;
    crmsync::SystemClock clock;
    const crmsync::Clock* time = &clock;  // point at a ManualClock to move time by hand
    std::atomic<bool> cancel{false};
    crmsync::Diagnostics quiet{nullptr, crmsync::Level::error};

    // The home's manifests, the built plugins and the test plugins.
    crmsync::Environment environment() const {
        crmsync::Environment e;
        e.home = home;
        e.manifest_dirs = {home + "/manifests"};
        e.plugin_dirs = {CRMSYNC_PLUGIN_DIR, CRMSYNC_TEST_PLUGIN_DIR};
        return e;
    }

    crmsync::RunReport run(const std::string& module, crmsync::RunOptions options = {}) {
        crmsync::Catalog catalog(environment(), quiet, *time);
        auto instances = catalog.instantiate_module(module);
        INFO(instances.status().message());
        REQUIRE(instances);
        auto store = catalog.open_store();
        REQUIRE(store);
        auto& mi = instances.value();
        crmsync::Pipeline pipeline(*store.value(), crmsync::ModuleBinding{*mi.module, *mi.connection, *mi.source, *mi.crm}, *time,
                                   cancel, quiet);
        if (options.lease_holder.empty()) options.lease_holder = "test";
        return pipeline.run(options);
    }

    // A day passes for the CRM's API budget as the home's state remembers it: the readings
    // runs kept (StateStore::note_api_usage) are a day old, as at the next day's first run.
    // Tests that give the CRM a new day's budget call this beside it.
    void a_day_passes_for_the_api_budget() const {
        SQLite::Database state(home + "/var/state.db", SQLite::OPEN_READWRITE, 10'000);
        state.exec("UPDATE api_budget SET at_ms = at_ms - 86400000");
    }
};

}  // namespace testing
