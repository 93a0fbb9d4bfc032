#include "inbox.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace msrp::cli {
namespace {

/// The filename parameter of a Content-Disposition value (RFC 2183), unquoted.
std::string disposition_filename(std::string_view value) {
  const auto at = value.find("filename=");
  if (at == std::string_view::npos) return {};
  auto name = value.substr(at + 9);
  if (name.starts_with('"')) {
    name.remove_prefix(1);
    name = name.substr(0, name.find('"'));
  } else {
    name = name.substr(0, name.find(';'));
  }
  return std::string(name);
}

bool write_all(int fd, std::string_view bytes, std::uint64_t offset) {
  while (!bytes.empty()) {
    const auto n = ::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
    offset += static_cast<std::uint64_t>(n);
  }
  return true;
}

}  // namespace

std::string file_name_for(const message& head, std::string_view message_id) {
  // Only the last path component, and never a hidden or parent name: a peer chooses it.
  auto name = disposition_filename(head.header("Content-Disposition").value_or(""));
  name = std::filesystem::path(name).filename().string();
  if (name.empty() || name.front() == '.') {
    const auto type = head.content_type().value_or("");
    name = std::string(message_id) + (type.starts_with("text/plain") ? ".txt" : ".bin");
  }
  return name;
}

inbox::~inbox() {
  discard_unfinished();
}

std::optional<delivery> inbox::handle(const event& e) {
  if (const auto* m = std::get_if<events::message_received>(&e)) return save_whole(*m);
  if (const auto* m = std::get_if<events::message_started>(&e)) return begin(*m);
  if (const auto* m = std::get_if<events::message_piece>(&e)) return write(*m);
  if (const auto* m = std::get_if<events::message_completed>(&e)) return complete(*m);
  if (const auto* m = std::get_if<events::message_aborted>(&e)) {
    return abort(m->message_id,
                 m->status ? "refused with " + std::to_string(m->status) : "aborted by the sender");
  }
  return std::nullopt;
}

std::filesystem::path inbox::final_path(const std::string& name) const {
  auto path = folder_ / name;
  for (int n = 1; std::filesystem::exists(path); ++n) {
    const auto stem = std::filesystem::path(name).stem().string();
    path = folder_ /
           (stem + '-' + std::to_string(n) + std::filesystem::path(name).extension().string());
  }
  return path;
}

std::optional<delivery> inbox::save_whole(const events::message_received& m) {
  events::message_started start{m.session, m.message_id, m.head, m.body.size()};
  if (auto failed = begin(start)) return failed;
  if (auto failed = write({m.session, m.message_id, 0, m.body})) return failed;
  return complete({m.session, m.message_id, m.body.size()});
}

std::optional<delivery> inbox::begin(const events::message_started& m) {
  partial p;
  p.name = file_name_for(m.head, m.message_id);
  p.content_type = std::string(m.head.content_type().value_or(""));
  p.temporary = folder_ / (".msrp-" + m.message_id + ".part");
  p.fd = ::open(p.temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (p.fd < 0) {
    return delivery{delivery::kind::failed,
                    m.message_id,
                    {},
                    0,
                    p.content_type,
                    p.temporary.string() + ": " + std::strerror(errno)};
  }
  partials_[m.message_id] = std::move(p);
  return std::nullopt;
}

std::optional<delivery> inbox::write(const events::message_piece& m) {
  const auto found = partials_.find(m.message_id);
  if (found == partials_.end()) return std::nullopt;
  if (!write_all(found->second.fd, m.bytes, m.offset)) {
    auto lost = abort(m.message_id, found->second.temporary.string() + ": " + std::strerror(errno));
    lost->what = delivery::kind::failed;
    return lost;
  }
  return std::nullopt;
}

std::optional<delivery> inbox::complete(const events::message_completed& m) {
  const auto found = partials_.find(m.message_id);
  if (found == partials_.end()) return std::nullopt;
  auto p = std::move(found->second);
  partials_.erase(found);
  const bool synced = ::fsync(p.fd) == 0;
  ::close(p.fd);
  const auto path = final_path(p.name);
  std::error_code error;
  if (synced) std::filesystem::rename(p.temporary, path, error);
  if (!synced || error) {
    std::filesystem::remove(p.temporary, error);
    return delivery{delivery::kind::failed,        m.message_id, {}, m.size, p.content_type,
                    "cannot save " + path.string()};
  }
  return delivery{delivery::kind::saved, m.message_id, path, m.size, p.content_type, {}};
}

std::optional<delivery> inbox::abort(const std::string& id, std::string why) {
  const auto found = partials_.find(id);
  if (found != partials_.end()) {
    ::close(found->second.fd);
    std::error_code ignored;
    std::filesystem::remove(found->second.temporary, ignored);
    partials_.erase(found);
  }
  return delivery{delivery::kind::aborted, id, {}, 0, {}, std::move(why)};
}

std::vector<delivery> inbox::discard_unfinished() {
  std::vector<delivery> lost;
  while (!partials_.empty()) {
    lost.push_back(*abort(partials_.begin()->first, "lost with the connection"));
  }
  return lost;
}

}  // namespace msrp::cli
