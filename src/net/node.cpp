// The network edge: Asio coroutines moving bytes between sockets and the protocol cores (the
// endpoint of a node, the relay of a relay server).
// This is the one translation unit that includes Asio (STYLE §5; compile time, DEVELOPERS.md).
#include "msrp/net/node.hpp"

#include "msrp/net/hash.hpp"
#include "msrp/net/relay_server.hpp"

#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>

#include <array>
#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ssl.hpp>
#include <condition_variable>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <thread>

namespace msrp::net {
namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;

// Errors are values in the I/O loops as in the core (STYLE §5).
constexpr auto use = asio::as_tuple(asio::use_awaitable);

class category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "msrp.net"; }
  std::string message(int value) const override {
    switch (static_cast<net_errc>(value)) {
      case net_errc::fingerprint_mismatch:
        return "peer certificate does not match the SDP fingerprint";
      case net_errc::no_certificate:
        return "TLS needs a certificate";
      case net_errc::resolve_failed:
        return "host name did not resolve";
      case net_errc::connect_timeout:
        return "connection timed out";
      case net_errc::write_timeout:
        return "peer stopped reading";
    }
    return "unknown network error";
  }
};

/// A CSPRNG for session-ids, transaction ids and Message-IDs (RFC 4975 §14.1): OpenSSL's,
/// drawn 512 bytes at a time per thread. Each RAND_bytes call takes a lock and asks the kernel
/// for the process id (a fork check); drawn 8 bytes at a time, that was a quarter of the
/// relay's CPU per relayed message. A child forked from a thread draws afresh.
std::uint64_t secure_random() {
  thread_local std::array<std::uint64_t, 64> pool;
  thread_local std::size_t left = 0;
  static const int forks_draw_afresh = ::pthread_atfork(nullptr, nullptr, [] { left = 0; });
  (void)forks_draw_afresh;
  if (left == 0) {
    if (RAND_bytes(reinterpret_cast<unsigned char*>(pool.data()), sizeof pool) != 1) std::abort();
    left = pool.size();
  }
  return pool[--left];
}

/// The digest of the certificate the peer presented on `ssl`, or empty.
std::optional<std::vector<std::uint8_t>> peer_digest(SSL* ssl, std::string_view hash) {
  X509* certificate = SSL_get1_peer_certificate(ssl);
  if (!certificate) return std::nullopt;
  unsigned char* der = nullptr;
  const int length = i2d_X509(certificate, &der);
  X509_free(certificate);
  if (length <= 0) return std::nullopt;
  auto digest = certificate_digest_der(
      std::span<const std::uint8_t>(der, static_cast<std::size_t>(length)), hash);
  OPENSSL_free(der);
  if (!digest) return std::nullopt;
  return *digest;
}

bool matches(SSL* ssl, const fingerprint& expected) {
  const auto digest = peer_digest(ssl, expected.hash_function);
  return digest && *digest == expected.digest;
}

void use_identity(ssl::context& context, const certificate& identity) {
  context.use_certificate_chain(asio::buffer(identity.certificate_pem));
  context.use_private_key(asio::buffer(identity.private_key_pem), ssl::context::pem);
}

}  // namespace

const std::error_category& net_category() noexcept {
  static const category instance;
  return instance;
}

namespace {

/// The connection machinery a node and a relay server share (STYLE §5): listeners, outgoing
/// connections, and per connection a reader and a writer coroutine around a protocol core,
/// plus a watchdog for the core's deadlines. `Derived` supplies the core and what is done
/// with its events:
///   core()                        the endpoint or relay (receive, output, consume_output,
///                                 advance, next_deadline, close_connection)
///   collect()                     after every step: take the core's events and actions
///   wake_ready()                  then: wake() the connections with output or input to move
///   wants_input(id)               false while the core holds the connection's input back
///   admits_handshake()            false if an accepted TLS client may not start its handshake
///   opened(id, peer, listener)    a connection was established
///   closed(id, error)             a connection ended
template <class Derived>
struct transport {
  /// Where a connection's writer, and its reader while paused, sleep until woken. One timer
  /// each: arming a timer cancels its other waits, so with one timer for both a paused reader
  /// and an idle writer would wake each other for as long as the pause lasted.
  struct alarms {
    explicit alarms(asio::io_context& io) : reader(io), writer(io) {}
    asio::steady_timer reader, writer;
    void ring() {
      reader.cancel();
      writer.cancel();
    }
  };

