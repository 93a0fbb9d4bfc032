// apps/msrp/cli.hpp: what the msrp command's parts share.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "msrp/net/node.hpp"

namespace msrp::cli {

/// Exit statuses scripts can rely on (README "The msrp command").
enum exit_status : int {
  ok = 0,
  not_delivered = 1,  ///< The peer refused the message, it failed or was aborted.
  bad_input = 2,      ///< Bad arguments, unreadable file, malformed URI or SDP.
  network = 3,        ///< Unreachable peer, TLS failure, connection lost.
};

/// A failure that ends the command: the one-line message and the exit status.
struct failure {
  exit_status status;
  std::string message;
};

/// How the two sides meet, from the command line.
struct meeting_options {
  // Quick mode: one side listens and prints its URI, the other connects to it.
  std::string listen;       ///< [address:]port to listen on; "" unless listening.
  std::string connect;      ///< The peer's MSRP URI (or path); "" unless connecting.
  std::string fingerprint;  ///< The peer's certificate fingerprint, "sha-256 AB:CD:...".
  std::string uri_file;     ///< Where a listening side writes its URI (and fingerprint).
  // Strict SDP offer/answer through files ("-" for stdin/stdout).
  std::string write_offer, read_answer, read_offer, write_answer;
  bool tls = false;                 ///< Listen with TLS (msrps).
  std::string cert_file, key_file;  ///< Our certificate; a fresh self-signed one if empty.
  std::string ca_file;              ///< CAs to verify peers that give no fingerprint.
  std::vector<std::string> accept_types{"*"};
  std::optional<std::uint64_t> max_size;
  std::uint64_t chunk_size = 0;  ///< Chunk ceiling; 0: none.
  /// Pacing (RFC 4975 §7.1.3), for relays without back-pressure: at most this many bytes sent
  /// and not yet covered by the receiver's success REPORTs; 0: no limit.
  std::uint64_t pace = 0;
  /// An incremental success REPORT for every this many bytes received; 0: only at the end.
  std::uint64_t progress_reports = 1024 * 1024;
  // Through a relay (RFC 4976): connect to it, AUTH, and use its Use-Path. The connecting
  // side sends to the path in `connect`; the other writes its path to `uri_file`.
  /// Our relays, innermost first, such as msrps://relay.example.com:2855;tcp (RFC 4976 §5.1).
  std::vector<std::string> relay;
  /// The DNS server, ADDRESS[:PORT] (IPv4), that finds a relay given as a domain without port
  /// (RFC 4976 §8: SRV, then A/AAAA); "" for the system's (/etc/resolv.conf).
  std::string dns_server;
  std::string user;           ///< The Digest user name.
  std::string password_file;  ///< First line: the password (or $MSRP_PASSWORD); mode 0600.
};

/// A session with a peer, ready to send and receive.
struct meeting {
  msrp::session_handle session = 0;
  std::vector<std::string> peer_accept_types{"*"};  ///< From the peer's SDP, if any.
};

/// Builds the node the options ask for: our certificate (loaded, or a fresh self-signed one),
/// the CA file, the chunk ceiling.
std::variant<net::node::options, failure> node_options(const meeting_options& options);

/// Meets the peer: listens or connects, exchanges SDP when asked. Where this side is active
/// it connects and binds the session; a passive side is bound by the peer's first request.
std::variant<meeting, failure> meet(net::node& node, const meeting_options& options,
                                    const net::node::options& settings);

}  // namespace msrp::cli
