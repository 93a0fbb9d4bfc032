#include "msrp/relay.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "openssl_hash.hpp"
#include "parser_driver.hpp"

// The relay off the network: connection ids chosen by the test, a seeded random source, a
// clock the test advances, and real MD5/SHA-256 from OpenSSL. What the relay writes is parsed
// back into frames. Most tests run three times, feeding the relay whole frames, one byte at a
// time, and in ragged pieces, to show that it does not depend on read boundaries.

namespace msrp {
namespace {

using namespace std::chrono_literals;
using test::header;
using test::parsed_frame;
using test::request;
using test::wire_reader;

constexpr std::string_view relay_uri = "msrps://relay.example.com:2855;tcp";
constexpr std::string_view relay_host = "relay.example.com";
constexpr std::string_view alice_uri = "msrps://alice.example.com:9892/98cjs;tcp";
constexpr std::string_view bob_uri = "msrps://bob.example.com:9893/bb77x;tcp";
constexpr std::string_view carol_uri = "msrps://carol.example.com:9894/cc11y;tcp";
constexpr std::string_view peer_uri = "msrp://peer.example.net:7000/abc;tcp";

constexpr connection_id alice_connection = 1;
constexpr connection_id bob_connection = 2;
constexpr connection_id carol_connection = 3;
constexpr connection_id mallory_connection = 4;

const std::map<std::string, std::string, std::less<>> passwords = {
    {"alice", "wonderland"}, {"bob", "builder"}, {"carol", "singer"}};

// --- Reading what the relay writes -----------------------------------------------------------

// --- Feeding the relay ----------------------------------------------------------------------

/// How the test hands bytes to the relay.
enum class feed {
  whole,     ///< Each frame (or each piece a test makes) in one call.
  bytewise,  ///< One byte per call (large bodies: ragged instead).
  ragged,    ///< Pieces of 1, 2, 5, 13, 61, 509, 4093 bytes, in turn.
};

std::string feed_name(const testing::TestParamInfo<feed>& info) {
  switch (info.param) {
    case feed::whole:
      return "Whole";
    case feed::bytewise:
      return "Bytewise";
    case feed::ragged:
      return "Ragged";
  }
  return "Unknown";
}

relay::config relay_settings() {
  relay::config settings;
  settings.host = std::string(relay_host);
  settings.aliases = {"127.0.0.1"};
  settings.realm = std::string(relay_host);
  return settings;
}

/// What the credential store of the tests answers to `lookup`: the HA1 of the user's password
/// in `passwords` when the realm is ours.
credential_answer store_answer(const relay_actions::lookup& lookup, std::string_view realm) {
  const auto found = passwords.find(lookup.username);
  if (found == passwords.end() || lookup.realm != realm) {
    return {lookup_outcome::no_such_user, {}};
  }
  return {lookup_outcome::found, digest::ha1(test::openssl_hash, lookup.algorithm, lookup.username,
                                             lookup.realm, found->second)};
}

/// A relay with its clock, random source, credential store and the actions it took. The
/// store answers every lookup at once unless the test holds them (`hold_lookups`) to answer
/// them itself.
class harness {
 public:
  explicit harness(feed mode = feed::whole, relay::config settings = relay_settings())
      : mode_(mode),
        settings_(settings),
        relay_(
            settings, [rng = std::mt19937_64(20070901)]() mutable { return rng(); },
            test::openssl_hash) {
    relay_.listening(2855);
    relay_.advance(now_);
  }

  /// From now on, lookups wait for the test: `held_lookups()` and `answer()`.
  void hold_lookups() { hold_lookups_ = true; }

  /// The lookups the relay asked for and nobody answered yet, oldest first.
  std::vector<relay_actions::lookup> held_lookups() {
    pump();
    return held_;
  }

  /// Answers the held lookup `lookup` with `outcome` (found: the right HA1).
  void answer(const relay_actions::lookup& lookup, lookup_outcome outcome) {
    std::erase_if(held_, [&](const auto& l) { return l.ticket == lookup.ticket; });
    auto reply = store_answer(lookup, settings_.realm);
    if (outcome != lookup_outcome::found) reply = {outcome, {}};
    relay_.credentials(lookup.ticket, reply);
    pump();
  }

  relay& core() { return relay_; }
  const relay::config& settings() const { return settings_; }
  clock::time_point now() const { return now_; }

  /// Moves the clock on. Afterwards nothing is due any more: a deadline in the past would
  /// make the edge's watchdog spin.
  void advance(std::chrono::seconds by) {
    now_ += by;
    relay_.advance(now_);
    const auto deadline = relay_.next_deadline();
    EXPECT_TRUE(!deadline || *deadline > now_)
        << "next_deadline() is " << (now_ - *deadline).count() << " ticks in the past";
  }

  /// A client (or, with `relay_peer`, a relay with a certificate) connects on the TLS port.
  void accept(connection_id id, bool relay_peer = false) {
    relay_.accept(id, peer_info{.secure = true,
                                .local_port = 2855,
                                .relay = relay_peer,
                                .address = "192.0.2." + std::to_string(id)});
  }

  /// Hands `bytes` received on `id` to the relay, split as the mode says.
  void receive(connection_id id, std::string_view bytes) {
    auto step = [&](std::size_t k) -> std::size_t {
      static constexpr std::size_t ragged[] = {1, 2, 5, 13, 61, 509, 4093};
      switch (mode_) {
        case feed::whole:
          return bytes.size();
        case feed::bytewise:
          if (bytes.size() <= 16 * 1024) return 1;
          [[fallthrough]];  // a large body: one byte per call would only be slow
        case feed::ragged:
          return ragged[k % std::size(ragged)];
      }
      return bytes.size();
    };
    std::size_t at = 0;
    for (std::size_t k = 0; at < bytes.size(); ++k) {
      const auto n = std::min(step(k), bytes.size() - at);
      relay_.receive(id, bytes.substr(at, n));
      pump();
      at += n;
    }
  }

  /// Drains and parses everything the relay has for `id`; the frames completed so far.
  std::vector<parsed_frame> take(connection_id id) {
    pump();  // for bytes a test gave `core()` itself
    auto& reader = readers_[id];
    for (;;) {
      const auto out = relay_.output(id);
      if (out.empty()) break;
      reader.feed(out);
      relay_.consume_output(id, out.size());
    }
    auto frames = reader.take();
    auto& all = history_[id];
    all.insert(all.end(), frames.begin(), frames.end());
    return frames;
  }

  /// Every frame taken from `id` so far (since `forget_history`).
  const std::vector<parsed_frame>& history(connection_id id) { return history_[id]; }
  void forget_history() { history_.clear(); }

  /// Bytes the relay holds for `id` right now.
  std::size_t pending_output(connection_id id) { return relay_.queued(id); }

  wire_reader& reader(connection_id id) { return readers_[id]; }

  /// The actions taken since the last call.
  std::vector<relay_action> actions() {
    pump();
    std::vector<relay_action> out;
    out.swap(unread_);
    return out;
  }

  /// Every lookup asked so far, answered or not.
  std::vector<relay_actions::lookup> lookups() {
    actions();
    std::vector<relay_actions::lookup> out;
    for (const auto& a : log_) {
      if (const auto* l = std::get_if<relay_actions::lookup>(&a)) out.push_back(*l);
    }
    return out;
  }

  /// True if the relay ever asked to close `id`.
  bool closed(connection_id id) {
    actions();
    return std::any_of(log_.begin(), log_.end(), [&](const relay_action& a) {
      const auto* c = std::get_if<relay_actions::close>(&a);
      return c && c->connection == id;
    });
  }

  /// Every connect action so far.
  std::vector<relay_actions::connect> connects() {
    actions();
    std::vector<relay_actions::connect> out;
    for (const auto& a : log_) {
      if (const auto* c = std::get_if<relay_actions::connect>(&a)) out.push_back(*c);
    }
    return out;
  }

  /// True if a notice so far contains `text`.
  bool noticed(std::string_view text) {
    actions();
    return std::any_of(log_.begin(), log_.end(), [&](const relay_action& a) {
      const auto* n = std::get_if<relay_actions::notice>(&a);
      return n && n->text.find(text) != std::string::npos;
    });
  }

  /// The notices so far, one per line (for failure messages).
  std::string notices() {
    actions();
    std::string out;
    for (const auto& a : log_) {
      if (const auto* n = std::get_if<relay_actions::notice>(&a)) out += n->text + '\n';
    }
    return out;
  }

 private:
  /// Takes the relay's actions into the log, answering lookups unless they are held.
  void pump() {
    while (auto a = relay_.next_action()) {
      log_.push_back(*a);
      unread_.push_back(*a);
      const auto* lookup = std::get_if<relay_actions::lookup>(&*a);
      if (!lookup) continue;
      if (hold_lookups_) {
        held_.push_back(*lookup);
      } else {
        relay_.credentials(lookup->ticket, store_answer(*lookup, settings_.realm));
      }
    }
  }

  feed mode_;
  relay::config settings_;
  clock::time_point now_ = clock::time_point{} + 1000h;
  relay relay_;
  std::map<connection_id, wire_reader> readers_;
  std::map<connection_id, std::vector<parsed_frame>> history_;
  std::vector<relay_action> log_;
  std::vector<relay_action> unread_;  // taken by `pump`, not yet by `actions`
  bool hold_lookups_ = false;
  std::vector<relay_actions::lookup> held_;
};

// --- Building requests ----------------------------------------------------------------------

std::string frame_text(const message& m, std::string_view body = {},
                       end_flag flag = end_flag::complete) {
  return serialize(m, body, flag).to_string();
}

/// A SEND head with a body: Message-ID, Byte-Range, the extra headers, then Content-Type.
message send_head(std::string tid, std::string_view to, std::string_view from,
                  std::string_view message_id, std::string range,
                  std::vector<header_field> extra = {}) {
  auto m = request(std::move(tid), "SEND", to, from,
                   {{"Message-ID", std::string(message_id)}, {"Byte-Range", std::move(range)}});
  for (auto& field : extra)
    m.headers.push_back(std::move(field));
  m.headers.push_back({"Content-Type", "text/plain"});
  return m;
}

/// A whole one-chunk SEND.
std::string send_text(std::string tid, std::string_view to, std::string_view from,
                      std::string_view message_id, std::string_view body,
                      std::vector<header_field> extra = {}) {
  const auto range = "1-" + std::to_string(body.size()) + '/' + std::to_string(body.size());
  return frame_text(send_head(std::move(tid), to, from, message_id, range, std::move(extra)), body);
}

std::string response_text(std::string_view tid, int code, std::string_view comment,
                          std::string_view to, std::string_view from) {
  message m;
  m.transaction_id = std::string(tid);
  m.status_code = code;
  m.comment = std::string(comment);
  m.headers = {{"To-Path", std::string(to)}, {"From-Path", std::string(from)}};
  return frame_text(m);
}

std::string auth_text(std::string tid, std::string_view from, std::vector<header_field> extra = {},
                      std::string_view to = relay_uri) {
  return frame_text(request(std::move(tid), "AUTH", to, from, std::move(extra)));
}

/// Bytes that look like a file: every value, CR, LF and '-' included.
std::string make_body(std::size_t size, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string body(size, '\0');
  for (auto& c : body)
    c = static_cast<char>(rng());
  return body;
}

std::string path_of(std::initializer_list<std::string_view> uris) {
  std::string out;
  for (const auto u : uris) {
    if (!out.empty()) out += ' ';
    out += u;
  }
  return out;
}

// --- Checking frames ------------------------------------------------------------------------

std::vector<int> statuses(const std::vector<parsed_frame>& frames) {
  std::vector<int> out;
  for (const auto& f : frames) {
    if (!f.head.is_request()) out.push_back(f.head.status_code);
  }
  return out;
}

std::vector<parsed_frame> requests_of(const std::vector<parsed_frame>& frames,
                                      std::string_view method) {
  std::vector<parsed_frame> out;
  for (const auto& f : frames) {
    if (f.head.method == method) out.push_back(f);
  }
  return out;
}

std::string describe(const std::vector<parsed_frame>& frames) {
  std::string out;
  for (const auto& f : frames) {
    out += f.head.is_request() ? f.head.method : std::to_string(f.head.status_code);
    out += ' ' + f.head.transaction_id + ' ' + static_cast<char>(f.flag) + " body " +
           std::to_string(f.body.size()) + '\n';
    for (const auto& field : f.head.headers)
      out += "  " + field.name + ": " + field.value + '\n';
  }
  return out;
}

// --- Clients --------------------------------------------------------------------------------

struct client {
  connection_id connection = 0;
  std::string user;
  std::string uri;
  std::string use_path;  // the relay's URI for this client, once authenticated
};

client alice() {
  return {alice_connection, "alice", std::string(alice_uri), {}};
}
client bob() {
  return {bob_connection, "bob", std::string(bob_uri), {}};
}
client carol() {
  return {carol_connection, "carol", std::string(carol_uri), {}};
}

/// The challenge for `algorithm` in a 401.
std::optional<digest::challenge> challenge_for(const parsed_frame& response,
                                               std::string_view algorithm) {
  for (const auto value : response.head.www_authenticate()) {
    auto parsed = digest::challenge::parse(value);
    if (parsed && parsed->algorithm == algorithm) return *parsed;
  }
  return std::nullopt;
}

/// Answers `ch` as `user` (with `password`, the right one unless given).
std::string authorization(const digest::challenge& ch, std::string_view user,
                          std::optional<std::string_view> password = std::nullopt,
                          std::string_view cnonce = "0a4f113b", std::uint32_t nc = 1) {
  const auto secret = password ? std::string(*password) : passwords.at(std::string(user));
  return digest::answer(test::openssl_hash, ch, user, secret, relay_uri, cnonce, nc)
      .to_header_value();
}

/// Sends an AUTH without credentials on `c.connection` and returns the challenge for
/// `algorithm` from the 401.
std::optional<digest::challenge> get_challenge(harness& h, const client& c,
                                               std::string_view algorithm = digest::sha256,
                                               std::string tid = "auth0001") {
  h.receive(c.connection, auth_text(tid, c.uri));
  const auto frames = h.take(c.connection);
  if (frames.size() != 1 || frames[0].head.status_code != 401) {
    ADD_FAILURE() << "expected one 401, got\n" << describe(frames);
    return std::nullopt;
  }
  return challenge_for(frames[0], algorithm);
}

/// Accepts `c`'s connection and runs the AUTH exchange; fills in `c.use_path`. Returns the
/// 200, or nothing (after a failure) if it did not come.
std::optional<parsed_frame> authenticate(harness& h, client& c,
                                         std::string_view algorithm = digest::sha256,
                                         std::vector<header_field> extra = {}) {
  h.accept(c.connection);
  const auto ch = get_challenge(h, c, algorithm);
  if (!ch) return std::nullopt;
  extra.insert(extra.begin(), {"Authorization", authorization(*ch, c.user)});
  h.receive(c.connection, auth_text("auth0002", c.uri, std::move(extra)));
  const auto frames = h.take(c.connection);
  if (frames.size() != 1 || frames[0].head.status_code != 200) {
    ADD_FAILURE() << "expected one 200, got\n" << describe(frames);
    return std::nullopt;
  }
  c.use_path = header(frames[0], "Use-Path");
  return frames[0];
}

class Relay : public testing::TestWithParam<feed> {
 protected:
  harness h{GetParam()};
  client a = alice();
  client b = bob();
  client c = carol();

