#pragma once
// What the fakes answer with: a JSON body and a status, an OAuth-style refusal, and the
// rate limit (429 with Retry-After: 1 while a fake is told to throttle).
#include <httplib.h>

#include <boost/json.hpp>
#include <string>

namespace fakes {

inline void reply(httplib::Response& res, int status, const boost::json::value& body) {
    res.status = status;
    res.set_content(boost::json::serialize(body), "application/json");
}

// {"error": error, <text_key>: text} — OAuth's "error_description", most APIs' "message".
inline void refuse(httplib::Response& res, int status, const std::string& error, const std::string& text,
                   const char* text_key = "message") {
    reply(res, status, boost::json::object{{"error", error}, {text_key, text}});
}

// While `throttle` > 0, answers 429 (Retry-After: 1), counts it and returns true.
inline bool throttled(httplib::Response& res, int& throttle, int& count) {
    if (throttle <= 0) return false;
    --throttle;
    ++count;
    res.set_header("Retry-After", "1");
    refuse(res, 429, "rate_limited", "Too many requests");
    return true;
}

}  // namespace fakes
