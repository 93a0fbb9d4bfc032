#include "msrp/sdp.hpp"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "msrp/message.hpp"

namespace msrp {
namespace {

using types = std::vector<std::string>;

// Joins lines with CRLF after each, as SDP is written.
std::string crlf(std::initializer_list<std::string_view> lines) {
  std::string text;
  for (const auto line : lines) {
    text += line;
    text += "\r\n";
  }
  return text;
}

// RFC 4975 §8.7, Figure 9: the offer from endpoint A.
const std::string rfc4975_offer = crlf({
    "v=0",
    "o=usera 2890844526 2890844527 IN IP4 alice.example.com",
    "s= -",
    "c=IN IP4 alice.example.com",
    "t=0 0",
    "m=message 7394 TCP/MSRP *",
    "a=accept-types:message/cpim text/plain text/html",
    "a=path:msrp://alice.example.com:7394/2s93i93idj;tcp",
});

// RFC 4975 §8.7, Figure 10: the answer from endpoint B.
const std::string rfc4975_answer = crlf({
    "v=0",
    "o=userb 2890844530 2890844532 IN IP4 bob.example.com",
    "s= -",
    "c=IN IP4 bob.example.com",
    "t=0 0",
    "m=message 8493 TCP/MSRP *",
    "a=accept-types:message/cpim text/plain",
    "a=path:msrp://bob.example.com:8493/si438dsaodes;tcp",
});

// TLS media with the two fingerprints of RFC 8122 §3's example, and every MSRP attribute.
const std::string tls_offer = crlf({
    "v=0",
    "o=- 3724394400 3724394401 IN IP4 192.0.2.1",
    "s=-",
    "c=IN IP4 192.0.2.1",
    "t=0 0",
    "m=message 2855 TCP/TLS/MSRP *",
    "a=accept-types:text/plain message/cpim",
    "a=accept-wrapped-types:text/html image/*",
    "a=max-size:1048576",
    "a=path:msrps://192.0.2.1:2855/kjhd37s2s20w2a;tcp",
    "a=setup:actpass",
    "a=fingerprint:SHA-256 12:DF:3E:5D:49:6B:19:E5:7C:AB:4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:"
    "3E:5D:49:6B:19:E5:7C:AB:4A:AD",
    "a=fingerprint:SHA-1 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB",
});

uri parse_uri(std::string_view text) {
  auto parsed = uri::parse(text);
  EXPECT_TRUE(parsed) << text;
  return parsed ? *parsed : uri{};
}

session_description parse_ok(std::string_view text) {
  auto parsed = parse_sdp(text);
  EXPECT_TRUE(parsed) << parsed.error().message() << "\n" << text;
  return parsed ? *parsed : session_description{};
}

// A media description with only the required fields, for the negotiation tests.
media_description media(types accept_types, std::optional<setup_role> setup = std::nullopt) {
  media_description m;
  m.port = 2855;
  m.address = "192.0.2.1";
  m.path = {parse_uri("msrp://192.0.2.1:2855/s1;tcp")};
  m.accept_types = std::move(accept_types);
  m.setup = setup;
  return m;
}

TEST(Sdp, ParsesTheOfferOfRfc4975) {
  const auto sdp = parse_ok(rfc4975_offer);
  EXPECT_EQ(sdp.origin.username, "usera");
  EXPECT_EQ(sdp.origin.session_id, 2890844526u);
  EXPECT_EQ(sdp.origin.session_version, 2890844527u);
  EXPECT_EQ(sdp.origin.address, "alice.example.com");
  EXPECT_FALSE(sdp.origin.ipv6);
  EXPECT_EQ(sdp.session_name, " -");
  EXPECT_TRUE(sdp.attributes.empty());
  const auto& m = sdp.media;
  EXPECT_FALSE(m.tls);
  EXPECT_EQ(m.port, 7394);
  EXPECT_EQ(m.address, "alice.example.com");
  EXPECT_FALSE(m.ipv6);
  EXPECT_EQ(m.accept_types, (types{"message/cpim", "text/plain", "text/html"}));
  EXPECT_TRUE(m.accept_wrapped_types.empty());
  ASSERT_EQ(m.path.size(), 1u);
  EXPECT_EQ(m.path[0].to_string(), "msrp://alice.example.com:7394/2s93i93idj;tcp");
  EXPECT_FALSE(m.max_size);
  EXPECT_FALSE(m.setup);
  EXPECT_FALSE(m.connection);
  EXPECT_TRUE(m.fingerprints.empty());
  EXPECT_TRUE(m.attributes.empty());
}

TEST(Sdp, FormatsTheExamplesOfRfc4975BackExactly) {
  EXPECT_EQ(format_sdp(parse_ok(rfc4975_offer)), rfc4975_offer);
  EXPECT_EQ(format_sdp(parse_ok(rfc4975_answer)), rfc4975_answer);
}

TEST(Sdp, WritesTheOfferOfRfc4975FromFields) {
  session_description sdp;
  sdp.origin = {"usera", 2890844526, 2890844527, "alice.example.com", false};
  sdp.session_name = " -";
  sdp.media.port = 7394;
  sdp.media.address = "alice.example.com";
  sdp.media.accept_types = {"message/cpim", "text/plain", "text/html"};
  sdp.media.path = {parse_uri("msrp://alice.example.com:7394/2s93i93idj;tcp")};
  EXPECT_EQ(format_sdp(sdp), rfc4975_offer);
}

TEST(Sdp, ParsesTlsMediaWithFingerprints) {
  const auto sdp = parse_ok(tls_offer);
  const auto& m = sdp.media;
  EXPECT_TRUE(m.tls);
  EXPECT_EQ(m.port, 2855);
  ASSERT_EQ(m.path.size(), 1u);
  EXPECT_TRUE(m.path[0].is_secure());
  EXPECT_EQ(m.accept_wrapped_types, (types{"text/html", "image/*"}));
  EXPECT_EQ(m.max_size, 1048576u);
  EXPECT_EQ(m.setup, setup_role::actpass);
  ASSERT_EQ(m.fingerprints.size(), 2u);
  EXPECT_EQ(m.fingerprints[0].hash_function, "SHA-256");
  ASSERT_EQ(m.fingerprints[0].digest.size(), 32u);
  EXPECT_EQ(m.fingerprints[0].digest[0], 0x12);
  EXPECT_EQ(m.fingerprints[0].digest[1], 0xDF);
  EXPECT_EQ(m.fingerprints[0].digest[31], 0xAD);
  EXPECT_EQ(m.fingerprints[1].hash_function, "SHA-1");
  EXPECT_EQ(m.fingerprints[1].to_string(),
            "4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB");
}

TEST(Sdp, FingerprintWritesUppercaseHexPairs) {
  const fingerprint print{"sha-256", {0x00, 0x0a, 0xbc, 0xff}};
  EXPECT_EQ(print.to_string(), "00:0A:BC:FF");
  EXPECT_EQ(fingerprint{}.to_string(), "");
}

TEST(Sdp, FingerprintParsesAnAttributeValue) {
  const auto parsed =
      fingerprint::parse("sha-1 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:ab");
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->hash_function, "sha-1");
  EXPECT_EQ(parsed->to_string(), "4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB");
  const auto unknown_hash = fingerprint::parse("x-new 01");
  ASSERT_TRUE(unknown_hash);
  EXPECT_EQ(unknown_hash->digest, std::vector<std::uint8_t>{1});
  EXPECT_EQ(fingerprint::parse("sha-1 4A:AD").error(), errc::bad_sdp);  // 2 octets, not 20
  EXPECT_EQ(fingerprint::parse("4A:AD").error(), errc::bad_sdp);
  EXPECT_EQ(fingerprint::parse("x-new  01").error(), errc::bad_sdp);
}

TEST(Sdp, ReadsLowercaseFingerprintHexAndWritesItUppercase) {
  std::string text = tls_offer;
  const std::string upper = "4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB";
  const std::string lower = "4a:ad:b9:b1:3f:82:18:3b:54:02:12:df:3e:5d:49:6b:19:e5:7c:ab";
  text.replace(text.find(upper), upper.size(), lower);
  const auto sdp = parse_ok(text);
  EXPECT_EQ(sdp, parse_ok(tls_offer));
  EXPECT_EQ(format_sdp(sdp), tls_offer);
}

// One table drives both directions: each text parses, and formats back byte for byte.
const std::string canonical_texts[] = {
    rfc4975_offer,
    rfc4975_answer,
    tls_offer,
    // RFC 4975 §8.2, Figure 7.
    crlf({"v=0", "o=alice 2890844526 2890844527 IN IP4 alice.example.com", "s= -",
          "c=IN IP4 alice.example.com", "t=0 0", "m=message 7394 TCP/MSRP *",
          "a=accept-types:text/plain", "a=path:msrp://alice.example.com:7394/2s93i9ek2a;tcp"}),
    // IPv6, a relay in the path, parameters in accept-types, session and media attributes.
    crlf({"v=0", "o=bob 1 2 IN IP6 2001:db8::2", "s=chat", "c=IN IP6 2001:db8::2", "t=0 0",
          "a=tool:msrpkit", "m=message 9 TCP/MSRP *",
          "a=accept-types:text/plain;charset=\"utf-8\" *",
          "a=path:msrp://relay.example.net:2855/r1;tcp msrp://[2001:db8::2]:9/b2;tcp",
          "a=setup:active", "a=connection:existing", "a=msrp-cema", "a=sendrecv"}),
    // A rejected stream (RFC 3264 §6): port 0, no path, no accept-types.
    crlf({"v=0", "o=- 0 0 IN IP4 192.0.2.9", "s=-", "c=IN IP4 192.0.2.9", "t=0 0",
          "m=message 0 TCP/MSRP *"}),
};

TEST(Sdp, CanonicalTextsRoundTrip) {
  for (const auto& text : canonical_texts) {
    SCOPED_TRACE(text);
    const auto parsed = parse_sdp(text);
    ASSERT_TRUE(parsed) << parsed.error().message();
    const std::string written = format_sdp(*parsed);
    EXPECT_EQ(written, text);
    const auto again = parse_sdp(written);
    ASSERT_TRUE(again);
    EXPECT_EQ(*again, *parsed);
    EXPECT_EQ(format_path(again->media.path), format_path(parsed->media.path));
  }
}

TEST(Sdp, BuiltDescriptionRoundTrips) {
  session_description sdp;
  sdp.origin = {"alice", 3724394400, 7, "2001:db8::1", true};
  sdp.session_name = "MSRP over TLS";
  sdp.attributes = {"tool:msrpkit 0.1"};
  auto& m = sdp.media;
  m.tls = true;
  m.port = 12763;
  m.address = "2001:db8::1";
  m.ipv6 = true;
  m.path = {parse_uri("msrps://[2001:db8::1]:12763/x9k2;tcp")};
  m.accept_types = {"message/cpim", "text/plain"};
  m.accept_wrapped_types = {"*"};
  m.max_size = UINT64_MAX;
  m.setup = setup_role::passive;
  m.connection = connection_mode::new_connection;
  m.fingerprints = {{"sha-256", std::vector<std::uint8_t>(32, 0xA5)},
                    {"sha-512", std::vector<std::uint8_t>(64, 0x01)}};
  m.attributes = {"sendonly", "file-selector:name:\"a b.txt\" size:3"};
  const std::string text = format_sdp(sdp);
  EXPECT_NE(text.find("\r\nm=message 12763 TCP/TLS/MSRP *\r\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\r\na=max-size:18446744073709551615\r\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\r\na=connection:new\r\n"), std::string::npos) << text;
  const auto parsed = parse_sdp(text);
  ASSERT_TRUE(parsed) << parsed.error().message() << "\n" << text;
  EXPECT_EQ(*parsed, sdp);
}

TEST(Sdp, AcceptsBareLineFeeds) {
  std::string text = rfc4975_offer;
  for (auto at = text.find("\r\n"); at != std::string::npos; at = text.find("\r\n", at)) {
    text.erase(at, 1);
  }
  ASSERT_EQ(text.find('\r'), std::string::npos);
  EXPECT_EQ(parse_ok(text), parse_ok(rfc4975_offer));
  // Without a final line ending, and with blank lines at the end, as files often are.
  EXPECT_EQ(parse_ok(text.substr(0, text.size() - 1)), parse_ok(rfc4975_offer));
  EXPECT_EQ(parse_ok(text + "\n\n"), parse_ok(rfc4975_offer));
  EXPECT_EQ(parse_ok(rfc4975_offer + "\r\n"), parse_ok(rfc4975_offer));
}

TEST(Sdp, AcceptsMixedLineEndings) {
  const std::string text =
      "v=0\r\no=- 1 1 IN IP4 h.example.com\ns=-\r\nc=IN IP4 h.example.com\nt=0 0\r\n"
      "m=message 1 TCP/MSRP *\na=accept-types:*\r\na=path:msrp://h.example.com:1/s;tcp";
  const auto sdp = parse_ok(text);
  EXPECT_EQ(sdp.media.accept_types, types{"*"});
  EXPECT_EQ(sdp.media.path.size(), 1u);
}

TEST(Sdp, ReadsIpv6Connection) {
  const auto sdp =
      parse_ok(crlf({"v=0", "o=- 5 5 IN IP6 2001:db8::5", "s=-", "t=0 0",
                     "m=message 2855 TCP/MSRP *", "c=IN IP6 2001:db8::5",
                     "a=accept-types:text/plain", "a=path:msrp://[2001:db8::5]:2855/a;tcp"}));
  EXPECT_TRUE(sdp.origin.ipv6);
  EXPECT_EQ(sdp.origin.address, "2001:db8::5");
  EXPECT_TRUE(sdp.media.ipv6);
  EXPECT_EQ(sdp.media.address, "2001:db8::5");
  EXPECT_EQ(sdp.media.path[0].kind(), host_kind::ipv6);
}

TEST(Sdp, MediaConnectionOverridesTheSessionOne) {
  const auto sdp =
      parse_ok(crlf({"v=0", "o=- 5 5 IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.1", "t=0 0",
                     "m=message 2855 TCP/MSRP *", "c=IN IP6 2001:db8::7",
                     "a=accept-types:text/plain", "a=path:msrp://[2001:db8::7]:2855/a;tcp"}));
  EXPECT_TRUE(sdp.media.ipv6);
  EXPECT_EQ(sdp.media.address, "2001:db8::7");
}

// The MSRP media of an offer whose session and media sections carry the given attributes
// (written without the "a=").
media_description media_with(std::initializer_list<std::string_view> session_attributes,
                             std::initializer_list<std::string_view> media_attributes) {
  std::string text =
      crlf({"v=0", "o=- 1 1 IN IP4 h.example.com", "s=-", "c=IN IP4 h.example.com", "t=0 0"});
  for (const auto attribute : session_attributes)
    text += "a=" + std::string(attribute) + "\r\n";
  text += crlf({"m=message 1 TCP/MSRP *", "a=accept-types:text/plain",
                "a=path:msrp://h.example.com:1/s;tcp"});
  for (const auto attribute : media_attributes)
    text += "a=" + std::string(attribute) + "\r\n";
  return parse_ok(text).media;
}

TEST(Sdp, ReadsSetupAndConnection) {
  EXPECT_EQ(media_with({}, {"setup:active"}).setup, setup_role::active);
  EXPECT_EQ(media_with({}, {"setup:passive"}).setup, setup_role::passive);
  EXPECT_EQ(media_with({}, {"setup:actpass"}).setup, setup_role::actpass);
  EXPECT_EQ(media_with({}, {"setup:holdconn"}).setup, setup_role::holdconn);
  EXPECT_EQ(media_with({}, {"setup:ACTPASS"}).setup, setup_role::actpass);
  EXPECT_EQ(media_with({}, {}).setup, std::nullopt);
  EXPECT_EQ(media_with({}, {"connection:new"}).connection, connection_mode::new_connection);
  EXPECT_EQ(media_with({}, {"connection:existing"}).connection,
            connection_mode::existing_connection);
  EXPECT_EQ(media_with({}, {}).connection, std::nullopt);
}

TEST(Sdp, SessionLevelSetupConnectionAndFingerprintApplyToMedia) {
  const std::string sha1 = "sha-1 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB";
  const auto from_session =
      media_with({"setup:passive", "connection:new", "fingerprint:" + sha1}, {"sendrecv"});
  EXPECT_EQ(from_session.setup, setup_role::passive);
  EXPECT_EQ(from_session.connection, connection_mode::new_connection);
  ASSERT_EQ(from_session.fingerprints.size(), 1u);
  EXPECT_EQ(from_session.fingerprints[0].hash_function, "sha-1");
  EXPECT_EQ(from_session.attributes, types{"sendrecv"});

  const std::string sha256 =
      "sha-256 " + fingerprint{"", std::vector<std::uint8_t>(32, 0x42)}.to_string();
  const auto from_media =
      media_with({"setup:passive", "connection:new", "fingerprint:" + sha1},
                 {"setup:active", "connection:existing", "fingerprint:" + sha256});
  EXPECT_EQ(from_media.setup, setup_role::active);
  EXPECT_EQ(from_media.connection, connection_mode::existing_connection);
  ASSERT_EQ(from_media.fingerprints.size(), 1u);
  EXPECT_EQ(from_media.fingerprints[0].hash_function, "sha-256");
}

TEST(Sdp, KeepsOtherAttributesInOrder) {
  // RFC 5547 §9 (the folded file-selector line unfolded), plus a session-level attribute.
  const auto sdp = parse_ok(crlf({
      "v=0",
      "o=alice 2890844526 2890844526 IN IP4 host.atlanta.example.com",
      "s=",
      "c=IN IP4 host.atlanta.example.com",
      "t=0 0",
      "a=group:whatever 1",
      "m=message 7654 TCP/MSRP *",
      "i=This is my latest picture",
      "a=sendonly",
      "a=accept-types:message/cpim",
      "a=accept-wrapped-types:*",
      "a=path:msrp://atlanta.example.com:7654/jshA7we;tcp",
      "a=file-selector:name:\"My cool picture.jpg\" type:image/jpeg size:32349 hash:sha-1:"
      "72:24:5F:E8:65:3D:DA:F3:71:36:2F:86:D4:71:91:3E:E4:A2:CE:2E",
      "a=file-transfer-id:vBnG916bdberum2fFEABR1FR3ExZMUrd",
      "a=file-disposition:attachment",
      "a=file-date:creation:\"Mon, 15 May 2006 15:01:31 +0300\"",
      "a=file-icon:cid:id2@alicepc.example.com",
      "a=msrp-cema",
  }));
  EXPECT_EQ(sdp.session_name, "");
  EXPECT_EQ(sdp.attributes, types{"group:whatever 1"});
  EXPECT_EQ(sdp.media.accept_types, types{"message/cpim"});
  EXPECT_EQ(sdp.media.accept_wrapped_types, types{"*"});
  EXPECT_EQ(
      sdp.media.attributes,
      (types{"sendonly",
             "file-selector:name:\"My cool picture.jpg\" type:image/jpeg size:32349 "
             "hash:sha-1:72:24:5F:E8:65:3D:DA:F3:71:36:2F:86:D4:71:91:3E:E4:A2:CE:2E",
             "file-transfer-id:vBnG916bdberum2fFEABR1FR3ExZMUrd", "file-disposition:attachment",
             "file-date:creation:\"Mon, 15 May 2006 15:01:31 +0300\"",
             "file-icon:cid:id2@alicepc.example.com", "msrp-cema"}));
  const auto again = parse_sdp(format_sdp(sdp));
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, sdp);
}

