// crmsync serve: schedules, webhooks, health and metrics until SIGINT/SIGTERM; SIGHUP reads
// the manifests and plugins again.
#include <cstdio>

#include "../serve/server.h"
#include "commands.h"

namespace crmsync::cli {

int serve(Context& ctx, const std::string& listen) {
    ServeOptions options;
    auto colon = listen.rfind(':');
    try {
        if (colon == std::string::npos) throw std::invalid_argument("no port");
        options.host = listen.substr(0, colon);
        options.port = std::stoi(listen.substr(colon + 1));
        if (options.host.empty() || options.port < 0 || options.port > 65535) throw std::invalid_argument("range");
    } catch (const std::exception&) {
        std::fprintf(stderr, "crmsync serve: --listen \"%s\" is not HOST:PORT (e.g. 127.0.0.1:8787)\n", listen.c_str());
        return kConfig;
    }
    const Diagnostics& diagnostics = ctx.catalog.diagnostics();
    auto reload = [&ctx, &diagnostics, environment = ctx.catalog.environment()] {
        return std::make_shared<Catalog>(environment, diagnostics, ctx.clock);
    };
    Server server(ctx.catalog, reload, ctx.clock, ctx.cancel, ctx.reload, diagnostics, options);
    if (auto started = server.start(); !started) {
        std::fprintf(stderr, "crmsync serve: %s\n", started.message().c_str());
        return store_exit(started);  // a database that is away: 3, for the service manager to try again
    }
    // The first line on stdout says where it listens (port 0 picks one): scripts read it.
    std::printf("listening on http://%s:%d\n", options.host.c_str(), server.port());
    std::fflush(stdout);
    server.run();
    diagnostics.info("stopped");
    return kOk;
}

}  // namespace crmsync::cli
