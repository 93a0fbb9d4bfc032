// msrp/srv.hpp: finding a relay from its URI (RFC 4976 §8) through DNS SRV records (RFC 2782).
//
// This part decides, without any I/O, what to look up and in which order to try what was
// found; msrp/net/dns.hpp makes the DNS queries. For a relay URI:
//
//   msrps://relay.example.com:2855;tcp   explicit port: used as it is (RFC 4975 §6)
//   msrps://192.0.2.1:2855;tcp           IP literal: used as it is (it must have a port)
//   msrps://example.com;tcp              a domain name, no port: look up the SRV records of
//                                        _msrps._tcp.example.com, try their targets in the
//                                        RFC 2782 order; without SRV records, the A/AAAA
//                                        records of example.com on port 2855
//
//   auto name = msrp::srv_name(relay);            // "_msrps._tcp.example.com", or none
//   auto ordered = msrp::order_srv(found, random);  // found: the SRV answer
//   auto targets = msrp::relay_targets(relay, ordered);
//
// An msrp: URI (no TLS) is never looked up by SRV: RFC 4976 §8 defines no `_msrp` service,
// as AUTH is only sent over TLS.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "msrp/serializer.hpp"  // random_source
#include "msrp/uri.hpp"

namespace msrp {

/// One DNS SRV record (RFC 2782): where a service is offered and with what preference.
struct srv_record {
  std::uint16_t priority = 0;  ///< Lower is tried first.
  std::uint16_t weight = 0;    ///< Share of the load among records of one priority.
  std::uint16_t port = 0;
  /// The target host, without the trailing dot; "." (or empty) for the root, which as the
  /// only record means the service is decidedly not available at the domain.
  std::string target;

  friend bool operator==(const srv_record&, const srv_record&) = default;
};

/// A host name and port to try, in the order they should be tried.
struct relay_target {
  std::string host;
  std::uint16_t port = 0;

  friend bool operator==(const relay_target&, const relay_target&) = default;
};

/// The default MSRP port (RFC 4975 §15.5), used when neither the URI nor SRV gives one.
inline constexpr std::uint16_t default_port = 2855;

/// The SRV name to look up for the relay URI `relay` (RFC 4976 §8): `_msrps._tcp.<domain>` for
/// an msrps URI whose host is a domain name and which has no port. Empty when the URI is used
/// as it is: it has a port, its host is an IP literal, or it is an msrp URI.
std::optional<std::string> srv_name(const uri& relay);

/// Orders SRV records as RFC 2782 asks: by priority, lowest first; within one priority by a
/// weighted random draw, so that a record of weight w comes first with probability
/// w / (sum of the weights), and records of weight 0 come first only rarely. `random`
/// supplies uniformly random 64-bit values (a seeded generator in tests). The lone "."
/// record is kept; see `relay_targets`.
std::vector<srv_record> order_srv(std::vector<srv_record> records, const random_source& random);

/// The hosts to try for `relay`, in order (RFC 4976 §8), given its SRV records in the order
/// `order_srv` gave: their targets and ports; when there were none, the URI's own host on
/// port 2855. Empty when the only record's target is "." (RFC 2782: decidedly not available).
std::vector<relay_target> relay_targets(const uri& relay, const std::vector<srv_record>& ordered);

}  // namespace msrp