TEST(Sdp, TakesTheFirstMsrpMediaAndSkipsTheRest) {
  const auto sdp = parse_ok(crlf({
      "v=0",
      "o=- 1 1 IN IP4 192.0.2.1",
      "s=-",
      "c=IN IP4 192.0.2.1",
      "t=0 0",
      "m=audio 49170/2 RTP/AVP 0 8",
      "c=IN IP4 224.2.1.1/127",
      "c=IN IP4 224.2.1.2/127",
      "b=AS:64",
      "a=rtpmap:0 PCMU/8000",
      "m=message 9 TCP/WS/MSRP *",
      "a=path:msrp://df7jal23ls0d.invalid/2s93i9ek2a;ws",
      "m=message 2855 TCP/MSRP *",
      "i=first",
      "b=AS:10",
      "a=accept-types:text/plain",
      "a=path:msrp://192.0.2.1:2855/first;tcp",
      "m=message 2856 TCP/TLS/MSRP *",
      "a=accept-types:text/html",
      "a=path:msrps://192.0.2.1:2856/second;tcp",
  }));
  EXPECT_EQ(sdp.media.port, 2855);
  EXPECT_FALSE(sdp.media.tls);
  EXPECT_EQ(sdp.media.path[0].session_id(), "first");
  EXPECT_EQ(sdp.media.accept_types, types{"text/plain"});
  EXPECT_TRUE(sdp.media.attributes.empty());
}

