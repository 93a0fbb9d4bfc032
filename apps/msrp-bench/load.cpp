// The load generator's event loops (bench.hpp): one msrp::endpoint per connection, one Asio
// loop per thread. The one translation unit of msrp-bench that includes Asio.
//
// Why not net::node: a node runs one endpoint for all its connections, and the endpoint's
// advance() and next_deadline() walk all its connections and messages, which the node calls
// on every read and write; it also wakes every connection's writer after every step. Both
// cost O(connections) per event, O(n²) for the 20,000 connections of a scale run. Here each
// connection has a small endpoint of its own, so every step touches one connection, and only
// the one timer walks them all, five times a second.
//
// Per connection (a `link`) a reader coroutine feeds received bytes to its endpoint and a
// writer coroutine writes the endpoint's output (STYLE §5); `pump` hands the endpoint's events
// to the pair the link belongs to and wakes the writer. A pair's sender keeps `window`
// messages out; each is identified by a Content-Description header (`msrp-bench SEQ`) that
// every chunk carries, so the receiver finds what it should hold and checks it byte for byte.
//
// Threads: each loop (a `runner`) has its own io_context, thread, pairs, connections, counts
// and samples, and touches nothing of another's. They meet only in a `rendezvous` with run(),
// the calling thread: each says when its pairs are set up, when it has ended and whether it
// failed; run() starts every loop's measuring period at one time point, stops the others when
// one fails (both by posting to the loop's io_context), measures the process's CPU and the
// relay once, and adds the loops' outcomes up once their threads are joined.
#include <openssl/ssl.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <charconv>
#include <cmath>
#include <condition_variable>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>

#include "bench.hpp"
#include "msrp/endpoint.hpp"
#include "msrp/net/hash.hpp"
#include "msrp/net/tls.hpp"
#include "tally.hpp"

namespace msrp::bench {
namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

// Errors are values in the I/O loops (STYLE §5).
constexpr auto use = asio::as_tuple(asio::use_awaitable);
/// Each endpoint has one connection.
constexpr connection_id only = 1;
/// Open loop: the shortest sleep of the pacer (`runner::pace`).
constexpr auto pacing_step = 100us;

/// Something a coroutine waits for, once: `set` wakes it.
struct signal {
  explicit signal(asio::io_context& io) : timer(io, asio::steady_timer::time_point::max()) {}
  asio::awaitable<void> wait() {
    while (!fired)
      co_await timer.async_wait(use);
  }
  void set() {
    fired = true;
    timer.cancel();
  }
  asio::steady_timer timer;
  bool fired = false;
};

struct pair_state;

/// One connection with its endpoint and the one session on it.
struct link {
  link(asio::io_context& io, endpoint::config config, random_source random)
      : core(std::move(config), std::move(random)),
        wake(io, asio::steady_timer::time_point::max()),
        auth(io) {}
  endpoint core;
  session_handle session = 0;
  pair_state* pair = nullptr;  // a direct receiver's, once its sender is known
  bool sender = false;
  asio::steady_timer wake;  // the writer sleeps on it
  bool writer_idle = false;
  bool pumping = false;
  bool closed = false;
  std::function<void()> close_socket;
  signal auth;  // an AUTH exchange ended
  int auth_status = 0;
  std::string auth_comment;
};

/// A message sent and not yet settled.
struct record {
  clock::time_point sent_at;
  bool acked = false;     // the sender had its 200
  bool received = false;  // the receiver has it whole
  bool exact = true;      // what the receiver has is what was sent
};

/// A large message the receiver gets in pieces.
struct piecewise {
  std::uint64_t seq;
  std::uint64_t verified = 0;
  bool exact = true;
};

struct pair_state {
  pair_state(asio::io_context& io, std::size_t i) : index(i), matched(io) {}
  std::size_t index;
  link* sender = nullptr;
  link* receiver = nullptr;
  bool active = false;
  std::uint64_t next_seq = 0;
  std::unordered_map<std::uint64_t, record> open;             // by sequence number
  std::unordered_map<message_handle, std::uint64_t> handles;  // the sender's, to seq
  std::unordered_map<std::string, piecewise> incoming;        // by Message-ID
  signal matched;  // direct mode: the receiving side of the connection was accepted
};

std::uint32_t micros(clock::duration d) {
  return static_cast<std::uint32_t>(std::min<std::int64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(d).count(), UINT32_MAX));
}

