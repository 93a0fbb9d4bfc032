// The nothing-lost test at system level: a randomized workload through one relay and through
// two chained relays (mutual TLS between them), all in this process (msrp::net::relay_server
// and msrp::net::node), with connections cut at random byte offsets by small TCP proxies.
//
// Topology (two relays; with one, Bob's proxy leads to relay 1 as well):
//
//   Alice --[proxy A]--> relay 1 --[proxy R, TLS]--> relay 2 <--[proxy B]-- Bob
//
// Each seed runs several sessions one after the other. In each, Bob and Alice connect through
// their proxies and authenticate to their relays (RFC 4976 §5.1), and Alice sends Bob a random
// number of messages; in about a third of them two Alices send at once, each to a session of
// her own that Bob holds on his one connection, so the relays interleave two senders on the
// connection they forward both on (RFC 4975 §7.1.1). The messages are of random sizes (mostly
// chat lines, now and then up to 16 MiB; 64 MiB with MSRP_NOTHING_LOST_BIG=1), with random
// chunk ceilings, output windows and pacing, binary bodies and Success-Report yes
// (Failure-Report yes or partial); now and then Alice abandons a message part-way (`#`).
// Before a session the test may arm a proxy to cut its link after a random number of further
// bytes in one direction, closing or resetting both sides: mid-AUTH, mid-chunk of a large
// body, between a chunk and its response, before a REPORT. The session then ends and the next
// one starts on fresh connections (relay 1 opens a new connection to relay 2 when it needs
// one).
//
// Accounting (as EndpointRandom.NothingLost in tests/endpoint_test.cpp does in memory): Alice
// learns each message's outcome from her endpoint (send_finished: delivered once success
// REPORTs cover every byte; failed on an error response or REPORT, a timeout, or the
// connection lost). Bob checks every byte he receives against the message sent, and records
// the messages delivered complete by Message-ID. After each session:
//   - every message sent has exactly one outcome, within a bounded wait (no hang);
//   - no byte was received that differs from the one sent, and no message was completed with
//     a gap or delivered twice (a cut-off or aborted message is never delivered as complete);
//   - every message is either delivered byte-exact or its sender was told it failed (or it
//     abandoned it), and every message its sender was told was delivered was delivered:
//     zero unaccounted for.
// A message may both arrive and be reported failed, when the cut took its success REPORT or
// its response (or arrive and be abandoned, when the abort came after its last byte); those
// are counted and printed, like the cuts that fired.
//
// What is not cut: relay 2 sends Bob's REPORTs to relay 1 over a connection of its own, to
// the port in relay 1's Use-Path, which is relay 1's own; only the connection relay 1 opens to
// relay 2 (through proxy R: Bob's path names proxy R's port, which relay 2 counts as its own)
// carries Alice's messages and relay 2's responses, and is cut.
//
// Seeds: MSRP_NOTHING_LOST_SEEDS=n runs seeds 1..n (default 3 per topology);
// MSRP_NOTHING_LOST_SEED=n replays seed n; MSRP_NOTHING_LOST_BIG=1 lets messages grow to
// 64 MiB and runs more sessions per seed.
#include "msrp/net/relay_server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "../random_workload.hpp"
#include "msrp/digest.hpp"
#include "msrp/net/hash.hpp"
#include "msrp/net/node.hpp"
#include "msrp/net/tls.hpp"

namespace msrp::net {
namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

constexpr std::uint64_t kib = 1024;
constexpr std::uint64_t mib = 1024 * kib;

/// How long both clients may stay silent (no event at all) before the test calls it a hang.
/// Every wait in the library is shorter: the timeouts below end any message within seconds.
constexpr auto patience = 30s;

/// The endpoints' and relays' timeouts, short so that a lost response or REPORT ends its
/// message in a test-sized time rather than RFC 4975's 30 s.
constexpr auto transaction_timeout = 10s;
constexpr auto report_timeout = 10s;

using test::chance;
using test::log_uniform;
using test::uniform;

// --- Bodies: byte i of a message is a function of its key and i ----------------------------

/// splitmix64 (Steele, Lea, Flood 2014).
std::uint64_t mix(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EB;
  return x ^ (x >> 31);
}

/// Fills `into` with the body of message `key` from `position` on.
void fill_body(std::uint64_t key, std::uint64_t position, std::span<char> into) {
  std::size_t done = 0;
  while (done < into.size()) {
    const std::uint64_t word = mix(key ^ mix(position / 8));
    const auto skip = static_cast<std::size_t>(position % 8);
    const auto n = std::min(sizeof word - skip, into.size() - done);
    std::memcpy(into.data() + done, reinterpret_cast<const char*>(&word) + skip, n);
    done += n;
    position += n;
  }
}

/// True if `bytes` are the body of message `key` at `position`.
bool matches_body(std::uint64_t key, std::uint64_t position, std::string_view bytes) {
  std::string expected(bytes.size(), '\0');
  fill_body(key, position, expected);
  return expected == bytes;
}

// --- A TCP proxy that cuts its link on request ----------------------------------------------

/// Where an armed proxy cuts: once `after` more bytes have gone through it `upstream` (from
/// the connecting side to the target) or downstream, counted over all its connections from
/// the moment it was armed. The connection that carries the last of them forwards exactly
/// that many and is then closed on both sides, with a TCP reset if `reset`.
struct cut {
  bool upstream = true;
  std::uint64_t after = 1;
  bool reset = false;
};

/// Listens on 127.0.0.1 (a free port) and forwards each connection to `target` on
/// 127.0.0.1, on a thread of its own (plain sockets and poll), until destroyed.
class cutting_proxy {
 public:
  cutting_proxy() {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    const bool ok = listener_ >= 0 &&
                    ::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
                    ::listen(listener_, 64) == 0 &&
                    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length) == 0;
    EXPECT_TRUE(ok) << "proxy: " << std::strerror(errno);
    port_ = ntohs(address.sin_port);
    wake_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  }
  ~cutting_proxy() {
    if (thread_.joinable()) {
      const std::uint64_t one = 1;
      [[maybe_unused]] const auto n = ::write(wake_, &one, sizeof one);
      thread_.join();
    }
    for (auto& l : links_)
      close_link(l, false);
    ::close(listener_);
    ::close(wake_);
  }
  cutting_proxy(const cutting_proxy&) = delete;
  cutting_proxy& operator=(const cutting_proxy&) = delete;