TEST(Sdp, ReadsQuotedParametersInAcceptTypes) {
  const auto sdp = parse_ok(crlf({"v=0", "o=- 1 1 IN IP4 h.example.com", "s=-",
                                  "c=IN IP4 h.example.com", "t=0 0", "m=message 1 TCP/MSRP *",
                                  "a=accept-types:text/plain;charset=\"a \\\"b\\\" c\";x=y "
                                  "message/cpim */*",
                                  "a=path:msrp://h.example.com:1/s;tcp"}));
  EXPECT_EQ(sdp.media.accept_types,
            (types{"text/plain;charset=\"a \\\"b\\\" c\";x=y", "message/cpim", "*/*"}));
}

TEST(Sdp, RejectedStreamNeedsNoPathOrTypes) {
  const auto sdp = parse_ok(crlf({"v=0", "o=- 1 1 IN IP4 h.example.com", "s=-",
                                  "c=IN IP4 h.example.com", "t=0 0", "m=message 0 TCP/MSRP *"}));
  EXPECT_EQ(sdp.media.port, 0);
  EXPECT_TRUE(sdp.media.path.empty());
  EXPECT_TRUE(sdp.media.accept_types.empty());
}

// ---------------------------------------------------------------------------------------------
// Malformed descriptions.

struct malformed {
  std::string_view name;
  std::string text;
  errc error;
};