  struct connection {
    std::shared_ptr<alarms> wake;
    std::function<void()> close_socket;
    tcp::socket* socket = nullptr;  // plain TCP only: for `flush`; the coroutines own it
    bool writer_parked = false;     // the writer sleeps with nothing to write
    std::error_code error{};        // the first reason it ended
    bool closing = false;
    bool finish = false;  // close once the output is written
    int running = 2;      // reader and writer
  };

  /// Where an accepted connection came in.
  struct listener_info {
    bool tls = false;
    std::uint16_t port = 0;
  };

  /// How an accepted TLS client is judged once its handshake is done: nullopt drops it,
  /// otherwise whether its certificate verified against our CAs.
  using client_check = std::function<std::optional<bool>(SSL*)>;

  asio::io_context io{1};
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  ssl::context server_tls{ssl::context::tls_server};
  ssl::context client_tls{ssl::context::tls_client};
  std::chrono::milliseconds connect_timeout;
  std::chrono::milliseconds write_timeout;
  std::map<connection_id, connection> connections;
  std::size_t handshakes = 0;  // accepted TLS connections whose handshake is in progress
  /// What a reader has just read, until the core has it. One for all connections: a reader
  /// waits holding no buffer, and fills and empties this one with no wait in between (one I/O
  /// thread; `read_some` returns to the reader without other handlers running), so an idle
  /// connection costs no read buffer.
  std::vector<char> read_buffer = std::vector<char>(64 * 1024);
  std::vector<std::shared_ptr<tcp::acceptor>> acceptors;
  asio::steady_timer watchdog{io};
  bool stopping = false;
  std::thread thread;

  transport(const std::optional<certificate>& identity, const std::string& ca_file,
            std::chrono::milliseconds connect, std::chrono::milliseconds write)
      : connect_timeout(connect), write_timeout(write) {
    for (auto* context : {&server_tls, &client_tls}) {
      context->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                           ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                           ssl::context::no_tlsv1_1);
      // OpenSSL frees the record buffers of a connection with nothing in them: most of a
      // relay's connections are idle.
      SSL_CTX_set_mode(context->native_handle(), SSL_MODE_RELEASE_BUFFERS);
      if (identity) use_identity(*context, *identity);
      boost::system::error_code ignored;
      if (ca_file.empty()) {
        context->set_default_verify_paths(ignored);
      } else {
        context->load_verify_file(ca_file, ignored);
      }
    }
    // A listener asks for a client certificate to check it against the SDP fingerprint or
    // the CAs; whether one is required is decided after the handshake.
    server_tls.set_verify_mode(ssl::verify_peer);
    server_tls.set_verify_callback([](bool, ssl::verify_context&) { return true; });
  }

  Derived& derived() { return static_cast<Derived&>(*this); }

  /// Starts the I/O thread; the derived class calls it once it is fully built.
  void start() {
    asio::co_spawn(io, run_watchdog(), asio::detached);
    thread = std::thread([this] { io.run(); });
  }

  /// Stops the I/O thread; the derived class calls it first thing in its destructor.
  void stop() {
    asio::post(io, [this] {
      stopping = true;
      for (auto& acceptor : acceptors)
        acceptor->close();
      for (auto& [id, c] : connections)
        c.close_socket();
      watchdog.cancel();
      work.reset();
    });
    thread.join();
  }

  /// Runs `f` on the I/O thread and returns its result.
  template <class F>
  auto on_io(F f) -> decltype(f()) {
    std::packaged_task<decltype(f())()> task(std::move(f));
    auto done = task.get_future();
    asio::post(io, [&task] { task(); });
    return done.get();
  }

  /// Runs what is due, hands the core's events on and wakes the writers and paused readers
  /// that have something to do.
  void drain() {
    derived().core().advance(clock::now());
    derived().collect();
    derived().wake_ready();
    derived().collect();  // what output written in `wake_ready` let a paused sender pass on
  }

  /// Wakes the writer and, if paused, the reader of `id`: they look again at the core.
  void wake(connection_id id) {
    const auto found = connections.find(id);
    if (found != connections.end()) found->second.wake->ring();
  }
  void wake_all() {
    for (auto& [id, c] : connections)
      c.wake->ring();
  }

  /// Writes `id`'s output at once if its writer sleeps and the socket takes all of it without
  /// waiting (plain TCP): a small frame goes out with no wake-up, no coroutine switch and no
  /// timer. Otherwise the writer is woken to write, wait for room, or find the error. A paused
  /// reader is woken either way: its input may flow again.
  void flush(connection_id id) {
    const auto found = connections.find(id);
    if (found == connections.end()) return;
    auto& c = found->second;
    c.wake->reader.cancel();
    if (c.socket && c.writer_parked && !c.closing && !c.finish) {
      auto& core = derived().core();
      boost::system::error_code error;
      if (const auto out = core.output(id); !out.empty()) {
        const auto n = write_now(*c.socket, out, error);
        if (n > 0) core.consume_output(id, n);
      }
      if (!error && core.output(id).empty()) return;
    }
    c.wake->writer.cancel();
  }

