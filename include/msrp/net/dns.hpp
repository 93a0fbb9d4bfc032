// msrp/net/dns.hpp: the DNS lookups of relay discovery (RFC 4976 §8): SRV records, then the
// A and AAAA records of their targets.
//
//   auto server = msrp::net::parse_dns_server("127.0.0.1:5353");  // or std::nullopt
//   auto found = msrp::net::find_relay(relay, server, random);
//   for (const auto& a : *found) { /* try a.address, a.port; on failure the next */ }
//
// The queries are blocking; a client looks up its relay once, before it connects. They go
// through glibc's stub resolver (libresolv: res_nquery and the ns_parse functions), which
// asks the servers of /etc/resolv.conf with their timeouts and retries, and parses SRV
// answers, name compression included. It needs no package beyond libc (c-ares would add
// asynchronous queries, which a client that waits for its relay anyway has no use for;
// Asio's resolver, getaddrinfo, knows no SRV). Address records go through getaddrinfo (so
// /etc/hosts counts) unless a server is given: then SRV, A and AAAA all come from it.
//
// Errors are `dns_errc` values in a `std::error_code` of `dns_category()`.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "msrp/result.hpp"
#include "msrp/srv.hpp"

namespace msrp::net {

/// Errors of DNS lookups.
enum class dns_errc {
  not_found = 1,   ///< The name does not exist or has no records of the kind asked.
  server_failure,  ///< No usable answer: the server failed, refused or did not answer in time.
  bad_answer,      ///< The answer could not be parsed.
};
const std::error_category& dns_category() noexcept;
inline std::error_code make_error_code(dns_errc e) noexcept {
  return {static_cast<int>(e), dns_category()};
}

/// A DNS server to ask instead of those in /etc/resolv.conf.
struct dns_server {
  std::string address;  ///< An IPv4 address.
  std::uint16_t port = 53;
};

/// Parses `ADDRESS[:PORT]`, such as `127.0.0.1:5353` or `192.0.2.53` (port 53). Only IPv4:
/// glibc's resolver state takes other servers than /etc/resolv.conf's only as IPv4 addresses
/// (`nsaddr_list`). Empty if `text` is not one.
std::optional<dns_server> parse_dns_server(std::string_view text);

/// The SRV records of `name` (such as `_msrps._tcp.example.com`), as the answer lists them,
/// asked of `server` or else of the system's servers.
///
/// Errors: `not_found` when the name does not exist (NXDOMAIN) or has no SRV records;
/// `server_failure` when no server gave an answer (SERVFAIL, REFUSED, timeout); `bad_answer`
/// when the answer is malformed.
result<std::vector<srv_record>> lookup_srv(const std::string& name,
                                           const std::optional<dns_server>& server);

/// The addresses of `host` as text, IPv6 before IPv4: with `server`, its AAAA and A records
/// there; without, those getaddrinfo finds (/etc/hosts, then the system's DNS servers).
///
/// Errors: `not_found` when `host` has no address; `server_failure` when no server answered.
result<std::vector<std::string>> lookup_addresses(const std::string& host,
                                                  const std::optional<dns_server>& server);

/// One address to try for a relay.
struct relay_address {
  std::string host;     ///< The SRV target (or the URI's domain) the address is for.
  std::string address;  ///< An IPv4 or IPv6 address as text.
  std::uint16_t port = 0;
};

/// Finds where the relay `relay` is, a URI for which `srv_name` gives a name (an msrps URI with
/// a domain name and no port), as RFC 4976 §8 says: its SRV records, ordered by `order_srv`
/// with `random`, each target's addresses in turn; without SRV records, the domain's own
/// addresses on port 2855. Returns the addresses in the order to try them. A target whose
/// addresses cannot be found is left out.
///
/// Errors: `not_found` when there is no address to try (no SRV and no address records, or a
/// lone "." target); `server_failure` or `bad_answer` when the SRV lookup fails so, or when no
/// target has an address and the last address lookup failed so.
result<std::vector<relay_address>> find_relay(const uri& relay,
                                              const std::optional<dns_server>& server,
                                              const random_source& random);

}  // namespace msrp::net

template <>
struct std::is_error_code_enum<msrp::net::dns_errc> : std::true_type {};
