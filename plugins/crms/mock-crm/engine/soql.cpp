#include "soql.h"

#include <cctype>
#include <chrono>
#include <cstdio>
#include <map>

namespace mockcrm {

bool is_date(std::string_view t) {
    int y, m, d;
    char extra;
    std::string s(t);
    if (s.size() != 10 || std::sscanf(s.c_str(), "%4d-%2d-%2d%c", &y, &m, &d, &extra) != 3) return false;
    return std::chrono::year_month_day{std::chrono::year(y), std::chrono::month(unsigned(m)), std::chrono::day(unsigned(d))}.ok();
}

bool parse_datetime_ms(std::string_view text, int64_t& ms_out) {
    std::string s(text);
    int y, mo, d, h, mi, sec, n = 0;
    if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6) return false;
    using namespace std::chrono;
    year_month_day ymd{year(y), month(unsigned(mo)), day(unsigned(d))};
    if (!ymd.ok() || h > 23 || mi > 59 || sec > 59) return false;
    int64_t ms = duration_cast<milliseconds>(sys_days(ymd).time_since_epoch()).count() + ((h * 60LL + mi) * 60 + sec) * 1000;
    size_t pos = static_cast<size_t>(n);
    if (pos < s.size() && s[pos] == '.') {
        int digits = 0, frac = 0;
        for (++pos; pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos])); ++pos)
            if (digits < 3) frac = frac * 10 + (s[pos] - '0'), ++digits;
        while (digits++ < 3) frac *= 10;
        ms += frac;
    }
    if (pos < s.size() && s[pos] == 'Z') {
        ++pos;
    } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
        int oh, om;
        int sign = s[pos] == '-' ? -1 : 1;
        if (std::sscanf(s.c_str() + pos + 1, "%2d:%2d", &oh, &om) == 2) pos += 6;
        else if (std::sscanf(s.c_str() + pos + 1, "%2d%2d", &oh, &om) == 2) pos += 5;
        else return false;
        ms -= sign * (oh * 60LL + om) * 60000;
    } else {
        return false;
    }
    if (pos != s.size()) return false;
    ms_out = ms;
    return true;
}

std::string format_datetime(int64_t ms) {
    using namespace std::chrono;
    sys_time<milliseconds> tp{milliseconds(ms)};
    auto dp = floor<days>(tp);
    year_month_day ymd{dp};
    hh_mm_ss<milliseconds> hms{tp - dp};
    char buf[40];
    std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d.%03d+0000", int(ymd.year()), unsigned(ymd.month()),
                  unsigned(ymd.day()), int(hms.hours().count()), int(hms.minutes().count()), int(hms.seconds().count()),
                  int(hms.subseconds().count()));
    return buf;
}

bool normalize_datetime(std::string_view text, std::string& out) {
    int64_t ms = 0;
    if (!parse_datetime_ms(text, ms)) return false;
    out = format_datetime(ms);
    return true;
}

namespace {

struct Token {
    enum Kind { word, string, number, literal, symbol, end } kind;
    std::string text;
};

std::vector<Token> tokenize(const std::string& q) {
    std::vector<Token> out;
    size_t i = 0;
    while (i < q.size()) {
        char c = q[i];
        if (std::isspace(static_cast<unsigned char>(c))) {
            ++i;
        } else if (c == '\'') {
            std::string s;
            for (++i;; ++i) {
                if (i >= q.size()) throw CrmError("MALFORMED_QUERY", "unterminated string literal");
                if (q[i] == '\\' && i + 1 < q.size()) {
                    char e = q[++i];
                    s += e == 'n' ? '\n' : e == 't' ? '\t' : e;
                } else if (q[i] == '\'') {
                    ++i;
                    break;
                } else {
                    s += q[i];
                }
            }
            out.push_back({Token::string, s});
        } else if (std::isdigit(static_cast<unsigned char>(c)) ||
                   (c == '-' && i + 1 < q.size() && std::isdigit(static_cast<unsigned char>(q[i + 1])))) {
            size_t start = i++;
            while (i < q.size() &&
                   (std::isalnum(static_cast<unsigned char>(q[i])) || q[i] == '.' || q[i] == ':' || q[i] == '-' || q[i] == '+'))
                ++i;
            std::string t = q.substr(start, i - start);
            bool literal = t.find('-', 1) != std::string::npos;
            out.push_back({literal ? Token::literal : Token::number, t});
        } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
            size_t start = i;
            while (i < q.size() && (std::isalnum(static_cast<unsigned char>(q[i])) || q[i] == '_' || q[i] == '.')) ++i;
            out.push_back({Token::word, q.substr(start, i - start)});
        } else {
            std::string two = q.substr(i, 2);
            if (two == "<=" || two == ">=" || two == "!=" || two == "<>") {
                out.push_back({Token::symbol, two});
                i += 2;
            } else if (std::string("=<>(),").find(c) != std::string::npos) {
                out.push_back({Token::symbol, std::string(1, c)});
                ++i;
            } else {
                throw CrmError("MALFORMED_QUERY", std::string("unexpected character '") + c + "'");
            }
        }
    }
    out.push_back({Token::end, ""});
    return out;
}