/// The sequence number in a Content-Description header `msrp-bench SEQ`.
std::optional<std::uint64_t> sequence(const message& head) {
  constexpr std::string_view lead = "msrp-bench ";
  const auto value = head.header("Content-Description");
  if (!value || !value->starts_with(lead)) return std::nullopt;
  std::uint64_t seq = 0;
  const auto digits = value->substr(lead.size());
  const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), seq);
  if (error != std::errc{} || end != digits.data() + digits.size()) return std::nullopt;
  return seq;
}

/// What the loops share with run(), under one mutex.
struct rendezvous {
  std::mutex mutex;
  std::condition_variable changed;
  std::size_t set_up = 0;  // loops whose pairs are all set up
  std::size_t ended = 0;   // loops done (or stopped)
  exit_status status = ok;
  std::string error;  // the first fatal error of any loop

  /// Changes the counts under the lock and wakes run().
  template <class Change>
  void note(Change change) {
    {
      std::lock_guard lock(mutex);
      change();
    }
    changed.notify_all();
  }

  void fail(exit_status why, std::string message) {
    note([&] {
      if (status != ok) return;
      status = why;
      error = std::move(message);
    });
  }

  /// Waits until `done()` or a loop failed, at most until `deadline`; whether none failed.
  template <class Done>
  bool wait(Done done, clock::time_point deadline = clock::time_point::max()) {
    std::unique_lock lock(mutex);
    if (deadline == clock::time_point::max()) {
      changed.wait(lock, [&] { return status != ok || done(); });
    } else {
      changed.wait_until(lock, deadline, [&] { return status != ok || done(); });
    }
    return status == ok;
  }
};

/// One event loop and its share of the pairs: `loop` of `loops`.
struct runner {
  enum class phase { setup, measure, drain, done };

  const plan& p;
  rendezvous& shared;
  const std::size_t loop, loops;
  const std::size_t all_senders;  // sending pairs over all loops
  outcome report;                 // the counts of this loop's pairs
  asio::io_context io{1};
  ssl::context client_tls{ssl::context::tls_client};
  ssl::context server_tls{ssl::context::tls_server};
  std::mt19937_64 random{std::random_device{}()};
  pattern bodies;
  std::optional<uri> relay;
  std::vector<tcp::endpoint> targets;  // the relay's addresses
  std::shared_ptr<tcp::acceptor> acceptor;
  std::uint16_t listen_port = 0;
  std::map<std::uint16_t, pair_state*> awaiting;  // direct senders by local port
  std::map<std::uint16_t, link*> unclaimed;       // accepted, sender not known yet
  std::vector<std::unique_ptr<pair_state>> pairs;
  std::vector<std::unique_ptr<link>> links;
  phase stage = phase::setup;
  std::size_t next_pair = 0;
  std::size_t workers = 0;
  std::uint64_t outstanding = 0;
  std::string first_failure;
  clock::time_point period_start;
  std::vector<std::uint32_t> latencies, acks;
  asio::steady_timer ticker{io}, stage_timer{io}, pacer{io};
  std::vector<pair_state*> senders;  // open loop: this loop's sending pairs, taken in turn
  std::uint64_t paced = 0;           // open loop: this loop's messages of the period sent so far

  runner(const plan& plan, rendezvous& r, std::size_t i, std::size_t n, std::size_t sending)
      : p(plan), shared(r), loop(i), loops(n), all_senders(sending) {}

  // --- Failure and the end

  /// Ends the run of every loop, this one at once, the others through run().
  void fatal(exit_status status, std::string message) {
    shared.fail(status, std::move(message));
    finish();
  }

  /// Ends this loop: closes every connection and stops the timers; io.run() then returns.
  void finish() {
    if (stage == phase::done) return;
    stage = phase::done;
    for (auto& l : links) {
      if (!l->closed) {
        l->closed = true;
        // Not set yet while its TLS handshake runs: that ends on its own, seeing the stage.
        if (l->close_socket) l->close_socket();
      }
      l->wake.cancel();
      l->auth.set();
    }
    for (auto& pr : pairs)
      pr->matched.set();
    if (acceptor) acceptor->close();
    ticker.cancel();
    stage_timer.cancel();
    pacer.cancel();
  }

  // --- Links

