// Loopback tests of msrp::net::node: two nodes in one process, Alice passive (listening on
// 127.0.0.1, port 0), Bob active (connecting), as the msrp command's quick mode meets
// (apps/msrp/meet.cpp). Every wait has a deadline, so a broken node fails a test instead of
// hanging it.
//
// The large-file tests send MSRP_NET_BIG MiB (default 256) of pseudo-random bytes; the
// receiver hashes the pieces as they arrive and never holds the file whole.
#include "msrp/net/node.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <type_traits>
#include <typeinfo>
#include <vector>

namespace msrp::net {
namespace {

using namespace std::chrono_literals;

constexpr std::uint64_t mib = 1024 * 1024;

/// How long one wait may take before the test fails.
constexpr auto patience = 60s;

// --- A file that is never stored: byte i is a function of i -------------------------------

/// splitmix64 (Steele, Lea, Flood 2014) of a counter: good enough noise for a test file.
std::uint64_t mix(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EB;
  return x ^ (x >> 31);
}

/// Fills `into` with the test file's bytes from `position` on: each 8-byte word is `mix` of
/// its index, so any range can be made on its own.
void fill_pseudo_random(std::uint64_t position, std::span<char> into) {
  std::size_t done = 0;
  while (done < into.size()) {
    const std::uint64_t word = mix(position / 8);
    const auto skip = static_cast<std::size_t>(position % 8);
    const auto n = std::min(sizeof word - skip, into.size() - done);
    std::memcpy(into.data() + done, reinterpret_cast<const char*>(&word) + skip, n);
    done += n;
    position += n;
  }
}

/// A body_reader for the test file of `size` bytes. With a `pause`, each read sleeps that
/// long first (on the sender's I/O thread), so the transfer takes long enough to act in.
body_reader pseudo_random_file(std::uint64_t size, std::chrono::microseconds pause) {
  return [size, pause](std::uint64_t offset, std::span<char> into) -> result<std::size_t> {
    if (pause.count() > 0) std::this_thread::sleep_for(pause);
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(into.size(), size - offset));
    fill_pseudo_random(offset, into.first(n));
    return n;
  };
}

/// The test file as a message asking for a success REPORT.
outgoing_message file_message(std::uint64_t size, std::chrono::microseconds pause = {}) {
  outgoing_message message;
  message.content_type = "application/octet-stream";
  message.size = size;
  message.read = pseudo_random_file(size, pause);
  message.success_report = report_mode::yes;
  return message;
}

outgoing_message text_message(std::string body) {
  auto message = outgoing_message::text("text/plain", std::move(body));
  message.success_report = report_mode::yes;
  return message;
}

/// Size of the large-file tests: MSRP_NET_BIG MiB, 256 by default.
std::uint64_t big_size() {
  if (const char* text = std::getenv("MSRP_NET_BIG")) {
    const auto value = std::strtoull(text, nullptr, 10);
    if (value > 0) return value * mib;
  }
  return 256 * mib;
}

// --- SHA-256, incrementally, with OpenSSL directly ----------------------------------------

class sha256 {
 public:
  sha256() : context_(EVP_MD_CTX_new()) {
    EVP_DigestInit_ex(context_.get(), EVP_sha256(), nullptr);
  }
  void update(std::string_view bytes) {
    EVP_DigestUpdate(context_.get(), bytes.data(), bytes.size());
  }
  std::vector<unsigned char> finish() {
    std::vector<unsigned char> digest(EVP_MAX_MD_SIZE);
    unsigned int n = 0;
    EVP_DigestFinal_ex(context_.get(), digest.data(), &n);
    digest.resize(n);
    return digest;
  }

 private:
  struct free_context {
    void operator()(EVP_MD_CTX* context) const { EVP_MD_CTX_free(context); }
  };
  std::unique_ptr<EVP_MD_CTX, free_context> context_;
};

std::vector<unsigned char> pseudo_random_digest(std::uint64_t size) {
  sha256 hash;
  std::vector<char> block(mib);
  for (std::uint64_t at = 0; at < size; at += block.size()) {
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(block.size(), size - at));
    fill_pseudo_random(at, std::span(block).first(n));
    hash.update({block.data(), n});
  }
  return hash.finish();
}

