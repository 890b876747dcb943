// crmsync: the operator's command line. Parses flags (CLI11), builds the catalog for the
// chosen home, and hands off to one command. SIGINT/SIGTERM ask the running command to
// finish its batch and stop; a second signal ends the process at once. Under serve, SIGHUP
// reads the manifests again.
#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <filesystem>

#include "../process.h"
#include "../schema.h"
#include "cli_docs.h"
#include "commands.h"

namespace {

// What `crmsync --help` and the man page end with.
const char* const kFooter = R"(Environment:
  CRMSYNC_HOME            the home (manifests/, var/) when --home is not given
  CRMSYNC_MANIFEST_PATH   manifest folders (a colon list) instead of HOME/manifests
  CRMSYNC_PLUGIN_PATH     plugin folders searched before the shipped ones
  CRMSYNC_PLUGIN_SYSTEM_PATH  replaces the shipped plugin folder (empty: none)
  CRMSYNC_LOG             debug, info, warn or error (default warn; serve: info)

Exit status:
  0  success (a dry run too)
  1  the run had record errors
  2  usage or configuration error (a bad manifest, an unset credential, an unknown module)
  3  the CRM or source could not be reached or refused us, or the module runs elsewhere
  4  stopped by Ctrl-C or SIGTERM (what was saved stays; the next run goes on)

Examples:
  crmsync modules --home /var/lib/crmsync
  crmsync check --all
  crmsync run cs-timeline --dry-run
  crmsync errors cs-timeline --format csv > errors.csv
  crmsync crm query "SELECT Id, Subject FROM Task" --crm salesforce
  crmsync help run)";

// The first word of the command line that is a command (skipping options and their values).
std::optional<std::string> command_word(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
        std::string word = argv[i];
        if (word == "--home" || word == "--manifests") {
            ++i;
            continue;
        }
        if (word.empty() || word[0] == '-') continue;
        return word;
    }
    return std::nullopt;
}
// The process-wide state a signal handler can reach: nothing else.
std::atomic<bool> g_cancel{false};
std::atomic<bool> g_reload{false};

extern "C" void on_signal(int signal) {
    g_cancel.store(true);
    std::signal(signal, SIG_DFL);
}

extern "C" void on_hangup(int) { g_reload.store(true); }

std::string executable_dir(const char* argv0) {
    std::error_code ec;
    auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (ec) self = std::filesystem::absolute(argv0, ec);
    return self.parent_path().string();
}
}  // namespace

