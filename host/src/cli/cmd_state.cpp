// Changing what crmsync remembers, on an operator's word: reset, errors dismiss.
#include <cstdio>

#include "../process.h"
#include "commands.h"

namespace crmsync::cli {

int reset(Context& ctx, const std::string& module, const std::optional<std::string>& connection, bool yes) {
    const ModuleManifest* m = ctx.catalog.manifests().module(module);
    if (!m && !connection) {
        std::fprintf(stderr, "crmsync reset: no module %s (see `crmsync modules`); name --connection to reset a removed one\n",
                     module.c_str());
        return kConfig;
    }
    const StateScope scope{module, connection.value_or(m ? m->crm : "")};
    if (!yes) {
        std::fprintf(stderr,
                     "crmsync reset: this forgets what %s wrote through %s (links, cursor, open errors); the next run "
                     "reads the source from the beginning and writes every record again (upserts: nothing is "
                     "duplicated). Pass --yes to do it.\n",
                     module.c_str(), scope.connection.c_str());
        return kConfig;
    }
    auto store = store_or_report(ctx);
    if (!store) return store_exit(store.status());
    // Not under a running module's feet: hold its lease while resetting.
    const std::string holder = this_process_holder();
    auto lease = store.value()->acquire_lease(module, holder, ctx.clock.now_ms(), 60'000);
    if (!lease || !*lease) {
        std::fprintf(stderr, "crmsync reset: %s\n",
                     lease ? ("module " + module + " is running; try again when it has finished").c_str()
                           : lease.status().message().c_str());
        return kConfig;
    }
    auto removed = store.value()->reset(scope);
    (void)store.value()->release_lease(module, holder);
    if (!removed) {
        std::fprintf(stderr, "crmsync: %s\n", removed.status().message().c_str());
        return kConfig;
    }
    std::printf("reset %s on %s: %lld link(s) and the cursor forgotten; the next run starts from the beginning\n", module.c_str(),
                scope.connection.c_str(), static_cast<long long>(*removed));
    return kOk;
}

int dismiss(Context& ctx, const std::optional<std::string>& key, const std::optional<std::string>& module) {
    if (!key && !module) {
        std::fprintf(stderr, "crmsync errors dismiss: name a KEY (or source id), or --all MODULE\n");
        return kConfig;
    }
    auto store = store_or_report(ctx);
    if (!store) return store_exit(store.status());
    auto closed = store.value()->dismiss(module, key, ctx.clock.now_ms());
    if (!closed) {
        std::fprintf(stderr, "crmsync: %s\n", closed.status().message().c_str());
        return kConfig;
    }
    if (*closed == 0) {
        std::fprintf(stderr, "crmsync errors dismiss: no open error %s%s (see `crmsync errors`)\n",
                     key ? ("of " + *key).c_str() : "", module ? (" in " + *module).c_str() : "");
        return kConfig;
    }
    std::printf("dismissed %lld error(s); their records are not tried again (a newer version of one still syncs)\n",
                static_cast<long long>(*closed));
    return kOk;
}

}  // namespace crmsync::cli
