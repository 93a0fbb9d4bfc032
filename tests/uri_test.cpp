#include "msrp/uri.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace {

using msrp::host_kind;
using msrp::uri;

// Parses both and compares them by RFC 4975 §6.1; a text that does not parse fails the test.
bool equivalent(std::string_view a, std::string_view b) {
  const auto first = uri::parse(a);
  const auto second = uri::parse(b);
  if (!first || !second) {
    ADD_FAILURE() << "does not parse: " << (first ? b : a);
    return false;
  }
  return *first == *second;
}

// One row per valid URI: the text, the parts it parses into, and whether it formats back to
// exactly the same text (scheme lowercase, port without leading zeros).
struct valid_case {
  std::string_view text;
  bool secure;
  std::string_view userinfo;
  std::string_view host;
  host_kind kind;
  std::optional<std::uint16_t> port;
  std::string_view session_id;
  std::string_view transport;
  std::string_view parameters;
};

constexpr auto name = host_kind::name;
constexpr auto ipv4 = host_kind::ipv4;
constexpr auto ipv6 = host_kind::ipv6;

const valid_case valid_cases[] = {
    // RFC 4975 §6, §7.1.1, §8 and the relay example of RFC 4976.
    {"msrp://host.example.com:8493/asfd34;tcp", false, "", "host.example.com", name, 8493, "asfd34",
     "tcp", ""},
    {"msrp://bob.example.com:8888/9di4eae923wzd;tcp", false, "", "bob.example.com", name, 8888,
     "9di4eae923wzd", "tcp", ""},
    {"msrps://relay.example.com:2855;tcp", true, "", "relay.example.com", name, 2855, "", "tcp",
     ""},
    {"msrp://alice.example.com:7394/2s93i9ek2a;tcp", false, "", "alice.example.com", name, 7394,
     "2s93i9ek2a", "tcp", ""},
    // RFC 7977 §5.2.1 and §8: the ws transport, a name without port, userinfo.
    {"msrp://df7jal23ls0d.invalid/2s93i9ek2a;ws", false, "", "df7jal23ls0d.invalid", name,
     std::nullopt, "2s93i9ek2a", "ws", ""},
    {"msrps://alice@a.example.com:443;ws", true, "alice", "a.example.com", name, 443, "", "ws", ""},
    // Numeric hosts.
    {"msrp://192.0.2.1:2855/s;tcp", false, "", "192.0.2.1", ipv4, 2855, "s", "tcp", ""},
    {"msrp://0.0.0.0:0;tcp", false, "", "0.0.0.0", ipv4, 0, "", "tcp", ""},
    {"msrp://255.255.255.255:65535;tcp", false, "", "255.255.255.255", ipv4, 65535, "", "tcp", ""},
    {"msrp://[2001:db8::1]:2855/abc;tcp", false, "", "2001:db8::1", ipv6, 2855, "abc", "tcp", ""},
    {"msrp://[::]:1;tcp", false, "", "::", ipv6, 1, "", "tcp", ""},
    {"msrp://[1:2:3:4:5:6:7:8]:1;tcp", false, "", "1:2:3:4:5:6:7:8", ipv6, 1, "", "tcp", ""},
    {"msrp://[1:2:3:4:5:6:7::]:1;tcp", false, "", "1:2:3:4:5:6:7::", ipv6, 1, "", "tcp", ""},
    {"msrp://[::ffff:192.0.2.1]:1;tcp", false, "", "::ffff:192.0.2.1", ipv6, 1, "", "tcp", ""},
    {"msrp://[1:2:3:4:5:6:1.2.3.4]:1;tcp", false, "", "1:2:3:4:5:6:1.2.3.4", ipv6, 1, "", "tcp",
     ""},
    {"msrp://[FE80::ABCD]:1;tcp", false, "", "FE80::ABCD", ipv6, 1, "", "tcp", ""},
    // Userinfo with percent-encoding and sub-delims, including ';' before the '@'.
    {"msrp://al%20ice;x=1!@h.example:9;tcp", false, "al%20ice;x=1!", "h.example", name, 9, "",
     "tcp", ""},
    // Names: percent-encoded, with digits, without port.
    {"msrp://%61lice.example_~-:1;tcp", false, "", "%61lice.example_~-", name, 1, "", "tcp", ""},
    {"msrp://1.2.3.4a;tcp", false, "", "1.2.3.4a", name, std::nullopt, "", "tcp", ""},
    // Session-ids with every allowed character, including '/'.
    {"msrp://h:1/aZ09-._~+=/x//;tcp", false, "", "h", name, 1, "aZ09-._~+=/x//", "tcp", ""},
    // Other transports and parameters kept as written.
    {"msrp://h:1/s;sctp2;foo=bar;baz", false, "", "h", name, 1, "s", "sctp2", "foo=bar;baz"},
    {"msrp://h:1;TCP;a!#$%&'*+-.^_`|~=Z9", false, "", "h", name, 1, "", "TCP",
     "a!#$%&'*+-.^_`|~=Z9"},
};

