// helpdesk-tickets through the real loader, services and pipeline, into mock-crm: every
// row and exception of the sync table.
#include <catch2/catch.hpp>

#include "catalog.h"
#include "engine/engine.h"
#include "fake_helpdesk.h"
#include "pipeline.h"
#include "module_runner.h"
#include "test_support.h"

using namespace crmsync;
using testing::TempDir;
using testing::write_file;

namespace {

std::string contacts(int n, const std::string& email) {
    std::string out;
    for (int i = 0; i < n; ++i) {
        char created[32];
        std::snprintf(created, sizeof created, "2020-01-01T00:%02d:%02dZ", i / 60, i % 60);
        out += std::string(",") + R"({"LastName": "Many)" + std::to_string(i) + R"(", "Email": ")" + email +
               R"(", "CreatedDate": ")" + created + "\"}";
    }
    return out;
}

const std::string kSeed = R"({
  "UserLicense": [{"_ref": "lic", "Name": "Sales Cloud", "TotalLicenses": 10}],
  "Profile": [{"_ref": "p", "Name": "Sales", "UserLicenseId": "@lic"}],
  "User": [{"Username": "agent@inbox.example.org", "LastName": "Agent", "Email": "agent@inbox.example", "Alias": "agent",
            "TimeZoneSidKey": "Asia/Tokyo", "LocaleSidKey": "ja_JP", "EmailEncodingKey": "UTF-8", "LanguageLocaleKey": "ja", "ProfileId": "@p"}],
  "Contact": [{"LastName": "Tanaka", "Email": "tanaka@customer.jp", "Phone": "03-1234-5678"},
              {"LastName": "Both", "Email": "both@customer.jp"})" +
                          contacts(51, "team@customer.jp") + R"(],
  "Lead": [{"LastName": "LeadOnly", "Company": "Prospect", "Email": "lead@prospect.jp"},
           {"LastName": "LeadBeside", "Company": "Co", "Email": "both@customer.jp"}]
})";

struct Inbox {
    TempDir home;
    testing::ModuleRunner runner{home.str()};
    std::vector<std::string> events;

    Inbox() {
        write_file(home / "seed.json", kSeed);
        write_file(home / "manifests/crm.json",
                   testing::mock_connection(home / "var/crm.db", 100000, R"(, "seed": ")" + (home / "seed.json") + "\""));
        write_file(home / "manifests/helpdesk.json",
                   R"({"module": "helpdesk", "plugin": {"id": "helpdesk-tickets", "version": "^1.0"}, "crm": "mock",
                       "services": {"default_country_code": "81"}, "config": {"folder": ")" +
                       (home / "events") + R"("}})");
    }
    // One event: channel, action, id, and the channel's own object as JSON members.
    void add(const std::string& id, const std::string& channel, const std::string& action, const std::string& body,
             const std::string& agent = "agent@inbox.example", const std::string& extra = "") {
        events.push_back(R"({"event_id": ")" + id + R"(", "channel": ")" + channel + R"(", "action": ")" + action +
                         R"(", "subject": "ご請求について", "agent": {"email": ")" + agent + "\"}" + extra + ", " + body + "}");
    }
    RunReport run() {
        std::string text;
        for (const auto& e : events) text += e + "\n";
        write_file(home / "events/0001.jsonl", text);
        return runner.run("helpdesk");
    }
    mockcrm::Engine crm() {
        mockcrm::EngineOptions o;
        o.database = home / "var/crm.db";
        o.schema =
            json::parse(R"({"Event": {"fields": {"CrmSync_Key__c": {"type": "string", "external_id": true}}}})").as_object();
        return mockcrm::Engine(o);
    }
    std::vector<json::object> rows(const std::string& where = "") {
        return crm()
            .query(
                "SELECT CrmSync_Key__c, Subject, Type, StartDateTime, EndDateTime, Description, WhoId, EventWhoIds, OwnerId, "
                "Owner.Email FROM Event" +
                where + " ORDER BY CrmSync_Key__c")
            .rows;
    }
    json::object event(const std::string& id) {
        auto r = rows(" WHERE CrmSync_Key__c = 'helpdesk-tickets:" + id + "'");
        REQUIRE(r.size() == 1);
        return r[0];
    }
    json::value contact(const std::string& last) {
        return crm().query("SELECT Id FROM Contact WHERE LastName = '" + last + "'").rows.at(0).at("Id");
    }
};