  /// Alice on connection 1 and Bob on connection 2, both authenticated.
  void two_clients() {
    ASSERT_TRUE(authenticate(h, a));
    ASSERT_TRUE(authenticate(h, b));
    h.actions();
    h.forget_history();
  }

  /// The To-Path with which `from` reaches `to` through the relay.
  static std::string path_between(const client& from, const client& to) {
    return path_of({from.use_path, to.use_path, to.uri});
  }
};

INSTANTIATE_TEST_SUITE_P(Feeds, Relay, testing::Values(feed::whole, feed::bytewise, feed::ragged),
                         feed_name);

// --- AUTH (RFC 4976 §5.1, §6.3, §9.1) -------------------------------------------------------

TEST_P(Relay, ChallengesWithSha256ThenMd5) {
  h.accept(alice_connection);
  h.receive(alice_connection, auth_text("49fh0001", alice_uri));
  const auto frames = h.take(alice_connection);
  ASSERT_EQ(frames.size(), 1u) << describe(frames);
  const auto& response = frames[0];
  EXPECT_EQ(response.head.transaction_id, "49fh0001");
  EXPECT_EQ(response.head.status_code, 401);
  // RFC 4975 §7.2: the To-Path of a response to a non-SEND is the request's whole From-Path.
  EXPECT_EQ(header(response, "To-Path"), alice_uri);
  EXPECT_EQ(header(response, "From-Path"), relay_uri);
  const auto values = response.head.www_authenticate();
  ASSERT_EQ(values.size(), 2u);
  const auto sha = digest::challenge::parse(values[0]);
  const auto md5 = digest::challenge::parse(values[1]);
  ASSERT_TRUE(sha);
  ASSERT_TRUE(md5);
  EXPECT_EQ(sha->algorithm, digest::sha256);
  EXPECT_EQ(md5->algorithm, digest::md5);
  for (const auto* ch : {&*sha, &*md5}) {
    EXPECT_EQ(ch->realm, relay_host);
    EXPECT_EQ(ch->qop, "auth");
    EXPECT_FALSE(ch->stale);
    EXPECT_GE(ch->nonce.size(), 16u);
  }
  EXPECT_NE(sha->nonce, md5->nonce);
  // A second challenge gets fresh nonces.
  h.receive(alice_connection, auth_text("49fh0002", alice_uri));
  const auto again = h.take(alice_connection);
  ASSERT_EQ(again.size(), 1u);
  const auto sha2 = challenge_for(again[0], digest::sha256);
  ASSERT_TRUE(sha2);
  EXPECT_NE(sha2->nonce, sha->nonce);
  EXPECT_NE(sha2->nonce, md5->nonce);
  EXPECT_FALSE(h.closed(alice_connection)) << "a 401 without credentials is not a failure";
}

TEST_P(Relay, GrantsUsePathWithEitherAlgorithm) {
  for (const auto algorithm : {digest::sha256, digest::md5}) {
    SCOPED_TRACE(algorithm);
    harness fresh(GetParam());
    auto client = alice();
    fresh.accept(client.connection);
    const auto ch = get_challenge(fresh, client, algorithm);
    ASSERT_TRUE(ch);
    EXPECT_EQ(ch->algorithm, algorithm);
    const auto credentials =
        digest::answer(test::openssl_hash, *ch, "alice", "wonderland", relay_uri, "0a4f113b", 1);
    fresh.receive(client.connection, auth_text("49fi0001", alice_uri,
                                               {{"Authorization", credentials.to_header_value()}}));
    const auto frames = fresh.take(client.connection);
    ASSERT_EQ(frames.size(), 1u) << describe(frames);
    const auto& ok = frames[0];
    EXPECT_EQ(ok.head.status_code, 200);
    EXPECT_EQ(ok.head.transaction_id, "49fi0001");
    EXPECT_EQ(header(ok, "To-Path"), alice_uri);
    EXPECT_EQ(header(ok, "From-Path"), relay_uri);

    // Use-Path: one msrps URI of this relay's host and TLS port with a long session-id.
    const auto use_path = ok.head.use_path();
    ASSERT_TRUE(use_path);
    ASSERT_EQ(use_path->size(), 1u);
    const auto& self = use_path->front();
    EXPECT_TRUE(self.is_secure());
    EXPECT_EQ(self.host(), relay_host);
    EXPECT_EQ(self.port(), std::optional<std::uint16_t>(2855));
    EXPECT_GE(self.session_id().size(), 16u);
    EXPECT_EQ(self.transport(), "tcp");

    const auto expires = ok.head.expires();
    ASSERT_TRUE(expires);
    EXPECT_EQ(*expires, std::optional<std::uint32_t>(1800));

    // Authentication-Info proves the relay knows the password too (RFC 7616 §3.5).
    const auto info_value = ok.head.authentication_info();
    ASSERT_TRUE(info_value);
    const auto info = digest::authentication_info::parse(*info_value);
    ASSERT_TRUE(info) << *info_value;
    const auto ha1 = digest::ha1(test::openssl_hash, algorithm, "alice", relay_host, "wonderland");
    EXPECT_EQ(info->rspauth, digest::rspauth(test::openssl_hash, credentials, ha1));
    EXPECT_EQ(info->cnonce, "0a4f113b");
    EXPECT_EQ(info->nc, "00000001");
    EXPECT_FALSE(info->nextnonce.empty());
    EXPECT_NE(info->nextnonce, ch->nonce);

    EXPECT_EQ(fresh.core().statistics().sessions, 1u);
    EXPECT_EQ(fresh.core().statistics().auth_successes, 1u);
    EXPECT_TRUE(fresh.noticed("opened")) << fresh.notices();
    EXPECT_EQ(fresh.notices().find("wonderland"), std::string::npos) << "no credentials in logs";
  }
}

TEST_P(Relay, WrongPasswordIsChallengedAgainThenForbidden) {
  h.accept(alice_connection);
  auto ch = get_challenge(h, a);
  ASSERT_TRUE(ch);
  for (int attempt = 1; attempt <= 3; ++attempt) {
    SCOPED_TRACE(attempt);
    h.receive(alice_connection,
              auth_text("wrong00" + std::to_string(attempt), alice_uri,
                        {{"Authorization", authorization(*ch, "alice", "looking-glass")}}));
    const auto frames = h.take(alice_connection);
    ASSERT_EQ(frames.size(), 1u) << describe(frames);
    if (attempt < 3) {
      EXPECT_EQ(frames[0].head.status_code, 401);
      ch = challenge_for(frames[0], digest::sha256);
      ASSERT_TRUE(ch);
      EXPECT_FALSE(ch->stale) << "wrong credentials are not a stale nonce";
      EXPECT_FALSE(h.closed(alice_connection));
    } else {
      EXPECT_EQ(frames[0].head.status_code, 403);
      EXPECT_TRUE(h.closed(alice_connection));
    }
  }
  EXPECT_EQ(h.core().statistics().auth_failures, 3u);
  EXPECT_EQ(h.core().statistics().sessions, 0u);
  EXPECT_EQ(h.notices().find("looking-glass"), std::string::npos);
  // Nothing more is read from a connection being closed.
  h.receive(alice_connection, auth_text("late0001", alice_uri));
  EXPECT_TRUE(h.take(alice_connection).empty());
}

TEST_P(Relay, UnknownUserIsTreatedAsWrongPassword) {
  h.accept(alice_connection);
  auto ch = get_challenge(h, a);
  ASSERT_TRUE(ch);
  std::vector<int> codes;
  for (int attempt = 1; attempt <= 3; ++attempt) {
    h.receive(alice_connection,
              auth_text("nobody0" + std::to_string(attempt), alice_uri,
                        {{"Authorization", authorization(*ch, "eve", "anything")}}));
    const auto frames = h.take(alice_connection);
    ASSERT_EQ(frames.size(), 1u);
    codes.push_back(frames[0].head.status_code);
    if (frames[0].head.status_code == 401) ch = challenge_for(frames[0], digest::sha256);
    ASSERT_TRUE(ch);
  }
  EXPECT_EQ(codes, (std::vector<int>{401, 401, 403}));
  EXPECT_TRUE(h.closed(alice_connection));
}

// --- AUTH with a credential store that answers later (relay_actions::lookup) --------------

/// From now on `h` holds the lookups for the test to answer; `c` connects and is challenged.
std::optional<digest::challenge> challenge_holding_lookups(harness& h, const client& c) {
  h.hold_lookups();
  h.accept(c.connection);
  return get_challenge(h, c);
}

/// `c` answers `ch` with the right credentials in AUTH `tid`; the lookup the relay asks for
/// (nothing, after a failure, if it is not exactly one).
std::optional<relay_actions::lookup> auth_waiting_for_store(harness& h, const client& c,
                                                            const digest::challenge& ch,
                                                            std::string tid) {
  h.receive(c.connection,
            auth_text(std::move(tid), c.uri, {{"Authorization", authorization(ch, c.user)}}));
  const auto held = h.held_lookups();
  if (held.size() != 1) {
    ADD_FAILURE() << held.size() << " lookups held, expected 1";
    return std::nullopt;
  }
  return held[0];
}

TEST_P(Relay, LookupAnsweredLaterHoldsTheConnectionsInput) {
  const auto ch = challenge_holding_lookups(h, a);
  ASSERT_TRUE(ch);
  EXPECT_TRUE(h.held_lookups().empty()) << "no lookup for an AUTH without credentials";
  // The AUTH, and right behind it in the same bytes another request.
  h.receive(alice_connection,
            auth_text("auth0002", alice_uri, {{"Authorization", authorization(*ch, "alice")}}) +
                auth_text("after001", alice_uri));
  EXPECT_TRUE(h.take(alice_connection).empty()) << "nothing is answered before the store";
  EXPECT_FALSE(h.core().wants_input(alice_connection));
  EXPECT_EQ(h.core().statistics().lookups, 1u);
  const auto held = h.held_lookups();
  ASSERT_EQ(held.size(), 1u);
  EXPECT_EQ(held[0].connection, alice_connection);
  EXPECT_EQ(held[0].username, "alice");
  EXPECT_EQ(held[0].realm, relay_host);
  EXPECT_EQ(held[0].algorithm, digest::sha256);
  // More bytes while it waits are kept behind the held request.
  h.receive(alice_connection, auth_text("after002", alice_uri));
  EXPECT_TRUE(h.take(alice_connection).empty());

  h.answer(held[0], lookup_outcome::found);
  const auto frames = h.take(alice_connection);
  ASSERT_EQ(statuses(frames), (std::vector<int>{200, 401, 401})) << describe(frames);
  EXPECT_EQ(frames[0].head.transaction_id, "auth0002");
  EXPECT_EQ(frames[1].head.transaction_id, "after001");
  EXPECT_EQ(frames[2].head.transaction_id, "after002");
  EXPECT_TRUE(h.core().wants_input(alice_connection));
  EXPECT_EQ(h.core().statistics().lookups, 0u);
  EXPECT_EQ(h.core().statistics().sessions, 1u);
}

TEST_P(Relay, LookupAnsweredAfterTheConnectionClosedIsIgnored) {
  const auto ch = challenge_holding_lookups(h, a);
  ASSERT_TRUE(ch);
  const auto held = auth_waiting_for_store(h, a, *ch, "auth0002");
  ASSERT_TRUE(held);
  h.core().close_connection(alice_connection);
  EXPECT_EQ(h.core().statistics().lookups, 0u);
  // The same connection id again: the late answer is not for this connection.
  h.accept(alice_connection);
  h.answer(*held, lookup_outcome::found);
  EXPECT_TRUE(h.take(alice_connection).empty());
  EXPECT_EQ(h.core().statistics().sessions, 0u);
  EXPECT_TRUE(h.core().wants_input(alice_connection));
}

TEST_P(Relay, ConnectionClosedByProbationWhileItsLookupWaits) {
  const auto ch = challenge_holding_lookups(h, a);
  ASSERT_TRUE(ch);
  const auto held = auth_waiting_for_store(h, a, *ch, "auth0002");
  ASSERT_TRUE(held);
  h.advance(h.settings().probation);
  EXPECT_TRUE(h.closed(alice_connection));
  h.answer(*held, lookup_outcome::found);
  EXPECT_TRUE(h.take(alice_connection).empty()) << "a closing connection gets no answer";
  EXPECT_EQ(h.core().statistics().sessions, 0u);
}

TEST_P(Relay, UnavailableStoreAnswers500UntilItIsBack) {
  const auto ch = challenge_holding_lookups(h, a);
  ASSERT_TRUE(ch);
  // More attempts than `max_failures`: none of them is the client's failure.
  for (int attempt = 1; attempt <= 5; ++attempt) {
    SCOPED_TRACE(attempt);
    const auto tid = "down000" + std::to_string(attempt);
    const auto held = auth_waiting_for_store(h, a, *ch, tid);
    ASSERT_TRUE(held);
    h.answer(*held, lookup_outcome::unavailable);
    const auto frames = h.take(alice_connection);
    ASSERT_EQ(statuses(frames), std::vector<int>{500}) << describe(frames);
    EXPECT_EQ(frames[0].head.transaction_id, tid);
    EXPECT_EQ(frames[0].head.comment, "Credential Store Unavailable");
    EXPECT_EQ(header(frames[0], "To-Path"), alice_uri);
    EXPECT_TRUE(frames[0].head.www_authenticate().empty()) << "no new challenge";
    EXPECT_FALSE(h.closed(alice_connection));
    EXPECT_TRUE(h.core().wants_input(alice_connection));
  }
  EXPECT_EQ(h.core().statistics().auth_failures, 0u);
  EXPECT_EQ(h.core().statistics().auth_unavailable, 5u);
  EXPECT_TRUE(h.noticed("credential store unavailable")) << h.notices();
  // The store is back: the same credentials (the nonce was not used up) succeed.
  const auto held = auth_waiting_for_store(h, a, *ch, "back0001");
  ASSERT_TRUE(held);
  h.answer(*held, lookup_outcome::found);
  const auto frames = h.take(alice_connection);
  ASSERT_EQ(statuses(frames), std::vector<int>{200}) << describe(frames);
  EXPECT_EQ(h.core().statistics().sessions, 1u);
}

TEST_P(Relay, LookupOfAnUnknownUserIsAFailure) {
  const auto ch = challenge_holding_lookups(h, a);
  ASSERT_TRUE(ch);
  const auto held = auth_waiting_for_store(h, a, *ch, "auth0002");
  ASSERT_TRUE(held);
  h.answer(*held, lookup_outcome::no_such_user);
  const auto frames = h.take(alice_connection);
  ASSERT_EQ(statuses(frames), std::vector<int>{401}) << describe(frames);
  EXPECT_EQ(h.core().statistics().auth_failures, 1u);
}

TEST_P(Relay, FailedAuthThroughARelayPeerDoesNotCloseIt) {
  // §6.3: "a relay SHOULD NOT use excessive AUTH request failures as a reason to terminate a
  // connection with another relay".
  constexpr connection_id inner = 7;
  constexpr std::string_view via = "msrps://intra.example.com:9000/jui787s2f;tcp";
  const auto from = path_of({via, alice_uri});
  h.accept(inner, /*relay_peer=*/true);
  std::vector<int> codes;
  for (int i = 0; i < 5; ++i) {
    h.receive(inner, auth_text("peer000" + std::to_string(i), from));
    const auto challenge = h.take(inner);
    ASSERT_EQ(challenge.size(), 1u);
    EXPECT_EQ(header(challenge[0], "To-Path"), from);
    h.receive(
        inner,
        auth_text("peer100" + std::to_string(i), from,
                  {{"Authorization", authorization(*challenge_for(challenge[0], digest::sha256),
                                                   "alice", "wrong")}}));
    for (const auto code : statuses(h.take(inner)))
      codes.push_back(code);
  }
  EXPECT_EQ(codes, std::vector<int>(5, 401));
  EXPECT_FALSE(h.closed(inner));
  // The right password through the relay: the Use-Path leads back through it (§5.1).
  h.receive(inner, auth_text("peer2000", from));
  const auto challenge = h.take(inner);
  ASSERT_EQ(challenge.size(), 1u);
  h.receive(inner,
            auth_text("peer2001", from,
                      {{"Authorization",
                        authorization(*challenge_for(challenge[0], digest::sha256), "alice")}}));
  const auto ok = h.take(inner);
  ASSERT_EQ(statuses(ok), std::vector<int>{200}) << describe(ok);
  const auto use_path = ok[0].head.use_path();
  ASSERT_TRUE(use_path);
  ASSERT_EQ(use_path->size(), 2u);
  EXPECT_EQ(use_path->front().to_string(), via);
  EXPECT_EQ(header(ok[0], "To-Path"), from);
}

TEST_P(Relay, ReplayedAuthorizationGetsStaleChallenge) {
  h.accept(alice_connection);
  const auto ch = get_challenge(h, a);
  ASSERT_TRUE(ch);
  const auto credentials = authorization(*ch, "alice");
  h.receive(alice_connection, auth_text("first001", alice_uri, {{"Authorization", credentials}}));
  auto frames = h.take(alice_connection);
  ASSERT_EQ(statuses(frames), std::vector<int>{200});
  // The same Authorization again, even on the same connection, is a replay.
  h.receive(alice_connection, auth_text("replay01", alice_uri, {{"Authorization", credentials}}));
  frames = h.take(alice_connection);
  ASSERT_EQ(statuses(frames), std::vector<int>{401}) << describe(frames);
  const auto stale = challenge_for(frames[0], digest::sha256);
  ASSERT_TRUE(stale);
  EXPECT_TRUE(stale->stale);
  EXPECT_TRUE(challenge_for(frames[0], digest::md5)->stale);
  EXPECT_EQ(h.core().statistics().auth_failures, 0u) << "a stale nonce is not a failure";
  // The fresh nonce works.
  h.receive(alice_connection,
            auth_text("fresh001", alice_uri, {{"Authorization", authorization(*stale, "alice")}}));
  EXPECT_EQ(statuses(h.take(alice_connection)), std::vector<int>{200});
}

TEST_P(Relay, NonceFromAnotherConnectionIsStale) {
  h.accept(alice_connection);
  const auto ch = get_challenge(h, a);
  ASSERT_TRUE(ch);
  h.accept(mallory_connection);
  h.receive(mallory_connection,
            auth_text("steal001", alice_uri, {{"Authorization", authorization(*ch, "alice")}}));
  const auto frames = h.take(mallory_connection);
  ASSERT_EQ(statuses(frames), std::vector<int>{401}) << describe(frames);
  EXPECT_TRUE(challenge_for(frames[0], digest::sha256)->stale);
  EXPECT_EQ(h.core().statistics().sessions, 0u);
  // The nonce is still good on the connection it was issued to.
  h.receive(alice_connection,
            auth_text("mine0001", alice_uri, {{"Authorization", authorization(*ch, "alice")}}));
  EXPECT_EQ(statuses(h.take(alice_connection)), std::vector<int>{200});
}

TEST_P(Relay, AConnectionHoldsAFewNoncesOnly) {
  // Challenges cost memory: a connection keeps its latest 8 nonces (4 challenges of two
  // algorithms); an older one is forgotten, and answering it is stale.
  h.accept(alice_connection);
  const auto oldest = get_challenge(h, a);
  ASSERT_TRUE(oldest);
  std::optional<digest::challenge> latest;
  for (int i = 0; i < 4; ++i) {
    latest = get_challenge(h, a);
    ASSERT_TRUE(latest);
  }
  h.receive(alice_connection,
            auth_text("old00001", alice_uri, {{"Authorization", authorization(*oldest, "alice")}}));
  auto frames = h.take(alice_connection);
  ASSERT_EQ(statuses(frames), std::vector<int>{401}) << describe(frames);
  EXPECT_TRUE(challenge_for(frames[0], digest::sha256)->stale);
  h.receive(alice_connection,
            auth_text("new00001", alice_uri, {{"Authorization", authorization(*latest, "alice")}}));
  EXPECT_EQ(statuses(h.take(alice_connection)), std::vector<int>{200});
}

TEST_P(Relay, ExpiredNonceIsStale) {
  auto settings = relay_settings();
  settings.nonce_lifetime = 10s;
  harness short_nonces(GetParam(), settings);
  short_nonces.accept(alice_connection);
  const auto ch = get_challenge(short_nonces, a);
  ASSERT_TRUE(ch);
  short_nonces.advance(11s);
  short_nonces.receive(
      alice_connection,
      auth_text("late0001", alice_uri, {{"Authorization", authorization(*ch, "alice")}}));
  const auto frames = short_nonces.take(alice_connection);
  ASSERT_EQ(statuses(frames), std::vector<int>{401}) << describe(frames);
  const auto stale = challenge_for(frames[0], digest::sha256);
  EXPECT_TRUE(stale->stale);
  EXPECT_FALSE(short_nonces.closed(alice_connection));
  short_nonces.receive(
      alice_connection,
      auth_text("late0002", alice_uri, {{"Authorization", authorization(*stale, "alice")}}));
  EXPECT_EQ(statuses(short_nonces.take(alice_connection)), std::vector<int>{200});
}

/// The challenge a client makes of a nextnonce.
digest::challenge from_nextnonce(const parsed_frame& ok, std::string_view algorithm) {
  digest::challenge next;
  next.realm = std::string(relay_host);
  next.algorithm = std::string(algorithm);
  const auto info = digest::authentication_info::parse(ok.head.authentication_info().value_or(""));
  EXPECT_TRUE(info);
  if (info) next.nonce = info->nextnonce;
  return next;
}

TEST_P(Relay, NextNonceRefreshesTheSameSession) {
  const auto first = authenticate(h, a);
  ASSERT_TRUE(first);
  h.advance(30s);
  ASSERT_TRUE(authenticate(h, b));
  h.receive(alice_connection,
            auth_text("refresh1", alice_uri,
                      {{"Authorization", authorization(from_nextnonce(*first, digest::sha256),
                                                       "alice", {}, "77aa77aa")}}));
  const auto frames = h.take(alice_connection);
  ASSERT_EQ(statuses(frames), std::vector<int>{200}) << describe(frames);
  EXPECT_EQ(header(frames[0], "Use-Path"), a.use_path);
  EXPECT_EQ(header(frames[0], "Expires"), "1800");
  EXPECT_EQ(h.core().statistics().sessions, 2u);
  EXPECT_TRUE(h.noticed("refreshed"));
  // The refresh moved the expiry: 1800 s after the first AUTH the session still works.
  h.advance(1785s);
  h.receive(bob_connection, send_text("s1000001", path_between(b, a), bob_uri, "msg1", "hi"));
  EXPECT_EQ(statuses(h.take(bob_connection)), std::vector<int>{200});
  EXPECT_EQ(requests_of(h.take(alice_connection), "SEND").size(), 1u);
  // A nextnonce lives `nonce_lifetime` like any nonce: later it is stale.
  h.advance(h.settings().nonce_lifetime + 1s);
  h.receive(alice_connection,
            auth_text("refresh2", alice_uri,
                      {{"Authorization",
                        authorization(from_nextnonce(frames[0], digest::sha256), "alice")}}));
  const auto stale = h.take(alice_connection);
  ASSERT_EQ(statuses(stale), std::vector<int>{401}) << describe(stale);
  EXPECT_TRUE(challenge_for(stale[0], digest::sha256)->stale);
}

TEST_P(Relay, OtherFromPathGetsAnotherSession) {
  ASSERT_TRUE(authenticate(h, a));
  const std::string other = "msrps://alice.example.com:9892/second;tcp";
  h.receive(alice_connection, auth_text("other001", other));
  const auto challenge = h.take(alice_connection);
  ASSERT_EQ(statuses(challenge), std::vector<int>{401});
  h.receive(alice_connection,
            auth_text("other002", other,
                      {{"Authorization",
                        authorization(*challenge_for(challenge[0], digest::md5), "alice")}}));
  const auto second = h.take(alice_connection);
  ASSERT_EQ(statuses(second), std::vector<int>{200});
  EXPECT_NE(header(second[0], "Use-Path"), a.use_path);
  EXPECT_EQ(h.core().statistics().sessions, 2u);
}

TEST_P(Relay, ExpiresOutOfBoundsGets423) {
  h.accept(alice_connection);
  const auto ch = get_challenge(h, a);
  ASSERT_TRUE(ch);
  std::uint32_t nc = 0;
  auto try_expires = [&](std::string expires) {
    ++nc;  // the same nonce again: the next nonce-count
    h.receive(alice_connection,
              auth_text("exp" + std::to_string(nc) + "xxxx", alice_uri,
                        {{"Authorization", authorization(*ch, "alice", {}, "c0ffee00", nc)},
                         {"Expires", std::move(expires)}}));
    auto frames = h.take(alice_connection);
    EXPECT_EQ(frames.size(), 1u) << describe(frames);
    return frames.empty() ? parsed_frame{} : frames[0];
  };
  const auto low = try_expires("59");
  EXPECT_EQ(low.head.status_code, 423);
  EXPECT_EQ(header(low, "Min-Expires"), "60");
  const auto high = try_expires("86401");
  EXPECT_EQ(high.head.status_code, 423);
  EXPECT_EQ(header(high, "Max-Expires"), "86400");
  EXPECT_FALSE(h.closed(alice_connection)) << "a 423 is not a failed AUTH";
  // The nonce stays good for the retry, and an Expires in range is granted as asked.
  const auto ok = try_expires("60");
  EXPECT_EQ(ok.head.status_code, 200);
  EXPECT_EQ(header(ok, "Expires"), "60");
}

TEST_P(Relay, ExpiresAtTheUpperBoundIsGranted) {
  client x = alice();
  const auto ok = authenticate(h, x, digest::md5, {{"Expires", "86400"}});
  ASSERT_TRUE(ok);
  EXPECT_EQ(header(*ok, "Expires"), "86400");
}

TEST_P(Relay, MalformedAuthorizationCountsAsFailure) {
  h.accept(alice_connection);
  std::vector<int> codes;
  for (int i = 0; i < 3; ++i) {
    h.receive(alice_connection, auth_text("bad0000" + std::to_string(i), alice_uri,
                                          {{"Authorization", "Basic YWxpY2U6c2VjcmV0"}}));
    for (const auto code : statuses(h.take(alice_connection)))
      codes.push_back(code);
  }
  EXPECT_EQ(codes, (std::vector<int>{401, 401, 403}));
  EXPECT_TRUE(h.closed(alice_connection));
}

TEST(RelayAuth, SplitAtEveryPoint) {
  // The reference run, whole.
  std::string expected;
  {
    harness h;
    auto a = alice();
    h.accept(a.connection);
    const auto ch = get_challenge(h, a);
    ASSERT_TRUE(ch);
    h.receive(a.connection,
              auth_text("49fi0001", alice_uri, {{"Authorization", authorization(*ch, "alice")}}));
    for (const auto& f : h.take(a.connection))
      expected += frame_text(f.head);
  }
  ASSERT_NE(expected.find("200 OK"), std::string::npos);
  const auto first = auth_text("auth0001", alice_uri);
  for (std::size_t cut1 = 0; cut1 <= first.size(); ++cut1) {
    harness h;
    auto a = alice();
    h.accept(a.connection);
    h.core().receive(a.connection, first.substr(0, cut1));
    h.core().receive(a.connection, first.substr(cut1));
    const auto frames = h.take(a.connection);
    ASSERT_EQ(statuses(frames), std::vector<int>{401}) << "cut at " << cut1;
    const auto ch = challenge_for(frames[0], digest::sha256);
    ASSERT_TRUE(ch);
    const auto second =
        auth_text("49fi0001", alice_uri, {{"Authorization", authorization(*ch, "alice")}});
    // The second request at every split point too (with the first cut at one place).
    const std::size_t step = cut1 == first.size() / 2 ? 1 : second.size() + 1;
    for (std::size_t cut2 = 0; cut2 <= second.size(); cut2 += step) {
      harness inner;
      inner.accept(a.connection);
      inner.core().receive(a.connection, first.substr(0, cut1));
      inner.core().receive(a.connection, first.substr(cut1));
      const auto challenge = inner.take(a.connection);
      ASSERT_EQ(challenge.size(), 1u);
      const auto inner_ch = challenge_for(challenge[0], digest::sha256);
      ASSERT_TRUE(inner_ch);
      const auto answer =
          auth_text("49fi0001", alice_uri, {{"Authorization", authorization(*inner_ch, "alice")}});
      inner.core().receive(a.connection, answer.substr(0, cut2));
      inner.core().receive(a.connection, answer.substr(cut2));
      std::string got;
      for (const auto& f : inner.take(a.connection))
        got += frame_text(f.head);
      ASSERT_EQ(got, expected) << "cuts " << cut1 << ", " << cut2;
    }
  }
}

// --- Forwarding between two clients of this relay (RFC 4976 §6.4) ---------------------------

TEST_P(Relay, FuzzFindBodyLongerThanByteRangeIs400) {
  // Found by fuzz_relay: a body that runs past its Byte-Range total made the relay forward
  // continuation ranges past the total, and REPORTs with such ranges, that no peer can parse.
  // Now the chunk is not passed on (what went out is aborted) and the sender gets 400.
  two_clients();
  const auto head = send_head("long0001", path_between(a, b), alice_uri, "m-long", "1-*/3000");
  h.receive(alice_connection, frame_text(head, std::string(5000, 'x')));
  const auto to_alice = h.take(alice_connection);
  ASSERT_EQ(statuses(to_alice), std::vector<int>{400}) << describe(to_alice);
  for (const auto& f : h.take(bob_connection)) {
    EXPECT_EQ(f.flag, end_flag::aborted) << "nothing of it may complete at Bob";
    EXPECT_LE(f.body.size(), 3000u);
  }
  // The connection goes on.
  h.receive(alice_connection, send_text("next0001", path_between(a, b), alice_uri, "m-next", "ok"));
  EXPECT_EQ(statuses(h.take(alice_connection)), std::vector<int>{200});
}

TEST_P(Relay, FuzzFindSendThroughOwnSessionTwice) {
  // Found by fuzz_relay (heap-use-after-free): a SEND whose To-Path names the sender's own
  // session twice is forwarded back over the sender's own connection; answering its end-line
  // could let that very forward finish and be freed while still in use.
  two_clients();
  h.receive(alice_connection,
            frame_text(send_head("self0001", path_between(a, b), alice_uri, "m-1", "1-*/6000"),
                       std::string(1431, 'x'), end_flag::continued));
  const auto loop = path_of({a.use_path, a.use_path, bob_uri});
  const std::string body(2700, 'y');
  h.receive(alice_connection,
            frame_text(send_head("self0002", loop, alice_uri, "m-2", "3001-5700/6000"), body));
  const auto to_alice = h.take(alice_connection);
  std::vector<int> answers;
  std::string looped;
  for (const auto& f : to_alice) {
    if (!f.head.is_request()) answers.push_back(f.head.status_code);
    if (f.head.message_id() == "m-2") looped += f.body;
  }
  EXPECT_EQ(answers, (std::vector<int>{200, 200})) << describe(to_alice);
  EXPECT_EQ(looped, body) << "the SEND comes back over Alice's own connection, whole";
}

TEST_P(Relay, ForwardsSendBetweenTwoClients) {
  two_clients();
  ASSERT_NE(a.use_path, b.use_path);
  const std::string body = "Hello, Bob!\r\n-------not-an-end-line$\r\n";
  h.receive(alice_connection,
            send_text("a1send01", path_between(a, b), alice_uri, "msg-alice-1", body));
  const auto to_bob = h.take(bob_connection);
  ASSERT_EQ(to_bob.size(), 1u) << describe(to_bob);
  const auto& send = to_bob[0];
  EXPECT_EQ(send.head.method, "SEND");
  EXPECT_EQ(header(send, "To-Path"), bob_uri);
  EXPECT_EQ(header(send, "From-Path"), path_of({b.use_path, a.use_path, alice_uri}));
  EXPECT_NE(send.head.transaction_id, "a1send01") << "§6.4: a new transaction id";
  EXPECT_EQ(header(send, "Message-ID"), "msg-alice-1");
  EXPECT_EQ(header(send, "Content-Type"), "text/plain");
  EXPECT_EQ(send.body, body);
  EXPECT_EQ(send.flag, end_flag::complete);
  const auto range = send.head.byte_range();
  ASSERT_TRUE(range);
  EXPECT_EQ(range->start, 1u);
  EXPECT_EQ(range->total, std::optional<std::uint64_t>(body.size()));

  // §6.4.1: the relay answers Alice's SEND itself, to the previous hop only.
  const auto to_alice = h.take(alice_connection);
  ASSERT_EQ(to_alice.size(), 1u) << describe(to_alice);
  EXPECT_EQ(to_alice[0].head.status_code, 200);
  EXPECT_EQ(to_alice[0].head.transaction_id, "a1send01");
  EXPECT_EQ(header(to_alice[0], "To-Path"), alice_uri);
  EXPECT_EQ(header(to_alice[0], "From-Path"), a.use_path);

  // Bob's 200 ends at the relay.
  h.receive(bob_connection,
            response_text(send.head.transaction_id, 200, "OK", b.use_path, bob_uri));
  EXPECT_TRUE(h.take(alice_connection).empty());
  EXPECT_TRUE(h.take(bob_connection).empty());
  EXPECT_FALSE(h.closed(alice_connection));
  EXPECT_FALSE(h.closed(bob_connection));

  const auto stats = h.core().statistics();
  EXPECT_EQ(stats.bytes_relayed, body.size());
  EXPECT_GE(stats.frames_relayed, 1u);
  EXPECT_EQ(stats.reports_generated, 0u);
}

TEST_P(Relay, ReportTravelsBackAlongFromPath) {
  two_clients();
  h.receive(alice_connection, send_text("a1send01", path_between(a, b), alice_uri, "msg-a-1",
                                        "hello", {{"Success-Report", "yes"}}));
  const auto to_bob = h.take(bob_connection);
  ASSERT_EQ(to_bob.size(), 1u);
  EXPECT_EQ(header(to_bob[0], "Success-Report"), "yes");
  h.take(alice_connection);
  // Bob's success REPORT goes to the From-Path he received.
  const auto report = frame_text(
      request("b1report", "REPORT", header(to_bob[0], "From-Path"), bob_uri,
              {{"Message-ID", "msg-a-1"}, {"Byte-Range", "1-5/5"}, {"Status", "000 200 OK"}}));
  h.receive(bob_connection, report);
  const auto to_alice = h.take(alice_connection);
  ASSERT_EQ(to_alice.size(), 1u) << describe(to_alice);
  EXPECT_EQ(to_alice[0].head.method, "REPORT");
  EXPECT_EQ(header(to_alice[0], "To-Path"), alice_uri);
  EXPECT_EQ(header(to_alice[0], "From-Path"), path_of({a.use_path, b.use_path, bob_uri}));
  EXPECT_EQ(header(to_alice[0], "Message-ID"), "msg-a-1");
  EXPECT_EQ(header(to_alice[0], "Status"), "000 200 OK");
  EXPECT_NE(to_alice[0].head.transaction_id, "b1report");
  // REPORTs are never answered (RFC 4975 §7.1.2).
  EXPECT_TRUE(h.take(bob_connection).empty());
}

TEST_P(Relay, LargeBodyStreamsWithinOutputWindow) {
  two_clients();
  constexpr std::size_t size = 1024 * 1024;
  constexpr std::size_t piece = 64 * 1024;
  const auto body = make_body(size, 7);
  const auto head = serialize_head(send_head("bigsend1", path_between(a, b), alice_uri, "msg-big",
                                             "1-*/" + std::to_string(size)));
  h.receive(alice_connection, head);
  const auto bound = h.settings().output_window + piece + 1024;
  std::size_t sent = 0;
  bool blocked = false;
  std::size_t largest = 0;
  while (sent < size) {
    if (!h.core().wants_input(alice_connection)) {
      blocked = true;
      h.take(bob_connection);  // Bob's connection drains...
      ASSERT_TRUE(h.core().wants_input(alice_connection)) << "...and Alice is read again";
      continue;
    }
    const auto n = std::min(piece, size - sent);
    h.receive(alice_connection, std::string_view(body).substr(sent, n));
    sent += n;
    largest = std::max(largest, h.pending_output(bob_connection));
    ASSERT_LE(h.pending_output(bob_connection), bound) << "after " << sent << " bytes";
    EXPECT_EQ(h.core().wants_input(alice_connection),
              h.pending_output(bob_connection) < h.settings().output_window);
  }
  EXPECT_TRUE(blocked) << "the relay never pushed back";
  EXPECT_GE(largest, h.settings().output_window);
  h.receive(alice_connection,
            serialize_end(send_head("bigsend1", "", "", "", ""), end_flag::complete));
  const auto frames = h.take(bob_connection);
  std::string received;
  for (const auto& f : frames) {
    EXPECT_EQ(f.head.method, "SEND");
    EXPECT_EQ(header(f, "Message-ID"), "msg-big");
    received += f.body;
  }
  ASSERT_EQ(frames.size(), 1u) << "nobody else waits, so the chunk is not interrupted";
  EXPECT_EQ(frames[0].flag, end_flag::complete);
  EXPECT_EQ(received.size(), body.size());
  EXPECT_TRUE(received == body) << "the body arrived changed";
  EXPECT_EQ(statuses(h.take(alice_connection)), std::vector<int>{200});
  EXPECT_EQ(h.core().statistics().bytes_relayed, size);
}

/// Reassembles the chunks of `message_id` in `frames` by their Byte-Range.
std::string reassemble(const std::vector<parsed_frame>& frames, std::string_view message_id) {
  std::string out;
  for (const auto& f : frames) {
    if (f.head.method != "SEND" || f.head.message_id() != message_id) continue;
    const auto range = f.head.byte_range();
    EXPECT_TRUE(range);
    if (!range) continue;
    const auto at = static_cast<std::size_t>(range->start - 1);
    if (out.size() < at + f.body.size()) out.resize(at + f.body.size(), '\0');
    out.replace(at, f.body.size(), f.body);
  }
  return out;
}

TEST_P(Relay, InterruptsLongChunkForAnotherSender) {
  two_clients();
  ASSERT_TRUE(authenticate(h, c));
  h.forget_history();
  constexpr std::size_t size = 200 * 1024;
  const auto body = make_body(size, 11);
  h.receive(alice_connection,
            serialize_head(send_head("streamA1", path_between(a, b), alice_uri, "msg-stream",
                                     "1-*/" + std::to_string(size))));
  h.receive(alice_connection, std::string_view(body).substr(0, 10000));
  // Carol sends a short message to Bob while Alice's chunk is open.
  h.receive(carol_connection,
            send_text("carol001", path_between(c, b), carol_uri, "msg-carol", "interjection"));
  EXPECT_EQ(statuses(h.take(carol_connection)), std::vector<int>{200});
  std::size_t sent = 10000;
  while (sent < size) {
    if (!h.core().wants_input(alice_connection)) {
      h.take(bob_connection);
      ASSERT_TRUE(h.core().wants_input(alice_connection));
      continue;
    }
    const auto n = std::min<std::size_t>(32 * 1024, size - sent);
    h.receive(alice_connection, std::string_view(body).substr(sent, n));
    sent += n;
  }
  h.receive(alice_connection,
            serialize_end(send_head("streamA1", "", "", "", ""), end_flag::complete));
  h.take(bob_connection);
  const auto& wire = h.history(bob_connection);
  ASSERT_GE(wire.size(), 3u) << describe(wire);
  // Alice's chunk was interrupted (§7.1.1: only after 2048 bytes, end-line with '+')...
  EXPECT_EQ(header(wire[0], "Message-ID"), "msg-stream");
  EXPECT_EQ(wire[0].flag, end_flag::continued);
  EXPECT_GE(wire[0].body.size(), 2048u);
  ASSERT_TRUE(wire[0].head.byte_range());
  EXPECT_EQ(wire[0].head.byte_range()->start, 1u);
  EXPECT_FALSE(wire[0].head.byte_range()->end) << "an interruptible chunk says '*'";
  // ...Carol's message went out whole...
  EXPECT_EQ(header(wire[1], "Message-ID"), "msg-carol");
  EXPECT_EQ(wire[1].body, "interjection");
  EXPECT_EQ(wire[1].flag, end_flag::complete);
  EXPECT_EQ(header(wire[1], "From-Path"), path_of({b.use_path, c.use_path, carol_uri}));
  // ...and Alice's went on where it stopped, with the same Message-ID and a new transaction.
  EXPECT_EQ(header(wire[2], "Message-ID"), "msg-stream");
  ASSERT_TRUE(wire[2].head.byte_range());
  EXPECT_EQ(wire[2].head.byte_range()->start, wire[0].body.size() + 1);
  EXPECT_EQ(wire[2].head.byte_range()->total, std::optional<std::uint64_t>(size));
  EXPECT_NE(wire[2].head.transaction_id, wire[0].head.transaction_id);
  for (std::size_t i = 2; i + 1 < wire.size(); ++i)
    EXPECT_EQ(wire[i].flag, end_flag::continued);
  EXPECT_EQ(wire.back().flag, end_flag::complete);
  EXPECT_EQ(header(wire.back(), "Message-ID"), "msg-stream");
  EXPECT_TRUE(reassemble(wire, "msg-stream") == body) << "Alice's body arrived changed";
  EXPECT_EQ(statuses(h.take(alice_connection)), std::vector<int>{200});
}

TEST_P(Relay, InterruptsLongChunkForAResponse) {
  // RFC 4975 §7.1.1: a chunk of more than 2048 bytes is interrupted for a pending response,
  // and it must go on afterwards.
  two_clients();
  constexpr std::size_t size = 100 * 1024;
  const auto body = make_body(size, 13);
  h.receive(alice_connection,
            serialize_head(send_head("streamA1", path_between(a, b), alice_uri, "msg-stream",
                                     "1-*/" + std::to_string(size))));
  h.receive(alice_connection, std::string_view(body).substr(0, 8000));
  // Bob sends to Alice meanwhile: the relay's 200 for it is due on Bob's connection.
  h.receive(bob_connection, send_text("bob00001", path_between(b, a), bob_uri, "msg-bob", "hi"));
  std::size_t sent = 8000;
  while (sent < size) {
    if (!h.core().wants_input(alice_connection)) {
      h.take(bob_connection);
      ASSERT_TRUE(h.core().wants_input(alice_connection))
          << "Alice's stream is stuck after the interruption";
      continue;
    }
    const auto n = std::min<std::size_t>(16 * 1024, size - sent);
    h.receive(alice_connection, std::string_view(body).substr(sent, n));
    sent += n;
  }
  h.receive(alice_connection,
            serialize_end(send_head("streamA1", "", "", "", ""), end_flag::complete));
  h.take(bob_connection);
  const auto& wire = h.history(bob_connection);
  ASSERT_GE(wire.size(), 3u) << describe(wire);
  EXPECT_EQ(wire[0].flag, end_flag::continued);
  EXPECT_GE(wire[0].body.size(), 2048u);
  EXPECT_EQ(wire[1].head.status_code, 200);
  EXPECT_EQ(wire[1].head.transaction_id, "bob00001");
  EXPECT_EQ(wire.back().flag, end_flag::complete);
  EXPECT_TRUE(reassemble(wire, "msg-stream") == body);
  const auto to_alice = h.take(alice_connection);
  EXPECT_EQ(requests_of(to_alice, "SEND").size(), 1u) << describe(to_alice);
  EXPECT_EQ(statuses(to_alice), std::vector<int>{200});
}

TEST_P(Relay, ResponseDoesNotEndAWaitingChunk) {
  // A connection's input may hold a chunk that waits for its target and, after it, a response:
  // the response's end-line is not the chunk's.
  two_clients();
  ASSERT_TRUE(authenticate(h, c));
  h.receive(alice_connection, send_text("a2b00001", path_between(a, b), alice_uri, "m-ab", "x"));
  const auto to_bob = h.take(bob_connection);
  ASSERT_EQ(to_bob.size(), 1u);
  h.take(alice_connection);
  // Carol's chunk holds Alice's connection (too short to be interrupted).
  h.receive(carol_connection, serialize_head(send_head("carol001", path_between(c, a), carol_uri,
                                                       "m-ca", "1-*/3000")));
  h.receive(carol_connection, std::string(1000, 'c'));
  // Bob's first chunk (ending '+') waits for Alice's connection; his 200 for Alice follows.
  const auto bob_chunk =
      frame_text(send_head("b2a00001", path_between(b, a), bob_uri, "m-ba", "1-100/300"),
                 std::string(100, 'b'), end_flag::continued);
  h.receive(bob_connection, bob_chunk + response_text(to_bob[0].head.transaction_id, 200, "OK",
                                                      b.use_path, bob_uri));
  h.receive(carol_connection,
            std::string(2000, 'c') +
                serialize_end(send_head("carol001", "", "", "", ""), end_flag::complete));
  const auto to_alice = h.take(alice_connection);
  const auto bobs = [&] {
    std::vector<parsed_frame> out;
    for (const auto& f : to_alice) {
      if (f.head.message_id() == "m-ba") out.push_back(f);
    }
    return out;
  }();
  ASSERT_EQ(bobs.size(), 1u) << describe(to_alice);
  EXPECT_EQ(bobs[0].flag, end_flag::continued) << "Bob's chunk must keep its '+'";
  EXPECT_EQ(bobs[0].body, std::string(100, 'b'));
}

TEST_P(Relay, TwoLongSendersTakeTurns) {
  // RFC 4975 §7.1.1: concurrent SENDs on one connection alternate; each gets its share.
  two_clients();
  ASSERT_TRUE(authenticate(h, c));
  h.forget_history();
  constexpr std::size_t size = 300 * 1024;
  const auto alice_body = make_body(size, 23);
  const auto carol_body = make_body(size, 29);
  struct sender {
    client* who;
    const std::string* body;
    message head;
    std::size_t sent = 0;
    bool done = false;
  };
  std::vector<sender> senders = {{&a, &alice_body,
                                  send_head("turnA001", path_between(a, b), alice_uri, "msg-a",
                                            "1-*/" + std::to_string(size))},
                                 {&c, &carol_body,
                                  send_head("turnC001", path_between(c, b), carol_uri, "msg-c",
                                            "1-*/" + std::to_string(size))}};
  for (auto& s : senders)
    h.receive(s.who->connection, serialize_head(s.head));
  std::size_t rounds = 0;
  while (!senders[0].done || !senders[1].done) {
    ASSERT_LT(++rounds, 10000u) << "no progress";
    bool moved = false;
    for (auto& s : senders) {
      if (s.done || !h.core().wants_input(s.who->connection)) continue;
      const auto n = std::min<std::size_t>(24 * 1024, size - s.sent);
      h.receive(s.who->connection, std::string_view(*s.body).substr(s.sent, n));
      s.sent += n;
      moved = true;
      if (s.sent == size) {
        h.receive(s.who->connection, serialize_end(s.head, end_flag::complete));
        s.done = true;
      }
    }
    if (!moved) h.take(bob_connection);
  }
  h.take(bob_connection);
  const auto& wire = h.history(bob_connection);
  EXPECT_TRUE(reassemble(wire, "msg-a") == alice_body);
  EXPECT_TRUE(reassemble(wire, "msg-c") == carol_body);
  // Both got turns: the wire alternates rather than carrying one message after the other.
  std::size_t switches = 0;
  for (std::size_t i = 1; i < wire.size(); ++i) {
    if (wire[i].head.message_id() != wire[i - 1].head.message_id()) ++switches;
  }
  EXPECT_GE(switches, 4u) << describe(wire);
  for (const auto& f : wire) {
    EXPECT_TRUE(f.flag == end_flag::complete || f.body.size() >= 2048)
        << "a chunk interrupted before 2048 bytes";
  }
  EXPECT_EQ(statuses(h.take(alice_connection)), std::vector<int>{200});
  EXPECT_EQ(statuses(h.take(carol_connection)), std::vector<int>{200});
}

TEST_P(Relay, SendWithoutByteRangeKeepsContentTypeLast) {
  // RFC 4975 §9: content-stuff = *(Other-Mime-header CRLF) Content-Type 2CRLF data CRLF, so
  // the Byte-Range the relay adds goes before the MIME headers.
  two_clients();
  auto head = request("nobr0001", "SEND", path_between(a, b), alice_uri,
                      {{"Message-ID", "msg-nobr"},
                       {"Content-Disposition", "inline"},
                       {"Content-Type", "text/plain"}});
  h.receive(alice_connection, frame_text(head, "no range"));
  const auto frames = h.take(bob_connection);
  ASSERT_EQ(frames.size(), 1u);
  const auto& fields = frames[0].head.headers;
  ASSERT_GE(fields.size(), 2u);
  EXPECT_EQ(fields.back().name, "Content-Type") << describe(frames);
  EXPECT_EQ(fields[fields.size() - 2].name, "Content-Disposition") << describe(frames);
  EXPECT_EQ(header(frames[0], "Byte-Range"), "1-*/*");
  EXPECT_EQ(frames[0].body, "no range");
}

TEST_P(Relay, TooManySessionsIsForbidden) {
  auto settings = relay_settings();
  settings.max_sessions_per_user = 1;
  harness limited(GetParam(), settings);
  ASSERT_TRUE(authenticate(limited, a));
  const std::string other = "msrps://alice.example.com:9892/second;tcp";
  limited.receive(alice_connection, auth_text("other001", other));
  const auto challenge = limited.take(alice_connection);
  ASSERT_EQ(statuses(challenge), std::vector<int>{401});
  limited.receive(
      alice_connection,
      auth_text("other002", other,
                {{"Authorization",
                  authorization(*challenge_for(challenge[0], digest::sha256), "alice")}}));
  EXPECT_EQ(statuses(limited.take(alice_connection)), std::vector<int>{403});
  EXPECT_EQ(limited.core().statistics().sessions, 1u);
  EXPECT_FALSE(limited.closed(alice_connection));
}

TEST_P(Relay, SessionsClosedWithTheirConnectionFreeTheUsersQuota) {
  auto settings = relay_settings();
  settings.max_sessions_per_user = 1;
  harness limited(GetParam(), settings);
  ASSERT_TRUE(authenticate(limited, a));
  limited.core().close_connection(alice_connection);
  EXPECT_EQ(limited.core().statistics().sessions, 0u);
  // Alice again, on a new connection: her one session is free again.
  auto again = a;
  again.connection = carol_connection;
  ASSERT_TRUE(authenticate(limited, again));
  EXPECT_EQ(limited.core().statistics().sessions, 1u);
}

TEST_P(Relay, PipelinedRequestsKeepTheirOrder) {
  two_clients();
  // Three SENDs in one read, the middle one toward a next hop that is still connecting.
  const auto to_peer = path_of({a.use_path, peer_uri});
  h.receive(alice_connection,
            send_text("pipe0001", path_between(a, b), alice_uri, "m-1", "one") +
                send_text("pipe0002", to_peer, alice_uri, "m-2", "two") +
                send_text("pipe0003", path_between(a, b), alice_uri, "m-3", "three"));
  EXPECT_EQ(statuses(h.take(alice_connection)), (std::vector<int>{200, 200, 200}));
  auto to_bob = h.take(bob_connection);
  ASSERT_EQ(to_bob.size(), 1u) << "the third waits behind the second";
  EXPECT_EQ(to_bob[0].body, "one");
  EXPECT_FALSE(h.core().wants_input(alice_connection));
  const auto connects = h.connects();
  ASSERT_EQ(connects.size(), 1u);
  h.core().connected(connects[0].connection);
  const auto to_peer_frames = h.take(connects[0].connection);
  ASSERT_EQ(to_peer_frames.size(), 1u);
  EXPECT_EQ(to_peer_frames[0].body, "two");
  to_bob = h.take(bob_connection);
  ASSERT_EQ(to_bob.size(), 1u);
  EXPECT_EQ(to_bob[0].body, "three");
  EXPECT_TRUE(h.core().wants_input(alice_connection));
}

// --- Next hops outside the relay (§6.4.2) ---------------------------------------------------

TEST_P(Relay, ConnectsToOutsideNextHopAndReusesConnection) {
  ASSERT_TRUE(authenticate(h, a));
  const auto to = path_of({a.use_path, peer_uri});
  h.receive(alice_connection, send_text("out00001", to, alice_uri, "msg-out-1", "first"));
  const auto connects = h.connects();
  ASSERT_EQ(connects.size(), 1u);
  const auto peer = connects[0].connection;
  EXPECT_EQ(connects[0].target.host(), "peer.example.net");
  EXPECT_EQ(connects[0].target.port(), std::optional<std::uint16_t>(7000));
  EXPECT_FALSE(connects[0].target.is_secure());
  EXPECT_NE(peer, alice_connection);
  EXPECT_TRUE(h.take(peer).empty()) << "nothing goes out before the connection is up";
  EXPECT_FALSE(h.core().wants_input(alice_connection)) << "the next hop is still connecting";
  EXPECT_EQ(statuses(h.take(alice_connection)), std::vector<int>{200});
  h.core().connected(peer);
  EXPECT_TRUE(h.core().wants_input(alice_connection));
  auto frames = h.take(peer);
  ASSERT_EQ(frames.size(), 1u) << describe(frames);
  EXPECT_EQ(header(frames[0], "To-Path"), peer_uri);
  EXPECT_EQ(header(frames[0], "From-Path"), path_of({a.use_path, alice_uri}));
  EXPECT_EQ(frames[0].body, "first");
  // The same host and port again: the connection is reused.
  h.receive(alice_connection,
            send_text("out00002", path_of({a.use_path, "msrp://PEER.example.net:7000/other;tcp"}),
                      alice_uri, "msg-out-2", "second"));
  EXPECT_EQ(h.connects().size(), 1u);
  frames = h.take(peer);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].body, "second");
  EXPECT_EQ(statuses(h.take(alice_connection)), std::vector<int>{200});
  // Requests from the next hop toward Alice come back over that connection.
  h.receive(peer,
            frame_text(request(
                "peerrep1", "REPORT", path_of({a.use_path, alice_uri}), peer_uri,
                {{"Message-ID", "msg-out-1"}, {"Byte-Range", "1-5/5"}, {"Status", "000 200 OK"}})));
  const auto reports = requests_of(h.take(alice_connection), "REPORT");
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(header(reports[0], "From-Path"), path_of({a.use_path, peer_uri}));
  EXPECT_FALSE(h.closed(peer));
}