TEST(Uri, ParsesIntoParts) {
  for (const auto& row : valid_cases) {
    SCOPED_TRACE(row.text);
    const auto parsed = uri::parse(row.text);
    ASSERT_TRUE(parsed) << parsed.error().message();
    EXPECT_EQ(parsed->is_secure(), row.secure);
    EXPECT_EQ(parsed->userinfo(), row.userinfo);
    EXPECT_EQ(parsed->host(), row.host);
    EXPECT_EQ(parsed->kind(), row.kind);
    EXPECT_EQ(parsed->port(), row.port);
    EXPECT_EQ(parsed->session_id(), row.session_id);
    EXPECT_EQ(parsed->transport(), row.transport);
    EXPECT_EQ(parsed->parameters(), row.parameters);
  }
}

TEST(Uri, FormatsBackAsWritten) {
  for (const auto& row : valid_cases) {
    SCOPED_TRACE(row.text);
    const auto parsed = uri::parse(row.text);
    ASSERT_TRUE(parsed);
    const std::string text = parsed->to_string();
    EXPECT_EQ(text, row.text);
    const auto again = uri::parse(text);
    ASSERT_TRUE(again);
    EXPECT_TRUE(*again == *parsed);
  }
}

TEST(Uri, NormalizesSchemeCaseAndPortZeros) {
  const auto parsed = uri::parse("MsRpS://h.example:0080/s;tcp");
  ASSERT_TRUE(parsed);
  EXPECT_TRUE(parsed->is_secure());
  EXPECT_EQ(parsed->port(), 80);
  EXPECT_EQ(parsed->to_string(), "msrps://h.example:80/s;tcp");
  const auto again = uri::parse(parsed->to_string());
  ASSERT_TRUE(again);
  EXPECT_TRUE(*again == *parsed);
}

// RFC 4975 §6.1 rule 1: the scheme must match, case-insensitively.
TEST(Uri, ComparesSchemeCaseInsensitively) {
  EXPECT_TRUE(equivalent("msrp://h:1/s;tcp", "MSRP://h:1/s;tcp"));
  EXPECT_FALSE(equivalent("msrp://h:1/s;tcp", "msrps://h:1/s;tcp"));
}

// Rule 2: userinfo is not considered.
TEST(Uri, IgnoresUserinfo) {
  EXPECT_TRUE(equivalent("msrp://alice@h:1/s;tcp", "msrp://h:1/s;tcp"));
  EXPECT_TRUE(equivalent("msrp://alice@h:1/s;tcp", "msrp://bob@h:1/s;tcp"));
  EXPECT_FALSE(equivalent("msrp://alice@h:1/s;tcp", "msrp://alice@g:1/s;tcp"));
}

// Rule 2: a host name compares as a case-insensitive string.
TEST(Uri, ComparesHostCaseInsensitively) {
  EXPECT_TRUE(equivalent("msrp://Host.Example.COM:1/s;tcp", "msrp://host.example.com:1/s;tcp"));
  EXPECT_FALSE(equivalent("msrp://host.example.com:1/s;tcp", "msrp://host.example.org:1/s;tcp"));
  EXPECT_FALSE(equivalent("msrp://host.example.com:1/s;tcp", "msrp://host.example.co:1/s;tcp"));
}

// Rule 2: percent-encoded unreserved characters are decoded before comparing.
TEST(Uri, DecodesPercentEncodedHostBeforeComparing) {
  EXPECT_TRUE(equivalent("msrp://%61lice.example.com:1;tcp", "msrp://alice.example.com:1;tcp"));
  EXPECT_TRUE(equivalent("msrp://%41LICE%2eexample.com:1;tcp", "msrp://alice.example.com:1;tcp"));
  EXPECT_TRUE(equivalent("msrp://a%2fb:1;tcp", "msrp://a%2Fb:1;tcp"));  // not unreserved: kept
  EXPECT_FALSE(equivalent("msrp://%62lice.example.com:1;tcp", "msrp://alice.example.com:1;tcp"));
  EXPECT_FALSE(equivalent("msrp://a%2fb:1;tcp", "msrp://a%2f:1;tcp"));
}

