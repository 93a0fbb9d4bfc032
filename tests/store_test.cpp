#include "sqlite_store.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "msrp/digest.hpp"
#include "msrp/net/hash.hpp"
#include "users.hpp"

namespace msrp::relayd {
namespace {

namespace fs = std::filesystem;

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

}  // namespace
}  // namespace msrp::relayd