void PrintTo(const malformed& c, std::ostream* out) {
  *out << c.name;
}

// The lines of a valid offer; each malformed case changes one thing about it.
const std::vector<std::string_view> valid_lines = {
    "v=0",                                                 // 0
    "o=usera 2890844526 2890844527 IN IP4 a.example.com",  // 1
    "s= -",                                                // 2
    "c=IN IP4 a.example.com",                              // 3
    "t=0 0",                                               // 4
    "m=message 7394 TCP/MSRP *",                           // 5
    "a=accept-types:message/cpim text/plain",              // 6
    "a=path:msrp://a.example.com:7394/2s93i93idj;tcp",     // 7
};

std::string join(const std::vector<std::string_view>& lines) {
  std::string text;
  for (const auto line : lines) {
    text += line;
    text += "\r\n";
  }
  return text;
}

std::string replaced(std::size_t index, std::string_view line) {
  auto lines = valid_lines;
  lines[index] = line;
  return join(lines);
}

std::string erased(std::size_t index) {
  auto lines = valid_lines;
  lines.erase(lines.begin() + static_cast<std::ptrdiff_t>(index));
  return join(lines);
}

std::string inserted(std::size_t index, std::string_view line) {
  auto lines = valid_lines;
  lines.insert(lines.begin() + static_cast<std::ptrdiff_t>(index), line);
  return join(lines);
}