  std::uint16_t port() const { return port_; }

  /// Starts forwarding to 127.0.0.1:`target`.
  void start(std::uint16_t target) {
    target_ = target;
    thread_ = std::thread([this] { run(); });
  }

  /// Cuts as `plan` says (nothing: forward everything).
  void arm(std::optional<cut> plan) {
    std::lock_guard lock(mutex_);
    armed_ = plan;
  }
  /// True once the armed cut has been made (until the next `arm`).
  bool fired() {
    std::lock_guard lock(mutex_);
    return fired_;
  }
  /// Whether the last armed cut fired; disarms.
  bool disarm() {
    std::lock_guard lock(mutex_);
    armed_.reset();
    return std::exchange(fired_, false);
  }

 private:
  /// One proxied connection: side 0 accepted, side 1 connected to the target.
  struct link {
    int fd[2] = {-1, -1};
    std::string pending[2];  // read from fd[i], to be written to fd[1 - i]
    std::size_t written[2] = {};
    bool eof[2] = {};
    bool cutting = false;  // forward what is pending one way, then close both sides
    bool reset = false;
    bool dead = false;
  };

  static void close_link(link& l, bool reset) {
    for (const int fd : l.fd) {
      if (fd < 0) continue;
      if (reset) {
        const linger now{1, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &now, sizeof now);
      }
      ::close(fd);
    }
    l.fd[0] = l.fd[1] = -1;
  }

  void accept_one() {
    const int client = ::accept4(listener_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (client < 0) return;
    const int server = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(target_);
    if (server < 0 ||
        ::connect(server, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
      ::close(client);
      if (server >= 0) ::close(server);
      return;
    }
    ::fcntl(server, F_SETFL, ::fcntl(server, F_GETFL) | O_NONBLOCK);
    const int yes = 1;
    for (const int fd : {client, server})
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
    link l;
    l.fd[0] = client;
    l.fd[1] = server;
    links_.push_back(std::move(l));
  }

  /// Reads from side `i` of `l` into its pending bytes, cutting where the plan says.
  void read_side(link& l, int i) {
    char buffer[64 * 1024];
    const auto n = ::recv(l.fd[i], buffer, sizeof buffer, 0);
    if (n == 0) {
      l.eof[i] = true;
      return;
    }
    if (n < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) l.dead = true;
      return;
    }
    auto size = static_cast<std::uint64_t>(n);
    {
      std::lock_guard lock(mutex_);
      if (armed_ && armed_->upstream == (i == 0)) {
        if (size >= armed_->after) {
          size = armed_->after;
          l.cutting = true;
          l.reset = armed_->reset;
          armed_.reset();
          fired_ = true;
        } else {
          armed_->after -= size;
        }
      }
    }
    l.pending[i].assign(buffer, static_cast<std::size_t>(size));
    l.written[i] = 0;
  }

  /// Writes what side `i` of `l` read to the other side.
  void write_side(link& l, int i) {
    auto& bytes = l.pending[i];
    const auto n =
        ::send(l.fd[1 - i], bytes.data() + l.written[i], bytes.size() - l.written[i], MSG_NOSIGNAL);
    if (n < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) l.dead = true;
      return;
    }
    l.written[i] += static_cast<std::size_t>(n);
    if (l.written[i] == bytes.size()) {
      bytes.clear();
      l.written[i] = 0;
    }
  }

  void run() {
    for (;;) {
      std::vector<pollfd> fds{{wake_, POLLIN, 0}, {listener_, POLLIN, 0}};
      for (const auto& l : links_) {
        for (int i = 0; i < 2; ++i) {
          short events = 0;
          if (!l.cutting && !l.eof[i] && l.pending[i].empty()) events |= POLLIN;
          if (!l.pending[1 - i].empty()) events |= POLLOUT;
          fds.push_back({l.fd[i], events, 0});
        }
      }
      if (::poll(fds.data(), fds.size(), 1000) < 0 && errno != EINTR) return;
      if (fds[0].revents != 0) return;
      if (fds[1].revents & POLLIN) accept_one();
      for (std::size_t k = 0; k < links_.size() && 2 + 2 * k < fds.size(); ++k) {
        auto& l = links_[k];
        for (int i = 0; i < 2; ++i) {
          const auto& p = fds[2 + 2 * k + static_cast<std::size_t>(i)];
          if (p.revents & POLLERR) l.dead = true;
          if (l.dead) break;
          if ((p.events & POLLIN) && (p.revents & (POLLIN | POLLHUP))) read_side(l, i);
          if ((p.events & POLLOUT) && (p.revents & (POLLOUT | POLLHUP))) write_side(l, 1 - i);
        }
      }
      // A link ends when a side failed, when its cut has been forwarded, or when a side closed
      // and what it sent has been passed on.
      std::erase_if(links_, [](link& l) {
        const bool cut_done = l.cutting && l.pending[0].empty() && l.pending[1].empty();
        const bool closed =
            (l.eof[0] && l.pending[0].empty()) || (l.eof[1] && l.pending[1].empty());
        if (!l.dead && !cut_done && !closed) return false;
        close_link(l, cut_done && l.reset);
        return true;
      });
    }
  }