std::string upper(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return s;
}

std::string quote_ident(const std::string& name) { return "\"" + name + "\""; }

class Translator {
public:
    Translator(const std::string& soql, const Schema& schema) : tokens_(tokenize(soql)), schema_(schema) {}

    TranslatedQuery run() {
        expect_keyword("SELECT");
        std::vector<std::string> raw_fields;
        if (is_keyword("COUNT") && peek(1).text == "(") {
            pos_ += 2;
            expect_symbol(")");
            out_.count = true;
        } else {
            do raw_fields.push_back(expect_word("a field name"));
            while (accept_symbol(","));
        }
        expect_keyword("FROM");
        std::string object_name = expect_word("an object name");
        out_.object = schema_.object(object_name);
        if (!out_.object) throw CrmError("INVALID_TYPE", "sObject type '" + object_name + "' is not supported.");
        std::vector<std::string> columns;
        for (const auto& f : raw_fields) {
            SelectedField sel;
            std::string column = resolve(f, sel, true);
            columns.push_back(column);
            out_.fields.push_back(std::move(sel));
        }
        std::string where, order, limit;
        if (accept_keyword("WHERE")) where = " WHERE " + condition();
        if (accept_keyword("ORDER")) {
            expect_keyword("BY");
            do {
                SelectedField sel;
                std::string col = resolve(expect_word("a field name"), sel, false);
                bool desc = accept_keyword("DESC");
                if (!desc) accept_keyword("ASC");
                std::string nulls = desc ? " NULLS LAST" : " NULLS FIRST";
                if (accept_keyword("NULLS"))
                    nulls = accept_keyword("LAST") ? " NULLS LAST" : (expect_keyword("FIRST"), " NULLS FIRST");
                order += (order.empty() ? " ORDER BY " : ", ") + col + (desc ? " DESC" : " ASC") + nulls;
            } while (accept_symbol(","));
        }
        if (!out_.count) order += (order.empty() ? " ORDER BY " : ", ") + std::string("t._seq");
        if (accept_keyword("LIMIT")) limit = " LIMIT " + std::to_string(expect_integer());
        if (accept_keyword("OFFSET"))
            limit += (limit.empty() ? " LIMIT -1" : "") + std::string(" OFFSET ") + std::to_string(expect_integer());
        if (peek().kind != Token::end) throw CrmError("MALFORMED_QUERY", "unexpected token '" + peek().text + "'");

        std::string select;
        if (out_.count) select = "COUNT(*)";
        for (const auto& c : columns) select += (select.empty() ? "" : ", ") + c;
        out_.sql = "SELECT " + select + " FROM " + quote_ident(out_.object->name) + " AS t" + joins_ + where +
                   (out_.count ? "" : order) + limit;
        return std::move(out_);
    }

private:
    const Token& peek(size_t ahead = 0) const { return tokens_[std::min(pos_ + ahead, tokens_.size() - 1)]; }
    bool is_keyword(const char* k) const { return peek().kind == Token::word && upper(peek().text) == k; }
    bool accept_keyword(const char* k) {
        if (!is_keyword(k)) return false;
        ++pos_;
        return true;
    }
    void expect_keyword(const char* k) {
        if (!accept_keyword(k))
            throw CrmError("MALFORMED_QUERY", std::string("expecting '") + k + "', unexpected token: '" + peek().text + "'");
    }
    bool accept_symbol(const char* s) {
        if (peek().kind != Token::symbol || peek().text != s) return false;
        ++pos_;
        return true;
    }
    void expect_symbol(const char* s) {
        if (!accept_symbol(s))
            throw CrmError("MALFORMED_QUERY", std::string("expecting '") + s + "', unexpected token: '" + peek().text + "'");
    }
    std::string expect_word(const char* what) {
        if (peek().kind != Token::word)
            throw CrmError("MALFORMED_QUERY", std::string("expecting ") + what + ", unexpected token: '" + peek().text + "'");
        return tokens_[pos_++].text;
    }
    // LIMIT and OFFSET: a whole number of at most 9 digits (Salesforce's OFFSET stops at 2,000).
    int64_t expect_integer() {
        const std::string text = peek().text;
        if (peek().kind != Token::number || text.empty() || text.size() > 9 ||
            text.find_first_not_of("0123456789") != std::string::npos)
            throw CrmError("MALFORMED_QUERY", "LIMIT and OFFSET take a whole number from 0 to 999999999, not '" + text + "'");
        ++pos_;
        return std::stoll(text);
    }