std::string appended(std::string_view line) {
  return inserted(valid_lines.size(), line);
}

std::vector<malformed> malformed_inputs() {
  const std::string sha256 = fingerprint{"", std::vector<std::uint8_t>(32, 0xAB)}.to_string();
  return {
      {"Empty", "", errc::bad_sdp},
      {"OnlyBlankLines", "\r\n\r\n", errc::bad_sdp},
      {"GarbageLine", inserted(5, "hello world"), errc::bad_sdp},
      {"SpaceBeforeEquals", replaced(4, "t =0 0"), errc::bad_sdp},
      {"UnknownTypeLetter", inserted(5, "x=foo"), errc::bad_sdp},
      {"UppercaseTypeLetter", replaced(4, "T=0 0"), errc::bad_sdp},
      {"NulByte", replaced(2, std::string_view("s=a\0b", 5)), errc::bad_sdp},
      {"StrayCarriageReturn", replaced(2, "s=a\rb"), errc::bad_sdp},
      {"BlankLineInTheMiddle", inserted(5, ""), errc::bad_sdp},
      {"VersionOne", replaced(0, "v=1"), errc::bad_sdp},
      {"VersionNotFirst",
       join({valid_lines[1], valid_lines[0], valid_lines[2], valid_lines[3], valid_lines[4],
             valid_lines[5], valid_lines[6], valid_lines[7]}),
       errc::bad_sdp},
      {"MissingOrigin", erased(1), errc::bad_sdp},
      {"MissingSessionName", erased(2), errc::bad_sdp},
      {"MissingTime", erased(4), errc::bad_sdp},
      {"ConnectionBeforeSessionName",
       join({valid_lines[0], valid_lines[1], valid_lines[3], valid_lines[2], valid_lines[4],
             valid_lines[5], valid_lines[6], valid_lines[7]}),
       errc::bad_sdp},
      {"SessionNameTwice", inserted(3, "s=again"), errc::bad_sdp},
      {"RepeatBeforeTime", inserted(4, "r=604800 3600 0 90000"), errc::bad_sdp},
      {"AttributeBeforeTime", inserted(4, "a=sendrecv"), errc::bad_sdp},
      {"TimeInMedia", appended("t=0 0"), errc::bad_sdp},
      {"OriginWithFiveFields", replaced(1, "o=usera 2890844526 IN IP4 a.example.com"),
       errc::bad_sdp},
      {"OriginSessionIdNotNumeric", replaced(1, "o=usera 28a 1 IN IP4 a.example.com"),
       errc::bad_sdp},
      {"OriginVersionNotNumeric", replaced(1, "o=usera 1 v2 IN IP4 a.example.com"), errc::bad_sdp},
      {"OriginSessionIdOverflow",
       replaced(1, "o=usera 99999999999999999999 1 IN IP4 a.example.com"), errc::bad_sdp},
      {"OriginNotInternet", replaced(1, "o=usera 1 1 ATM NSAP 47.0005"), errc::bad_sdp},
      {"TimeNotNumeric", replaced(4, "t=now later"), errc::bad_sdp},
      {"NoConnectionAnywhere", erased(3), errc::bad_sdp},
      {"ConnectionAddressTypeUnknown", replaced(3, "c=IN IP5 a.example.com"), errc::bad_sdp},
      {"ConnectionMissingAddress", replaced(3, "c=IN IP4"), errc::bad_sdp},
      {"TwoConnectionsInMsrpMedia", inserted(6, "c=IN IP4 a.example.com\r\nc=IN IP4 b.example.com"),
       errc::bad_sdp},
      {"NoMessageMedia",
       join({valid_lines[0], valid_lines[1], valid_lines[2], valid_lines[3], valid_lines[4],
             "m=audio 49170 RTP/AVP 0"}),
       errc::sdp_missing_msrp_media},
      {"NoMediaAtAll",
       join({valid_lines[0], valid_lines[1], valid_lines[2], valid_lines[3], valid_lines[4]}),
       errc::sdp_missing_msrp_media},
      {"MessageMediaOverUdp", replaced(5, "m=message 7394 UDP/MSRP *"),
       errc::sdp_missing_msrp_media},
      {"MediaLineWithoutFormat", replaced(5, "m=message 7394 TCP/MSRP"), errc::bad_sdp},
      {"PortTooLarge", replaced(5, "m=message 65536 TCP/MSRP *"), errc::bad_sdp},
      {"PortNotNumeric", replaced(5, "m=message 73a4 TCP/MSRP *"), errc::bad_sdp},
      {"PortWithCount", replaced(5, "m=message 7394/2 TCP/MSRP *"), errc::bad_sdp},
      {"PortNegative", replaced(5, "m=message -1 TCP/MSRP *"), errc::bad_sdp},
      {"OtherMediaLineMalformed", inserted(5, "m=audio x RTP/AVP 0"), errc::bad_sdp},
      {"MissingPath", erased(7), errc::sdp_missing_path},
      {"MissingAcceptTypes", erased(6), errc::sdp_missing_accept_types},
      {"PathOnlyAtSessionLevel",
       join({valid_lines[0], valid_lines[1], valid_lines[2], valid_lines[3], valid_lines[4],
             "a=path:msrp://a.example.com:7394/2s93i93idj;tcp", valid_lines[5], valid_lines[6]}),
       errc::sdp_missing_path},
      {"PathNotMsrp", replaced(7, "a=path:http://a.example.com:7394/x;tcp"), errc::bad_uri},
      {"PathWithoutPort", replaced(7, "a=path:msrp://a.example.com/2s93i93idj;tcp"), errc::bad_uri},
      {"PathEmpty", replaced(7, "a=path:"), errc::bad_uri},
      {"PathDoubleSpace",
       replaced(7, "a=path:msrp://r.example.com:1;tcp  msrp://a.example.com:7394/s;tcp"),
       errc::bad_uri},
      {"PathTwice", appended("a=path:msrp://a.example.com:7394/other;tcp"), errc::bad_sdp},
      {"AcceptTypesEmpty", replaced(6, "a=accept-types:"), errc::bad_sdp},
      {"AcceptTypesWithoutSubtype", replaced(6, "a=accept-types:text"), errc::bad_sdp},
      {"AcceptTypesDoubleSpace", replaced(6, "a=accept-types:text/plain  text/html"),
       errc::bad_sdp},
      {"AcceptTypesCommaSeparated", replaced(6, "a=accept-types:text/plain,text/html"),
       errc::bad_sdp},
      {"AcceptTypesTrailingSpace", replaced(6, "a=accept-types:text/plain "), errc::bad_sdp},
      {"AcceptTypesUnterminatedQuote", replaced(6, "a=accept-types:text/plain;a=\"b"),
       errc::bad_sdp},
      {"AcceptTypesParameterWithoutValue", replaced(6, "a=accept-types:text/plain;charset"),
       errc::bad_sdp},
      {"AcceptTypesTwice", appended("a=accept-types:text/html"), errc::bad_sdp},
      {"AcceptWrappedTypesMalformed", appended("a=accept-wrapped-types:/plain"), errc::bad_sdp},
      {"MaxSizeNotNumeric", appended("a=max-size:12k"), errc::bad_sdp},
      {"MaxSizeEmpty", appended("a=max-size:"), errc::bad_sdp},
      {"MaxSizeOverflow", appended("a=max-size:18446744073709551616"), errc::bad_sdp},
      {"MaxSizeTwice", appended("a=max-size:1\r\na=max-size:2"), errc::bad_sdp},
      {"SetupUnknownRole", appended("a=setup:sideways"), errc::bad_sdp},
      {"SetupWithoutValue", appended("a=setup"), errc::bad_sdp},
      {"SetupTwice", appended("a=setup:active\r\na=setup:passive"), errc::bad_sdp},
      {"SessionSetupUnknownRole", inserted(5, "a=setup:both"), errc::bad_sdp},
      {"ConnectionUnknownMode", appended("a=connection:old"), errc::bad_sdp},
      {"FingerprintBadHex", appended("a=fingerprint:sha-1 GG" + sha256.substr(2, 57)),
       errc::bad_sdp},
      {"FingerprintWithoutHash", appended("a=fingerprint:" + sha256), errc::bad_sdp},
      {"FingerprintWrongSeparator", appended("a=fingerprint:foo AB-CD"), errc::bad_sdp},
      {"FingerprintOddDigits", appended("a=fingerprint:foo ABC:D"), errc::bad_sdp},
      {"FingerprintTrailingColon", appended("a=fingerprint:foo AB:CD:"), errc::bad_sdp},
      {"FingerprintEmpty", appended("a=fingerprint:foo "), errc::bad_sdp},
      {"FingerprintTooShortForSha256", appended("a=fingerprint:sha-256 " + sha256.substr(3)),
       errc::bad_sdp},
      {"SessionFingerprintMalformed", inserted(5, "a=fingerprint:sha-256 xyz"), errc::bad_sdp},
      {"AttributeWithoutName", appended("a=:value"), errc::bad_sdp},
  };
}

