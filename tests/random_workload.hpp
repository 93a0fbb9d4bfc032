// Draws for the randomized nothing-lost tests (tests/endpoint_test.cpp in memory,
// tests/net/nothing_lost_test.cpp through relays): seeded, so a failing seed replays.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <iterator>
#include <map>
#include <random>
#include <string>

namespace msrp::test {

/// The number in environment variable `name`, or `fallback` when it is unset or empty.
inline std::uint64_t env_number(const char* name, std::uint64_t fallback) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return fallback;
  return std::strtoull(value, nullptr, 10);
}

/// The seeds a randomized test runs: PREFIX_SEED=n replays seed n alone, PREFIX_SEEDS=n runs
/// seeds 1 to n (`count` when unset); PREFIX_BIG=1 asks for the big sizes.
struct seed_plan {
  std::uint64_t first = 1, last = 1;
  bool big = false;
};
inline seed_plan seeds_from_env(const std::string& prefix, std::uint64_t count) {
  const auto one = env_number((prefix + "_SEED").c_str(), 0);
  const auto last = one != 0 ? one : env_number((prefix + "_SEEDS").c_str(), count);
  return {one != 0 ? one : 1, last, env_number((prefix + "_BIG").c_str(), 0) != 0};
}

inline std::uint64_t uniform(std::mt19937_64& random, std::uint64_t low, std::uint64_t high) {
  return std::uniform_int_distribution<std::uint64_t>(low, high)(random);
}

inline bool chance(std::mt19937_64& random, double p) {
  return std::bernoulli_distribution(p)(random);
}

/// Roughly log-uniform in [low, high]: each order of magnitude about as likely as the next.
inline std::uint64_t log_uniform(std::mt19937_64& random, std::uint64_t low, std::uint64_t high) {
  std::uniform_real_distribution<double> d(std::log(static_cast<double>(low)),
                                           std::log(static_cast<double>(high) + 1.0));
  return std::clamp(static_cast<std::uint64_t>(std::exp(d(random))), low, high);
}

/// Adds the byte range [begin, end) to `covered` (begin -> end, merged, none touching).
inline void cover(std::map<std::uint64_t, std::uint64_t>& covered, std::uint64_t begin,
                  std::uint64_t end) {
  auto it = covered.upper_bound(begin);
  if (it != covered.begin() && std::prev(it)->second >= begin) --it;
  while (it != covered.end() && it->first <= end) {
    begin = std::min(begin, it->first);
    end = std::max(end, it->second);
    it = covered.erase(it);
  }
  if (end > begin) covered[begin] = end;
}

}  // namespace msrp::test