TEST_P(Relay, UnreachableNextHopAfterTheAnswerSendsReport) {
  ASSERT_TRUE(authenticate(h, a));
  const auto to = path_of({a.use_path, peer_uri});
  h.receive(alice_connection, send_text("unr00001", to, alice_uri, "msg-u1", "hello"));
  EXPECT_EQ(statuses(h.take(alice_connection)), std::vector<int>{200});
  const auto connects = h.connects();
  ASSERT_EQ(connects.size(), 1u);
  h.core().close_connection(connects[0].connection);
  const auto frames = h.take(alice_connection);
  const auto reports = requests_of(frames, "REPORT");
  ASSERT_EQ(reports.size(), 1u) << describe(frames);
  EXPECT_EQ(header(reports[0], "To-Path"), alice_uri);
  EXPECT_EQ(header(reports[0], "From-Path"), a.use_path);
  EXPECT_EQ(header(reports[0], "Message-ID"), "msg-u1");
  EXPECT_EQ(header(reports[0], "Byte-Range"), "1-5/5");
  EXPECT_EQ(header(reports[0], "Status").substr(0, 7), "000 481");
  EXPECT_TRUE(h.core().wants_input(alice_connection));
  EXPECT_EQ(h.core().statistics().reports_generated, 1u);
}

