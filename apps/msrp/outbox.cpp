#include "outbox.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

namespace msrp::cli {

std::variant<outgoing_message, failure> file_message(const std::filesystem::path& file,
                                                     std::string content_type) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat info {};
  if (fd < 0 || ::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    const auto why = fd < 0 ? std::string(std::strerror(errno)) : "not a regular file";
    if (fd >= 0) ::close(fd);
    return failure{exit_status::bad_input, file.string() + ": " + why};
  }
  // The descriptor lives as long as the last copy of the reader.
  const auto owner = std::shared_ptr<int>(new int(fd), [](int* f) {
    ::close(*f);
    delete f;
  });
  outgoing_message m;
  m.content_type = std::move(content_type);
  m.size = static_cast<std::uint64_t>(info.st_size);
  m.headers.push_back(
      {"Content-Disposition", "attachment; filename=\"" + file.filename().string() + "\""});
  m.read = [owner](std::uint64_t offset, std::span<char> into) -> result<std::size_t> {
    for (;;) {
      const auto n = ::pread(*owner, into.data(), into.size(), static_cast<off_t>(offset));
      if (n >= 0) return static_cast<std::size_t>(n);
      if (errno != EINTR) return std::error_code(errno, std::generic_category());
    }
  };
  return m;
}

progress_bar::progress_bar(std::uint64_t total)
    : total_(total),
      enabled_(::isatty(STDERR_FILENO) == 1),
      start_(std::chrono::steady_clock::now()) {}

void progress_bar::update(std::uint64_t done) {
  const auto now = std::chrono::steady_clock::now();
  if (!enabled_ || now - last_ < std::chrono::milliseconds(200)) return;
  last_ = now;
  const double seconds = std::chrono::duration<double>(now - start_).count();
  const double rate = seconds > 0 ? static_cast<double>(done) / seconds : 0;
  const double percent =
      total_ ? 100.0 * static_cast<double>(done) / static_cast<double>(total_) : 100;
  const double left = rate > 0 ? static_cast<double>(total_ - done) / rate : 0;
  constexpr int width = 30;
  const int filled = static_cast<int>(percent * width / 100);
  std::fprintf(stderr, "\r[%-*.*s] %5.1f%%  %7.1f MB/s  %4.0fs left ", width, filled,
               "##############################", percent, rate / 1e6, left);
  std::fflush(stderr);
}

void progress_bar::finish() {
  if (enabled_) std::fprintf(stderr, "\r%*s\r", 70, "");
}

}  // namespace msrp::cli
