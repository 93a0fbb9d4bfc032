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
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
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
/// and a parser that turns what it reads into frames; over TLS after `start_tls()`.
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

  /// Runs a TLS handshake as a client (the relay's certificate is not checked: the tests
  /// look at what the relay does, not at who it is); false if it failed.
  bool start_tls() {
    static SSL_CTX* const context = [] {
      // OpenSSL writes with write(), without MSG_NOSIGNAL: a write to a connection the relay
      // reset must fail, not kill the test with SIGPIPE.
      std::signal(SIGPIPE, SIG_IGN);
      auto* made = SSL_CTX_new(TLS_client_method());
      SSL_CTX_set_verify(made, SSL_VERIFY_NONE, nullptr);
      return made;
    }();
    ssl_ = SSL_new(context);
    SSL_set_fd(ssl_, fd_);
    if (SSL_connect(ssl_) == 1) return true;
    close();  // what follows fails instead of using a broken TLS state
    return false;
  }

  /// Writes all of `bytes`; false if the connection failed or a write timed out.
  bool send(std::string_view bytes) {
    while (!bytes.empty()) {
      if (ssl_) {
        const auto n = SSL_write(ssl_, bytes.data(), static_cast<int>(bytes.size()));
        if (n <= 0) return false;
        bytes.remove_prefix(static_cast<std::size_t>(n));
        continue;
      }
      const auto n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  /// Reads bytes unparsed until the relay closes the connection (true) or a read times out
  /// (false); for connections on which the relay is expected to say nothing in MSRP.
  bool dropped() {
    char bytes[4096];
    for (;;) {
      const auto n = read_some(bytes, sizeof bytes);
      if (n == timed_out) return false;
      if (n <= 0) return true;
      raw_ += std::string_view(bytes, static_cast<std::size_t>(n));
    }
  }
  /// What `dropped()` read.
  const std::string& raw() const { return raw_; }

  /// Closes the connection with a reset (RST: SO_LINGER with a zero timeout), as a peer that
  /// crashed or a middlebox that gave up.
  void reset() {
    const linger abort{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
    close();
  }

  int fd() const { return fd_; }

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
      const auto got = read_some(buffer.data(), buffer.size());
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
    if (ssl_) SSL_free(ssl_);
    ssl_ = nullptr;
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  static constexpr long timed_out = -1;

  /// One read of at most `size` bytes: how many, 0 at the end of the stream, `timed_out`, or
  /// -2 when the connection failed (a reset, a TLS error).
  long read_some(char* into, std::size_t size) {
    for (;;) {
      errno = 0;
      if (ssl_) {
        const auto n = SSL_read(ssl_, into, static_cast<int>(size));
        if (n > 0) return n;
        const auto why = SSL_get_error(ssl_, n);
        if (why == SSL_ERROR_ZERO_RETURN) return 0;
        if (why == SSL_ERROR_WANT_READ || errno == EAGAIN || errno == EWOULDBLOCK) {
          return timed_out;
        }
        if (errno == EINTR) continue;
        return why == SSL_ERROR_SYSCALL && errno == 0 ? 0 : -2;
      }
      const auto n = ::recv(fd_, into, size, 0);
      if (n >= 0) return n;
      if (errno == EINTR) continue;
      return errno == EAGAIN || errno == EWOULDBLOCK ? timed_out : -2;
    }
  }

  /// One read, parsed; false if the peer closed (or reset) the connection or the read timed
  /// out.
  bool read_more() {
    if (closed_) return false;
    char bytes[16 * 1024];
    const auto n = read_some(bytes, sizeof bytes);
    if (n == timed_out) return false;
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
  SSL* ssl_ = nullptr;
  std::string raw_;
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

  static relay_server::options options() {
    relay_server::options settings;
    settings.engine = engine();
    return settings;
  }

  /// A new server, with `credentials` as its store, listening on plain TCP, and on TLS too
  /// when `settings` have an identity (`tls_port_`).
  void serve(credential_service credentials, relay_server::options settings = options()) {
    const bool tls = settings.identity.has_value();
    server_.reset();
    server_ = std::make_unique<relay_server>(std::move(settings), std::move(credentials));
    const auto bound = server_->listen("127.0.0.1", 0, false);
    ASSERT_TRUE(bound) << bound.error().message();
    port_ = *bound;
    relay_uri_ = "msrp://localhost:" + std::to_string(port_) + ";tcp";
    if (!tls) return;
    const auto secure = server_->listen("127.0.0.1", 0, true);
    ASSERT_TRUE(secure) << secure.error().message();
    tls_port_ = *secure;
  }

  /// Waits until the relay's counters satisfy `done` (they change on the relay's thread).
  template <class Predicate>
  bool settles(Predicate done, std::chrono::milliseconds within = patience) {
    const auto deadline = steady::now() + within;
    for (;;) {
      if (done(server_->statistics())) return true;
      if (steady::now() > deadline) return false;
      std::this_thread::sleep_for(10ms);
    }
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
  std::uint16_t tls_port_ = 0;
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

// --- Fault injection at the edge (issue #8)
// -------------------------------------------------------

/// A SEND head for a body of `size` bytes in one chunk.
message big_send(std::string tid, std::string_view to, std::string_view from,
                 std::string_view message_id, std::size_t size) {
  const auto total = std::to_string(size);
  return request(std::move(tid), "SEND", to, from,
                 {{"Message-ID", std::string(message_id)},
                  {"Byte-Range", "1-" + total + '/' + total},
                  {"Content-Type", "application/octet-stream"}});
}

std::string random_bytes(std::size_t size, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string out(size, '\0');
  for (auto& c : out)
    c = static_cast<char>(rng());
  return out;
}

/// Sends `head`, `total` bytes of copies of `piece` and the end-line over `wire` from a thread
/// of its own, each send waiting up to `timeout` (the relay may hold the sender back); at the
/// end `sent_all` says whether everything went.
std::thread send_in_pieces(wire_client& wire, const message& head, const std::string& piece,
                           std::size_t total, std::chrono::milliseconds timeout,
                           std::atomic<bool>& sent_all) {
  return std::thread([&wire, &head, &piece, total, timeout, &sent_all] {
    bool ok = wire.send(serialize_head(head));
    wire.set_timeout(timeout);
    for (std::size_t at = 0; ok && at < total; at += piece.size())
      ok = wire.send(piece);
    sent_all = ok && wire.send(serialize_end(head, end_flag::complete));
  });
}

/// `who` sends `to` a short text on `from_wire`; true once `to` got it (on `to_wire`) and
/// answered it, and the sender got its 200.
bool delivers(wire_client& from_wire, const account& who, wire_client& to_wire, const account& to,
              const std::string& message_id) {
  const auto path = who.use_path + ' ' + to.use_path + ' ' + to.uri;
  if (!from_wire.send(send_text("t" + message_id, path, who.uri, message_id, "ping"))) return false;
  const auto got = to_wire.next_frame();
  if (!got || got->head.method != "SEND" || header(*got, "Message-ID") != message_id ||
      got->body != "ping") {
    ADD_FAILURE() << "expected " << message_id << ", got " << describe(got);
    return false;
  }
  to_wire.send(response_text(got->head.transaction_id, 200, "OK",
                             first_hop(header(*got, "From-Path")), to.uri));
  const auto answer = from_wire.next_frame();
  return answer && answer->head.status_code == 200 &&
         answer->head.transaction_id == "t" + message_id;
}

TEST_F(RelayServer, SlowDripSenderIsClosedAndItsChunkAborted) {
  auto settings = options();
  settings.engine.head_timeout = 1s;
  settings.engine.frame_idle_timeout = 1s;
  serve(answer_at_once(lookup), settings);
  wire_client alice_wire(port_);
  wire_client bob_wire(port_);
  auto a = alice();
  auto b = bob();
  ASSERT_TRUE(authenticate(alice_wire, a));
  ASSERT_TRUE(authenticate(bob_wire, b));

  // A body that stops: Bob gets what came, ended with `#`, and Alice is closed.
  const auto body = random_bytes(10000, 41);
  const auto head = big_send("stall001", path_between(a, b), a.uri, "msg-stall", body.size());
  ASSERT_TRUE(alice_wire.send(serialize_head(head) + body.substr(0, 3000)));
  const auto aborted = bob_wire.next_frame();
  ASSERT_TRUE(aborted) << "the chunk was left open";
  EXPECT_EQ(aborted->flag, end_flag::aborted) << describe(aborted);
  EXPECT_TRUE(aborted->body == body.substr(0, 3000));
  EXPECT_TRUE(alice_wire.closed_by_peer());

  // A head dripped a byte every 200 ms, never silent for the idle time, is closed all the
  // same: it was not complete in time.
  wire_client drip_wire(port_);
  ASSERT_TRUE(authenticate(drip_wire, a));
  const auto text = send_text("drip0001", path_between(a, b), a.uri, "msg-drip", "hi");
  std::size_t dripped = 0;
  for (; dripped < text.size(); ++dripped) {
    if (!drip_wire.send(text.substr(dripped, 1))) break;
    std::this_thread::sleep_for(200ms);
    if (server_->statistics().connections < 3) break;
  }
  EXPECT_LT(dripped, text.size()) << "the whole frame went through";
  EXPECT_TRUE(drip_wire.closed_by_peer());

  // Bob's session goes on.
  wire_client carol_wire(port_);
  ASSERT_TRUE(authenticate(carol_wire, a));
  EXPECT_TRUE(delivers(carol_wire, a, bob_wire, b, "after-drip"));
}

/// CPU time the process has used, user and system.
std::chrono::microseconds cpu_time() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  const auto micros = [](const timeval& t) {
    return std::chrono::seconds(t.tv_sec) + std::chrono::microseconds(t.tv_usec);
  };
  return micros(usage.ru_utime) + micros(usage.ru_stime);
}

TEST_F(RelayServer, SlowReaderHoldsTheSenderBackAndLosesNothing) {
  wire_client alice_wire(port_);
  // Bob's small receive buffer: what the relay cannot write to him stays in its own output.
  wire_client bob_wire(port_, 64 * 1024);
  auto a = alice();
  auto b = bob();
  ASSERT_TRUE(authenticate(alice_wire, a));
  ASSERT_TRUE(authenticate(bob_wire, b));

  constexpr std::size_t total = 32 * 1024 * 1024;
  const auto piece = random_bytes(64 * 1024, 43);
  const auto head = big_send("slow0001", path_between(a, b), a.uri, "msg-slow", total);
  std::atomic<bool> sent_all = false;
  // A sender held back blocks in send(): no timeout while the test holds Bob still.
  auto sender = send_in_pieces(alice_wire, head, piece, total, 60s, sent_all);

  // Bob reads nothing until the relay stops passing Alice's bytes on; meanwhile the relay's
  // queue stays within its output window and one read of Alice (64 KiB).
  const auto window = engine().output_window;
  std::uint64_t largest = 0;
  std::uint64_t relayed = 0;
  int still = 0;
  const auto deadline = steady::now() + 30s;
  while (still < 20 && steady::now() < deadline) {
    std::this_thread::sleep_for(20ms);
    const auto stats = server_->statistics();
    largest = std::max(largest, stats.queued_bytes);
    // Still: nothing more passed on, with the window full.
    still = stats.bytes_relayed == relayed && stats.queued_bytes >= window ? still + 1 : 0;
    relayed = stats.bytes_relayed;
  }
  EXPECT_EQ(still, 20) << "the relay kept passing bytes on to a reader that reads nothing";
  EXPECT_GE(largest, window) << "the relay's window never filled";
  EXPECT_LE(largest, window + 64 * 1024 + 1024);
  EXPECT_LT(relayed, total / 2) << "Alice was not held back";
  EXPECT_FALSE(sent_all);
  // Defect HeldBackReaderAndIdleWriterWokeEachOther: Alice's reader and writer slept on one
  // timer and each re-armed it before waiting, which cancels the other's wait; held back, her
  // reader and her idle writer woke each other for as long as the back-pressure lasted, on a
  // full core. Now holding her back costs next to nothing.
  const auto before = cpu_time();
  std::this_thread::sleep_for(1s);
  EXPECT_LT(cpu_time() - before, 200ms) << "the relay spun while holding Alice back";

  // Bob reads: everything arrives, byte for byte.
  bob_wire.set_timeout(10s);
  const auto got = bob_wire.next_frame();
  sender.join();
  EXPECT_TRUE(sent_all);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->flag, end_flag::complete);
  ASSERT_EQ(got->body.size(), total);
  for (std::size_t at = 0; at < total; at += piece.size()) {
    if (std::string_view(got->body).substr(at, piece.size()) != piece) {
      ADD_FAILURE() << "the body differs at " << at;
      break;
    }
  }
  const auto answer = alice_wire.next_frame();
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->head.status_code, 200) << describe(answer);
}

TEST_F(RelayServer, StalledReaderIsClosedAfterTheWriteTimeout) {
  auto settings = options();
  settings.write_timeout = 1s;
  serve(answer_at_once(lookup), settings);
  wire_client alice_wire(port_);
  wire_client bob_wire(port_, 64 * 1024);
  auto a = alice();
  auto b = bob();
  ASSERT_TRUE(authenticate(alice_wire, a));
  ASSERT_TRUE(authenticate(bob_wire, b));

  // Alice sends more than the buffers between the relay and Bob hold; Bob reads nothing.
  constexpr std::size_t total = 32 * 1024 * 1024;
  const auto piece = random_bytes(64 * 1024, 59);
  const auto head = big_send("stuck001", path_between(a, b), a.uri, "msg-stuck", total);
  std::atomic<bool> sent_all = false;
  auto sender = send_in_pieces(alice_wire, head, piece, total, 30s, sent_all);
  // The relay gives up on Bob: his session ends, and Alice's bytes are read and dropped.
  EXPECT_TRUE(settles([](const relay::stats& s) { return s.sessions == 1; }, 10s));
  sender.join();
  EXPECT_TRUE(sent_all) << "the relay stopped reading Alice after Bob was closed";
  // Alice is told (RFC 4976 §6.4.1): 481 as the answer or in a REPORT after a 200.
  bool told = false;
  while (const auto f = alice_wire.next_frame()) {
    if (!f->head.is_request() && f->head.status_code == 481) told = true;
    if (f->head.method == "REPORT" && header(*f, "Status").starts_with("000 481")) told = true;
    if (told) break;
  }
  EXPECT_TRUE(told);
  bob_wire.skip(SIZE_MAX);
  EXPECT_TRUE(bob_wire.dropped());
}

TEST_F(RelayServer, ResetsMidFrameLeaveOtherSessionsWorking) {
  wire_client bob_wire(port_);
  auto b = bob();
  ASSERT_TRUE(authenticate(bob_wire, b));
  const auto body = random_bytes(20000, 47);
  auto a = alice();
  // A sample of offsets into the frame: nothing, in the start line, in the headers, at the
  // head's end, in the body, in the end-line, and after it.
  const auto sample = [&](std::size_t head_size, std::size_t frame_size) {
    const auto end_size = frame_size - head_size - body.size();
    return std::vector<std::size_t>{0,
                                    1,
                                    20,
                                    head_size / 2,
                                    head_size - 1,
                                    head_size,
                                    head_size + 1,
                                    head_size + body.size() / 2,
                                    head_size + body.size(),
                                    head_size + body.size() + end_size / 2,
                                    frame_size - 1,
                                    frame_size};
  };
  for (std::size_t i = 0; i < sample(1, 2 + body.size()).size(); ++i) {
    std::size_t offset = 0;
    std::size_t frame_size = 0;
    {
      wire_client alice_wire(port_);
      a = alice();
      ASSERT_TRUE(authenticate(alice_wire, a));
      const auto head = big_send("reset001", path_between(a, b), a.uri, "msg-r", body.size());
      const auto bytes = serialize(head, body).to_string();
      frame_size = bytes.size();
      offset = sample(serialize_head(head).size(), frame_size)[i];
      ASSERT_TRUE(alice_wire.send(std::string_view(bytes).substr(0, offset)));
      alice_wire.reset();
    }
    SCOPED_TRACE("reset after " + std::to_string(offset) + " of " + std::to_string(frame_size) +
                 " bytes");
    ASSERT_TRUE(settles([](const relay::stats& s) { return s.connections == 1 && s.streams == 0; }))
        << "the reset connection is still there";
    // Another connection of Alice's reaches Bob; whatever Bob got before is whole or `#`.
    wire_client again(port_);
    a = alice();
    ASSERT_TRUE(authenticate(again, a));
    const auto marker = "after-" + std::to_string(offset);
    ASSERT_TRUE(again.send(send_text("t" + marker, path_between(a, b), a.uri, marker, "ping")));
    for (;;) {
      const auto got = bob_wire.next_frame();
      ASSERT_TRUE(got) << "Bob did not get " << marker;
      if (header(*got, "Message-ID") == marker) break;
      EXPECT_EQ(header(*got, "Message-ID"), "msg-r") << describe(got);
      EXPECT_TRUE(got->flag == end_flag::aborted || offset == frame_size) << describe(got);
      EXPECT_TRUE(std::string_view(body).substr(0, got->body.size()) == got->body);
    }
    const auto answer = again.next_frame();
    ASSERT_TRUE(answer);
    EXPECT_EQ(answer->head.status_code, 200);
  }
  EXPECT_TRUE(settles([](const relay::stats& s) { return s.connections == 1 && s.sessions == 1; }));
}

TEST_F(RelayServer, FloodOfConnectionsKeepsTheLimitAndTheSession) {
  auto settings = options();
  settings.engine.max_connections = 500;
  settings.engine.probation = 30s;  // the flood stays while a wave is counted
  serve(answer_at_once(lookup), settings);
  wire_client alice_wire(port_);
  wire_client bob_wire(port_);
  auto a = alice();
  auto b = bob();
  ASSERT_TRUE(authenticate(alice_wire, a));
  ASSERT_TRUE(authenticate(bob_wire, b));

  // 10,000 connections in waves of 1,000 (client and relay ends stay under 2,000 descriptors).
  constexpr int waves = 10;
  constexpr std::size_t wave = 1000;
  for (int w = 0; w < waves; ++w) {
    SCOPED_TRACE("wave " + std::to_string(w));
    std::vector<std::unique_ptr<wire_client>> flood;
    for (std::size_t i = 0; i < wave; ++i)
      flood.push_back(std::make_unique<wire_client>(port_));
    // The relay keeps 498 more (500 with Alice's and Bob's) and closes the others at once.
    std::vector<pollfd> fds;
    for (const auto& c : flood)
      fds.push_back({c->fd(), POLLIN, 0});
    std::size_t closed = 0;
    const auto deadline = steady::now() + 10s;
    while (closed < wave - 498 && steady::now() < deadline) {
      ::poll(fds.data(), fds.size(), 100);
      closed = static_cast<std::size_t>(
          std::count_if(fds.begin(), fds.end(), [](const pollfd& p) { return p.revents != 0; }));
    }
    EXPECT_EQ(closed, wave - 498);
    EXPECT_TRUE(settles([](const relay::stats& s) { return s.connections == 500; }));
    // The established session goes on meanwhile.
    ASSERT_TRUE(delivers(alice_wire, a, bob_wire, b, "wave-" + std::to_string(w)));
    // No more than the limit were kept: poll again once Alice and Bob talked.
    ::poll(fds.data(), fds.size(), 0);
    EXPECT_EQ(std::count_if(fds.begin(), fds.end(), [](const pollfd& p) { return p.revents != 0; }),
              static_cast<long>(wave - 498));
    flood.clear();
    ASSERT_TRUE(settles([](const relay::stats& s) { return s.connections == 2; }));
  }
  const auto stats = server_->statistics();
  EXPECT_EQ(stats.connections, 2u);
  EXPECT_EQ(stats.sessions, 2u);
  EXPECT_EQ(stats.queued_bytes, 0u);
}

TEST_F(RelayServer, FloodOfFailedAuthsKeepsTheSession) {
  wire_client alice_wire(port_);
  wire_client bob_wire(port_);
  auto a = alice();
  auto b = bob();
  ASSERT_TRUE(authenticate(alice_wire, a));
  ASSERT_TRUE(authenticate(bob_wire, b));

  // Four threads, 50 connections each, each failing AUTH three times: 401, 401, then 403 and
  // closed (RFC 4976 §6.3).
  constexpr int threads = 4;
  constexpr int per_thread = 50;
  std::atomic<int> refused = 0;
  std::atomic<int> running = threads;
  std::vector<std::thread> attackers;
  for (int t = 0; t < threads; ++t) {
    attackers.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) {
        wire_client c(port_);
        auto mallory = alice();
        mallory.password = "guess-" + std::to_string(t) + '-' + std::to_string(i);
        auto ch = get_challenge(c, mallory);
        std::vector<int> codes;
        for (int attempt = 0; ch && attempt < 3; ++attempt) {
          c.send(auth_text("auth" + std::to_string(attempt), relay_uri_, mallory.uri,
                           {{"Authorization", authorization(*ch, mallory)}}));
          const auto answer = c.next_frame();
          if (!answer) break;
          codes.push_back(answer->head.status_code);
          if (answer->head.status_code == 401) ch = challenge_for(*answer, digest::sha256);
        }
        if (codes == std::vector<int>{401, 401, 403} && c.closed_by_peer()) ++refused;
      }
      --running;
    });
  }
  // Alice and Bob keep talking through it.
  int delivered = 0;
  while (running > 0) {
    ASSERT_TRUE(delivers(alice_wire, a, bob_wire, b, "during-" + std::to_string(delivered)));
    ++delivered;
  }
  for (auto& t : attackers)
    t.join();
  EXPECT_EQ(refused, threads * per_thread);
  EXPECT_GT(delivered, 0);
  EXPECT_TRUE(settles([](const relay::stats& s) { return s.connections == 2; }));
  const auto stats = server_->statistics();
  EXPECT_EQ(stats.auth_failures, 3u * threads * per_thread);
  EXPECT_EQ(stats.sessions, 2u);
  EXPECT_TRUE(delivers(alice_wire, a, bob_wire, b, "after-flood"));
}

