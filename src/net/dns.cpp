// DNS lookups for relay discovery with glibc's stub resolver (see msrp/net/dns.hpp for why).
#include "msrp/net/dns.hpp"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>
#include <sys/socket.h>

#include <array>
#include <charconv>
#include <cstring>
#include <memory>

namespace msrp::net {
namespace {

class category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "msrp.dns"; }
  std::string message(int value) const override {
    switch (static_cast<dns_errc>(value)) {
      case dns_errc::not_found:
        return "no such DNS records";
      case dns_errc::server_failure:
        return "DNS server failed or did not answer";
      case dns_errc::bad_answer:
        return "malformed DNS answer";
    }
    return "unknown DNS error";
  }
};

/// A resolver state of our own (thread-safe, unlike the global `_res`), asking `server` when
/// given instead of the servers of /etc/resolv.conf.
class resolver_state {
 public:
  explicit resolver_state(const std::optional<dns_server>& server) {
    std::memset(&state_, 0, sizeof state_);
    initialized_ = res_ninit(&state_) == 0;
    ready_ = initialized_;
    if (!ready_ || !server) return;
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(server->port);
    ready_ = inet_pton(AF_INET, server->address.c_str(), &address.sin_addr) == 1;
    state_.nscount = 1;
    state_.nsaddr_list[0] = address;
  }
  ~resolver_state() {
    if (initialized_) res_nclose(&state_);
  }
  resolver_state(const resolver_state&) = delete;
  resolver_state& operator=(const resolver_state&) = delete;

  /// The answer section's records of `type` for `name`, each as a view of the whole message
  /// and the record, passed to `take`.
  template <class Take>
  std::error_code query(const std::string& name, ns_type type, Take take) {
    if (!ready_) return make_error_code(dns_errc::server_failure);
    std::array<unsigned char, NS_MAXMSG> answer;
    const int length = res_nquery(&state_, name.c_str(), ns_c_in, type, answer.data(),
                                  static_cast<int>(answer.size()));
    if (length < 0) {
      // HOST_NOT_FOUND: NXDOMAIN; NO_DATA: the name exists without such records.
      const bool absent = state_.res_h_errno == HOST_NOT_FOUND || state_.res_h_errno == NO_DATA;
      return make_error_code(absent ? dns_errc::not_found : dns_errc::server_failure);
    }
    ns_msg message;
    if (ns_initparse(answer.data(), length, &message) != 0) {
      return make_error_code(dns_errc::bad_answer);
    }
    bool any = false;
    for (int i = 0; i < ns_msg_count(message, ns_s_an); ++i) {
      ns_rr record;
      if (ns_parserr(&message, ns_s_an, i, &record) != 0) {
        return make_error_code(dns_errc::bad_answer);
      }
      // Skips the CNAMEs that lead to the records (RFC 1034 §3.6.2).
      if (ns_rr_type(record) != type) continue;
      if (!take(message, record)) return make_error_code(dns_errc::bad_answer);
      any = true;
    }
    return any ? std::error_code{} : make_error_code(dns_errc::not_found);
  }

 private:
  struct __res_state state_;
  bool initialized_ = false;  // res_nclose frees what res_ninit allocated
  bool ready_ = false;        // initialized and, if asked, pointed at the given server
};

// RFC 2782, "The format of the SRV RR": Priority, Weight and Port as 16-bit numbers in network
// order, then Target, a domain name (compressed in answers, as RFC 3597 §4 lets old types be).
bool read_srv(const ns_msg& message, const ns_rr& record, std::vector<srv_record>& into) {
  const unsigned char* data = ns_rr_rdata(record);
  if (ns_rr_rdlen(record) < 7) return false;
  char target[NS_MAXDNAME];
  if (dn_expand(ns_msg_base(message), ns_msg_end(message), data + 6, target, sizeof target) < 0) {
    return false;
  }
  into.push_back({static_cast<std::uint16_t>(ns_get16(data)),
                  static_cast<std::uint16_t>(ns_get16(data + 2)),
                  static_cast<std::uint16_t>(ns_get16(data + 4)), target});
  return true;
}

/// Appends the A (or AAAA) records of `host` to `into`, as text.
std::error_code query_addresses(resolver_state& resolver, const std::string& host, int family,
                                std::vector<std::string>& into) {
  const auto size = family == AF_INET6 ? sizeof(in6_addr) : sizeof(in_addr);
  return resolver.query(host, family == AF_INET6 ? ns_t_aaaa : ns_t_a,
                        [&](const ns_msg&, const ns_rr& record) {
                          char text[INET6_ADDRSTRLEN];
                          if (ns_rr_rdlen(record) != size ||
                              !inet_ntop(family, ns_rr_rdata(record), text, sizeof text)) {
                            return false;
                          }
                          into.emplace_back(text);
                          return true;
                        });
}

