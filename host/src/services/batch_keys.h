#pragma once
// The keys one batch looks up: each once, in the order first seen, a query's worth at a
// time (one SOQL statement per kKeysPerQuery values keeps it far under 100,000 characters).
#include <algorithm>
#include <functional>
#include <set>
#include <string>
#include <vector>

namespace crmsync {

inline constexpr size_t kKeysPerQuery = 200;

struct Distinct {
    std::vector<std::string> values;
    std::set<std::string> seen;
    void add(const std::string& v) {
        if (seen.insert(v).second) values.push_back(v);
    }
};

// Calls `fn` with each run of at most kKeysPerQuery values.
inline void for_each_chunk(const std::vector<std::string>& values,
                           const std::function<void(const std::vector<std::string>&)>& fn) {
    for (size_t start = 0; start < values.size(); start += kKeysPerQuery)
        fn(std::vector<std::string>(values.begin() + static_cast<long>(start),
                                    values.begin() + static_cast<long>(std::min(values.size(), start + kKeysPerQuery))));
}

}  // namespace crmsync