TEST_P(Relay, UnreachableNextHopBeforeTheAnswerIs481) {
  ASSERT_TRUE(authenticate(h, a));
  const auto to = path_of({a.use_path, peer_uri});
  const auto head = send_head("unr00002", to, alice_uri, "msg-u2", "1-10/10");
  h.receive(alice_connection, serialize_head(head));
  h.receive(alice_connection, "01234");
  const auto connects = h.connects();
  ASSERT_EQ(connects.size(), 1u);
  h.core().close_connection(connects[0].connection);
  EXPECT_TRUE(h.core().wants_input(alice_connection)) << "the rest is read and dropped";
  h.receive(alice_connection, "56789");
  h.receive(alice_connection, serialize_end(head, end_flag::complete));
  const auto frames = h.take(alice_connection);
  ASSERT_EQ(frames.size(), 1u) << describe(frames);
  EXPECT_EQ(frames[0].head.status_code, 481);
  EXPECT_EQ(frames[0].head.transaction_id, "unr00002");
  EXPECT_EQ(header(frames[0], "To-Path"), alice_uri);
  // The next SEND there tries again.
  h.receive(alice_connection, send_text("unr00003", to, alice_uri, "msg-u3", "again"));
  ASSERT_EQ(h.connects().size(), 2u);
  h.core().connected(h.connects()[1].connection);
  EXPECT_EQ(h.take(h.connects()[1].connection).size(), 1u);
}

