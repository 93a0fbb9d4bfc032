// msrp/relay.hpp: the RFC 4976 relay engine, with no I/O.
//
// A `relay` knows transport connections only by id (STYLE §4). It takes received bytes, the
// time and connection events; it gives back bytes to write per connection, actions (open a
// connection to a next hop, close one) and notices for the log. It never opens a socket,
// reads a clock, sleeps, draws random numbers or reads the credential store itself: all of
// that is injected or driven by the caller: the credential store is asked through `lookup`
// actions, answered (now or later) with `credentials`.
//
//   msrp::relay r(config, random, hasher);
//   r.accept(1, {.secure = true, .local_port = 2855});   // a client connected
//   loop: r.receive(1, bytes); r.advance(now);
//         write(r.output(id)); r.consume_output(id, written);
//         while (auto a = r.next_action()) act(*a);     // connect, close, lookup, notice
//         while (auto id = r.next_ready()) wake(*id);   // output to write, input to read
//         read from a connection only while r.wants_input(id)
//   when a lookup completes: r.credentials(lookup.ticket, answer);
//
// Theory of operation.
//
// Connections. Every connection has a parser; a malformed byte stream is answered 400 where
// the transaction id is known (not a REPORT, nor with Failure-Report `no`: RFC 4975 §7.1.2,
// §7.2) and the connection closed (RFC 4975 §7.3; RFC 4976 §6.2). A
// client connection is on probation until one of its requests succeeds: it is closed when
// `probation` passes first (§6.1: "the server waits for up to 30 seconds"), or after
// `max_failures` failed requests (§6.1, §6.3). Connections the relay opens to a next hop, and
// connections from relays that proved themselves with a certificate, are not on probation.
//
// AUTH (§5.1, §6.3, §9.1). An AUTH whose To-Path is exactly one URI of this relay is handled
// here; one with further URIs passes through like any other request. Without Authorization it
// is answered 401 with one challenge per algorithm (SHA-256, then MD5), each with a fresh
// single-use nonce bound to the connection that valid for `nonce_lifetime`. Credentials are
// checked with the HA1 of the user: the relay asks for it with a `lookup` action and reads
// nothing more from that connection (`wants_input` false; bytes already received wait, so
// frames keep their order) until `credentials` answers it. A connection that closes meanwhile
// is forgotten, and so is the late answer. When the store is unavailable the AUTH is answered
// 500 and nothing else changes: it is not the client's failure. Right credentials on a nonce
// that is unknown, expired, used or from another connection get a new challenge marked stale
// (a replayed Authorization thus never succeeds); wrong ones (or an unknown user) count as a
// failure and get a new challenge, and the `max_failures`-th gets 403 and the connection
// closed. An Expires outside
// [min_expires, max_expires] is answered 423 with Min-Expires or Max-Expires (§4.6). Success
// is 200 with Use-Path, Expires and Authentication-Info (rspauth, a nextnonce). The Use-Path
// URI carries a fresh session-id of 16 random characters (about 95 bits; §6.3 asks for 64)
// that reveals nothing about the client. It is valid only through the connection the AUTH
// came on, from the From-Path that AUTH had, and until it expires (§6.3): a lapsed or closed
// session is no longer routable. An AUTH from the same connection and From-Path as a live
// session refreshes that session and returns the same URI.
//
// Forwarding (§6.2, §6.4). The first To-Path URI of every other request must name this relay
// (its host or an alias, and one of its ports or none), or the connection is dropped (§6.2).
// It must be a live session of this relay (otherwise 481). The relay moves that URI from the
// To-Path to the front of the From-Path (§6.4.1), and then:
// - if the request came on the session's own connection, it is the client sending: its
//   From-Path must be the one it authenticated (otherwise 403), and the request goes to the
//   next To-Path URI: over the connection of that session if the URI is another session of
//   this relay (it is then moved too), otherwise over a connection to that URI's host and
//   port, reused or opened (`connect` action);
// - otherwise it is someone sending to the client, and it goes over the session's connection
//   (§6.4: "the next hop is the next hop back toward the client").
// Each forwarded request gets a new transaction id (§6.4). Bodies are streamed: every piece
// received is put into the next hop's output at once, never gathered whole, and the sender's
// connection stops being read (`wants_input` false) while the next hop's output holds
// `output_window` bytes or more, or while the next hop is busy or still connecting.
//
// Sharing a connection (RFC 4975 §7.1.1). A connection's output carries one frame at a time.
// While a SEND body streams into it, responses and REPORTs for it and requests of other
// senders wait; once the chunk has carried at least 2048 bytes it is interrupted (end-line
// with `+`), the waiting frames go out, and the rest follows later in a new chunk whose
// Byte-Range starts at the first byte not yet sent (range-end `*`). Senders take turns.
//
// Responses and REPORTs (§6.4.1, §6.4.3). A SEND with Failure-Report `yes` is answered 200 by
// the relay as soon as its end-line arrives; `partial` gets only error responses; `no` none.
// Responses from the next hop to forwarded SENDs end there: an error response, no response
// within `transaction_timeout` of the end-line (Failure-Report `yes` only; 408), or the next
// hop closing or unreachable (481) become a failure REPORT to the sender (To-Path: the SEND's
// From-Path) when its Failure-Report is `yes` or `partial`; when the failure is known before
// the relay answered, the answer itself carries it. Responses to other forwarded requests
// (AUTH through this relay, unknown methods) travel back to the previous hop with the paths
// rewritten (§6.4.3); when none comes within `transaction_timeout`, or the next hop closes or
// is unreachable, the relay answers 408 or 481 itself. REPORTs are never answered. A
// sender's connection that closes in the middle of a chunk makes the relay end the forwarded
// chunk with `#`.
//
// Slow senders. A connection that has begun a frame must finish its head within
// `head_timeout` of the head's first byte (heads are at most 16 KiB; so must a whole frame
// other than a SEND, whose body is at most 10 KiB), and must not go silent for
// `frame_idle_timeout` before the frame's end-line; otherwise it is closed like one that
// closed itself mid-chunk. Both clocks run only while the relay reads the connection: while
// it holds the input back (`wants_input` false) they stand, and they start afresh when it
// reads again, so a sender held back by a slow next hop is never blamed for it. A connection
// between frames has no such deadline (probation and the session's Expires cover it). A
// SEND chunk whose sender has sent nothing for a second is interrupted for frames waiting
// behind it even if it is shorter than 2048 bytes, so a trickling sender cannot hold up a
// connection it sends to.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "msrp/digest.hpp"
#include "msrp/endpoint.hpp"
#include "msrp/parser.hpp"
#include "msrp/serializer.hpp"

