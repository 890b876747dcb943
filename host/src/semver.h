#pragma once
// Semantic versions and the ranges module manifests use to pick a plugin version:
// "1.2.3" (exact), "^1.2" (same major, at least 1.2.0), "~1.2" (same minor),
// ">=1.0.0 <2.0.0" (comparators, all must hold), "*" (any).
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace crmsync {

struct Version {
    int major = 0, minor = 0, patch = 0;
    auto operator<=>(const Version&) const = default;
    std::string text() const;
};

std::optional<Version> parse_version(std::string_view text);

class VersionRange {
public:
    // nullopt when the text is not a range of the forms above.
    static std::optional<VersionRange> parse(std::string_view text);
    bool contains(const Version& v) const;
    const std::string& text() const { return text_; }

private:
    struct Bound {
        enum class Op { eq, lt, le, gt, ge } op;
        Version version;
    };
    std::string text_;
    std::vector<Bound> bounds_;
};

}  // namespace crmsync