  link& new_link(pair_state* pair, bool sender) {
    endpoint::config config;
    config.output_window = p.output_window;
    if (p.chunk_size > 0) config.chunk_ceiling = p.chunk_size;
    config.hash = net::digest_hex;
    config.transaction_timeout = p.transaction_timeout;
    links.push_back(std::make_unique<link>(io, config, [this] { return random(); }));
    auto& l = *links.back();
    l.pair = pair;
    l.sender = sender;
    return l;
  }

  template <class Stream>
  void serve(link& l, std::shared_ptr<Stream> stream) {
    l.close_socket = [stream] {
      boost::system::error_code ignored;
      stream->lowest_layer().close(ignored);
    };
    asio::co_spawn(io, reader(l, stream), asio::detached);
    asio::co_spawn(io, writer(l, stream), asio::detached);
  }

  template <class Stream>
  asio::awaitable<void> reader(link& l, std::shared_ptr<Stream> stream) {
    std::vector<char> buffer(p.read_buffer);
    for (;;) {
      const auto [error, n] = co_await stream->async_read_some(asio::buffer(buffer), use);
      if (error) {
        lost(l, error);
        co_return;
      }
      l.core.advance(clock::now());
      l.core.receive(only, std::string_view(buffer.data(), n));
      pump(l);
    }
  }

  template <class Stream>
  asio::awaitable<void> writer(link& l, std::shared_ptr<Stream> stream) {
    for (;;) {
      if (l.closed) co_return;
      l.core.advance(clock::now());
      // The view stays valid while the write is in progress: only this coroutine calls
      // output() and consume_output() (endpoint.hpp).
      const auto out = l.core.output(only);
      if (out.empty()) {
        pump(l);
        if (l.closed) co_return;
        l.writer_idle = true;
        co_await l.wake.async_wait(use);
        l.writer_idle = false;
        continue;
      }
      const auto [error, n] =
          co_await asio::async_write(*stream, asio::buffer(out.data(), out.size()), use);
      if (error) {
        lost(l, error);
        co_return;
      }
      // The reader may have found the connection lost (and closed it in the endpoint) while
      // this write, already done, waited for its turn to complete.
      if (l.closed) co_return;
      l.core.advance(clock::now());
      l.core.consume_output(only, n);
      pump(l);
    }
  }

  /// The connection ended: unexpected unless the run is over.
  void lost(link& l, boost::system::error_code error) {
    if (l.closed) return;
    l.closed = true;
    l.close_socket();
    l.wake.cancel();
    const auto what = relay ? "connection to relay " + relay->to_string() : "direct connection";
    const auto why =
        error == asio::error::eof ? std::string("closed by the peer") : error.message();
    fatal(network, what + " lost: " + why);
    l.core.close_connection(only);
  }

  /// Hands the endpoint's events on and wakes the writer.
  void pump(link& l) {
    if (l.pumping) return;  // an event handler sent on this link: the loop below goes on
    l.pumping = true;
    while (auto e = l.core.next_event())
      std::visit([&](auto& ev) { on(l, ev); }, *e);
    l.pumping = false;
    if (l.writer_idle) l.wake.cancel();
  }

  // --- Events

  void on(link& l, events::auth_finished& e) {
    l.auth_status = e.status;
    l.auth_comment = e.comment;
    l.auth.set();
  }

  void on(link& l, events::send_finished& e) {
    auto& pr = *l.pair;
    const auto handle = pr.handles.find(e.message);
    if (handle == pr.handles.end()) return;
    const auto seq = handle->second;
    pr.handles.erase(handle);
    const auto found = pr.open.find(seq);
    if (found == pr.open.end()) return;
    if (e.outcome == send_outcome::delivered || e.outcome == send_outcome::sent) {
      found->second.acked = true;
      acks.push_back(micros(clock::now() - found->second.sent_at));
      settle(pr, found);
      return;
    }
    ++report.failed;
    if (first_failure.empty()) {
      first_failure = "first failure: " + std::to_string(e.status) + ' ' + e.comment;
    }
    pr.open.erase(found);
    retired(pr);
  }

  void on(link& l, events::message_received& e) {
    auto& pr = *l.pair;
    const auto seq = sequence(e.head);
    if (!seq) {
      ++report.unexpected;
      return;
    }
    const bool exact = e.body.size() == p.message_size &&
                       bodies.matches(pattern::start(pr.index, *seq), 0, e.body);
    if (exact && stage == phase::measure) report.bytes_in_period += e.body.size();
    received(pr, *seq, exact);
  }