  /// Closes `id` once its output is written.
  void finish(connection_id id) {
    const auto found = connections.find(id);
    if (found == connections.end()) return;
    found->second.finish = true;
    found->second.wake->ring();
  }

  asio::awaitable<void> run_watchdog() {
    for (;;) {
      // Sleep until the core's next deadline, and at most a second: new deadlines are
      // always later than that.
      auto next = clock::now() + std::chrono::seconds(1);
      if (const auto deadline = derived().core().next_deadline(); deadline && *deadline < next) {
        next = *deadline;
      }
      watchdog.expires_at(next);
      co_await watchdog.async_wait(use);
      if (stopping) co_return;
      drain();
    }
  }

  /// Called by the reader and the writer when they stop; the second one ends the connection.
  void stopped(connection_id id, std::error_code error) {
    auto& c = connections.at(id);
    if (!c.error && error) c.error = error;
    if (!c.closing) {
      c.closing = true;
      c.close_socket();
      c.wake->ring();
    }
    if (--c.running > 0) return;
    const auto reason = c.error;
    connections.erase(id);
    derived().core().close_connection(id);
    drain();
    derived().closed(id, reason);
  }

  /// Waits until `socket` has bytes (or has ended), holding no buffer meanwhile, then reads
  /// them into `read_buffer`. Returns the error that ended the connection, if any, and how many
  /// bytes are in `read_buffer` (none after a wake-up without data).
  asio::awaitable<std::pair<boost::system::error_code, std::size_t>> read_some(
      tcp::socket& socket) {
    const auto [waited] = co_await socket.async_wait(tcp::socket::wait_read, use);
    if (waited) co_return std::pair(waited, std::size_t{0});
    // Closed by us while the completion waited for its turn.
    if (!socket.is_open()) co_return std::pair(asio::error::operation_aborted, std::size_t{0});
    boost::system::error_code error;
    // Non-blocking, so a wake-up without data (would_block) cannot stall the I/O thread.
    if (!socket.non_blocking()) socket.non_blocking(true, error);
    const auto n = error ? 0 : socket.read_some(asio::buffer(read_buffer), error);
    if (error == asio::error::would_block) error.clear();
    co_return std::pair(error, n);
  }

  /// The same over TLS. Bytes already received may wait inside the stream (Asio's input
  /// buffer, OpenSSL's BIO), where waiting on the socket would not see them, so waiting here is
  /// reading one byte through the stream. The rest of that TLS record, decrypted by now
  /// (SSL_pending), follows without another wait; SSL_read then only copies, and neither
  /// reads nor writes. Later records are the next call's, which finds them without waiting.
  asio::awaitable<std::pair<boost::system::error_code, std::size_t>> read_some(
      ssl::stream<tcp::socket>& stream) {
    char first = 0;
    const auto [error, n] = co_await stream.async_read_some(asio::buffer(&first, 1), use);
    if (error || n == 0) co_return std::pair(error, std::size_t{0});
    read_buffer[0] = first;
    std::size_t filled = 1;
    SSL* ssl = stream.native_handle();
    while (filled < read_buffer.size() && SSL_pending(ssl) > 0) {
      const int copied =
          SSL_read(ssl, read_buffer.data() + filled, static_cast<int>(read_buffer.size() - filled));
      if (copied <= 0) break;  // cannot happen with bytes pending; the next read would say why
      filled += static_cast<std::size_t>(copied);
    }
    co_return std::pair(boost::system::error_code{}, filled);
  }

  /// Writes what the socket takes of `out` now, without waiting (none if it would block). Most
  /// writes end here, with no wait and no timer armed for them.
  static std::size_t write_now(tcp::socket& socket, std::string_view out,
                               boost::system::error_code& error) {
    if (!socket.non_blocking()) socket.non_blocking(true, error);
    const auto n = error ? 0 : socket.write_some(asio::buffer(out.data(), out.size()), error);
    if (error == asio::error::would_block) error.clear();
    return n;
  }

  /// Over TLS nothing is written here: a TLS write that would block has already consumed its
  /// bytes into a record, so TLS writes always go through the stream's own wait.
  static std::size_t write_now(ssl::stream<tcp::socket>&, std::string_view,
                               boost::system::error_code&) {
    return 0;
  }

