// The credential stores (apps/msrp-relay/store.hpp): SQLite in detail, then the contract
// every store keeps, run on SQLite and PostgreSQL, what only PostgreSQL does (schema versions,
// a lost connection), and the pool of workers that looks credentials up for the relay
// (lookup_pool.hpp).
//
// The PostgreSQL tests need a database: MSRP_TEST_POSTGRES names it (a postgresql:// URI whose
// role may create tables and end its own connections); without it they are skipped.
// tests/net/postgres_store_test.sh runs them with a server of its own.
#include "store.hpp"

#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <stdlib.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <iterator>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "lookup_pool.hpp"
#include "msrp/digest.hpp"
#include "msrp/net/hash.hpp"
#include "postgres_store.hpp"
#include "sqlite_store.hpp"
#include "users.hpp"

namespace msrp::relayd {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const digest::hasher hash = net::digest_hex;

constexpr std::string_view realm = "relay.example.com";
// The rightmost To-Path URI of the AUTH request, which the digest covers (RFC 4976 §9.1).
constexpr std::string_view relay_uri = "msrps://relay.example.com:2855;tcp";

TEST(DigestHex, GivesKnownDigests) {
  // RFC 1321 §A.5 and FIPS 180-2 §B.1.
  EXPECT_EQ(net::digest_hex("MD5", "abc"), "900150983cd24fb0d6963f7d28e17f72");
  EXPECT_EQ(net::digest_hex("SHA-256", "abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(RandomToken, IsFreshLowercaseHex) {
  const std::string token = net::random_token(16);
  EXPECT_EQ(token.size(), 32u);
  EXPECT_TRUE(std::ranges::all_of(
      token, [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }));
  EXPECT_NE(net::random_token(16), token);
  EXPECT_EQ(net::random_token(0), "");
}

// A relay's check of an AUTH request (RFC 4976 §6.3): the client answers a challenge with
// `password`, and the relay verifies the response against the stored HA1.
bool relay_accepts(credential_store& store, std::string_view user, std::string_view password,
                   std::string_view algorithm) {
  const auto ha1 = store.ha1(user, realm, algorithm);
  if (!ha1) return false;
  digest::challenge challenge;
  challenge.realm = realm;
  challenge.nonce = net::random_token(16);
  challenge.algorithm = algorithm;
  const auto credentials =
      digest::answer(hash, challenge, user, password, relay_uri, net::random_token(8), 1);
  return digest::verify(hash, credentials, *ha1, "AUTH");
}

bool relay_accepts(credential_store&& store, std::string_view user, std::string_view password,
                   std::string_view algorithm) {
  return relay_accepts(store, user, password, algorithm);
}

std::string read_file(const fs::path& file) {
  std::ifstream stream(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(stream), std::istreambuf_iterator<char>()};
}

class Store : public testing::Test {
 protected:
  Store() {
    std::string pattern = (fs::temp_directory_path() / "msrp-store-test-XXXXXX").string();
    if (::mkdtemp(pattern.data()) != nullptr) directory_ = pattern;
  }
  ~Store() override {
    std::error_code ignored;
    if (!directory_.empty()) fs::remove_all(directory_, ignored);
  }

  void SetUp() override { ASSERT_FALSE(directory_.empty()) << "mkdtemp failed"; }

  fs::path file() const { return directory_ / "users.db"; }

  sqlite_store open() const {
    auto store = sqlite_store::open(file());
    EXPECT_TRUE(store) << store.error().message() << ": " << store_error_detail();
    return std::move(store).value();
  }

  // Runs `msrp-relay user action user` with `input` on a non-terminal standard input.
  int run(const std::string& action, const std::string& user, const std::string& input = "") {
    std::istringstream in(input);
    out_.str("");
    err_.str("");
    return run_user_command(action, user, file(), std::string(realm), in, out_, err_);
  }

  // The error output must be one line "msrp-relay: ..." that contains `text`.
  void expect_error(std::string_view text) const {
    const std::string error = err_.str();
    EXPECT_TRUE(error.starts_with("msrp-relay: ")) << error;
    EXPECT_TRUE(error.ends_with('\n')) << error;
    EXPECT_EQ(std::ranges::count(error, '\n'), 1) << error;
    EXPECT_NE(error.find(text), std::string::npos) << error;
  }

  fs::path directory_;
  std::ostringstream out_;
  std::ostringstream err_;
};

TEST_F(Store, OpenCreatesAPrivateFileAndReopenKeepsTheUsers) {
  {
    auto store = open();
    ASSERT_FALSE(store.add("alice", realm, "wonderland", hash));
    // The database and SQLite's -wal and -shm files beside it: owner only.
    EXPECT_EQ(std::ranges::distance(fs::directory_iterator(directory_), fs::directory_iterator()),
              3);
    for (const auto& entry : fs::directory_iterator(directory_)) {
      EXPECT_EQ(entry.status().permissions(), fs::perms::owner_read | fs::perms::owner_write)
          << entry.path();
    }
  }
  EXPECT_EQ(fs::status(file()).permissions(), fs::perms::owner_read | fs::perms::owner_write);
  auto store = open();
  EXPECT_TRUE(relay_accepts(store, "alice", "wonderland", digest::sha256));
  EXPECT_EQ(*store.list(""), (std::vector<account>{{"alice", std::string(realm)}}));
}

TEST_F(Store, StoresHa1sThatVerifyForBothAlgorithms) {
  auto store = open();
  ASSERT_FALSE(store.add("alice", realm, "wonderland", hash));
  for (const auto algorithm : {digest::sha256, digest::md5}) {
    SCOPED_TRACE(algorithm);
    EXPECT_EQ(store.ha1("alice", realm, algorithm),
              digest::ha1(hash, algorithm, "alice", realm, "wonderland"));
    EXPECT_TRUE(relay_accepts(store, "alice", "wonderland", algorithm));
    EXPECT_FALSE(relay_accepts(store, "alice", "Wonderland", algorithm));
  }
  EXPECT_EQ(store.ha1("alice", "other.example.com", digest::sha256), std::nullopt);
  EXPECT_EQ(store.ha1("bob", realm, digest::sha256), std::nullopt);
  EXPECT_EQ(store.ha1("alice", realm, "SHA-512-256"), std::nullopt);
}

TEST_F(Store, KeepsNoPasswordInTheFile) {
  // RFC 7616 §5.2: HA1 only. Look at every byte SQLite wrote, while open (WAL) and after.
  const std::string password = "correct horse battery staple";
  const auto contains_password = [&] {
    return std::ranges::any_of(fs::directory_iterator(directory_), [&](const auto& entry) {
      return read_file(entry.path()).find(password) != std::string::npos;
    });
  };
  {
    auto store = open();
    ASSERT_FALSE(store.add("alice", realm, password, hash));
    ASSERT_FALSE(store.set_password("alice", realm, password, hash));
    EXPECT_FALSE(contains_password());
    // The test would prove nothing if it could not see the user name where SQLite wrote it.
    const std::string written = read_file(file()) + read_file(file().string() + "-wal");
    EXPECT_NE(written.find("alice"), std::string::npos);
  }
  EXPECT_FALSE(contains_password());
  EXPECT_NE(read_file(file()).find("alice"), std::string::npos);
}

TEST_F(Store, LeavesNoReplacedHa1InTheFile) {
  // HA1 is as good as the password (RFC 7616 §5.2), so the old one must not linger in a free
  // page or cell once the password has changed.
  const std::string old_ha1 = digest::ha1(hash, digest::sha256, "alice", realm, "wonderland");
  {
    auto store = open();
    ASSERT_FALSE(store.add("alice", realm, "wonderland", hash));
  }
  ASSERT_NE(read_file(file()).find(old_ha1), std::string::npos);
  {
    auto store = open();
    ASSERT_FALSE(store.set_password("alice", realm, "looking-glass", hash));
    ASSERT_FALSE(store.add("bob", realm, "builder", hash));
    ASSERT_FALSE(store.remove("bob", realm));
  }
  const std::string bytes = read_file(file());
  EXPECT_EQ(bytes.find(old_ha1), std::string::npos);
  EXPECT_EQ(bytes.find(digest::ha1(hash, digest::md5, "bob", realm, "builder")), std::string::npos);
}

TEST_F(Store, AddingAUserTwiceFails) {
  auto store = open();
  ASSERT_FALSE(store.add("alice", realm, "wonderland", hash));
  EXPECT_EQ(store.add("alice", realm, "other", hash), store_errc::exists);
  EXPECT_TRUE(relay_accepts(store, "alice", "wonderland", digest::sha256));
  // The same name in another realm is another user.
  EXPECT_FALSE(store.add("alice", "other.example.com", "other", hash));
}

TEST_F(Store, SetPasswordReplacesTheHa1s) {
  auto store = open();
  ASSERT_FALSE(store.add("alice", realm, "wonderland", hash));
  ASSERT_FALSE(store.set_password("alice", realm, "looking-glass", hash));
  for (const auto algorithm : {digest::sha256, digest::md5}) {
    SCOPED_TRACE(algorithm);
    EXPECT_FALSE(relay_accepts(store, "alice", "wonderland", algorithm));
    EXPECT_TRUE(relay_accepts(store, "alice", "looking-glass", algorithm));
  }
  EXPECT_EQ(store.set_password("bob", realm, "builder", hash), store_errc::no_such_user);
  EXPECT_FALSE(*store.contains("bob", realm));
}

TEST_F(Store, RemoveDeletesTheUser) {
  auto store = open();
  ASSERT_FALSE(store.add("alice", realm, "wonderland", hash));
  ASSERT_FALSE(store.add("bob", realm, "builder", hash));
  EXPECT_FALSE(store.remove("alice", realm));
  EXPECT_FALSE(*store.contains("alice", realm));
  EXPECT_EQ(store.ha1("alice", realm, digest::md5), std::nullopt);
  EXPECT_EQ(store.remove("alice", realm), store_errc::no_such_user);
  EXPECT_TRUE(relay_accepts(store, "bob", "builder", digest::sha256));
}

TEST_F(Store, ListsUsersSorted) {
  auto store = open();
  for (const auto* user : {"carol", "alice", "bob"})
    ASSERT_FALSE(store.add(user, realm, "secret", hash));
  ASSERT_FALSE(store.add("alice", "a.example.com", "secret", hash));
  const std::string r(realm);
  EXPECT_EQ(*store.list(realm), (std::vector<account>{{"alice", r}, {"bob", r}, {"carol", r}}));
  EXPECT_EQ(
      *store.list(""),
      (std::vector<account>{{"alice", "a.example.com"}, {"alice", r}, {"bob", r}, {"carol", r}}));
  EXPECT_EQ(*store.list("nowhere.example.com"), std::vector<account>{});
}

TEST_F(Store, RefusesBadNamesAndPasswords) {
  auto store = open();
  for (const std::string& user :
       {std::string(), std::string(65, 'a'), std::string("a\"b"), std::string("a\\b"),
        std::string("a\nb"), std::string("a\tb"), std::string("a\0b", 3), std::string("\x7f"),
        std::string("j\xc3\xbcrgen")}) {
    SCOPED_TRACE(user);
    EXPECT_EQ(store.add(user, realm, "secret", hash), store_errc::bad_user_name);
    EXPECT_EQ(store.set_password(user, realm, "secret", hash), store_errc::bad_user_name);
    EXPECT_EQ(store.remove(user, realm), store_errc::bad_user_name);
    EXPECT_EQ(store.contains(user, realm).error(), store_errc::bad_user_name);
  }
  EXPECT_EQ(store.add("alice", "", "secret", hash), store_errc::bad_realm);
  EXPECT_EQ(store.add("alice", "a\"b", "secret", hash), store_errc::bad_realm);
  EXPECT_EQ(store.add("alice", realm, "", hash), store_errc::bad_password);
  EXPECT_EQ(store.add("alice", realm, std::string(1025, 'x'), hash), store_errc::bad_password);
  EXPECT_EQ(*store.list(""), std::vector<account>{});

  EXPECT_FALSE(store.add(std::string(64, 'a'), realm, std::string(1024, 'x'), hash));
  EXPECT_FALSE(store.add("Alice Liddell (1852-1934) <a@b>", realm, "secret", hash));
}

TEST_F(Store, FailsWithTheReasonWhenTheFileIsNoDatabase) {
  std::ofstream(file()) << "not an SQLite database, but long enough to look at its header\n";
  const auto store = sqlite_store::open(file());
  EXPECT_EQ(store.error(), store_errc::database);
  EXPECT_NE(store_error_detail().find("users.db"), std::string::npos) << store_error_detail();
  EXPECT_EQ(run("list", ""), 1);
  expect_error("users.db: ");
}

TEST_F(Store, FailsWhenTheDirectoryIsMissing) {
  const auto store = sqlite_store::open(directory_ / "missing" / "users.db");
  EXPECT_EQ(store.error(), store_errc::database);
  EXPECT_NE(store_error_detail().find("missing/users.db: cannot create"), std::string::npos)
      << store_error_detail();
}

// --- msrp-relay user add|del|list|passwd, with a password on a non-terminal standard input.

TEST_F(Store, UserAddReadsOneLine) {
  EXPECT_EQ(run("add", "alice", "wonderland\nignored\n"), 0);
  EXPECT_EQ(out_.str(), "");
  EXPECT_EQ(err_.str(), "");
  EXPECT_TRUE(relay_accepts(open(), "alice", "wonderland", digest::sha256));

  EXPECT_EQ(run("add", "alice", "other\n"), 1);
  expect_error("alice@relay.example.com: user already exists");
  EXPECT_TRUE(relay_accepts(open(), "alice", "wonderland", digest::md5));
}

TEST_F(Store, UserPasswdReplacesThePassword) {
  ASSERT_EQ(run("add", "alice", "wonderland"), 0);  // no final newline
  EXPECT_EQ(run("passwd", "alice", "looking-glass\r\n"), 0);
  EXPECT_EQ(err_.str(), "");
  auto store = open();
  EXPECT_TRUE(relay_accepts(store, "alice", "looking-glass", digest::sha256));
  EXPECT_FALSE(relay_accepts(store, "alice", "wonderland", digest::sha256));

  EXPECT_EQ(run("passwd", "bob", "builder\n"), 1);
  expect_error("bob@relay.example.com: no such user");
}

TEST_F(Store, UserDelAndList) {
  ASSERT_EQ(run("add", "bob", "builder\n"), 0);
  ASSERT_EQ(run("add", "alice", "wonderland\n"), 0);
  EXPECT_EQ(run("list", ""), 0);
  EXPECT_EQ(out_.str(), "alice\trelay.example.com\nbob\trelay.example.com\n");
  EXPECT_EQ(err_.str(), "");

  EXPECT_EQ(run("del", "alice"), 0);
  EXPECT_EQ(err_.str(), "");
  EXPECT_EQ(run("list", ""), 0);
  EXPECT_EQ(out_.str(), "bob\trelay.example.com\n");
  EXPECT_EQ(run("del", "alice"), 1);
  expect_error("alice@relay.example.com: no such user");
}

TEST_F(Store, UserCommandUsageErrors) {
  EXPECT_EQ(run("add", "a\"b", "secret\n"), 2);
  expect_error("user name");
  EXPECT_EQ(run("add", "alice", "\n"), 2);
  expect_error("password");
  EXPECT_EQ(run("add", "alice", ""), 2);
  expect_error("password");
  EXPECT_EQ(run("del", std::string(65, 'a')), 2);
  expect_error("user name");
  EXPECT_EQ(run("rename", "alice"), 2);
  expect_error("unknown user command \"rename\"");
  EXPECT_EQ(run("list", ""), 0);
  EXPECT_EQ(out_.str(), "");
}

std::string postgres_url() {
  const char* url = std::getenv("MSRP_TEST_POSTGRES");
  return url ? url : "";
}

/// Runs `sql` on the test database with a connection of its own; the error, if any.
std::string run_sql(const std::string& sql) {
  PGconn* db = PQconnectdb(postgres_url().c_str());
  std::string error;
  if (PQstatus(db) != CONNECTION_OK) {
    error = PQerrorMessage(db);
  } else {
    PGresult* result = PQexec(db, sql.c_str());
    const auto status = PQresultStatus(result);
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) error = PQerrorMessage(db);
    PQclear(result);
  }
  PQfinish(db);
  return error;
}

// --- One contract, both stores -----------------------------------------------------------

enum class kind { sqlite, postgres };

class AnyStore : public testing::TestWithParam<kind> {
 protected:
  void SetUp() override {
    if (GetParam() == kind::postgres) {
      if (postgres_url().empty()) GTEST_SKIP() << "MSRP_TEST_POSTGRES is not set";
      location_ = postgres_url();
    } else {
      std::string pattern = (fs::temp_directory_path() / "msrp-store-test-XXXXXX").string();
      ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
      directory_ = pattern;
      location_ = (directory_ / "users.db").string();
    }
    auto opened = open_store(location_);
    ASSERT_TRUE(opened) << store_error_detail();
    store_ = std::move(*opened);
    // A shared database starts empty for each test.
    for (const auto& a : store_->list("").value_or({}))
      ASSERT_FALSE(store_->remove(a.user, a.realm));
  }
  void TearDown() override {
    std::error_code ignored;
    if (!directory_.empty()) fs::remove_all(directory_, ignored);
  }

  fs::path directory_;
  std::string location_;
  std::unique_ptr<credential_store> store_;
};

std::string kind_name(const testing::TestParamInfo<kind>& param) {
  return param.param == kind::sqlite ? "Sqlite" : "Postgres";
}

INSTANTIATE_TEST_SUITE_P(Stores, AnyStore, testing::Values(kind::sqlite, kind::postgres),
                         kind_name);

TEST_P(AnyStore, StoresHa1sThatVerifyForBothAlgorithms) {
  ASSERT_FALSE(store_->add("alice", realm, "wonderland", hash));
  for (const auto algorithm : {digest::sha256, digest::md5}) {
    EXPECT_TRUE(relay_accepts(*store_, "alice", "wonderland", algorithm)) << algorithm;
    EXPECT_FALSE(relay_accepts(*store_, "alice", "looking-glass", algorithm)) << algorithm;
    EXPECT_EQ(*store_->find_ha1("alice", realm, algorithm),
              digest::ha1(hash, algorithm, "alice", realm, "wonderland"));
  }
  // Unknown: nothing, which is not a failure.
  EXPECT_EQ(*store_->find_ha1("bob", realm, digest::sha256), std::nullopt);
  EXPECT_EQ(*store_->find_ha1("alice", "other.example.com", digest::sha256), std::nullopt);
  EXPECT_EQ(*store_->find_ha1("alice", realm, "SHA-512-256"), std::nullopt);
  // Another store on the same database sees the user (relays sharing PostgreSQL).
  auto other = open_store(location_);
  ASSERT_TRUE(other) << store_error_detail();
  EXPECT_TRUE(relay_accepts(**other, "alice", "wonderland", digest::sha256));
}

TEST_P(AnyStore, AddPasswdDelList) {
  ASSERT_FALSE(store_->add("bob", realm, "builder", hash));
  ASSERT_FALSE(store_->add("alice", realm, "wonderland", hash));
  ASSERT_FALSE(store_->add("alice", "other.example.com", "rabbit", hash));
  ASSERT_FALSE(store_->add("Zed", realm, "dead", hash));
  EXPECT_EQ(store_->add("alice", realm, "again", hash), store_errc::exists);
  EXPECT_TRUE(relay_accepts(*store_, "alice", "wonderland", digest::sha256)) << "unchanged";
  EXPECT_TRUE(*store_->contains("alice", realm));
  EXPECT_FALSE(*store_->contains("carol", realm));
  // Sorted by user, then realm, byte by byte (upper case first).
  EXPECT_EQ(*store_->list(""), (std::vector<account>{{"Zed", std::string(realm)},
                                                     {"alice", "other.example.com"},
                                                     {"alice", std::string(realm)},
                                                     {"bob", std::string(realm)}}));
  EXPECT_EQ(store_->list(realm)->size(), 3u);

  EXPECT_FALSE(store_->set_password("alice", realm, "looking-glass", hash));
  EXPECT_TRUE(relay_accepts(*store_, "alice", "looking-glass", digest::md5));
  EXPECT_FALSE(relay_accepts(*store_, "alice", "wonderland", digest::md5));
  EXPECT_EQ(store_->set_password("carol", realm, "singer", hash), store_errc::no_such_user);

  EXPECT_FALSE(store_->remove("alice", realm));
  EXPECT_EQ(store_->remove("alice", realm), store_errc::no_such_user);
  EXPECT_EQ(*store_->find_ha1("alice", realm, digest::sha256), std::nullopt);
  EXPECT_TRUE(*store_->contains("alice", "other.example.com"));
}

TEST_P(AnyStore, RefusesBadNamesAndPasswords) {
  EXPECT_EQ(store_->add("", realm, "secret", hash), store_errc::bad_user_name);
  EXPECT_EQ(store_->add(std::string(65, 'a'), realm, "secret", hash), store_errc::bad_user_name);
  EXPECT_EQ(store_->add("a\"b", realm, "secret", hash), store_errc::bad_user_name);
  EXPECT_EQ(store_->add("a\\b", realm, "secret", hash), store_errc::bad_user_name);
  EXPECT_EQ(store_->add("tab\there", realm, "secret", hash), store_errc::bad_user_name);
  EXPECT_EQ(store_->add("alice", "", "secret", hash), store_errc::bad_realm);
  EXPECT_EQ(store_->add("alice", std::string(256, 'r'), "secret", hash), store_errc::bad_realm);
  EXPECT_EQ(store_->add("alice", realm, "", hash), store_errc::bad_password);
  EXPECT_EQ(store_->add("alice", realm, std::string(1025, 'x'), hash), store_errc::bad_password);
  EXPECT_EQ(store_->set_password("a\"b", realm, "secret", hash), store_errc::bad_user_name);
  EXPECT_EQ(store_->remove("alice", ""), store_errc::bad_realm);
  EXPECT_EQ(store_->contains("", realm).error(), store_errc::bad_user_name);
  EXPECT_EQ(*store_->list(""), std::vector<account>{});
  // The limits themselves are allowed, as is SQL in a name (it is only ever a parameter).
  EXPECT_FALSE(store_->add(std::string(64, 'a'), realm, std::string(1024, 'x'), hash));
  EXPECT_FALSE(store_->add("x'); DROP TABLE users; --", realm, "secret", hash));
  EXPECT_TRUE(relay_accepts(*store_, "x'); DROP TABLE users; --", "secret", digest::sha256));
}

// --- PostgreSQL only ------------------------------------------------------------------------

class Postgres : public testing::Test {
 protected:
  void SetUp() override {
    if (postgres_url().empty()) GTEST_SKIP() << "MSRP_TEST_POSTGRES is not set";
  }
};

TEST_F(Postgres, RefusesASchemaNewerThanItKnows) {
  ASSERT_TRUE(postgres_store::open(postgres_url())) << store_error_detail();
  ASSERT_EQ(run_sql("INSERT INTO msrp_relay_schema (version) VALUES (99)"), "");
  const auto store = postgres_store::open(postgres_url());
  const auto detail = store_error_detail();
  ASSERT_EQ(run_sql("DELETE FROM msrp_relay_schema WHERE version = 99"), "");
  EXPECT_EQ(store.error(), store_errc::database);
  EXPECT_NE(detail.find("schema version 99"), std::string::npos) << detail;
  EXPECT_TRUE(postgres_store::open(postgres_url())) << "version 1 again: " << store_error_detail();
}

TEST_F(Postgres, LookupSurvivesALostConnection) {
  auto store = postgres_store::open(postgres_url());
  ASSERT_TRUE(store) << store_error_detail();
  store->remove("alice", realm);
  ASSERT_FALSE(store->add("alice", realm, "wonderland", hash));
  // What a server restart does to the relay's connections.
  ASSERT_EQ(run_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = 'msrp-relay' AND pid <> pg_backend_pid()"),
            "");
  EXPECT_TRUE(relay_accepts(*store, "alice", "wonderland", digest::sha256)) << store_error_detail();
  EXPECT_FALSE(store->remove("alice", realm));
}

TEST(PostgresUnreachable, FailsQuicklyNamingTheStoreWithoutItsPassword) {
  const auto store = open_store("postgresql://msrp:s3cret@/msrp?host=/nonexistent-msrp-test");
  EXPECT_EQ(store.error(), store_errc::database);
  const auto detail = store_error_detail();
  EXPECT_TRUE(detail.starts_with("postgresql://msrp:***@/msrp?host=/nonexistent-msrp-test: "))
      << detail;
  EXPECT_EQ(detail.find("s3cret"), std::string::npos) << detail;
  EXPECT_EQ(detail.find('\n'), std::string::npos) << "one line: " << detail;
}

TEST(StoreLocation, PostgresUrisAndRedaction) {
  EXPECT_TRUE(is_postgres_uri("postgresql://db/msrp"));
  EXPECT_TRUE(is_postgres_uri("postgres://db/msrp"));
  EXPECT_FALSE(is_postgres_uri("/var/lib/msrp-relay/users.db"));
  EXPECT_FALSE(is_postgres_uri("host=db dbname=msrp"));
  EXPECT_EQ(redacted("postgresql://u:p@ss@db:5432/msrp"), "postgresql://u:***@db:5432/msrp");
  EXPECT_EQ(redacted("postgresql://u@db/msrp?password=x&sslmode=require"),
            "postgresql://u@db/msrp?password=***&sslmode=require");
  EXPECT_EQ(redacted("postgresql://db/msrp?sslpassword=x&password=y"),
            "postgresql://db/msrp?sslpassword=x&password=***");
  EXPECT_EQ(redacted("postgresql://u@db/msrp"), "postgresql://u@db/msrp");
  EXPECT_EQ(redacted("/var/lib/u:p@x/users.db"), "/var/lib/u:p@x/users.db");
}

// --- The lookup pool ------------------------------------------------------------------------

/// A store in memory that can be taken down and can hold its lookups until released.
struct fake_backend {
  std::mutex mutex;
  std::condition_variable changed;
  bool up = true;
  bool hold = false;  // lookups wait until it is false
  int opens = 0;
  int lookups = 0;  // started
};

class fake_store final : public credential_store {
 public:
  explicit fake_store(fake_backend& backend) : backend_(backend) {}

  std::error_code add(std::string_view, std::string_view, std::string_view,
                      const digest::hasher&) override {
    return store_errc::database;
  }
  std::error_code set_password(std::string_view, std::string_view, std::string_view,
                               const digest::hasher&) override {
    return store_errc::database;
  }
  std::error_code remove(std::string_view, std::string_view) override {
    return store_errc::database;
  }
  result<bool> contains(std::string_view, std::string_view) override { return false; }
  result<std::vector<account>> list(std::string_view) override { return std::vector<account>{}; }
  result<std::optional<std::string>> find_ha1(std::string_view user, std::string_view,
                                              std::string_view) override {
    std::unique_lock lock(backend_.mutex);
    ++backend_.lookups;
    backend_.changed.notify_all();
    backend_.changed.wait(lock, [&] { return !backend_.hold; });
    if (!backend_.up) return detail::fail("fake: down");
    if (user == "alice") return std::optional<std::string>("a1");
    return std::optional<std::string>();
  }

 private:
  fake_backend& backend_;
};

class Pool : public testing::Test {
 protected:
  lookup_pool::opener opener() {
    return [this]() -> result<std::unique_ptr<credential_store>> {
      std::lock_guard lock(backend_.mutex);
      ++backend_.opens;
      if (!backend_.up) return detail::fail("fake: cannot open");
      return std::unique_ptr<credential_store>(std::make_unique<fake_store>(backend_));
    };
  }
  void set(bool up, bool hold) {
    std::lock_guard lock(backend_.mutex);
    backend_.up = up;
    backend_.hold = hold;
    backend_.changed.notify_all();
  }
  /// Starts a lookup of `user`; its answer comes through the future.
  std::future<credential_answer> ask(lookup_pool& pool, std::string user) {
    auto promise = std::make_shared<std::promise<credential_answer>>();
    auto answer = promise->get_future();
    pool.lookup(std::move(user), std::string(realm), std::string(digest::sha256),
                [promise](credential_answer a) { promise->set_value(std::move(a)); });
    return answer;
  }
  void log(const std::string& line) {
    std::lock_guard lock(backend_.mutex);
    logged_.push_back(line);
  }
  std::vector<std::string> logged() {
    std::lock_guard lock(backend_.mutex);
    return logged_;
  }

  fake_backend backend_;
  std::vector<std::string> logged_;
};

TEST_F(Pool, AnswersFromItsWorkers) {
  lookup_pool pool(opener(), {.workers = 2});
  const auto found = ask(pool, "alice").get();
  EXPECT_EQ(found.outcome, lookup_outcome::found);
  EXPECT_EQ(found.ha1, "a1");
  EXPECT_EQ(ask(pool, "bob").get().outcome, lookup_outcome::no_such_user);
}

TEST_F(Pool, StoreDownIsUnavailableThenFoundAgainWithoutRestart) {
  lookup_pool pool(opener(), {.workers = 1, .log = [this](const std::string& l) { log(l); }});
  EXPECT_EQ(ask(pool, "alice").get().outcome, lookup_outcome::found);
  set(false, false);
  // The open store fails, then opening one fails: unavailable both times, one log line.
  EXPECT_EQ(ask(pool, "alice").get().outcome, lookup_outcome::unavailable);
  EXPECT_EQ(ask(pool, "alice").get().outcome, lookup_outcome::unavailable);
  set(true, false);
  EXPECT_EQ(ask(pool, "alice").get().outcome, lookup_outcome::found);
  EXPECT_EQ(logged(), (std::vector<std::string>{"credential store unavailable: fake: down",
                                                "credential store available again"}));
  std::lock_guard lock(backend_.mutex);
  EXPECT_EQ(backend_.opens, 3) << "opened at first, refused once, opened again";
}

TEST_F(Pool, RefusesLookupsBeyondItsQueueAtOnce) {
  set(true, true);
  lookup_pool pool(opener(), {.workers = 1, .max_waiting = 2});
  auto busy = ask(pool, "alice");
  {
    // The worker holds the first lookup; two more may wait, the fourth may not.
    std::unique_lock lock(backend_.mutex);
    backend_.changed.wait(lock, [&] { return backend_.lookups == 1; });
  }
  auto second = ask(pool, "alice");
  auto third = ask(pool, "bob");
  auto refused = ask(pool, "alice");
  ASSERT_EQ(refused.wait_for(0s), std::future_status::ready);
  EXPECT_EQ(refused.get().outcome, lookup_outcome::unavailable);
  EXPECT_EQ(second.wait_for(0s), std::future_status::timeout);
  set(true, false);
  EXPECT_EQ(busy.get().outcome, lookup_outcome::found);
  EXPECT_EQ(second.get().outcome, lookup_outcome::found);
  EXPECT_EQ(third.get().outcome, lookup_outcome::no_such_user);
}

TEST_F(Pool, AnswersEveryLookupWhenDestroyed) {
  set(true, true);
  std::future<credential_answer> busy, waiting;
  std::thread release;
  {
    lookup_pool pool(opener(), {.workers = 1});
    busy = ask(pool, "alice");
    {
      std::unique_lock lock(backend_.mutex);
      backend_.changed.wait(lock, [&] { return backend_.lookups == 1; });
    }
    waiting = ask(pool, "alice");
    // Released while the pool is destroyed, or just before: either way every lookup gets
    // its one answer.
    release = std::thread([this] {
      std::this_thread::sleep_for(10ms);
      set(true, false);
    });
  }
  release.join();
  ASSERT_EQ(busy.wait_for(0s), std::future_status::ready);
  ASSERT_EQ(waiting.wait_for(0s), std::future_status::ready);
  EXPECT_EQ(busy.get().outcome, lookup_outcome::found);
  EXPECT_NE(waiting.get().outcome, lookup_outcome::no_such_user);
}

}  // namespace
}  // namespace msrp::relayd