/// Takes the pieces of one streamed message: hashes them and checks that they come in order
/// (one sender and no relay: chunks, and so pieces, arrive in order).
struct file_sink {
  sha256 hash;
  std::uint64_t received = 0;
  bool in_order = true;

  void take(const events::message_piece& piece) {
    if (piece.offset != received && in_order) {
      in_order = false;
      ADD_FAILURE() << "piece at " << piece.offset << ", expected " << received;
    }
    hash.update(piece.bytes);
    received += piece.bytes.size();
  }
};

// --- Waiting for events -------------------------------------------------------------------

/// One side of a test: a node, its session, and every event taken from the node so far, in
/// order, except message pieces, which go to `on_piece` (a large file is never kept).
struct side {
  std::unique_ptr<msrp::net::node> node;
  session_handle session = 0;
  std::vector<node_event> log;
  std::function<void(const events::message_piece&)> on_piece;
};

/// The event `e` as an `E`, or null.
template <class E>
const E* as(const node_event& e) {
  if constexpr (std::is_same_v<E, connection_opened> || std::is_same_v<E, connection_closed>) {
    return std::get_if<E>(&e);
  } else {
    const auto* inner = std::get_if<msrp::event>(&e);
    return inner ? std::get_if<E>(inner) : nullptr;
  }
}

constexpr auto any = [](const auto&) { return true; };

/// Position in `log` of the first `E` that satisfies `match`, or -1.
template <class E, class Match = decltype(any)>
int index_of(const std::vector<node_event>& log, Match match = any) {
  for (std::size_t i = 0; i < log.size(); ++i) {
    if (const auto* e = as<E>(log[i]); e && match(*e)) return static_cast<int>(i);
  }
  return -1;
}

template <class E, class Match = decltype(any)>
int count(const std::vector<node_event>& log, Match match = any) {
  return static_cast<int>(std::count_if(log.begin(), log.end(), [&](const node_event& e) {
    const auto* x = as<E>(e);
    return x && match(*x);
  }));
}

/// The first `E` satisfying `match` in `s.log`, or, taking events from the node, the first
/// one to come. Fails the test and returns empty if none comes within `patience`.
template <class E, class Match = decltype(any)>
std::optional<E> wait_for(side& s, Match match = any) {
  if (const auto at = index_of<E>(s.log, match); at >= 0) {
    return *as<E>(s.log[static_cast<std::size_t>(at)]);
  }
  const auto deadline = std::chrono::steady_clock::now() + patience;
  while (std::chrono::steady_clock::now() < deadline) {
    auto e = s.node->wait_event(20ms);
    if (!e) continue;
    if (const auto* piece = as<events::message_piece>(*e)) {
      if (s.on_piece) s.on_piece(*piece);
    } else {
      s.log.push_back(*e);
    }
    if (const auto* found = as<E>(*e); found && match(*found)) return *found;
  }
  ADD_FAILURE() << "no " << typeid(E).name() << " within " << patience.count() << " s";
  return std::nullopt;
}

/// The outcome of message `message` sent from `s`.
std::optional<events::send_finished> finished(side& s, message_handle message) {
  return wait_for<events::send_finished>(
      s, [message](const events::send_finished& f) { return f.message == message; });
}

/// The message with body `body` received at `s`.
std::optional<events::message_received> received(side& s, const std::string& body) {
  return wait_for<events::message_received>(
      s, [&body](const events::message_received& m) { return m.body == body; });
}

certificate identity(std::string_view name) {
  auto made = make_self_signed(name);
  EXPECT_TRUE(made) << made.error().message() << ": " << tls_error_detail();
  return made ? *made : certificate{};
}

// --- The fixture: Alice listens, Bob connects ---------------------------------------------

struct two_nodes {
  side alice;
  side bob;
  std::uint16_t port = 0;
  uri alice_uri;
  /// Alice's certificate fingerprint (sha-256), with TLS.
  std::optional<fingerprint> alice_fingerprint;
  certificate alice_identity;