  template <class Stream>
  asio::awaitable<void> reader(connection_id id, std::shared_ptr<Stream> stream,
                               std::shared_ptr<alarms> wake) {
    std::error_code error;
    for (;;) {
      // Back-pressure: a core that cannot pass input on yet is not given more.
      while (!derived().wants_input(id) && !connections.at(id).closing) {
        wake->reader.expires_at(asio::steady_timer::time_point::max());
        co_await wake->reader.async_wait(use);
      }
      if (connections.at(id).closing) break;
      const auto [failure, n] = co_await read_some(*stream);
      if (n > 0) {
        derived().core().advance(clock::now());
        derived().core().receive(id, std::string_view(read_buffer.data(), n));
        drain();
      }
      if (failure) {
        if (failure != asio::error::eof && failure != asio::error::operation_aborted &&
            failure != ssl::error::stream_truncated) {
          error = failure;
        }
        break;
      }
    }
    stopped(id, error);
  }

  template <class Stream>
  asio::awaitable<void> writer(connection_id id, std::shared_ptr<Stream> stream,
                               std::shared_ptr<alarms> wake) {
    std::error_code error;
    for (;;) {
      if (connections.at(id).closing) break;
      derived().core().advance(clock::now());
      const auto out = derived().core().output(id);
      if (out.empty()) {
        auto& c = connections.at(id);  // map entries stay put; this one outlives the writer
        if (c.finish) break;
        c.writer_parked = true;
        wake->writer.expires_at(asio::steady_timer::time_point::max());
        co_await wake->writer.async_wait(use);
        c.writer_parked = false;
        continue;
      }
      boost::system::error_code failure;
      auto n = write_now(*stream, out, failure);
      const bool at_once = n > 0;
      if (!failure && n == 0) {
        // A write that stalls (the peer stopped reading) ends the connection.
        asio::steady_timer stall(io, write_timeout);
        const auto written =
            co_await (asio::async_write(*stream, asio::buffer(out.data(), out.size()), use) ||
                      stall.async_wait(use));
        if (written.index() == 1) {
          error = net_errc::write_timeout;
          break;
        }
        std::tie(failure, n) = std::get<0>(written);
      }
      if (failure) {
        error = failure;
        break;
      }
      derived().core().advance(clock::now());
      derived().core().consume_output(id, n);
      drain();
      // Written without a wait: let the other connections and the core's callers have their
      // turn before writing more (a core with output ready at every call would hold the thread).
      if (at_once) co_await asio::post(io, use);
    }
    stopped(id, error);
  }

  /// Starts serving an established connection as `id`.
  template <class Stream>
  void serve(connection_id id, std::shared_ptr<Stream> stream) {
    auto wake = std::make_shared<alarms>(io);
    auto& c = connections
                  .emplace(id, connection{wake,
                                          [stream] {
                                            boost::system::error_code ignored;
                                            stream->lowest_layer().close(ignored);
                                          }})
                  .first->second;
    if constexpr (std::is_same_v<Stream, tcp::socket>) c.socket = stream.get();
    asio::co_spawn(io, reader(id, stream, wake), asio::detached);
    asio::co_spawn(io, writer(id, stream, wake), asio::detached);
  }

  static std::string describe(const tcp::endpoint& where) {
    const auto address = where.address();
    return (address.is_v6() ? "[" + address.to_string() + "]" : address.to_string()) + ':' +
           std::to_string(where.port());
  }

  /// A listening socket on `address` and `port` (0: any free port); on the I/O thread.
  result<std::shared_ptr<tcp::acceptor>> open_acceptor(const std::string& address,
                                                       std::uint16_t port) {
    boost::system::error_code error;
    const auto ip = asio::ip::make_address(address, error);
    if (error) return std::error_code(error);
    auto acceptor = std::make_shared<tcp::acceptor>(io);
    const tcp::endpoint where(ip, port);
    acceptor->open(where.protocol(), error);
    if (!error) acceptor->set_option(tcp::acceptor::reuse_address(true), error);
    if (!error && ip.is_v6()) acceptor->set_option(asio::ip::v6_only(true), error);
    if (!error) acceptor->bind(where, error);
    if (!error) acceptor->listen(asio::socket_base::max_listen_connections, error);
    if (error) return std::error_code(error);
    acceptors.push_back(acceptor);
    return acceptor;
  }

  /// Listens on `address` and `port` (0: any free port), with TLS if `tls`; returns the port.
  result<std::uint16_t> listen(const std::string& address, std::uint16_t port, bool tls) {
    return on_io([&]() -> result<std::uint16_t> {
      auto acceptor = open_acceptor(address, port);
      if (!acceptor) return acceptor.error();
      const auto bound = (*acceptor)->local_endpoint().port();
      asio::co_spawn(io, accept_loop(*acceptor, listener_info{tls, bound}), asio::detached);
      return bound;
    });
  }

