#include "semver.h"

#include <charconv>
#include <sstream>
#include <vector>

namespace crmsync {

std::string Version::text() const { return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch); }

namespace {
// Parses "1", "1.2" or "1.2.3"; says how many parts were given.
std::optional<std::pair<Version, int>> parse_partial(std::string_view text) {
    Version v;
    int* parts[] = {&v.major, &v.minor, &v.patch};
    int count = 0;
    while (count < 3) {
        int value = 0;
        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
        if (ec != std::errc() || end == text.data() || value < 0) return std::nullopt;
        *parts[count++] = value;
        text.remove_prefix(static_cast<size_t>(end - text.data()));
        if (text.empty()) break;
        if (text.front() != '.') return std::nullopt;
        text.remove_prefix(1);
    }
    if (!text.empty()) return std::nullopt;
    return std::make_pair(v, count);
}
}  // namespace

std::optional<Version> parse_version(std::string_view text) {
    auto dash = text.find_first_of("-+");  // pre-release/build tags are not ordered here
    auto parsed = parse_partial(text.substr(0, dash));
    if (!parsed || parsed->second != 3) return std::nullopt;
    return parsed->first;
}

std::optional<VersionRange> VersionRange::parse(std::string_view text) {
    VersionRange range;
    range.text_ = std::string(text);
    std::istringstream words{std::string(text)};
    std::string word;
    bool any = false;
    using Op = Bound::Op;
    while (words >> word) {
        any = true;
        if (word == "*") continue;
        std::string_view w = word;
        if (w.front() == '^' || w.front() == '~') {
            auto parsed = parse_partial(w.substr(1));
            if (!parsed) return std::nullopt;
            auto [low, parts] = *parsed;
            Version high = low;
            if (w.front() == '^' && low.major > 0) high = {low.major + 1, 0, 0};
            else if (w.front() == '^' && parts >= 2) high = {0, low.minor + 1, 0};
            else if (w.front() == '^') high = {1, 0, 0};
            else if (parts >= 2) high = {low.major, low.minor + 1, 0};
            else high = {low.major + 1, 0, 0};
            range.bounds_.push_back({Op::ge, low});
            range.bounds_.push_back({Op::lt, high});
            continue;
        }
        Op op = Op::eq;
        if (w.starts_with(">=")) op = Op::ge, w.remove_prefix(2);
        else if (w.starts_with("<=")) op = Op::le, w.remove_prefix(2);
        else if (w.starts_with(">")) op = Op::gt, w.remove_prefix(1);
        else if (w.starts_with("<")) op = Op::lt, w.remove_prefix(1);
        else if (w.starts_with("=")) w.remove_prefix(1);
        auto parsed = parse_partial(w);
        if (!parsed) return std::nullopt;
        if (op == Op::eq && parsed->second < 3) {
            // "1.2" means any 1.2.x, like "~1.2".
            Version high = parsed->second == 2 ? Version{parsed->first.major, parsed->first.minor + 1, 0}
                                               : Version{parsed->first.major + 1, 0, 0};
            range.bounds_.push_back({Op::ge, parsed->first});
            range.bounds_.push_back({Op::lt, high});
            continue;
        }
        range.bounds_.push_back({op, parsed->first});
    }
    if (!any) return std::nullopt;
    return range;
}

bool VersionRange::contains(const Version& v) const {
    for (const auto& b : bounds_) {
        bool ok = false;
        switch (b.op) {
            case Bound::Op::eq: ok = v == b.version; break;
            case Bound::Op::lt: ok = v < b.version; break;
            case Bound::Op::le: ok = v <= b.version; break;
            case Bound::Op::gt: ok = v > b.version; break;
            case Bound::Op::ge: ok = v >= b.version; break;
        }
        if (!ok) return false;
    }
    return true;
}

}  // namespace crmsync