  int listener_ = -1;
  int wake_ = -1;
  std::uint16_t port_ = 0;
  std::uint16_t target_ = 0;
  std::vector<link> links_;  // the proxy thread's only
  std::mutex mutex_;
  std::optional<cut> armed_;
  bool fired_ = false;
  std::thread thread_;
};

// --- Relays ---------------------------------------------------------------------------------

struct account {
  std::string user;
  std::string password;
};
const account alice_account{"alice", "wonderland"};
const account bob_account{"bob", "builder"};

std::optional<std::string> lookup(std::string_view user, std::string_view realm,
                                  std::string_view algorithm) {
  for (const auto& known : {alice_account, bob_account}) {
    if (known.user == user) return digest::ha1(digest_hex, algorithm, user, realm, known.password);
  }
  return std::nullopt;
}

certificate identity(std::string_view name) {
  auto made = make_self_signed(name);
  EXPECT_TRUE(made) << made.error().message() << ": " << tls_error_detail();
  return made ? *made : certificate{};
}

/// Both relays' certificates in one PEM file (each relay's CA file, and the clients'), removed
/// again at the end of the scope. Made at test time: no key is ever committed.
struct ca_file {
  std::filesystem::path path;
  explicit ca_file(const std::string& pem)
      : path(std::filesystem::temp_directory_path() /
             ("nothing_lost_" + std::to_string(::getpid()) + ".pem")) {
    std::ofstream(path, std::ios::binary) << pem;
  }
  ~ca_file() {
    std::error_code ignored;
    std::filesystem::remove(path, ignored);
  }
};

/// One relay with a TLS and a plain TCP listener on 127.0.0.1.
struct relay_under_test {
  std::unique_ptr<relay_server> server;
  std::uint16_t tls_port = 0;
  std::uint16_t tcp_port = 0;
  std::string host;

  relay_under_test(std::string name, const certificate& cert, const std::string& cas,
                   std::vector<std::uint16_t> also_ours = {})
      : host(std::move(name)) {
    relay_server::options settings;
    settings.engine.host = host;
    settings.engine.realm = host;
    settings.engine.ports = std::move(also_ours);
    settings.engine.transaction_timeout =
        std::chrono::duration_cast<std::chrono::seconds>(transaction_timeout);
    settings.identity = cert;
    settings.ca_file = cas;
    server = std::make_unique<relay_server>(std::move(settings), answer_at_once(lookup));
    const auto tls = server->listen("127.0.0.1", 0, true);
    const auto tcp = server->listen("127.0.0.1", 0, false);
    EXPECT_TRUE(tls && tcp);
    if (tls) tls_port = *tls;
    if (tcp) tcp_port = *tcp;
  }

  std::uint16_t port(bool tls) const { return tls ? tls_port : tcp_port; }
  uri address(bool tls) const {
    const auto text =
        std::string(tls ? "msrps://" : "msrp://") + host + ':' + std::to_string(port(tls)) + ";tcp";
    return *uri::parse(text);
  }
  /// The relay's notices so far, for a failed seed.
  std::string notices() {
    std::string all;
    while (const auto line = server->wait_notice(0ms))
      all += "  " + *line + '\n';
    return all;
  }
};

// --- The workload ---------------------------------------------------------------------------

/// Counts over all seeds, printed at the end so that a reader sees the test is not vacuous.
struct totals {
  std::uint64_t sessions = 0;
  std::uint64_t sessions_without_auth = 0;  // a cut during AUTH: nothing sent
  std::uint64_t two_sender_sessions = 0;
  std::uint64_t messages = 0;
  std::uint64_t bytes = 0;
  std::uint64_t delivered = 0;  // the sender was told delivered (and the receiver has it)
  std::uint64_t failed = 0;     // the sender was told it failed
  std::uint64_t failed_but_received = 0;
  std::uint64_t aborted = 0;  // by the sender: told it ended undelivered, as good as failed
  std::uint64_t aborted_but_received = 0;  // the abort came after the last byte
  std::uint64_t received = 0;
  std::uint64_t unaccounted = 0;
  std::map<std::string, std::uint64_t> cuts;      // link -> cuts that fired
  std::map<int, std::uint64_t> failure_statuses;  // status -> failed messages
};

/// One message of the workload.
struct planned {
  std::size_t index = 0;   // its Content-Description is "nl-<index>"
  std::size_t sender = 0;  // which Alice sends it, to Bob's session of the same number
  std::uint64_t size = 0;
  std::uint64_t key = 0;
  report_mode failure = report_mode::yes;
  bool from_memory = false;  // outgoing_message::text rather than a body_reader
  /// Alice abandons it (`node::abort`) once this many of its bytes have gone out.
  std::optional<std::uint64_t> abort_at;
  bool aborted_by_test = false;
  message_handle handle = 0;
  int finishes = 0;
  send_outcome outcome = send_outcome::sent;
  int status = -1;
  int completions = 0;  // times Bob received it complete and byte-exact
};

/// A message Bob is receiving in pieces.
struct reception {
  planned* message = nullptr;
  std::map<std::uint64_t, std::uint64_t> covered;  // begin -> end, merged
  bool ended = false;
};

/// A client: a node, its connection to its relay (through a proxy) and its sessions there.
struct client {
  std::unique_ptr<node> n;
  connection_id connection = 0;
  std::vector<session_handle> sessions;
  std::size_t sessions_closed = 0;
};