const std::string kMailSent =
    R"("mail": {"draft_saved_at": "2026-11-20T10:00:00+09:00", "sent_at": "2026-11-20T10:07:40+09:00", "to": ["tanaka@customer.jp"], "body": "いつもお世話になっております。"})";

}  // namespace

TEST_CASE("helpdesk: a sent mail becomes an Event from first draft save to sent time, owned by the agent") {
    Inbox inbox;
    inbox.add("m1", "mail", "sent", kMailSent);
    auto report = inbox.run();
    CHECK(report.counts.created == 1);
    auto e = inbox.event("m1");
    CHECK(e.at("Subject") == "【メール】ご請求について");
    CHECK(e.at("Type") == "メール");
    CHECK(e.at("StartDateTime") == "2026-11-20T01:00:00.000+0000");
    CHECK(e.at("EndDateTime") == "2026-11-20T01:07:40.000+0000");
    CHECK(e.at("Owner").at("Email") == "agent@inbox.example");
    CHECK(e.at("WhoId") == inbox.contact("Tanaka"));
}

TEST_CASE("helpdesk: a scheduled send makes its Event when reserved, keeps it when cancelled, and a re-reservation adds one") {
    Inbox inbox;
    // The Event ends when the reserve button was pressed (reserved_at), not at delivery.
    std::string reserved =
        R"("mail": {"draft_saved_at": "2026-11-20T01:00:00Z", "reserved_at": "2026-11-20T01:30:00Z", "reserved_for": "2026-11-21T00:00:00Z", "to": ["tanaka@customer.jp"]})";
    inbox.add("r1", "mail", "reserved", reserved);
    inbox.add("r1-cancel", "mail", "cancelled", reserved);
    inbox.add("r2", "mail", "reserved", reserved);
    inbox.add("r2-delivered", "mail", "sent",
              R"("mail": {"draft_saved_at": "2026-11-20T01:00:00Z", "sent_at": "2026-11-21T00:00:00Z", "scheduled": true})");
    inbox.add("c1", "mail", "cancelled", kMailSent);
    auto report = inbox.run();
    CHECK(report.counts.created == 2);
    CHECK(report.counts.ignored == 3);
    CHECK(inbox.event("r1").at("EndDateTime") == "2026-11-20T01:30:00.000+0000");
    CHECK(inbox.rows().size() == 2);
}

TEST_CASE("helpdesk: an SMS relates by the number, a visit by its contact and duration, a call only once ended and recorded") {
    Inbox inbox;
    inbox.add(
        "s1", "sms", "sent",
        R"("sms": {"draft_saved_at": "2026-11-20T01:00:00Z", "sent_at": "2026-11-20T01:01:00Z", "numbers": ["+81 3 1234 5678"], "body": "ok"})");
    inbox.add(
        "v1", "visit", "recorded",
        R"("visit": {"first": true, "visited_at": "2026-11-20T05:00:00Z", "duration_minutes": 45, "memo": "訪問", "contact": {"email": "tanaka@customer.jp"}})");
    inbox.add(
        "v1-edit", "visit", "recorded",
        R"J("visit": {"first": false, "visited_at": "2026-11-20T05:00:00Z", "duration_minutes": 50, "memo": "訪問 (edited)"})J");
    inbox.add(
        "k1", "call", "memo_recorded",
        R"("call": {"call_ended": true, "memo_recorded": true, "started_at": "2026-11-20T06:00:00Z", "ended_at": "2026-11-20T06:12:00Z", "number": "0312345678", "memo": "折り返し"})");
    inbox.add(
        "k2", "call", "memo_recorded",
        R"("call": {"call_ended": false, "memo_recorded": true, "started_at": "2026-11-20T06:00:00Z", "ended_at": "2026-11-20T06:12:00Z"})");
    auto report = inbox.run();
    CHECK(report.counts.created == 3);
    CHECK(inbox.event("s1").at("WhoId") == inbox.contact("Tanaka"));
    CHECK(inbox.event("s1").at("Subject") == "【SMS】ご請求について");
    auto visit = inbox.event("v1");
    CHECK(visit.at("EndDateTime") == "2026-11-20T05:45:00.000+0000");
    CHECK(visit.at("Type") == "応対メモ");
    CHECK(inbox.event("k1").at("WhoId") == inbox.contact("Tanaka"));
    CHECK(inbox.event("k1").at("EndDateTime") == "2026-11-20T06:12:00.000+0000");
    CHECK(inbox.rows().size() == 3);
}

