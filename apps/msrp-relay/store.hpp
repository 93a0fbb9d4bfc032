// msrp-relay/store.hpp: the relay's credential store, the HA1 values of its users.
//
// An MSRP relay authenticates every client that sends AUTH with HTTP Digest (RFC 4976 §6.3,
// §9.1; see msrp/digest.hpp). It needs, per user and realm, the HA1 of each algorithm it
// offers, and never the password: RFC 7616 §5.2 has the server keep H(A1), the digest of user
// name, realm and password, in its "password file". HA1 is still as good as the password within
// its realm (§5.2 again), so the store must be readable by the relay and its administrators only.
//
// Two stores implement `credential_store`:
// - SQLite (sqlite_store.hpp), a file: the default, for one relay.
// - PostgreSQL (postgres_store.hpp), a database several relays share, so a user added through
//   one relay authenticates on all of them (scale-out).
// `open_store` picks one from a location: a postgresql:// (or postgres://) URI, or a file name.
//
//   auto store = msrp::relayd::open_store("/var/lib/msrp-relay/users.db");
//   if (!store) { /* store.error(), msrp::relayd::store_error_detail() */ }
//   (*store)->add("alice", "relay.example.com", password, msrp::net::digest_hex);
//   auto ha1 = (*store)->find_ha1("alice", "relay.example.com", msrp::digest::sha256);
//
// Every store keeps one row per user, realm and algorithm, `"SHA-256"` and `"MD5"` (RFC 7616
// §3.7: the relay offers SHA-256 first and MD5 for RFC 4976 clients that know only RFC 2617),
// with the HA1 as lowercase hex. A `credential_store` object is used by one thread at a time;
// the relay reads through a pool of them (lookup_pool.hpp), one per worker thread.
//
// Errors are `store_errc` values in a `std::error_code` of `store_category()`; for `database`,
// `store_error_detail()` gives the store and its reason.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "msrp/digest.hpp"
#include "msrp/result.hpp"

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
  database,       ///< The database failed (SQLite: file missing or unreadable, disk full, locked
                  ///< for longer than the busy timeout, not a database; PostgreSQL: unreachable,
                  ///< refused the login, timed out; either: a newer schema): see
                  ///< store_error_detail().
};

/// The error category of `store_errc`; its name is "msrp.store".
const std::error_category& store_category() noexcept;

/// Makes a `std::error_code` from a `store_errc`, so `store_errc` values compare with error
/// codes.
inline std::error_code make_error_code(store_errc e) noexcept {
  return {static_cast<int>(e), store_category()};
}

/// Describes the most recent `store_errc::database` failure on the calling thread, for logs and
/// people: the store (a file, or a URI without its password) and the database's reason, for
/// example "/var/lib/msrp-relay/users.db: attempt to write a readonly database". Every function
/// of a store clears it when called.
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
  virtual ~credential_store() = default;

  /// Adds `user` to `realm` with the HA1 of `password` for SHA-256 and for MD5, computed with
  /// `hash` (`msrp::net::digest_hex`). The password itself is not stored (RFC 7616 §5.2).
  ///
  /// Fails with `bad_user_name`, `bad_realm`, `bad_password`, `exists` if the user already has
  /// credentials in the realm, or `database`. On failure the store is unchanged.
  virtual std::error_code add(std::string_view user, std::string_view realm,
                              std::string_view password, const digest::hasher& hash) = 0;

  /// Replaces the HA1 values of `user` in `realm` with those of `password`, as `add()` computes
  /// them.
  ///
  /// Fails with `bad_user_name`, `bad_realm`, `bad_password`, `no_such_user` or `database`. On
  /// failure the store is unchanged.
  virtual std::error_code set_password(std::string_view user, std::string_view realm,
                                       std::string_view password, const digest::hasher& hash) = 0;

  /// Removes `user` from `realm`.
  ///
  /// Fails with `bad_user_name`, `bad_realm`, `no_such_user` or `database`.
  virtual std::error_code remove(std::string_view user, std::string_view realm) = 0;

  /// True if `user` has credentials in `realm`.
  ///
  /// Fails with `bad_user_name`, `bad_realm` or `database`.
  virtual result<bool> contains(std::string_view user, std::string_view realm) = 0;

  /// The users of `realm`, or of every realm when `realm` is empty, sorted by user name and
  /// then realm (byte order).
  ///
  /// Fails with `database`.
  virtual result<std::vector<account>> list(std::string_view realm) = 0;

  /// The HA1 of `user` in `realm` for `algorithm` (`msrp::digest::sha256` or `md5`), as
  /// lowercase hex: what `msrp::digest::verify()` takes. This is the relay's lookup when it
  /// checks the credentials of an AUTH request (RFC 4976 §6.3). Nothing if the user, realm or
  /// algorithm is unknown.
  ///
  /// Fails with `database` when the store cannot answer (the relay then answers the AUTH 500).
  virtual result<std::optional<std::string>> find_ha1(std::string_view user, std::string_view realm,
                                                      std::string_view algorithm) = 0;

  /// `find_ha1` with a failure taken as nothing (then `store_error_detail()` says why).
  std::optional<std::string> ha1(std::string_view user, std::string_view realm,
                                 std::string_view algorithm);
};

/// True if `location` is a PostgreSQL connection URI (postgresql:// or postgres://).
bool is_postgres_uri(std::string_view location);

/// `location` for logs and messages: a URI's password, in its user information or its
/// `password` parameter, replaced by `***`.
std::string redacted(std::string_view location);

/// Opens the store at `location`: the PostgreSQL database of a postgresql:// URI (a libpq
/// connection URI), otherwise the SQLite file of that name. Creates the schema, or migrates an
/// older one, on first use.
///
/// Fails with `store_errc::database` (see store_error_detail()).
result<std::unique_ptr<credential_store>> open_store(const std::string& location);

// For the implementations of `credential_store`.
namespace detail {

/// The algorithms stored for each user, in the relay's order of preference (RFC 7616 §3.7).
inline constexpr std::string_view algorithms[] = {digest::sha256, digest::md5};

/// Checks `user` and `realm` by the rules of `bad_user_name` and `bad_realm`.
std::error_code check_names(std::string_view user, std::string_view realm);
/// Checks `password` by the rule of `bad_password`.
std::error_code check_password(std::string_view password);
/// Sets `store_error_detail()` and returns `store_errc::database`.
std::error_code fail(std::string detail);
/// Clears `store_error_detail()`.
void clear_detail();

}  // namespace detail

}  // namespace msrp::relayd

template <>
struct std::is_error_code_enum<msrp::relayd::store_errc> : std::true_type {};
