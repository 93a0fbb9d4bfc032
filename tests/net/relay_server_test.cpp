// Loopback tests of msrp::net::relay_server: a relay listening on 127.0.0.1 (port 0, plain
// TCP) and clients that are raw POSIX sockets, so every byte a client sends is the test's own
// and every byte it is told is parsed back with msrp::parser (RFC 4976 §6.3, §6.4, §6.4.1).
// Each test checks what the sender is told. Sockets are blocking with a receive timeout, so a
// broken relay fails a test instead of hanging it.
//
// tests/relay_test.cpp checks the relay core off the network; these tests check that the edge
// runs it: real time, real connections closing, back-pressure over real sockets. The relay's
// notices are printed after a failed test, or after every test with MSRP_RELAY_NOTICES set.
#include "msrp/net/relay_server.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "../openssl_hash.hpp"
#include "../parser_driver.hpp"

namespace msrp::net {
namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

/// How long a client waits for the relay to say something before the test fails.
constexpr auto patience = 3s;

// --- Accounts -------------------------------------------------------------------------------

struct account {
  std::string user;
  std::string password;
  std::string uri;       ///< The client's own URI: its From-Path, the last hop to it.
  std::string use_path;  ///< The relay's URI for this client, once authenticated.
};

account alice() {
  return {"alice", "wonderland", "msrp://alice.example.com:9892/98cjs;tcp", {}};
}
account bob() {
  return {"bob", "builder", "msrp://bob.example.com:9893/bb77x;tcp", {}};
}

/// The relay's credential store: HA1 for alice and bob, nothing for anyone else.
std::optional<std::string> lookup(std::string_view user, std::string_view realm,
                                  std::string_view algorithm) {
  for (const auto& known : {alice(), bob()}) {
    if (known.user == user) {
      return digest::ha1(test::openssl_hash, algorithm, user, realm, known.password);
    }
  }
  return std::nullopt;
}

// --- Frames ---------------------------------------------------------------------------------

using frame = test::parsed_frame;
using test::header;
using test::request;

std::string describe(const frame& f) {
  std::string out = "MSRP " + f.head.transaction_id + ' ' +
                    (f.head.is_request() ? f.head.method : std::to_string(f.head.status_code)) +
                    " (body " + std::to_string(f.body.size()) + ")\n";
  for (const auto& field : f.head.headers)
    out += "  " + field.name + ": " + field.value + '\n';
  return out;
}

std::string describe(const std::optional<frame>& f) {
  return f ? describe(*f) : "nothing (timeout or closed)";
}

std::string auth_text(std::string tid, std::string_view to, std::string_view from,
                      std::vector<header_field> extra = {}) {
  return serialize(request(std::move(tid), "AUTH", to, from, std::move(extra))).to_string();
}

/// A whole one-chunk text SEND.
std::string send_text(std::string tid, std::string_view to, std::string_view from,
                      std::string_view message_id, std::string_view body,
                      std::vector<header_field> extra = {}) {
  const auto size = std::to_string(body.size());
  auto m =
      request(std::move(tid), "SEND", to, from,
              {{"Message-ID", std::string(message_id)}, {"Byte-Range", "1-" + size + '/' + size}});
  for (auto& field : extra)
    m.headers.push_back(std::move(field));
  m.headers.push_back({"Content-Type", "text/plain"});
  return serialize(m, body).to_string();
}

std::string response_text(std::string_view tid, int code, std::string_view comment,
                          std::string_view to, std::string_view from) {
  message m;
  m.transaction_id = std::string(tid);
  m.status_code = code;
  m.comment = std::string(comment);
  m.headers = {{"To-Path", std::string(to)}, {"From-Path", std::string(from)}};
  return serialize(m).to_string();
}

std::string first_hop(std::string_view path) {
  return std::string(path.substr(0, path.find(' ')));
}

// --- A client: a raw socket and a parser ----------------------------------------------------

/// A blocking TCP connection to the relay whose reads give up after a timeout (SO_RCVTIMEO),
/// and a parser that turns what it reads into frames.
class wire_client {
 public:
  /// Connects to 127.0.0.1:`port`. A `receive_buffer` (SO_RCVBUF) is set before connecting,
  /// so it bounds the window the relay may fill.
  explicit wire_client(std::uint16_t port, std::optional<int> receive_buffer = std::nullopt) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) {
      ADD_FAILURE() << "socket: " << std::strerror(errno);
      return;
    }
    if (receive_buffer) {
      ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &*receive_buffer, sizeof *receive_buffer);
    }
    set_timeout(patience);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
      ADD_FAILURE() << "connect to port " << port << ": " << std::strerror(errno);
    }
  }
  ~wire_client() { close(); }
  wire_client(const wire_client&) = delete;
  wire_client& operator=(const wire_client&) = delete;

  /// How long one read or write may block.
  void set_timeout(std::chrono::milliseconds timeout) {
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>(timeout.count() % 1000 * 1000);
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  }

  /// Writes all of `bytes`; false if the connection failed or a write timed out.
  bool send(std::string_view bytes) {
    while (!bytes.empty()) {
      const auto n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  /// The next complete frame; nothing once the peer closed or when no frame completed before
  /// a read timed out.
  std::optional<frame> next_frame() {
    while (done_.empty()) {
      if (!read_more()) return std::nullopt;
    }
    auto next = std::move(done_.front());
    done_.pop_front();
    return next;
  }

  /// `next_frame()` with reads that time out after `timeout` instead of the usual patience.
  std::optional<frame> next_frame(std::chrono::milliseconds timeout) {
    set_timeout(timeout);
    auto next = next_frame();
    set_timeout(patience);
    return next;
  }

  /// Reads until the peer closes the connection (true) or a read times out (false). Frames
  /// that arrive meanwhile are kept for `next_frame()`.
  bool closed_by_peer() {
    while (!closed_) {
      if (!read_more() && !closed_) return false;
    }
    return true;
  }

  /// Reads and drops at least `n` bytes, unparsed; returns how many it read (fewer if the
  /// peer closed or a read timed out).
  std::size_t skip(std::size_t n) {
    std::vector<char> buffer(64 * 1024);
    std::size_t total = 0;
    while (total < n) {
      const auto got = ::recv(fd_, buffer.data(), buffer.size(), 0);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) break;
      total += static_cast<std::size_t>(got);
    }
    received_ += total;
    return total;
  }

  /// Bytes received so far.
  std::size_t received() const { return received_; }
  /// Frames completed and not yet taken.
  std::size_t pending_frames() const { return done_.size(); }

  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  /// One read, parsed; false if the peer closed (or reset) the connection or the read timed
  /// out.
  bool read_more() {
    if (closed_) return false;
    char bytes[16 * 1024];
    const auto n = ::recv(fd_, bytes, sizeof bytes, 0);
    if (n < 0 && errno == EINTR) return true;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return false;  // timed out
    if (n <= 0) {
      closed_ = true;  // EOF, or ECONNRESET and the like
      return false;
    }
    received_ += static_cast<std::size_t>(n);
    reader_.feed(std::string_view(bytes, static_cast<std::size_t>(n)));
    for (auto& f : reader_.take())
      done_.push_back(std::move(f));
    return true;
  }

  int fd_ = -1;
  test::wire_reader reader_;
  std::deque<frame> done_;
  std::size_t received_ = 0;
  bool closed_ = false;
};