    // "Name" -> t."Name"; "Account.Name" -> a LEFT JOIN and j1."Name".
    std::string resolve(const std::string& dotted, SelectedField& sel, bool selecting) {
        auto dot = dotted.find('.');
        const Object* obj = out_.object;
        std::string alias = "t";
        std::string name = dotted;
        if (dot != std::string::npos) {
            std::string rel = dotted.substr(0, dot);
            name = dotted.substr(dot + 1);
            if (name.find('.') != std::string::npos)
                throw CrmError("MALFORMED_QUERY", "only one relationship hop is supported: " + dotted);
            const Field* ref = obj->relationship(rel);
            if (!ref)
                throw CrmError("INVALID_FIELD", "Didn't understand relationship '" + rel + "' in field path. " +
                                                    "No such relationship on entity '" + obj->name + "'.");
            if (ref->reference_to.size() != 1)
                throw CrmError("INVALID_FIELD",
                               "relationship '" + rel + "' is polymorphic; the mock supports single-object relationships only");
            const Object* parent = schema_.object(ref->reference_to[0]);
            auto key = ref->relationship;
            auto it = join_alias_.find(key);
            if (it == join_alias_.end()) {
                std::string a = "j" + std::to_string(join_alias_.size() + 1);
                joins_ +=
                    " LEFT JOIN " + quote_ident(parent->name) + " AS " + a + " ON " + a + ".\"Id\" = t." + quote_ident(ref->name);
                it = join_alias_.emplace(key, a).first;
            }
            alias = it->second;
            obj = parent;
            sel.path.push_back(ref->relationship);
        }
        const Field* field = nullptr;
        std::string canonical;
        if (iequals(name, "Id") || iequals(name, "CreatedDate") || iequals(name, "LastModifiedDate") ||
            iequals(name, "SystemModstamp")) {
            canonical = iequals(name, "Id")                 ? "Id"
                        : iequals(name, "CreatedDate")      ? "CreatedDate"
                        : iequals(name, "LastModifiedDate") ? "LastModifiedDate"
                                                            : "SystemModstamp";
        } else {
            field = obj->field(name);
            if (!field)
                throw CrmError("INVALID_FIELD", "No such column '" + name + "' on entity '" + obj->name +
                                                    "'. If you are attempting to use a custom field, be sure to append the '__c' "
                                                    "after the custom field name.");
            canonical = field->name;
        }
        sel.path.push_back(canonical);
        sel.field = field;
        if (field && field->type == "junctionidlist") {
            if (!selecting) throw CrmError("INVALID_FIELD", field->name + " can only be selected");
            return "(SELECT json_group_array(RelationId) FROM (SELECT RelationId FROM _who_relation WHERE ActivityId = " + alias +
                   ".\"Id\" ORDER BY Seq))";
        }
        return alias + "." + quote_ident(canonical);
    }