  void on(link& l, events::message_started& e) {
    const auto seq = sequence(e.head);
    if (!seq) {
      ++report.unexpected;
      return;
    }
    l.pair->incoming.insert_or_assign(e.message_id, piecewise{*seq});
  }

  void on(link& l, events::message_piece& e) {
    auto& pr = *l.pair;
    const auto found = pr.incoming.find(e.message_id);
    if (found == pr.incoming.end()) return;
    auto& m = found->second;
    const bool exact = bodies.matches(pattern::start(pr.index, m.seq), e.offset, e.bytes);
    m.exact = m.exact && exact;
    m.verified += e.bytes.size();
    if (exact && stage == phase::measure) report.bytes_in_period += e.bytes.size();
  }

  void on(link& l, events::message_completed& e) {
    auto& pr = *l.pair;
    const auto found = pr.incoming.find(e.message_id);
    if (found == pr.incoming.end()) return;
    const auto m = found->second;
    pr.incoming.erase(found);
    received(pr, m.seq, m.exact && m.verified == e.size && e.size == p.message_size);
  }

  void on(link& l, events::message_aborted& e) {
    l.pair->incoming.erase(e.message_id);  // its sender hears of the failure
  }

  void on(link&, events::session_closed& e) {
    if (stage != phase::done) fatal(network, "session closed: " + e.reason);
  }

  void on(link&, events::connection_failed& e) {
    fatal(network, "malformed data from the peer: " + e.error.message());
  }

  // --- Messages

  /// Sends the pair's next message; its latency counts from `due`.
  void send_next(pair_state& pr, clock::time_point due) {
    const auto seq = pr.next_seq++;
    const auto start = pattern::start(pr.index, seq);
    outgoing_message m;
    m.content_type = "application/octet-stream";
    m.size = p.message_size;
    m.read = [this, start](std::uint64_t offset, std::span<char> into) -> result<std::size_t> {
      const auto n =
          static_cast<std::size_t>(std::min<std::uint64_t>(into.size(), p.message_size - offset));
      bodies.copy(start, offset, into.first(n));
      return n;
    };
    m.headers.push_back({"Content-Description", "msrp-bench " + std::to_string(seq)});
    const auto handle = pr.sender->core.send(pr.sender->session, std::move(m));
    pr.handles.emplace(handle, seq);
    pr.open.emplace(seq, record{due});
    ++report.sent;
    ++outstanding;
  }

  /// Tops the pair's window up while measuring (closed loop).
  void fill_window(pair_state& pr) {
    if (stage != phase::measure || !pr.active || p.rate > 0) return;
    while (pr.open.size() < p.window)
      send_next(pr, clock::now());
    pump(*pr.sender);
  }

  /// Open loop (plan::rate): message k of the period goes to sending pair k mod S (of the S
  /// over all loops) and is due k / rate into it. This loop's sending pairs are pairs `loop`,
  /// `loop + loops`, ... of them, so its message m is message k = m / s × S + loop + m mod s
  /// × loops of the period (s: its sending pairs): each loop sends its pairs' share of the rate,
  /// and together they send what one loop would.
  clock::time_point due(std::uint64_t m) const {
    const auto k = m / senders.size() * all_senders + loop + m % senders.size() * loops;
    return period_start + std::chrono::duration_cast<clock::duration>(
                              std::chrono::duration<double>(static_cast<double>(k) / p.rate));
  }

  /// Open loop: sends, to this loop's sending pairs in turn, every message of the period due by
  /// `until` and not sent yet, each with the time it was due, so a late wake-up counts as
  /// latency too.
  void send_due(clock::time_point until) {
    const auto end = period_start + p.duration;
    for (; due(paced) <= until && due(paced) < end; ++paced) {
      auto& pr = *senders[paced % senders.size()];
      send_next(pr, due(paced));
      pump(*pr.sender);
    }
  }

  /// Open loop: sends what is due, then sleeps until the next message is due, at least
  /// `pacing_step`: a wake-up costs a thread more than sending a small message (here about
  /// 24 µs of CPU time), so at high rates the messages due within a step leave together. Their
  /// latency counts from when each was due: the wait is in the figures.
  asio::awaitable<void> pace() {
    while (stage == phase::measure) {
      const auto now = clock::now();
      send_due(now);
      pacer.expires_at(std::max(due(paced), now + pacing_step));
      co_await pacer.async_wait(use);
    }
  }