// --- The relay under test -------------------------------------------------------------------

/// The challenge for `algorithm` in a 401.
std::optional<digest::challenge> challenge_for(const frame& response, std::string_view algorithm) {
  for (const auto value : response.head.www_authenticate()) {
    auto parsed = digest::challenge::parse(value);
    if (parsed && parsed->algorithm == algorithm) return *parsed;
  }
  return std::nullopt;
}

class RelayServer : public testing::Test {
 protected:
  /// Short timeouts, so that expiry, probation and transaction timeouts fit in a test.
  static relay::config engine() {
    relay::config settings;
    settings.host = "localhost";
    settings.aliases = {"127.0.0.1"};
    settings.realm = "localhost";
    settings.min_expires = 1s;
    settings.probation = 2s;
    settings.transaction_timeout = 2s;
    return settings;
  }

  void SetUp() override { serve(answer_at_once(lookup)); }

  /// A new server, with `credentials` as its store.
  void serve(credential_service credentials) {
    relay_server::options settings;
    settings.engine = engine();
    server_.reset();
    server_ = std::make_unique<relay_server>(std::move(settings), std::move(credentials));
    const auto bound = server_->listen("127.0.0.1", 0, false);
    ASSERT_TRUE(bound) << bound.error().message();
    port_ = *bound;
    relay_uri_ = "msrp://localhost:" + std::to_string(port_) + ";tcp";
  }

  void TearDown() override {
    if (!HasFailure() && !std::getenv("MSRP_RELAY_NOTICES")) return;
    while (const auto line = server_->wait_notice(0ms))
      std::cerr << "relay: " << *line << '\n';
  }