class SdpMalformed : public ::testing::TestWithParam<malformed> {};

TEST_P(SdpMalformed, FailsWithItsError) {
  const auto& c = GetParam();
  const auto parsed = parse_sdp(c.text);
  ASSERT_FALSE(parsed) << c.text;
  EXPECT_EQ(parsed.error(), c.error) << parsed.error().message();
}

INSTANTIATE_TEST_SUITE_P(Table, SdpMalformed, ::testing::ValuesIn(malformed_inputs()),
                         [](const auto& test) { return std::string(test.param.name); });

TEST(Sdp, MalformedTableStartsFromAValidOffer) {
  // Guards the table: without the change each case makes, the offer parses.
  EXPECT_TRUE(parse_sdp(join(valid_lines)));
  EXPECT_GE(malformed_inputs().size(), 15u);
}

// ---------------------------------------------------------------------------------------------
// Offer and answer.

TEST(Sdp, AnswersTheOfferOfRfc4975) {
  const auto offer = parse_ok(rfc4975_offer);
  const auto expected = parse_ok(rfc4975_answer);
  media_description local = expected.media;
  local.accept_types = {"message/cpim", "text/plain", "application/im-iscomposing+xml"};
  const auto answer = make_answer(offer.media, local);
  ASSERT_TRUE(answer) << answer.error().message();
  EXPECT_EQ(answer->accept_types, (types{"message/cpim", "text/plain"}));
  EXPECT_EQ(format_path(answer->path), "msrp://bob.example.com:8493/si438dsaodes;tcp");
  EXPECT_EQ(answer->port, 8493);
  EXPECT_EQ(answer->address, "bob.example.com");
  // The offer has no a=setup, so the offerer connects (RFC 4975 §5.4) and we say so.
  EXPECT_EQ(answer->setup, setup_role::passive);

  // Apart from that a=setup line, the answer is Figure 10.
  session_description written = expected;
  written.media = *answer;
  std::string text = format_sdp(written);
  const std::string setup_line = "a=setup:passive\r\n";
  ASSERT_NE(text.find(setup_line), std::string::npos);
  text.erase(text.find(setup_line), setup_line.size());
  EXPECT_EQ(text, rfc4975_answer);
}

