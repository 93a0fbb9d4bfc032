// apps/msrp/outbox.hpp: messages to send from files, and a progress bar for them.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <variant>

#include "cli.hpp"

namespace msrp::cli {

/// A message whose body is read from `file` piece by piece as the connection takes it (never
/// whole into memory), with Content-Disposition naming the file (RFC 2183).
std::variant<outgoing_message, failure> file_message(const std::filesystem::path& file,
                                                     std::string content_type);

/// A one-line progress bar on stderr (percent, MB/s, time left), drawn only when stderr is a
/// terminal.
class progress_bar {
 public:
  explicit progress_bar(std::uint64_t total);
  /// Redraws with `done` bytes sent, at most five times a second.
  void update(std::uint64_t done);
  /// Clears the line.
  void finish();

 private:
  std::uint64_t total_;
  bool enabled_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace msrp::cli