/// Alice authenticated and connected to the outside peer; returns the peer's connection id.
connection_id connect_alice_to_peer(harness& h, client& a) {
  if (!authenticate(h, a)) return 0;
  h.receive(a.connection,
            send_text("warmup01", path_of({a.use_path, peer_uri}), a.uri, "warm", "warm"));
  const auto connects = h.connects();
  if (connects.size() != 1) {
    ADD_FAILURE() << "no connect action";
    return 0;
  }
  const auto peer = connects[0].connection;
  h.core().connected(peer);
  const auto warmup = h.take(peer);
  if (warmup.size() != 1) {
    ADD_FAILURE() << "the warm-up SEND did not go out";
    return 0;
  }
  h.receive(peer, response_text(warmup[0].head.transaction_id, 200, "OK", a.use_path, peer_uri));
  h.take(a.connection);
  return peer;
}

TEST_P(Relay, ErrorResponseBecomesReport) {
  const auto peer = connect_alice_to_peer(h, a);
  ASSERT_NE(peer, 0u);
  h.receive(alice_connection,
            send_text("err00001", path_of({a.use_path, peer_uri}), alice_uri, "msg-e1", "hello"));
  EXPECT_EQ(statuses(h.take(alice_connection)), std::vector<int>{200});
  const auto out = h.take(peer);
  ASSERT_EQ(out.size(), 1u);
  h.receive(peer,
            response_text(out[0].head.transaction_id, 403, "Forbidden", a.use_path, peer_uri));
  const auto frames = h.take(alice_connection);
  ASSERT_EQ(frames.size(), 1u) << describe(frames);
  const auto& report = frames[0];
  EXPECT_EQ(report.head.method, "REPORT");
  EXPECT_EQ(header(report, "To-Path"), alice_uri);
  EXPECT_EQ(header(report, "From-Path"), a.use_path);
  EXPECT_EQ(header(report, "Message-ID"), "msg-e1");
  EXPECT_EQ(header(report, "Byte-Range"), "1-5/5");
  EXPECT_EQ(header(report, "Status"), "000 403 Forbidden");
  EXPECT_FALSE(report.head.header("Failure-Report")) << "RFC 4975 §7.1.2";
  // A second response to the same transaction is not ours any more.
  h.receive(peer,
            response_text(out[0].head.transaction_id, 403, "Forbidden", a.use_path, peer_uri));
  EXPECT_TRUE(h.take(alice_connection).empty());
}