  /// Sends AUTH without credentials as `who` on `c`; the 401's challenge for `algorithm`.
  std::optional<digest::challenge> get_challenge(wire_client& c, const account& who,
                                                 std::string_view algorithm = digest::sha256,
                                                 std::string tid = "auth0001") {
    if (!c.send(auth_text(tid, relay_uri_, who.uri))) {
      ADD_FAILURE() << "cannot send AUTH";
      return std::nullopt;
    }
    const auto answer = c.next_frame();
    if (!answer || answer->head.status_code != 401) {
      ADD_FAILURE() << "expected a 401, got " << describe(answer);
      return std::nullopt;
    }
    return challenge_for(*answer, algorithm);
  }

  /// The Authorization value answering `ch` as `who`.
  std::string authorization(const digest::challenge& ch, const account& who) const {
    return digest::answer(test::openssl_hash, ch, who.user, who.password, relay_uri_, "0a4f113b", 1)
        .to_header_value();
  }

  /// Runs the AUTH exchange for `who` on `c` and fills in `who.use_path`; the 200, or nothing
  /// (after a failure) if it did not come.
  std::optional<frame> authenticate(wire_client& c, account& who,
                                    std::vector<header_field> extra = {},
                                    std::string_view algorithm = digest::sha256) {
    const auto ch = get_challenge(c, who, algorithm);
    if (!ch) return std::nullopt;
    extra.insert(extra.begin(), {"Authorization", authorization(*ch, who)});
    if (!c.send(auth_text("auth0002", relay_uri_, who.uri, std::move(extra)))) {
      ADD_FAILURE() << "cannot send AUTH";
      return std::nullopt;
    }
    auto answer = c.next_frame();
    if (!answer || answer->head.status_code != 200) {
      ADD_FAILURE() << "expected a 200, got " << describe(answer);
      return std::nullopt;
    }
    who.use_path = header(*answer, "Use-Path");
    return answer;
  }

  /// The To-Path with which `from` reaches `to` through this relay.
  static std::string path_between(const account& from, const account& to) {
    return from.use_path + ' ' + to.use_path + ' ' + to.uri;
  }

  std::unique_ptr<relay_server> server_;
  std::uint16_t port_ = 0;
  std::string relay_uri_;  ///< msrp://localhost:<port>;tcp, the To-Path of an AUTH.
};

// --- AUTH (RFC 4976 §5.1, §6.3, §9.1) -------------------------------------------------------

TEST_F(RelayServer, AuthChallengesThenGrantsUsePath) {
  for (const auto algorithm : {digest::sha256, digest::md5}) {
    SCOPED_TRACE(algorithm);
    wire_client c(port_);
    auto a = alice();
    ASSERT_TRUE(c.send(auth_text("auth0001", relay_uri_, a.uri)));
    const auto challenged = c.next_frame();
    ASSERT_TRUE(challenged);
    EXPECT_EQ(challenged->head.transaction_id, "auth0001");
    ASSERT_EQ(challenged->head.status_code, 401) << describe(challenged);
    EXPECT_EQ(header(*challenged, "To-Path"), a.uri);
    EXPECT_EQ(header(*challenged, "From-Path"), relay_uri_);
    const auto values = challenged->head.www_authenticate();
    ASSERT_EQ(values.size(), 2u) << describe(challenged);
    const auto sha = digest::challenge::parse(values[0]);
    const auto md5 = digest::challenge::parse(values[1]);
    ASSERT_TRUE(sha);
    ASSERT_TRUE(md5);
    EXPECT_EQ(sha->algorithm, digest::sha256);
    EXPECT_EQ(md5->algorithm, digest::md5);
    for (const auto* ch : {&*sha, &*md5}) {
      EXPECT_EQ(ch->realm, "localhost");
      EXPECT_EQ(ch->qop, "auth");
      EXPECT_FALSE(ch->stale);
    }

    // §9.1: the digest-uri is the rightmost To-Path URI, this relay's.
    const auto& ch = algorithm == digest::sha256 ? *sha : *md5;
    const auto credentials =
        digest::answer(test::openssl_hash, ch, a.user, a.password, relay_uri_, "0a4f113b", 1);
    ASSERT_TRUE(c.send(auth_text("auth0002", relay_uri_, a.uri,
                                 {{"Authorization", credentials.to_header_value()}})));
    const auto granted = c.next_frame();
    ASSERT_TRUE(granted);
    EXPECT_EQ(granted->head.transaction_id, "auth0002");
    ASSERT_EQ(granted->head.status_code, 200) << describe(granted);
    EXPECT_EQ(header(*granted, "To-Path"), a.uri);
    EXPECT_EQ(header(*granted, "From-Path"), relay_uri_);
    // §6.3: msrp://localhost:<port>/<session-id>;tcp, a fresh session-id of 16 characters.
    const auto use_path = header(*granted, "Use-Path");
    const auto prefix = "msrp://localhost:" + std::to_string(port_) + '/';
    ASSERT_TRUE(use_path.starts_with(prefix) && use_path.ends_with(";tcp")) << use_path;
    const auto id =
        std::string_view(use_path).substr(prefix.size(), use_path.size() - prefix.size() - 4);
    EXPECT_EQ(id.size(), 16u) << use_path;
    EXPECT_TRUE(std::all_of(id.begin(), id.end(), [](unsigned char x) {
      return std::isalnum(x) != 0;
    })) << use_path;
    EXPECT_EQ(header(*granted, "Expires"), "1800");
    // The relay proves it knows the password too (RFC 7616 §3.5).
    const auto info = digest::authentication_info::parse(header(*granted, "Authentication-Info"));
    ASSERT_TRUE(info) << header(*granted, "Authentication-Info");
    const auto ha1 = digest::ha1(test::openssl_hash, algorithm, a.user, "localhost", a.password);
    EXPECT_EQ(info->rspauth, digest::rspauth(test::openssl_hash, credentials, ha1));
    EXPECT_EQ(info->cnonce, "0a4f113b");
    EXPECT_EQ(info->nc, "00000001");
    EXPECT_FALSE(info->nextnonce.empty());
  }
}