TEST_CASE("helpdesk: a chat closed after sending carries its bubbles, closed without sending creates nothing") {
    Inbox inbox;
    inbox.add(
        "ch1", "line", "closed",
        R"("chat": {"sent": true, "opened_at": "2026-11-20T02:00:00Z", "closed_at": "2026-11-20T02:05:00Z", "customer": {"email": "tanaka@customer.jp"}, "bubbles": [{"speaker": "お客様", "text": "届きません"}, {"speaker": "担当", "text": "確認します"}]})");
    inbox.add("ch2", "chatplus", "closed",
              R"("chat": {"sent": false, "opened_at": "2026-11-20T02:00:00Z", "closed_at": "2026-11-20T02:01:00Z"})");
    inbox.add("x1", "fax", "sent", R"("fax": {})");
    inbox.add("b1", "mail", "sent", kMailSent, "agent@inbox.example", R"(, "broadcast": true)");
    auto report = inbox.run();
    CHECK(report.counts.created == 1);
    CHECK(report.counts.ignored == 2);
    CHECK(report.counts.failed == 1);  // fax is no channel: an error, not silence
    auto chat = inbox.event("ch1");
    CHECK(chat.at("Description") == "お客様: 届きません\n担当: 確認します");
    CHECK(chat.at("Subject") == "【LINE】ご請求について");
}

TEST_CASE("helpdesk: the description is cut to 50 lines") {
    Inbox inbox;
    std::string body;
    for (int i = 1; i <= 60; ++i) body += "line " + std::to_string(i) + "\\n";
    inbox.add(
        "long", "mail", "sent",
        R"("mail": {"draft_saved_at": "2026-11-20T01:00:00Z", "sent_at": "2026-11-20T01:01:00Z", "body": ")" + body + "\"}");
    inbox.run();
    std::string description(inbox.event("long").at("Description").as_string());
    CHECK(std::count(description.begin(), description.end(), '\n') == 49);
    CHECK_THAT(description, Catch::EndsWith("line 50"));
}

TEST_CASE("helpdesk: the Type picklist value is created once for all the channel's Events") {
    Inbox inbox;
    inbox.add("t1", "instagram", "closed",
              R"("chat": {"sent": true, "opened_at": "2026-11-20T02:00:00Z", "closed_at": "2026-11-20T02:05:00Z"})");
    inbox.add("t2", "instagram", "closed",
              R"("chat": {"sent": true, "opened_at": "2026-11-20T03:00:00Z", "closed_at": "2026-11-20T03:05:00Z"})");
    auto report = inbox.run();
    CHECK(report.counts.created == 2);
    auto values = inbox.crm().picklist_values("Event", "Type");
    CHECK(std::count(values.begin(), values.end(), "Instagram DM") == 1);
}