// Rule 2: explicit IP addresses compare as addresses.
TEST(Uri, ComparesIpAddressesAsAddresses) {
  EXPECT_TRUE(equivalent("msrp://[2001:db8::1]:1;tcp", "msrp://[2001:DB8:0:0:0:0:0:1]:1;tcp"));
  EXPECT_TRUE(equivalent("msrp://[::ffff:192.0.2.1]:1;tcp", "msrp://[::ffff:c000:201]:1;tcp"));
  EXPECT_FALSE(equivalent("msrp://[2001:db8::1]:1;tcp", "msrp://[2001:db8::2]:1;tcp"));
  EXPECT_FALSE(equivalent("msrp://[1::]:1;tcp", "msrp://[::1]:1;tcp"));
  EXPECT_TRUE(equivalent("msrp://192.0.2.1:1;tcp", "msrp://192.0.2.1:1;tcp"));
  EXPECT_FALSE(equivalent("msrp://192.0.2.1:1;tcp", "msrp://192.0.2.10:1;tcp"));
  EXPECT_FALSE(equivalent("msrp://[::c000:201]:1;tcp", "msrp://192.0.2.1:1;tcp"));
}

// Rule 3: ports must match, and an explicit port never equals an absent one.
TEST(Uri, ComparesPorts) {
  EXPECT_TRUE(equivalent("msrp://h:2855/s;tcp", "msrp://h:02855/s;tcp"));
  EXPECT_FALSE(equivalent("msrp://h:2855/s;tcp", "msrp://h:2856/s;tcp"));
  EXPECT_FALSE(equivalent("msrp://h:2855/s;tcp", "msrp://h/s;tcp"));
  EXPECT_TRUE(equivalent("msrp://h/s;tcp", "msrp://h/s;tcp"));
}

// Rule 4: the session-id compares case-sensitively; absent never equals present.
TEST(Uri, ComparesSessionIdCaseSensitively) {
  EXPECT_TRUE(equivalent("msrp://h:1/aBc;tcp", "msrp://h:1/aBc;tcp"));
  EXPECT_FALSE(equivalent("msrp://h:1/abc;tcp", "msrp://h:1/ABC;tcp"));
  EXPECT_FALSE(equivalent("msrp://h:1/abc;tcp", "msrp://h:1;tcp"));
  EXPECT_TRUE(equivalent("msrp://h:1;tcp", "msrp://h:1;tcp"));
}

// Rule 5: transports must match, case-insensitively.
TEST(Uri, ComparesTransportCaseInsensitively) {
  EXPECT_TRUE(equivalent("msrp://h:1/s;tcp", "msrp://h:1/s;TCP"));
  EXPECT_FALSE(equivalent("msrp://h:1/s;tcp", "msrp://h:1/s;ws"));
}

// Parameters after the transport take no part in the comparison.
TEST(Uri, IgnoresFurtherParameters) {
  EXPECT_TRUE(equivalent("msrp://h:1/s;tcp;a=b", "msrp://h:1/s;tcp"));
  EXPECT_TRUE(equivalent("msrp://h:1/s;tcp;a=b", "msrp://h:1/s;tcp;c"));
  EXPECT_FALSE(equivalent("msrp://h:1/s;tcp;a=b", "msrp://h:1/t;tcp;a=b"));
}