/// The first bytes a TLS client sends: its ClientHello, made by OpenSSL in memory.
std::string client_hello() {
  SSL_CTX* context = SSL_CTX_new(TLS_client_method());
  SSL* ssl = SSL_new(context);
  BIO* in = BIO_new(BIO_s_mem());
  BIO* out = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl, in, out);
  SSL_set_connect_state(ssl);
  SSL_do_handshake(ssl);  // wants to read the ServerHello
  std::string hello(static_cast<std::size_t>(BIO_pending(out)), '\0');
  BIO_read(out, hello.data(), static_cast<int>(hello.size()));
  SSL_free(ssl);
  SSL_CTX_free(context);
  return hello;
}

TEST_F(RelayServer, TlsGarbageIsDroppedWhileTlsSessionsGoOn) {
  auto settings = options();
  auto made = make_self_signed("localhost");
  ASSERT_TRUE(made);
  settings.identity = *made;
  settings.connect_timeout = 1s;
  serve(answer_at_once(lookup), settings);
  relay_uri_ = "msrps://localhost:" + std::to_string(tls_port_) + ";tcp";
  wire_client alice_wire(tls_port_);
  wire_client bob_wire(tls_port_);
  ASSERT_TRUE(alice_wire.start_tls());
  ASSERT_TRUE(bob_wire.start_tls());
  auto a = alice();
  auto b = bob();
  ASSERT_TRUE(authenticate(alice_wire, a));
  ASSERT_TRUE(authenticate(bob_wire, b));

  const auto hello = client_hello();
  ASSERT_GT(hello.size(), 100u);
  const std::vector<std::pair<std::string, std::string>> garbage = {
      {"random bytes", random_bytes(4096, 53)},
      {"a truncated ClientHello", hello.substr(0, hello.size() / 2)},
      {"a ClientHello, then silence", hello},
      {"plain MSRP", auth_text("plain001", relay_uri_, a.uri)},
      {"a TLS record header only", hello.substr(0, 5)},
  };
  // Ten of each at once; the handshakes that stall hold nothing up.
  std::vector<std::pair<std::string, std::unique_ptr<wire_client>>> clients;
  for (int i = 0; i < 10; ++i) {
    for (const auto& [what, bytes] : garbage) {
      clients.emplace_back(what, std::make_unique<wire_client>(tls_port_));
      EXPECT_TRUE(clients.back().second->send(bytes)) << what;
    }
  }
  EXPECT_TRUE(delivers(alice_wire, a, bob_wire, b, "during-garbage"));
  for (auto& [what, c] : clients) {
    EXPECT_TRUE(c->dropped()) << what << " was not dropped";
    EXPECT_FALSE(c->raw().starts_with("MSRP")) << what << " got an MSRP answer";
  }
  EXPECT_TRUE(delivers(alice_wire, a, bob_wire, b, "after-garbage"));
  const auto stats = server_->statistics();
  EXPECT_EQ(stats.connections, 2u);
  EXPECT_EQ(stats.sessions, 2u);
}

