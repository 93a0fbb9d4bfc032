// msrp/net/node.hpp: the network edge. Runs an msrp::endpoint over TCP and TLS connections.
//
// A `node` owns an I/O thread with one Asio io_context and the endpoint that every one of
// its connections feeds (STYLE §5): per connection a reader coroutine passes received bytes
// to the endpoint and a writer coroutine writes the endpoint's output, so the endpoint's
// output window is the write back-pressure; a watchdog coroutine runs the endpoint's
// timeouts. Several sessions may share one connection; the endpoint demultiplexes them by
// To-Path.
//
// The calls below may be made from any thread: each runs on the I/O thread and waits for
// it. Events (the endpoint's, plus connections opening and closing) are queued for
// `wait_event`. Asio and OpenSSL stay out of this header, so programs that use a node
// compile quickly.
//
// TLS (msrps, RFC 4975 §5.4, §14.2, §14.4): a listener with TLS presents the node's
// certificate. A connecting side verifies the peer either by the certificate fingerprint
// from the peer's SDP (RFC 8122), which makes self-signed certificates safe, or, without a
// fingerprint, against the system's CAs (or a given CA file) and the URI's host name. A
// listener checks a client certificate against the fingerprints it was told to expect.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <variant>
#include <vector>

#include "msrp/endpoint.hpp"
#include "msrp/net/tls.hpp"
#include "msrp/sdp.hpp"

namespace msrp::net {

/// Errors of the network edge.
enum class net_errc {
  fingerprint_mismatch = 1,  ///< The peer's certificate does not match its SDP fingerprint.
  no_certificate,            ///< TLS needs a certificate and the node has none.
  resolve_failed,            ///< The host name of the URI did not resolve.
  connect_timeout,           ///< The TCP or TLS connection did not complete in time.
  write_timeout,             ///< The peer stopped reading for longer than `write_timeout`.
};
const std::error_category& net_category() noexcept;
inline std::error_code make_error_code(net_errc e) noexcept {
  return {static_cast<int>(e), net_category()};
}

/// A connection was established (either side).
struct connection_opened {
  connection_id connection;
  std::string peer;  ///< Address and port of the other side.
};
/// A connection ended; `error` says why (zero for a clean close by the peer or us).
struct connection_closed {
  connection_id connection;
  std::error_code error;
};

using node_event = std::variant<msrp::event, connection_opened, connection_closed>;

class node {
 public:
  struct options {
    endpoint::config engine;
    /// The certificate TLS listeners present and TLS clients offer; required for TLS
    /// listening.
    std::optional<certificate> identity;
    /// CA certificates (PEM file) to verify peers without a fingerprint; empty: the system's.
    std::string ca_file;
    /// How long connecting (TCP and TLS handshake) may take.
    std::chrono::milliseconds connect_timeout{10'000};
    /// How long a write may stall before the connection is dropped.
    std::chrono::milliseconds write_timeout{60'000};
  };

  explicit node(options settings);
  /// Closes every connection and stops the I/O thread.
  ~node();
  node(const node&) = delete;
  node& operator=(const node&) = delete;

  // --- The endpoint's operations (see endpoint.hpp), run on the I/O thread.

  session_handle open_session(const session_settings& settings);
  uri local_uri(session_handle session);
  void set_remote_path(session_handle session, std::vector<uri> path);
  void bind(session_handle session, connection_id connection);
  void close_session(session_handle session);
  /// RFC 4976 client side: see endpoint::authenticate; the result comes as an
  /// `events::auth_finished` event. Digest hashing is built in.
  void authenticate(session_handle session, uri relay, relay_account account,
                    std::optional<std::chrono::seconds> expires = {});
  std::vector<uri> local_path(session_handle session);
  message_handle send(session_handle session, outgoing_message message);
  message_handle send_empty(session_handle session);
  void abort(message_handle message);
  bool reject(session_handle session, std::string_view message_id, int status);
  std::uint64_t bytes_sent(message_handle message);

  // --- Transport

  /// Listens on `address` (an IPv4 or IPv6 literal) and `port` (0: any free port), with TLS
  /// if `tls`; returns the port. Accepted connections are served until the node ends.
  result<std::uint16_t> listen(const std::string& address, std::uint16_t port, bool tls);
  /// Accept a TLS client only if its certificate matches one of these (from the peer's SDP).
  void expect_client(const fingerprint& peer);
  /// An IP address and port to connect to, found by relay discovery (net/dns.hpp).
  struct peer_address {
    std::string host;  ///< An IPv4 or IPv6 address as text (IPv6 without brackets).
    std::uint16_t port = 0;
  };
  /// Connects to the host and port of `target` (TLS for msrps), or to `at` when given (an
  /// address found for `target` through DNS SRV, RFC 4976 §8), verifying the peer by `peer`
  /// when given (RFC 8122), otherwise by CA and the host name of `target` (RFC 4976 §9.2),
  /// which is also the name sent in SNI. Returns the connection id.
  ///
  /// Errors: `net_errc::resolve_failed`, `net_errc::connect_timeout` (TCP or TLS),
  /// `net_errc::fingerprint_mismatch`, or the socket's or TLS's own error.
  result<connection_id> connect(const uri& target, const std::optional<fingerprint>& peer,
                                const std::optional<peer_address>& at = {});
  /// Closes a connection; its sessions fail.
  void close(connection_id connection);

  /// The next event, waiting at most `timeout`; empty on timeout.
  std::optional<node_event> wait_event(std::chrono::milliseconds timeout);

 private:
  struct state;
  std::unique_ptr<state> state_;
};

}  // namespace msrp::net

template <>
struct std::is_error_code_enum<msrp::net::net_errc> : std::true_type {};