  void received(pair_state& pr, std::uint64_t seq, bool exact) {
    const auto found = pr.open.find(seq);
    if (found == pr.open.end() || found->second.received) {
      ++report.unexpected;
      return;
    }
    found->second.received = true;
    found->second.exact = exact;
    latencies.push_back(micros(clock::now() - found->second.sent_at));
    settle(pr, found);
  }

  /// A message both acknowledged and received is done.
  void settle(pair_state& pr, std::unordered_map<std::uint64_t, record>::iterator found) {
    const auto& r = found->second;
    if (!r.acked || !r.received) return;
    if (r.exact) {
      ++report.delivered;
      if (stage == phase::measure) ++report.delivered_in_period;
    } else {
      ++report.corrupt;
    }
    pr.open.erase(found);
    retired(pr);
  }

  void retired(pair_state& pr) {
    --outstanding;
    if (stage == phase::drain && outstanding == 0) {
      finish();
      return;
    }
    fill_window(pr);
  }

  // --- Setting up

  /// Connects to the relay, authenticates and returns the link, or ends the run.
  asio::awaitable<link*> join_relay(pair_state& pr, bool sender, std::size_t account) {
    tcp::socket socket(io);
    const auto [error, where] = co_await asio::async_connect(socket, targets, use);
    if (stage == phase::done) co_return nullptr;
    if (error) {
      fatal(network, "cannot connect to relay " + relay->to_string() + ": " + error.message());
      co_return nullptr;
    }
    socket.set_option(tcp::no_delay(true));
    auto& l = new_link(&pr, sender);
    l.session = l.core.open_session({.secure = relay->is_secure(),
                                     .host = "client.invalid",
                                     .port = 9});  // never connected to (see apps/msrp/meet.cpp)
    l.core.bind(l.session, only);
    if (relay->is_secure()) {
      // RFC 4975 §5.4: the relay's certificate must be valid for its host name.
      auto stream = std::make_shared<ssl::stream<tcp::socket>>(std::move(socket), client_tls);
      stream->set_verify_mode(ssl::verify_peer);
      stream->set_verify_callback(ssl::host_name_verification(relay->host()));
      SSL_set_tlsext_host_name(stream->native_handle(), relay->host().c_str());
      const auto [failure] = co_await stream->async_handshake(ssl::stream_base::client, use);
      if (stage == phase::done) co_return nullptr;
      if (failure) {
        fatal(network, "TLS with relay " + relay->to_string() + " failed: " + failure.message());
        co_return nullptr;
      }
      serve(l, stream);
    } else {
      serve(l, std::make_shared<tcp::socket>(std::move(socket)));
    }
    const auto& user = p.users[account % p.users.size()];
    const auto& password = p.passwords[account % p.passwords.size()];
    l.core.authenticate(l.session, *relay, {user, password});
    pump(l);
    co_await l.auth.wait();
    if (stage == phase::done) co_return nullptr;
    if (l.auth_status != 200) {
      fatal(l.auth_status == 0 || l.auth_status == 408 ? network : not_delivered,
            "relay " + relay->to_string() + " refused AUTH for user " + user + ": " +
                std::to_string(l.auth_status) + ' ' + l.auth_comment);
      co_return nullptr;
    }
    co_return &l;
  }

  asio::awaitable<void> join_relay(pair_state& pr) {
    pr.receiver = co_await join_relay(pr, false, 2 * pr.index);
    if (!pr.receiver) co_return;
    pr.sender = co_await join_relay(pr, true, 2 * pr.index + 1);
    if (!pr.sender) co_return;
    // RFC 4976 §5.1: To-Path = the sender's relay path (added by its endpoint), then the
    // receiver's path (its Use-Path reversed, then its URI).
    pr.sender->core.set_remote_path(pr.sender->session,
                                    pr.receiver->core.local_path(pr.receiver->session));
  }

