#include "analytics_api.h"

#include <crmsync/support/json_plugin.hpp>

namespace analytics {
using crmsync::support::text;
using crmsync::support::url_encode;

namespace {

std::vector<std::string> string_list(const json::object& o, const char* key) {
    std::vector<std::string> out;
    if (auto* list = o.if_contains(key); list && list->is_array())
        for (const auto& v : list->get_array()) out.push_back(crmsync::support::scalar_text(v));
    return out;
}

}  // namespace

int32_t AnalyticsApi::request_token(crmsync_call* call, std::string& error) {
    const std::string form =
        "grant_type=client_credentials&client_id=" + url_encode(client_id_) + "&client_secret=" + url_encode(client_secret_);
    auto res = crmsync::support::http_waiting_out_429(
        host_, call, "POST", base_url_ + "/oauth/token",
        {"Content-Type: application/x-www-form-urlencoded", "Accept: application/json"}, form, true, "analytics API");
    if (res.rc == CRMSYNC_STATUS_CANCELLED) return error = "stopped", res.rc;
    if (res.rc != CRMSYNC_STATUS_OK) return error = "the analytics API did not answer (" + base_url_ + ")", res.rc;
    if (res.status == 400 || res.status == 401)
        return error = "the analytics API refused the client credentials (HTTP " + std::to_string(res.status) +
                       "); check the credentials client_id and client_secret",
               CRMSYNC_STATUS_AUTH_FAILED;
    if (res.status != 200)
        return error = "the analytics API's token endpoint answered HTTP " + std::to_string(res.status), CRMSYNC_STATUS_RETRY;
    json::error_code ec;
    auto body = json::parse(res.body, ec);
    token_ = !ec && body.is_object() ? text(body.get_object(), "access_token") : "";
    if (token_.empty()) return error = "the analytics API's token answer has no access_token", CRMSYNC_STATUS_RETRY;
    return CRMSYNC_STATUS_OK;
}

int32_t AnalyticsApi::authenticate(crmsync_call* call, std::string client_id, std::string client_secret, std::string& error) {
    client_id_ = std::move(client_id);
    client_secret_ = std::move(client_secret);
    return request_token(call, error);
}

int32_t AnalyticsApi::get(crmsync_call* call, const std::string& url, int& status, json::value& body, std::string& error) {
    for (int renewed = 0;; ++renewed) {
        auto res = crmsync::support::http_waiting_out_429(
            host_, call, "GET", url, {"Authorization: Bearer " + token_, "Accept: application/json"}, "", true, "analytics API");
        if (res.rc == CRMSYNC_STATUS_CANCELLED) return error = "stopped", res.rc;
        if (res.rc != CRMSYNC_STATUS_OK) return error = "the analytics API did not answer (" + base_url_ + ")", res.rc;
        if (res.status == 401 && renewed == 0) {
            if (int32_t rc = request_token(call, error); rc != CRMSYNC_STATUS_OK) return rc;
            continue;
        }
        status = res.status;
        if (res.status == 401 || res.status == 403)
            return error = "the analytics API refused the token (HTTP " + std::to_string(res.status) + ")",
                   CRMSYNC_STATUS_AUTH_FAILED;
        if (res.status == 429) return error = "the analytics API kept answering 429 (rate limited)", CRMSYNC_STATUS_RETRY;
        if (res.status >= 500)
            return error = "the analytics API answered HTTP " + std::to_string(res.status), CRMSYNC_STATUS_RETRY;
        json::error_code ec;
        body = json::parse(res.body, ec);
        if (ec || !body.is_object())
            return error = "the analytics API answered something that is not a JSON object (" + url + ")", CRMSYNC_STATUS_ERROR;
        return CRMSYNC_STATUS_OK;
    }
}

int32_t AnalyticsApi::reports(crmsync_call* call, std::vector<Report>& out, std::string& error) {
    int status = 0;
    json::value body;
    if (int32_t rc = get(call, base_url_ + "/v1/reports", status, body, error); rc != CRMSYNC_STATUS_OK) return rc;
    if (status != 200) return error = "listing the reports answered HTTP " + std::to_string(status), CRMSYNC_STATUS_ERROR;
    auto* list = body.get_object().if_contains("reports");
    if (!list || !list->is_array()) return error = "the analytics API's report list has no \"reports\"", CRMSYNC_STATUS_ERROR;
    out.clear();
    for (const auto& r : list->get_array()) {
        if (!r.is_object()) continue;
        const auto& o = r.get_object();
        out.push_back(
            {text(o, "id"), text(o, "name"), text(o, "refreshed_at"), string_list(o, "tags"), string_list(o, "columns")});
    }
    return CRMSYNC_STATUS_OK;
}

int32_t AnalyticsApi::rows(crmsync_call* call, const std::string& report_id, const std::optional<std::string>& cursor,
                           int64_t limit, RowsPage& out, std::string& error) {
    std::string url = base_url_ + "/v1/reports/" + url_encode(report_id) + "/rows?limit=" + std::to_string(limit);
    if (cursor) url += "&cursor=" + url_encode(*cursor);
    int status = 0;
    json::value body;
    if (int32_t rc = get(call, url, status, body, error); rc != CRMSYNC_STATUS_OK) return rc;
    out = RowsPage{};
    if (status == 410) {
        out.cursor_expired = true;
        return CRMSYNC_STATUS_OK;
    }
    if (status != 200)
        return error = "reading report " + report_id + " answered HTTP " + std::to_string(status), CRMSYNC_STATUS_ERROR;
    const auto& o = body.get_object();
    out.columns = string_list(o, "columns");
    out.refreshed_at = text(o, "refreshed_at");
    auto* rows = o.if_contains("rows");
    if (!rows || !rows->is_array()) return error = "report " + report_id + "'s page has no \"rows\"", CRMSYNC_STATUS_ERROR;
    for (const auto& r : rows->get_array()) {
        std::vector<std::string> cells;
        if (auto* a = r.if_array())
            for (const auto& c : *a) cells.push_back(crmsync::support::scalar_text(c));
        out.rows.push_back(std::move(cells));
    }
    if (auto* next = o.if_contains("next_cursor"); next && next->is_string() && !next->get_string().empty())
        out.next_cursor = std::string(next->get_string());
    return CRMSYNC_STATUS_OK;
}

}  // namespace analytics