int main(int argc, char** argv) {
    using namespace crmsync;
    restart_with_heap_on_huge_pages(argv);
    keep_freed_memory();
    CLI::App app{"crmsync — keeps a CRM in step with the tools around it"};
    app.footer(kFooter);
    app.require_subcommand(1);
    app.fallthrough();  // --home and --manifests work after the subcommand too
    std::optional<std::string> home, manifests;
    app.add_option("--home", home, "folder with manifests/ and var/ (default $CRMSYNC_HOME, else the current folder)");
    app.add_option("--manifests", manifests, "manifest folder (default $CRMSYNC_MANIFEST_PATH, else HOME/manifests)");

    // --version: the host, its ABI, and the plugins it finds (without loading any).
    app.set_version_flag(
        "--version",
        [argv] {
            auto env = resolve_environment(std::nullopt, std::nullopt, executable_dir(argv[0]));
            std::string text = std::string("crmsync ") + CRMSYNC_VERSION + " (plugin ABI " + std::to_string(CRMSYNC_ABI_MAJOR) +
                               "." + std::to_string(CRMSYNC_ABI_MINOR) + ")\nplugins:";
            Diagnostics quiet(nullptr, Level::error);
            PluginLoader loader(env.plugin_dirs, quiet);
            for (const auto& c : loader.candidates()) {
                if (!c.manifest) {
                    text += "\n  " + c.manifest_path + ": " + c.problem.message();
                    continue;
                }
                const auto& m = *c.manifest;
                text += "\n  " + m.id + " " + m.version.text() + " (ABI " + std::to_string(m.abi_major) + "." +
                        std::to_string(m.abi_minor) + ")  " + m.library_path;
            }
            if (loader.candidates().empty()) text += " none found (in CRMSYNC_PLUGIN_PATH, or lib/crmsync/plugins beside bin/)";
            return text;
        },
        "the version, the plugin ABI and the plugins found");

    bool as_json = false;
    auto* modules =
        app.add_subcommand("modules", "discovered modules: plugin, version, ABI, enabled, verified, schedule, last run");
    modules->add_flag("--json", as_json, "JSON output");

    std::string module;
    auto* check = app.add_subcommand("check", "load, authenticate, describe what MODULE needs; print every problem");
    check->add_option("MODULE", module, "module name");
    bool check_all = false;
    check->add_flag("--all", check_all, "every enabled module");
    check->add_flag("--json", as_json, "one JSON document: each module's problems and notes");

    cli::RunFlags run_flags;
    auto* run = app.add_subcommand("run", "one run now of MODULE or of every enabled module (--all)");
    run->add_option("MODULE", run_flags.module, "module name");
    run->add_flag("--all", run_flags.all, "every enabled module");
    run->add_flag("--dry-run", run_flags.dry_run, "do everything but the writes; print what would happen");
    run->add_flag("--full", run_flags.full, "start from the beginning instead of the saved cursor");
    // Counts from the command line have a range that reads well in the error message.
    const auto count = CLI::Range(int64_t{1}, int64_t{1'000'000'000}, "a count from 1 to 1000000000");
    run->add_option("--limit", run_flags.limit, "stop after N source records")->check(count);
    run->add_flag("--json", run_flags.as_json, "one JSON document with each module's run instead of summary lines");

    std::optional<std::string> runs_module;
    int last = 20;
    auto* runs = app.add_subcommand("runs", "run history");
    runs->add_option("MODULE", runs_module, "only this module");
    const auto how_many = CLI::Range(1, 100'000, "a count from 1 to 100000");
    runs->add_option("--last", last, "how many (default 20)")->check(how_many);
    runs->add_flag("--json", as_json, "JSON output");

    int64_t run_id = 0;
    auto* log = app.add_subcommand("log", "the whole log of one run");
    log->add_option("RUN_ID", run_id, "run id (see `crmsync runs`)")->required();
    log->add_flag("--json", as_json, "JSON output");

    std::optional<std::string> errors_module;
    std::string since = "30d", format = "table";
    auto* errors = app.add_subcommand("errors", "the error log (kept 365 days)");
    errors->add_option("MODULE", errors_module, "only this module");
    errors->add_option("--since", since, "how far back, e.g. 30d, 24h (default 30d)");
    errors->add_option("--format", format, "table, csv or json")->check(CLI::IsMember({"table", "csv", "json"}));
    errors->add_flag_callback(
        "--json", [&format] { format = "json"; }, "JSON output (as --format json)");
    bool errors_all = false;
    errors->add_flag("--all", errors_all, "closed errors too (records that landed later, dismissed): the history");
    std::string unmatched_module;
    std::optional<int64_t> unmatched_run;
    auto* unmatched = app.add_subcommand("unmatched", "source rows whose match keys found no CRM record, to export and fix");
    unmatched->add_option("MODULE", unmatched_module, "the module")->required();
    unmatched->add_option("--run", unmatched_run, "this run (default: the module's last)")->check(count);
    unmatched->add_option("--format", format, "table, csv or json")->check(CLI::IsMember({"table", "csv", "json"}));
    std::optional<std::string> dismiss_key, dismiss_module;
    auto* dismiss = errors->add_subcommand("dismiss", "give up on failed records: close their errors, stop trying them again");
    dismiss->add_option("KEY", dismiss_key, "the record's key or source id (see `crmsync errors`)");
    dismiss->add_option("--module", dismiss_module, "only this module's");
    dismiss->add_option("--all", dismiss_module, "every open error of this MODULE");

    std::string links_module;
    auto* links = app.add_subcommand("links", "what a module's source records became in the CRM");
    links->add_option("MODULE", links_module, "module name")->required();
    links->add_option("--last", last, "how many (default 20)")->check(how_many);
    links->add_flag("--json", as_json, "JSON output");
    std::optional<std::string> state_connection;
    links->add_option("--connection", state_connection, "only what went through this CRM connection");

    std::string reset_module;
    bool yes = false;
    auto* reset = app.add_subcommand(
        "reset", "forget what MODULE wrote through its CRM connection (links, cursor, open errors): the next run starts afresh");
    reset->add_option("MODULE", reset_module, "module name")->required();
    reset->add_option("--connection", state_connection, "the connection to forget (default: the module's crm)");
    reset->add_flag("--yes", yes, "do it (without it, say what would be forgotten)");

    std::string listen = "127.0.0.1:8787";
    auto* serve =
        app.add_subcommand("serve", "run modules on their schedules, take webhooks (POST /hooks/MODULE), /healthz, /metrics");
    serve->add_option("--listen", listen, "HOST:PORT (default 127.0.0.1:8787; port 0 picks a free one)");
    LogFormat log_format = LogFormat::text;
    serve
        ->add_option("--log-format", log_format,
                     "text (UTC time, level, message) or json (one object per line); level from CRMSYNC_LOG, default info")
        ->transform(
            CLI::CheckedTransformer(std::map<std::string, LogFormat>{{"text", LogFormat::text}, {"json", LogFormat::json}}));

    std::string connect_name;
    int connect_port = 1717;
    int64_t connect_timeout = 300;
    auto* connect = app.add_subcommand(
        "connect", "sign a CRM connection in through a browser once and store the token it gives (e.g. a refresh token)");
    connect->add_option("CONNECTION", connect_name, "the connection's name")->required();
    connect
        ->add_option("--port", connect_port,
                     "the loopback port of the callback URL http://localhost:PORT/callback (default 1717)")
        ->check(CLI::Range(0, 65535, "a port from 0 to 65535"));
    connect->add_option("--timeout", connect_timeout, "seconds to wait for the browser (default 300)")
        ->check(CLI::Range(int64_t{10}, int64_t{3600}, "10 to 3600 seconds"));

    std::string soql;
    std::optional<std::string> crm_name;
    auto* crm = app.add_subcommand("crm", "ask the CRM through its plugin");
    crm->require_subcommand(1);
    crm->fallthrough();
    auto* query = crm->add_subcommand("query", "run a SOQL query");
    query->add_option("SOQL", soql, "the query")->required();
    query->add_option("--crm", crm_name, "connection name (needed when there are several)");
    query->add_flag("--json", as_json, "JSON output");

    std::vector<std::string> help_topic;
    auto* help = app.add_subcommand("help", "help on crmsync or on one command (e.g. crmsync help errors dismiss)");
    help->add_option("COMMAND", help_topic, "the command");
    std::string shell;
    auto* completion = app.add_subcommand("completion", "print the shell completion script (bash or zsh)");
    completion->add_option("SHELL", shell, "bash or zsh")->required()->check(CLI::IsMember({"bash", "zsh"}));
    auto* man = app.add_subcommand("man", "print the manual page (roff): crmsync man | man -l -");
    // Every command takes --home and --manifests (they are the app's, read after the command too).
    std::function<void(CLI::App&)> add_footer = [&](CLI::App& parent) {
        for (auto* command : parent.get_subcommands({})) {
            command->footer(
                "Also: --home DIR (default $CRMSYNC_HOME, else the current folder), --manifests DIR.\n"
                "Exit status and environment: crmsync --help.");
            add_footer(*command);
        }
    };
    add_footer(app);

    // A mistyped command is named with the one it probably meant.
    if (auto word = command_word(argc, argv)) {
        std::vector<std::string> names;
        for (const auto* command : app.get_subcommands({})) names.push_back(command->get_name());
        if (std::find(names.begin(), names.end(), *word) == names.end()) {
            auto near = did_you_mean(*word, names);
            std::fprintf(stderr, "crmsync: \"%s\" is not a command%s; see crmsync help\n", word->c_str(),
                         near ? (" (did you mean \"" + *near + "\"?)").c_str() : "");
            return cli::kConfig;
        }
    }
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        int code = app.exit(e);
        return code == 0 ? 0 : cli::kConfig;
    }
    if (help->parsed()) {
        const CLI::App* topic = &app;
        std::string name = "crmsync";
        for (const auto& word : help_topic) {
            auto found = topic->get_subcommands([&](const CLI::App* c) { return c->get_name() == word; });
            if (found.empty()) {
                std::fprintf(stderr, "crmsync help: no command \"%s\"; see crmsync help\n", word.c_str());
                return cli::kConfig;
            }
            topic = found.front();
            name += " " + word;
        }
        std::printf("%s", app.get_formatter()->make_help(topic, name, CLI::AppFormatMode::Normal).c_str());
        return cli::kOk;
    }
    if (completion->parsed()) {
        std::printf("%s", shell == "bash" ? cli::bash_completion(app).c_str() : cli::zsh_completion(app).c_str());
        return cli::kOk;
    }
    if (man->parsed()) {
        std::printf("%s", cli::man_page(app, CRMSYNC_VERSION, kFooter).c_str());
        return cli::kOk;
    }
    if (run->parsed() && run_flags.all == run_flags.module.has_value()) {
        std::fprintf(stderr, "crmsync run: name one MODULE or pass --all\n");
        return cli::kConfig;
    }
    if (check->parsed() && check_all == !module.empty()) {
        std::fprintf(stderr, "crmsync check: name one MODULE or pass --all\n");
        return cli::kConfig;
    }

    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    // serve logs as a service does: timestamped, at info unless CRMSYNC_LOG says otherwise.
    if (serve->parsed()) std::signal(SIGHUP, on_hangup);
    auto diagnostics = serve->parsed() ? Diagnostics::to_stderr(Diagnostics::level_from_environment(Level::info), log_format)
                                       : Diagnostics::from_environment();
    SystemClock clock;
    try {
        auto environment = resolve_environment(home, manifests, executable_dir(argv[0]));
        if (std::error_code ec; !std::filesystem::is_directory(environment.home, ec)) {
            std::fprintf(stderr, "crmsync: home %s does not exist (check --home or CRMSYNC_HOME)\n", environment.home.c_str());
            return cli::kConfig;
        }
        Catalog catalog(std::move(environment), diagnostics, clock);
        cli::Context ctx{catalog, clock, g_cancel, g_reload};
        // A module named on the command line must exist: declared by a manifest, or (its
        // manifest since removed) with a history to read.
        auto known = [&](const std::optional<std::string>& name) {
            if (!name) return true;
            auto found = catalog.module_exists(*name);
            if (found) return true;
            std::error_code ec;
            if (catalog.manifests().state.postgres || std::filesystem::exists(catalog.environment().state_path(), ec))
                if (auto store = catalog.open_store(); store && store.value()->last_run(*name)) return true;
            std::fprintf(stderr, "crmsync: %s\n", found.message().c_str());
            return false;
        };
        for (const auto& [command, name] : {std::pair{runs, runs_module},
                                            {errors, errors_module},
                                            {dismiss, dismiss_module},
                                            {unmatched, std::optional(unmatched_module)},
                                            {links, std::optional(links_module)},
                                            {reset, std::optional(reset_module)}})
            if (command->parsed() && !known(name)) return cli::kConfig;
        if (modules->parsed()) return cli::modules(ctx, as_json);
        if (check->parsed()) return cli::check_modules(ctx, module, check_all, as_json);
        if (run->parsed()) return cli::run(ctx, run_flags);
        if (runs->parsed()) return cli::runs(ctx, runs_module, last, as_json);
        if (log->parsed()) return cli::log(ctx, run_id, as_json);
        if (dismiss->parsed()) return cli::dismiss(ctx, dismiss_key, dismiss_module);
        if (errors->parsed()) return cli::errors(ctx, errors_module, since, format, errors_all);
        if (unmatched->parsed()) return cli::unmatched(ctx, unmatched_module, unmatched_run, format);
        if (links->parsed()) return cli::links(ctx, links_module, state_connection, last, as_json);
        if (reset->parsed()) return cli::reset(ctx, reset_module, state_connection, yes);
        if (query->parsed()) return cli::crm_query(ctx, soql, crm_name, as_json);
        if (serve->parsed()) return cli::serve(ctx, listen);
        if (connect->parsed()) return cli::connect(ctx, connect_name, connect_port, connect_timeout);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "crmsync: %s\n", e.what());
        return cli::kUnreachable;
    }
    return cli::kConfig;
}