struct negotiation_case {
  types ours;
  types offered;
  types expected;
};

TEST(Sdp, NegotiatesTypesWithWildcardsBothWays) {
  const negotiation_case cases[] = {
      {{"text/plain"}, {"text/plain"}, {"text/plain"}},
      {{"message/cpim", "text/plain"},
       {"text/plain", "message/cpim"},
       {"message/cpim", "text/plain"}},
      // The offer takes anything: we keep our own specific entries.
      {{"text/plain", "message/cpim"}, {"*"}, {"text/plain", "message/cpim"}},
      // We take anything: the answer lists what the offer lists.
      {{"*"}, {"text/plain", "image/png"}, {"text/plain", "image/png"}},
      {{"*"}, {"*"}, {"*"}},
      // Subtype wildcards, on either side.
      {{"text/*"}, {"text/plain", "image/png", "text/html"}, {"text/plain", "text/html"}},
      {{"text/plain", "image/jpeg", "text/html"}, {"text/*"}, {"text/plain", "text/html"}},
      {{"text/*"}, {"text/*"}, {"text/*"}},
      {{"text/plain", "text/*"}, {"*"}, {"text/plain", "text/*"}},
      // Parameters do not matter; case does not matter; ours is kept when equal.
      {{"text/plain;charset=utf-8"}, {"TEXT/Plain"}, {"text/plain;charset=utf-8"}},
      {{"text/plain"}, {"text/plain;charset=utf-8"}, {"text/plain"}},
      // Each type once, even when several offered entries match it.
      {{"text/plain"}, {"text/*", "*", "text/plain"}, {"text/plain"}},
      {{"image/png", "text/plain"}, {"text/plain"}, {"text/plain"}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(::testing::PrintToString(c.ours) + " vs " + ::testing::PrintToString(c.offered));
    const auto answer = make_answer(media(c.offered), media(c.ours));
    ASSERT_TRUE(answer) << answer.error().message();
    EXPECT_EQ(answer->accept_types, c.expected);
  }
}

TEST(Sdp, FailsWhenNoTypeIsCommon) {
  const auto disjoint = make_answer(media({"image/png", "image/*"}), media({"text/plain"}));
  ASSERT_FALSE(disjoint);
  EXPECT_EQ(disjoint.error(), errc::sdp_no_common_type);
  const auto other_wildcard = make_answer(media({"text/*"}), media({"image/*"}));
  ASSERT_FALSE(other_wildcard);
  EXPECT_EQ(other_wildcard.error(), errc::sdp_no_common_type);
}

TEST(Sdp, NarrowsWrappedTypesToThoseTheOfferKnows) {
  auto offer = media({"message/cpim"});
  offer.accept_wrapped_types = {"text/plain", "text/html"};
  auto local = media({"message/cpim", "text/plain"});
  local.accept_wrapped_types = {"text/html", "image/png", "text/plain"};
  const auto answer = make_answer(offer, local);
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->accept_types, (types{"message/cpim"}));
  EXPECT_EQ(answer->accept_wrapped_types, (types{"text/html", "text/plain"}));

  offer.accept_wrapped_types = {"*"};
  const auto any = make_answer(offer, local);
  ASSERT_TRUE(any);
  EXPECT_EQ(any->accept_wrapped_types, local.accept_wrapped_types);
}

TEST(Sdp, AnswerKeepsOurSettingsAndDropsConnection) {
  auto offer = media({"text/plain"}, setup_role::actpass);
  offer.tls = true;
  offer.max_size = 10;
  offer.connection = connection_mode::new_connection;
  offer.attributes = {"sendonly"};
  auto local = media({"text/plain"});
  local.tls = true;
  local.port = 4242;
  local.address = "2001:db8::42";
  local.ipv6 = true;
  local.path = {parse_uri("msrps://[2001:db8::42]:4242/ours;tcp")};
  local.max_size = 4096;
  local.connection = connection_mode::existing_connection;
  local.fingerprints = {{"sha-256", std::vector<std::uint8_t>(32, 7)}};
  local.attributes = {"recvonly", "msrp-cema"};
  const auto answer = make_answer(offer, local);
  ASSERT_TRUE(answer);
  EXPECT_TRUE(answer->tls);
  EXPECT_EQ(answer->port, 4242);
  EXPECT_EQ(answer->address, "2001:db8::42");
  EXPECT_TRUE(answer->ipv6);
  EXPECT_EQ(format_path(answer->path), "msrps://[2001:db8::42]:4242/ours;tcp");
  EXPECT_EQ(answer->max_size, 4096u);
  EXPECT_EQ(answer->fingerprints, local.fingerprints);
  EXPECT_EQ(answer->attributes, local.attributes);
  EXPECT_EQ(answer->connection, std::nullopt);  // RFC 6135 §4.4
}

