// msrp/endpoint.hpp: the RFC 4975 endpoint engine: sessions, transactions, chunking,
// reports and reassembly, with no I/O.
//
// An `endpoint` holds MSRP sessions and the transport connections they use, each known by
// an id the caller chooses. It takes received bytes, messages to send, the current time and
// connection closes; it gives back bytes to write per connection, events for the
// application and its next deadline. It never opens a socket, reads a clock, sleeps or draws
// random numbers itself (STYLE §1): the caller drives it.
//
//   msrp::endpoint e(config, random);
//   auto s = e.open_session({.host = "alice.example.com", .port = 7777});
//   e.set_remote_path(s, peer_path);      // the peer's a=path from SDP
//   e.bind(s, 1);                         // the active side connected; connection id 1
//   e.send(s, msrp::outgoing_message::text("text/plain", "hi"));
//   loop: write(e.output(1)); e.consume_output(1, written);
//         e.receive(1, read_bytes); e.advance(now);
//         while (auto ev = e.next_event()) handle(*ev);
//         sleep until e.next_deadline() or I/O
//
// Theory of operation.
//
// Sessions. A session has a local URI with a fresh random session-id (at least 80 bits,
// RFC 4975 §6, §14) and, once signalling is done, the peer's path. It is bound to at most one
// connection: the active side binds it when it has connected (§5.4), the passive side when
// the first request naming the session's URI arrives on a connection; a session that has no
// remote path yet (no SDP was exchanged) takes the From-Path of that request, less the
// session's own relays at its front. A request whose To-Path names no open session is
// answered 481; one naming a session bound to another connection is answered 506 (§5.4,
// §7.3). Several sessions may share a connection.
//
// Sending (§7.1, §7.1.1). `send` queues a message; its bytes are pulled from a `body_reader`
// only when there is room in the connection's output window, so a file is never read into
// memory whole and a slow peer holds the sender back. A message goes out in as few chunks as
// the chunk ceiling allows. A chunk in progress is interrupted (ended with `+`, after at least
// 2048 bytes) only when other traffic waits on the same connection, or when its message pauses
// for success REPORTs (see Pacing). Responses and REPORTs go first, then the other messages in
// turn, so a chat line sent during a file transfer goes out after at most one chunk. `abort`
// ends the message with `#`.
//
// Transactions (§7.1.1, §7.2). A chunk sent with Failure-Report `yes` expects a response
// within `transaction_timeout` of its last byte leaving (`consume_output`); otherwise the
// message fails with 408 (§10.4). Responses are matched by transaction id; unknown and
// duplicate responses are ignored. A non-200 response or failure REPORT fails the message
// and stops its chunks (§7.3.2, §10.5).
//
// Outcomes. Every message sent ends in exactly one `send_finished` event:
//   delivered  - Success-Report yes: success REPORTs cover every byte (and, with
//                Failure-Report yes, every chunk got 200); Success-Report no with
//                Failure-Report yes: every chunk got 200.
//   sent       - neither report was asked for: the last byte was written; no confirmation
//                can come.
//   failed     - a response or REPORT with an error status, a timeout (408), the
//                connection or session closed (status 0), or a body_reader error.
//   aborted    - the application called `abort`.
//
// Receiving (§7.3, §7.3.1). Chunks are reassembled by Message-ID in any order, overlapping
// or repeated, with known or `*` totals; the last chunk received takes precedence. A message
// that completes within `whole_message_limit` bytes is delivered whole (`message_received`);
// a larger one is streamed (`message_started`, `message_piece` with its offset, then
// `message_completed`), so a file goes to disk with bounded memory. An aborted (`#`) or
// refused message ends in `message_aborted`. A message whose Message-ID was already
// delivered is acknowledged but not delivered again.
//
// Responses the engine gives: 200; 400 for malformed requests; 413 when a message exceeds
// the session's max-size (§10.5); 415 for a media type outside accept-types, or a
// message/cpim payload outside accept-types and accept-wrapped-types (§8.6); 481; 501 for
// methods other than SEND and REPORT; 506. Failure-Report `no` suppresses every response,
// `partial` the 200s (§7.2); REPORTs are never answered (§7.1.2). A success REPORT goes out
// when a message asking for one is complete (§7.1.3), and with `progress_reports` also while
// it arrives (see Pacing); `reject` sends a failure REPORT for a message the application
// could not take (§7.1.4).
//
// Pacing (RFC 4975 §7.1.3). Success REPORTs may also come while a message arrives, each
// covering the bytes received so far; both uses of this are off by default. With
// `progress_reports`, the receiver of a message asking for success REPORTs sends `000 200`
// with `Byte-Range: 1-N/total` (`*` while the total is unknown) whenever N, the bytes it holds
// contiguously from the start (streamed or buffered alike), has grown by that many since the
// last; the final REPORT follows on completion as before, so ranges may overlap. With
// `unconfirmed_window`, a message sent with Success-Report yes puts no body bytes into the
// output while its bytes written, less those its success REPORTs cover from the start, reach
// the window (reads are cut to the room left), and goes on as REPORTs advance: a relay that
// answers 200 as soon as it has queued a chunk, with no back-pressure of its own, then holds
// at most a window of it. A message that pauses ends its chunk with `+`, since the chunk's
// response (perhaps a refusal, which no REPORT follows) comes only after the end-line and a
// relay may pass on only whole chunks; it starts the next chunk only with room for 2048 bytes
// (§7.1.1; or for a shorter last chunk, or half the window). Meanwhile the other messages and
// sessions on the connection go on. It waits `report_timeout`, counted from when its bytes
// left the output or a REPORT last advanced, then fails with 408 and ends with `#` as after
// `abort`: a receiver without incremental REPORTs gives a clear failure, not a hang. Keep the
// receiver's step well below the sender's window (a quarter, say), or the sender waits for a
// REPORT that is not due yet.
//
// A connection whose byte stream is malformed gets a 400 (413 for a body over its limit) where
// the transaction id and both paths of the broken request are known, unless it is a REPORT or
// has Failure-Report `no` (§7.1.2, §7.2); then a `connection_failed` event: the caller writes
// the remaining output and closes it. The response to a chunk goes out ahead of the success
// REPORT it completes.
//
// Relays (RFC 4976 §5.1). A client behind relays binds its session to the connection to its
// first relay and calls `authenticate` for each relay, innermost first. Each call sends AUTH
// with To-Path = the relay path so far, then the relay; a 401 is answered once with Digest
// credentials (again only after a `stale` challenge), a 423 is retried once with the Expires
// moved into the relay's bounds, and a 200 must prove the relay knows the password
// (Authentication-Info rspauth) before its Use-Path becomes the session's relay path. Every
// call ends in one `auth_finished` event. At 80 % of the Expires the endpoint sends AUTH again
// by itself (with the relay's `nextnonce`, if it gave one) and reports that refresh with one
// more `auth_finished`. With a relay path, requests go out with To-Path = relay path + remote
// path, and `local_path` (the relay path reversed, then the local URI) is what the session
// offers in SDP. Responses and REPORTs follow the From-Path of the request they answer, which
// names the relays already. AUTH goes out with the responses and REPORTs, ahead of SEND chunks;
// its response is due within `transaction_timeout` (408 otherwise), and the connection or
// session closing ends it with status 0. The endpoint never answers AUTH itself (501).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "msrp/digest.hpp"
#include "msrp/message.hpp"
#include "msrp/parser.hpp"
#include "msrp/serializer.hpp"

