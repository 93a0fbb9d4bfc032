// msrp-relay/store.hpp: the relay's credential store, an SQLite 3 database of HA1 values.
//
// An MSRP relay authenticates every client that sends AUTH with HTTP Digest (RFC 4976 §6.3,
// §9.1; see msrp/digest.hpp). It needs, per user and realm, the HA1 of each algorithm it
// offers, and never the password: RFC 7616 §5.2 has the server keep H(A1), the digest of user
// name, realm and password, in its "password file". HA1 is still as good as the password within
// its realm (§5.2 again), so the database file is created readable by its owner only, and
// deleted rows are overwritten (a changed password leaves no old HA1 behind in the file).
//
//   auto store = msrp::relayd::credential_store::open("/var/lib/msrp-relay/users.db");
//   if (!store) { /* store.error(), msrp::relayd::store_error_detail() */ }
//   store->add("alice", "relay.example.com", password, msrp::net::digest_hex);
//   auto ha1 = store->ha1("alice", "relay.example.com", msrp::digest::sha256);
//
// The schema, version 1 (`PRAGMA user_version`):
//
//   users(username, realm, algorithm, ha1, PRIMARY KEY (username, realm, algorithm))
//
// with one row per algorithm, `"SHA-256"` and `"MD5"` (RFC 7616 §3.7: the relay offers SHA-256
// first and MD5 for RFC 4976 clients that know only RFC 2617), `ha1` as lowercase hex.
//
// The relay and the `msrp-relay user` command may use the file at the same time: the database
// runs in WAL mode, so readers do not block the writer, and a writer waits up to five seconds
// for another. A `credential_store` object is used by one thread at a time.
//
// Errors are `store_errc` values in a `std::error_code` of `store_category()`; for `database`,
// `store_error_detail()` gives the file and SQLite's reason.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "msrp/digest.hpp"
#include "msrp/result.hpp"

struct sqlite3;

namespace msrp::relayd {

/// Errors of the credential store. Zero is never used, so a default `std::error_code` means
/// success.
enum class store_errc {
  exists = 1,     ///< The user already has credentials in the realm.
  no_such_user,   ///< The user has no credentials in the realm.
  bad_user_name,  ///< The user name is not 1 to 64 printable ASCII characters other than `"` and
                  ///< `\`: it is sent in a quoted-string of the Authorization header (RFC 4976
                  ///< §7), which clients write with no escaping.
  bad_realm,      ///< The realm is not 1 to 255 characters by the same rule: it is sent in a
                  ///< quoted-string of the WWW-Authenticate header.
  bad_password,   ///< The password is empty or longer than 1024 bytes.
  database,       ///< SQLite failed (file missing or unreadable, disk full, locked for longer than
                  ///< the busy timeout, not a database, a newer schema): see store_error_detail().
};

/// The error category of `store_errc`; its name is "msrp.store".
const std::error_category& store_category() noexcept;

/// Makes a `std::error_code` from a `store_errc`, so `store_errc` values compare with error
/// codes.
inline std::error_code make_error_code(store_errc e) noexcept {
  return {static_cast<int>(e), store_category()};
}

/// Describes the most recent `store_errc::database` failure on the calling thread, for logs and
/// people: the database file and SQLite's reason, for example "/var/lib/msrp-relay/users.db:
/// attempt to write a readonly database". Every function below clears it when called.
std::string store_error_detail();

/// A user known in a realm.
struct account {
  std::string user;
  std::string realm;

  friend bool operator==(const account&, const account&) = default;
};

/// The credentials of the relay's users: HA1 per user, realm and algorithm.
class credential_store {
 public:
  /// Opens the database `file`, creating it with mode 0600 (less the umask) and the schema on
  /// first use.
  ///
  /// Fails with `store_errc::database` if the file cannot be created or opened, is not an
  /// SQLite database, or has a schema version other than 1.
  static result<credential_store> open(const std::filesystem::path& file);

  /// Adds `user` to `realm` with the HA1 of `password` for SHA-256 and for MD5, computed with
  /// `hash` (`msrp::net::digest_hex`). The password itself is not stored (RFC 7616 §5.2).
  ///
  /// Fails with `bad_user_name`, `bad_realm`, `bad_password`, `exists` if the user already has
  /// credentials in the realm, or `database`. On failure the store is unchanged.
  std::error_code add(std::string_view user, std::string_view realm, std::string_view password,
                      const digest::hasher& hash);

  /// Replaces the HA1 values of `user` in `realm` with those of `password`, as `add()` computes
  /// them.
  ///
  /// Fails with `bad_user_name`, `bad_realm`, `bad_password`, `no_such_user` or `database`. On
  /// failure the store is unchanged.
  std::error_code set_password(std::string_view user, std::string_view realm,
                               std::string_view password, const digest::hasher& hash);

  /// Removes `user` from `realm`.
  ///
  /// Fails with `bad_user_name`, `bad_realm`, `no_such_user` or `database`.
  std::error_code remove(std::string_view user, std::string_view realm);

  /// True if `user` has credentials in `realm`.
  ///
  /// Fails with `bad_user_name`, `bad_realm` or `database`.
  result<bool> contains(std::string_view user, std::string_view realm) const;

  /// The users of `realm`, or of every realm when `realm` is empty, sorted by user name and
  /// then realm (byte order).
  ///
  /// Fails with `database`.
  result<std::vector<account>> list(std::string_view realm) const;

  /// The HA1 of `user` in `realm` for `algorithm` (`msrp::digest::sha256` or `md5`), as
  /// lowercase hex: what `msrp::digest::verify()` takes. This is the relay's lookup when it
  /// checks the credentials of an AUTH request (RFC 4976 §6.3).
  ///
  /// Returns nothing if the user, realm or algorithm is unknown, or if the database fails (then
  /// `store_error_detail()` says why); the relay answers both with a new challenge.
  std::optional<std::string> ha1(std::string_view user, std::string_view realm,
                                 std::string_view algorithm) const;

 private:
  struct closer {
    void operator()(sqlite3* db) const noexcept;
  };

  explicit credential_store(std::unique_ptr<sqlite3, closer> db) noexcept : db_(std::move(db)) {}

  std::unique_ptr<sqlite3, closer> db_;
};

}  // namespace msrp::relayd

template <>
struct std::is_error_code_enum<msrp::relayd::store_errc> : std::true_type {};