/// A credential store that answers alice and bob at once and keeps carol's lookups for the
/// test, which answers them from a thread of its own, as a pool of database workers would.
struct slow_store {
  std::mutex mutex;
  std::condition_variable arrived;
  std::vector<std::pair<relay_actions::lookup, credential_callback>> held;

  credential_service service() {
    return [this](const relay_actions::lookup& query, credential_callback done) {
      if (query.username != "carol") return answer_at_once(lookup)(query, std::move(done));
      std::lock_guard lock(mutex);
      held.emplace_back(query, std::move(done));
      arrived.notify_all();
    };
  }
  /// Waits for a held lookup and answers it from another thread with `outcome`.
  bool answer(lookup_outcome outcome) {
    std::unique_lock lock(mutex);
    if (!arrived.wait_for(lock, 5s, [&] { return !held.empty(); })) return false;
    auto [query, done] = std::move(held.front());
    held.erase(held.begin());
    lock.unlock();
    credential_answer reply{outcome, {}};
    if (outcome == lookup_outcome::found) {
      reply.ha1 =
          digest::ha1(test::openssl_hash, query.algorithm, query.username, query.realm, "singer");
    }
    std::thread([done = std::move(done), reply] { done(reply); }).join();
    return true;
  }
};

TEST_F(RelayServer, AuthWaitsForTheStoreWhileOthersRelay) {
  slow_store store;
  serve(store.service());
  wire_client alice_wire(port_);
  wire_client bob_wire(port_);
  wire_client carol_wire(port_);
  auto a = alice();
  auto b = bob();
  account c{"carol", "singer", "msrp://carol.example.com:9894/cc11y;tcp", {}};
  ASSERT_TRUE(authenticate(alice_wire, a));
  ASSERT_TRUE(authenticate(bob_wire, b));

  // Carol's AUTH waits for the store, twice: it is down, then it answers.
  const auto ch = get_challenge(carol_wire, c);
  ASSERT_TRUE(ch);
  for (const auto outcome : {lookup_outcome::unavailable, lookup_outcome::found}) {
    ASSERT_TRUE(carol_wire.send(
        auth_text("carol001", relay_uri_, c.uri, {{"Authorization", authorization(*ch, c)}})));
    // Meanwhile the relay serves everyone else: alice's SEND reaches bob.
    ASSERT_TRUE(alice_wire.send(
        send_text("whil0001", path_between(a, b), a.uri, "msg-0001", "while carol waits")));
    const auto delivered = bob_wire.next_frame();
    ASSERT_TRUE(delivered);
    EXPECT_EQ(delivered->body, "while carol waits") << describe(delivered);
    const auto ok = alice_wire.next_frame();
    ASSERT_TRUE(ok);
    EXPECT_EQ(ok->head.status_code, 200) << describe(ok);
    ASSERT_TRUE(bob_wire.send(response_text(delivered->head.transaction_id, 200, "OK",
                                            first_hop(header(*delivered, "From-Path")), b.uri)));
    EXPECT_FALSE(carol_wire.next_frame(100ms)) << "carol's answer waits for the store";

    ASSERT_TRUE(store.answer(outcome));
    const auto answer = carol_wire.next_frame();
    ASSERT_TRUE(answer);
    EXPECT_EQ(answer->head.transaction_id, "carol001");
    if (outcome == lookup_outcome::unavailable) {
      EXPECT_EQ(answer->head.status_code, 500) << describe(answer);
      EXPECT_EQ(answer->head.comment, "Credential Store Unavailable");
    } else {
      EXPECT_EQ(answer->head.status_code, 200) << describe(answer);
      EXPECT_FALSE(header(*answer, "Use-Path").empty());
    }
  }
}