  /// Alice listens and opens her session (host = listen address, port = listening port); Bob
  /// opens his (host "client.invalid", no port) with Alice's URI as the remote path.
  explicit two_nodes(bool tls, node::options bob_settings = {}) {
    node::options alice_settings;
    if (tls) {
      alice_identity = identity("127.0.0.1");
      alice_settings.identity = alice_identity;
      bob_settings.identity = identity("client.invalid");
      auto digest = certificate_digest(alice_identity.certificate_pem, "sha-256");
      EXPECT_TRUE(digest);
      if (digest) alice_fingerprint = fingerprint{"sha-256", *digest};
    }
    alice.node = std::make_unique<node>(alice_settings);
    bob.node = std::make_unique<node>(bob_settings);
    const auto listening = alice.node->listen("127.0.0.1", 0, tls);
    EXPECT_TRUE(listening) << listening.error().message();
    if (listening) port = *listening;
    alice.session = alice.node->open_session({.secure = tls, .host = "127.0.0.1", .port = port});
    alice_uri = alice.node->local_uri(alice.session);
    bob.session =
        bob.node->open_session({.secure = tls, .host = "client.invalid", .port = std::nullopt});
    bob.node->set_remote_path(bob.session, {alice_uri});
  }

  /// Bob connects, binds his session and sends the empty SEND that binds Alice's (RFC 4975
  /// §5.4); returns once Alice has answered it.
  void meet() {
    const auto connection = bob.node->connect(alice_uri, alice_fingerprint);
    ASSERT_TRUE(connection) << connection.error().message();
    bob.node->bind(bob.session, *connection);
    const auto hello = finished(bob, bob.node->send_empty(bob.session));
    ASSERT_TRUE(hello);
    ASSERT_EQ(hello->outcome, send_outcome::delivered);
  }
};

/// Bob says hello, Alice replies; each gets the other's text, each sender hears it arrived.
void exchange_text(two_nodes& nodes) {
  side& alice = nodes.alice;
  side& bob = nodes.bob;
  const auto hello = bob.node->send(bob.session, text_message("hello"));
  const auto at_alice = received(alice, "hello");
  ASSERT_TRUE(at_alice);
  EXPECT_EQ(at_alice->session, alice.session);
  EXPECT_EQ(at_alice->head.content_type(), "text/plain");

  const auto reply = alice.node->send(alice.session, text_message("hello, Bob"));
  const auto at_bob = received(bob, "hello, Bob");
  ASSERT_TRUE(at_bob);
  EXPECT_EQ(at_bob->session, bob.session);

  for (auto [sender, message] : {std::pair{&bob, hello}, std::pair{&alice, reply}}) {
    const auto outcome = finished(*sender, message);
    ASSERT_TRUE(outcome);
    EXPECT_EQ(outcome->outcome, send_outcome::delivered);
    EXPECT_EQ(outcome->status, 200);
  }
}

/// Bob sends the large test file; Alice hashes it as it streams in.
void send_big_file(two_nodes& nodes) {
  side& alice = nodes.alice;
  side& bob = nodes.bob;
  const auto size = big_size();
  file_sink sink;
  alice.on_piece = [&sink](const events::message_piece& piece) { sink.take(piece); };

  const auto file = bob.node->send(bob.session, file_message(size));
  const auto started = wait_for<events::message_started>(alice);
  ASSERT_TRUE(started);
  EXPECT_EQ(started->size, size);
  const auto completed = wait_for<events::message_completed>(
      alice,
      [&](const events::message_completed& c) { return c.message_id == started->message_id; });
  alice.on_piece = nullptr;
  ASSERT_TRUE(completed);
  EXPECT_EQ(completed->size, size);
  EXPECT_EQ(sink.received, size);
  EXPECT_TRUE(sink.in_order);
  EXPECT_EQ(sink.hash.finish(), pseudo_random_digest(size));

  const auto outcome = finished(bob, file);
  ASSERT_TRUE(outcome);
  EXPECT_EQ(outcome->outcome, send_outcome::delivered);
  EXPECT_EQ(outcome->status, 200);
}

/// Writes `text` to a fresh file that is removed again at the end of the scope.
struct temporary_file {
  std::filesystem::path path;
  explicit temporary_file(const std::string& text)
      : path(std::filesystem::temp_directory_path() /
             ("node_test_" + std::to_string(::getpid()) + ".pem")) {
    std::ofstream(path, std::ios::binary) << text;
  }
  ~temporary_file() {
    std::error_code ignored;
    std::filesystem::remove(path, ignored);
  }
};