TEST_CASE("helpdesk: Who rules — 51 contacts relate 50, contacts win over a lead, a lead alone, or nobody") {
    Inbox inbox;
    auto mail = [](const std::string& to) {
        return R"("mail": {"draft_saved_at": "2026-11-20T01:00:00Z", "sent_at": "2026-11-20T01:01:00Z", "to": [")" + to +
               R"("]})";
    };
    inbox.add("w51", "mail", "sent", mail("team@customer.jp"));
    inbox.add("wboth", "mail", "sent", mail("both@customer.jp"));
    inbox.add("wlead", "mail", "sent", mail("lead@prospect.jp"));
    inbox.add("wnone", "mail", "sent", mail("stranger@nowhere.jp"));
    CHECK(inbox.run().counts.created == 4);
    CHECK(inbox.event("w51").at("EventWhoIds").as_array().size() == 50);
    CHECK(inbox.event("wboth").at("WhoId") == inbox.contact("Both"));
    auto lead = inbox.crm().query("SELECT Id FROM Lead WHERE LastName = 'LeadOnly'").rows.at(0).at("Id");
    CHECK(inbox.event("wlead").at("WhoId") == lead);
    CHECK(inbox.event("wnone").at("WhoId").is_null());
}

TEST_CASE("helpdesk: an agent without a CRM user gets an integration user") {
    Inbox inbox;
    inbox.add("o1", "mail", "sent", kMailSent, "newcomer@inbox.example");
    auto report = inbox.run();
    CHECK(report.counts.created == 1);
    CHECK(inbox.event("o1").at("Owner").at("Email") == "newcomer@inbox.example");
    CHECK(report.counts.extra.at("owner_integration_users_created") == 1);
}

TEST_CASE("helpdesk: a redelivered event never creates a second Event") {
    Inbox inbox;
    inbox.add("dup", "mail", "sent", kMailSent);
    inbox.add("dup", "mail", "sent", kMailSent);
    auto report = inbox.run();
    CHECK(inbox.rows().size() == 1);
    CHECK(report.counts.created + report.counts.updated + report.counts.unchanged == 2);
}

TEST_CASE("helpdesk: polling the REST API pages through tickets, waits out the rate limit, and resumes after its cursor") {
    fakes::FakeHelpdesk api("token-123");
    api.start();
    auto ticket = [](int n, const std::string& updated) {
        json::array actions{json::parse(R"({"event_id": "api-)" + std::to_string(n) + R"(", "occurred_at": ")" + updated +
                                        R"(", "channel": "mail", "action": "sent", "agent": {"email": "agent@inbox.example"},
                                        "mail": {"draft_saved_at": "2026-11-20T01:00:00Z", "sent_at": ")" +
                                        updated + R"(", "to": ["tanaka@customer.jp"]}})")};
        return json::object{{"ticket_id", "T-" + std::to_string(n)},
                            {"subject", "Ticket " + std::to_string(n)},
                            {"last_updated_at", updated},
                            {"actions", actions}};
    };
    for (int n = 0; n < 70; ++n) {
        char at[32];
        std::snprintf(at, sizeof at, "2026-11-20T02:%02d:%02dZ", n / 60, n % 60);
        api.put_ticket("12", ticket(n, at));
    }
    api.rate_limit(1, 1);  // one request a second: the second page must wait, not fail
    Inbox inbox;
    write_file(inbox.home / "secrets/token", "token-123");
    write_file(inbox.home / "manifests/helpdesk.json",
               R"({"module": "helpdesk", "plugin": {"id": "helpdesk-tickets"}, "crm": "mock",
                   "credentials": {"api_token": {"file": "../secrets/token"}},
                   "config": {"api": {"base_url": ")" +
                   api.base_url() + R"(", "message_box_ids": ["12"]}}})");
    auto first = inbox.run();
    INFO(first.message);
    CHECK(first.status == RunStatus::succeeded);
    CHECK(first.counts.created == 70);
    CHECK(inbox.event("api-69").at("Subject") == "【メール】Ticket 69");
    CHECK(api.rate_limited() > 0);

    // A reply on an old ticket: only the new action is fetched.
    auto updated = ticket(3, "2026-11-20T03:00:00Z");
    updated["actions"].as_array().push_back(json::parse(R"({"event_id": "api-3-reply", "occurred_at": "2026-11-20T03:00:00Z",
        "channel": "mail", "action": "sent", "agent": {"email": "agent@inbox.example"},
        "mail": {"draft_saved_at": "2026-11-20T02:59:00Z", "sent_at": "2026-11-20T03:00:00Z", "to": ["tanaka@customer.jp"]}})"));
    api.put_ticket("12", updated);
    auto second = inbox.run();
    CHECK(second.counts.fetched == 2);  // the edited ticket's actions at or after the cursor
    CHECK(second.counts.created == 1);  // only the reply is new
    CHECK(inbox.rows().size() == 71);
}