TEST_F(RelayServer, ReplayedAuthorizationIsStale) {
  wire_client first(port_);
  wire_client second(port_);
  auto a = alice();
  const auto ch = get_challenge(first, a);
  ASSERT_TRUE(ch);
  const auto replayable =
      auth_text("auth0002", relay_uri_, a.uri, {{"Authorization", authorization(*ch, a)}});

  // `is_stale` reads one answer: a 401 whose challenges are all marked stale.
  const auto is_stale = [](const std::optional<frame>& answer) {
    if (!answer || answer->head.status_code != 401) return false;
    const auto values = answer->head.www_authenticate();
    return !values.empty() && std::all_of(values.begin(), values.end(), [](auto value) {
      const auto parsed = digest::challenge::parse(value);
      return parsed && parsed->stale;
    });
  };

  // A nonce is bound to the connection it was issued on: not yet used, it is still no good
  // on another one.
  ASSERT_TRUE(second.send(replayable));
  const auto elsewhere = second.next_frame();
  EXPECT_TRUE(is_stale(elsewhere)) << describe(elsewhere);

  ASSERT_TRUE(first.send(replayable));
  const auto granted = first.next_frame();
  ASSERT_TRUE(granted);
  ASSERT_EQ(granted->head.status_code, 200) << describe(granted);
  const auto use_path = header(*granted, "Use-Path");

  // The very same bytes again: the nonce was used, so a new challenge, marked stale (RFC 7616
  // §3.3), and no 200.
  ASSERT_TRUE(first.send(replayable));
  const auto replayed = first.next_frame();
  EXPECT_TRUE(is_stale(replayed)) << describe(replayed);
  ASSERT_TRUE(second.send(replayable));
  const auto replayed_elsewhere = second.next_frame();
  EXPECT_TRUE(is_stale(replayed_elsewhere)) << describe(replayed_elsewhere);

  // The stale challenge is answerable without asking for the password again; the same
  // connection and From-Path refresh the session, which keeps its URI (§6.3).
  ASSERT_TRUE(replayed);
  const auto fresh = challenge_for(*replayed, digest::sha256);
  ASSERT_TRUE(fresh);
  ASSERT_TRUE(first.send(
      auth_text("auth0003", relay_uri_, a.uri, {{"Authorization", authorization(*fresh, a)}})));
  const auto refreshed = first.next_frame();
  ASSERT_TRUE(refreshed);
  EXPECT_EQ(refreshed->head.status_code, 200) << describe(refreshed);
  EXPECT_EQ(header(*refreshed, "Use-Path"), use_path);
}

// --- Sessions and forwarding (RFC 4976 §6.3, §6.4, §6.4.1) ----------------------------------