// --- Tests --------------------------------------------------------------------------------

TEST(Node, TextBothWaysOverTcp) {
  two_nodes nodes(false);
  ASSERT_NO_FATAL_FAILURE(nodes.meet());
  exchange_text(nodes);
}

TEST(Node, TextBothWaysOverTls) {
  two_nodes nodes(true);
  ASSERT_NO_FATAL_FAILURE(nodes.meet());
  exchange_text(nodes);
}

TEST(Node, BigFileOverTcp) {
  two_nodes nodes(false);
  ASSERT_NO_FATAL_FAILURE(nodes.meet());
  send_big_file(nodes);
}

TEST(Node, BigFileOverTlsInChunksOfFourMebibytes) {
  node::options bob_settings;
  bob_settings.engine.chunk_ceiling = 4 * mib;
  two_nodes nodes(true, bob_settings);
  ASSERT_NO_FATAL_FAILURE(nodes.meet());
  send_big_file(nodes);
}

// RFC 4975 §7.1.1: chunks are interruptible so that a chat line need not wait for a file.
TEST(Node, ChatLineOvertakesFileTransfer) {
  two_nodes nodes(false);
  ASSERT_NO_FATAL_FAILURE(nodes.meet());
  side& alice = nodes.alice;
  side& bob = nodes.bob;
  constexpr std::uint64_t size = 64 * mib;
  file_sink sink;
  alice.on_piece = [&sink](const events::message_piece& piece) { sink.take(piece); };

  // Paced at 1 ms per read of at most 64 KiB: at least a second for the whole file.
  const auto file = bob.node->send(bob.session, file_message(size, 1ms));
  ASSERT_TRUE(wait_for<events::message_piece>(alice));
  // bytes_sent is 0 once a message has finished, so this also says it has not.
  const auto sent = bob.node->bytes_sent(file);
  ASSERT_GT(sent, 0u);
  ASSERT_LT(sent, size) << "the file was out before the chat line";
  const auto line = bob.node->send(bob.session, text_message("still there?"));

  const auto completed = wait_for<events::message_completed>(alice);
  alice.on_piece = nullptr;
  ASSERT_TRUE(completed);
  EXPECT_EQ(completed->size, size);
  EXPECT_EQ(sink.received, size);
  EXPECT_EQ(sink.hash.finish(), pseudo_random_digest(size));
  const auto line_at = index_of<events::message_received>(
      alice.log, [](const events::message_received& m) { return m.body == "still there?"; });
  EXPECT_GE(line_at, 0) << "the chat line did not arrive before the file was complete";
  EXPECT_LT(line_at, index_of<events::message_completed>(alice.log));

  for (const auto message : {line, file}) {
    const auto outcome = finished(bob, message);
    ASSERT_TRUE(outcome);
    EXPECT_EQ(outcome->outcome, send_outcome::delivered);
  }
}

// RFC 8122: the certificate must match the fingerprint from SDP. A refused client does not
// stop the listener.
TEST(Node, WrongFingerprintIsRefused) {
  two_nodes nodes(true);
  ASSERT_TRUE(nodes.alice_fingerprint);
  auto wrong = *nodes.alice_fingerprint;
  wrong.digest.front() ^= 0x01;
  const auto refused = nodes.bob.node->connect(nodes.alice_uri, wrong);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), make_error_code(net_errc::fingerprint_mismatch));

  ASSERT_NO_FATAL_FAILURE(nodes.meet());
  exchange_text(nodes);
}

// RFC 4975 §5.4: without a fingerprint, the certificate must be valid for the URI's host.
TEST(Node, TlsWithoutFingerprintNeedsTrustedCertificate) {
  two_nodes nodes(true);
  const auto refused = nodes.bob.node->connect(nodes.alice_uri, std::nullopt);
  ASSERT_FALSE(refused) << "a self-signed certificate was accepted without a fingerprint";
  EXPECT_NE(refused.error(), make_error_code(net_errc::fingerprint_mismatch));

  // The same listener is accepted by a client that trusts Alice's certificate as its CA
  // (it names IP:127.0.0.1): the refusal above was for want of trust, nothing else.
  const temporary_file ca(nodes.alice_identity.certificate_pem);
  node::options trusting;
  trusting.ca_file = ca.path.string();
  node carol(trusting);
  const auto accepted = carol.connect(nodes.alice_uri, std::nullopt);
  EXPECT_TRUE(accepted) << accepted.error().message();
}