TEST_P(Relay, NoResponseWithin30SecondsBecomesReport408) {
  const auto peer = connect_alice_to_peer(h, a);
  ASSERT_NE(peer, 0u);
  h.receive(alice_connection,
            send_text("tmo00001", path_of({a.use_path, peer_uri}), alice_uri, "msg-t1", "hello"));
  EXPECT_EQ(statuses(h.take(alice_connection)), std::vector<int>{200});
  const auto out = h.take(peer);
  ASSERT_EQ(out.size(), 1u);
  ASSERT_TRUE(h.core().next_deadline());
  EXPECT_LE(*h.core().next_deadline(), h.now() + 30s);
  h.advance(29s);
  EXPECT_TRUE(h.take(alice_connection).empty());
  h.advance(2s);
  const auto frames = h.take(alice_connection);
  ASSERT_EQ(frames.size(), 1u) << describe(frames);
  EXPECT_EQ(frames[0].head.method, "REPORT");
  EXPECT_EQ(header(frames[0], "Message-ID"), "msg-t1");
  EXPECT_EQ(header(frames[0], "Status").substr(0, 7), "000 408");
  h.advance(60s);
  EXPECT_TRUE(h.take(alice_connection).empty());
  // A late response changes nothing.
  h.receive(peer, response_text(out[0].head.transaction_id, 500, "Late", a.use_path, peer_uri));
  EXPECT_TRUE(h.take(alice_connection).empty());
}

TEST_P(Relay, TimeoutStillComesAfterThousandsOfAnsweredTransactions) {
  // Every forwarded SEND leaves a deadline behind when its response comes; the relay drops such
  // deadlines in bulk now and then. The one still waiting must survive that.
  const auto peer = connect_alice_to_peer(h, a);
  ASSERT_NE(peer, 0u);
  for (int i = 0; i < 3000; ++i) {
    const auto id = "many" + std::to_string(10000 + i);
    h.receive(alice_connection,
              send_text(id, path_of({a.use_path, peer_uri}), alice_uri, "msg-" + id, "hi"));
    const auto out = h.take(peer);
    ASSERT_EQ(out.size(), 1u);
    if (i == 1000) continue;  // never answered
    h.receive(peer, response_text(out[0].head.transaction_id, 200, "OK", a.use_path, peer_uri));
  }
  EXPECT_EQ(statuses(h.take(alice_connection)), std::vector<int>(3000, 200));
  h.advance(31s);
  const auto frames = h.take(alice_connection);
  ASSERT_EQ(frames.size(), 1u) << describe(frames);
  EXPECT_EQ(header(frames[0], "Message-ID"), "msg-many11000");
  EXPECT_EQ(header(frames[0], "Status").substr(0, 7), "000 408");
}

TEST_P(Relay, FailureReportNoGetsNeitherAnswerNorReport) {
  const auto peer = connect_alice_to_peer(h, a);
  ASSERT_NE(peer, 0u);
  h.receive(alice_connection, send_text("frno0001", path_of({a.use_path, peer_uri}), alice_uri,
                                        "msg-n1", "hello", {{"Failure-Report", "no"}}));
  EXPECT_TRUE(h.take(alice_connection).empty()) << "no 200 for Failure-Report: no";
  const auto out = h.take(peer);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(header(out[0], "Failure-Report"), "no");
  h.receive(peer,
            response_text(out[0].head.transaction_id, 403, "Forbidden", a.use_path, peer_uri));
  h.advance(60s);
  EXPECT_TRUE(h.take(alice_connection).empty());
  // Not even when the next hop goes away.
  h.receive(alice_connection, send_text("frno0002", path_of({a.use_path, peer_uri}), alice_uri,
                                        "msg-n2", "hello", {{"Failure-Report", "no"}}));
  h.take(peer);
  h.core().close_connection(peer);
  EXPECT_TRUE(h.take(alice_connection).empty());
  EXPECT_EQ(h.core().statistics().reports_generated, 0u);
}

TEST_P(Relay, FailureReportPartialGetsOnlyErrors) {
  const auto peer = connect_alice_to_peer(h, a);
  ASSERT_NE(peer, 0u);
  const auto to = path_of({a.use_path, peer_uri});
  h.receive(alice_connection, send_text("part0001", to, alice_uri, "msg-p1", "hello",
                                        {{"Failure-Report", "partial"}}));
  EXPECT_TRUE(h.take(alice_connection).empty()) << "no 200 for Failure-Report: partial";
  auto out = h.take(peer);
  ASSERT_EQ(out.size(), 1u);
  h.advance(60s);  // no 408 for partial (§6.4.1: the timer is for "yes")
  EXPECT_TRUE(h.take(alice_connection).empty());
  h.receive(alice_connection, send_text("part0002", to, alice_uri, "msg-p2", "hello",
                                        {{"Failure-Report", "partial"}}));
  out = h.take(peer);
  ASSERT_EQ(out.size(), 1u);
  h.receive(peer, response_text(out[0].head.transaction_id, 415, "Unsupported Media Type",
                                a.use_path, peer_uri));
  auto frames = h.take(alice_connection);
  ASSERT_EQ(frames.size(), 1u) << describe(frames);
  EXPECT_EQ(frames[0].head.method, "REPORT");
  EXPECT_EQ(header(frames[0], "Message-ID"), "msg-p2");
  EXPECT_EQ(header(frames[0], "Status"), "000 415 Unsupported Media Type");
  // The next hop closing with a chunk unanswered is a failure too (§6.4.1).
  h.receive(alice_connection, send_text("part0003", to, alice_uri, "msg-p3", "hello",
                                        {{"Failure-Report", "partial"}}));
  ASSERT_EQ(h.take(peer).size(), 1u);
  h.core().close_connection(peer);
  frames = h.take(alice_connection);
  ASSERT_EQ(frames.size(), 1u) << describe(frames);
  EXPECT_EQ(header(frames[0], "Message-ID"), "msg-p3");
  EXPECT_EQ(header(frames[0], "Status").substr(0, 7), "000 481");
}

TEST_P(Relay, NextHopClosingMidTransferFailsTheSender) {
  const auto peer = connect_alice_to_peer(h, a);
  ASSERT_NE(peer, 0u);
  const auto to = path_of({a.use_path, peer_uri});
  constexpr std::size_t size = 50000;
  const auto body = make_body(size, 17);
  const auto head = send_head("mid00001", to, alice_uri, "msg-mid", "1-*/50000");
  h.receive(alice_connection, serialize_head(head));
  h.receive(alice_connection, std::string_view(body).substr(0, 20000));
  h.take(peer);
  EXPECT_TRUE(h.reader(peer).in_frame());
  h.core().close_connection(peer);
  EXPECT_TRUE(h.core().wants_input(alice_connection));
  h.receive(alice_connection, std::string_view(body).substr(20000, 10000));
  // Alice interrupts her chunk and goes on in another: the relay tries the next hop again.
  h.receive(alice_connection, serialize_end(head, end_flag::continued));
  auto frames = h.take(alice_connection);
  ASSERT_EQ(frames.size(), 1u) << describe(frames);
  EXPECT_EQ(frames[0].head.status_code, 481);
  EXPECT_EQ(frames[0].head.transaction_id, "mid00001");
  const auto next = send_head("mid00002", to, alice_uri, "msg-mid", "30001-50000/50000");
  h.receive(alice_connection, serialize_head(next));
  h.receive(alice_connection, std::string_view(body).substr(30000));
  h.receive(alice_connection, serialize_end(next, end_flag::complete));
  const auto connects = h.connects();
  ASSERT_EQ(connects.size(), 2u);
  h.core().connected(connects[1].connection);
  frames = h.take(connects[1].connection);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_TRUE(frames[0].body == std::string_view(body).substr(30000));
  EXPECT_EQ(statuses(h.take(alice_connection)), std::vector<int>{200});
}

TEST_P(Relay, NextHopClosingAfterTheChunkSendsReport) {
  const auto peer = connect_alice_to_peer(h, a);
  ASSERT_NE(peer, 0u);
  h.receive(alice_connection,
            send_text("gone0001", path_of({a.use_path, peer_uri}), alice_uri, "msg-g1", "hello"));
  EXPECT_EQ(statuses(h.take(alice_connection)), std::vector<int>{200});
  ASSERT_EQ(h.take(peer).size(), 1u);
  h.core().close_connection(peer);
  const auto frames = h.take(alice_connection);
  ASSERT_EQ(frames.size(), 1u) << describe(frames);
  EXPECT_EQ(header(frames[0], "Message-ID"), "msg-g1");
  EXPECT_EQ(header(frames[0], "Status").substr(0, 7), "000 481");
  h.advance(60s);
  EXPECT_TRUE(h.take(alice_connection).empty()) << "no 408 after the 481";
}

TEST_P(Relay, AuthThroughThisRelayPassesBothWays) {
  // RFC 4976 §5.1: Alice authenticates to an outer relay through this one.
  ASSERT_TRUE(authenticate(h, a));
  constexpr std::string_view extra = "msrps://extra.example.com;tcp";
  h.receive(alice_connection, auth_text("mnbvw001", alice_uri, {}, path_of({a.use_path, extra})));
  const auto connects = h.connects();
  ASSERT_EQ(connects.size(), 1u);
  EXPECT_TRUE(connects[0].target.is_secure());
  const auto outer = connects[0].connection;
  h.core().connected(outer);
  const auto out = h.take(outer);
  ASSERT_EQ(out.size(), 1u) << describe(out);
  EXPECT_EQ(out[0].head.method, "AUTH");
  EXPECT_EQ(header(out[0], "To-Path"), extra);
  EXPECT_EQ(header(out[0], "From-Path"), path_of({a.use_path, alice_uri}));
  EXPECT_TRUE(h.take(alice_connection).empty()) << "the outer relay answers, not this one";
  message challenge;
  challenge.transaction_id = out[0].head.transaction_id;
  challenge.status_code = 401;
  challenge.comment = "Unauthorized";
  challenge.headers = {{"To-Path", path_of({a.use_path, alice_uri})},
                       {"From-Path", std::string(extra)},
                       {"WWW-Authenticate",
                        "Digest realm=\"extra.example.com\", qop=\"auth\", "
                        "nonce=\"Uumu8cAV38FGsEF31VLevIbNXj9HWO\""}};
  h.receive(outer, frame_text(challenge));
  const auto back = h.take(alice_connection);
  ASSERT_EQ(back.size(), 1u) << describe(back);
  EXPECT_EQ(back[0].head.status_code, 401);
  EXPECT_EQ(back[0].head.transaction_id, "mnbvw001");
  EXPECT_EQ(header(back[0], "To-Path"), alice_uri);
  EXPECT_EQ(header(back[0], "From-Path"), path_of({a.use_path, extra}));
  EXPECT_EQ(back[0].head.www_authenticate().size(), 1u);
}

TEST_P(Relay, AuthThroughThisRelayFailsWhenNextHopCloses) {
  ASSERT_TRUE(authenticate(h, a));
  constexpr std::string_view extra = "msrps://extra.example.com;tcp";
  h.receive(alice_connection, auth_text("mnbvw001", alice_uri, {}, path_of({a.use_path, extra})));
  const auto connects = h.connects();
  ASSERT_EQ(connects.size(), 1u);
  h.core().connected(connects[0].connection);
  ASSERT_EQ(h.take(connects[0].connection).size(), 1u);
  h.core().close_connection(connects[0].connection);
  const auto back = h.take(alice_connection);
  ASSERT_EQ(back.size(), 1u) << describe(back);
  EXPECT_EQ(back[0].head.status_code, 481);
  EXPECT_EQ(back[0].head.transaction_id, "mnbvw001");
  EXPECT_EQ(header(back[0], "To-Path"), alice_uri);
  h.advance(60s);
  EXPECT_TRUE(h.take(alice_connection).empty()) << "no 408 after the 481";
}