namespace msrp {

using clock = std::chrono::steady_clock;

/// Caller-chosen id of a transport connection.
using connection_id = std::uint64_t;
/// Handle of a session in an endpoint (never 0).
using session_handle = std::uint64_t;
/// Handle of a message sent through an endpoint (never 0).
using message_handle = std::uint64_t;

/// Reads an outgoing body: fills `into` with bytes from position `offset` (0-based) and
/// returns how many it wrote. It returns fewer than `into.size()` only at the end of the
/// body. An error aborts the message.
using body_reader = std::function<result<std::size_t>(std::uint64_t offset, std::span<char> into)>;

/// A message to send.
struct outgoing_message {
  /// The media type; empty for a bodiless SEND (then `size` must be 0).
  std::string content_type;
  /// The body size in bytes.
  std::uint64_t size = 0;
  /// Where the body comes from.
  body_reader read;
  report_mode success_report = report_mode::no;
  report_mode failure_report = report_mode::yes;
  /// Further MIME headers for every chunk, such as Content-Disposition; written before
  /// Content-Type, which §7.1 requires to be last.
  std::vector<header_field> headers;

  /// A message whose body is held in memory.
  static outgoing_message text(std::string content_type, std::string body);
};

/// What a session is, as offered or answered in SDP (RFC 4975 §8).
struct session_settings {
  bool secure = false;             ///< msrps (TLS) rather than msrp.
  std::string host = "127.0.0.1";  ///< Host of the local URI; IPv6 without brackets.
  /// Port of the local URI; none for a side that never listens (then `host` should be a
  /// name, such as `client.invalid` as RFC 7977 §5.2 does).
  std::optional<std::uint16_t> port = 2855;
  std::string transport = "tcp";  ///< Transport parameter of the local URI.
  /// Media types we accept (a=accept-types): `*`, `type/*` or `type/subtype`.
  std::vector<std::string> accept_types = {"*"};
  /// Media types we accept only inside message/cpim (a=accept-wrapped-types).
  std::vector<std::string> accept_wrapped_types{};
  /// Largest message we take (a=max-size); larger ones are refused with 413.
  std::optional<std::uint64_t> max_size{};
};

/// How a sent message ended (see the theory of operation).
enum class send_outcome { delivered, sent, failed, aborted };

/// What a relay knows the client by (RFC 4976 §5.1, §6.3): the Digest user name and password.
struct relay_account {
  std::string username;
  std::string password;
};

/// Events for the application.
namespace events {

/// A complete message of at most `whole_message_limit` bytes.
struct message_received {
  session_handle session;
  std::string message_id;
  message head;  ///< The head of the chunk that completed it.
  std::string body;
};
/// The start of a large message; `message_piece` events follow.
struct message_started {
  session_handle session;
  std::string message_id;
  message head;                       ///< The head of the first chunk that arrived.
  std::optional<std::uint64_t> size;  ///< The total, when a chunk stated it.
};
/// Bytes of a large message at `offset` (0-based). Pieces may overlap or come out of order;
/// a later piece takes precedence.
struct message_piece {
  session_handle session;
  std::string message_id;
  std::uint64_t offset;
  std::string bytes;
};
/// Every byte of a large message has arrived.
struct message_completed {
  session_handle session;
  std::string message_id;
  std::uint64_t size;
};
/// A message in progress ended without completing: aborted by the sender (`#`), refused
/// (413), or cut off by the connection's end. `status` is the refusal code, or 0.
struct message_aborted {
  session_handle session;
  std::string message_id;
  int status;
};
/// A sent message reached its outcome. `status` is the MSRP status code behind it (200 for
/// delivered, the error code for failed, 408 for a timeout, 0 for local causes).
struct send_finished {
  session_handle session;
  message_handle message;
  send_outcome outcome;
  int status;
  std::string comment;
};
/// The session ended: its connection closed or the application closed it. Its unfinished
/// messages have had their events (send_finished failed, message_aborted) before this one.
struct session_closed {
  session_handle session;
  std::string reason;
};
/// The connection's byte stream is malformed; write what `output` still holds and close it.
struct connection_failed {
  connection_id connection;
  std::error_code error;
};
/// An AUTH exchange ended: an `authenticate` call or an automatic refresh (RFC 4976 §5.1).
///
/// `status` is 200 on success; on failure it is the relay's final status (401 when it refused
/// the credentials or sent no challenge the endpoint can answer, 403, 423, ...), 408 when no
/// response came within `transaction_timeout`, or 0 for a local cause: the connection or
/// session closed, or a 200 the endpoint does not trust (no valid proof that the relay knows
/// the password, no Use-Path). `use_path` and `expires` are the relay's Use-Path and how long
/// it stays valid; empty and 0 on failure.
struct auth_finished {
  session_handle session;
  int status;
  std::vector<uri> use_path;
  std::chrono::seconds expires;
  std::string comment;
};

}  // namespace events

using event =
    std::variant<events::message_received, events::message_started, events::message_piece,
                 events::message_completed, events::message_aborted, events::send_finished,
                 events::session_closed, events::connection_failed, events::auth_finished>;

class endpoint {
 public:
  struct config {
    parser::limits limits;
    /// Most body bytes in one SEND chunk (for relays that cannot take large frames).
    std::uint64_t chunk_ceiling = UINT64_MAX;
    /// Most bytes `output` holds for one connection; bodies are read only to fill it.
    std::size_t output_window = 64 * 1024;
    /// Received messages up to this size are delivered whole; larger ones are streamed.
    std::uint64_t whole_message_limit = 64 * 1024;
    /// RFC 4975 §7.1.1: a chunk's response is due within 30 seconds of its last byte.
    std::chrono::milliseconds transaction_timeout{30'000};
    /// How long a message asking for a success REPORT waits for it after its last byte, and
    /// a message paused by `unconfirmed_window` for a REPORT that advances.
    std::chrono::milliseconds report_timeout{120'000};
    /// RFC 4975 §7.1.3: while a message that asks for success REPORTs arrives, send one each
    /// time this many more bytes from its start have been received (see Pacing); 0: only the
    /// final one.
    std::uint64_t progress_reports{};
    /// Most body bytes of a message sent with Success-Report yes that may be written before
    /// success REPORTs cover them (see Pacing); 0: unlimited. Under 4 KiB, a chunk of at most
    /// 2048 bytes, which goes out whole, may overshoot it.
    std::uint64_t unconfirmed_window{};
    /// The hash function for Digest authentication to relays (MD5 and SHA-256); needed only
    /// by `authenticate`.
    digest::hasher hash{};
  };

  /// `random` supplies session-ids, transaction ids, Message-IDs and Digest client nonces.
  endpoint(config settings, random_source random);
  ~endpoint();
  endpoint(const endpoint&) = delete;
  endpoint& operator=(const endpoint&) = delete;

  // --- Sessions

  /// Opens a session with a fresh local URI.
  session_handle open_session(const session_settings& settings);
  /// The session's local URI (the last entry of its a=path).
  const uri& local_uri(session_handle session) const;
  /// Sets the peer's path (a=path, leftmost first): the To-Path of our requests, after the
  /// relay path.
  void set_remote_path(session_handle session, std::vector<uri> path);
  /// Binds the session to a connection (the active side, once connected).
  void bind(session_handle session, connection_id connection);
  /// Closes the session: its unfinished messages fail, its URI stops matching.
  void close_session(session_handle session);

  // --- Relays (RFC 4976)

  /// Authenticates the session to `relay` with `account`, asking for its URIs to stay valid
  /// for `expires` (the relay's choice when empty).
  ///
  /// The session must be bound to the connection to its first relay, and authenticates to its
  /// relays one at a time, innermost first: the AUTH goes to To-Path = the relay path (the
  /// Use-Path of the previous successful call, empty at first) followed by `relay`, so an
  /// outer relay is reached through the inner ones (§5.1). On success the relay's Use-Path
  /// becomes the session's relay path, and the endpoint refreshes it at 80 % of its Expires
  /// for as long as the session lasts, until a refresh fails. A refresh of the outermost relay
  /// that returns another Use-Path replaces the relay path; one of an inner relay does not.
  /// A failed refresh leaves the relay path as it is, though the relay will soon drop it.
  /// Authenticate before sending: a SEND chunk takes the relay path as it is when written.
  ///
  /// Ends in one `events::auth_finished`: 200 with the Use-Path and its lifetime, or the
  /// failure (see there). The relay path changes only on success. Preconditions (asserted):
  /// `config::hash` is set, the session is bound, and no other `authenticate` of the session
  /// is in progress. On a closed session it fails at once with status 0.
  void authenticate(session_handle session, uri relay, relay_account account,
                    std::optional<std::chrono::seconds> expires = {});
  /// What the session offers as its a=path in SDP: the relay path reversed, then the local
  /// URI (§5.1). Without relays, just the local URI.
  std::vector<uri> local_path(session_handle session) const;

  // --- Sending

  /// Queues a message; it goes out once the session has a remote path and a connection.
  message_handle send(session_handle session, outgoing_message message);
  /// Queues a bodiless SEND (`Byte-Range: 1-0/0`), as the active side sends to bind a new
  /// connection (§5.4).
  message_handle send_empty(session_handle session);
  /// Abandons a message: a chunk in progress ends with `#`; the outcome is `aborted`.
  void abort(message_handle message);
  /// Sends a failure REPORT with `status` for a received message (§7.1.4), if its sender
  /// asked for failure reports. Returns false if the message is unknown.
  bool reject(session_handle session, std::string_view message_id, int status);
  /// Bytes of a message put into the connection's output so far; 0 once it has finished.
  std::uint64_t bytes_sent(message_handle message) const;

  // --- Connections

  /// Takes bytes received on `connection`.
  void receive(connection_id connection, std::string_view bytes);
  /// Bytes to write to `connection` (at most `output_window`, or a single frame that is larger);
  /// valid until the next call.
  std::string_view output(connection_id connection);
  /// `n` bytes of `output(connection)` were written.
  void consume_output(connection_id connection, std::size_t n);
  /// The connection closed: its sessions' unfinished messages fail or abort.
  void close_connection(connection_id connection);

  // --- Time and events

  /// Sets the current time and runs what is due: timeouts.
  void advance(clock::time_point now);
  /// When `advance` next has something to do, if ever.
  std::optional<clock::time_point> next_deadline() const;
  /// The next event, if any.
  std::optional<event> next_event();

 private:
  struct state;
  std::unique_ptr<state> state_;
};

}  // namespace msrp