  asio::awaitable<void> accept_loop(std::shared_ptr<tcp::acceptor> acceptor,
                                    listener_info listener) {
    for (;;) {
      auto [error, socket] = co_await acceptor->async_accept(use);
      if (error == asio::error::operation_aborted || !acceptor->is_open()) co_return;
      if (error) {
        // Out of descriptors (EMFILE, ENFILE) or memory: the connection stays in the backlog
        // and would fail again at once. Wait for connections to close instead of spinning.
        asio::steady_timer pause(io, std::chrono::milliseconds(100));
        co_await pause.async_wait(use);
        continue;
      }
      socket.set_option(tcp::no_delay(true));
      const auto peer = describe(socket.remote_endpoint(error));
      if (!listener.tls) {
        const auto id = derived().new_id();
        serve(id, std::make_shared<tcp::socket>(std::move(socket)));
        derived().opened(id, peer, listener, false);
        continue;
      }
      if (!derived().admits_handshake()) continue;  // closed at once
      ++handshakes;
      asio::co_spawn(io, accept_tls(std::move(socket), peer, listener), asio::detached);
    }
  }

  asio::awaitable<void> accept_tls(tcp::socket socket, std::string peer, listener_info listener) {
    auto stream = std::make_shared<ssl::stream<tcp::socket>>(std::move(socket), server_tls);
    asio::steady_timer limit(io, connect_timeout);
    const auto done =
        co_await (stream->async_handshake(ssl::stream_base::server, use) || limit.async_wait(use));
    --handshakes;
    if (done.index() == 1 || std::get<0>(std::get<0>(done))) co_return;  // dropped
    // A handshake that ends after `stop` closed the connections would be served with nothing
    // left to close it, and the I/O thread would never end.
    if (stopping) co_return;
    const auto verdict = derived().check_client(stream->native_handle());
    if (!verdict) co_return;
    const auto id = derived().new_id();
    serve(id, stream);
    derived().opened(id, peer, listener, *verdict);
  }

  /// Connects to the host and port of `target` (TLS for msrps), or to `address` when given,
  /// and serves the connection as `id`, verifying the peer by `peer` when given (RFC 8122),
  /// otherwise by CA and the host name of `target`.
  asio::awaitable<std::error_code> connect(connection_id id, uri target,
                                           std::optional<fingerprint> peer,
                                           std::optional<node::peer_address> address = {}) {
    tcp::resolver resolver(io);
    // No co_await inside a conditional expression: g++ 12 miscompiles it.
    const auto host = address ? address->host : target.host();
    const auto port = address ? address->port : target.port().value_or(2855);
    const auto flags = address ? tcp::resolver::numeric_host : tcp::resolver::flags{};
    const auto [resolve_error, found] =
        co_await resolver.async_resolve(host, std::to_string(port), flags, use);
    if (resolve_error || found.empty()) co_return make_error_code(net_errc::resolve_failed);
    tcp::socket socket(io);
    asio::steady_timer limit(io, connect_timeout);
    const auto connected =
        co_await (asio::async_connect(socket, found, use) || limit.async_wait(use));
    if (connected.index() == 1) co_return make_error_code(net_errc::connect_timeout);
    if (const auto error = std::get<0>(std::get<0>(connected))) co_return error;
    // As in accept_tls: a connection made after `stop` would never be closed.
    if (stopping) co_return std::make_error_code(std::errc::operation_canceled);
    socket.set_option(tcp::no_delay(true));
    boost::system::error_code ignored;
    const auto where = describe(socket.remote_endpoint(ignored));
    if (!target.is_secure()) {
      serve(id, std::make_shared<tcp::socket>(std::move(socket)));
      derived().opened(id, where, std::nullopt, false);
      co_return std::error_code{};
    }
    auto stream = std::make_shared<ssl::stream<tcp::socket>>(std::move(socket), client_tls);
    if (peer) {
      // RFC 8122: the certificate may be self-signed; its fingerprint is what counts.
      stream->set_verify_mode(ssl::verify_peer);
      stream->set_verify_callback([](bool, ssl::verify_context&) { return true; });
    } else {
      // RFC 4975 §5.4: the certificate must be valid and name the URI's host; RFC 4976 §9.2:
      // also for a relay found through DNS ("The SubjectAltName in the certificate received
      // from a relay MUST match the hostname part of the URI"), not the SRV target's name.
      stream->set_verify_mode(ssl::verify_peer);
      stream->set_verify_callback(ssl::host_name_verification(target.host()));
      SSL_set_tlsext_host_name(stream->native_handle(), target.host().c_str());
    }
    const auto shaken =
        co_await (stream->async_handshake(ssl::stream_base::client, use) || limit.async_wait(use));
    if (shaken.index() == 1) co_return make_error_code(net_errc::connect_timeout);
    if (const auto error = std::get<0>(std::get<0>(shaken))) co_return error;
    if (peer && !matches(stream->native_handle(), *peer)) {
      co_return make_error_code(net_errc::fingerprint_mismatch);
    }
    if (stopping) co_return std::make_error_code(std::errc::operation_canceled);
    serve(id, stream);
    derived().opened(id, where, std::nullopt, false);
    co_return std::error_code{};
  }
};

}  // namespace