namespace msrp {

/// What the credential store said to a `lookup` action.
enum class lookup_outcome {
  found,         ///< The user has an HA1 for the realm and algorithm: `ha1` holds it.
  no_such_user,  ///< No HA1 for that user, realm and algorithm: the credentials are wrong.
  unavailable,   ///< The store could not answer (database down, timed out, failing).
};

/// The answer to a `lookup` action, for `relay::credentials`.
struct credential_answer {
  lookup_outcome outcome = lookup_outcome::unavailable;
  /// The HA1 as lowercase hex (RFC 7616 §5.2: the store keeps H(A1), never a password).
  std::string ha1{};
};

/// What the relay knows of a connection it accepted.
struct peer_info {
  bool secure = false;           ///< Accepted on a TLS listener: Use-Path URIs are msrps.
  std::uint16_t local_port = 0;  ///< The listener's port, for Use-Path URIs.
  bool relay = false;            ///< The peer proved itself a relay by a TLS certificate.
  std::string address{};         ///< For notices.
};

namespace relay_actions {

/// Open a connection to the host and port of `target` (TLS for msrps) and report it with
/// `connected(connection)` or `close_connection(connection)`. The relay picks `connection`
/// from 2^62 up, so the caller's ids for accepted connections must stay below that.
struct connect {
  connection_id connection;
  uri target;
};
/// Write what `output(connection)` still holds, then close the connection.
struct close {
  connection_id connection;
};
/// Look up the HA1 of `username` in `realm` for `algorithm` (`digest::sha256` or
/// `digest::md5`) and answer with `credentials(ticket, answer)`, at once or later; the AUTH
/// received on `connection` waits for it. Tickets are never reused.
struct lookup {
  std::uint64_t ticket;
  connection_id connection;
  std::string username;
  std::string realm;
  std::string algorithm;
};
/// Something worth a log line: a session opened, refreshed or ended, an AUTH failed, a
/// REPORT generated, a connection dropped. One line, no credentials in it.
struct notice {
  connection_id connection;
  std::string text;
};

}  // namespace relay_actions

using relay_action = std::variant<relay_actions::connect, relay_actions::close,
                                  relay_actions::lookup, relay_actions::notice>;

class relay {
 public:
  struct config {
    /// The host name in Use-Path URIs; RFC 4976 §4.2 asks for a fully qualified name.
    std::string host = "localhost";
    /// Further names and addresses that mean this relay in a To-Path (such as 127.0.0.1).
    std::vector<std::string> aliases{};
    /// Ports this relay listens on; a To-Path URI with another port is not for this relay.
    std::vector<std::uint16_t> ports{};
    /// The digest realm; RFC 4976 §5.1 suggests the host name.
    std::string realm = "localhost";
    parser::limits limits{};
    /// Expires granted when the AUTH asks none, and the bounds for one it asks (§4.6).
    std::chrono::seconds default_expires{1800};
    std::chrono::seconds min_expires{60};
    std::chrono::seconds max_expires{86400};
    /// How long a nonce from a challenge or a nextnonce may be answered.
    std::chrono::seconds nonce_lifetime{60};
    /// How long a client connection may go without a successful request (§6.1).
    std::chrono::seconds probation{30};
    /// Failed requests (wrong credentials included) that close a connection on probation,
    /// and failed AUTH attempts that close any client connection (§6.1, §6.3).
    unsigned max_failures = 3;
    /// RFC 4976 §6.4.1: a REPORT 408 when the next hop does not answer within 30 seconds.
    std::chrono::seconds transaction_timeout{30};
    /// A frame head, and a whole frame other than a SEND, must be complete this long after
    /// its first byte arrived (slow drip).
    std::chrono::seconds head_timeout{30};
    /// A connection in the middle of a frame is closed after this long without input, as a
    /// write to a peer that stopped reading is (relay_server's `write_timeout`).
    std::chrono::seconds frame_idle_timeout{60};
    /// Output a connection may hold before its senders stop being read.
    std::size_t output_window = 256 * 1024;
    /// Live sessions one user may hold; more are refused 403.
    std::size_t max_sessions_per_user = 64;
    /// A notice with the start line of every frame received (frame tracing).
    bool trace = false;
    /// Connections open at once; one accepted beyond is closed at once.
    std::size_t max_connections = 10'000;
  };

