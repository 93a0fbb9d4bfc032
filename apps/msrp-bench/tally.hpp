// apps/msrp-bench/tally.hpp: message bodies that can be checked byte for byte, latency
// percentiles, and the CPU and memory of processes; no I/O beyond /proc.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "bench.hpp"

namespace msrp::bench {

/// The bodies msrp-bench sends: message `seq` of pair `pair` is a window of a fixed block of
/// random bytes, starting at an offset made of both and wrapping around, so a receiver can
/// check every byte it gets, at any offset, without keeping what was sent.
class pattern {
 public:
  pattern();
  /// Where the body of message `seq` of pair `pair` starts in the block.
  static std::uint64_t start(std::size_t pair, std::uint64_t seq);
  /// Fills `into` with the body bytes from `offset` on of the body that starts at `start`.
  void copy(std::uint64_t start, std::uint64_t offset, std::span<char> into) const;
  /// Whether `bytes` are the body bytes from `offset` on of the body that starts at `start`.
  bool matches(std::uint64_t start, std::uint64_t offset, std::string_view bytes) const;

 private:
  static constexpr std::size_t size_ = 1 << 20;
  std::vector<char> block_;  // the bytes twice, so any window up to size_ is contiguous
};

/// Percentiles of samples in microseconds (sorts them).
percentiles summarize(std::vector<std::uint32_t>& samples);

/// CPU time (user + system) this process has used, in seconds.
double own_cpu_seconds();
/// VmRSS of process `pid` in KiB, from /proc/PID/status.
std::optional<std::uint64_t> rss_kib(int pid);
/// CPU time (user + system) process `pid` has used, in seconds, from /proc/PID/stat.
std::optional<double> cpu_seconds(int pid);

}  // namespace msrp::bench
