#include "msrp/net/dns.hpp"

#include <gtest/gtest.h>

#include <algorithm>

namespace {

using msrp::net::dns_errc;
using msrp::net::parse_dns_server;

TEST(Dns, ParsesAnAddressAndPort) {
  const auto server = parse_dns_server("127.0.0.1:5353");
  ASSERT_TRUE(server);
  EXPECT_EQ(server->address, "127.0.0.1");
  EXPECT_EQ(server->port, 5353);
}

TEST(Dns, PortDefaultsTo53) {
  const auto server = parse_dns_server("192.0.2.53");
  ASSERT_TRUE(server);
  EXPECT_EQ(server->port, 53);
}

TEST(Dns, RefusesWhatIsNotAnIpv4AddressAndPort) {
  for (const auto* text :
       {"", "ns.example.com", "ns.example.com:53", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536",
        "127.0.0.1:53x", "127.0.0.1:-1", "[::1]:53", "::1", "300.0.0.1"}) {
    EXPECT_FALSE(parse_dns_server(text)) << text;
  }
}

// Without a server, addresses come from getaddrinfo, so /etc/hosts counts.
TEST(Dns, SystemAddressesOfLocalhost) {
  const auto found = msrp::net::lookup_addresses("localhost", std::nullopt);
  ASSERT_TRUE(found) << found.error().message();
  EXPECT_NE(std::find_if(found->begin(), found->end(),
                         [](const std::string& a) { return a == "127.0.0.1" || a == "::1"; }),
            found->end());
}

TEST(Dns, ErrorsHaveMessages) {
  EXPECT_EQ(make_error_code(dns_errc::not_found).message(), "no such DNS records");
  EXPECT_STREQ(msrp::net::dns_category().name(), "msrp.dns");
}

// A URI with a port is not looked up by SRV: its own host, on its own port.
TEST(Dns, FindRelayWithAPortUsesTheHost) {
  const auto relay = msrp::uri::parse("msrps://localhost:2856;tcp");
  ASSERT_TRUE(relay);
  const auto found = msrp::net::find_relay(*relay, std::nullopt, [] { return 0; });
  ASSERT_TRUE(found) << found.error().message();
  ASSERT_FALSE(found->empty());
  EXPECT_EQ(found->front().host, "localhost");
  EXPECT_EQ(found->front().port, 2856);
}

}  // namespace
