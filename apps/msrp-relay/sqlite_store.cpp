// msrp-relay/sqlite_store.cpp: the credential store on SQLite 3's C API.
//
// Every statement is constant SQL text, prepared where it is used, with user input bound to its
// parameters, so no user name, realm or password ever becomes SQL. Changes of more than one
// row run in one transaction, so a failure leaves the store as it was.
#include "sqlite_store.hpp"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <cerrno>
#include <initializer_list>

namespace msrp::relayd {
namespace {

namespace fs = std::filesystem;

constexpr int schema_version = 1;

// Readers never wait (WAL); a writer waits this long for another one, such as `msrp-relay
// user add` while the relay is busy, before failing with "database is locked".
constexpr int busy_timeout_ms = 5000;

using detail::check_names;
using detail::check_password;
using detail::fail;

std::error_code fail(sqlite3* db) {
  return fail(std::string(sqlite3_db_filename(db, "main")) + ": " + sqlite3_errmsg(db));
}

struct finalizer {
  void operator()(sqlite3_stmt* statement) const noexcept { sqlite3_finalize(statement); }
};
using statement = std::unique_ptr<sqlite3_stmt, finalizer>;

// Prepares `sql` with `params` bound to ?1, ?2 ... as text. Null on failure, with the reason in
// sqlite3_errmsg(db).
statement prepare(sqlite3* db, const char* sql, std::initializer_list<std::string_view> params) {
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v2(db, sql, -1, &raw, nullptr) != SQLITE_OK) return nullptr;
  statement prepared(raw);
  int index = 1;
  for (const std::string_view param : params) {
    // A null pointer would bind NULL, not the empty text of a default string_view.
    const char* text = param.data() != nullptr ? param.data() : "";
    if (sqlite3_bind_text64(raw, index++, text, param.size(), SQLITE_TRANSIENT, SQLITE_UTF8) !=
        SQLITE_OK) {
      return nullptr;
    }
  }
  return prepared;
}

// Runs a statement to its end, skipping any rows it returns (as PRAGMA journal_mode does).
std::error_code run(sqlite3* db, const char* sql,
                    std::initializer_list<std::string_view> params = {}) {
  const statement prepared = prepare(db, sql, params);
  if (!prepared) return fail(db);
  int status = SQLITE_ROW;
  while (status == SQLITE_ROW)
    status = sqlite3_step(prepared.get());
  return status == SQLITE_DONE ? std::error_code{} : fail(db);
}

std::string column_text(sqlite3_stmt* row, int column) {
  const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(row, column));
  return text == nullptr
             ? std::string{}
             : std::string(text, static_cast<std::size_t>(sqlite3_column_bytes(row, column)));
}

// Runs `body` in a transaction, committed if it succeeds and rolled back if anything fails.
// BEGIN IMMEDIATE takes the write lock at once, so two writers queue on the busy timeout
// rather than the second failing in the middle.
template <class Body>
std::error_code in_transaction(sqlite3* db, Body body) {
  if (auto error = run(db, "BEGIN IMMEDIATE")) return error;
  std::error_code error = body();
  if (!error) error = run(db, "COMMIT");
  // Some errors (SQLITE_FULL, SQLITE_IOERR ...) roll back by themselves; then there is nothing
  // to roll back. A failing ROLLBACK must not replace the reason for it.
  if (error && sqlite3_get_autocommit(db) == 0) {
    const std::string reason = store_error_detail();
    run(db, "ROLLBACK");
    fail(reason);
  }
  return error;
}

// RFC 7616 §5.2: one HA1 per algorithm, never the password.
std::error_code insert_ha1s(sqlite3* db, std::string_view user, std::string_view realm,
                            std::string_view password, const digest::hasher& hash) {
  for (const std::string_view algorithm : detail::algorithms) {
    const std::string ha1 = digest::ha1(hash, algorithm, user, realm, password);
    if (auto error =
            run(db, "INSERT INTO users (username, realm, algorithm, ha1) VALUES (?1, ?2, ?3, ?4)",
                {user, realm, algorithm, ha1})) {
      return error;
    }
  }
  return {};
}

// Creates the schema in a new database; accepts one this version made.
std::error_code check_schema(sqlite3* db) {
  return in_transaction(db, [db]() -> std::error_code {
    const statement query = prepare(db, "PRAGMA user_version", {});
    if (!query || sqlite3_step(query.get()) != SQLITE_ROW) return fail(db);
    const int version = sqlite3_column_int(query.get(), 0);
    if (version == schema_version) return {};
    if (version != 0) {
      return fail(std::string(sqlite3_db_filename(db, "main")) + ": schema version " +
                  std::to_string(version) + ", expected " + std::to_string(schema_version));
    }
    if (auto error = run(db,
                         "CREATE TABLE users (username TEXT NOT NULL, realm TEXT NOT NULL, "
                         "algorithm TEXT NOT NULL, ha1 TEXT NOT NULL, "
                         "PRIMARY KEY (username, realm, algorithm))")) {
      return error;
    }
    return run(db, "PRAGMA user_version = 1");  // schema_version; a PRAGMA takes no parameters
  });
}

}  // namespace