TEST_P(Relay, AuthThroughThisRelayTimesOut) {
  ASSERT_TRUE(authenticate(h, a));
  h.receive(alice_connection, auth_text("mnbvw001", alice_uri, {},
                                        path_of({a.use_path, "msrps://extra.example.com;tcp"})));
  const auto connects = h.connects();
  ASSERT_EQ(connects.size(), 1u);
  h.core().connected(connects[0].connection);
  ASSERT_EQ(h.take(connects[0].connection).size(), 1u);
  h.advance(31s);
  const auto back = h.take(alice_connection);
  ASSERT_EQ(back.size(), 1u) << describe(back);
  EXPECT_EQ(back[0].head.status_code, 408);
  EXPECT_EQ(back[0].head.transaction_id, "mnbvw001");
}

// --- Who may send what (§6.2, §6.4) ---------------------------------------------------------

TEST_P(Relay, SpoofedFromPathIsForbidden) {
  two_clients();
  h.receive(alice_connection, send_text("spoof001", path_between(a, b),
                                        "msrps://eve.example.com:1/evil;tcp", "m-s", "x"));
  const auto frames = h.take(alice_connection);
  ASSERT_EQ(statuses(frames), std::vector<int>{403}) << describe(frames);
  EXPECT_EQ(frames[0].head.transaction_id, "spoof001");
  EXPECT_TRUE(h.take(bob_connection).empty());
  EXPECT_EQ(h.core().statistics().bytes_relayed, 0u);
  // Bob's session used from Alice's connection is someone sending to Bob, not Bob sending.
  h.receive(alice_connection,
            send_text("spoof002", path_of({b.use_path, "msrps://x.example.com:1/y;tcp"}), bob_uri,
                      "m-s2", "x"));
  const auto to_bob = h.take(bob_connection);
  ASSERT_EQ(to_bob.size(), 1u);
  EXPECT_EQ(header(to_bob[0], "To-Path"), "msrps://x.example.com:1/y;tcp");
  EXPECT_TRUE(h.connects().empty()) << "never toward the To-Path's stranger";
}

TEST_P(Relay, StrangerSendingToClientGoesToClientOnly) {
  two_clients();
  h.accept(mallory_connection);
  constexpr std::string_view mallory_uri = "msrps://mallory.example.org:4444/mm;tcp";
  h.receive(mallory_connection,
            send_text("mal00001", path_of({a.use_path, peer_uri}), mallory_uri, "m-m", "boo"));
  const auto to_alice = h.take(alice_connection);
  ASSERT_EQ(to_alice.size(), 1u) << describe(to_alice);
  EXPECT_EQ(header(to_alice[0], "To-Path"), peer_uri);
  EXPECT_EQ(header(to_alice[0], "From-Path"), path_of({a.use_path, mallory_uri}));
  EXPECT_TRUE(h.take(bob_connection).empty());
  EXPECT_TRUE(h.connects().empty());
  EXPECT_EQ(statuses(h.take(mallory_connection)), std::vector<int>{200});
}

TEST_P(Relay, UnknownSessionIs481) {
  two_clients();
  for (const auto self : {"msrps://relay.example.com:2855/nosuchsession;tcp",
                          "msrps://127.0.0.1:2855/nosuchsession;tcp"}) {
    h.receive(alice_connection,
              send_text("nos00001", path_of({self, bob_uri}), alice_uri, "m-x", "x"));
    const auto frames = h.take(alice_connection);
    ASSERT_EQ(statuses(frames), std::vector<int>{481}) << self << '\n' << describe(frames);
    EXPECT_EQ(header(frames[0], "To-Path"), alice_uri);
  }
  // The right session, then a wrong one of this relay.
  h.receive(
      alice_connection,
      send_text("nos00002",
                path_of({a.use_path, "msrps://relay.example.com:2855/nosuchsession;tcp", bob_uri}),
                alice_uri, "m-y", "y"));
  EXPECT_EQ(statuses(h.take(alice_connection)), std::vector<int>{481});
  EXPECT_TRUE(h.take(bob_connection).empty());
  EXPECT_FALSE(h.closed(alice_connection));
}

// After a request the relay answers itself it starts parsing afresh (giving back what the
// parser kept); frames behind it in the same read still go through, and the connection is
// between frames again, with no slow-sender deadline, once they ended.
TEST_P(Relay, FramesBehindARefusedRequestInTheSameReadAreRelayed) {
  two_clients();
  const auto refused = [&](std::string tid) {
    return send_text(tid, path_of({"msrps://relay.example.com:2855/nosuchsession;tcp", bob_uri}),
                     alice_uri, "m-x", "x");
  };
  h.receive(alice_connection,
            refused("nos00001") +
                send_text("next0002", path_between(a, b), alice_uri, "m-2", "two") +
                refused("nos00003"));
  EXPECT_EQ(statuses(h.take(alice_connection)), (std::vector<int>{481, 200, 481}));
  const auto to_bob = h.take(bob_connection);
  ASSERT_EQ(to_bob.size(), 1u) << describe(to_bob);
  EXPECT_EQ(to_bob[0].body, "two");
  h.advance(h.settings().head_timeout + h.settings().frame_idle_timeout);
  EXPECT_FALSE(h.closed(alice_connection));
}

TEST_P(Relay, ExpiredSessionIs481) {
  ASSERT_TRUE(authenticate(h, a, digest::sha256, {{"Expires", "60"}}));
  ASSERT_TRUE(authenticate(h, b));
  h.advance(59s);
  h.receive(bob_connection, send_text("exp00001", path_between(b, a), bob_uri, "m-1", "x"));
  EXPECT_EQ(statuses(h.take(bob_connection)), std::vector<int>{200});
  EXPECT_EQ(h.take(alice_connection).size(), 1u);
  h.advance(2s);
  EXPECT_TRUE(h.noticed("expired")) << h.notices();
  EXPECT_EQ(h.core().statistics().sessions, 1u);
  h.receive(bob_connection, send_text("exp00002", path_between(b, a), bob_uri, "m-2", "x"));
  EXPECT_EQ(statuses(h.take(bob_connection)), std::vector<int>{481});
  h.receive(alice_connection, send_text("exp00003", path_between(a, b), alice_uri, "m-3", "x"));
  EXPECT_EQ(statuses(h.take(alice_connection)), std::vector<int>{481});
  EXPECT_TRUE(h.take(alice_connection).empty());
}

TEST_P(Relay, ClosedConnectionEndsItsSessions) {
  two_clients();
  h.core().close_connection(alice_connection);
  EXPECT_EQ(h.core().statistics().sessions, 1u);
  EXPECT_TRUE(h.noticed("closed with its connection"));
  h.receive(bob_connection, send_text("gone0001", path_between(b, a), bob_uri, "m-1", "x"));
  EXPECT_EQ(statuses(h.take(bob_connection)), std::vector<int>{481});
}

TEST_P(Relay, GarbageIs400AndClose) {
  h.accept(mallory_connection);
  h.receive(mallory_connection, "MSRP abcd1234 SEND\r\nTo-Path: " + std::string(relay_uri) +
                                    "\r\nFrom-Path: " + std::string(alice_uri) +
                                    "\r\nthis is no header\r\n\r\n");
  const auto frames = h.take(mallory_connection);
  ASSERT_EQ(frames.size(), 1u) << describe(frames);
  EXPECT_EQ(frames[0].head.status_code, 400);
  EXPECT_EQ(frames[0].head.transaction_id, "abcd1234");
  EXPECT_TRUE(h.closed(mallory_connection));
  // A frame broken before its paths still gets its 400, with what the relay knows.
  h.accept(6);
  h.receive(6, "MSRP dcba4321 SEND\r\nTo-Path " + std::string(relay_uri) + "\r\n\r\n");
  const auto early = h.take(6);
  ASSERT_EQ(early.size(), 1u) << describe(early);
  EXPECT_EQ(early[0].head.status_code, 400);
  EXPECT_EQ(early[0].head.transaction_id, "dcba4321");
  EXPECT_TRUE(h.closed(6));
  // Without a transaction id there is nobody to answer.
  h.accept(5);
  h.receive(5, "GET / HTTP/1.1\r\nHost: relay.example.com\r\n\r\n");
  EXPECT_TRUE(h.take(5).empty());
  EXPECT_TRUE(h.closed(5));
}

TEST_P(Relay, RequestNotForThisRelayClosesConnection) {
  two_clients();
  for (const auto& [id, elsewhere] : std::vector<std::pair<connection_id, std::string>>{
           {alice_connection, "msrps://elsewhere.example.org:2855/abc;tcp"},
           {bob_connection, "msrps://relay.example.com:9999/abc;tcp"}}) {
    h.receive(id, send_text("else0001", path_of({elsewhere, bob_uri}), alice_uri, "m", "x"));
    EXPECT_TRUE(h.closed(id)) << elsewhere;
    EXPECT_TRUE(h.take(id).empty()) << elsewhere;
  }
  h.accept(mallory_connection);
  h.receive(mallory_connection,
            auth_text("auth0001", alice_uri, {}, "msrps://other-relay.example.com:2855;tcp"));
  EXPECT_TRUE(h.closed(mallory_connection));
}

// The relay checks a sender's paths once while they repeat; new settings must not leave it
// taking requests for a name it no longer has (RFC 4976 §6.2).
TEST_P(Relay, RequestToANameTheRelayNoLongerHasClosesConnection) {
  two_clients();
  const auto send = [&](std::string tid) {
    h.receive(alice_connection, send_text(tid, path_between(a, b), alice_uri, "m", "x"));
  };
  send("same0001");
  ASSERT_EQ(h.take(bob_connection).size(), 1u);
  auto renamed = h.settings();
  renamed.host = "renamed.example.com";
  renamed.aliases.clear();
  h.core().reconfigure(renamed);
  send("same0002");
  EXPECT_TRUE(h.closed(alice_connection));
  EXPECT_TRUE(h.take(bob_connection).empty());
}

// Found by the torture corpus (invalid.md, "Malformed request with Failure-Report no"): a
// request that broke the stream was answered 400 despite Failure-Report `no` (RFC 4975 §7.2).
TEST_P(Relay, DefectMalformedRequestAnsweredDespiteFailureReportNo) {
  h.accept(mallory_connection);
  h.receive(mallory_connection, "MSRP bad00001 SEND\r\nTo-Path: " + std::string(relay_uri) +
                                    "\r\nFrom-Path: " + std::string(alice_uri) +
                                    "\r\nFailure-Report: no\r\nno colon\r\n\r\n");
  EXPECT_TRUE(h.closed(mallory_connection));
  EXPECT_TRUE(h.take(mallory_connection).empty());
}

TEST_P(Relay, ProbationClosesIdleClient) {
  h.accept(mallory_connection);
  h.accept(5, /*relay_peer=*/true);
  ASSERT_TRUE(authenticate(h, a));
  h.advance(29s);
  EXPECT_FALSE(h.closed(mallory_connection));
  ASSERT_TRUE(h.core().next_deadline());
  h.advance(2s);
  EXPECT_TRUE(h.closed(mallory_connection));
  EXPECT_FALSE(h.closed(5)) << "a relay with a certificate is not on probation";
  EXPECT_FALSE(h.closed(alice_connection)) << "Alice's AUTH succeeded";
  h.advance(3600s);
  EXPECT_FALSE(h.closed(5));
}

TEST_P(Relay, ChallengeAloneDoesNotEndProbation) {
  h.accept(alice_connection);
  ASSERT_TRUE(get_challenge(h, a));
  h.advance(31s);
  EXPECT_TRUE(h.closed(alice_connection));
}

TEST_P(Relay, ThirdFailedRequestOnProbationIsAnsweredThenClosed) {
  ASSERT_TRUE(authenticate(h, b));
  h.accept(mallory_connection);
  std::vector<int> codes;
  for (int i = 0; i < 3; ++i) {
    h.receive(
        mallory_connection,
        send_text(
            "fail000" + std::to_string(i),
            path_of({"msrps://relay.example.com:2855/guess" + std::to_string(i) + ";tcp", bob_uri}),
            "msrps://mallory.example.org:4444/mm;tcp", "m", "x"));
    for (const auto code : statuses(h.take(mallory_connection)))
      codes.push_back(code);
  }
  EXPECT_EQ(codes, (std::vector<int>{481, 481, 481}));
  EXPECT_TRUE(h.closed(mallory_connection));
}

TEST_P(Relay, SenderClosingMidChunkAbortsForwardedChunk) {
  two_clients();
  const auto body = make_body(10000, 19);
  h.receive(alice_connection, serialize_head(send_head("abort001", path_between(a, b), alice_uri,
                                                       "msg-abort", "1-*/10000")));
  h.receive(alice_connection, std::string_view(body).substr(0, 6000));
  h.core().close_connection(alice_connection);
  const auto frames = h.take(bob_connection);
  ASSERT_EQ(frames.size(), 1u) << describe(frames);
  EXPECT_EQ(frames[0].flag, end_flag::aborted);
  EXPECT_EQ(header(frames[0], "Message-ID"), "msg-abort");
  EXPECT_TRUE(frames[0].body == std::string_view(body).substr(0, 6000));
  EXPECT_FALSE(h.reader(bob_connection).in_frame());
  // Bob's output is free again.
  ASSERT_TRUE(authenticate(h, c));
  h.receive(carol_connection, send_text("carol001", path_between(c, b), carol_uri, "m-c", "hi"));
  EXPECT_EQ(h.take(bob_connection).size(), 1u);
}

// --- Slow senders (issue #8: fault injection) ---------------------------------------------------

// Defect: an authenticated client could trickle a frame head a byte at a time for ever; no
// deadline applied between a frame's first byte and its end-line.
TEST_P(Relay, DefectSlowDripHeadKeptTheConnectionOpen) {
  two_clients();
  const auto frame = send_text("drip0001", path_between(a, b), alice_uri, "msg-drip", "hi");
  const auto step = h.settings().head_timeout / 3;
  // Three bytes, each within the idle time of the one before, but the head is not done in time.
  for (int i = 0; i < 3; ++i) {
    h.receive(alice_connection, frame.substr(static_cast<std::size_t>(i), 1));
    EXPECT_FALSE(h.closed(alice_connection)) << "after byte " << i;
    h.advance(step);
  }
  EXPECT_TRUE(h.closed(alice_connection)) << h.notices();
  EXPECT_TRUE(h.noticed("not complete within 30 s"));
  EXPECT_FALSE(h.closed(bob_connection));
  EXPECT_TRUE(h.take(bob_connection).empty());
}