  /// Direct mode: the sender connects to our listener; the accepted side is the receiver.
  asio::awaitable<void> join_direct(pair_state& pr) {
    tcp::socket socket(io);
    const tcp::endpoint target(asio::ip::address_v4::loopback(), listen_port);
    const auto [error] = co_await socket.async_connect(target, use);
    if (stage == phase::done) co_return;
    if (error) co_return fatal(network, "cannot connect to ourselves: " + error.message());
    socket.set_option(tcp::no_delay(true));
    boost::system::error_code ignored;
    const auto port = socket.local_endpoint(ignored).port();
    auto& l = new_link(&pr, true);
    l.session = l.core.open_session({.secure = p.tls, .host = "client.invalid", .port = {}});
    l.core.bind(l.session, only);
    pr.sender = &l;
    if (const auto found = unclaimed.find(port); found != unclaimed.end()) {
      claim(pr, *found->second);
      unclaimed.erase(found);
    } else {
      awaiting.emplace(port, &pr);
    }
    if (p.tls) {
      auto stream = std::make_shared<ssl::stream<tcp::socket>>(std::move(socket), client_tls);
      stream->set_verify_mode(ssl::verify_none);  // our own listener
      const auto [failure] = co_await stream->async_handshake(ssl::stream_base::client, use);
      if (stage == phase::done) co_return;
      if (failure) co_return fatal(network, "TLS handshake failed: " + failure.message());
      serve(l, stream);
    } else {
      serve(l, std::make_shared<tcp::socket>(std::move(socket)));
    }
    co_await pr.matched.wait();
    if (stage == phase::done) co_return;
    l.core.set_remote_path(l.session, {pr.receiver->core.local_uri(pr.receiver->session)});
  }

  void claim(pair_state& pr, link& receiver) {
    receiver.pair = &pr;
    pr.receiver = &receiver;
    pr.matched.set();
  }

  asio::awaitable<void> accept_loop() {
    for (;;) {
      auto [error, socket] = co_await acceptor->async_accept(use);
      if (stage == phase::done) co_return;
      if (error) continue;
      socket.set_option(tcp::no_delay(true));
      boost::system::error_code ignored;
      const auto port = socket.remote_endpoint(ignored).port();
      if (p.tls) {
        asio::co_spawn(io, accept_tls(std::move(socket), port), asio::detached);
      } else {
        attach_receiver(port, std::make_shared<tcp::socket>(std::move(socket)));
      }
    }
  }

  asio::awaitable<void> accept_tls(tcp::socket socket, std::uint16_t port) {
    auto stream = std::make_shared<ssl::stream<tcp::socket>>(std::move(socket), server_tls);
    const auto [error] = co_await stream->async_handshake(ssl::stream_base::server, use);
    if (stage == phase::done) co_return;
    if (error) co_return fatal(network, "TLS handshake failed: " + error.message());
    attach_receiver(port, stream);
  }

  /// Direct mode: the session of an accepted connection (not in the template below: g++ 12
  /// crashes on designated initializers there).
  link& new_receiver() {
    auto& l = new_link(nullptr, false);
    l.session = l.core.open_session({.secure = p.tls, .host = "127.0.0.1", .port = listen_port});
    l.core.bind(l.session, only);
    return l;
  }

  template <class Stream>
  void attach_receiver(std::uint16_t port, std::shared_ptr<Stream> stream) {
    auto& l = new_receiver();
    serve(l, stream);
    if (const auto found = awaiting.find(port); found != awaiting.end()) {
      claim(*found->second, l);
      awaiting.erase(found);
    } else {
      unclaimed.emplace(port, &l);
    }
  }

  asio::awaitable<void> setup_worker() {
    while (stage == phase::setup && next_pair < pairs.size()) {
      auto& pr = *pairs[next_pair++];
      if (relay) {
        co_await join_relay(pr);
      } else {
        co_await join_direct(pr);
      }
      if (stage == phase::setup) ++report.pairs_ready;
    }
    if (--workers == 0 && stage == phase::setup) shared.note([&] { ++shared.set_up; });
  }

  // --- Measuring

  /// From run(), once every loop is set up: the period starts at `start` in all loops.
  void start_period(clock::time_point start) {
    if (stage != phase::setup) return;  // stopped meanwhile
    period_start = start;
    asio::co_spawn(io, measure(), asio::detached);
  }