void sqlite_store::closer::operator()(sqlite3* db) const noexcept {
  sqlite3_close(db);
}

result<sqlite_store> sqlite_store::open(const fs::path& file) {
  detail::clear_detail();
  // RFC 7616 §5.2: HA1 is as good as the password, so the file is created 0600 before SQLite
  // opens it (SQLite would create it 0644); SQLite gives its -wal and -shm files the same mode.
  // O_EXCL: an existing file, or a symbolic link planted in its place, is opened as it is.
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd >= 0) {
    ::close(fd);
  } else if (const int error = errno; error != EEXIST) {
    return fail(file.string() + ": cannot create: " + std::generic_category().message(error));
  }

  sqlite3* raw = nullptr;
  const int status = sqlite3_open_v2(file.c_str(), &raw, SQLITE_OPEN_READWRITE, nullptr);
  std::unique_ptr<sqlite3, closer> db(raw);  // closes a handle that failed to open, too
  if (status != SQLITE_OK) {
    return fail(file.string() + ": " + (raw != nullptr ? sqlite3_errmsg(raw) : "out of memory"));
  }
  sqlite3_busy_timeout(db.get(), busy_timeout_ms);
  // WAL: the relay keeps reading while `msrp-relay user` writes. secure_delete: a replaced or
  // removed HA1 is overwritten with zeros, not left in a free page.
  for (const char* pragma : {"PRAGMA journal_mode = WAL", "PRAGMA secure_delete = ON"}) {
    if (auto error = run(db.get(), pragma)) return error;
  }
  if (auto error = check_schema(db.get())) return error;
  return sqlite_store(std::move(db));
}

std::error_code sqlite_store::add(std::string_view user, std::string_view realm,
                                  std::string_view password, const digest::hasher& hash) {
  detail::clear_detail();
  if (auto error = check_names(user, realm)) return error;
  if (auto error = check_password(password)) return error;
  return in_transaction(db_.get(), [&]() -> std::error_code {
    auto found = contains(user, realm);
    if (!found) return found.error();
    if (*found) return store_errc::exists;
    return insert_ha1s(db_.get(), user, realm, password, hash);
  });
}

std::error_code sqlite_store::set_password(std::string_view user, std::string_view realm,
                                           std::string_view password, const digest::hasher& hash) {
  detail::clear_detail();
  if (auto error = check_names(user, realm)) return error;
  if (auto error = check_password(password)) return error;
  return in_transaction(db_.get(), [&]() -> std::error_code {
    if (auto error = remove(user, realm)) return error;
    return insert_ha1s(db_.get(), user, realm, password, hash);
  });
}

std::error_code sqlite_store::remove(std::string_view user, std::string_view realm) {
  detail::clear_detail();
  if (auto error = check_names(user, realm)) return error;
  if (auto error =
          run(db_.get(), "DELETE FROM users WHERE username = ?1 AND realm = ?2", {user, realm})) {
    return error;
  }
  return sqlite3_changes(db_.get()) == 0 ? store_errc::no_such_user : std::error_code{};
}

result<bool> sqlite_store::contains(std::string_view user, std::string_view realm) {
  detail::clear_detail();
  if (auto error = check_names(user, realm)) return error;
  const statement query =
      prepare(db_.get(), "SELECT 1 FROM users WHERE username = ?1 AND realm = ?2", {user, realm});
  if (!query) return fail(db_.get());
  const int status = sqlite3_step(query.get());
  if (status != SQLITE_ROW && status != SQLITE_DONE) return fail(db_.get());
  return status == SQLITE_ROW;
}

result<std::vector<account>> sqlite_store::list(std::string_view realm) {
  detail::clear_detail();
  const statement query = prepare(db_.get(),
                                  "SELECT DISTINCT username, realm FROM users "
                                  "WHERE ?1 = '' OR realm = ?1 ORDER BY username, realm",
                                  {realm});
  if (!query) return fail(db_.get());
  std::vector<account> accounts;
  int status = 0;
  while ((status = sqlite3_step(query.get())) == SQLITE_ROW)
    accounts.push_back({column_text(query.get(), 0), column_text(query.get(), 1)});
  if (status != SQLITE_DONE) return fail(db_.get());
  return accounts;
}

result<std::optional<std::string>> sqlite_store::find_ha1(std::string_view user,
                                                          std::string_view realm,
                                                          std::string_view algorithm) {
  detail::clear_detail();
  const statement query = prepare(
      db_.get(), "SELECT ha1 FROM users WHERE username = ?1 AND realm = ?2 AND algorithm = ?3",
      {user, realm, algorithm});
  if (!query) return fail(db_.get());
  const int status = sqlite3_step(query.get());
  if (status == SQLITE_ROW) return std::optional<std::string>(column_text(query.get(), 0));
  if (status != SQLITE_DONE) return fail(db_.get());
  return std::optional<std::string>();
}

}  // namespace msrp::relayd