class nothing_lost_run {
 public:
  nothing_lost_run(std::uint64_t seed, int relays, bool big, totals& sums)
      : seed_(seed),
        random_(mix(seed * 2 + static_cast<std::uint64_t>(relays))),
        relays_(relays),
        big_(big),
        sums_(sums) {}

  void run();

 private:
  endpoint::config alice_config();
  endpoint::config bob_config(std::uint64_t paced);
  void plan_messages(std::size_t first, std::size_t sender);
  std::optional<cut> draw_cut(std::uint64_t bulk, std::size_t messages, bool bulk_upstream);
  std::optional<client> connect(relay_under_test& relay, cutting_proxy& proxy,
                                endpoint::config settings);
  bool authenticate(client& c, relay_under_test& relay, cutting_proxy& proxy, const account& who);
  void run_session(int number);
  void send_all();
  void abort_some();
  void await_outcomes();
  void close_sessions();
  bool take(client& c, std::optional<std::size_t> sender);
  void on_alice(std::size_t sender, const node_event& e);
  void on_bob(const node_event& e);
  planned* described(session_handle session, const message& head);
  void complete(planned& m, std::string_view how);
  void account_for(bool cut);

  std::uint64_t seed_;
  std::mt19937_64 random_;
  int relays_;
  bool big_;
  totals& sums_;
  bool tls_clients_ = false;
  std::string ca_path_;
  std::unique_ptr<relay_under_test> first_;   // Alice's relay
  std::unique_ptr<relay_under_test> second_;  // Bob's relay, with two
  std::unique_ptr<cutting_proxy> to_first_;   // Alice -> relay 1
  std::unique_ptr<cutting_proxy> between_;    // relay 1 -> relay 2
  std::unique_ptr<cutting_proxy> to_last_;    // Bob -> his relay
  // The session in progress.
  std::vector<client> alices_;
  client bob_;
  std::vector<planned> messages_;
  std::map<std::pair<std::size_t, message_handle>, planned*> by_handle_;  // (sender, handle)
  std::map<std::string, reception> receptions_;                           // Bob's, by Message-ID
};

endpoint::config nothing_lost_run::alice_config() {
  endpoint::config c;
  c.chunk_ceiling = chance(random_, 0.3) ? UINT64_MAX : log_uniform(random_, 512, 1 * mib);
  c.output_window = log_uniform(random_, 4 * kib, 256 * kib);
  c.transaction_timeout = transaction_timeout;
  c.report_timeout = report_timeout;
  // Pacing (RFC 4975 §7.1.3) now and then: at most a window unconfirmed by success REPORTs.
  if (chance(random_, 0.25)) c.unconfirmed_window = log_uniform(random_, 64 * kib, 4 * mib);
  return c;
}

/// Bob's settings; `paced`: the smallest unconfirmed window of the Alices, 0 if none paces.
endpoint::config nothing_lost_run::bob_config(std::uint64_t paced) {
  endpoint::config c;
  c.output_window = log_uniform(random_, 4 * kib, 256 * kib);
  c.whole_message_limit = chance(random_, 0.2) ? 0 : log_uniform(random_, 1, 256 * kib);
  c.transaction_timeout = transaction_timeout;
  c.report_timeout = report_timeout;
  // Progress REPORTs keep a paced sender going; a quarter of its window, as endpoint.hpp asks.
  if (paced != 0) {
    c.progress_reports = paced / 4;
  } else if (chance(random_, 0.3)) {
    c.progress_reports = log_uniform(random_, 4 * kib, 4 * mib);
  }
  return c;
}

