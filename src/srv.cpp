#include "msrp/srv.hpp"

#include <algorithm>
#include <numeric>

namespace msrp {
namespace {

bool is_root(const std::string& target) {
  return target.empty() || target == ".";
}

/// RFC 2782, "Usage rules": orders the records of one priority, [first, last), in place.
///
///   arrange all SRV RRs (that have not been ordered yet) in any order, except that all those
///   with weight 0 are placed at the beginning of the list. Compute the sum of the weights of
///   those RRs, and with each RR associate the running sum in the selected order. Then choose
///   a uniform random number between 0 and the sum computed (inclusive), and select the RR
///   whose running sum value is the first in the selected order which is greater than or
///   equal to the random number selected. [...] Remove this SRV RR from the set of the
///   unordered SRV RRs and apply the described algorithm to the unordered SRV RRs to select
///   the next target host.
void order_by_weight(std::vector<srv_record>::iterator first,
                     std::vector<srv_record>::iterator last, const random_source& random) {
  std::stable_partition(first, last, [](const srv_record& r) { return r.weight == 0; });
  for (; first != last; ++first) {
    // At most 65535 records of weight 65535: the sum fits in 32 bits, and the modulo bias of
    // a 64-bit draw is below 2^-32.
    const std::uint64_t sum =
        std::accumulate(first, last, std::uint64_t{0},
                        [](std::uint64_t s, const srv_record& r) { return s + r.weight; });
    const std::uint64_t drawn = random() % (sum + 1);
    std::uint64_t running = 0;
    auto chosen = first;
    for (auto it = first; it != last; ++it) {
      running += it->weight;
      if (running >= drawn) {
        chosen = it;
        break;
      }
    }
    // Keeps the others in their order (weight 0 still first) for the next draw.
    std::rotate(first, chosen, std::next(chosen));
  }
}

}  // namespace

// RFC 4976 §8: "If a domain name is provided but no port number, perform a DNS SRV lookup for
// the '_msrps' service and '_tcp' transport at the domain name [...] (An '_msrp' service is not
// defined, since AUTH requests are only sent over TLS.)" With a port, or an IP literal (which
// must have one), the URI is resolved as RFC 4975 §6 says.
std::optional<std::string> srv_name(const uri& relay) {
  if (!relay.is_secure() || relay.port() || relay.kind() != host_kind::name) return std::nullopt;
  auto domain = relay.host();
  if (!domain.empty() && domain.back() == '.') domain.pop_back();
  return "_msrps._tcp." + domain;
}

// RFC 2782: "A client MUST attempt to contact the target host with the lowest-numbered priority
// it can reach; target hosts with the same priority SHOULD be tried in an order defined by the
// weight field."
std::vector<srv_record> order_srv(std::vector<srv_record> records, const random_source& random) {
  std::stable_sort(records.begin(), records.end(), [](const srv_record& a, const srv_record& b) {
    return a.priority < b.priority;
  });
  for (auto first = records.begin(); first != records.end();) {
    const auto last = std::find_if(
        first, records.end(), [&](const srv_record& r) { return r.priority != first->priority; });
    order_by_weight(first, last, random);
    first = last;
  }
  return records;
}

// RFC 4976 §8: "If no SRVs are found, try an address lookup (A or AAAA) for the domain name.
// Connect using TLS over the default transport (TCP) with the default port number (2855)."
// RFC 2782: "A Target of "." means that the service is decidedly not available at this domain."
std::vector<relay_target> relay_targets(const uri& relay, const std::vector<srv_record>& ordered) {
  if (ordered.empty()) return {{relay.host(), relay.port().value_or(default_port)}};
  if (ordered.size() == 1 && is_root(ordered.front().target)) return {};
  std::vector<relay_target> targets;
  for (const auto& record : ordered) {
    if (!is_root(record.target)) targets.push_back({record.target, record.port});
  }
  return targets;
}

}  // namespace msrp