// Defect: TLS handshakes in progress did not count against max_connections, so a flood of
// stalled ClientHellos held as many sockets as it liked, each for connect_timeout.
TEST_F(RelayServer, DefectStalledTlsHandshakesWentOverTheConnectionLimit) {
  auto settings = options();
  auto made = make_self_signed("localhost");
  ASSERT_TRUE(made);
  settings.identity = *made;
  settings.engine.max_connections = 100;
  settings.connect_timeout = 30s;  // longer than the test: only the limit can drop them
  serve(answer_at_once(lookup), settings);
  relay_uri_ = "msrps://localhost:" + std::to_string(tls_port_) + ";tcp";
  wire_client alice_wire(tls_port_);
  wire_client bob_wire(tls_port_);
  ASSERT_TRUE(alice_wire.start_tls());
  ASSERT_TRUE(bob_wire.start_tls());
  auto a = alice();
  auto b = bob();
  ASSERT_TRUE(authenticate(alice_wire, a));
  ASSERT_TRUE(authenticate(bob_wire, b));

  // 300 ClientHellos that never go on: 98 may wait for their handshake, the rest are closed.
  const auto hello = client_hello();
  std::vector<std::unique_ptr<wire_client>> flood;
  std::vector<pollfd> fds;
  for (int i = 0; i < 300; ++i) {
    flood.push_back(std::make_unique<wire_client>(tls_port_));
    flood.back()->send(hello);
    fds.push_back({flood.back()->fd(), POLLRDHUP, 0});
  }
  std::size_t closed = 0;
  const auto deadline = steady::now() + 10s;
  while (closed < 300 - 98 && steady::now() < deadline) {
    ::poll(fds.data(), fds.size(), 100);
    closed = static_cast<std::size_t>(std::count_if(
        fds.begin(), fds.end(), [](const pollfd& p) { return (p.revents & POLLRDHUP) != 0; }));
  }
  EXPECT_EQ(closed, 300u - 98);
  EXPECT_TRUE(delivers(alice_wire, a, bob_wire, b, "during-handshakes"));
  // Once they are gone (the relay sees their handshakes fail), new clients are served again.
  flood.clear();
  std::unique_ptr<wire_client> carol_wire;
  const auto until = steady::now() + patience;
  do {
    carol_wire = std::make_unique<wire_client>(tls_port_);
    if (carol_wire->start_tls()) break;
    std::this_thread::sleep_for(20ms);
  } while (steady::now() < until);
  EXPECT_TRUE(authenticate(*carol_wire, a));
}

