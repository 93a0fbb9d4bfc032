// msrp/net/relay_server.hpp: the network edge of msrp-relay. Runs an msrp::relay (RFC 4976)
// over TCP and TLS listeners and the connections it opens to next hops.
//
// Like `node`, a relay server owns an I/O thread; the relay core is fed by a reader and a
// writer coroutine per connection (src/net/node.cpp holds both). The reader stops reading a
// connection while the relay holds its input back (`relay::wants_input`), which is how a slow
// next hop slows the sender down without the relay buffering more than a read per connection.
//
// TLS: listeners present the relay's certificate and ask for a client certificate; a client
// whose certificate verifies against `ca_file` is treated as a relay (RFC 4976 §6.1), others
// as clients that must AUTH. Connections to next hops verify the peer against `ca_file` (or
// the system's CAs) and the URI's host name, and offer the relay's certificate, so relays
// that list each other's CA authenticate each other (mutual TLS). A client's handshake must
// finish within `connect_timeout`, and handshakes in progress count against the relay's
// `max_connections`: a client accepted beyond it is closed before its handshake starts.
//
// Credentials: the relay core asks for the HA1 of a user with a `lookup` action; the server
// hands it to the `credential_service` on the I/O thread, which must return at once and answer
// later, from any thread (a pool of database workers, say). The answer is posted back to the
// I/O thread; meanwhile only the connection that sent the AUTH waits (RFC 4976 §6.3), every
// other connection and session goes on. Answers that arrive after the server is gone are
// dropped.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "msrp/net/node.hpp"
#include "msrp/net/tls.hpp"
#include "msrp/relay.hpp"

namespace msrp::net {

/// Returns the HA1 stored for a user in a realm for one algorithm (`digest::md5` or
/// `digest::sha256`), or nothing if there is no such user (RFC 7616 §5.2: never a password).
using credential_lookup = std::function<std::optional<std::string>(
    std::string_view username, std::string_view realm, std::string_view algorithm)>;

/// Called with the answer to a lookup, once, from any thread.
using credential_callback = std::function<void(credential_answer)>;

/// Starts the lookup `query` and returns without waiting for it (it runs on the I/O thread);
/// calls `done` once with the answer, from any thread, now or later.
using credential_service =
    std::function<void(const relay_actions::lookup& query, credential_callback done)>;

/// A `credential_service` that calls `lookup` at once on the I/O thread: for stores in memory
/// and tests, where a lookup cannot fail or block.
credential_service answer_at_once(credential_lookup lookup);

class relay_server {
 public:
  struct options {
    relay::config engine;
    /// The certificate TLS listeners present and next-hop connections offer.
    std::optional<certificate> identity;
    /// CA certificates (PEM file) for next hops and for client certificates of relays;
    /// empty: the system's.
    std::string ca_file;
    std::chrono::milliseconds connect_timeout{10'000};
    std::chrono::milliseconds write_timeout{60'000};
  };

  relay_server(options settings, credential_service credentials);
  /// Closes every connection and stops the I/O thread.
  ~relay_server();
  relay_server(const relay_server&) = delete;
  relay_server& operator=(const relay_server&) = delete;

  /// Listens on `address` (an IPv4 or IPv6 literal) and `port` (0: any free port), with TLS
  /// if `tls`; returns the port, which the relay then counts as its own (RFC 4976 §6.2).
  result<std::uint16_t> listen(const std::string& address, std::uint16_t port, bool tls);
  /// Serves Prometheus text metrics over HTTP on `address` and `port` (0: any free port), each
  /// scrape made by `format` from the relay's counters; returns the port.
  result<std::uint16_t> serve_metrics(const std::string& address, std::uint16_t port,
                                      std::function<std::string(const relay::stats&)> format);
  /// Stops accepting connections (a graceful shutdown); established ones go on.
  void stop_listening();
  /// A reload: new relay settings (the ports are kept) and certificate for new connections.
  void reconfigure(const relay::config& engine, const std::optional<certificate>& identity);
  /// The next log line (a relay notice), waiting at most `timeout`.
  std::optional<std::string> wait_notice(std::chrono::milliseconds timeout);
  relay::stats statistics();

 private:
  struct state;
  std::unique_ptr<state> state_;
};

}  // namespace msrp::net
