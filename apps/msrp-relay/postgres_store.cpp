// msrp-relay/postgres_store.cpp: the credential store on libpq.
//
// Every statement is constant SQL text with user input passed as parameters ($1, $2 ...), so
// no user name, realm or password ever becomes SQL. Statements are sent without blocking and
// their results awaited with a deadline, so a server that stops answering fails the call
// instead of holding its thread. Changes of more than one row run in one transaction.
#include "postgres_store.hpp"

#include <libpq-fe.h>
#include <poll.h>

#include <chrono>
#include <cstdlib>
#include <vector>

namespace msrp::relayd {
namespace {

constexpr int schema_version = 1;

// The steps from one schema version to the next; step N makes version N + 1.
constexpr const char* migrations[] = {
    // Version 1. "C": user names and realms compare and sort byte by byte, as in SQLite.
    "CREATE TABLE msrp_relay_users (username text COLLATE \"C\" NOT NULL, "
    "realm text COLLATE \"C\" NOT NULL, algorithm text NOT NULL, ha1 text NOT NULL, "
    "PRIMARY KEY (username, realm, algorithm))",
};
static_assert(std::size(migrations) == schema_version);

// Relays that start together take turns to migrate (the key: any number that other programs
// sharing the database are unlikely to use).
constexpr const char* lock_schema = "SELECT pg_advisory_xact_lock(49764975)";

constexpr auto statement_timeout = std::chrono::seconds(5);

// SQLSTATE unique_violation: another writer added the same user first.
constexpr std::string_view unique_violation = "23505";

// libpq's messages end in a newline and may span lines ("...failed: Connection refused\n\tIs the
// server running..."): one line for logs.
std::string one_line(const char* message) {
  std::string line;
  bool space = false;
  for (const char* p = message; p && *p; ++p) {
    const bool blank = *p == ' ' || *p == '\n' || *p == '\t' || *p == '\r';
    if (blank) {
      space = !line.empty();
      continue;
    }
    if (space) line += ' ';
    space = false;
    line += *p;
  }
  return line;
}

struct clearer {
  void operator()(PGresult* r) const noexcept { PQclear(r); }
};

}  // namespace

struct postgres_store::rows {
  std::unique_ptr<PGresult, clearer> result;