  asio::awaitable<void> measure() {
    stage = phase::measure;
    for (auto& pr : pairs) {
      if (p.rate > 0 && pr->active) senders.push_back(pr.get());
      fill_window(*pr);
    }
    if (!senders.empty()) asio::co_spawn(io, pace(), asio::detached);
    stage_timer.expires_at(period_start + p.duration);
    co_await stage_timer.async_wait(use);
    if (stage != phase::measure) co_return;
    // Open loop: whatever the pacer, woken late, has not sent yet; so every run sends
    // rate × duration messages.
    if (!senders.empty()) send_due(period_start + p.duration);
    stage = phase::drain;
    if (outstanding == 0) co_return finish();
    stage_timer.expires_after(p.drain_timeout);
    co_await stage_timer.async_wait(use);
    if (stage != phase::drain) co_return;
    fatal(not_delivered, std::to_string(outstanding) + " messages still outstanding " +
                             std::to_string(p.drain_timeout.count()) + " ms after the end");
  }

  /// Runs the endpoints' timeouts (transactions, AUTH refreshes).
  asio::awaitable<void> tick() {
    while (stage != phase::done) {
      ticker.expires_after(200ms);
      co_await ticker.async_wait(use);
      const auto now = clock::now();
      for (auto& l : links) {
        if (l->closed) continue;
        const auto deadline = l->core.next_deadline();
        if (!deadline || *deadline > now) continue;
        l->core.advance(now);
        pump(*l);
      }
    }
  }

  // --- The run

  /// Resolves the relay or opens our listener, and prepares TLS. Empty on success.
  std::optional<std::string> prepare() {
    for (auto* context : {&client_tls, &server_tls}) {
      context->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                           ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                           ssl::context::no_tlsv1_1);
      // Idle connections give their buffers back: a scale run holds thousands.
      SSL_CTX_set_mode(context->native_handle(), SSL_MODE_RELEASE_BUFFERS);
    }
    boost::system::error_code error;
    if (!p.relay.empty()) {
      auto parsed = uri::parse(p.relay);
      if (!parsed) return "bad relay URI: " + p.relay;
      relay = std::move(*parsed);
      if (p.ca_file.empty()) {
        client_tls.set_default_verify_paths(error);
      } else {
        client_tls.load_verify_file(p.ca_file, error);
      }
      if (error) return "cannot load CAs " + p.ca_file + ": " + error.message();
      tcp::resolver resolver(io);
      const auto found =
          resolver.resolve(relay->host(), std::to_string(relay->port().value_or(2855)), error);
      if (error || found.empty()) return "cannot resolve " + relay->host();
      for (const auto& entry : found)
        targets.push_back(entry.endpoint());
      return std::nullopt;
    }
    if (p.tls) {
      auto identity = net::make_self_signed("msrp-bench.invalid");
      if (!identity) return "cannot make a certificate: " + identity.error().message();
      server_tls.use_certificate_chain(asio::buffer(identity->certificate_pem));
      server_tls.use_private_key(asio::buffer(identity->private_key_pem), ssl::context::pem);
    }
    acceptor = std::make_shared<tcp::acceptor>(io);
    const tcp::endpoint where(asio::ip::address_v4::loopback(), 0);
    acceptor->open(where.protocol(), error);
    if (!error) acceptor->bind(where, error);
    if (!error) acceptor->listen(asio::socket_base::max_listen_connections, error);
    if (error) return "cannot listen on loopback: " + error.message();
    listen_port = acceptor->local_endpoint().port();
    return std::nullopt;
  }

  /// Runs this loop (on its own thread) until it ends or is stopped.
  void go() {
    if (const auto problem = prepare()) {
      fatal(relay || p.relay.empty() ? network : bad_input, *problem);
    } else {
      for (auto i = loop; i < p.sessions; i += loops) {
        pairs.push_back(std::make_unique<pair_state>(io, i));
        pairs.back()->active = i < all_senders;
      }
      if (acceptor) asio::co_spawn(io, accept_loop(), asio::detached);
      // The pairs set up at once are shared out over the loops.
      workers = std::clamp<std::size_t>(p.setup_parallel / loops, 1, pairs.size());
      for (std::size_t i = 0; i < workers; ++i)
        asio::co_spawn(io, setup_worker(), asio::detached);
      asio::co_spawn(io, tick(), asio::detached);
      while (stage != phase::done && io.run_one()) {
      }
    }
    shared.note([&] { ++shared.ended; });
    // The coroutines end as their sockets close; connects and handshakes in progress are not
    // tracked and may take longer: they are given three seconds.
    io.run_for(3s);
    for (const auto& pr : pairs)
      report.lost += pr->open.size();
  }
};

