// msrp-relay/sqlite_store.hpp: the credential store in an SQLite 3 database file, the default.
//
// The database file is created readable by its owner only, and deleted rows are overwritten (a
// changed password leaves no old HA1 behind in the file).
//
// The schema, version 1 (`PRAGMA user_version`):
//
//   users(username, realm, algorithm, ha1, PRIMARY KEY (username, realm, algorithm))
//
// The relay and the `msrp-relay user` command may use the file at the same time: the database
// runs in WAL mode, so readers do not block the writer, and a writer waits up to five seconds
// for another.
#pragma once

#include <filesystem>
#include <memory>

#include "store.hpp"

struct sqlite3;

namespace msrp::relayd {

class sqlite_store final : public credential_store {
 public:
  /// Opens the database `file`, creating it with mode 0600 (less the umask) and the schema on
  /// first use.
  ///
  /// Fails with `store_errc::database` if the file cannot be created or opened, is not an
  /// SQLite database, or has a schema version other than 1.
  static result<sqlite_store> open(const std::filesystem::path& file);

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
    void operator()(sqlite3* db) const noexcept;
  };

  explicit sqlite_store(std::unique_ptr<sqlite3, closer> db) noexcept : db_(std::move(db)) {}

  std::unique_ptr<sqlite3, closer> db_;
};

}  // namespace msrp::relayd
