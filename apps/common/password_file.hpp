// apps/common/password_file.hpp: reading a relay password from a private file, for the
// command-line programs that authenticate to relays (msrp, msrp-bench).
#pragma once

#include <string>
#include <variant>

namespace msrp::apps {

/// Why a password file could not be used, in one line.
struct password_problem {
  std::string message;
};

/// The relay password: the first line of `file` (without a trailing CR), which must be private
/// to its owner (like ssh keys, a password file others can read is refused), or, when `file`
/// is empty, $MSRP_PASSWORD. Never take a password as an argument, which other users could
/// read in the process list.
///
/// Fails when the file is missing or unreadable, readable by group or others, or has an
/// empty first line, or with no file when $MSRP_PASSWORD is unset.
std::variant<std::string, password_problem> read_relay_password(const std::string& file);

}  // namespace msrp::apps
