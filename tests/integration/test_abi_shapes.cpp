// What real plugins emit across the ABI matches the published JSON Schemas.
#include <catch2/catch.hpp>

#include "instance.h"
#include "loader.h"
#include "schema.h"
#include "test_support.h"

using namespace crmsync;

namespace {
const Diagnostics quiet(nullptr, Level::error);

std::string schema(const std::string& name) {
    return testing::read_file(std::string(CRMSYNC_SOURCE_DIR) + "/plugin-api/schemas/" + name);
}

std::unique_ptr<PluginInstance> make(PluginLoader& loader, const std::string& id, const json::object& config) {
    auto plugin = loader.load(id, VersionRange::parse("^1").value());
    REQUIRE(plugin);
    auto instance = PluginInstance::create(plugin.value(), config, std::make_unique<HostServices>(), id);
    REQUIRE(instance);
    return std::move(instance.value());
}

void require_valid(const std::string& schema_name, const json::value& item) {
    auto status = validate_against_schema(schema(schema_name), item, "item");
    INFO(json::serialize(item));
    INFO(status.message());
    REQUIRE(status.is_ok());
}
}  // namespace

TEST_CASE("abi: fetch items, operations and write results of the shipped plugins match the schemas") {
    testing::TempDir dir;
    testing::write_file(dir / "in/a.jsonl", "{\"id\": \"1\", \"subject\": \"Hello\"}\n");
    PluginLoader loader({CRMSYNC_PLUGIN_DIR}, quiet);
    auto source =
        make(loader, "example-jsonl",
             json::object{{"folder", dir / "in"}, {"object", "Task"}, {"fields", json::object{{"Subject", "subject"}}}});
    std::vector<json::value> items;
    auto collect = [&](json::value&& v) -> int32_t {
        items.push_back(std::move(v));
        return CRMSYNC_STATUS_OK;
    };
    json::object request{{"type", "records"}, {"cursor", nullptr}, {"full", false}, {"limit", 200}};
    require_valid("fetch-request.schema.json", request);
    REQUIRE(source->fetch(request, collect).ok());
    REQUIRE(items.size() == 2);
    for (const auto& item : items) require_valid("fetch-item.schema.json", item);

    std::vector<json::value> operations;
    REQUIRE(source->map(items[0].at("record"), operations).ok());
    REQUIRE(operations.size() == 1);
    require_valid("operation.schema.json", operations[0]);

    auto crm = make(
        loader, "mock-crm",
        json::object{
            {"database", dir / "crm.db"},
            {"schema", json::parse(R"({"Task": {"fields": {"CrmSync_Key__c": {"type": "string", "external_id": true}}}})")}});
    REQUIRE(crm->authenticate({}).ok());
    std::vector<json::value> results;
    json::array ops{
        operations[0],
        json::object{{"object", "Task"}, {"action", "upsert"}, {"key", "k2"}, {"fields", json::object{{"Status", "Never"}}}}};
    REQUIRE(crm->write(json::object{{"external_id_field", "CrmSync_Key__c"}, {"operations", ops}}, results).ok());
    REQUIRE(results.size() == 2);
    for (const auto& r : results) require_valid("write-result.schema.json", r);
    CHECK(results[1].at("success") == false);

    items.clear();
    REQUIRE(crm->fetch(json::object{{"type", "describe"}, {"objects", json::array{"Task"}}}, collect).ok());
    REQUIRE(crm->fetch(json::object{{"type", "query"}, {"soql", "SELECT Id, Subject FROM Task"}}, collect).ok());
    REQUIRE(crm->fetch(json::object{{"type", "query"}, {"soql", "SELECT COUNT() FROM Task"}}, collect).ok());
    REQUIRE(crm->fetch(json::object{{"type", "limits"}}, collect).ok());
    REQUIRE(items.size() == 4);
    for (const auto& item : items) require_valid("fetch-item.schema.json", item);
}

TEST_CASE("abi: a plugin config that breaks the plugin's schema is refused with every problem listed") {
    PluginLoader loader({CRMSYNC_PLUGIN_DIR}, quiet);
    auto plugin = loader.load("helpdesk-tickets", VersionRange::parse("^1").value());
    REQUIRE(plugin);
    auto config = json::parse(R"({"folder": 5, "relate_to": ["Account"], "open_opportunty": true})").as_object();
    auto refused = PluginInstance::create(plugin.value(), config, std::make_unique<HostServices>(), "helpdesk");
    REQUIRE_FALSE(refused);
    const auto& message = refused.status().message();
    CHECK_THAT(message, Catch::Contains("\"config.folder\": Value type not permitted"));
    CHECK_THAT(message, Catch::Contains("\"config.relate_to[0]\": Failed to match against any enum values"));
    CHECK_THAT(message,
               Catch::Contains("\"config.open_opportunty\" is not a known key here (did you mean \"open_opportunity\"?)"));
}
