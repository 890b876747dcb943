// Every way loading a plugin can fail, each with the message an operator needs.
#include <catch2/catch.hpp>
#include <fstream>
#include <atomic>
#include <thread>

#include "instance.h"
#include "digest.h"
#include "loader.h"
#include "test_support.h"

using namespace crmsync;
using testing::TempDir;
namespace fs = std::filesystem;

namespace {
const Diagnostics quiet(nullptr, Level::error);
const std::string kTestPlugins = CRMSYNC_TEST_PLUGIN_DIR;

// A private copy of one built test plugin, to damage without touching the build.
std::string copy_plugin(const TempDir& dir, const std::string& id) {
    fs::copy(kTestPlugins + "/" + id, dir.path() / id, fs::copy_options::recursive);
    return dir / (id + "/" + id + ".plugin.json");
}

std::string load_error(PluginLoader& loader, const std::string& id) {
    auto r = loader.load(id, VersionRange::parse("*").value());
    REQUIRE_FALSE(r);
    return r.status().message();
}

std::unique_ptr<HostServices> services() { return std::make_unique<HostServices>(); }
}  // namespace

TEST_CASE("loader: a manifest that is not JSON is refused with its line and column") {
    TempDir dir;
    testing::write_file(dir / "broken/broken.plugin.json", "{\n  \"id\": \"broken\",\n  oops\n}");
    PluginLoader loader({dir.str()}, quiet);
    REQUIRE(loader.candidates().size() == 1);
    CHECK_THAT(loader.candidates()[0].problem.message(),
               Catch::Contains("broken.plugin.json: not valid JSON at line 3, column 3"));
}

TEST_CASE("loader: a manifest missing a field names the field") {
    TempDir dir;
    testing::write_file(dir / "p/p.plugin.json",
                        R"({"file_format_version": "1.0", "id": "p", "version": "1.0.0", "library_path": "./p.so", "sha256": ")" +
                            std::string(64, 'a') + "\"}");
    PluginLoader loader({dir.str()}, quiet);
    CHECK_THAT(loader.candidates().at(0).problem.message(), Catch::Contains("\"abi\" is missing"));
}

TEST_CASE("loader: a library that is not there is refused before anything is opened") {
    TempDir dir;
    auto manifest = copy_plugin(dir, "test-source");
    fs::remove(dir.path() / "test-source/test-source.so");
    PluginLoader loader({dir.str()}, quiet);
    CHECK_THAT(load_error(loader, "test-source"),
               Catch::Contains("test-source.so not found") && Catch::Contains("reinstall the plugin or fix \"library_path\""));
}

TEST_CASE("loader: one flipped byte in the library fails the hash check, naming both digests") {
    TempDir dir;
    copy_plugin(dir, "test-source");
    auto lib = dir / "test-source/test-source.so";
    std::string bytes = testing::read_file(lib);
    bytes[bytes.size() / 2] ^= 0x01;
    testing::write_file(lib, bytes);
    PluginLoader loader({dir.str()}, quiet);
    CHECK_THAT(load_error(loader, "test-source"), Catch::Contains("sha256 of") && Catch::Contains("but the manifest says") &&
                                                      Catch::Contains("rebuild or reinstall"));
}

// Rewrites a copied plugin's manifest so that its sha256 matches `bytes` (as whoever ships
// the plugin could).
void pin(const std::string& manifest, const std::string& bytes) {
    auto text = testing::read_file(manifest);
    auto at = text.find("\"sha256\": \"") + 11;
    text.replace(at, 64, sha256_hex(bytes));
    testing::write_file(manifest, text);
}

TEST_CASE("loader: a truncated library with a matching hash is refused, not opened") {
    // Cut inside its loadable segments: opened, its pages past the end would be SIGBUS.
    for (size_t keep : {size_t{0}, size_t{100}, size_t{8192}}) {
        TempDir dir;
        auto manifest = copy_plugin(dir, "test-source");
        auto bytes = testing::read_file(dir / "test-source/test-source.so").substr(0, keep);
        testing::write_file(dir / "test-source/test-source.so", bytes);
        pin(manifest, bytes);
        PluginLoader loader({dir.str()}, quiet);
        CHECK_THAT(load_error(loader, "test-source"), Catch::Contains("test-source.so is ") &&
                                                          Catch::Contains("reinstall the plugin") &&
                                                          (Catch::Contains("truncated") || Catch::Contains("not an ELF file")));
    }
}