/// Adds the loops' outcomes to `total`: counts added up, percentiles over all samples.
void add_up(outcome& total, const std::vector<std::unique_ptr<runner>>& runners) {
  std::vector<std::uint32_t> latencies, acks;
  std::string first_failure;
  for (const auto& r : runners) {
    const auto& o = r->report;
    total.pairs_ready += o.pairs_ready;
    total.sent += o.sent;
    total.delivered += o.delivered;
    total.failed += o.failed;
    total.lost += o.lost;
    total.corrupt += o.corrupt;
    total.unexpected += o.unexpected;
    total.delivered_in_period += o.delivered_in_period;
    total.bytes_in_period += o.bytes_in_period;
    latencies.insert(latencies.end(), r->latencies.begin(), r->latencies.end());
    acks.insert(acks.end(), r->acks.begin(), r->acks.end());
    if (first_failure.empty()) first_failure = r->first_failure;
  }
  total.latency = summarize(latencies);
  total.ack = summarize(acks);
  const auto bad = total.failed + total.lost + total.corrupt + total.unexpected;
  if (total.status == ok && bad > 0) {
    total.status = not_delivered;
    total.error = std::to_string(bad) + " of " + std::to_string(total.sent) +
                  " messages not delivered byte-exact (failed " + std::to_string(total.failed) +
                  ", lost " + std::to_string(total.lost) + ", corrupt " +
                  std::to_string(total.corrupt) + ", unexpected " +
                  std::to_string(total.unexpected) + ")";
    if (!first_failure.empty()) total.error += "; " + first_failure;
  }
}

}  // namespace

outcome run(const plan& p) {
  outcome total;
  total.active = std::min(
      p.sessions,
      static_cast<std::size_t>(std::ceil(p.active * static_cast<double>(p.sessions) - 1e-9)));
  total.threads = std::clamp<std::size_t>(p.threads, 1, p.sessions);
  rendezvous shared;
  std::vector<std::unique_ptr<runner>> runners;
  for (std::size_t i = 0; i < total.threads; ++i)
    runners.push_back(std::make_unique<runner>(p, shared, i, total.threads, total.active));

  // The process's CPU and the relay's are measured here, once for all loops.
  std::optional<double> relay_cpu;
  if (p.relay_pid) {
    total.relay_rss_before = rss_kib(*p.relay_pid);
    relay_cpu = cpu_seconds(*p.relay_pid);
  }
  const auto relay_cpu_since = [&](std::optional<double>& since) {
    const auto now = cpu_seconds(*p.relay_pid);
    const auto used = now && since ? std::optional(*now - *since) : std::nullopt;
    since = now;
    return used;
  };
  const auto setup_cpu_start = own_cpu_seconds();
  const auto setup_start = clock::now();
  {
    std::vector<std::jthread> threads;
    for (auto& r : runners)
      threads.emplace_back([&r = *r] { r.go(); });
    if (shared.wait([&] { return shared.set_up == total.threads; })) {
      const auto cpu_start = own_cpu_seconds();
      total.setup_cpu_seconds = cpu_start - setup_cpu_start;
      if (p.relay_pid) {
        total.relay_rss_ready = rss_kib(*p.relay_pid);
        total.relay_setup_cpu_seconds = relay_cpu_since(relay_cpu);
      }
      const auto start = clock::now();
      total.setup_seconds = std::chrono::duration<double>(start - setup_start).count();
      for (auto& r : runners)
        asio::post(r->io, [&r = *r, start] { r.start_period(start); });
      // The loops end their periods at the same time point, each by its own timer.
      shared.wait([] { return false; }, start + p.duration);
      total.measured_seconds = std::chrono::duration<double>(clock::now() - start).count();
      total.cpu_seconds = own_cpu_seconds() - cpu_start;
      if (p.relay_pid) {
        total.relay_rss_end = rss_kib(*p.relay_pid);
        total.relay_cpu_seconds = relay_cpu_since(relay_cpu);
      }
    }
    // A loop that failed stops the others.
    shared.wait([&] { return shared.ended == total.threads; });
    for (auto& r : runners)
      asio::post(r->io, [&r = *r] { r.finish(); });
  }  // joins the threads: what they wrote is ours to read
  total.status = shared.status;
  total.error = shared.error;
  add_up(total, runners);
  return total;
}

}  // namespace msrp::bench