TEST_P(Relay, HeadCompleteInTimeIsNotASlowDrip) {
  two_clients();
  const auto frame = send_text("drip0002", path_between(a, b), alice_uri, "msg-drip", "hi");
  h.receive(alice_connection, frame.substr(0, 10));
  h.advance(h.settings().head_timeout - 1s);
  h.receive(alice_connection, frame.substr(10));
  EXPECT_EQ(h.take(bob_connection).size(), 1u);
  // Between frames there is no deadline but the session's.
  h.advance(h.settings().frame_idle_timeout * 10);
  EXPECT_FALSE(h.closed(alice_connection)) << h.notices();
}

// Defect: a sender that stopped in the middle of a body kept its forwarded chunk open in the
// receiver's connection for ever (nothing else could be sent to the receiver meanwhile).
TEST_P(Relay, DefectStalledBodyKeptTheForwardedChunkOpen) {
  two_clients();
  const auto body = make_body(10000, 23);
  h.receive(alice_connection, serialize_head(send_head("stall001", path_between(a, b), alice_uri,
                                                       "msg-stall", "1-*/10000")));
  h.receive(alice_connection, std::string_view(body).substr(0, 6000));
  h.advance(h.settings().frame_idle_timeout / 2);
  h.receive(alice_connection, std::string_view(body).substr(6000, 1000));
  h.advance(h.settings().frame_idle_timeout - 1s);
  EXPECT_FALSE(h.closed(alice_connection)) << "input came half-way: the idle clock restarted";
  h.advance(1s);
  ASSERT_TRUE(h.closed(alice_connection)) << h.notices();
  EXPECT_TRUE(h.noticed("no input for 60 s in the middle of a frame"));
  // The edge closes it; what went out of the chunk ends with `#`.
  h.core().close_connection(alice_connection);
  const auto frames = h.take(bob_connection);
  ASSERT_EQ(frames.size(), 1u) << describe(frames);
  EXPECT_EQ(frames[0].flag, end_flag::aborted);
  EXPECT_TRUE(frames[0].body == std::string_view(body).substr(0, 7000));
  EXPECT_FALSE(h.reader(bob_connection).in_frame());
  EXPECT_FALSE(h.closed(bob_connection));
}

TEST_P(Relay, SenderHeldBackByASlowReaderIsNoSlowDrip) {
  two_clients();
  constexpr std::size_t size = 1024 * 1024;
  const auto body = make_body(size, 29);
  h.receive(alice_connection, serialize_head(send_head("held0001", path_between(a, b), alice_uri,
                                                       "msg-held", "1-*/1048576")));
  std::size_t sent = 0;
  while (h.core().wants_input(alice_connection)) {
    h.receive(alice_connection, std::string_view(body).substr(sent, 64 * 1024));
    sent += 64 * 1024;
  }
  // Bob does not read for ten idle times: Alice is held back, not slow.
  h.advance(h.settings().frame_idle_timeout * 10);
  EXPECT_FALSE(h.closed(alice_connection)) << h.notices();
  h.take(bob_connection);
  ASSERT_TRUE(h.core().wants_input(alice_connection));
  // Her clock starts when the relay reads her again.
  h.advance(h.settings().frame_idle_timeout - 1s);
  EXPECT_FALSE(h.closed(alice_connection)) << h.notices();
  h.receive(alice_connection, std::string_view(body).substr(sent));
  h.receive(alice_connection,
            serialize_end(send_head("held0001", "", "", "", ""), end_flag::complete));
  h.take(bob_connection);
  EXPECT_TRUE(reassemble(h.history(bob_connection), "msg-held") == body);
  EXPECT_EQ(statuses(h.take(alice_connection)), std::vector<int>{200});
  EXPECT_FALSE(h.closed(alice_connection));
}

// Defect: a request other than SEND could be trickled for ever once its head was complete;
// its body (at most 10 KiB) now has to arrive within the head timeout too.
TEST_P(Relay, DefectSlowDripNonSendBodyKeptTheConnectionOpen) {
  two_clients();
  auto m = request("drip0003", "FOO", path_between(a, b), alice_uri);
  m.headers.push_back({"Content-Type", "text/plain"});
  const auto frame = frame_text(m, std::string(5000, 'x'));
  const auto head_size = serialize_head(m).size();
  h.receive(alice_connection, frame.substr(0, head_size + 100));
  for (int i = 0; i < 3; ++i) {
    EXPECT_FALSE(h.closed(alice_connection)) << "after " << i * 10 << " s";
    h.advance(h.settings().head_timeout / 3);
    h.receive(alice_connection, frame.substr(head_size + 100 + static_cast<std::size_t>(i), 1));
  }
  EXPECT_TRUE(h.closed(alice_connection)) << h.notices();
}

// Defect: a sender that went quiet early in a chunk (under 2048 bytes, the least chunk the
// relay interrupted) held the receiver's connection: nothing else reached the receiver, not
// even the responses to its own requests.
TEST_P(Relay, DefectStalledShortChunkHeldTheReceiverHostage) {
  two_clients();
  ASSERT_TRUE(authenticate(h, c));
  h.take(carol_connection);
  const auto body = make_body(5000, 37);
  const auto head = send_head("short001", path_between(a, b), alice_uri, "msg-short", "1-*/5000");
  h.receive(alice_connection, serialize_head(head) + body.substr(0, 100));
  // Carol sends to Bob, and Bob gets an answer to a SEND of his own: both wait for a second.
  h.receive(carol_connection, send_text("carol001", path_between(c, b), carol_uri, "m-c", "hi"));
  h.receive(bob_connection, send_text("bob00001", path_between(b, c), bob_uri, "m-b", "yo"));
  EXPECT_TRUE(h.take(bob_connection).empty());
  h.advance(1s);
  const auto frames = h.take(bob_connection);
  ASSERT_EQ(frames.size(), 3u) << describe(frames);
  EXPECT_EQ(frames[0].flag, end_flag::continued);
  EXPECT_TRUE(frames[0].body == body.substr(0, 100));
  EXPECT_EQ(statuses(frames), std::vector<int>{200});
  EXPECT_EQ(requests_of(frames, "SEND").back().body, "hi");
  // Alice goes on: the rest follows in a new chunk.
  h.receive(alice_connection, body.substr(100));
  h.receive(alice_connection, serialize_end(head, end_flag::complete));
  h.take(bob_connection);
  EXPECT_TRUE(reassemble(h.history(bob_connection), "msg-short") == body);
  EXPECT_FALSE(h.closed(alice_connection));
}

// --- A stream failing at its N-th step (issue #8: fault injection) ------------------------------

/// A fixed conversation in which one connection fails at a chosen step: Alice sends Bob a
/// message in three chunks, Bob answers each chunk he gets, then sends a reply that Alice
/// answers. Every piece a connection sends (up to 1500 bytes, then split as the feed mode
/// says) and every read of a connection's output is a step; at step `fail_at` the `victim`
/// connection closes (as a peer that reset it), its later steps are skipped, and the other
/// client goes on.
class fault_run {
 public:
  static constexpr std::size_t chunk = 4000;
  static constexpr std::size_t chunks = 3;

  fault_run(feed mode, connection_id victim, std::size_t fail_at)
      : h(mode), victim_(victim), fail_at_(fail_at), body_(make_body(chunk * chunks, 31)) {}

  /// Runs the conversation; the victim closes at `fail_at` or, if that is past the end, after
  /// it. Returns the number of steps.
  std::size_t run() {
    if (!authenticate(h, a_) || !authenticate(h, b_)) return 0;
    h.actions();
    h.forget_history();
    const auto total = std::to_string(body_.size());
    for (std::size_t k = 0; k < chunks; ++k) {
      const auto range =
          std::to_string(k * chunk + 1) + '-' + std::to_string((k + 1) * chunk) + '/' + total;
      const auto head = send_head(chunk_tid(k), path(a_, b_), alice_uri, "msg-m1", range);
      send(alice_connection, serialize_head(head));
      for (std::size_t at = 0; at < chunk; at += 1500)
        send(alice_connection, std::string_view(body_).substr(k * chunk + at, 1500));
      send(alice_connection,
           serialize_end(head, k + 1 < chunks ? end_flag::continued : end_flag::complete));
      read_and_answer(bob_connection, bob_uri, m1_answered_);
      read_and_answer(alice_connection, alice_uri, m2_answered_);
    }
    send(bob_connection, send_text("b-reply1", path(b_, a_), bob_uri, "msg-m2", "thanks"));
    read_and_answer(alice_connection, alice_uri, m2_answered_);
    read_and_answer(bob_connection, bob_uri, m1_answered_);
    if (!failed_) h.core().close_connection(victim_);
    return steps_;
  }

  /// The invariants after the victim failed, then a third client through the relay, then
  /// every connection closed: the relay is back where it started.
  void check() {
    const auto survivor = victim_ == alice_connection ? bob_connection : alice_connection;
    h.take(survivor);
    EXPECT_FALSE(h.closed(survivor)) << h.notices();
    // Every chunk forwarded to the survivor is complete, or ended with `#`, and whole.
    EXPECT_FALSE(h.reader(survivor).in_frame()) << "a forwarded chunk was left open";
    const auto& seen = h.history(survivor);
    for (const auto& f : seen) {
      if (f.head.method != "SEND") continue;
      const auto range = f.head.byte_range();
      ASSERT_TRUE(range);
      const auto& expected = header(f, "Message-ID") == "msg-m1" ? body_ : std::string("thanks");
      EXPECT_TRUE(std::string_view(expected).substr(range->start - 1, f.body.size()) == f.body)
          << "the body of a forwarded chunk changed";
    }
    // The surviving sender: exactly one answer per request it sent, and a failure (an error
    // response or a failure REPORT, RFC 4976 §6.4.1) exactly when not everything it sent was
    // answered 200 by the other client.
    std::vector<std::string> tids;
    std::string message_id;
    bool delivered = false;
    if (survivor == alice_connection) {
      for (std::size_t k = 0; k < chunks; ++k)
        tids.push_back(chunk_tid(k));
      message_id = "msg-m1";
      delivered = m1_answered_ == chunks;
    } else {
      tids = {"b-reply1"};
      message_id = "msg-m2";
      delivered = m2_answered_ == 1;
    }
    bool failure = false;
    for (const auto& tid : tids) {
      int answers = 0;
      for (const auto& f : seen) {
        if (f.head.is_request() || f.head.transaction_id != tid) continue;
        ++answers;
        failure = failure || f.head.status_code != 200;
      }
      EXPECT_EQ(answers, 1) << "answers to " << tid << ":\n" << describe(seen);
    }
    for (const auto& f : requests_of(seen, "REPORT")) {
      EXPECT_EQ(header(f, "Message-ID"), message_id);
      EXPECT_EQ(header(f, "Status").substr(0, 7), "000 481") << describe(seen);
      failure = true;
    }
    EXPECT_EQ(failure, !delivered) << describe(seen) << h.notices();
    // The relay serves a third client, to the survivor.
    auto& to = survivor == alice_connection ? a_ : b_;
    ASSERT_TRUE(authenticate(h, c_));
    h.receive(carol_connection, send_text("c-hello1", path(c_, to), carol_uri, "msg-c", "hello"));
    const auto frames = h.take(survivor);
    ASSERT_EQ(frames.size(), 1u) << describe(frames);
    EXPECT_EQ(frames[0].body, "hello");
    EXPECT_EQ(statuses(h.take(carol_connection)), std::vector<int>{200});
    auto stats = h.core().statistics();
    EXPECT_EQ(stats.connections, 2u);
    EXPECT_EQ(stats.sessions, 2u);
    EXPECT_EQ(stats.streams, 0u);
    // Everyone leaves: nothing is left behind.
    h.core().close_connection(carol_connection);
    h.core().close_connection(survivor);
    stats = h.core().statistics();
    EXPECT_EQ(stats.connections, 0u);
    EXPECT_EQ(stats.sessions, 0u);
    EXPECT_EQ(stats.streams, 0u);
    EXPECT_EQ(stats.queued_bytes, 0u);
    EXPECT_EQ(stats.lookups, 0u);
  }

  harness h;

 private:
  static std::string chunk_tid(std::size_t k) { return "a-chunk" + std::to_string(k); }
  static std::string path(const client& from, const client& to) {
    return path_of({from.use_path, to.use_path, to.uri});
  }

  /// Counts a step; false if `id` is the victim and has failed (the step does not happen).
  bool step(connection_id id) {
    if (steps_++ == fail_at_) {
      h.core().close_connection(victim_);
      failed_ = true;
    }
    return !(failed_ && id == victim_);
  }

  void send(connection_id id, std::string_view bytes) {
    for (std::size_t at = 0; at < bytes.size(); at += 1500) {
      if (step(id)) h.receive(id, bytes.substr(at, 1500));
    }
  }

  /// `id` reads its output and answers every chunk it got whole (one step each), counting
  /// them in `answered`.
  void read_and_answer(connection_id id, std::string_view self, std::size_t& answered) {
    if (!step(id)) return;
    for (const auto& f : h.take(id)) {
      if (f.head.method != "SEND" || f.flag == end_flag::aborted) continue;
      send(id, response_text(f.head.transaction_id, 200, "OK", first_hop(header(f, "From-Path")),
                             self));
      if (!failed_ || id != victim_) ++answered;
    }
  }

  static std::string first_hop(std::string_view path) {
    return std::string(path.substr(0, path.find(' ')));
  }

  connection_id victim_;
  std::size_t fail_at_;
  std::string body_;
  client a_ = alice();
  client b_ = bob();
  client c_ = carol();
  std::size_t steps_ = 0;
  bool failed_ = false;
  std::size_t m1_answered_ = 0;
  std::size_t m2_answered_ = 0;
};

TEST_P(Relay, StreamFailingAtEveryStep) {
  for (const auto victim : {alice_connection, bob_connection}) {
    // Steps a failure skips (the victim's answers) make the run shorter: the last run is the
    // first whose victim outlives the conversation and closes after it.
    std::size_t n = 0;
    for (bool last = false; !last; ++n) {
      SCOPED_TRACE((victim == alice_connection ? "Alice" : "Bob") + std::string(" fails at step ") +
                   std::to_string(n));
      fault_run run(GetParam(), victim, n);
      const auto steps = run.run();
      ASSERT_GT(steps, 0u);
      last = n >= steps;
      run.check();
      if (HasFailure()) return;
    }
    EXPECT_GT(n, 20u) << "steps";
  }
}

}  // namespace
}  // namespace msrp