TEST_CASE("loader: a library swapped in after the hash check is never opened, only the checked bytes are") {
    // Two files take turns at the plugin's path: the verified library, and another that
    // leaves a mark when opened. Whatever the timing, only verified bytes reach dlopen.
    TempDir dir;
    copy_plugin(dir, "test-source");
    const std::string lib = dir / "test-source/test-source.so";
    const std::string good = dir / "good.so", evil = dir / "evil.so";
    fs::copy_file(lib, good);
    fs::copy_file(kTestPlugins + "/marks-when-opened/marks-when-opened.so", evil);
    const std::string mark = dir / "mark";
    setenv("CRMSYNC_TEST_CONSTRUCTOR_MARK", mark.c_str(), 1);
    std::atomic<bool> done{false};
    std::thread swapper([&] {
        for (int i = 0; !done; ++i) {
            const std::string next = dir / ("next" + std::to_string(i % 2));
            fs::copy_file(i % 2 ? evil : good, next, fs::copy_options::overwrite_existing);
            fs::rename(next, lib);  // atomic: the path is always one whole file or the other
        }
    });
    int loaded = 0, refused = 0;
    for (int attempt = 0; attempt < 200; ++attempt) {
        PluginLoader loader({dir.str()}, quiet);
        auto plugin = loader.load("test-source", VersionRange::parse("*").value());
        if (plugin) {
            ++loaded;
            CHECK(plugin.value()->id() == "test-source");
        } else {
            ++refused;
        }
    }
    done = true;
    swapper.join();
    unsetenv("CRMSYNC_TEST_CONSTRUCTOR_MARK");
    INFO("loaded " << loaded << ", refused " << refused);
    CHECK(loaded + refused == 200);
    CHECK_FALSE(fs::exists(mark));
}

TEST_CASE("loader: a missing dependency shows the dynamic linker's own words") {
    PluginLoader loader({kTestPlugins}, quiet);
    CHECK_THAT(load_error(loader, "bad-dependency"), Catch::Contains("libcrmsync_test_dependency.so") &&
                                                         Catch::Contains("cannot open shared object file") &&
                                                         Catch::Contains("ldd"));
}

TEST_CASE("loader: a library without crmsync_negotiate is not a plugin") {
    PluginLoader loader({kTestPlugins}, quiet);
    CHECK_THAT(load_error(loader, "bad-no-entry"), Catch::Contains("does not export crmsync_negotiate"));
}

TEST_CASE("loader: ABI major mismatch and a newer plugin minor are refused with both versions") {
    PluginLoader loader({kTestPlugins}, quiet);
    CHECK_THAT(load_error(loader, "bad-abi-major"),
               Catch::Contains("plugin speaks ABI 2.") && Catch::Contains("host speaks ABI 1.1"));
    CHECK_THAT(load_error(loader, "bad-abi-minor"),
               Catch::Contains("plugin speaks ABI 1.99") && Catch::Contains("newer than host ABI 1.1"));

    TempDir dir;
    auto manifest = copy_plugin(dir, "test-source");
    auto text = testing::read_file(manifest);
    text.replace(text.find("\"major\": 1"), 10, "\"major\": 3");
    testing::write_file(manifest, text);
    PluginLoader declared({dir.str()}, quiet);
    CHECK_THAT(load_error(declared, "test-source"), Catch::Contains("plugin ABI 3.1 does not match host ABI 1.1"));
}

