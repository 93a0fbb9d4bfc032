// msrp-relay/postgres_store.hpp: the credential store in a PostgreSQL database (libpq), which
// several relays share: a user added through one relay authenticates on all of them.
//
// The store is named by a libpq connection URI, such as
//
//   postgresql://msrp@db.example.com:5432/msrp?sslmode=verify-full&passfile=/etc/msrp/pgpass
//
// (https://www.postgresql.org/docs/15/libpq-connect.html#LIBPQ-CONNSTRING). Its parameters
// and libpq's environment variables (PGPASSFILE, PGSSLMODE ...) apply; so that a database
// that is down is noticed quickly, `connect_timeout` is 2 seconds unless the URI sets it, and
// every statement gets 5 seconds to answer, after which the connection is dropped.
//
// The schema lives in the connection's search_path (the URI's `options=-csearch_path=NAME`
// picks another one). It is created, or migrated from an older version, when a store opens:
// under an advisory lock, so relays that start together migrate once.
//
//   msrp_relay_schema(version integer PRIMARY KEY, applied timestamptz)   -- one row per step
//   msrp_relay_users(username, realm, algorithm, ha1,                     -- version 1
//                    PRIMARY KEY (username, realm, algorithm))            -- byte order ("C")
//
// A database with a newer version than this program knows is refused. The role needs SELECT,
// INSERT and DELETE on msrp_relay_users (and CREATE for the first start); HA1 values are as
// good as passwords in their realm (RFC 7616 §5.2), so nobody else should read that table.
// PostgreSQL keeps deleted rows until VACUUM, so an old HA1 stays in its files for a while.
//
// A connection that breaks (the server restarted) is opened again at the next call; a lookup
// (`find_ha1`) that finds its connection broken tries once more on a new one.
#pragma once

#include <initializer_list>
#include <memory>
#include <string>

#include "store.hpp"

struct pg_conn;

namespace msrp::relayd {

class postgres_store final : public credential_store {
 public:
  /// Connects to the database of the connection URI `uri`, and creates or migrates the schema.
  ///
  /// Fails with `store_errc::database` if the server cannot be reached in time, refuses the
  /// login, or has a schema newer than this program's (see store_error_detail()).
  static result<postgres_store> open(const std::string& uri);

  std::error_code add(std::string_view user, std::string_view realm, std::string_view password,
                      const digest::hasher& hash) override;
  std::error_code set_password(std::string_view user, std::string_view realm,
                               std::string_view password, const digest::hasher& hash) override;
  std::error_code remove(std::string_view user, std::string_view realm) override;
  result<bool> contains(std::string_view user, std::string_view realm) override;
  result<std::vector<account>> list(std::string_view realm) override;
  result<std::optional<std::string>> find_ha1(std::string_view user, std::string_view realm,
                                              std::string_view algorithm) override;

 private:
  struct closer {
    void operator()(pg_conn* db) const noexcept;
  };
  struct rows;

  explicit postgres_store(std::string uri) : uri_(std::move(uri)) {}

  std::error_code connect();
  std::error_code migrate();
  result<rows> exec(const char* sql, std::initializer_list<std::string_view> params = {});
  template <class Body>
  std::error_code in_transaction(Body body);
  std::error_code insert_ha1s(std::string_view user, std::string_view realm,
                              std::string_view password, const digest::hasher& hash);
  std::error_code fail_here(const std::string& reason);

  std::string uri_;
  std::unique_ptr<pg_conn, closer> db_;  // null while there is no connection
  std::string sqlstate_;                 // of the last statement that failed on the server
};

}  // namespace msrp::relayd
