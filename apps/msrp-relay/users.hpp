// msrp-relay/users.hpp: `msrp-relay user add|del|list|passwd`, the administration of the
// relay's credential store (store.hpp) from the command line.
//
//   msrp-relay user add alice      # asks for the password twice, stores its HA1s
//   msrp-relay user passwd alice   # the same for an existing user
//   msrp-relay user del alice
//   msrp-relay user list           # "alice<TAB>relay.example.com", one user per line
//   msrp-relay user add bob --store postgresql://msrp@db.example.com/msrp   # a shared store
//
// A password is never taken from an argument, where other users could read it in the process
// list: it is read from the terminal without echo, or as one line from standard input when
// that is not a terminal (`printf '%s\n' "$password" | msrp-relay user add alice`).
#pragma once

#include <istream>
#include <ostream>
#include <string>

namespace msrp::relayd {

/// Runs the user command `action` ("add", "del", "list" or "passwd") on the credential store
/// at `store` (an SQLite file, created if missing, or a postgresql:// URI; see `open_store`) and
/// returns the exit status.
///
/// - add: adds `user` to `realm`. The password is read twice from the terminal, with echo off,
///   when `in` is `std::cin` and standard input is a terminal (prompts go to `err`); otherwise
///   once, as one line from `in` without its line ending.
/// - passwd: changes the password of `user` in `realm`, read as for add.
/// - del: removes `user` from `realm`.
/// - list: writes the users of `realm` (of every realm when `realm` is empty) to `out`, one
///   `user<TAB>realm` line each, sorted; `user` is not used.
///
/// Returns 0 on success; 1 if the operation failed (the user exists, no such user, the two
/// passwords differ, the database failed); 2 for a usage error (unknown action, bad user name or
/// realm, empty or overlong password). On failure writes one line to `err`, starting
/// "msrp-relay: ".
int run_user_command(const std::string& action, const std::string& user, const std::string& store,
                     const std::string& realm, std::istream& in, std::ostream& out,
                     std::ostream& err);

}  // namespace msrp::relayd