    std::string condition() {
        std::string left = conjunction();
        while (accept_keyword("OR")) left = "(" + left + " OR " + conjunction() + ")";
        return left;
    }
    std::string conjunction() {
        std::string left = negation();
        while (accept_keyword("AND")) left = "(" + left + " AND " + negation() + ")";
        return left;
    }
    std::string negation() {
        if (accept_keyword("NOT")) return "(NOT " + negation() + ")";
        if (accept_symbol("(")) {
            std::string inner = condition();
            expect_symbol(")");
            return "(" + inner + ")";
        }
        return comparison();
    }
    std::string comparison() {
        SelectedField sel;
        std::string col = resolve(expect_word("a field name"), sel, false);
        bool negated = false;
        if (accept_keyword("NOT")) {
            negated = true;
            if (!is_keyword("IN")) throw CrmError("MALFORMED_QUERY", "expecting IN after NOT");
        }
        if (accept_keyword("IN")) {
            expect_symbol("(");
            std::string list;
            do {
                list += (list.empty() ? "?" : ", ?");
                out_.binds.push_back(value(sel.field));
            } while (accept_symbol(","));
            expect_symbol(")");
            return col + (negated ? " NOT IN (" : " IN (") + list + ")";
        }
        if (accept_keyword("LIKE")) {
            if (peek().kind != Token::string) throw CrmError("MALFORMED_QUERY", "LIKE needs a string");
            out_.binds.push_back(tokens_[pos_++].text);
            return col + " LIKE ?";
        }
        if (peek().kind != Token::symbol) throw CrmError("MALFORMED_QUERY", "unexpected token: '" + peek().text + "'");
        std::string op = tokens_[pos_++].text;
        if (op == "<>") op = "!=";
        if (op == "(" || op == ")" || op == ",") throw CrmError("MALFORMED_QUERY", "unexpected token: '" + op + "'");
        SqlValue v = value(sel.field);
        if (std::holds_alternative<std::nullptr_t>(v)) {
            if (op == "=") return col + " IS NULL";
            if (op == "!=") return col + " IS NOT NULL";
            throw CrmError("MALFORMED_QUERY", "null can only be compared with = or !=");
        }
        out_.binds.push_back(std::move(v));
        if (op == "!=") return "(" + col + " IS NULL OR " + col + " != ?)";
        return col + " " + op + " ?";
    }
    SqlValue value(const Field* field) {
        const Token& t = tokens_[pos_];
        if (t.kind == Token::string) {
            ++pos_;
            if (field && field->type == "datetime") {
                std::string normalized;
                if (normalize_datetime(t.text, normalized)) return normalized;
            }
            return t.text;
        }
        if (t.kind == Token::number) {
            ++pos_;
            if (t.text.find('.') != std::string::npos) return std::stod(t.text);
            return static_cast<int64_t>(std::stoll(t.text));
        }
        if (t.kind == Token::literal) {
            ++pos_;
            std::string normalized;
            if (normalize_datetime(t.text, normalized)) return normalized;
            if (is_date(t.text)) {
                if (field && field->type == "datetime") return t.text + "T00:00:00.000+0000";
                return t.text;
            }
            throw CrmError("MALFORMED_QUERY", "invalid date or datetime literal '" + t.text + "'");
        }
        if (t.kind == Token::word) {
            std::string u = upper(t.text);
            ++pos_;
            if (u == "NULL") return nullptr;
            if (u == "TRUE") return int64_t{1};
            if (u == "FALSE") return int64_t{0};
        }
        throw CrmError("MALFORMED_QUERY", "expecting a value, unexpected token: '" + t.text + "'");
    }

    std::vector<Token> tokens_;
    size_t pos_ = 0;
    const Schema& schema_;
    TranslatedQuery out_;
    std::string joins_;
    std::map<std::string, std::string> join_alias_;
};

}  // namespace

TranslatedQuery translate_soql(const std::string& soql, const Schema& schema) { return Translator(soql, schema).run(); }

}  // namespace mockcrm
