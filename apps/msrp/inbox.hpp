// apps/msrp/inbox.hpp: received messages into files, atomically.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "msrp/endpoint.hpp"

namespace msrp::cli {

/// What the inbox did with an event.
struct delivery {
  enum class kind { saved, aborted, failed } what;
  std::string message_id;
  std::filesystem::path file;  ///< For saved messages.
  std::uint64_t size = 0;
  std::string content_type;
  std::string detail;  ///< Why it failed or was aborted.
};

/// Writes each received message into a file in `folder`. A large message is written piece by
/// piece into a hidden temporary file that is renamed to its final name only when complete:
/// a failed or aborted transfer leaves no file under the final name. The final name comes
/// from Content-Disposition's filename (its last path component) or else the Message-ID.
class inbox {
 public:
  explicit inbox(std::filesystem::path folder) : folder_(std::move(folder)) {}
  ~inbox();
  inbox(const inbox&) = delete;
  inbox& operator=(const inbox&) = delete;

  /// Handles a receiving event; returns what became of a message when it ends.
  std::optional<delivery> handle(const event& e);

  /// Removes the temporary files of messages still in progress (the connection is gone) and
  /// says which they were.
  std::vector<delivery> discard_unfinished();

 private:
  struct partial {
    int fd = -1;
    std::filesystem::path temporary;
    std::string name;
    std::string content_type;
  };

  std::optional<delivery> save_whole(const events::message_received& m);
  std::optional<delivery> begin(const events::message_started& m);
  std::optional<delivery> write(const events::message_piece& m);
  std::optional<delivery> complete(const events::message_completed& m);
  std::optional<delivery> abort(const std::string& id, std::string why);
  std::filesystem::path final_path(const std::string& name) const;

  std::filesystem::path folder_;
  std::map<std::string, partial> partials_;
};

/// The file name a message asks for (Content-Disposition filename), or one made from its
/// Message-ID and type; never a path.
std::string file_name_for(const message& head, std::string_view message_id);

}  // namespace msrp::cli