// Built with AddressSanitizer (g++ says so with a macro, clang with __has_feature).
#if defined(__SANITIZE_ADDRESS__)
constexpr bool sanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool sanitized = true;
#else
constexpr bool sanitized = false;
#endif
#else
constexpr bool sanitized = false;
#endif

// Defect: when the relay ran out of file descriptors, accepting failed at once for the
// connection waiting in the backlog, and the accept loop retried at once, for ever: the I/O
// thread spun on a full core until a descriptor was freed.
TEST_F(RelayServer, DefectAcceptSpunWhenOutOfDescriptors) {
  if (sanitized) {
    // The sanitizers probe memory through a pipe: out of descriptors they report a vptr
    // error on any virtual call in the process.
    GTEST_SKIP() << "needs the process to run out of descriptors, which the sanitizers cannot";
  }
  wire_client alice_wire(port_);
  wire_client bob_wire(port_);
  auto a = alice();
  auto b = bob();
  ASSERT_TRUE(authenticate(alice_wire, a));
  ASSERT_TRUE(authenticate(bob_wire, b));
  // 40 sockets, then room for 10 more descriptors in this process (test and relay), then the
  // 40 connect: the relay accepts 10 and runs out.
  std::vector<int> sockets;
  for (int i = 0; i < 40; ++i)
    sockets.push_back(::socket(AF_INET, SOCK_STREAM, 0));
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  const int next = ::dup(0);
  ASSERT_GE(next, 0);
  ::close(next);
  rlimit low = saved;
  low.rlim_cur = static_cast<rlim_t>(next + 10);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port_);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (const int fd : sockets)
    EXPECT_EQ(::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address), 0);
  ASSERT_TRUE(settles([](const relay::stats& s) { return s.connections >= 12; }));
  // The relay waits for descriptors instead of spinning: a second of waiting costs it almost
  // no CPU (spinning cost most of a core), and the established session goes on.
  const auto before = cpu_time();
  std::this_thread::sleep_for(1s);
  const auto used = cpu_time() - before;
  EXPECT_LT(used, 200ms) << "the relay spun while out of descriptors";
  EXPECT_TRUE(delivers(alice_wire, a, bob_wire, b, "out-of-descriptors"));
  // Descriptors back: the clients left in the backlog are served.
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);
  EXPECT_TRUE(settles([](const relay::stats& s) { return s.connections == 42; }));
  for (const int fd : sockets)
    ::close(fd);
}

}  // namespace
}  // namespace msrp::net
