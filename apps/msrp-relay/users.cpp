// msrp-relay/users.cpp: the `msrp-relay user` command on the credential store.
#include "users.hpp"

#include <termios.h>
#include <unistd.h>

#include <iostream>
#include <optional>
#include <string_view>
#include <system_error>

#include "msrp/net/hash.hpp"
#include "store.hpp"

namespace msrp::relayd {
namespace {

// One line of `in` without its line ending (LF or CRLF); empty at the end of the input.
std::string read_line(std::istream& in) {
  std::string line;
  std::getline(in, line);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

// One line from the terminal on standard input, which `in` reads, without echoing it.
std::string read_hidden(std::istream& in, std::ostream& prompt_out, const std::string& prompt) {
  termios saved{};
  ::tcgetattr(STDIN_FILENO, &saved);
  termios quiet = saved;
  quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
  ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
  prompt_out << prompt << std::flush;
  std::string line = read_line(in);
  ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
  prompt_out << '\n';  // the user's Enter was not echoed either
  return line;
}

// The new password of `who`: typed twice on the terminal, or one line from a pipe or file.
// Nothing if the two typed passwords differ.
std::optional<std::string> read_password(std::istream& in, std::ostream& err,
                                         const std::string& who) {
  if (&in != &std::cin || ::isatty(STDIN_FILENO) == 0) return read_line(in);
  std::string password = read_hidden(in, err, "New password for " + who + ": ");
  if (read_hidden(in, err, "Retype new password: ") != password) return std::nullopt;
  return password;
}

}  // namespace

int run_user_command(const std::string& action, const std::string& user,
                     const std::string& store_location, const std::string& realm, std::istream& in,
                     std::ostream& out, std::ostream& err) {
  const std::string who = user + "@" + realm;
  const auto fail = [&err](int status, const std::string& message) {
    err << "msrp-relay: " << message << '\n';
    return status;
  };
  const auto fail_with = [&](std::error_code error) {
    if (error == store_errc::database) return fail(1, store_error_detail());
    if (error == store_errc::exists || error == store_errc::no_such_user) {
      return fail(1, who + ": " + error.message());
    }
    return fail(2, error.message());
  };

  if (action != "add" && action != "del" && action != "list" && action != "passwd") {
    return fail(2, "unknown user command \"" + action + "\" (add, del, list, passwd)");
  }
  auto opened = open_store(store_location);
  if (!opened) return fail_with(opened.error());
  auto& store = *opened;

  if (action == "list") {
    const auto accounts = store->list(realm);
    if (!accounts) return fail_with(accounts.error());
    for (const auto& account : *accounts)
      out << account.user << '\t' << account.realm << '\n';
    return 0;
  }
  if (action == "del") {
    const auto error = store->remove(user, realm);
    return error ? fail_with(error) : 0;
  }

  // add, passwd: refuse before asking for a password that could not be used.
  const auto found = store->contains(user, realm);
  if (!found) return fail_with(found.error());
  if (action == "add" && *found) return fail_with(store_errc::exists);
  if (action == "passwd" && !*found) return fail_with(store_errc::no_such_user);
  const auto password = read_password(in, err, who);
  if (!password) return fail(1, "passwords do not match");
  const digest::hasher hash = net::digest_hex;
  const auto error = action == "add" ? store->add(user, realm, *password, hash)
                                     : store->set_password(user, realm, *password, hash);
  return error ? fail_with(error) : 0;
}

}  // namespace msrp::relayd