/// Adds a random number of messages from `sender`, numbered from `first`.
void nothing_lost_run::plan_messages(std::size_t first, std::size_t sender) {
  const std::uint64_t largest = big_ ? 64 * mib : 16 * mib;
  const auto count = uniform(random_, 1, 10);
  for (std::size_t i = 0; i < count; ++i) {
    planned m;
    m.index = first + i;
    m.sender = sender;
    // A heavy tail: mostly chat lines, sometimes files, rarely a large one.
    const auto pick = uniform(random_, 0, 99);
    if (pick < 50) {
      m.size = uniform(random_, 0, 300);
    } else if (pick < 78) {
      m.size = uniform(random_, 301, 70'000);
    } else if (pick < (big_ ? 90 : 95)) {
      m.size = log_uniform(random_, 70'000, 1 * mib);
    } else {
      m.size = log_uniform(random_, 1 * mib, largest);
    }
    m.key = mix(seed_ * 1'000'003 + m.index);
    m.failure = chance(random_, 0.25) ? report_mode::partial : report_mode::yes;
    m.from_memory = m.size <= 64 * kib && chance(random_, 0.5);
    if (m.size > 64 * kib && chance(random_, 0.1)) m.abort_at = uniform(random_, 0, m.size - 1);
    messages_.push_back(m);
  }
}

/// A cut for one link: `bulk` bytes are expected to go the bulk way, which is upstream if
/// `bulk_upstream`; the other way carries responses and REPORTs.
std::optional<cut> nothing_lost_run::draw_cut(std::uint64_t bulk, std::size_t messages,
                                              bool bulk_upstream) {
  cut c;
  c.reset = chance(random_, 0.5);
  if (chance(random_, 0.8)) {
    c.upstream = bulk_upstream;
    c.after = uniform(random_, 1, bulk + bulk / 10 + 4096);
  } else {
    c.upstream = !bulk_upstream;
    c.after = uniform(random_, 1, 600 * (messages + 4));
  }
  return c;
}

/// A client node connected through `proxy` to `relay`; nothing if a cut ended the handshake.
std::optional<client> nothing_lost_run::connect(relay_under_test& relay, cutting_proxy& proxy,
                                                endpoint::config settings) {
  node::options options;
  options.engine = std::move(settings);
  options.ca_file = ca_path_;
  client c;
  c.n = std::make_unique<node>(std::move(options));
  const auto connection =
      c.n->connect(relay.address(tls_clients_), std::nullopt, {{"127.0.0.1", proxy.port()}});
  if (!connection) return std::nullopt;
  c.connection = *connection;
  return c;
}

/// Opens a session of `c` on its connection and authenticates it to `relay` as `who`; false
/// if a cut ended it.
bool nothing_lost_run::authenticate(client& c, relay_under_test& relay, cutting_proxy& proxy,
                                    const account& who) {
  // RFC 4976 §8 wants a port in paths exchanged in SDP; the relay delivers over our
  // connection, so nobody connects to it (as the msrp command does).
  const auto session =
      c.n->open_session({.secure = tls_clients_, .host = "client.invalid", .port = 9});
  c.sessions.push_back(session);
  c.n->bind(session, c.connection);
  c.n->authenticate(session, relay.address(tls_clients_), {who.user, who.password});
  const auto deadline = steady::now() + patience;
  while (steady::now() < deadline) {
    const auto e = c.n->wait_event(20ms);
    if (!e) continue;
    if (const auto* closed = std::get_if<connection_closed>(&*e)) {
      if (closed->connection == c.connection) return false;
    }
    const auto* ev = std::get_if<msrp::event>(&*e);
    const auto* done = ev ? std::get_if<events::auth_finished>(ev) : nullptr;
    if (!done) continue;
    if (done->status == 200) return true;
    // Only a cut may spoil an AUTH with the right password: the connection went (0) or the
    // answer did not come (408).
    EXPECT_TRUE(done->status == 0 || done->status == 408 || proxy.fired())
        << who.user << "'s AUTH failed with " << done->status << ' ' << done->comment;
    return false;
  }
  ADD_FAILURE() << who.user << "'s AUTH had no outcome within " << patience.count() << " s";
  return false;
}

/// The message `head` says it is, if Alice sent it to this session of Bob's.
planned* nothing_lost_run::described(session_handle session, const message& head) {
  const auto description = head.header("Content-Description");
  if (!description || !description->starts_with("nl-")) return nullptr;
  const auto index = std::strtoull(std::string(description->substr(3)).c_str(), nullptr, 10);
  for (auto& m : messages_) {
    if (m.index != index) continue;
    EXPECT_EQ(bob_.sessions.at(m.sender), session)
        << "message " << index << " in the wrong session";
    return &m;
  }
  return nullptr;
}

void nothing_lost_run::complete(planned& m, std::string_view how) {
  if (++m.completions > 1) {
    ADD_FAILURE() << "message " << m.index << " delivered twice (" << how << ')';
  }
}

void nothing_lost_run::on_alice(std::size_t sender, const node_event& e) {
  const auto* ev = std::get_if<msrp::event>(&e);
  if (!ev) return;  // connections opening and closing
  if (const auto* f = std::get_if<events::send_finished>(ev)) {
    const auto found = by_handle_.find({sender, f->message});
    if (found == by_handle_.end()) {
      ADD_FAILURE() << "send_finished for a message never sent";
      return;
    }
    auto& m = *found->second;
    if (++m.finishes > 1) ADD_FAILURE() << "message " << m.index << " finished twice";
    m.outcome = f->outcome;
    m.status = f->status;
  } else if (std::holds_alternative<events::session_closed>(*ev)) {
    ++alices_[sender].sessions_closed;
  } else if (const auto* failed = std::get_if<events::connection_failed>(ev)) {
    ADD_FAILURE() << "Alice's relay sent a malformed byte stream: " << failed->error.message();
  } else if (!std::holds_alternative<events::auth_finished>(*ev)) {
    ADD_FAILURE() << "Alice received something (event " << ev->index() << ")";
  }
}

void nothing_lost_run::on_bob(const node_event& e) {
  const auto* ev = std::get_if<msrp::event>(&e);
  if (!ev) return;
  if (const auto* r = std::get_if<events::message_received>(ev)) {
    auto* m = described(r->session, r->head);
    if (!m) {
      ADD_FAILURE() << "Bob received a message Alice did not send in this session";
      return;
    }
    EXPECT_EQ(r->body.size(), m->size) << "message " << m->index;
    const bool exact = r->body.size() == m->size && matches_body(m->key, 0, r->body);
    EXPECT_TRUE(exact) << "message " << m->index << " arrived with wrong bytes";
    if (exact) complete(*m, "whole");
    return;
  }
  if (const auto* started = std::get_if<events::message_started>(ev)) {
    auto* m = described(started->session, started->head);
    if (!m) {
      ADD_FAILURE() << "Bob started a message Alice did not send in this session";
      return;
    }
    auto& rx = receptions_[started->message_id];
    EXPECT_EQ(rx.message, nullptr) << "message_started twice for message " << m->index;
    rx = reception{m, {}, false};
    if (started->size) {
      EXPECT_EQ(*started->size, m->size) << "message " << m->index;
    }
    return;
  }
  if (const auto* piece = std::get_if<events::message_piece>(ev)) {
    const auto found = receptions_.find(piece->message_id);
    if (found == receptions_.end() || !found->second.message) {
      ADD_FAILURE() << "a piece of a message that never started";
      return;
    }
    auto& rx = found->second;
    const auto& m = *rx.message;
    EXPECT_FALSE(rx.ended) << "a piece of message " << m.index << " after it ended";
    if (piece->offset + piece->bytes.size() > m.size) {
      ADD_FAILURE() << "message " << m.index << ": a piece past its end";
      return;
    }
    if (!matches_body(m.key, piece->offset, piece->bytes)) {
      ADD_FAILURE() << "message " << m.index << " corrupted in the piece at " << piece->offset;
      return;  // not counted as covered: its completion then fails as incomplete
    }
    test::cover(rx.covered, piece->offset, piece->offset + piece->bytes.size());
    return;
  }
  if (const auto* done = std::get_if<events::message_completed>(ev)) {
    const auto found = receptions_.find(done->message_id);
    if (found == receptions_.end() || !found->second.message) {
      ADD_FAILURE() << "completed a message that never started";
      return;
    }
    auto& rx = found->second;
    auto& m = *rx.message;
    EXPECT_FALSE(rx.ended) << "message " << m.index << " completed after it ended";
    rx.ended = true;
    EXPECT_EQ(done->size, m.size) << "message " << m.index;
    const bool whole = m.size == 0 || (rx.covered.size() == 1 && rx.covered.begin()->first == 0 &&
                                       rx.covered.begin()->second == m.size);
    EXPECT_TRUE(whole) << "message " << m.index << " completed with gaps or wrong bytes";
    if (whole && done->size == m.size) complete(m, "streamed");
    return;
  }
  if (const auto* aborted = std::get_if<events::message_aborted>(ev)) {
    const auto found = receptions_.find(aborted->message_id);
    if (found != receptions_.end()) {
      EXPECT_FALSE(found->second.ended) << "aborted after it ended";
      found->second.ended = true;
    }
    return;
  }
  if (std::holds_alternative<events::session_closed>(*ev)) {
    ++bob_.sessions_closed;
    return;
  }
  if (const auto* failed = std::get_if<events::connection_failed>(ev)) {
    ADD_FAILURE() << "Bob's relay sent a malformed byte stream: " << failed->error.message();
  }
}

/// Takes every event `c` has (`sender`: an Alice; none: Bob); false if there was none.
bool nothing_lost_run::take(client& c, std::optional<std::size_t> sender) {
  bool any = false;
  while (auto e = c.n->wait_event(0ms)) {
    any = true;
    sender ? on_alice(*sender, *e) : on_bob(*e);
  }
  return any;
}

/// Each Alice sends her messages, in the planned order, all at once.
void nothing_lost_run::send_all() {
  for (auto& m : messages_) {
    outgoing_message out;
    if (m.from_memory) {
      std::string body(m.size, '\0');
      fill_body(m.key, 0, body);
      out = outgoing_message::text("application/octet-stream", std::move(body));
    } else {
      out.content_type = "application/octet-stream";
      out.size = m.size;
      out.read = [key = m.key, size = m.size](std::uint64_t offset,
                                              std::span<char> into) -> result<std::size_t> {
        const auto n =
            static_cast<std::size_t>(std::min<std::uint64_t>(into.size(), size - offset));
        fill_body(key, offset, into.first(n));
        return n;
      };
    }
    out.success_report = report_mode::yes;
    out.failure_report = m.failure;
    out.headers = {{"Content-Description", "nl-" + std::to_string(m.index)}};
    auto& alice = alices_[m.sender];
    m.handle = alice.n->send(alice.sessions.front(), std::move(out));
    by_handle_[{m.sender, m.handle}] = &m;
  }
}

/// Alice abandons the messages whose `abort_at` has been reached: a chunk in progress ends
/// with `#` (RFC 4975 §7.1), which the relays pass on.
void nothing_lost_run::abort_some() {
  for (auto& m : messages_) {
    if (!m.abort_at || m.aborted_by_test || m.finishes != 0) continue;
    auto& alice = *alices_[m.sender].n;
    if (alice.bytes_sent(m.handle) < *m.abort_at) continue;
    alice.abort(m.handle);
    m.aborted_by_test = true;
  }
}

/// Waits until every message has its outcome (silence for `patience` is a hang), then until
/// Bob has ended what he is receiving.
void nothing_lost_run::await_outcomes() {
  const auto unfinished = [&] {
    return std::count_if(messages_.begin(), messages_.end(),
                         [](const planned& m) { return m.finishes == 0; });
  };
  auto quiet_since = steady::now();
  while (unfinished() > 0) {
    abort_some();
    bool any = take(bob_, std::nullopt);
    for (std::size_t k = 0; k < alices_.size(); ++k)
      any = take(alices_[k], k) || any;
    if (any) {
      quiet_since = steady::now();
    } else if (steady::now() - quiet_since > patience) {
      ADD_FAILURE() << unfinished() << " messages without an outcome after " << patience.count()
                    << " s of silence: a hang";
      return;
    } else {
      std::this_thread::sleep_for(1ms);
    }
  }
  // Bob may still be finishing messages whose REPORT or response the cut took: wait until
  // each has ended, or nothing has happened for a second.
  const auto open_receptions = [&] {
    return std::any_of(receptions_.begin(), receptions_.end(),
                       [](const auto& r) { return r.second.message && !r.second.ended; });
  };
  quiet_since = steady::now();
  while (open_receptions() && steady::now() - quiet_since < 1s) {
    if (auto e = bob_.n->wait_event(10ms)) {
      on_bob(*e);
      quiet_since = steady::now();
    }
  }
}

/// Closes every session, which ends whatever is still open; then nothing more may arrive.
void nothing_lost_run::close_sessions() {
  for (auto* c : {&bob_}) {
    for (const auto session : c->sessions)
      c->n->close_session(session);
  }
  for (auto& alice : alices_)
    alice.n->close_session(alice.sessions.front());
  const auto all_closed = [&] {
    return bob_.sessions_closed == bob_.sessions.size() &&
           std::all_of(alices_.begin(), alices_.end(),
                       [](const client& c) { return c.sessions_closed == c.sessions.size(); });
  };
  const auto deadline = steady::now() + patience;
  while (!all_closed() && steady::now() < deadline) {
    take(bob_, std::nullopt);
    for (std::size_t k = 0; k < alices_.size(); ++k)
      take(alices_[k], k);
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_TRUE(all_closed()) << "a session did not close";
}

void nothing_lost_run::run_session(int number) {
  SCOPED_TRACE("session " + std::to_string(number));
  ++sums_.sessions;
  // One Alice, or two at once: then Bob has two sessions on his one connection, and relay 1
  // interleaves two senders on the connection it forwards both on.
  const std::size_t senders = chance(random_, 0.35) ? 2 : 1;
  if (senders == 2) ++sums_.two_sender_sessions;
  for (std::size_t k = 0; k < senders; ++k)
    plan_messages(static_cast<std::size_t>(number) * 100 + k * 50, k);
  std::uint64_t bulk = 0;
  for (const auto& m : messages_)
    bulk += m.size + 300;
  // Which links are cut: none, one, or (now and then) two.
  cutting_proxy* links[] = {to_first_.get(), between_.get(), to_last_.get()};
  const char* names[] = {"Alice-relay", "relay-relay", "relay-Bob"};
  bool armed[3] = {};
  const auto pick = uniform(random_, 0, 99);
  if (pick >= 25) {
    armed[uniform(random_, 0, 2)] = true;
    if (pick >= 88) armed[uniform(random_, 0, 2)] = true;
  }
  if (!between_) armed[1] = false;
  for (int k = 0; k < 3; ++k) {
    if (!links[k]) continue;
    // The bulk goes upstream from Alice and between the relays, downstream to Bob.
    links[k]->arm(armed[k] ? draw_cut(bulk, messages_.size(), k != 2) : std::nullopt);
  }

  std::vector<endpoint::config> alice_settings;
  std::uint64_t smallest_window = 0;  // of the paced Alices
  for (std::size_t k = 0; k < senders; ++k) {
    alice_settings.push_back(alice_config());
    const auto window = alice_settings.back().unconfirmed_window;
    if (window != 0 && (smallest_window == 0 || window < smallest_window)) smallest_window = window;
  }
  auto& bob_relay = second_ ? *second_ : *first_;
  bool joined = false;
  if (auto bob = connect(bob_relay, *to_last_, bob_config(smallest_window))) {
    bob_ = std::move(*bob);
    joined = true;
    for (std::size_t k = 0; k < senders && joined; ++k)
      joined = authenticate(bob_, bob_relay, *to_last_, bob_account);
  }
  for (std::size_t k = 0; k < senders && joined; ++k) {
    auto alice = connect(*first_, *to_first_, alice_settings[k]);
    joined = alice && authenticate(*alice, *first_, *to_first_, alice_account);
    if (alice) alices_.push_back(std::move(*alice));
  }
  if (!joined) {
    ++sums_.sessions_without_auth;
  } else {
    // Alice's remote path is Bob's path (as SDP would carry it). With two relays, the URI of
    // relay 2 names proxy R's port, which relay 2 counts as its own (RFC 4976 §6.2), and TLS,
    // so relay 1 connects to relay 2 through the proxy with mutual TLS whatever Bob's own
    // connection is.
    for (std::size_t k = 0; k < senders; ++k) {
      auto path = bob_.n->local_path(bob_.sessions[k]);
      if (second_) {
        path.front() =
            *uri::parse("msrps://" + second_->host + ':' + std::to_string(between_->port()) + '/' +
                        path.front().session_id() + ";tcp");
      }
      alices_[k].n->set_remote_path(alices_[k].sessions.front(), path);
    }
    send_all();
    await_outcomes();
    close_sessions();
  }
  alices_.clear();
  bob_ = {};
  bool cut_any = false;
  for (int k = 0; k < 3; ++k) {
    if (links[k] && links[k]->disarm()) {
      ++sums_.cuts[names[k]];
      cut_any = true;
    }
  }
  if (joined) account_for(cut_any);
  messages_.clear();
  by_handle_.clear();
  receptions_.clear();
}

void nothing_lost_run::account_for(bool cut) {
  for (const auto& m : messages_) {
    SCOPED_TRACE("message " + std::to_string(m.index) + " of " + std::to_string(m.size) + " bytes");
    ++sums_.messages;
    sums_.bytes += m.size;
    sums_.received += static_cast<std::uint64_t>(m.completions);
    EXPECT_EQ(m.finishes, 1) << "every message has exactly one outcome";
    const bool told_delivered = m.finishes == 1 && m.outcome == send_outcome::delivered;
    const bool told_failed = m.finishes == 1 && m.outcome == send_outcome::failed;
    const bool told_aborted = m.finishes == 1 && m.outcome == send_outcome::aborted;
    EXPECT_TRUE(told_delivered || told_failed || (told_aborted && m.aborted_by_test))
        << "outcome " << static_cast<int>(m.outcome) << " status " << m.status;
    if (told_delivered) {
      EXPECT_EQ(m.status, 200);
      EXPECT_EQ(m.completions, 1) << "LOST: the sender was told delivered, the receiver has "
                                     "no complete, byte-exact copy";
    }
    if (told_failed) {
      ++sums_.failed;
      ++sums_.failure_statuses[m.status];
      if (m.completions > 0) ++sums_.failed_but_received;
    } else if (told_aborted) {
      // Bob may have it whole when the abort came after its last byte went out.
      ++sums_.aborted;
      if (m.completions > 0) ++sums_.aborted_but_received;
    } else if (told_delivered && m.completions == 1) {
      ++sums_.delivered;
    }
    if (!(told_failed || told_aborted || (told_delivered && m.completions == 1))) {
      ++sums_.unaccounted;
    }
    // Without a cut, every message arrives and its sender hears so: the workload is not
    // vacuous, and nothing fails that should not.
    if (!cut && !m.aborted_by_test) {
      EXPECT_TRUE(told_delivered && m.completions == 1)
          << "in a session without cuts: outcome " << static_cast<int>(m.outcome) << " status "
          << m.status << ", received " << m.completions << " times";
    }
  }
}

void nothing_lost_run::run() {
  tls_clients_ = chance(random_, 0.5);
  // Different names, as two relays' names differ: OpenSSL finds a CA by its subject name.
  const auto first_cert = identity("localhost");
  const auto second_cert = identity("127.0.0.1");
  const ca_file cas(first_cert.certificate_pem + second_cert.certificate_pem);
  ca_path_ = cas.path.string();

  to_first_ = std::make_unique<cutting_proxy>();
  to_last_ = std::make_unique<cutting_proxy>();
  first_ = std::make_unique<relay_under_test>("localhost", first_cert, ca_path_);
  to_first_->start(first_->port(tls_clients_));
  if (relays_ == 2) {
    between_ = std::make_unique<cutting_proxy>();
    second_ = std::make_unique<relay_under_test>("127.0.0.1", second_cert, ca_path_,
                                                 std::vector<std::uint16_t>{between_->port()});
    // Relay to relay is always TLS, with mutual authentication (RFC 4976 §6.1).
    between_->start(second_->tls_port);
    to_last_->start(second_->port(tls_clients_));
  } else {
    to_last_->start(first_->port(tls_clients_));
  }

  const int sessions = static_cast<int>(uniform(random_, 3, big_ ? 12 : 6));
  for (int s = 0; s < sessions; ++s) {
    run_session(s);
    if (::testing::Test::HasFailure()) break;
  }
  if (::testing::Test::HasFailure() || std::getenv("MSRP_RELAY_NOTICES")) {
    std::fprintf(stderr, "relay 1:\n%s", first_->notices().c_str());
    if (second_) std::fprintf(stderr, "relay 2:\n%s", second_->notices().c_str());
  }
  // Clients are gone; stop the relays before the proxies that lead to them. A relay that
  // does not stop is a hang in the library: say so, with the seed, rather than leave it to
  // ctest's timeout.
  auto stopped = std::make_shared<std::atomic<bool>>(false);
  std::thread([&, stopped] {
    second_.reset();
    first_.reset();
    *stopped = true;
  }).detach();
  const auto deadline = steady::now() + patience;
  while (!*stopped && steady::now() < deadline)
    std::this_thread::sleep_for(10ms);
  if (!*stopped) {
    std::fprintf(stderr,
                 "nothing_lost_test: seed %llu: a relay_server did not stop within %lld s "
                 "(its destructor waits for its I/O thread); replay with "
                 "MSRP_NOTHING_LOST_SEED=%llu\n",
                 static_cast<unsigned long long>(seed_), static_cast<long long>(patience.count()),
                 static_cast<unsigned long long>(seed_));
    std::fflush(nullptr);
    std::_Exit(1);
  }
  between_.reset();
  to_first_.reset();
  to_last_.reset();
}

void run_seeds(int relays) {
  const auto [first, last, big] = test::seeds_from_env("MSRP_NOTHING_LOST", 3);
  totals sums;
  for (auto seed = first; seed <= last; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed) +
                 " (replay with MSRP_NOTHING_LOST_SEED=" + std::to_string(seed) + ")");
    nothing_lost_run(seed, relays, big, sums).run();
    if (::testing::Test::HasFailure()) {
      ADD_FAILURE() << "seed " << seed << " failed; replay with MSRP_NOTHING_LOST_SEED=" << seed;
      break;
    }
  }
  EXPECT_EQ(sums.unaccounted, 0u) << "messages neither delivered nor reported failed";
  std::string summary =
      "seeds " + std::to_string(first) + ".." + std::to_string(last) + " through " +
      std::to_string(relays) + " relay(s): " + std::to_string(sums.sessions) + " sessions (" +
      std::to_string(sums.two_sender_sessions) + " with two senders, " +
      std::to_string(sums.sessions_without_auth) + " cut before sending), " +
      std::to_string(sums.messages) + " messages, " + std::to_string(sums.bytes) +
      " bytes; delivered " + std::to_string(sums.delivered) + ", reported failed " +
      std::to_string(sums.failed) + " (of which received anyway " +
      std::to_string(sums.failed_but_received) + "), aborted " + std::to_string(sums.aborted) +
      " (of which received anyway " + std::to_string(sums.aborted_but_received) +
      "), unaccounted " + std::to_string(sums.unaccounted) + "; failure statuses:";
  for (const auto& [status, n] : sums.failure_statuses)
    summary += " " + std::to_string(status) + " x" + std::to_string(n);
  summary += "; cuts:";
  for (const auto& [link, n] : sums.cuts)
    summary += " " + link + " x" + std::to_string(n);
  std::printf("%s\n", summary.c_str());
}

TEST(NothingLost, ThroughOneRelayWithCuts) {
  run_seeds(1);
}

TEST(NothingLost, ThroughTwoRelaysWithCuts) {
  run_seeds(2);
}

}  // namespace
}  // namespace msrp::net