TEST_F(RelayServer, ForwardsSendResponseAndReport) {
  wire_client alice_wire(port_);
  wire_client bob_wire(port_);
  auto a = alice();
  auto b = bob();
  ASSERT_TRUE(authenticate(alice_wire, a));
  ASSERT_TRUE(authenticate(bob_wire, b));

  // Bytes a careless relay could mangle: CRLFs, a would-be end-line, high bytes.
  const std::string body = "Hello, Bob!\r\n-------fake0001$\r\n\t\xC3\xA9t\xC3\xA9\r\n";
  ASSERT_TRUE(alice_wire.send(send_text("hello001", path_between(a, b), a.uri, "msg-0001", body,
                                        {{"Success-Report", "yes"}})));

  // §6.4.1: the relay answers a SEND with Failure-Report yes (the default) itself.
  const auto ok = alice_wire.next_frame();
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->head.transaction_id, "hello001");
  EXPECT_EQ(ok->head.status_code, 200) << describe(ok);
  EXPECT_EQ(header(*ok, "To-Path"), a.uri);
  EXPECT_EQ(header(*ok, "From-Path"), a.use_path);

  // §6.4.1: Bob gets the SEND with the relay's URIs moved to the From-Path, a new
  // transaction id, and the body byte for byte.
  const auto delivered = bob_wire.next_frame();
  ASSERT_TRUE(delivered);
  EXPECT_EQ(delivered->head.method, "SEND") << describe(delivered);
  EXPECT_NE(delivered->head.transaction_id, "hello001");
  EXPECT_EQ(header(*delivered, "To-Path"), b.uri);
  EXPECT_EQ(header(*delivered, "From-Path"), b.use_path + ' ' + a.use_path + ' ' + a.uri);
  EXPECT_EQ(header(*delivered, "Message-ID"), "msg-0001");
  EXPECT_EQ(header(*delivered, "Success-Report"), "yes");
  EXPECT_EQ(delivered->flag, end_flag::complete);
  EXPECT_EQ(delivered->body, body);
  const auto range = byte_range::parse(header(*delivered, "Byte-Range"));
  ASSERT_TRUE(range);
  EXPECT_EQ(range->start, 1u);
  EXPECT_EQ(range->total, body.size());

  // Bob's 200 ends at the relay (§6.4.3); his REPORT travels back to Alice.
  const auto reply_path = header(*delivered, "From-Path");
  ASSERT_TRUE(bob_wire.send(
      response_text(delivered->head.transaction_id, 200, "OK", first_hop(reply_path), b.uri)));
  const auto size = std::to_string(body.size());
  message report = request("rprt0001", "REPORT", reply_path, b.uri,
                           {{"Message-ID", "msg-0001"},
                            {"Byte-Range", "1-" + size + '/' + size},
                            {"Status", "000 200 OK"}});
  ASSERT_TRUE(bob_wire.send(serialize(report).to_string()));

  const auto reported = alice_wire.next_frame();
  ASSERT_TRUE(reported);
  EXPECT_EQ(reported->head.method, "REPORT") << "Bob's 200 must not reach Alice\n"
                                             << describe(reported);
  EXPECT_EQ(header(*reported, "To-Path"), a.uri);
  EXPECT_EQ(header(*reported, "From-Path"), a.use_path + ' ' + b.use_path + ' ' + b.uri);
  EXPECT_EQ(header(*reported, "Message-ID"), "msg-0001");
  EXPECT_EQ(header(*reported, "Byte-Range"), "1-" + size + '/' + size);
  EXPECT_EQ(header(*reported, "Status"), "000 200 OK");
  // REPORTs are never answered (RFC 4975 §7.1.2).
  const auto extra = bob_wire.next_frame(300ms);
  EXPECT_FALSE(extra) << describe(extra);
}

TEST_F(RelayServer, LapsedSessionIsNoLongerRoutable) {
  wire_client alice_wire(port_);
  wire_client bob_wire(port_);
  auto a = alice();
  auto b = bob();
  ASSERT_TRUE(authenticate(bob_wire, b));
  const auto granted = authenticate(alice_wire, a, {{"Expires", "1"}});
  const auto granted_at = steady::now();  // the relay's expiry is before granted_at + 1 s
  ASSERT_TRUE(granted);
  EXPECT_EQ(header(*granted, "Expires"), "1");

  // Within the second the session routes.
  ASSERT_TRUE(
      alice_wire.send(send_text("send0001", path_between(a, b), a.uri, "msg-0001", "still here")));
  const auto ok = alice_wire.next_frame();
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->head.status_code, 200) << describe(ok);
  const auto delivered = bob_wire.next_frame();
  ASSERT_TRUE(delivered);
  EXPECT_EQ(delivered->body, "still here") << describe(delivered);
  ASSERT_TRUE(bob_wire.send(response_text(delivered->head.transaction_id, 200, "OK",
                                          first_hop(header(*delivered, "From-Path")), b.uri)));
  ASSERT_LT(steady::now(), granted_at + 1s) << "too slow to test the session before it lapsed";

  // §6.3: once it expired, the Use-Path URI no longer routes.
  std::this_thread::sleep_until(granted_at + 1500ms);
  ASSERT_TRUE(
      alice_wire.send(send_text("send0002", path_between(a, b), a.uri, "msg-0002", "gone now")));
  const auto refused = alice_wire.next_frame();
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->head.transaction_id, "send0002");
  EXPECT_EQ(refused->head.status_code, 481) << describe(refused);
  const auto leaked = bob_wire.next_frame(300ms);
  EXPECT_FALSE(leaked) << describe(leaked);
}

