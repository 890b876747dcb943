#pragma once
// mock-crm's object model: Salesforce-style objects and fields (standard ones built in,
// custom ones declared by the connection), looked up case-insensitively as Salesforce does.
#include <boost/json.hpp>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace mockcrm {

namespace json = boost::json;

// An error in Salesforce's terms: a status code and its message.
struct CrmError : std::runtime_error {
    CrmError(std::string code_, const std::string& message, std::vector<std::string> fields_ = {})
        : std::runtime_error(message), code(std::move(code_)), fields(std::move(fields_)) {}
    std::string code;
    std::vector<std::string> fields;
};

struct Field {
    std::string name;
    std::string type;  // Salesforce describe type
    int length = 0;
    bool required = false;   // nillable=false and nothing fills it
    bool defaulted = false;  // defaultedOnCreate
    bool createable = true;
    bool updateable = true;
    bool external_id = false;
    bool unique = false;
    bool restricted = false;
    bool custom = false;
    json::value default_value;
    std::vector<std::string> reference_to;
    std::string relationship;
    std::vector<std::string> picklist;  // initial values; live values are in the engine
    bool is_text() const;
    bool is_phone() const { return type == "phone"; }
};

struct Object {
    std::string name;
    std::string prefix;
    bool custom = false;
    std::vector<Field> fields;
    const Field* field(std::string_view name) const;
    const Field* relationship(std::string_view name) const;
};

struct CaseInsensitiveLess {
    bool operator()(const std::string& a, const std::string& b) const;
};

class Schema {
public:
    // Standard objects plus the connection's custom declarations:
    // {"Task": {"fields": {"CrmSync_Key__c": {"type": "string", "length": 255, "external_id": true}}},
    //  "Usage__c": {"prefix": "a01", "fields": {...}}}. Throws CrmError on a bad declaration.
    static Schema build(const json::object& custom);
    const Object* object(std::string_view name) const;
    const Object* object_for_id(std::string_view id) const;
    const std::map<std::string, Object, CaseInsensitiveLess>& objects() const { return objects_; }

private:
    std::map<std::string, Object, CaseInsensitiveLess> objects_;
};

const char* standard_objects_json();
bool iequals(std::string_view a, std::string_view b);

}  // namespace mockcrm
