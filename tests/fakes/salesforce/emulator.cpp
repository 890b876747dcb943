#include "emulator.h"

#include <crmsync/support/csv.hpp>  // the same RFC 4180 codec as the salesforce plugin

#include <httplib.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <chrono>
#include <regex>
#include <sstream>

namespace sfemu {
namespace {

int64_t now_ms() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

std::string url_decode(const std::string& s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '+') out += ' ';
        else if (s[i] == '%' && i + 2 < s.size()) {
            out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
            i += 2;
        } else out += s[i];
    }
    return out;
}

std::map<std::string, std::string> parse_form(const std::string& body) {
    std::map<std::string, std::string> out;
    std::stringstream in(body);
    std::string pair;
    while (std::getline(in, pair, '&')) {
        auto eq = pair.find('=');
        if (eq != std::string::npos) out[url_decode(pair.substr(0, eq))] = url_decode(pair.substr(eq + 1));
    }
    return out;
}

std::string base64url_decode(std::string s) {
    for (auto& c : s) c = c == '-' ? '+' : c == '_' ? '/' : c;
    while (s.size() % 4) s += '=';
    std::string out(s.size(), '\0');
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(s.data()),
                            static_cast<int>(s.size()));
    if (n < 0) return "";
    size_t pad = s.size() >= 2 && s[s.size() - 1] == '=' ? (s[s.size() - 2] == '=' ? 2 : 1) : 0;
    out.resize(static_cast<size_t>(n) - pad);
    return out;
}

// PKCE S256: base64url(SHA-256(verifier)), unpadded.
std::string s256(const std::string& verifier) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    EVP_Digest(verifier.data(), verifier.size(), digest, &size, EVP_sha256(), nullptr);
    std::string out(4 * ((size + 2) / 3) + 1, '\0');
    out.resize(
        static_cast<size_t>(EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), digest, static_cast<int>(size))));
    for (auto& c : out) c = c == '+' ? '-' : c == '/' ? '_' : c;
    while (!out.empty() && out.back() == '=') out.pop_back();
    return out;
}

bool verify_rs256(const std::string& public_pem, const std::string& signed_part, const std::string& signature) {
    BIO* bio = BIO_new_mem_buf(public_pem.data(), static_cast<int>(public_pem.size()));
    EVP_PKEY* key = PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    if (!key) return false;
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    bool ok = EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, key) == 1 &&
              EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
                               reinterpret_cast<const unsigned char*>(signed_part.data()), signed_part.size()) == 1;
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(key);
    return ok;
}

void send_json(httplib::Response& res, int status, const json::value& body) {
    res.status = status;
    res.set_content(json::serialize(body), "application/json;charset=UTF-8");
}

// Salesforce's top-level REST error shape: an array of {message, errorCode, fields}.
void send_error(httplib::Response& res, int status, const std::string& code, const std::string& message,
                const std::vector<std::string>& fields = {}) {
    json::array f;
    for (const auto& x : fields) f.emplace_back(x);
    json::object e{{"message", message}, {"errorCode", code}};
    if (!fields.empty()) e["fields"] = f;
    send_json(res, status, json::array{e});
}

json::object save_result(const mockcrm::SaveResult& r, bool with_created) {
    json::array errors;
    for (const auto& e : r.errors) {
        json::array f;
        for (const auto& x : e.fields) f.emplace_back(x);
        errors.push_back(json::object{{"statusCode", e.code}, {"message", e.message}, {"fields", f}});
    }
    json::object out{{"id", r.success ? json::value(r.id) : json::value(nullptr)}, {"success", r.success}, {"errors", errors}};
    if (with_created && r.success) out["created"] = r.created;
    return out;
}

}  // namespace

