// crmsync/support/soql.hpp — optional C++17 helpers for SOQL, the query dialect every CRM
// plugin answers: quoting values, IN lists, and turning a `lookup` fetch request into as few
// SELECT statements as fit a size budget. Shared by the host and the CRM plugins. Not part
// of the ABI: header-only, Boost.JSON only.
#ifndef CRMSYNC_SUPPORT_SOQL_HPP
#define CRMSYNC_SUPPORT_SOQL_HPP

#include <boost/json.hpp>
#include <cstddef>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace crmsync::support::soql {

// 'value' with ' and \ escaped, as SOQL string literals want them.
inline std::string literal(std::string_view value) {
    std::string out = "'";
    for (char c : value) {
        if (c == '\'' || c == '\\') out += '\\';
        out += c;
    }
    return out + "'";
}

// ('a', 'b', 'c')
inline std::string in_list(const std::vector<std::string>& values) {
    std::string out;
    for (const auto& v : values) out += (out.empty() ? "" : ", ") + literal(v);
    return "(" + out + ")";
}

// A `lookup` fetch request (fetch-request.schema.json): the records of `object` whose `by`
// fields equal one of the key tuples, with the `select` fields.
struct Lookup {
    std::string object;
    std::vector<std::string> by, select;
    std::vector<std::vector<std::string>> keys;  // each as long as `by`

    // Nothing, with `why`, when the request is not a well-formed lookup.
    static std::optional<Lookup> parse(const boost::json::object& request, std::string& why) {
        Lookup l;
        auto strings = [](const boost::json::value* v, std::vector<std::string>& out) {
            if (!v || !v->is_array()) return false;
            for (const auto& s : v->get_array()) {
                if (!s.is_string()) return false;
                out.emplace_back(s.get_string());
            }
            return true;
        };
        auto* object = request.if_contains("object");
        if (!object || !object->is_string() || object->get_string().empty()) return why = "lookup needs an object", std::nullopt;
        l.object = std::string(object->get_string());
        if (!strings(request.if_contains("by"), l.by) || l.by.empty())
            return why = "lookup needs \"by\", the fields to match", std::nullopt;
        if (!strings(request.if_contains("select"), l.select) || l.select.empty())
            return why = "lookup needs \"select\", the fields to read", std::nullopt;
        auto* keys = request.if_contains("keys");
        if (!keys || !keys->is_array()) return why = "lookup needs \"keys\"", std::nullopt;
        for (const auto& k : keys->get_array()) {
            std::vector<std::string> tuple;
            if (!strings(&k, tuple) || tuple.size() != l.by.size())
                return why = "each lookup key lists one text value per \"by\" field", std::nullopt;
            l.keys.push_back(std::move(tuple));
        }
        return l;
    }

    // SELECT statements that together cover every key, each as large as `budget` allows when
    // measured by `cost` (the statement's length, or its URL-encoded length for a GET: a
    // measure that adds up, the cost of a text being the sum of its parts'). A statement
    // selects by every `by` field's IN list: a superset when there are several, which the
    // caller narrows by comparing the tuples.
    std::vector<std::string> statements(std::size_t budget, const std::function<std::size_t(const std::string&)>& cost) const {
        std::string head = "SELECT ";
        for (std::size_t i = 0; i < select.size(); ++i) head += (i ? ", " : "") + select[i];
        head += " FROM " + object + " WHERE ";
        const std::size_t head_cost = cost(head), separator_cost = cost(", ");
        std::vector<std::string> out;
        // Per `by` field: the literals of its IN list so far, the values among them, and
        // the cost of " AND field IN ()".
        std::vector<std::vector<std::string>> lists(by.size());
        std::vector<std::set<std::string>> seen(by.size());
        std::vector<std::size_t> field_cost(by.size());
        for (std::size_t f = 0; f < by.size(); ++f) field_cost[f] = cost(by[f]) + 12;
        std::size_t used = head_cost;
        auto flush = [&] {
            if (lists.front().empty()) return;
            std::string statement = head;
            for (std::size_t f = 0; f < by.size(); ++f) {
                statement += f ? " AND " : "";
                statement += by[f];
                statement += " IN (";
                for (std::size_t i = 0; i < lists[f].size(); ++i) {
                    statement += i ? ", " : "";
                    statement += lists[f][i];
                }
                statement += ')';
            }
            out.push_back(std::move(statement));
            for (auto& l : lists) l.clear();
            for (auto& s : seen) s.clear();
            used = head_cost;
        };
        // Each value's literal and its cost are worked out once.
        std::vector<std::string> literals(by.size());
        std::vector<std::size_t> literal_cost(by.size());
        std::vector<bool> fresh(by.size());
        for (const auto& tuple : keys) {
            std::size_t extra = 0;
            for (std::size_t f = 0; f < by.size(); ++f) {
                literals[f] = literal(tuple[f]);
                literal_cost[f] = cost(literals[f]) + separator_cost;
                fresh[f] = !seen[f].count(tuple[f]);
                if (fresh[f]) extra += literal_cost[f] + (lists[f].empty() ? field_cost[f] : 0);
            }
            if (!lists.front().empty() && used + extra > budget) {
                flush();
                std::fill(fresh.begin(), fresh.end(), true);
            }
            for (std::size_t f = 0; f < by.size(); ++f) {
                if (lists[f].empty()) used += field_cost[f];
                if (!fresh[f]) continue;
                seen[f].insert(tuple[f]);
                used += literal_cost[f];
                lists[f].push_back(std::move(literals[f]));
            }
        }
        flush();
        return out;
    }
};

}  // namespace crmsync::support::soql

#endif