TEST(Sdp, AnswerMustMatchTheOfferedTransport) {
  auto offer = media({"text/plain"});
  offer.tls = true;
  const auto plain = make_answer(offer, media({"text/plain"}));
  ASSERT_FALSE(plain);
  EXPECT_EQ(plain.error(), errc::sdp_tls_mismatch);
  auto local = media({"text/plain"});
  local.tls = true;
  const auto tls_to_plain = make_answer(media({"text/plain"}), local);
  ASSERT_FALSE(tls_to_plain);
  EXPECT_EQ(tls_to_plain.error(), errc::sdp_tls_mismatch);
}

struct setup_case {
  std::optional<setup_role> offered;
  std::optional<setup_role> preferred;  // local.setup
  setup_role answered;
  bool offerer_connects;
};

TEST(Sdp, ChoosesTheSetupRoleAndWhoConnects) {
  using enum setup_role;
  const std::optional<setup_role> none;
  const setup_case cases[] = {
      // RFC 4975 peer without COMEDIA: the offerer is active (§5.4).
      {none, none, passive, true},
      {none, active, passive, true},
      // RFC 6135 §4.2.1: holdconn is ignored, as if a=setup were absent.
      {holdconn, none, passive, true},
      {holdconn, active, passive, true},
      {active, none, passive, true},
      {active, active, passive, true},
      {passive, none, active, false},
      {passive, passive, active, false},
      // actpass lets us choose: active unless we prefer passive.
      {actpass, none, active, false},
      {actpass, active, active, false},
      {actpass, actpass, active, false},
      {actpass, holdconn, active, false},
      {actpass, passive, passive, true},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(::testing::Message()
                 << "offered " << (c.offered ? static_cast<int>(*c.offered) : -1) << " preferred "
                 << (c.preferred ? static_cast<int>(*c.preferred) : -1));
    const auto offer = media({"text/plain"}, c.offered);
    const auto answer = make_answer(offer, media({"text/plain"}, c.preferred));
    ASSERT_TRUE(answer);
    EXPECT_EQ(answer->setup, c.answered);
    // Both sides reach the same verdict from the same two descriptions.
    EXPECT_EQ(is_active(offer, *answer, true), c.offerer_connects);
    EXPECT_EQ(is_active(*answer, offer, false), !c.offerer_connects);
  }
}

TEST(Sdp, OffererConnectsUnlessAnAnswerMayTakeActive) {
  using enum setup_role;
  const std::optional<setup_role> none;
  struct row {
    std::optional<setup_role> offer;
    std::optional<setup_role> answer;
    bool offerer_connects;
  };
  const row rows[] = {
      {none, none, true},       {none, active, true},     {holdconn, active, true},
      {active, active, true},   {actpass, none, true},    {actpass, actpass, true},
      {actpass, passive, true}, {actpass, active, false}, {passive, active, false},
      {passive, passive, true}, {passive, none, true},    {actpass, holdconn, true},
  };
  for (const auto& r : rows) {
    const auto offer = media({"*"}, r.offer);
    const auto answer = media({"*"}, r.answer);
    EXPECT_EQ(is_active(offer, answer, true), r.offerer_connects)
        << static_cast<int>(r.offer.value_or(holdconn)) << " "
        << static_cast<int>(r.answer.value_or(holdconn));
    EXPECT_EQ(is_active(answer, offer, false), !r.offerer_connects);
  }
}

TEST(Sdp, ChecksContentTypesAgainstAcceptTypes) {
  const types peer = {"message/cpim", "text/*", "application/im-iscomposing+xml;x=1"};
  EXPECT_TRUE(accepts_type(peer, "message/cpim"));
  EXPECT_TRUE(accepts_type(peer, "Message/CPIM"));
  EXPECT_TRUE(accepts_type(peer, "text/plain"));
  EXPECT_TRUE(accepts_type(peer, "text/html; charset=UTF-8"));
  EXPECT_TRUE(accepts_type(peer, "application/im-iscomposing+xml"));
  EXPECT_FALSE(accepts_type(peer, "image/png"));
  EXPECT_FALSE(accepts_type(peer, "message/sipfrag"));
  EXPECT_FALSE(accepts_type(peer, "texts/plain"));
  EXPECT_FALSE(accepts_type(peer, "application/im-iscomposing"));
  EXPECT_FALSE(accepts_type({}, "text/plain"));
  EXPECT_TRUE(accepts_type({"*"}, "image/png"));
  EXPECT_TRUE(accepts_type({"*/*"}, "image/png"));
  // Not a media type at all: nothing takes it, not even "*".
  EXPECT_FALSE(accepts_type({"*"}, ""));
  EXPECT_FALSE(accepts_type({"*"}, "text"));
  EXPECT_FALSE(accepts_type({"*"}, "text/"));
  EXPECT_FALSE(accepts_type({"*"}, "*"));
  EXPECT_FALSE(accepts_type({"text/*"}, "text/*"));
}

}  // namespace
}  // namespace msrp