TEST_CASE("loader: a plugin built for ABI 1.0 loads and runs under the 1.1 host") {
    PluginLoader loader({kTestPlugins}, quiet);
    auto plugin = loader.load("abi-1-0", VersionRange::parse("^1").value());
    INFO((plugin ? "" : plugin.status().message()));
    REQUIRE(plugin);
    CHECK(plugin.value()->abi_minor() == 0);
    auto instance = PluginInstance::create(plugin.value(), json::object{{"count", 3}}, services(), "manifests/m.json");
    REQUIRE(instance);
    int records = 0;
    auto fetched = instance.value()->fetch(json::object{{"type", "records"}, {"cursor", nullptr}, {"full", false}, {"limit", 10}},
                                           [&](json::value&& item) {
                                               if (item.at("type") == "record") ++records;
                                               return int32_t{0};
                                           });
    CHECK(fetched.ok());
    CHECK(records == 3);
}

TEST_CASE("loader: a plugin whose create fails reports its own message") {
    PluginLoader loader({kTestPlugins}, quiet);
    auto plugin = loader.load("bad-create", VersionRange::parse("^1").value());
    REQUIRE(plugin);
    auto instance = PluginInstance::create(plugin.value(), {}, services(), "manifests/m.json");
    REQUIRE_FALSE(instance);
    CHECK_THAT(instance.status().message(), Catch::StartsWith("manifests/m.json: plugin bad-create could not be created: ") &&
                                                Catch::Contains("region eu-9 does not exist"));
}

TEST_CASE("loader: config that does not match the plugin's schema names the JSON path") {
    PluginLoader loader({kTestPlugins}, quiet);
    auto plugin = loader.load("test-source", VersionRange::parse("^1").value());
    REQUIRE(plugin);
    auto instance = PluginInstance::create(plugin.value(), json::object{{"count", "ten"}}, services(), "manifests/m.json");
    REQUIRE_FALSE(instance);
    CHECK_THAT(instance.status().message(), Catch::Contains("\"config.count\"") && Catch::Contains("schema"));
    auto extra = PluginInstance::create(plugin.value(), json::object{{"colour", "red"}}, services(), "manifests/m.json");
    REQUIRE_FALSE(extra);
    CHECK_THAT(extra.status().message(), Catch::Contains("colour"));
}

TEST_CASE("loader: bad plugins beside good ones never stop the good ones") {
    PluginLoader loader({kTestPlugins, CRMSYNC_PLUGIN_DIR}, quiet);
    for (const char* bad : {"bad-no-entry", "bad-abi-major", "bad-dependency"}) load_error(loader, bad);
    auto good = loader.load("mock-crm", VersionRange::parse("^1.0").value());
    REQUIRE(good);
    CHECK(good.value()->id() == "mock-crm");
    CHECK(good.value()->capabilities() == (CRMSYNC_CAP_FETCH | CRMSYNC_CAP_WRITE));
}

TEST_CASE("loader: the highest version inside the range is chosen") {
    TempDir dir;
    copy_plugin(dir, "test-source");
    PluginLoader loader({dir.str()}, quiet);
    CHECK(loader.load("test-source", VersionRange::parse(">=1.0.0 <2.0.0").value()));
    CHECK_THAT(load_error(loader, "nothing-like-it"), Catch::Contains("is not installed"));
    auto outside = loader.load("test-source", VersionRange::parse("^2.0").value());
    REQUIRE_FALSE(outside);
    CHECK_THAT(outside.status().message(), Catch::Contains("version 1.0.0 is outside \"^2.0\""));
}

// ---- signatures and the trust policy ------------------------------------------------------

namespace {
const std::string kTestKey = std::string(CRMSYNC_SOURCE_DIR) + "/packaging/signing/crmsync-test.pub";

// The trust manifest a home would hold, parsed as the catalog parses it.
TrustManifest trust(const TempDir& dir, const std::string& policy, const std::string& keys) {
    testing::write_file(dir / "manifests/trust.json",
                        R"({"trust": "plugins", "policy": ")" + policy + R"(", "keys": )" + keys + "}");
    auto set = load_manifests({dir / "manifests"});
    INFO((set.problems.empty() ? "" : set.problems.front()));
    return set.trust;
}
}  // namespace