/// The addresses getaddrinfo finds for `host`, IPv6 first.
result<std::vector<std::string>> system_addresses(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const int status = getaddrinfo(host.c_str(), nullptr, &hints, &found);
  if (status == EAI_NONAME || status == EAI_NODATA) return make_error_code(dns_errc::not_found);
  if (status != 0) return make_error_code(dns_errc::server_failure);
  const std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> owned(found, freeaddrinfo);
  std::vector<std::string> v6, v4;
  for (const auto* a = found; a; a = a->ai_next) {
    char text[INET6_ADDRSTRLEN];
    const void* address =
        a->ai_family == AF_INET6
            ? static_cast<const void*>(
                  &reinterpret_cast<const sockaddr_in6*>(a->ai_addr)->sin6_addr)
            : static_cast<const void*>(&reinterpret_cast<const sockaddr_in*>(a->ai_addr)->sin_addr);
    if (!inet_ntop(a->ai_family, address, text, sizeof text)) continue;
    (a->ai_family == AF_INET6 ? v6 : v4).emplace_back(text);
  }
  v6.insert(v6.end(), v4.begin(), v4.end());
  if (v6.empty()) return make_error_code(dns_errc::not_found);
  return v6;
}

}  // namespace

const std::error_category& dns_category() noexcept {
  static const category instance;
  return instance;
}

std::optional<dns_server> parse_dns_server(std::string_view text) {
  dns_server server;
  const auto colon = text.find(':');
  server.address = std::string(text.substr(0, colon));
  in_addr ignored;
  if (inet_pton(AF_INET, server.address.c_str(), &ignored) != 1) return std::nullopt;
  if (colon != std::string_view::npos) {
    const auto digits = text.substr(colon + 1);
    const auto [end, error] =
        std::from_chars(digits.data(), digits.data() + digits.size(), server.port);
    if (error != std::errc{} || end != digits.data() + digits.size() || server.port == 0) {
      return std::nullopt;
    }
  }
  return server;
}

result<std::vector<srv_record>> lookup_srv(const std::string& name,
                                           const std::optional<dns_server>& server) {
  resolver_state resolver(server);
  std::vector<srv_record> records;
  const auto error =
      resolver.query(name, ns_t_srv, [&](const ns_msg& message, const ns_rr& record) {
        return read_srv(message, record, records);
      });
  if (error) return error;
  return records;
}

result<std::vector<std::string>> lookup_addresses(const std::string& host,
                                                  const std::optional<dns_server>& server) {
  if (!server) return system_addresses(host);
  resolver_state resolver(server);
  std::vector<std::string> addresses;
  const auto v6 = query_addresses(resolver, host, AF_INET6, addresses);
  const auto v4 = query_addresses(resolver, host, AF_INET, addresses);
  if (!addresses.empty()) return addresses;
  // Not found only when neither family was there; any failure wins.
  return v6 != dns_errc::not_found ? v6 : v4;
}

// RFC 4976 §8: SRV lookup, "follow the Service Record (SRV) selection algorithm defined in
// [RFC 2782] to select the entry. If no SRVs are found, try an address lookup (A or AAAA) for
// the domain name", on port 2855. RFC 4976 §8 also asks a relay farm to register each
// member's addresses "as separate A or AAAA records corresponding to a single target": each
// address of a target is tried before the next target.
result<std::vector<relay_address>> find_relay(const uri& relay,
                                              const std::optional<dns_server>& server,
                                              const random_source& random) {
  const auto name = srv_name(relay);
  std::vector<srv_record> records;
  if (name) {
    auto found = lookup_srv(*name, server);
    if (found) {
      records = order_srv(std::move(*found), random);
    } else if (found.error() != dns_errc::not_found) {
      return found.error();
    }
  }
  std::vector<relay_address> addresses;
  std::error_code last = make_error_code(dns_errc::not_found);
  for (const auto& target : relay_targets(relay, records)) {
    const auto found = lookup_addresses(target.host, server);
    if (!found) {
      last = found.error();
      continue;
    }
    for (const auto& address : *found)
      addresses.push_back({target.host, address, target.port});
  }
  if (addresses.empty()) return last;
  return addresses;
}

}  // namespace msrp::net