TEST(Node, SenderAbortsFile) {
  two_nodes nodes(false);
  ASSERT_NO_FATAL_FAILURE(nodes.meet());
  side& alice = nodes.alice;
  side& bob = nodes.bob;
  const auto size = 256 * mib;
  file_sink sink;
  alice.on_piece = [&sink](const events::message_piece& piece) { sink.take(piece); };

  const auto file = bob.node->send(bob.session, file_message(size, 1ms));
  const auto started = wait_for<events::message_started>(alice);
  ASSERT_TRUE(started);
  ASSERT_TRUE(wait_for<events::message_piece>(alice));
  ASSERT_GT(bob.node->bytes_sent(file), 0u) << "the file is not in progress";
  bob.node->abort(file);
  const auto outcome = finished(bob, file);
  ASSERT_TRUE(outcome);
  EXPECT_EQ(outcome->outcome, send_outcome::aborted);

  const auto aborted = wait_for<events::message_aborted>(alice);
  ASSERT_TRUE(aborted);
  EXPECT_EQ(aborted->message_id, started->message_id);
  EXPECT_EQ(aborted->session, alice.session);

  // The connection goes on; the file does not complete (a later message flushes it out).
  const auto after = bob.node->send(bob.session, text_message("never mind"));
  ASSERT_TRUE(received(alice, "never mind"));
  alice.on_piece = nullptr;
  EXPECT_EQ(count<events::message_completed>(alice.log), 0);
  EXPECT_LT(sink.received, size);
  const auto after_outcome = finished(bob, after);
  ASSERT_TRUE(after_outcome);
  EXPECT_EQ(after_outcome->outcome, send_outcome::delivered);
}

TEST(Node, PeerGoneFailsTransfer) {
  two_nodes nodes(false);
  ASSERT_NO_FATAL_FAILURE(nodes.meet());
  side& alice = nodes.alice;
  side& bob = nodes.bob;
  const auto file = bob.node->send(bob.session, file_message(256 * mib, 1ms));
  ASSERT_TRUE(wait_for<events::message_piece>(alice));
  alice.node.reset();

  const auto outcome = finished(bob, file);
  ASSERT_TRUE(outcome);
  EXPECT_EQ(outcome->outcome, send_outcome::failed);
  EXPECT_EQ(outcome->status, 0);
  const auto closed = wait_for<events::session_closed>(bob);
  ASSERT_TRUE(closed);
  EXPECT_EQ(closed->session, bob.session);
  ASSERT_TRUE(wait_for<connection_closed>(bob));
  // endpoint.hpp: the session's unfinished messages have their events before session_closed.
  EXPECT_LT(index_of<events::send_finished>(
                bob.log, [file](const events::send_finished& f) { return f.message == file; }),
            index_of<events::session_closed>(bob.log));
}

// RFC 4975 §5.4: sessions may share a connection; the To-Path picks the session.
TEST(Node, TwoSessionsShareOneConnection) {
  two_nodes nodes(false);
  side& alice = nodes.alice;
  side& bob = nodes.bob;
  const auto alice_second = alice.node->open_session({.host = "127.0.0.1", .port = nodes.port});
  const auto bob_second = bob.node->open_session({.host = "client.invalid", .port = std::nullopt});
  bob.node->set_remote_path(bob_second, {alice.node->local_uri(alice_second)});

  const auto connection = bob.node->connect(nodes.alice_uri, std::nullopt);
  ASSERT_TRUE(connection) << connection.error().message();
  for (const auto session : {bob.session, bob_second}) {
    bob.node->bind(session, *connection);
    const auto hello = finished(bob, bob.node->send_empty(session));
    ASSERT_TRUE(hello);
    ASSERT_EQ(hello->outcome, send_outcome::delivered);
  }

  bob.node->send(bob.session, text_message("to the first"));
  bob.node->send(bob_second, text_message("to the second"));
  const auto first = received(alice, "to the first");
  const auto second = received(alice, "to the second");
  ASSERT_TRUE(first && second);
  EXPECT_EQ(first->session, alice.session);
  EXPECT_EQ(second->session, alice_second);

  alice.node->send(alice_second, text_message("from the second"));
  alice.node->send(alice.session, text_message("from the first"));
  const auto back_second = received(bob, "from the second");
  const auto back_first = received(bob, "from the first");
  ASSERT_TRUE(back_first && back_second);
  EXPECT_EQ(back_first->session, bob.session);
  EXPECT_EQ(back_second->session, bob_second);

  EXPECT_EQ(count<connection_opened>(alice.log), 1);
  EXPECT_EQ(count<connection_opened>(bob.log), 1);
}