TEST_CASE("loader: under require, a plugin signed by a listed key loads and says who signed it") {
    TempDir dir;
    PluginLoader loader({kTestPlugins}, quiet,
                        trust(dir, "require", R"([{"name": "crmsync test key", "file": ")" + kTestKey + R"("}])"));
    auto plugin = loader.load("test-source", VersionRange::parse("*").value());
    INFO(plugin.status().message());
    REQUIRE(plugin);
    CHECK(plugin.value()->signature().state == SignatureCheck::State::trusted);
    CHECK(plugin.value()->signature().text() == "signed by crmsync test key (key 75C76E7DFF7F514C)");
}

TEST_CASE("loader: under require, unsigned and unknown-key plugins are refused naming what to do") {
    TempDir dir, plugins;
    copy_plugin(plugins, "test-source");
    SECTION("unsigned") {
        fs::remove(plugins.path() / "test-source/test-source.so.minisig");
        PluginLoader loader({plugins.str()}, quiet, trust(dir, "require", R"([{"name": "t", "file": ")" + kTestKey + R"("}])"));
        CHECK_THAT(load_error(loader, "test-source"),
                   Catch::Contains("plugin test-source 1.0.0 is unsigned; the trust policy in") &&
                       Catch::Contains("requires a trusted signature") &&
                       Catch::Contains("minisign -S -t \"crmsync-plugin test-source 1.0.0\""));
    }
    SECTION("signed by a key the home does not list") {
        auto other = testing::run_command({CRMSYNC_MINISIGN, "-G", "-W", "-p", dir / "other.pub", "-s", dir / "other.key"});
        REQUIRE(other.status == 0);
        PluginLoader loader({plugins.str()}, quiet,
                            trust(dir, "require", R"([{"name": "o", "file": ")" + (dir / "other.pub") + R"("}])"));
        CHECK_THAT(load_error(loader, "test-source"),
                   Catch::Contains("is signed by key 75C76E7DFF7F514C, which no trust manifest lists") &&
                       Catch::Contains("add its public key to \"keys\""));
    }
    SECTION("a library changed after it was signed (and its manifest's sha256 with it)") {
        auto library = plugins / "test-source/test-source.so";
        { std::ofstream(library, std::ios::app) << "appended after signing"; }
        auto manifest = plugins / "test-source/test-source.plugin.json";
        auto text = testing::read_file(manifest);
        auto at = text.find("\"sha256\": \"") + 11;
        text.replace(at, 64, sha256_file(library).value());
        testing::write_file(manifest, text);
        PluginLoader loader({plugins.str()}, quiet, trust(dir, "require", R"([{"name": "t", "file": ")" + kTestKey + R"("}])"));
        CHECK_THAT(load_error(loader, "test-source"),
                   Catch::Contains("INVALID signature") && Catch::Contains("reinstall the plugin from its vendor"));
    }
}

TEST_CASE("loader: warn and off load what require refuses, and the signature state is still known") {
    TempDir dir, plugins;
    copy_plugin(plugins, "test-source");
    fs::remove(plugins.path() / "test-source/test-source.so.minisig");
    PluginLoader warn({plugins.str()}, quiet, trust(dir, "warn", R"([{"name": "t", "file": ")" + kTestKey + R"("}])"));
    auto warned = warn.load("test-source", VersionRange::parse("*").value());
    REQUIRE(warned);
    CHECK(warned.value()->signature().state == SignatureCheck::State::none);
    // No trust manifest: policy off; the shipped signature is by a key nobody listed.
    PluginLoader off({kTestPlugins}, quiet);
    auto loaded = off.load("test-source", VersionRange::parse("*").value());
    REQUIRE(loaded);
    CHECK(loaded.value()->signature().state == SignatureCheck::State::untrusted);
}

TEST_CASE("loader: a trust manifest that does not parse trusts nothing") {
    TempDir dir;
    testing::write_file(dir / "manifests/trust.json",
                        R"({"trust": "plugins", "policy": "require", "keys": [{"name": "x", "public_key": "nope"}]})");
    auto set = load_manifests({dir / "manifests"});
    REQUIRE(set.problems.size() == 1);
    CHECK_THAT(set.problems[0], Catch::Contains("\"keys\"[0]: not a minisign public key"));
    PluginLoader loader({kTestPlugins}, quiet, set.trust);
    CHECK_THAT(load_error(loader, "test-source"), Catch::Contains("is broken, so no plugin is trusted"));
}