TEST_F(RelayServer, SpoofedFromPathIsForbidden) {
  wire_client alice_wire(port_);
  wire_client bob_wire(port_);
  auto a = alice();
  auto b = bob();
  ASSERT_TRUE(authenticate(alice_wire, a));
  ASSERT_TRUE(authenticate(bob_wire, b));

  const auto bob_had = bob_wire.received();

  // §6.4: a client sends only from the From-Path it authenticated with.
  const std::string mallory = "msrp://mallory.example.com:6666/evil;tcp";
  ASSERT_TRUE(
      alice_wire.send(send_text("spoof001", path_between(a, b), mallory, "msg-0001", "it's me")));
  const auto refused = alice_wire.next_frame();
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->head.transaction_id, "spoof001");
  EXPECT_EQ(refused->head.status_code, 403) << describe(refused);
  EXPECT_EQ(header(*refused, "To-Path"), mallory);

  const auto leaked = bob_wire.next_frame(300ms);
  EXPECT_FALSE(leaked) << describe(leaked);
  EXPECT_EQ(bob_wire.received(), bob_had) << "Bob was sent something";
}

TEST_F(RelayServer, UnknownSessionIs481) {
  wire_client c(port_);
  const auto a = alice();
  const auto b = bob();
  // By the relay's host name and by its address (an alias); neither session-id exists.
  const std::vector<std::string> unknown = {
      "msrp://localhost:" + std::to_string(port_) + "/nosuchsession01;tcp",
      "msrp://127.0.0.1:" + std::to_string(port_) + "/nosuchsession02;tcp"};
  for (const auto& self : unknown) {
    SCOPED_TRACE(self);
    ASSERT_TRUE(c.send(send_text("lost0001", self + ' ' + b.uri, a.uri, "msg-0001", "anyone?")));
    const auto refused = c.next_frame();
    ASSERT_TRUE(refused);
    EXPECT_EQ(refused->head.transaction_id, "lost0001");
    EXPECT_EQ(refused->head.status_code, 481) << describe(refused);
    EXPECT_EQ(header(*refused, "From-Path"), self);
  }
}

TEST_F(RelayServer, DownstreamCloseMidTransferIsReported) {
  wire_client alice_wire(port_);
  // A small window toward Bob keeps most of the message from being in flight when he leaves.
  wire_client bob_wire(port_, 64 * 1024);
  auto a = alice();
  auto b = bob();
  ASSERT_TRUE(authenticate(alice_wire, a));
  ASSERT_TRUE(authenticate(bob_wire, b));

  constexpr std::size_t total = 4 * 1024 * 1024;
  const auto size = std::to_string(total);
  message head = request("bigsend1", "SEND", path_between(a, b), a.uri,
                         {{"Message-ID", "big-0001"},
                          {"Byte-Range", "1-*/" + size},
                          {"Content-Type", "application/octet-stream"}});
  // Alice streams from her own thread: the relay may hold her back while Bob is slow.
  bool sent_all = false;
  std::thread sender([&] {
    std::string piece(64 * 1024, '\0');
    for (std::size_t i = 0; i < piece.size(); ++i)
      piece[i] = static_cast<char>('a' + i % 26);
    bool ok = alice_wire.send(serialize_head(head));
    for (std::size_t at = 0; ok && at < total; at += piece.size())
      ok = alice_wire.send(piece);
    sent_all = ok && alice_wire.send(serialize_end(head, end_flag::complete));
  });

  // Bob takes a part of it and leaves.
  const auto taken = bob_wire.skip(256 * 1024);
  bob_wire.close();
  sender.join();
  EXPECT_GE(taken, 256u * 1024);
  EXPECT_TRUE(sent_all) << "the relay stopped reading Alice after Bob left";

  // Alice is told: the SEND's own answer is 481 or, if the relay had already said 200, a
  // REPORT 481 for the message (Failure-Report defaults to yes).
  const auto deadline = steady::now() + patience;
  std::string seen;
  bool told = false;
  while (!told && steady::now() < deadline) {
    const auto f = alice_wire.next_frame();
    if (!f) break;
    seen += describe(*f);
    if (!f->head.is_request() && f->head.transaction_id == "bigsend1") {
      if (f->head.status_code == 481) told = true;
      EXPECT_TRUE(f->head.status_code == 481 || f->head.status_code == 200) << describe(*f);
    }
    if (f->head.method == "REPORT" && header(*f, "Message-ID") == "big-0001") {
      EXPECT_TRUE(header(*f, "Status").starts_with("000 481")) << describe(*f);
      told = true;
    }
  }
  EXPECT_TRUE(told) << "Alice got only:\n" << seen;
}