struct node::state : transport<node::state> {
  options settings;
  endpoint engine;
  connection_id next_connection = 1;
  std::vector<fingerprint> expected_clients;

  std::mutex mutex;
  std::condition_variable ready;
  std::deque<node_event> events;

  explicit state(options o)
      : transport(o.identity, o.ca_file, o.connect_timeout, o.write_timeout),
        settings(std::move(o)),
        engine(with_hash(settings.engine), secure_random) {
    start();
  }

  static endpoint::config with_hash(endpoint::config c) {
    if (!c.hash) c.hash = digest_hex;
    return c;
  }
  ~state() { stop(); }

  endpoint& core() { return engine; }
  bool wants_input(connection_id) const { return true; }
  bool admits_handshake() const { return true; }
  // A node has few connections, and the endpoint does not say which have output: all.
  void wake_ready() { wake_all(); }
  connection_id new_id() { return next_connection++; }

  void push(node_event e) {
    {
      std::lock_guard lock(mutex);
      events.push_back(std::move(e));
    }
    ready.notify_one();
  }

  void collect() {
    while (auto e = engine.next_event())
      push(std::move(*e));
  }

  /// RFC 8122: a TLS client whose certificate we were not told of is dropped.
  std::optional<bool> check_client(SSL* ssl) const {
    if (expected_clients.empty()) return false;
    const bool known = std::any_of(expected_clients.begin(), expected_clients.end(),
                                   [&](const fingerprint& f) { return matches(ssl, f); });
    return known ? std::optional<bool>(false) : std::nullopt;
  }

  void opened(connection_id id, const std::string& peer, std::optional<listener_info>, bool) {
    push(connection_opened{id, peer});
  }
  void closed(connection_id id, std::error_code error) { push(connection_closed{id, error}); }
};

struct relay_server::state : transport<relay_server::state> {
  /// Where answers to lookups, from any thread, find the server while it lives.
  struct mailbox {
    std::mutex mutex;
    state* server = nullptr;
  };

  options settings;
  relay engine;
  credential_service credentials;
  std::shared_ptr<mailbox> answers = std::make_shared<mailbox>();
  connection_id next_connection = 1;  // the relay numbers its outgoing connections from 2^62

  std::mutex mutex;
  std::condition_variable ready;
  std::deque<std::string> notices;

  state(options o, credential_service service)
      : transport(o.identity, o.ca_file, o.connect_timeout, o.write_timeout),
        settings(std::move(o)),
        engine(settings.engine, secure_random, digest_hex),
        credentials(std::move(service)) {
    answers->server = this;
    start();
  }
  ~state() {
    {
      std::lock_guard lock(answers->mutex);
      answers->server = nullptr;
    }
    stop();
  }

  relay& core() { return engine; }
  bool wants_input(connection_id id) const { return engine.wants_input(id); }
  /// A handshake in progress holds a socket as a connection does: it counts against
  /// max_connections (the relay closes a connection beyond it only once it is accepted).
  bool admits_handshake() const {
    return connections.size() + handshakes < settings.engine.max_connections;
  }
  void wake_ready() {
    while (const auto id = engine.next_ready())
      flush(*id);
  }
  connection_id new_id() { return next_connection++; }

  void push(std::string text) {
    {
      std::lock_guard lock(mutex);
      notices.push_back(std::move(text));
    }
    ready.notify_one();
  }

  void collect() {
    while (auto action = engine.next_action()) {
      if (auto* c = std::get_if<relay_actions::connect>(&*action)) {
        asio::co_spawn(io, reach(c->connection, c->target), asio::detached);
      } else if (auto* closing = std::get_if<relay_actions::close>(&*action)) {
        finish(closing->connection);
      } else if (auto* query = std::get_if<relay_actions::lookup>(&*action)) {
        credentials(*query, answerer(query->ticket));
      } else if (auto* n = std::get_if<relay_actions::notice>(&*action)) {
        push("connection " + std::to_string(n->connection) + ": " + n->text);
      }
    }
  }