TEST(Uri, RejectsMalformed) {
  const std::string_view malformed[] = {
      "",
      "msrp:",
      "msrp://",
      "http://h:1;tcp",                            // other scheme
      "msrpx://h:1;tcp",                           // other scheme
      "msrp:/h:1;tcp",                             // one slash
      "msrp:xxh.example:1;tcp",                    // no "//"
      "msrp://h:1/s",                              // no transport
      "msrp://h:1/s;",                             // empty transport
      "msrp://h:1;t-cp",                           // transport not ALPHANUM
      "msrp://h:1/;tcp",                           // empty session-id
      "msrp://h:1/a b;tcp",                        // space in session-id
      "msrp://h:1/a%20b;tcp",                      // pct-encoded not allowed in session-id
      "msrp://h:1/s?q;tcp",                        // query
      "msrp://h:1/s;tcp#frag",                     // fragment
      "msrp://;tcp",                               // empty host
      "msrp://:1;tcp",                             // empty host with port
      "msrp://h:;tcp",                             // empty port
      "msrp://h:65536;tcp",                        // port too large
      "msrp://h:99999999999999999999;tcp",         // port overflow
      "msrp://h:-1;tcp",                           // negative port
      "msrp://h:+1;tcp",                           // signed port
      "msrp://h:1x;tcp",                           // port garbage
      "msrp://h:1:2;tcp",                          // two ports
      "msrp://192.0.2.1;tcp",                      // IPv4 without port (§6)
      "msrp://[::1];tcp",                          // IPv6 without port (§6)
      "msrp://256.0.0.1:1;tcp",                    // octet too large
      "msrp://01.2.3.4:1;tcp",                     // leading zero
      "msrp://1.2.3:1;tcp",                        // three octets
      "msrp://1.2.3.4.5:1;tcp",                    // five octets
      "msrp://1..3.4:1;tcp",                       // empty octet
      "msrp://::1:1;tcp",                          // IPv6 without brackets
      "msrp://[::1:1;tcp",                         // unclosed bracket
      "msrp://[]:1;tcp",                           // empty IPv6
      "msrp://[1:2:3:4:5:6:7:8:9]:1;tcp",          // nine groups
      "msrp://[1:2:3:4:5:6:7]:1;tcp",              // seven groups, no "::"
      "msrp://[1::2::3]:1;tcp",                    // "::" twice
      "msrp://[12345::1]:1;tcp",                   // five hex digits
      "msrp://[:1:2:3:4:5:6:7]:1;tcp",             // single leading ':'
      "msrp://[1:2:3:4:5:6:7:]:1;tcp",             // single trailing ':'
      "msrp://[1::2:]:1;tcp",                      // single trailing ':' after "::"
      "msrp://[1:2:3:4:5:6:7:1.2.3.4]:1;tcp",      // IPv4 tail makes nine groups
      "msrp://[::1.2.3]:1;tcp",                    // bad IPv4 tail
      "msrp://[::1.2.3.4:5]:1;tcp",                // IPv4 tail not last
      "msrp://[g::1]:1;tcp",                       // not hex
      "msrp://[fe80::1%25eth0]:1;tcp",             // zone id
      "msrp://[::1]x:1;tcp",                       // garbage after ']'
      "msrp://user:pass@h:1;tcp",                  // password (§6)
      "msrp://@h:1;tcp",                           // empty userinfo
      "msrp://a@b@h:1;tcp",                        // two '@'
      "msrp://us er@h:1;tcp",                      // space in userinfo
      "msrp://u%2@h:1;tcp",                        // truncated pct-encoding
      "msrp://h%zz:1;tcp",                         // bad pct-encoding in host
      "msrp://h%4",                                // pct-encoding cut off by the end
      "msrp://h!:1;tcp",                           // sub-delim in host
      "msrp://h:1;tcp;",                           // empty parameter
      "msrp://h:1;tcp;;a",                         // empty parameter
      "msrp://h:1;tcp;a=",                         // empty parameter value
      "msrp://h:1;tcp;=b",                         // empty parameter name
      "msrp://h:1;tcp;a=b=c",                      // '=' in value
      "msrp://h:1;tcp;a b",                        // space in parameter
      "msrp://h:1;tcp;a\"b",                       // '"' is not a token character
      "msrp://h:1/s;tcp\r\n",                      // CRLF
      " msrp://h:1;tcp",                           // leading space
      "msrp://h\xc3\xa9:1;tcp",                    // non-ASCII host
      "msrp://h:1/\x7f;tcp",                       // DEL
      "msrp://h:1;tcp;a\x7f",                      // DEL in a parameter
      std::string_view("msrp://h:1/s\0;tcp", 17),  // NUL
  };
  for (const std::string_view text : malformed) {
    const auto parsed = uri::parse(text);
    EXPECT_FALSE(parsed) << text << " -> " << (parsed ? parsed->to_string() : "");
    EXPECT_EQ(parsed.error(), msrp::errc::bad_uri) << text;
  }
}

}  // namespace