  /// Counters for metrics; they only grow, except the current counts.
  struct stats {
    std::uint64_t connections = 0;     ///< Open now.
    std::uint64_t sessions = 0;        ///< Live now.
    std::uint64_t frames_relayed = 0;  ///< Requests and responses forwarded (chunks count).
    std::uint64_t bytes_relayed = 0;   ///< Body bytes forwarded.
    std::uint64_t auth_successes = 0;
    std::uint64_t auth_failures = 0;      ///< Wrong or unknown credentials.
    std::uint64_t auth_unavailable = 0;   ///< AUTHs answered 500: the store was unavailable.
    std::uint64_t lookups = 0;            ///< Credential lookups waiting for an answer now.
    std::uint64_t reports_generated = 0;  ///< Failure REPORTs the relay wrote.
    std::uint64_t queued_bytes = 0;       ///< Output waiting to be written, all connections.
    std::uint64_t streams = 0;            ///< Requests being passed on now.
  };

  relay(config settings, random_source random, digest::hasher hash);
  ~relay();
  relay(const relay&) = delete;
  relay& operator=(const relay&) = delete;

  // --- Connections

  /// New settings (a reload); the ports the relay listens on are kept.
  void reconfigure(config settings);
  /// A listener is open on `port`: To-Path URIs with this port name the relay (§6.2).
  void listening(std::uint16_t port);
  /// A connection was accepted.
  void accept(connection_id connection, const peer_info& peer);
  /// A connection the relay asked for (`connect` action) is established.
  void connected(connection_id connection);
  /// A connection closed or could not be opened: its sessions end, what was streaming to or
  /// from it fails.
  void close_connection(connection_id connection);
  /// Takes bytes received on `connection` (all of them).
  void receive(connection_id connection, std::string_view bytes);
  /// False while the relay cannot pass on more of this connection's input (back-pressure):
  /// the caller should not read from it until it turns true again after output was consumed.
  bool wants_input(connection_id connection) const;
  /// Bytes to write to `connection`. The view stays valid, whatever else the relay is told,
  /// until all of it has been consumed and `output` is called again (the relay appends
  /// behind it meanwhile), so it can be handed to an asynchronous write as it is.
  std::string_view output(connection_id connection);
  /// Bytes waiting to be written to `connection`, `output` and what queues behind it.
  std::size_t queued(connection_id connection) const;
  /// `n` bytes of `output(connection)` were written.
  void consume_output(connection_id connection, std::size_t n);

  /// The answer to the `lookup` action with `ticket`: the AUTH waiting for it goes on, and so
  /// does the input of its connection. An answer for a connection that closed meanwhile, or
  /// for an unknown ticket, is ignored.
  void credentials(std::uint64_t ticket, credential_answer answer);

  // --- Time, actions, counters

  /// Sets the current time and runs what is due: expiries, timeouts, probation.
  void advance(clock::time_point now);
  /// When `advance` next has something to do, if ever.
  std::optional<clock::time_point> next_deadline() const;
  /// The next action, if any.
  std::optional<relay_action> next_action();
  /// The next connection whose output grew, or whose input may be read again (`wants_input`),
  /// since it was last returned here: the caller wakes its writer and reader. Connections
  /// not returned need no attention, so an event costs the caller nothing per idle connection.
  std::optional<connection_id> next_ready();
  stats statistics() const;

 private:
  struct state;
  std::unique_ptr<state> state_;
};

}  // namespace msrp