  /// Hands the answer to lookup `ticket` to the relay on the I/O thread, if the server lives.
  credential_callback answerer(std::uint64_t ticket) {
    return [box = answers, ticket](credential_answer answer) {
      std::lock_guard lock(box->mutex);
      auto* server = box->server;
      if (!server) return;
      asio::post(server->io, [server, ticket, answer = std::move(answer)]() mutable {
        server->engine.credentials(ticket, std::move(answer));
        server->drain();
      });
    };
  }

  /// Opens the connection the relay asked for; a failure closes it in the relay.
  asio::awaitable<void> reach(connection_id id, uri target) {
    const auto error = co_await connect(id, target, std::nullopt);
    if (!error) co_return;
    push("connection " + std::to_string(id) + ": cannot reach " + target.to_string() + ": " +
         error.message());
    engine.close_connection(id);
    drain();
  }

  /// RFC 4976 §6.1, §6.3: a TLS client with a certificate rooted in a trusted CA is a relay.
  static std::optional<bool> check_client(SSL* ssl) {
    X509* certificate = SSL_get1_peer_certificate(ssl);
    if (!certificate) return false;
    X509_free(certificate);
    return SSL_get_verify_result(ssl) == X509_V_OK;
  }

  void opened(connection_id id, const std::string& peer, std::optional<listener_info> listener,
              bool verified) {
    engine.advance(clock::now());  // probation starts now, not at the last event
    if (listener) {
      engine.accept(id, peer_info{listener->tls, listener->port, verified, peer});
    } else {
      engine.connected(id);
    }
    drain();
  }
  void closed(connection_id, std::error_code) {}

  /// A minimal HTTP/1.1 responder for Prometheus scrapes: every request, whatever its path,
  /// gets the metrics, and the connection closes.
  asio::awaitable<void> serve_metrics(std::shared_ptr<tcp::acceptor> acceptor,
                                      std::function<std::string(const relay::stats&)> format) {
    for (;;) {
      auto [error, socket] = co_await acceptor->async_accept(use);
      if (error == asio::error::operation_aborted || !acceptor->is_open()) co_return;
      if (error) continue;
      asio::co_spawn(io, answer_scrape(std::move(socket), format), asio::detached);
    }
  }

  asio::awaitable<void> answer_scrape(tcp::socket socket,
                                      std::function<std::string(const relay::stats&)> format) {
    std::string request;
    asio::steady_timer limit(io, std::chrono::seconds(5));
    const auto read = co_await (
        asio::async_read_until(socket, asio::dynamic_buffer(request, 8192), "\r\n\r\n", use) ||
        limit.async_wait(use));
    if (read.index() == 1 || std::get<0>(std::get<0>(read))) co_return;
    const auto body = format(engine.statistics());
    const auto response =
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
        "Content-Length: " +
        std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
    co_await asio::async_write(socket, asio::buffer(response), use);
  }
};

node::node(options settings) : state_(std::make_unique<state>(std::move(settings))) {}

node::~node() = default;

session_handle node::open_session(const session_settings& settings) {
  return state_->on_io([&] { return state_->engine.open_session(settings); });
}

uri node::local_uri(session_handle session) {
  return state_->on_io([&] { return state_->engine.local_uri(session); });
}

void node::set_remote_path(session_handle session, std::vector<uri> path) {
  state_->on_io([&] {
    state_->engine.set_remote_path(session, std::move(path));
    state_->drain();
  });
}

void node::authenticate(session_handle session, uri relay, relay_account account,
                        std::optional<std::chrono::seconds> expires) {
  state_->on_io([&] {
    state_->engine.authenticate(session, std::move(relay), std::move(account), expires);
    state_->drain();
  });
}

std::vector<uri> node::local_path(session_handle session) {
  return state_->on_io([&] { return state_->engine.local_path(session); });
}

void node::bind(session_handle session, connection_id connection) {
  state_->on_io([&] {
    state_->engine.bind(session, connection);
    state_->drain();
  });
}

void node::close_session(session_handle session) {
  state_->on_io([&] {
    state_->engine.close_session(session);
    state_->drain();
  });
}

message_handle node::send(session_handle session, outgoing_message message) {
  return state_->on_io([&] {
    const auto handle = state_->engine.send(session, std::move(message));
    state_->drain();
    return handle;
  });
}