TEST_CASE("helpdesk: a wrong API token fails the run as refused, naming the credential problem") {
    fakes::FakeHelpdesk api("right-token");
    api.start();
    Inbox inbox;
    write_file(inbox.home / "secrets/token", "wrong-token");
    write_file(inbox.home / "manifests/helpdesk.json",
               R"({"module": "helpdesk", "plugin": {"id": "helpdesk-tickets"}, "crm": "mock",
                   "credentials": {"api_token": {"file": "../secrets/token"}},
                   "config": {"api": {"base_url": ")" +
                   api.base_url() + R"(", "message_box_ids": ["12"]}}})");
    auto report = inbox.run();
    CHECK(report.status == RunStatus::failed);
    CHECK(report.unreachable);
    CHECK_THAT(report.message, Catch::Contains("refused the API token") && !Catch::Contains("wrong-token"));
}

TEST_CASE("helpdesk: with the integration licences used up, an unknown agent's Events belong to the connection's user") {
    Inbox inbox;
    write_file(inbox.home / "manifests/crm.json",
               testing::mock_connection(inbox.home / "var/crm.db", 100000,
                                        R"(, "seed": ")" + (inbox.home / "seed.json") +
                                            R"(", "licenses": {"Salesforce": 10, "Salesforce Integration": 0})"));
    inbox.add("o2", "mail", "sent", kMailSent, "newcomer@inbox.example");
    auto report = inbox.run();
    CHECK(report.counts.created == 1);
    CHECK(inbox.event("o2").at("Owner").at("Email") == "admin@crmsync.mock");
    CHECK(report.counts.extra.at("owner_connection_user_fallbacks") == 1);
}

