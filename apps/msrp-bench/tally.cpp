#include "tally.hpp"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include <sys/resource.h>
#include <unistd.h>

namespace msrp::bench {

pattern::pattern() : block_(2 * size_) {
  std::mt19937_64 random(4975);  // fixed: runs are reproducible
  for (std::size_t i = 0; i < size_; i += 8) {
    const auto word = random();
    std::memcpy(block_.data() + i, &word, 8);
  }
  std::copy_n(block_.begin(), size_, block_.begin() + size_);
}

std::uint64_t pattern::start(std::size_t pair, std::uint64_t seq) {
  return (pair * 7919 + seq * 104'729) % size_;
}

void pattern::copy(std::uint64_t start, std::uint64_t offset, std::span<char> into) const {
  while (!into.empty()) {
    const auto at = (start + offset) % size_;
    const auto n = std::min<std::size_t>(into.size(), size_);
    std::memcpy(into.data(), block_.data() + at, n);
    into = into.subspan(n);
    offset += n;
  }
}

bool pattern::matches(std::uint64_t start, std::uint64_t offset, std::string_view bytes) const {
  while (!bytes.empty()) {
    const auto at = (start + offset) % size_;
    const auto n = std::min<std::size_t>(bytes.size(), size_);
    if (std::memcmp(bytes.data(), block_.data() + at, n) != 0) return false;
    bytes.remove_prefix(n);
    offset += n;
  }
  return true;
}

percentiles summarize(std::vector<std::uint32_t>& samples) {
  if (samples.empty()) return {};
  std::sort(samples.begin(), samples.end());
  const auto at = [&](double q) {
    const auto index = static_cast<std::size_t>(q * static_cast<double>(samples.size() - 1));
    return static_cast<double>(samples[index]);
  };
  return {at(0.5), at(0.99), at(0.999), static_cast<double>(samples.back())};
}

double own_cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const auto seconds = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

std::optional<std::uint64_t> rss_kib(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) != 0) continue;
    std::istringstream fields(line.substr(6));
    std::uint64_t kib = 0;
    if (fields >> kib) return kib;
  }
  return std::nullopt;
}

std::optional<double> cpu_seconds(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  if (!std::getline(in, text)) return std::nullopt;
  // The command name, in parentheses, may hold spaces: fields are counted after it.
  const auto close = text.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream fields(text.substr(close + 2));
  std::string skip;
  for (int field = 3; field < 14; ++field)
    fields >> skip;  // state (3) to cmajflt (13)
  std::uint64_t user = 0, system = 0;
  if (!(fields >> user >> system)) return std::nullopt;
  return static_cast<double>(user + system) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

}  // namespace msrp::bench
