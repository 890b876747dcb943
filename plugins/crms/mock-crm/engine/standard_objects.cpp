// The standard objects mock-crm knows, in a compact describe-like form. Field attributes:
// type (Salesforce describe types), length, required (nillable=false and no default),
// defaulted (a default is applied on create), create/update=false for read-only fields,
// to + rel for references, values + restricted for picklists, external_id, unique.
#include "schema.h"

namespace mockcrm {

const char* standard_objects_json() {
    return R"json({
  "UserLicense": {"prefix": "100", "fields": {
    "Name": {"type": "string", "length": 80, "required": true},
    "TotalLicenses": {"type": "int", "required": true}
  }},
  "Profile": {"prefix": "00e", "fields": {
    "Name": {"type": "string", "length": 255, "required": true},
    "UserLicenseId": {"type": "reference", "to": ["UserLicense"], "rel": "UserLicense", "required": true}
  }},
  "User": {"prefix": "005", "fields": {
    "Username": {"type": "string", "length": 80, "required": true, "unique": true},
    "LastName": {"type": "string", "length": 80, "required": true},
    "FirstName": {"type": "string", "length": 40},
    "Email": {"type": "email", "length": 128, "required": true},
    "Alias": {"type": "string", "length": 8, "required": true},
    "CommunityNickname": {"type": "string", "length": 40},
    "TimeZoneSidKey": {"type": "picklist", "length": 40, "required": true, "values": ["Asia/Tokyo", "America/Los_Angeles", "America/New_York", "Europe/London", "GMT"]},
    "LocaleSidKey": {"type": "picklist", "length": 40, "required": true, "values": ["ja_JP", "en_US", "en_GB"]},
    "EmailEncodingKey": {"type": "picklist", "length": 40, "required": true, "values": ["UTF-8", "ISO-2022-JP", "Shift_JIS"]},
    "LanguageLocaleKey": {"type": "picklist", "length": 40, "required": true, "values": ["ja", "en_US"]},
    "ProfileId": {"type": "reference", "to": ["Profile"], "rel": "Profile", "required": true},
    "IsActive": {"type": "boolean", "defaulted": true, "default": true}
  }},
  "Account": {"prefix": "001", "fields": {
    "Name": {"type": "string", "length": 255, "required": true},
    "AccountNumber": {"type": "string", "length": 40},
    "Phone": {"type": "phone", "length": 40},
    "Website": {"type": "url", "length": 255},
    "Industry": {"type": "picklist", "length": 255, "values": ["Technology", "Finance", "Manufacturing", "Retail", "Other"]},
    "Type": {"type": "picklist", "length": 255, "values": ["Prospect", "Customer - Direct", "Customer - Channel", "Partner", "Other"]},
    "AnnualRevenue": {"type": "currency"},
    "NumberOfEmployees": {"type": "int"},
    "Description": {"type": "textarea", "length": 32000},
    "OwnerId": {"type": "reference", "to": ["User"], "rel": "Owner", "defaulted": true}
  }},
  "Contact": {"prefix": "003", "fields": {
    "LastName": {"type": "string", "length": 80, "required": true},
    "FirstName": {"type": "string", "length": 40},
    "Email": {"type": "email", "length": 80},
    "Phone": {"type": "phone", "length": 40},
    "MobilePhone": {"type": "phone", "length": 40},
    "Title": {"type": "string", "length": 128},
    "AccountId": {"type": "reference", "to": ["Account"], "rel": "Account"},
    "Description": {"type": "textarea", "length": 32000},
    "OwnerId": {"type": "reference", "to": ["User"], "rel": "Owner", "defaulted": true}
  }},
  "Lead": {"prefix": "00Q", "fields": {
    "LastName": {"type": "string", "length": 80, "required": true},
    "FirstName": {"type": "string", "length": 40},
    "Company": {"type": "string", "length": 255, "required": true},
    "Email": {"type": "email", "length": 80},
    "Phone": {"type": "phone", "length": 40},
    "MobilePhone": {"type": "phone", "length": 40},
    "Status": {"type": "picklist", "length": 255, "restricted": true, "defaulted": true, "default": "Open - Not Contacted", "values": ["Open - Not Contacted", "Working - Contacted", "Closed - Converted", "Closed - Not Converted"]},
    "IsConverted": {"type": "boolean", "defaulted": true, "default": false},
    "OwnerId": {"type": "reference", "to": ["User"], "rel": "Owner", "defaulted": true}
  }},
  "Opportunity": {"prefix": "006", "fields": {
    "Name": {"type": "string", "length": 120, "required": true},
    "StageName": {"type": "picklist", "length": 255, "required": true, "restricted": true, "values": ["Prospecting", "Qualification", "Proposal/Price Quote", "Negotiation/Review", "Closed Won", "Closed Lost"]},
    "CloseDate": {"type": "date", "required": true},
    "Amount": {"type": "currency"},
    "AccountId": {"type": "reference", "to": ["Account"], "rel": "Account"},
    "IsClosed": {"type": "boolean", "create": false, "update": false, "defaulted": true, "default": false},
    "OwnerId": {"type": "reference", "to": ["User"], "rel": "Owner", "defaulted": true}
  }},
  "OpportunityContactRole": {"prefix": "00K", "fields": {
    "OpportunityId": {"type": "reference", "to": ["Opportunity"], "rel": "Opportunity", "required": true},
    "ContactId": {"type": "reference", "to": ["Contact"], "rel": "Contact", "required": true},
    "Role": {"type": "picklist", "length": 40, "values": ["Decision Maker", "Economic Buyer", "Evaluator", "Influencer", "Other"]},
    "IsPrimary": {"type": "boolean", "defaulted": true, "default": false}
  }},
  "Task": {"prefix": "00T", "fields": {
    "Subject": {"type": "string", "length": 255},
    "Status": {"type": "picklist", "length": 40, "restricted": true, "defaulted": true, "default": "Not Started", "values": ["Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred"]},
    "Priority": {"type": "picklist", "length": 40, "restricted": true, "defaulted": true, "default": "Normal", "values": ["High", "Normal", "Low"]},
    "Type": {"type": "picklist", "length": 40, "restricted": true, "values": ["Call", "Email", "Meeting", "Other"]},
    "ActivityDate": {"type": "date"},
    "Description": {"type": "textarea", "length": 32000},
    "WhoId": {"type": "reference", "to": ["Contact", "Lead"], "rel": "Who"},
    "WhatId": {"type": "reference", "to": ["Account", "Opportunity"], "rel": "What"},
    "OwnerId": {"type": "reference", "to": ["User"], "rel": "Owner", "defaulted": true},
    "TaskWhoIds": {"type": "junctionidlist", "to": ["Contact", "Lead"]}
  }},
  "Event": {"prefix": "00U", "fields": {
    "Subject": {"type": "string", "length": 255},
    "Type": {"type": "picklist", "length": 40, "restricted": true, "values": ["Call", "Email", "Meeting", "Other"]},
    "StartDateTime": {"type": "datetime"},
    "EndDateTime": {"type": "datetime"},
    "DurationInMinutes": {"type": "int"},
    "IsAllDayEvent": {"type": "boolean", "defaulted": true, "default": false},
    "ActivityDate": {"type": "date"},
    "ActivityDateTime": {"type": "datetime"},
    "Location": {"type": "string", "length": 255},
    "Description": {"type": "textarea", "length": 32000},
    "WhoId": {"type": "reference", "to": ["Contact", "Lead"], "rel": "Who"},
    "WhatId": {"type": "reference", "to": ["Account", "Opportunity"], "rel": "What"},
    "OwnerId": {"type": "reference", "to": ["User"], "rel": "Owner", "defaulted": true},
    "EventWhoIds": {"type": "junctionidlist", "to": ["Contact", "Lead"]}
  }},
  "ContentVersion": {"prefix": "068", "fields": {
    "Title": {"type": "string", "length": 255, "required": true},
    "PathOnClient": {"type": "string", "length": 500, "required": true, "update": false},
    "VersionData": {"type": "base64", "required": true, "update": false},
    "ContentSize": {"type": "int", "create": false, "update": false},
    "FirstPublishLocationId": {"type": "reference", "to": ["Account", "Contact", "Lead", "Opportunity", "Task", "Event", "User"], "rel": "FirstPublishLocation", "update": false}
  }}
})json";
}

}  // namespace mockcrm