  int count() const { return PQntuples(result.get()); }
  std::string text(int row, int column) const {
    return {PQgetvalue(result.get(), row, column),
            static_cast<std::size_t>(PQgetlength(result.get(), row, column))};
  }
  // Rows a DELETE or INSERT changed.
  long changed() const { return std::strtol(PQcmdTuples(result.get()), nullptr, 10); }
};

void postgres_store::closer::operator()(pg_conn* db) const noexcept {
  PQfinish(db);
}

std::error_code postgres_store::fail_here(const std::string& reason) {
  return detail::fail(redacted(uri_) + ": " + reason);
}

std::error_code postgres_store::connect() {
  // The URI's own parameters come after ours and override them (expand_dbname).
  const char* const keys[] = {"connect_timeout", "application_name", "dbname", nullptr};
  const char* const values[] = {"2", "msrp-relay", uri_.c_str(), nullptr};
  db_.reset(PQconnectdbParams(keys, values, 1));
  if (!db_) return fail_here("out of memory");
  if (PQstatus(db_.get()) != CONNECTION_OK) {
    const auto error = fail_here(one_line(PQerrorMessage(db_.get())));
    db_.reset();
    return error;
  }
  // The server's notices ("relation ... already exists, skipping") are not for the log.
  PQsetNoticeProcessor(
      db_.get(), [](void*, const char*) {}, nullptr);
  return {};
}

result<postgres_store::rows> postgres_store::exec(const char* sql,
                                                  std::initializer_list<std::string_view> params) {
  sqlstate_.clear();
  if (!db_) {
    if (auto error = connect()) return error;
  }
  auto* db = db_.get();
  // Text parameters must end in NUL.
  const std::vector<std::string> texts(params.begin(), params.end());
  std::vector<const char*> values;
  for (const auto& text : texts)
    values.push_back(text.c_str());
  const auto broken = [&] {
    const auto error = fail_here(one_line(PQerrorMessage(db)));
    if (PQstatus(db) != CONNECTION_OK) db_.reset();
    return error;
  };
  if (!PQsendQueryParams(db, sql, static_cast<int>(values.size()), nullptr, values.data(), nullptr,
                         nullptr, 0)) {
    return broken();
  }
  const auto deadline = std::chrono::steady_clock::now() + statement_timeout;
  rows last;
  for (;;) {
    while (!PQisBusy(db)) {
      PGresult* next = PQgetResult(db);
      if (!next) {
        if (!last.result) return broken();
        const auto status = PQresultStatus(last.result.get());
        if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return last;
        const char* state = PQresultErrorField(last.result.get(), PG_DIAG_SQLSTATE);
        sqlstate_ = state ? state : "";
        return fail_here(one_line(PQresultErrorMessage(last.result.get())));
      }
      last.result.reset(next);
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd socket{PQsocket(db), POLLIN, 0};
    const int ready = left.count() > 0 ? ::poll(&socket, 1, static_cast<int>(left.count())) : 0;
    if (ready == 0) {
      // A server that does not answer in time is as good as down; the next call reconnects.
      db_.reset();
      return fail_here("no answer within " + std::to_string(statement_timeout.count()) + " s");
    }
    if (!PQconsumeInput(db)) return broken();
  }
}

template <class Body>
std::error_code postgres_store::in_transaction(Body body) {
  if (auto begun = exec("BEGIN"); !begun) return begun.error();
  std::error_code error = body();
  if (!error) {
    if (auto committed = exec("COMMIT"); !committed) error = committed.error();
  }
  if (error && db_ && PQtransactionStatus(db_.get()) != PQTRANS_IDLE) {
    // A failing ROLLBACK must not replace the reason for it.
    const auto reason = store_error_detail();
    const auto state = sqlstate_;
    exec("ROLLBACK");
    detail::fail(reason);
    sqlstate_ = state;
  }
  return error;
}

std::error_code postgres_store::migrate() {
  const auto version = [this]() -> result<int> {
    auto present = exec("SELECT to_regclass('msrp_relay_schema') IS NOT NULL");
    if (!present) return present.error();
    if (present->text(0, 0) != "t") return 0;
    auto latest = exec("SELECT coalesce(max(version), 0) FROM msrp_relay_schema");
    if (!latest) return latest.error();
    return std::atoi(latest->text(0, 0).c_str());
  };
  const auto check = [&](int found) -> std::error_code {
    if (found <= schema_version) return {};
    return fail_here("schema version " + std::to_string(found) + ", newer than this program's (" +
                     std::to_string(schema_version) + ")");
  };
  // Most starts find the schema up to date and need no lock (nor the right to create tables).
  auto found = version();
  if (!found) return found.error();
  if (*found == schema_version) return {};
  if (auto error = check(*found)) return error;
  return in_transaction([&]() -> std::error_code {
    for (const char* sql :
         {lock_schema,
          "CREATE TABLE IF NOT EXISTS msrp_relay_schema (version integer PRIMARY KEY, "
          "applied timestamptz NOT NULL DEFAULT now())"}) {
      if (auto done = exec(sql); !done) return done.error();
    }
    // Another relay may have migrated while this one waited for the lock.
    auto now = version();
    if (!now) return now.error();
    if (auto error = check(*now)) return error;
    for (int step = *now; step < schema_version; ++step) {
      if (auto done = exec(migrations[step]); !done) return done.error();
      const auto next = std::to_string(step + 1);
      if (auto done = exec("INSERT INTO msrp_relay_schema (version) VALUES ($1::integer)", {next});
          !done) {
        return done.error();
      }
    }
    return {};
  });
}

result<postgres_store> postgres_store::open(const std::string& uri) {
  detail::clear_detail();
  postgres_store store(uri);
  if (auto error = store.connect()) return error;
  if (auto error = store.migrate()) return error;
  return store;
}

// RFC 7616 §5.2: one HA1 per algorithm, never the password.
std::error_code postgres_store::insert_ha1s(std::string_view user, std::string_view realm,
                                            std::string_view password, const digest::hasher& hash) {
  for (const std::string_view algorithm : detail::algorithms) {
    const std::string ha1 = digest::ha1(hash, algorithm, user, realm, password);
    auto done = exec(
        "INSERT INTO msrp_relay_users (username, realm, algorithm, ha1) VALUES ($1, $2, $3, $4)",
        {user, realm, algorithm, ha1});
    if (!done) return done.error();
  }
  return {};
}

std::error_code postgres_store::add(std::string_view user, std::string_view realm,
                                    std::string_view password, const digest::hasher& hash) {
  detail::clear_detail();
  if (auto error = detail::check_names(user, realm)) return error;
  if (auto error = detail::check_password(password)) return error;
  auto error = in_transaction([&]() -> std::error_code {
    auto found = contains(user, realm);
    if (!found) return found.error();
    if (*found) return store_errc::exists;
    return insert_ha1s(user, realm, password, hash);
  });
  // Another relay's administrator added the same user between our check and our insert.
  if (error == store_errc::database && sqlstate_ == unique_violation) return store_errc::exists;
  return error;
}

std::error_code postgres_store::set_password(std::string_view user, std::string_view realm,
                                             std::string_view password,
                                             const digest::hasher& hash) {
  detail::clear_detail();
  if (auto error = detail::check_names(user, realm)) return error;
  if (auto error = detail::check_password(password)) return error;
  return in_transaction([&]() -> std::error_code {
    if (auto error = remove(user, realm)) return error;
    return insert_ha1s(user, realm, password, hash);
  });
}

std::error_code postgres_store::remove(std::string_view user, std::string_view realm) {
  detail::clear_detail();
  if (auto error = detail::check_names(user, realm)) return error;
  auto done =
      exec("DELETE FROM msrp_relay_users WHERE username = $1 AND realm = $2", {user, realm});
  if (!done) return done.error();
  return done->changed() == 0 ? store_errc::no_such_user : std::error_code{};
}

result<bool> postgres_store::contains(std::string_view user, std::string_view realm) {
  detail::clear_detail();
  if (auto error = detail::check_names(user, realm)) return error;
  auto found = exec("SELECT 1 FROM msrp_relay_users WHERE username = $1 AND realm = $2 LIMIT 1",
                    {user, realm});
  if (!found) return found.error();
  return found->count() > 0;
}

result<std::vector<account>> postgres_store::list(std::string_view realm) {
  detail::clear_detail();
  auto found = exec(
      "SELECT DISTINCT username, realm FROM msrp_relay_users "
      "WHERE $1::text = '' OR realm = $1::text ORDER BY username, realm",
      {realm});
  if (!found) return found.error();
  std::vector<account> accounts;
  for (int row = 0; row < found->count(); ++row)
    accounts.push_back({found->text(row, 0), found->text(row, 1)});
  return accounts;
}

result<std::optional<std::string>> postgres_store::find_ha1(std::string_view user,
                                                            std::string_view realm,
                                                            std::string_view algorithm) {
  detail::clear_detail();
  // A connection that broke since the last call (the server restarted) fails at once; the
  // lookup is tried again, once, on a new one.
  for (int attempt = 0;; ++attempt) {
    const bool had_connection = db_ != nullptr;
    auto found = exec(
        "SELECT ha1 FROM msrp_relay_users WHERE username = $1 AND realm = $2 AND algorithm = $3",
        {user, realm, algorithm});
    if (found) {
      if (found->count() == 0) return std::optional<std::string>();
      return std::optional<std::string>(found->text(0, 0));
    }
    if (attempt > 0 || !had_connection || db_) return found.error();
  }
}

}  // namespace msrp::relayd