TEST_CASE("helpdesk: polled from the API fake, every channel and every row and exception of the table") {
    fakes::FakeHelpdesk api("token-123");
    api.start();
    auto action = [](const std::string& id, const std::string& at, const std::string& channel, const std::string& act,
                     const std::string& body, const std::string& extra = "") {
        return json::parse(R"({"event_id": ")" + id + R"(", "occurred_at": ")" + at + R"(", "channel": ")" + channel +
                           R"(", "action": ")" + act + R"(", "agent": {"email": "agent@inbox.example"})" + extra + ", " + body +
                           "}");
    };
    const std::string mail =
        R"("mail": {"draft_saved_at": "2026-11-20T01:00:00Z", "sent_at": "2026-11-20T01:05:00Z", "reserved_at": "2026-11-20T01:06:00Z", "reserved_for": "2026-11-21T00:00:00Z", "to": ["tanaka@customer.jp"]})";
    const std::string chat_sent =
        R"("chat": {"sent": true, "opened_at": "2026-11-20T02:00:00Z", "closed_at": "2026-11-20T02:05:00Z", "visitor": {"email": "tanaka@customer.jp"}})";
    json::array rows{
        action("mail-sent", "2026-11-20T01:05:00Z", "mail", "sent", mail),
        action("mail-reserved", "2026-11-20T01:06:00Z", "mail", "reserved", mail),
        action("mail-cancelled", "2026-11-20T01:07:00Z", "mail", "cancelled", mail),
        action(
            "sms-sent", "2026-11-20T01:08:00Z", "sms", "sent",
            R"("sms": {"draft_saved_at": "2026-11-20T01:00:00Z", "sent_at": "2026-11-20T01:08:00Z", "numbers": ["03-1234-5678"]})"),
        action(
            "visit-first", "2026-11-20T01:09:00Z", "visit", "recorded",
            R"("visit": {"first": true, "visited_at": "2026-11-20T00:00:00Z", "duration_minutes": 30, "contact": {"email": "tanaka@customer.jp"}})"),
        action("visit-again", "2026-11-20T01:10:00Z", "visit", "recorded",
               R"("visit": {"first": false, "visited_at": "2026-11-20T00:00:00Z", "duration_minutes": 30})"),
        action(
            "call-done", "2026-11-20T01:11:00Z", "call", "memo_recorded",
            R"("call": {"call_ended": true, "memo_recorded": true, "started_at": "2026-11-20T01:00:00Z", "ended_at": "2026-11-20T01:10:00Z", "number": "03-1234-5678"})"),
        action("call-open", "2026-11-20T01:12:00Z", "call", "memo_recorded",
               R"("call": {"call_ended": false, "memo_recorded": true})"),
        action("chat-sent", "2026-11-20T01:13:00Z", "chatplus", "closed", chat_sent),
        action("chat-unsent", "2026-11-20T01:14:00Z", "messenger", "closed", R"("chat": {"sent": false})"),
        action("broadcast", "2026-11-20T01:15:00Z", "mail", "sent", mail, R"(, "broadcast": true)"),
        action("fax", "2026-11-20T01:16:00Z", "fax", "sent", R"("fax": {})"),
    };
    // Every chat channel, each closed after sending.
    int minute = 17;
    for (const char* channel : {"line", "r-messe", "yahoo", "chatwork", "instagram", "messenger", "chat_widget"})
        rows.push_back(action(std::string("chat-") + channel, "2026-11-20T01:" + std::to_string(minute++) + ":00Z", channel,
                              "closed", chat_sent));
    api.put_ticket(
        "7",
        json::object{{"ticket_id", "T-1"}, {"subject", "全部"}, {"last_updated_at", "2026-11-20T01:16:00Z"}, {"actions", rows}});
    Inbox inbox;
    write_file(inbox.home / "secrets/token", "token-123");
    write_file(
        inbox.home / "manifests/helpdesk.json",
        R"({"module": "helpdesk", "plugin": {"id": "helpdesk-tickets"}, "crm": "mock", "services": {"default_country_code": "81"},
                   "credentials": {"api_token": {"file": "../secrets/token"}},
                   "config": {"api": {"base_url": ")" +
            api.base_url() + R"(", "message_box_ids": ["7"]}}})");
    auto report = inbox.run();
    INFO(report.message);
    CHECK(report.counts.fetched == 19);
    CHECK(report.counts.created == 13);
    CHECK(report.counts.ignored == 5);
    CHECK(report.counts.failed == 1);  // fax: not a channel, said so rather than lost
    for (const char* id : {"mail-sent", "mail-reserved", "sms-sent", "visit-first", "call-done", "chat-sent", "chat-line",
                           "chat-r-messe", "chat-yahoo", "chat-chatwork", "chat-instagram", "chat-messenger", "chat-chat_widget"})
        CHECK(inbox.event(id).at("WhoId") == inbox.contact("Tanaka"));
    CHECK(inbox.event("chat-chat_widget").at("Type") == "チャットウィジェット");
    CHECK(inbox.event("chat-instagram").at("Type") == "Instagram DM");
}