// The edge reads every connection into one shared buffer, which an idle connection does not
// hold: many authenticated connections sit idle, then all of them send at once, each a message
// larger than one read, and every receiver must get exactly its own body.
TEST_F(RelayServer, IdleConnectionsThenTrafficArriveIntact) {
  constexpr std::size_t pairs = 24;
  std::vector<std::unique_ptr<wire_client>> senders, receivers;
  std::vector<account> from(pairs, alice()), to(pairs, bob());
  for (std::size_t i = 0; i < pairs; ++i) {
    senders.push_back(std::make_unique<wire_client>(port_));
    receivers.push_back(std::make_unique<wire_client>(port_));
    ASSERT_TRUE(authenticate(*senders[i], from[i]));
    ASSERT_TRUE(authenticate(*receivers[i], to[i]));
  }
  const auto body_of = [](std::size_t i) {
    std::string body(200 * 1024, '\0');
    for (std::size_t k = 0; k < body.size(); ++k)
      body[k] = static_cast<char>('A' + (i * 7 + k) % 26);
    return body;
  };
  // Each sender from its own thread: the relay holds a sender back until its receiver reads.
  std::vector<char> sent(pairs, 0);
  std::vector<std::thread> sending;
  for (std::size_t i = 0; i < pairs; ++i) {
    sending.emplace_back([&, i] {
      sent[i] = senders[i]->send(send_text("many" + std::to_string(i), path_between(from[i], to[i]),
                                           from[i].uri, "msg-" + std::to_string(i), body_of(i)));
    });
  }
  for (std::size_t i = 0; i < pairs; ++i) {
    // The relay may pass the message on in several chunks: each is answered, the bodies joined.
    std::string got;
    for (;;) {
      const auto f = receivers[i]->next_frame();
      if (!f) {
        ADD_FAILURE() << "pair " << i << ": nothing more after " << got.size() << " bytes";
        break;
      }
      if (f->head.method != "SEND") continue;
      EXPECT_EQ(header(*f, "Message-ID"), "msg-" + std::to_string(i));
      got += f->body;
      receivers[i]->send(response_text(f->head.transaction_id, 200, "OK",
                                       first_hop(header(*f, "From-Path")), to[i].uri));
      if (f->flag != end_flag::continued) break;
    }
    EXPECT_TRUE(got == body_of(i)) << "pair " << i << ": " << got.size() << " bytes differ";
  }
  for (auto& thread : sending)
    thread.join();
  EXPECT_EQ(std::count(sent.begin(), sent.end(), 1), static_cast<long>(pairs));
}

// --- Connections (RFC 4976 §6.1, §6.2; RFC 4975 §7.3) ---------------------------------------

TEST_F(RelayServer, GarbageIs400ThenClose) {
  wire_client c(port_);
  ASSERT_TRUE(c.send("MSRP abcd1234 SEND\r\nTo-Path: " + relay_uri_ +
                     "\r\nFrom-Path: " + alice().uri + "\r\nthis is no header\r\n\r\n"));
  const auto answer = c.next_frame();
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->head.transaction_id, "abcd1234");
  EXPECT_EQ(answer->head.status_code, 400) << describe(answer);
  EXPECT_TRUE(c.closed_by_peer());
  EXPECT_EQ(c.pending_frames(), 0u);
}

TEST_F(RelayServer, RequestForAnotherHostIsDropped) {
  const auto other_port = static_cast<std::uint16_t>(port_ == 65535 ? port_ - 1 : port_ + 1);
  // Another host, and this host on a port the relay does not listen on (§6.2).
  for (const auto& elsewhere : {std::string("msrp://elsewhere.example.org:2855/abc;tcp"),
                                "msrp://localhost:" + std::to_string(other_port) + "/abc;tcp"}) {
    SCOPED_TRACE(elsewhere);
    wire_client c(port_);
    ASSERT_TRUE(c.send(send_text("away0001", elsewhere, alice().uri, "msg-0001", "psst")));
    EXPECT_TRUE(c.closed_by_peer());
    EXPECT_EQ(c.pending_frames(), 0u);
    EXPECT_EQ(c.received(), 0u) << "the relay answered";
  }
}

TEST_F(RelayServer, IdleConnectionEndsAfterProbation) {
  const auto start = steady::now();
  wire_client c(port_);
  EXPECT_TRUE(c.closed_by_peer());
  const auto waited = steady::now() - start;
  EXPECT_EQ(c.received(), 0u);
  EXPECT_GE(waited, 1900ms);
  EXPECT_LT(waited, 3s);
}

}  // namespace
}  // namespace msrp::net