Emulator::Emulator(Settings settings) : settings_(std::move(settings)) {
    mockcrm::EngineOptions o;
    o.database = settings_.database;
    o.schema = settings_.schema;
    o.daily_api_limit = settings_.daily_api_limit;
    o.licenses = settings_.licenses;
    o.now_ms = settings_.now_ms;
    engine_ = std::make_unique<mockcrm::Engine>(o);
    if (!settings_.seed.empty()) engine_->transaction([&] { engine_->seed(settings_.seed); });
    // Keep connections open as Salesforce's front end does; reconnecting every 5 requests is not what clients see.
    http_.server().set_keep_alive_max_count(10'000);
    routes();
}

Emulator::~Emulator() { stop(); }

int Emulator::start() { return http_.start(); }

void Emulator::stop() {
    for (auto& w : workers_)
        if (w.joinable()) w.join();
    http_.stop();
}

void Emulator::set_faults(const Faults& faults) {
    std::lock_guard<HeldMutex> lock(mutex_);
    faults_ = faults;
}

std::map<std::string, int64_t> Emulator::calls() {
    std::lock_guard<HeldMutex> lock(mutex_);
    return calls_;
}

int64_t Emulator::calls(const std::string& endpoint) {
    std::lock_guard<HeldMutex> lock(mutex_);
    auto it = calls_.find(endpoint);
    return it == calls_.end() ? 0 : it->second;
}

void Emulator::routes() {
    auto& s = http_.server();
    const std::string data = R"(/services/data/v[0-9]+\.[0-9]+)";
    // Salesforce answers many short requests at once: so does the emulator, each after the
    // configured round trip (slept outside the lock, as the network would).
    s.new_task_queue = [] { return new httplib::ThreadPool(64); };
    s.set_pre_routing_handler([this](const httplib::Request&, httplib::Response&) {
        int64_t latency = 0;
        {
            std::lock_guard<HeldMutex> lock(mutex_);
            latency = faults_.latency_ms;
        }
        if (latency > 0) std::this_thread::sleep_for(std::chrono::milliseconds(latency));
        return httplib::Server::HandlerResponse::Unhandled;
    });

    // Every API endpoint: count it, check the session, apply faults, spend the daily
    // budget, and report usage in Sforce-Limit-Info — as Salesforce does on every response.
    // A handler runs with the lock held (`lock`); one may let it go around work of the
    // request's own (parsing its body, writing its answer) so other requests go on meanwhile.
    using Lock = std::unique_lock<HeldMutex>;
    auto api_locking = [this](const std::string& name,
                              std::function<void(const httplib::Request&, httplib::Response&, Lock&)> handler) {
        return [this, name, handler](const httplib::Request& req, httplib::Response& res) {
            struct AtOnce {  // counts this request among those being answered
                Emulator& e;
                explicit AtOnce(Emulator& emulator) : e(emulator) {
                    int64_t now = ++e.at_once_, most = e.most_at_once_.load();
                    while (now > most && !e.most_at_once_.compare_exchange_weak(most, now)) {}
                }
                ~AtOnce() { --e.at_once_; }
            } at_once(*this);
            int64_t delay = 0, number = 0;  // this call's number at its endpoint, as it arrived
            bool fail_503 = false;
            {
                std::lock_guard<HeldMutex> lock(mutex_);
                number = ++calls_[name];
                std::uniform_real_distribution<double> roll(0, 1);
                if (faults_.slow_rate > 0 && roll(random_) < faults_.slow_rate) delay = faults_.slow_ms;
                fail_503 = faults_.error_503_rate > 0 && roll(random_) < faults_.error_503_rate;
            }
            if (delay) std::this_thread::sleep_for(std::chrono::milliseconds(delay));
            std::unique_lock<HeldMutex> lock(mutex_);
            if (name == faults_.budget_gone_on && number == faults_.budget_gone_at) engine_->use_up_api_budget();
            auto auth = req.get_header_value("Authorization");
            auto token = auth.rfind("Bearer ", 0) == 0 ? auth.substr(7) : "";
            auto it = tokens_.find(token);
            if (it == tokens_.end() || (it->second && it->second < now_ms())) {
                send_error(res, 401, "INVALID_SESSION_ID", "Session expired or invalid");
                return;
            }
            auto usage = [&] {
                res.set_header("Sforce-Limit-Info", "api-usage=" + std::to_string(engine_->api_used_today()) + "/" +
                                                        std::to_string(engine_->api_limit()));
            };
            if (fail_503) {
                usage();
                send_error(res, 503, "SERVER_UNAVAILABLE", "Service temporarily unavailable");
                return;
            }
            try {
                engine_->spend_api_call(name);
            } catch (const mockcrm::CrmError& e) {
                usage();
                send_error(res, 403, e.code, e.what());
                return;
            }
            try {
                handler(req, res, lock);
            } catch (const mockcrm::CrmError& e) {
                send_error(res, e.code == "NOT_FOUND" ? 404 : 400, e.code, e.what(), e.fields);
            } catch (const std::exception& e) {
                send_error(res, 400, "JSON_PARSER_ERROR", e.what());
            }
            if (!lock.owns_lock()) lock.lock();
            std::uniform_real_distribution<double> roll(0, 1);
            if (req.method != "GET" && faults_.error_after_apply_rate > 0 && roll(random_) < faults_.error_after_apply_rate)
                send_error(res, 500, "UNKNOWN_EXCEPTION",
                           "An unexpected error occurred. Please include this ErrorId if you contact support");
            usage();
        };
    };
    auto api = [api_locking](const std::string& name, std::function<void(const httplib::Request&, httplib::Response&)> handler) {
        return api_locking(name, [handler](const httplib::Request& req, httplib::Response& res, Lock&) { handler(req, res); });
    };

    // Not Salesforce's: what the benchmark reads of the emulator's own load.
    s.Get("/emulator/stats", [this](const httplib::Request&, httplib::Response& res) {
        send_json(res, 200, json::object{{"engine_held_seconds", engine_held_seconds()}, {"most_at_once", most_at_once()}});
    });

    // The web-server flow's first half, as if the user were signed in and approved at once:
    // the browser is sent back to redirect_uri with a one-time code (PKCE S256 required).
    s.Get("/services/oauth2/authorize", [this](const httplib::Request& req, httplib::Response& res) {
        std::lock_guard<HeldMutex> lock(mutex_);
        std::string redirect = req.get_param_value("redirect_uri");
        if (req.get_param_value("client_id") != settings_.client_id || redirect.rfind("http://localhost:", 0) != 0 ||
            req.get_param_value("response_type") != "code" || req.get_param_value("code_challenge_method") != "S256") {
            res.status = 400;
            res.set_content("error=invalid_request: unknown client, redirect_uri or PKCE missing", "text/plain");
            return;
        }
        std::string code = "aPrx" + std::to_string(++token_counter_) + "%3D%3D";  // Salesforce's codes end in ==
        codes_[url_decode(code)] = {settings_.client_id, redirect, req.get_param_value("code_challenge")};
        res.status = 302;
        res.set_header("Location", redirect + "?code=" + code + "&state=" + req.get_param_value("state"));
    });

    s.Post("/services/oauth2/token", [this](const httplib::Request& req, httplib::Response& res) {
        std::lock_guard<HeldMutex> lock(mutex_);
        ++calls_["token"];
        auto form = parse_form(req.body);
        auto oauth_error = [&](int status, const std::string& error, const std::string& description) {
            send_json(res, status, json::object{{"error", error}, {"error_description", description}});
        };
        std::string grant = form["grant_type"];
        std::string username = settings_.username;
        std::string refresh_token;  // given by the web-server flow only
        if (grant == "authorization_code") {
            auto code = codes_.find(form["code"]);
            if (code == codes_.end()) return oauth_error(400, "invalid_grant", "invalid authorization code");
            AuthorizationCode issued = code->second;
            codes_.erase(code);  // good once
            if (form["client_id"] != issued.client_id) return oauth_error(400, "invalid_client_id", "client identifier invalid");
            if (form.count("client_secret") && form["client_secret"] != settings_.client_secret)
                return oauth_error(400, "invalid_client", "invalid client credentials");
            if (form["redirect_uri"] != issued.redirect_uri)
                return oauth_error(400, "redirect_uri_mismatch", "redirect_uri must match");
            if (s256(form["code_verifier"]) != issued.challenge)
                return oauth_error(400, "invalid_grant", "invalid code verifier");
            refresh_token = "5Aep" + std::to_string(++token_counter_);
            refresh_tokens_.insert(refresh_token);
        } else if (grant == "client_credentials") {
            if (form["client_id"] != settings_.client_id || form["client_secret"] != settings_.client_secret)
                return oauth_error(400, "invalid_client", "invalid client credentials");
        } else if (grant == "refresh_token") {
            if (form["client_id"] != settings_.client_id)
                return oauth_error(400, "invalid_client_id", "client identifier invalid");
            if (form["refresh_token"] != settings_.refresh_token && !refresh_tokens_.count(form["refresh_token"]))
                return oauth_error(400, "invalid_grant", "expired access/refresh token");
        } else if (grant == "urn:ietf:params:oauth:grant-type:jwt-bearer") {
            std::string assertion = form["assertion"];
            auto d1 = assertion.find('.'), d2 = assertion.rfind('.');
            if (d1 == std::string::npos || d1 == d2) return oauth_error(400, "invalid_grant", "invalid assertion");
            if (!verify_rs256(settings_.jwt_public_key_pem, assertion.substr(0, d2), base64url_decode(assertion.substr(d2 + 1))))
                return oauth_error(400, "invalid_grant", "invalid assertion");
            boost::system::error_code ec;
            auto claims = json::parse(base64url_decode(assertion.substr(d1 + 1, d2 - d1 - 1)), ec);
            if (ec || !claims.is_object()) return oauth_error(400, "invalid_grant", "invalid assertion");
            auto& c = claims.as_object();
            if (!c.contains("iss") || c["iss"] != json::value(settings_.client_id))
                return oauth_error(400, "invalid_client_id", "client identifier invalid");
            if (!c.contains("aud") || c["aud"] != json::value(settings_.jwt_audience))
                return oauth_error(400, "invalid_grant", "audience is invalid");
            if (!c.contains("exp") || !c["exp"].is_int64() || c["exp"].as_int64() * 1000 < now_ms())
                return oauth_error(400, "invalid_grant", "expired authorization code");
            username = c.contains("sub") && c["sub"].is_string() ? std::string(c["sub"].as_string()) : "";
        } else {
            return oauth_error(400, "unsupported_grant_type", "grant type not supported");
        }
        std::string user_id = engine_->find_user_by_username(username);
        if (user_id.empty()) return oauth_error(400, "invalid_grant", "user hasn't approved this consumer");
        std::string token = "00D000000000001!" + std::to_string(++token_counter_) + "." + std::to_string(now_ms());
        tokens_[token] = faults_.token_ttl_s ? now_ms() + faults_.token_ttl_s * 1000 : 0;
        json::object answer{{"access_token", token},
                            {"instance_url", base_url()},
                            {"id", base_url() + "/id/00D000000000001AAA/" + user_id},
                            {"token_type", "Bearer"},
                            {"issued_at", std::to_string(now_ms())},
                            {"signature", "emulated"}};
        if (!refresh_token.empty()) answer["refresh_token"] = refresh_token;
        send_json(res, 200, answer);
    });

    s.Get(data + "/limits", api("limits", [this](const httplib::Request&, httplib::Response& res) {
              int64_t used = engine_->api_used_today();
              send_json(res, 200,
                        json::object{{"DailyApiRequests",
                                      json::object{{"Max", engine_->api_limit()}, {"Remaining", engine_->api_limit() - used}}}});
          }));

    s.Get(data + R"(/sobjects/([A-Za-z0-9_]+)/describe)",
          api("describe", [this](const httplib::Request& req, httplib::Response& res) {
              send_json(res, 200, engine_->describe(req.matches[1]));
          }));

    // One page of a query answer; the rest stays behind a nextRecordsUrl.
    auto page = [this](std::vector<json::object> rows, int64_t total, const std::string& version) {
        json::array records;
        size_t n = std::min<size_t>(rows.size(), static_cast<size_t>(settings_.query_page_size));
        for (size_t i = 0; i < n; ++i) records.push_back(rows[i]);
        json::object body{{"totalSize", total}, {"done", n == rows.size()}, {"records", records}};
        if (n < rows.size()) {
            std::string locator = "01g" + std::to_string(++token_counter_);
            cursors_[locator] = std::vector<json::object>(rows.begin() + static_cast<long>(n), rows.end());
            body["nextRecordsUrl"] = "/services/data/" + version + "/query/" + locator + "-" + std::to_string(n);
        }
        return body;
    };
    auto query = [this, page](const std::string& soql, const std::string& version) {
        auto result = engine_->query(soql);
        if (result.count) return json::object{{"totalSize", result.total}, {"done", true}, {"records", json::array{}}};
        return page(std::move(result.rows), result.total, version);
    };
    // getDeleted's answer: who was deleted in [start, end] (Salesforce keeps 30 days).
    auto deleted = [this](const std::string& object, const std::string& start, const std::string& end) {
        return json::object{{"deletedRecords", engine_->deleted(object, start, end)},
                            {"earliestDateAvailable", "2026-01-01T00:00:00.000+0000"},
                            {"latestDateCovered", end}};
    };
    s.Get(data + "/query", api("query", [query](const httplib::Request& req, httplib::Response& res) {
              send_json(res, 200, query(req.get_param_value("q"), req.path.substr(15, req.path.find('/', 15) - 15)));
          }));
    s.Get(data + R"(/query/(01g[0-9]+)-([0-9]+))",
          api("query", [this, page](const httplib::Request& req, httplib::Response& res) {
              auto it = cursors_.find(req.matches[1]);
              if (it == cursors_.end()) return send_error(res, 400, "INVALID_QUERY_LOCATOR", "invalid query locator");
              auto rows = std::move(it->second);
              cursors_.erase(it);
              std::string version = req.path.substr(15, req.path.find('/', 15) - 15);
              int64_t total = std::stoll(req.matches[2]) + static_cast<int64_t>(rows.size());
              send_json(res, 200, page(std::move(rows), total, version));
          }));
    // Composite: up to 25 subrequests, at most 5 of them queries, one API call for all.
    // The emulator serves query and getDeleted subrequests; each answers on its own.
    s.Post(
        data + "/composite", api("composite", [this, query, deleted](const httplib::Request& req, httplib::Response& res) {
            const auto request = json::parse(req.body);
            const auto& subrequests = request.as_object().at("compositeRequest").as_array();
            if (subrequests.size() > 25)
                return send_error(res, 400, "INVALID_API_INPUT", "a composite request holds at most 25 subrequests");
            static const std::regex deleted_url(
                R"(^/services/data/v[0-9.]+/sobjects/([A-Za-z0-9_]+)/deleted/?\?start=([^&]+)&end=([^&]+)$)");
            size_t queries = 0;
            for (const auto& item : subrequests)
                if (std::string(item.at("url").as_string()).find("/query") != std::string::npos) ++queries;
            calls_["composite-query"] += static_cast<int64_t>(queries);
            if (queries > 5) return send_error(res, 400, "INVALID_API_INPUT", "a composite request holds at most 5 queries");
            json::array answers;
            for (const auto& item : subrequests) {
                const auto& sub = item.as_object();
                std::string url(sub.at("url").as_string()), reference(sub.at("referenceId").as_string());
                auto at = url.find("/query?q=");
                std::smatch gone;
                const bool is_query = at != std::string::npos, is_deleted = std::regex_match(url, gone, deleted_url);
                json::object answer{{"referenceId", reference}, {"httpHeaders", json::object{}}};
                std::uniform_real_distribution<double> roll(0, 1);
                if (faults_.subrequest_error_rate > 0 && roll(random_) < faults_.subrequest_error_rate) {
                    answer["httpStatusCode"] = 500;
                    answer["body"] = json::array{
                        json::object{{"errorCode", "UNKNOWN_EXCEPTION"}, {"message", "An unexpected error occurred"}}};
                } else if (sub.at("method") != "GET" || url.rfind("/services/data/v", 0) != 0 || (!is_query && !is_deleted) ||
                           url.size() > 16'384) {
                    answer["httpStatusCode"] = 400;
                    answer["body"] = json::array{json::object{
                        {"errorCode", "INVALID_API_INPUT"}, {"message", "the emulator serves query and getDeleted subrequests"}}};
                } else {
                    try {
                        answer["body"] = is_query ? query(url_decode(url.substr(at + 9)), url.substr(15, url.find('/', 15) - 15))
                                                  : deleted(gone[1], url_decode(gone[2]), url_decode(gone[3]));
                        answer["httpStatusCode"] = 200;
                    } catch (const mockcrm::CrmError& e) {
                        answer["httpStatusCode"] = 400;
                        answer["body"] = json::array{json::object{{"errorCode", e.code}, {"message", e.what()}}};
                    }
                }
                answers.push_back(std::move(answer));
            }
            send_json(res, 200, json::object{{"compositeResponse", std::move(answers)}});
        }));

    // SOSL subset: FIND {a OR b} IN PHONE FIELDS RETURNING Contact(f, ...), Lead(f, ...)
    s.Get(data + "/search", api("search", [this](const httplib::Request& req, httplib::Response& res) {
              std::string q = req.get_param_value("q");
              auto open = q.find('{'), close = q.find('}');
              auto returning = q.find("RETURNING");
              if (open == std::string::npos || close == std::string::npos || returning == std::string::npos ||
                  q.find("IN PHONE FIELDS") == std::string::npos)
                  return send_error(res, 400, "MALFORMED_SEARCH",
                                    "the emulator supports FIND {...} IN PHONE FIELDS RETURNING ...");
              std::vector<std::string> terms;
              std::string inner = q.substr(open + 1, close - open - 1);
              for (size_t at = 0;;) {
                  auto next = inner.find(" OR ", at);
                  std::string term = inner.substr(at, next == std::string::npos ? std::string::npos : next - at);
                  term.erase(std::remove(term.begin(), term.end(), '"'), term.end());
                  if (!term.empty()) terms.push_back(term);
                  if (next == std::string::npos) break;
                  at = next + 4;
              }
              json::array found;
              std::string rest = q.substr(returning + 9);
              for (size_t at = 0; at < rest.size();) {
                  auto paren = rest.find('(', at);
                  if (paren == std::string::npos) break;
                  std::string object = rest.substr(at, paren - at);
                  object.erase(std::remove_if(object.begin(), object.end(), [](char c) { return c == ',' || c == ' '; }),
                               object.end());
                  auto end = rest.find(')', paren);
                  for (auto& row : engine_->find(object, {}, terms, "")) found.push_back(row);
                  at = end == std::string::npos ? rest.size() : end + 1;
              }
              send_json(res, 200, json::object{{"searchRecords", found}});
          }));

    auto collection = [this](const httplib::Request& req, httplib::Response& res, Lock& lock, const std::string& mode) {
        lock.unlock();  // the body is parsed, and the answer written, while other requests go on
        json::value parsed = json::parse(req.body);
        auto& records = parsed.as_object().at("records").as_array();
        if (records.size() > 200)
            return send_error(res, 400, "EXCEEDED_ID_LIMIT",
                              "record limit reached. cannot submit more than 200 records into this call");
        lock.lock();
        json::array results;
        std::uniform_real_distribution<double> roll(0, 1);
        engine_->transaction([&] {
            for (auto& r : records) {
                auto fields = std::move(r.as_object());
                if (faults_.lock_rate > 0 && roll(random_) < faults_.lock_rate) {
                    results.push_back(
                        save_result({false,
                                     "",
                                     false,
                                     {{"UNABLE_TO_LOCK_ROW",
                                       "unable to obtain exclusive access to this record or 1 records: 00U000000000000AAA",
                                       {}}}},
                                    false));
                    continue;
                }
                std::string type = fields.contains("attributes") ? std::string(fields["attributes"].at("type").as_string()) : "";
                fields.erase("attributes");
                if (mode == "create") {
                    results.push_back(save_result(engine_->create(type, fields), false));
                } else if (mode == "update") {
                    std::string id = fields.contains("Id") ? std::string(fields["Id"].as_string()) : "";
                    fields.erase("Id");
                    results.push_back(save_result(engine_->update(type, id, fields), false));
                } else {
                    std::string object = req.matches[1], field = req.matches[2];
                    std::string value;
                    for (const auto& [k, v] : fields)
                        if (mockcrm::iequals(k, field) && v.is_string()) value = std::string(v.get_string());
                    results.push_back(save_result(engine_->upsert(object, field, value, fields), true));
                }
            }
        });
        lock.unlock();
        send_json(res, 200, results);
    };
    // sObject Collections (counted as "collections", apart from Composite's queries).
    s.Post(data + "/composite/sobjects",
           api_locking("collections", [collection](const httplib::Request& req, httplib::Response& res, Lock& lock) {
               collection(req, res, lock, "create");
           }));
    s.Patch(data + "/composite/sobjects",
            api_locking("collections", [collection](const httplib::Request& req, httplib::Response& res, Lock& lock) {
                collection(req, res, lock, "update");
            }));
    s.Patch(data + R"(/composite/sobjects/([A-Za-z0-9_]+)/([A-Za-z0-9_]+))",
            api_locking("collections", [collection](const httplib::Request& req, httplib::Response& res, Lock& lock) {
                collection(req, res, lock, "upsert");
            }));

    // Bulk API 2.0 ingest: create, upload CSV, close, poll, read results.
    s.Post(data + "/jobs/ingest", api("bulk", [this](const httplib::Request& req, httplib::Response& res) {
               auto body = json::parse(req.body).as_object();
               const auto& operation = body.at("operation");
               if ((operation != "upsert" && operation != "update") || body.at("contentType") != "CSV")
                   return send_error(res, 400, "INVALIDJOB", "the emulator ingests CSV upserts and updates only");
               if (operation == "upsert" && !body.contains("externalIdFieldName"))
                   return send_error(res, 400, "INVALIDJOB",
                                     "InvalidJob : External ID was blank for " + std::string(body.at("object").as_string()));
               if (!engine_->schema().object(std::string(body.at("object").as_string())))
                   return send_error(res, 400, "INVALIDJOB",
                                     "InvalidJob : Invalid object " + std::string(body.at("object").as_string()));
               std::string id = "750" + std::to_string(++token_counter_);
               BulkJob job;
               job.object = std::string(body.at("object").as_string());
               // An update job finds each record by its Id column.
               job.external = operation == "upsert" ? std::string(body.at("externalIdFieldName").as_string()) : "Id";
               job.update = operation == "update";
               jobs_[id] = job;
               json::object info{
                   {"id", id}, {"operation", operation}, {"object", job.object}, {"state", "Open"}, {"contentType", "CSV"}};
               if (!job.update) info["externalIdFieldName"] = job.external;
               send_json(res, 200, info);
           }));
    s.Put(data + R"(/jobs/ingest/(750[0-9]+)/batches)", api("bulk", [this](const httplib::Request& req, httplib::Response& res) {
              auto it = jobs_.find(req.matches[1]);
              if (it == jobs_.end()) return send_error(res, 404, "NOT_FOUND", "no such job");
              if (it->second.state != "Open") return send_error(res, 400, "INVALIDJOBSTATE", "the job is not open");
              it->second.data += req.body;
              res.status = 201;
          }));
    s.Patch(data + R"(/jobs/ingest/(750[0-9]+))", api("bulk", [this](const httplib::Request& req, httplib::Response& res) {
                auto it = jobs_.find(req.matches[1]);
                if (it == jobs_.end()) return send_error(res, 404, "NOT_FOUND", "no such job");
                auto state = json::parse(req.body).at("state");
                if (state == "UploadComplete" && it->second.state == "Open") {
                    it->second.state = "InProgress";
                    workers_.emplace_back([this, id = it->first] { process(id); });
                } else if (state == "Aborted") it->second.state = "Aborted";
                send_json(
                    res, 200,
                    json::object{{"id", it->first}, {"state", state == "UploadComplete" ? "UploadComplete" : it->second.state}});
            }));
    s.Get(data + R"(/jobs/ingest/(750[0-9]+))", api("bulk", [this](const httplib::Request& req, httplib::Response& res) {
              auto it = jobs_.find(req.matches[1]);
              if (it == jobs_.end()) return send_error(res, 404, "NOT_FOUND", "no such job");
              auto& job = it->second;
              if (job.state == "InProgress" && ++job.polls > settings_.bulk_polls_before_complete && job.processed_all)
                  job.state = "JobComplete";
              send_json(res, 200,
                        json::object{{"id", it->first},
                                     {"state", job.state},
                                     {"object", job.object},
                                     {"numberRecordsProcessed", job.processed},
                                     {"numberRecordsFailed", job.failures}});
          }));
    s.Get(data + R"(/jobs/ingest/(750[0-9]+)/(successfulResults|failedResults))",
          api("bulk", [this](const httplib::Request& req, httplib::Response& res) {
              auto it = jobs_.find(req.matches[1]);
              if (it == jobs_.end()) return send_error(res, 404, "NOT_FOUND", "no such job");
              if (it->second.state != "JobComplete") return send_error(res, 400, "INVALIDJOBSTATE", "the job has not completed");
              res.set_content(req.matches[2] == "successfulResults" ? it->second.successful : it->second.failed, "text/csv");
          }));

    // Tooling API, the subset used to add values to restricted custom picklists:
    // SELECT Id, Metadata FROM CustomField WHERE TableEnumOrId = 'Obj' AND DeveloperName = 'Field'
    // and PATCH /tooling/sobjects/CustomField/{Id} with the changed Metadata.
    s.Get(data + "/tooling/query", api("tooling", [this](const httplib::Request& req, httplib::Response& res) {
              static const std::regex pattern(R"(TableEnumOrId\s*=\s*'([A-Za-z0-9_]+)'.*DeveloperName\s*=\s*'([A-Za-z0-9_]+)')");
              std::smatch m;
              std::string q = req.get_param_value("q");
              if (!std::regex_search(q, m, pattern))
                  return send_error(res, 400, "MALFORMED_QUERY",
                                    "the emulator answers CustomField by TableEnumOrId and DeveloperName");
              const mockcrm::Object* object = engine_->schema().object(m[1].str());
              const mockcrm::Field* field = object ? object->field(m[2].str() + "__c") : nullptr;
              json::array records;
              if (field && field->custom) {
                  json::array values;
                  for (const auto& v : engine_->picklist_values(object->name, field->name))
                      values.push_back(json::object{{"fullName", v}, {"label", v}, {"default", false}});
                  json::object metadata{
                      {"label", field->name},
                      {"type", field->type == "multipicklist" ? "MultiselectPicklist" : "Picklist"},
                      {"valueSet", json::object{{"restricted", field->restricted},
                                                {"valueSetDefinition", json::object{{"sorted", false}, {"value", values}}}}}};
                  records.push_back(json::object{{"attributes", json::object{{"type", "CustomField"}}},
                                                 {"Id", "00N" + object->name + "." + field->name},
                                                 {"Metadata", metadata}});
              }
              send_json(
                  res, 200,
                  json::object{{"size", records.size()}, {"totalSize", records.size()}, {"done", true}, {"records", records}});
          }));
    s.Patch(data + R"(/tooling/sobjects/CustomField/00N([A-Za-z0-9_]+)\.([A-Za-z0-9_]+))",
            api("tooling", [this](const httplib::Request& req, httplib::Response& res) {
                auto body = json::parse(req.body).as_object();
                const auto& values = body.at("Metadata").at("valueSet").at("valueSetDefinition").at("value").as_array();
                for (const auto& v : values)
                    engine_->add_picklist_value(req.matches[1], req.matches[2], std::string(v.at("fullName").as_string()));
                res.status = 204;
            }));

    s.Post(data + R"(/sobjects/([A-Za-z0-9_]+))", api("sobject", [this](const httplib::Request& req, httplib::Response& res) {
               auto r = engine_->create(req.matches[1], json::parse(req.body).as_object());
               if (!r.success) return send_error(res, 400, r.errors[0].code, r.errors[0].message, r.errors[0].fields);
               send_json(res, 201, json::object{{"id", r.id}, {"success", true}, {"errors", json::array{}}});
           }));
    s.Patch(data + R"(/sobjects/([A-Za-z0-9_]+)/([A-Za-z0-9]{15,18}))",
            api("sobject", [this](const httplib::Request& req, httplib::Response& res) {
                auto r = engine_->update(req.matches[1], req.matches[2], json::parse(req.body).as_object());
                if (!r.success) return send_error(res, 400, r.errors[0].code, r.errors[0].message, r.errors[0].fields);
                res.status = 204;
            }));
    s.Delete(data + R"(/sobjects/([A-Za-z0-9_]+)/([A-Za-z0-9]{15,18}))",
             api("sobject", [this](const httplib::Request& req, httplib::Response& res) {
                 engine_->remove(req.matches[1], req.matches[2]);
                 res.status = 204;
             }));
    // getDeleted: the records of an object deleted in a window (Salesforce keeps 30 days).
    s.Get(data + R"(/sobjects/([A-Za-z0-9_]+)/deleted/?)",
          api("deleted", [deleted](const httplib::Request& req, httplib::Response& res) {
              if (!req.has_param("start") || !req.has_param("end"))
                  return send_error(res, 400, "MISSING_ARGUMENT", "start and end are required");
              send_json(res, 200, deleted(req.matches[1], req.get_param_value("start"), req.get_param_value("end")));
          }));
}

void Emulator::process(const std::string& id) {
    std::string data, object_name, external;
    bool update = false;
    {
        std::lock_guard<HeldMutex> lock(mutex_);
        auto& job = jobs_.at(id);
        data = job.data;
        object_name = job.object;
        external = job.external;
        update = job.update;
    }
    auto rows = crmsync::support::csv::parse(data);
    if (rows.empty()) {
        std::lock_guard<HeldMutex> lock(mutex_);
        jobs_.at(id).processed_all = true;
        return;
    }
    const auto header = rows[0];
    auto with = [&](std::vector<std::string> first) {
        first.insert(first.end(), header.begin(), header.end());
        return crmsync::support::csv::row(first);
    };
    std::string success = with({"sf__Id", "sf__Created"}), failed = with({"sf__Id", "sf__Error"});
    int64_t processed = 0, failures = 0;
    std::uniform_real_distribution<double> roll(0, 1);
    for (size_t start = 1; start < rows.size(); start += 200) {
        std::lock_guard<HeldMutex> lock(mutex_);
        // Each column's field type, read from the schema once for these 200 rows.
        std::vector<std::string> types(header.size(), "string");
        if (const mockcrm::Object* object = engine_->schema().object(object_name))
            for (size_t c = 0; c < header.size(); ++c)
                if (const mockcrm::Field* f = object->field(header[c])) types[c] = f->type;
        engine_->transaction([&] {
            for (size_t r = start; r < std::min(rows.size(), start + 200); ++r) {
                const auto& row = rows[r];
                if (row.size() != header.size()) continue;
                json::object fields;
                std::string key;
                for (size_t c = 0; c < header.size(); ++c) {
                    const std::string& v = row[c];
                    const std::string& type = types[c];
                    if (mockcrm::iequals(header[c], external)) key = v;
                    if (v.empty() || (update && mockcrm::iequals(header[c], "Id"))) continue;  // empty: left as it is
                    if (v == "#N/A") fields[header[c]] = nullptr;
                    else if (type == "boolean") fields[header[c]] = v == "true";
                    else if (type == "int") fields[header[c]] = static_cast<int64_t>(std::stoll(v));
                    else if (type == "double" || type == "currency" || type == "percent") fields[header[c]] = std::stod(v);
                    else fields[header[c]] = v;
                }
                mockcrm::SaveResult result;
                if (faults_.lock_rate > 0 && roll(random_) < faults_.lock_rate)
                    result.errors.push_back({"UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record", {}});
                else if (update) result = engine_->update(object_name, key, fields);
                else result = engine_->upsert(object_name, external, key, fields);
                ++processed;
                std::vector<std::string> out;
                if (result.success) {
                    out = {result.id, result.created ? "true" : "false"};
                    out.insert(out.end(), row.begin(), row.end());
                    success += crmsync::support::csv::row(out);
                } else {
                    ++failures;
                    out = {"", result.errors[0].code + ":" + result.errors[0].message + " --"};
                    out.insert(out.end(), row.begin(), row.end());
                    failed += crmsync::support::csv::row(out);
                }
            }
        });
        // The job's progress, as Salesforce's job info says it while the job runs.
        auto& job = jobs_.at(id);
        job.processed = processed;
        job.failures = failures;
    }
    std::lock_guard<HeldMutex> lock(mutex_);
    auto& job = jobs_.at(id);
    job.successful = std::move(success);
    job.failed = std::move(failed);
    job.processed_all = true;  // its counts were set with its last 200 rows
}

}  // namespace sfemu