TEST_CASE(
    "helpdesk: a call memo syncs once the call ended and the memo was recorded, in either order, a re-record adds nothing") {
    Inbox inbox;
    const std::string times =
        R"("started_at": "2026-11-20T06:00:00Z", "ended_at": "2026-11-20T06:12:00Z", "number": "0312345678")";
    // Recorded during the call, then the call ends: the end makes the Event.
    inbox.add("a-memo", "call", "memo_recorded",
              R"("call": {"call_id": "c-1", "first": true, "call_ended": false, "memo_recorded": true, )" + times + "}");
    inbox.add("a-end", "call", "call_ended",
              R"("call": {"call_id": "c-1", "call_ended": true, "memo_recorded": true, "memo": "during", )" + times + "}");
    // Ended first, recorded after: the memo makes it.
    inbox.add("b-end", "call", "call_ended",
              R"("call": {"call_id": "c-2", "call_ended": true, "memo_recorded": false, )" + times + "}");
    inbox.add("b-memo", "call", "memo_recorded",
              R"("call": {"call_id": "c-2", "first": true, "call_ended": true, "memo_recorded": true, "memo": "after", )" +
                  times + "}");
    // Edited and recorded again: nothing, for calls as for visits.
    inbox.add("b-edit", "call", "memo_recorded",
              R"("call": {"call_id": "c-2", "first": false, "call_ended": true, "memo_recorded": true, "memo": "edited", )" +
                  times + "}");
    auto report = inbox.run();
    CHECK(report.counts.created == 2);
    auto a = inbox.rows(" WHERE CrmSync_Key__c = 'helpdesk-tickets:call:c-1'");
    auto b = inbox.rows(" WHERE CrmSync_Key__c = 'helpdesk-tickets:call:c-2'");
    REQUIRE(a.size() == 1);
    REQUIRE(b.size() == 1);
    CHECK(a[0].at("Description") == "during");
    CHECK(b[0].at("Description") == "after");
    CHECK(inbox.rows().size() == 2);
}

TEST_CASE(
    "helpdesk: Messenger is Messenger for Business, an unknown channel or action is an error naming it and the known ones") {
    Inbox inbox;
    const std::string chat =
        R"("chat": {"sent": true, "opened_at": "2026-11-20T02:00:00Z", "closed_at": "2026-11-20T02:05:00Z", "customer": {"email": "tanaka@customer.jp"}})";
    inbox.add("fb", "messenger", "closed", chat);
    inbox.add("typo-channel", "instagram_dm", "closed", chat);
    inbox.add("typo-action", "mail", "send", kMailSent);
    auto report = inbox.run();
    CHECK(report.counts.created == 1);
    CHECK(report.counts.failed == 2);
    CHECK(inbox.event("fb").at("Subject") == "【Messenger for Business】ご請求について");
    CHECK(inbox.event("fb").at("Type") == "Messenger for Business");
    auto store = open_sqlite_store(inbox.home / "var/state.db");
    REQUIRE(store);
    auto rows = store.value()->errors(std::string("helpdesk"), 0);
    REQUIRE(rows.size() == 2);
    CHECK_THAT(rows[0].message, Catch::Contains("\"instagram_dm\" is not a channel") && Catch::Contains("instagram, line"));
    CHECK_THAT(rows[1].message,
               Catch::Contains("\"send\" is not an action of channel mail (sent, reserved, cancelled, draft_saved)"));
}

TEST_CASE("helpdesk: a visit duration past 14 days is that event's error, never an overflow") {
    Inbox inbox;
    inbox.add(
        "v-ok", "visit", "recorded",
        R"("visit": {"first": true, "visited_at": "2026-11-20T05:00:00Z", "duration_minutes": 45, "contact": {"email": "tanaka@customer.jp"}})");
    inbox.add(
        "v-huge", "visit", "recorded",
        R"("visit": {"first": true, "visited_at": "2026-11-20T05:00:00Z", "duration_minutes": 4611686018427387904, "contact": {"email": "tanaka@customer.jp"}})");
    auto report = inbox.run();
    CHECK(report.counts.created == 1);
    CHECK(report.counts.failed == 1);
    auto store = open_sqlite_store(inbox.home / "var/state.db");
    REQUIRE(store);
    auto rows = store.value()->errors(std::string("helpdesk"), 0);
    REQUIRE(rows.size() == 1);
    CHECK_THAT(rows[0].message, Catch::Contains("event.visit.duration_minutes 4611686018427387904 is outside 0 to 20160"));
}