message_handle node::send_empty(session_handle session) {
  return state_->on_io([&] {
    const auto handle = state_->engine.send_empty(session);
    state_->drain();
    return handle;
  });
}

void node::abort(message_handle message) {
  state_->on_io([&] {
    state_->engine.abort(message);
    state_->drain();
  });
}

bool node::reject(session_handle session, std::string_view message_id, int status) {
  return state_->on_io([&] {
    const bool known = state_->engine.reject(session, message_id, status);
    state_->drain();
    return known;
  });
}

std::uint64_t node::bytes_sent(message_handle message) {
  return state_->on_io([&] { return state_->engine.bytes_sent(message); });
}

result<std::uint16_t> node::listen(const std::string& address, std::uint16_t port, bool tls) {
  if (tls && !state_->settings.identity) return make_error_code(net_errc::no_certificate);
  return state_->listen(address, port, tls);
}

void node::expect_client(const fingerprint& peer) {
  state_->on_io([&] { state_->expected_clients.push_back(peer); });
}

result<connection_id> node::connect(const uri& target, const std::optional<fingerprint>& peer,
                                    const std::optional<peer_address>& at) {
  auto& st = *state_;
  std::promise<result<connection_id>> done;
  asio::co_spawn(
      st.io,
      [&]() -> asio::awaitable<void> {
        const auto id = st.new_id();
        const auto error = co_await st.connect(id, target, peer, at);
        done.set_value(error ? result<connection_id>(error) : result<connection_id>(id));
      },
      asio::detached);
  return done.get_future().get();
}

void node::close(connection_id connection) {
  state_->on_io([&] {
    const auto found = state_->connections.find(connection);
    if (found != state_->connections.end()) found->second.close_socket();
  });
}

std::optional<node_event> node::wait_event(std::chrono::milliseconds timeout) {
  auto& st = *state_;
  std::unique_lock lock(st.mutex);
  if (!st.ready.wait_for(lock, timeout, [&] { return !st.events.empty(); })) return std::nullopt;
  auto next = std::move(st.events.front());
  st.events.pop_front();
  return next;
}

credential_service answer_at_once(credential_lookup lookup) {
  return [lookup = std::move(lookup)](const relay_actions::lookup& query,
                                      const credential_callback& done) {
    auto ha1 = lookup(query.username, query.realm, query.algorithm);
    done(ha1 ? credential_answer{lookup_outcome::found, std::move(*ha1)}
             : credential_answer{lookup_outcome::no_such_user, {}});
  };
}

relay_server::relay_server(options settings, credential_service credentials)
    : state_(std::make_unique<state>(std::move(settings), std::move(credentials))) {}

relay_server::~relay_server() = default;

result<std::uint16_t> relay_server::listen(const std::string& address, std::uint16_t port,
                                           bool tls) {
  auto& st = *state_;
  if (tls && !st.settings.identity) return make_error_code(net_errc::no_certificate);
  auto bound = st.listen(address, port, tls);
  if (bound) st.on_io([&] { st.engine.listening(*bound); });
  return bound;
}

std::optional<std::string> relay_server::wait_notice(std::chrono::milliseconds timeout) {
  auto& st = *state_;
  std::unique_lock lock(st.mutex);
  if (!st.ready.wait_for(lock, timeout, [&] { return !st.notices.empty(); })) return std::nullopt;
  auto next = std::move(st.notices.front());
  st.notices.pop_front();
  return next;
}

result<std::uint16_t> relay_server::serve_metrics(
    const std::string& address, std::uint16_t port,
    std::function<std::string(const relay::stats&)> format) {
  auto& st = *state_;
  return st.on_io([&]() -> result<std::uint16_t> {
    auto acceptor = st.open_acceptor(address, port);
    if (!acceptor) return acceptor.error();
    const auto bound = (*acceptor)->local_endpoint().port();
    asio::co_spawn(st.io, st.serve_metrics(*acceptor, std::move(format)), asio::detached);
    return bound;
  });
}

void relay_server::stop_listening() {
  state_->on_io([&] {
    for (auto& acceptor : state_->acceptors)
      acceptor->close();
  });
}

void relay_server::reconfigure(const relay::config& engine,
                               const std::optional<certificate>& identity) {
  auto& st = *state_;
  st.on_io([&] {
    st.engine.reconfigure(engine);
    st.settings.engine = engine;
    if (identity) {
      for (auto* context : {&st.server_tls, &st.client_tls})
        use_identity(*context, *identity);
    }
  });
}

relay::stats relay_server::statistics() {
  return state_->on_io([&] { return state_->engine.statistics(); });
}

}  // namespace msrp::net