// Found by NothingLost.ThroughTwoRelaysWithCuts (tests/net/nothing_lost_test.cpp): a
// relay_server's destructor waited forever for its I/O thread. A TLS handshake that was under
// way when the node (or relay server) began to stop finished afterwards, and its connection was
// served with nothing left to close it. The client here holds its handshake at the server's
// Finished until the listener is gone, then completes it.
TEST(Node, DefectHandshakeEndingDuringStopHangsTheDestructor) {
  node::options settings;
  settings.identity = identity("127.0.0.1");
  auto listening = std::make_unique<node>(settings);
  const auto port = listening->listen("127.0.0.1", 0, true);
  ASSERT_TRUE(port) << port.error().message();
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(*port);
  const auto dial = [&] {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) {
      return fd;
    }
    if (fd >= 0) ::close(fd);
    return -1;
  };
  const int fd = dial();
  ASSERT_GE(fd, 0) << std::strerror(errno);

  // The client's side of the handshake runs through memory, so the test decides when each of
  // its flights goes out: the ClientHello now; when the server's flight has come back, the
  // server is mid-handshake, waiting for the client's Finished.
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> context(SSL_CTX_new(TLS_client_method()),
                                                            &SSL_CTX_free);
  std::unique_ptr<SSL, decltype(&SSL_free)> tls(SSL_new(context.get()), &SSL_free);
  BIO* in = BIO_new(BIO_s_mem());
  BIO* out = BIO_new(BIO_s_mem());
  SSL_set_bio(tls.get(), in, out);  // tls owns both
  SSL_set_verify(tls.get(), SSL_VERIFY_NONE, nullptr);
  const auto flush = [&] {
    char buffer[16 * 1024];
    for (int n; (n = BIO_read(out, buffer, sizeof buffer)) > 0;)
      ASSERT_EQ(::send(fd, buffer, static_cast<std::size_t>(n), MSG_NOSIGNAL), n);
  };
  const auto take = [&] {
    char buffer[16 * 1024];
    pollfd readable{fd, POLLIN, 0};
    ASSERT_EQ(::poll(&readable, 1, static_cast<int>(patience / 1ms)), 1);
    const auto n = ::recv(fd, buffer, sizeof buffer, 0);
    ASSERT_GT(n, 0);
    BIO_write(in, buffer, static_cast<int>(n));
  };
  ASSERT_EQ(SSL_connect(tls.get()), -1);
  ASSERT_NO_FATAL_FAILURE(flush());
  ASSERT_NO_FATAL_FAILURE(take());

  // The node stops on another thread; once its listener refuses connections, `stop` has run.
  auto destroyed = std::make_shared<std::atomic<bool>>(false);
  std::thread([stopping = std::move(listening), destroyed]() mutable {
    stopping.reset();
    *destroyed = true;
  }).detach();
  const auto deadline = std::chrono::steady_clock::now() + patience;
  for (int probe; (probe = dial()) >= 0;) {
    ::close(probe);
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the listener stays open";
  }

  // Now the handshake completes; the node must not serve the connection but end.
  while (SSL_connect(tls.get()) != 1) {
    ASSERT_EQ(SSL_get_error(tls.get(), -1), SSL_ERROR_WANT_READ);
    ASSERT_NO_FATAL_FAILURE(take());
  }
  ASSERT_NO_FATAL_FAILURE(flush());
  while (!*destroyed && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  EXPECT_TRUE(*destroyed)
      << "the node's destructor hangs while a connection it accepted late stays open";
  tls.reset();
  ::close(fd);  // with the defect, this lets the destructor end
  while (!*destroyed)
    std::this_thread::sleep_for(10ms);
}

}  // namespace
}  // namespace msrp::net
