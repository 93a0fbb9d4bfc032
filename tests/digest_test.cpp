#include "msrp/digest.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "openssl_hash.hpp"

namespace msrp::digest {
namespace {

const hasher hash = test::openssl_hash;

TEST(Digest, TestHasherGivesKnownDigests) {
  // Guards the tests below against a broken hasher: RFC 1321 §A.5 and FIPS 180-2 §B.1.
  EXPECT_EQ(hash("MD5", ""), "d41d8cd98f00b204e9800998ecf8427e");
  EXPECT_EQ(hash("SHA-256", "abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

// ---------------------------------------------------------------------------------------------
// RFC 7616 §3.9.1: Mufasa fetches /dir/index.html with GET, with SHA-256 and with MD5.

constexpr std::string_view rfc7616_realm = "http-auth@example.org";
constexpr std::string_view rfc7616_nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
constexpr std::string_view rfc7616_cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
constexpr std::string_view rfc7616_opaque = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS";
constexpr std::string_view rfc7616_md5_response = "8ca523f5e9506fed4657c9700eebdbec";
constexpr std::string_view rfc7616_sha256_response =
    "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1";

credentials rfc7616_credentials(std::string_view algorithm) {
  credentials c;
  c.username = "Mufasa";
  c.realm = rfc7616_realm;
  c.nonce = rfc7616_nonce;
  c.uri = "/dir/index.html";
  c.algorithm = algorithm;
  c.cnonce = rfc7616_cnonce;
  c.opaque = rfc7616_opaque;
  c.qop = "auth";
  c.nc = "00000001";
  return c;
}

TEST(Digest, ComputesTheResponsesOfRfc7616) {
  for (const auto& [algorithm, expected] :
       {std::pair{md5, rfc7616_md5_response}, std::pair{sha256, rfc7616_sha256_response}}) {
    const auto c = rfc7616_credentials(algorithm);
    const auto h = ha1(hash, algorithm, "Mufasa", rfc7616_realm, "Circle of Life");
    EXPECT_EQ(response(hash, c, h, "GET"), expected) << algorithm;
  }
}

TEST(Digest, HashesExactlyTheStringsRfc7616Defines) {
  // A recording hasher shows what is digested: A1, A2, then KD's data (RFC 7616 §3.4.1-3.4.3).
  std::vector<std::pair<std::string, std::string>> calls;
  const hasher recorder = [&calls](std::string_view algorithm, std::string_view data) {
    calls.emplace_back(algorithm, data);
    return "h" + std::to_string(calls.size());
  };
  const auto h = ha1(recorder, sha256, "Mufasa", rfc7616_realm, "Circle of Life");
  EXPECT_EQ(response(recorder, rfc7616_credentials(sha256), h, "GET"), "h3");
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"SHA-256", "Mufasa:http-auth@example.org:Circle of Life"},
      {"SHA-256", "GET:/dir/index.html"},
      {"SHA-256", "h1:" + std::string(rfc7616_nonce) + ":00000001:" + std::string(rfc7616_cnonce) +
                      ":auth:h2"},
  };
  EXPECT_EQ(calls, expected);

  calls.clear();
  EXPECT_EQ(rspauth(recorder, rfc7616_credentials(md5), "HA1"), "h2");
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0], (std::pair<std::string, std::string>{"MD5", ":/dir/index.html"}));
}

// The RFC's headers, each joined onto one line (the SHA-256 response is wrapped mid-digest).
const std::string rfc7616_sha256_challenge =
    "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", algorithm=SHA-256, "
    "nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", "
    "opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"";
const std::string rfc7616_md5_authorization =
    "Digest username=\"Mufasa\", realm=\"http-auth@example.org\", uri=\"/dir/index.html\", "
    "algorithm=MD5, nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", nc=00000001, "
    "cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\", qop=auth, "
    "response=\"8ca523f5e9506fed4657c9700eebdbec\", "
    "opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"";
const std::string rfc7616_sha256_authorization =
    "Digest username=\"Mufasa\", realm=\"http-auth@example.org\", uri=\"/dir/index.html\", "
    "algorithm=SHA-256, nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", nc=00000001, "
    "cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\", qop=auth, "
    "response=\"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1\", "
    "opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"";

TEST(Digest, ParsesTheChallengeOfRfc7616) {
  const auto ch = challenge::parse(rfc7616_sha256_challenge);
  ASSERT_TRUE(ch) << ch.error().message();
  EXPECT_EQ(ch->realm, rfc7616_realm);
  EXPECT_EQ(ch->nonce, rfc7616_nonce);
  EXPECT_EQ(ch->opaque, rfc7616_opaque);
  EXPECT_EQ(ch->algorithm, "SHA-256");
  EXPECT_EQ(ch->qop, "auth, auth-int");
  EXPECT_FALSE(ch->stale);
  EXPECT_TRUE(ch->other.empty());
}

TEST(Digest, VerifiesTheAuthorizationsOfRfc7616) {
  for (const auto& [text, algorithm, digest] :
       {std::tuple{rfc7616_md5_authorization, md5, rfc7616_md5_response},
        std::tuple{rfc7616_sha256_authorization, sha256, rfc7616_sha256_response}}) {
    const auto c = credentials::parse(text);
    ASSERT_TRUE(c) << c.error().message();
    auto expected = rfc7616_credentials(algorithm);
    expected.response = digest;
    EXPECT_EQ(*c, expected);
    const auto h = ha1(hash, algorithm, c->username, c->realm, "Circle of Life");
    EXPECT_TRUE(verify(hash, *c, h, "GET")) << algorithm;
    EXPECT_FALSE(verify(hash, *c, h, "AUTH")) << algorithm;
  }
}

TEST(Digest, AnswerFillsTheFieldsOfRfc7616) {
  // answer() is for MSRP, so its method is AUTH, not the RFC's GET: every field but the
  // response matches the RFC's Authorization, and the response verifies for AUTH.
  auto ch = challenge::parse(rfc7616_sha256_challenge);
  ASSERT_TRUE(ch);
  const auto c =
      answer(hash, *ch, "Mufasa", "Circle of Life", "/dir/index.html", rfc7616_cnonce, 1);
  auto expected = rfc7616_credentials(sha256);
  expected.response = c.response;
  EXPECT_EQ(c, expected);
  EXPECT_NE(c.response, rfc7616_sha256_response);
  const auto h = ha1(hash, sha256, "Mufasa", rfc7616_realm, "Circle of Life");
  EXPECT_TRUE(verify(hash, c, h, "AUTH"));
}

// ---------------------------------------------------------------------------------------------
// RFC 2617 §3.5: the MD5 example with qop=auth.

TEST(Digest, ComputesAndVerifiesTheExampleOfRfc2617) {
  const auto ch = challenge::parse(
      "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", "
      "nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"");
  ASSERT_TRUE(ch) << ch.error().message();
  EXPECT_EQ(ch->algorithm, "MD5") << "no algorithm means MD5 (RFC 7616 §3.3)";
  EXPECT_EQ(ch->qop, "auth,auth-int");

  const auto c = credentials::parse(
      "Digest username=\"Mufasa\", realm=\"testrealm@host.com\", "
      "nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"/dir/index.html\", qop=auth, "
      "nc=00000001, cnonce=\"0a4f113b\", response=\"6629fae49393a05397450978507c4ef1\", "
      "opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"");
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_EQ(c->algorithm, "MD5");
  EXPECT_EQ(c->uri, "/dir/index.html");
  EXPECT_EQ(c->opaque, ch->opaque);

  const auto h = ha1(hash, md5, "Mufasa", "testrealm@host.com", "Circle Of Life");
  EXPECT_EQ(response(hash, *c, h, "GET"), "6629fae49393a05397450978507c4ef1");
  EXPECT_TRUE(verify(hash, *c, h, "GET"));
  EXPECT_FALSE(
      verify(hash, *c, ha1(hash, md5, "Mufasa", "testrealm@host.com", "Circle of Life"), "GET"))
      << "the password differs from RFC 7616's in one letter's case";
}

// ---------------------------------------------------------------------------------------------
// RFC 4976 §5.1: Alice authenticates to intra.example.com, then through it to extra.example.com.
// The headers are joined onto one line with a single space at each wrap, as in
// tests/vectors/rfc4976-5.1-auth.md. Their digests are RFC 2617 §3.5's (same nonce, cnonce and
// response as Mufasa's), and Alice's password is not given, so only parsing can be checked.

TEST(Digest, ParsesTheChallengesOfRfc4976) {
  const auto intra = challenge::parse(
      "Digest realm=\"intra.example.com\", qop=\"auth\", "
      "nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\"");
  ASSERT_TRUE(intra) << intra.error().message();
  challenge expected;
  expected.realm = "intra.example.com";
  expected.nonce = "dcd98b7102dd2f0e8b11d0f600bfb0c093";
  expected.algorithm = "MD5";
  expected.qop = "auth";
  EXPECT_EQ(*intra, expected);

  const auto extra = challenge::parse(
      "Digest realm=\"extra.example.com\", qop=\"auth\", nonce=\"Uumu8cAV38FGsEF31VLevIbNXj9HWO\"");
  ASSERT_TRUE(extra) << extra.error().message();
  expected.realm = "extra.example.com";
  expected.nonce = "Uumu8cAV38FGsEF31VLevIbNXj9HWO";
  EXPECT_EQ(*extra, expected);
}

TEST(Digest, ParsesTheAuthorizationsOfRfc4976) {
  const auto intra = credentials::parse(
      "Digest username=\"Alice\", realm=\"intra.example.com\", "
      "nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", qop=auth, nc=00000001, cnonce=\"0a4f113b\", "
      "response=\"6629fae49393a05397450978507c4ef1\"");
  ASSERT_TRUE(intra) << intra.error().message();
  credentials expected;
  expected.username = "Alice";
  expected.realm = "intra.example.com";
  expected.nonce = "dcd98b7102dd2f0e8b11d0f600bfb0c093";
  expected.uri = "";  // RFC 4976's examples send no uri; the relay uses the rightmost To-Path URI
  expected.response = "6629fae49393a05397450978507c4ef1";
  expected.algorithm = "MD5";
  expected.cnonce = "0a4f113b";
  expected.qop = "auth";
  expected.nc = "00000001";
  EXPECT_EQ(*intra, expected);

  const auto extra = credentials::parse(
      "Digest username=\"Alice\", realm=\"extra.example.com\", "
      "nonce=\"Uumu8cAV38FGsEF31VLevIbNXj9HWO\", qop=auth, nc=00000001, cnonce=\"85a0dca8\", "
      "response=\"cb06c4a77cd90918cd7914432032e0e6\"");
  ASSERT_TRUE(extra) << extra.error().message();
  expected.realm = "extra.example.com";
  expected.nonce = "Uumu8cAV38FGsEF31VLevIbNXj9HWO";
  expected.cnonce = "85a0dca8";
  expected.response = "cb06c4a77cd90918cd7914432032e0e6";
  EXPECT_EQ(*extra, expected);
}

TEST(Digest, ParsesTheAuthenticationInfoOfRfc4976) {
  const auto intra = authentication_info::parse(
      "nextnonce=\"40f2e879449675f288476d772627370a\", "
      "rspauth=\"7327570c586207eca2afae94fc20903d\", cnonce=\"0a4f113b\", nc=00000001, qop=auth");
  ASSERT_TRUE(intra) << intra.error().message();
  EXPECT_EQ(*intra,
            (authentication_info{"40f2e879449675f288476d772627370a", "auth",
                                 "7327570c586207eca2afae94fc20903d", "0a4f113b", "00000001"}));

  // The RFC wraps the first one right after a comma, with no space before the "\"; the ABNF
  // has no space there either.
  const auto extra = authentication_info::parse(
      "nextnonce=\"bz8V080GEA2sLyEDpITF2AZCq7gIkc\",rspauth=\"72f109ed2755d7ed0d0a213ec653b3f2\","
      "cnonce=\"85a0dca8\",nc=00000001,qop=auth");
  ASSERT_TRUE(extra) << extra.error().message();
  EXPECT_EQ(*extra,
            (authentication_info{"bz8V080GEA2sLyEDpITF2AZCq7gIkc", "auth",
                                 "72f109ed2755d7ed0d0a213ec653b3f2", "85a0dca8", "00000001"}));
}

// ---------------------------------------------------------------------------------------------
// Writing, and reading what was written.

TEST(Digest, WritesEachHeaderAsTheRfcsDo) {
  challenge ch;
  ch.realm = "intra.example.com";
  ch.nonce = "dcd98b7102dd2f0e8b11d0f600bfb0c093";
  EXPECT_EQ(ch.to_header_value(),
            "Digest realm=\"intra.example.com\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", "
            "algorithm=SHA-256, qop=\"auth\"");
  ch.opaque = "x";
  ch.stale = true;
  ch.algorithm = md5;
  ch.other = {{"domain", "/"}};
  EXPECT_EQ(ch.to_header_value(),
            "Digest realm=\"intra.example.com\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", "
            "opaque=\"x\", stale=true, algorithm=MD5, qop=\"auth\", domain=\"/\"");

  credentials c;
  c.username = "Alice";
  c.realm = "intra.example.com";
  c.nonce = "n";
  c.uri = "msrps://alice@intra.example.com;tcp";
  c.cnonce = "0a4f113b";
  c.response = std::string(64, 'a');
  EXPECT_EQ(c.to_header_value(),
            "Digest username=\"Alice\", realm=\"intra.example.com\", nonce=\"n\", "
            "uri=\"msrps://alice@intra.example.com;tcp\", algorithm=SHA-256, qop=auth, "
            "nc=00000001, cnonce=\"0a4f113b\", response=\"" +
                std::string(64, 'a') + "\"");

  authentication_info info;
  info.nextnonce = "next";
  info.rspauth = std::string(32, 'b');
  info.cnonce = "0a4f113b";
  EXPECT_EQ(info.to_header_value(), "nextnonce=\"next\",qop=auth,rspauth=\"" +
                                        std::string(32, 'b') +
                                        "\",cnonce=\"0a4f113b\",nc=00000001");
  info.nextnonce.clear();
  EXPECT_EQ(info.to_header_value(),
            "qop=auth,rspauth=\"" + std::string(32, 'b') + "\",cnonce=\"0a4f113b\",nc=00000001");
}

TEST(Digest, EscapesQuotesAndBackslashes) {
  challenge ch;
  ch.realm = R"(a "quoted" \ realm)";
  ch.nonce = "n";
  EXPECT_EQ(ch.to_header_value(),
            R"(Digest realm="a \"quoted\" \\ realm", nonce="n", algorithm=SHA-256, qop="auth")");
  const auto parsed = challenge::parse(ch.to_header_value());
  ASSERT_TRUE(parsed) << parsed.error().message();
  EXPECT_EQ(parsed->realm, ch.realm);
}

TEST(Digest, ChallengesRoundTrip) {
  std::vector<challenge> cases(5);
  cases[1].realm = "relay.example.com";
  cases[1].nonce = "Uumu8cAV38FGsEF31VLevIbNXj9HWO";
  cases[2] = cases[1];
  cases[2].algorithm = md5;
  cases[2].opaque = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS";
  cases[2].stale = true;
  cases[3] = cases[1];
  cases[3].qop = "auth, auth-int";
  cases[3].other = {{"charset", "UTF-8"}, {"userhash", "false"}, {"x-ext", "a \"b\" \\c, d"}};
  cases[4].realm = "tab\tand utf-8 \xC3\xA9";
  cases[4].nonce = "\\\"";
  for (const auto& ch : cases) {
    const auto text = ch.to_header_value();
    const auto parsed = challenge::parse(text);
    ASSERT_TRUE(parsed) << text << ": " << parsed.error().message();
    EXPECT_EQ(*parsed, ch) << text;
  }
}

TEST(Digest, CredentialsRoundTrip) {
  challenge ch;
  ch.realm = "relay.example.com";
  ch.nonce = "abc";
  std::vector<credentials> cases;
  for (const auto algorithm : {md5, sha256}) {
    ch.algorithm = algorithm;
    ch.opaque = "";
    cases.push_back(
        answer(hash, ch, "alice", "secret", "msrps://relay.example.com;tcp", "c\"n\\once", 7));
    ch.opaque = "op aque";
    cases.push_back(answer(hash, ch, "Alice \"A\"", "pw", "msrp://r.example.com:9/s;tcp", "x", 1));
  }
  cases.push_back(cases.back());
  cases.back().uri.clear();  // an RFC 4976 style Authorization, without uri
  for (const auto& c : cases) {
    const auto text = c.to_header_value();
    const auto parsed = credentials::parse(text);
    ASSERT_TRUE(parsed) << text << ": " << parsed.error().message();
    EXPECT_EQ(*parsed, c) << text;
  }
}

TEST(Digest, AuthenticationInfoRoundTrips) {
  const std::vector<authentication_info> cases = {
      {"40f2e879449675f288476d772627370a", "auth", "7327570c586207eca2afae94fc20903d", "0a4f113b",
       "00000001"},
      {"", "auth", std::string(64, '0'), "c\"n", "ffffffff"},
  };
  for (const auto& info : cases) {
    const auto text = info.to_header_value();
    const auto parsed = authentication_info::parse(text);
    ASSERT_TRUE(parsed) << text << ": " << parsed.error().message();
    EXPECT_EQ(*parsed, info) << text;
  }
}

// ---------------------------------------------------------------------------------------------
// What parsing tolerates.

TEST(Digest, ToleratesCaseWhitespaceOrderAndQuoting) {
  const auto ch = challenge::parse(
      "  DIGEST\tQOP = \"auth\" ,Nonce=abc,  REALM= relay.example.com ,algorithm=sha-256, "
      "Stale=TRUE  ");
  ASSERT_TRUE(ch) << ch.error().message();
  EXPECT_EQ(ch->realm, "relay.example.com");
  EXPECT_EQ(ch->nonce, "abc");
  EXPECT_EQ(ch->qop, "auth");
  EXPECT_EQ(ch->algorithm, "SHA-256");
  EXPECT_TRUE(ch->stale);

  // RFC 4976 §9.1 says qop is unquoted in Authorization; some clients quote it anyway, and
  // quote nc and algorithm too.
  const auto c = credentials::parse(
      "digest RESPONSE=\"6629fae49393a05397450978507c4ef1\",cnonce=\"0a4f113b\",nc=\"00000001\","
      "qop=\"auth\",algorithm=\"md5\",nonce=n,realm=r,username=u");
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_EQ(c->algorithm, "MD5");
  EXPECT_EQ(c->qop, "auth");
  EXPECT_EQ(c->nc, "00000001");
  EXPECT_EQ(c->username, "u");
}

TEST(Digest, ReadsAnyQuotedPair) {
  const auto ch = challenge::parse(R"(Digest realm="a\b\"c\\", nonce="\ ", qop="auth")");
  ASSERT_TRUE(ch) << ch.error().message();
  EXPECT_EQ(ch->realm, R"(ab"c\)");
  EXPECT_EQ(ch->nonce, " ");
}

TEST(Digest, ReadsStaleAsRfc7616Says) {
  for (const auto& [text, stale] : std::vector<std::pair<std::string, bool>>{{"true", true},
                                                                             {"TRUE", true},
                                                                             {"\"true\"", true},
                                                                             {"false", false},
                                                                             {"yes", false},
                                                                             {"1", false}}) {
    const auto ch =
        challenge::parse("Digest realm=\"r\", nonce=\"n\", qop=\"auth\", stale=" + text);
    ASSERT_TRUE(ch) << text << ": " << ch.error().message();
    EXPECT_EQ(ch->stale, stale) << text;
  }
}

TEST(Digest, KeepsUnknownChallengeParametersAndIgnoresOthers) {
  const auto ch = challenge::parse(
      "Digest domain=\"/ msrps://x\", realm=\"r\", Charset=UTF-8, nonce=\"n\", "
      "qop=\"auth\", userhash=false");
  ASSERT_TRUE(ch) << ch.error().message();
  const std::vector<std::pair<std::string, std::string>> other = {
      {"domain", "/ msrps://x"}, {"Charset", "UTF-8"}, {"userhash", "false"}};
  EXPECT_EQ(ch->other, other);

  const auto base = answer(hash, *ch, "u", "p", "msrps://r;tcp", "c", 1).to_header_value();
  const auto c = credentials::parse(base + ", userhash=false, x-ext=\"y\", auth-param=token");
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_EQ(c->to_header_value(), base);

  const auto info = authentication_info::parse("x=\"y\", qop=auth, rspauth=\"" +
                                               std::string(32, '1') + "\", cnonce=c, nc=00000002");
  ASSERT_TRUE(info) << info.error().message();
  EXPECT_EQ(info->nc, "00000002");
}

// ---------------------------------------------------------------------------------------------
// Malformed header values.

enum class header { www_authenticate, authorization, info };

struct malformed {
  std::string_view name;
  header kind;
  std::string text;
  errc error;
};

void PrintTo(const malformed& c, std::ostream* out) {
  *out << c.name;
}

const std::string md5_hex = "6629fae49393a05397450978507c4ef1";
const std::string sha256_hex = std::string(rfc7616_sha256_response);

// A valid value of each header; most cases change one thing about one of them.
const std::string valid_challenge = "Digest realm=\"r\", nonce=\"n\", qop=\"auth\"";
const std::string credentials_head = "Digest username=\"u\", realm=\"r\", nonce=\"n\", ";
const std::string credentials_tail =
    "qop=auth, nc=00000001, cnonce=\"c\", response=\"" + md5_hex + "\"";
const std::string valid_credentials = credentials_head + credentials_tail;
const std::string valid_info =
    "nextnonce=\"n\", qop=auth, rspauth=\"" + md5_hex + "\", cnonce=\"c\", nc=00000001";

std::error_code parse_error(header kind, std::string_view text) {
  switch (kind) {
    case header::www_authenticate:
      return challenge::parse(text).error();
    case header::authorization:
      return credentials::parse(text).error();
    case header::info:
      return authentication_info::parse(text).error();
  }
  return {};
}

std::string many_parameters(std::size_t count) {
  std::string text = valid_challenge;
  for (std::size_t i = 0; i < count; ++i)
    text += ", p" + std::to_string(i) + "=x";
  return text;
}

std::vector<malformed> malformed_inputs() {
  const auto challenge_with = [](std::string_view extra) {
    return valid_challenge + ", " + std::string(extra);
  };
  const auto credentials_with = [](std::string_view middle) {
    return credentials_head + std::string(middle) + ", " + credentials_tail;
  };
  using enum header;
  return {
      // Syntax shared by all three headers.
      {"Empty", www_authenticate, "", errc::bad_digest_syntax},
      {"OnlySpaces", authorization, "   ", errc::bad_digest_syntax},
      {"BasicScheme", authorization, "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", errc::bad_digest_syntax},
      {"SchemeAlone", www_authenticate, "Digest", errc::bad_digest_syntax},
      {"SchemeWithoutSpace", www_authenticate, "Digestrealm=\"r\", nonce=\"n\", qop=\"auth\"",
       errc::bad_digest_syntax},
      {"UnterminatedQuote", www_authenticate, "Digest realm=\"r\", nonce=\"n, qop=\"auth",
       errc::bad_digest_syntax},
      {"BackslashAtTheEnd", www_authenticate, challenge_with("opaque=\"abc\\"),
       errc::bad_digest_syntax},
      {"EscapedClosingQuote", www_authenticate, challenge_with("opaque=\"abc\\\""),
       errc::bad_digest_syntax},
      {"ControlByteInQuotes", www_authenticate, challenge_with("opaque=\"a\x01z\""),
       errc::bad_digest_syntax},
      {"NulByteInQuotes", www_authenticate, challenge_with(std::string_view("opaque=\"a\0z\"", 12)),
       errc::bad_digest_syntax},
      {"LineBreakInQuotes", www_authenticate, challenge_with("opaque=\"a\r\nX: y\""),
       errc::bad_digest_syntax},
      {"MissingEquals", www_authenticate, challenge_with("opaque \"x\""), errc::bad_digest_syntax},
      {"MissingName", www_authenticate, challenge_with("=\"x\""), errc::bad_digest_syntax},
      {"EmptyValue", www_authenticate, challenge_with("opaque="), errc::bad_digest_syntax},
      {"EmptyValueBeforeComma", www_authenticate,
       "Digest opaque=, realm=\"r\", nonce=\"n\", qop=auth", errc::bad_digest_syntax},
      {"TrailingComma", www_authenticate, valid_challenge + ",", errc::bad_digest_syntax},
      {"DoubleComma", www_authenticate, "Digest realm=\"r\",, nonce=\"n\", qop=\"auth\"",
       errc::bad_digest_syntax},
      {"SemicolonSeparator", www_authenticate, "Digest realm=\"r\"; nonce=\"n\"; qop=\"auth\"",
       errc::bad_digest_syntax},
      {"TextAfterQuotedString", www_authenticate, "Digest realm=\"r\"x, nonce=\"n\", qop=\"auth\"",
       errc::bad_digest_syntax},
      {"NonTokenInValue", www_authenticate, challenge_with("algorithm=MD5/x"),
       errc::bad_digest_syntax},
      {"TwoChallengesInOneValue", www_authenticate, valid_challenge + ", " + valid_challenge,
       errc::bad_digest_syntax},
      {"TooManyParameters", www_authenticate, many_parameters(62), errc::bad_digest_syntax},
      {"InfoWithScheme", info, "Digest " + valid_info, errc::bad_digest_syntax},
      // Repeated parameters.
      {"DuplicateNonce", www_authenticate, challenge_with("nonce=\"m\""),
       errc::duplicate_digest_parameter},
      {"DuplicateInOtherCase", www_authenticate, challenge_with("REALM=\"r\""),
       errc::duplicate_digest_parameter},
      {"DuplicateUnknown", www_authenticate, challenge_with("x=1, x=2"),
       errc::duplicate_digest_parameter},
      {"DuplicateResponse", authorization, valid_credentials + ", response=\"" + md5_hex + "\"",
       errc::duplicate_digest_parameter},
      {"DuplicateNc", info, valid_info + ", nc=00000002", errc::duplicate_digest_parameter},
      // Missing parameters.
      {"ChallengeWithoutRealm", www_authenticate, "Digest nonce=\"n\", qop=\"auth\"",
       errc::missing_digest_parameter},
      {"ChallengeWithoutNonce", www_authenticate, "Digest realm=\"r\", qop=\"auth\"",
       errc::missing_digest_parameter},
      {"ChallengeWithoutQop", www_authenticate, "Digest realm=\"r\", nonce=\"n\"",
       errc::missing_digest_parameter},
      {"CredentialsWithoutUsername", authorization,
       "Digest realm=\"r\", nonce=\"n\", " + credentials_tail, errc::missing_digest_parameter},
      {"CredentialsWithoutCnonce", authorization,
       credentials_head + "qop=auth, nc=00000001, response=\"" + md5_hex + "\"",
       errc::missing_digest_parameter},
      {"CredentialsWithoutNc", authorization,
       credentials_head + "qop=auth, cnonce=\"c\", response=\"" + md5_hex + "\"",
       errc::missing_digest_parameter},
      {"CredentialsWithoutQop", authorization,
       credentials_head + "nc=00000001, cnonce=\"c\", response=\"" + md5_hex + "\"",
       errc::missing_digest_parameter},
      {"CredentialsWithoutResponse", authorization,
       credentials_head + "qop=auth, nc=00000001, cnonce=\"c\"", errc::missing_digest_parameter},
      {"InfoWithoutRspauth", info, "qop=auth, cnonce=\"c\", nc=00000001",
       errc::missing_digest_parameter},
      {"InfoWithoutCnonce", info, "qop=auth, rspauth=\"" + md5_hex + "\", nc=00000001",
       errc::missing_digest_parameter},
      // Bad values.
      {"ChallengeOffersOnlyAuthInt", www_authenticate,
       "Digest realm=\"r\", nonce=\"n\", qop=\"auth-int\"", errc::bad_digest_parameter},
      {"ChallengeQopListWithEmptyItem", www_authenticate,
       "Digest realm=\"r\", nonce=\"n\", qop=\"auth,,auth-int\"", errc::bad_digest_parameter},
      {"CredentialsQopAuthInt", authorization,
       credentials_head + "qop=auth-int, nc=00000001, cnonce=\"c\", response=\"" + md5_hex + "\"",
       errc::bad_digest_parameter},
      {"NcSevenDigits", authorization,
       credentials_head + "qop=auth, nc=0000001, cnonce=\"c\", response=\"" + md5_hex + "\"",
       errc::bad_digest_parameter},
      {"NcNotHex", authorization,
       credentials_head + "qop=auth, nc=0000000g, cnonce=\"c\", response=\"" + md5_hex + "\"",
       errc::bad_digest_parameter},
      {"NcUppercaseHex", authorization,
       credentials_head + "qop=auth, nc=0000000A, cnonce=\"c\", response=\"" + md5_hex + "\"",
       errc::bad_digest_parameter},
      {"ResponseTooShort", authorization,
       credentials_head + "qop=auth, nc=00000001, cnonce=\"c\", response=\"" + md5_hex.substr(1) +
           "\"",
       errc::bad_digest_parameter},
      {"ResponseUppercase", authorization,
       credentials_head + "qop=auth, nc=00000001, cnonce=\"c\", response=\"" +
           "6629FAE49393A05397450978507C4EF1\"",
       errc::bad_digest_parameter},
      {"Sha256LengthForMd5", authorization,
       credentials_head + "qop=auth, nc=00000001, cnonce=\"c\", response=\"" + sha256_hex + "\"",
       errc::bad_digest_parameter},
      {"Md5LengthForSha256", authorization, credentials_with("algorithm=SHA-256"),
       errc::bad_digest_parameter},
      {"ExtendedUsername", authorization, credentials_with("username*=UTF-8''J%C3%A4s%C3%B8n"),
       errc::bad_digest_parameter},
      {"InfoNcTooLong", info, "qop=auth, rspauth=\"" + md5_hex + "\", cnonce=\"c\", nc=000000001",
       errc::bad_digest_parameter},
      {"InfoRspauthShort", info, "qop=auth, rspauth=\"abc\", cnonce=\"c\", nc=00000001",
       errc::bad_digest_parameter},
      {"InfoQopAuthInt", info,
       "qop=auth-int, rspauth=\"" + md5_hex + "\", cnonce=\"c\", nc=00000001",
       errc::bad_digest_parameter},
      // Algorithms.
      {"ChallengeMd5Sess", www_authenticate, challenge_with("algorithm=MD5-sess"),
       errc::unsupported_digest_algorithm},
      {"ChallengeSha256Sess", www_authenticate, challenge_with("algorithm=SHA-256-sess"),
       errc::unsupported_digest_algorithm},
      {"ChallengeSha512", www_authenticate, challenge_with("algorithm=SHA-512-256"),
       errc::unsupported_digest_algorithm},
      {"CredentialsMd5Sess", authorization, credentials_with("algorithm=MD5-sess"),
       errc::unsupported_digest_algorithm},
  };
}

class DigestMalformed : public ::testing::TestWithParam<malformed> {};

TEST_P(DigestMalformed, FailsWithItsError) {
  const auto& c = GetParam();
  EXPECT_EQ(parse_error(c.kind, c.text), c.error)
      << c.text << ": " << parse_error(c.kind, c.text).message();
}

INSTANTIATE_TEST_SUITE_P(Table, DigestMalformed, ::testing::ValuesIn(malformed_inputs()),
                         [](const auto& test) { return std::string(test.param.name); });

TEST(Digest, MalformedTableStartsFromValidHeaders) {
  // Guards the table: the values its cases change parse, and so do the limits just inside it.
  EXPECT_TRUE(challenge::parse(valid_challenge));
  EXPECT_TRUE(credentials::parse(valid_credentials));
  EXPECT_TRUE(credentials::parse(credentials_head + "algorithm=SHA-256, " +
                                 "qop=auth, nc=00000001, cnonce=\"c\", response=\"" + sha256_hex +
                                 "\""));
  EXPECT_TRUE(authentication_info::parse(valid_info));
  EXPECT_TRUE(challenge::parse(many_parameters(61))) << "64 parameters are allowed";
  EXPECT_GE(malformed_inputs().size(), 15u);
}

// ---------------------------------------------------------------------------------------------
// The client and the relay.

constexpr std::string_view relay_uri = "msrps://extra.example.com;tcp";

TEST(Digest, AnswerThenVerifyOverTheWire) {
  // RFC 4976 §5.1 with a known password, for both algorithms: the relay challenges, the client
  // answers through header text, the relay verifies and proves itself with rspauth.
  for (const auto algorithm : {sha256, md5}) {
    SCOPED_TRACE(algorithm);
    challenge sent;
    sent.realm = "extra.example.com";
    sent.nonce = "Uumu8cAV38FGsEF31VLevIbNXj9HWO";
    sent.opaque = "state";
    sent.algorithm = algorithm;

    // Client: reads the challenge, answers for the rightmost To-Path URI.
    const auto received = challenge::parse(sent.to_header_value());
    ASSERT_TRUE(received);
    const auto mine = answer(hash, *received, "Alice", "wonderland", relay_uri, "85a0dca8", 1);
    EXPECT_EQ(mine.nc, "00000001");
    EXPECT_EQ(mine.opaque, "state");
    EXPECT_EQ(mine.algorithm, algorithm);
    EXPECT_EQ(mine.response.size(), algorithm == md5 ? 32u : 64u);

    // Relay: parses, looks up HA1 by username and realm, verifies.
    const auto theirs = credentials::parse(mine.to_header_value());
    ASSERT_TRUE(theirs) << theirs.error().message();
    EXPECT_EQ(*theirs, mine);
    const auto stored = ha1(hash, algorithm, "Alice", "extra.example.com", "wonderland");
    ASSERT_TRUE(verify(hash, *theirs, stored, "AUTH"));
    authentication_info info;
    info.nextnonce = "bz8V080GEA2sLyEDpITF2AZCq7gIkc";
    info.rspauth = rspauth(hash, *theirs, stored);
    info.cnonce = theirs->cnonce;
    info.nc = theirs->nc;
    EXPECT_NE(info.rspauth, theirs->response);

    // Client: checks the relay's proof.
    const auto confirmed = authentication_info::parse(info.to_header_value());
    ASSERT_TRUE(confirmed) << confirmed.error().message();
    const auto my_ha1 = ha1(hash, algorithm, "Alice", received->realm, "wonderland");
    EXPECT_EQ(confirmed->rspauth, rspauth(hash, mine, my_ha1));
    EXPECT_EQ(confirmed->cnonce, mine.cnonce);
    EXPECT_EQ(confirmed->nc, mine.nc);
    EXPECT_NE(confirmed->rspauth,
              rspauth(hash, mine, ha1(hash, algorithm, "Alice", received->realm, "guessed")))
        << "a relay that does not know the password cannot make rspauth";
  }
}

TEST(Digest, AnswerWritesTheNonceCountInHex) {
  challenge ch;
  ch.realm = "r";
  ch.nonce = "n";
  for (const auto& [nc, text] :
       std::vector<std::pair<std::uint32_t, std::string>>{{1, "00000001"},
                                                          {0x1a, "0000001a"},
                                                          {0xabcdef12, "abcdef12"},
                                                          {0xffffffff, "ffffffff"}}) {
    EXPECT_EQ(answer(hash, ch, "u", "p", relay_uri, "c", nc).nc, text);
  }
}

TEST(Digest, AnswerUsesAuthFromAListOfOptions) {
  auto ch = challenge::parse(rfc7616_sha256_challenge);
  ASSERT_TRUE(ch);
  EXPECT_EQ(answer(hash, *ch, "u", "p", relay_uri, "c", 1).qop, "auth");
}

TEST(Digest, VerifyRefusesEveryChange) {
  challenge ch;
  ch.realm = "extra.example.com";
  ch.nonce = "Uumu8cAV38FGsEF31VLevIbNXj9HWO";
  const auto good = answer(hash, ch, "Alice", "wonderland", relay_uri, "85a0dca8", 1);
  const auto stored = ha1(hash, sha256, "Alice", "extra.example.com", "wonderland");
  ASSERT_TRUE(verify(hash, good, stored, "AUTH"));

  EXPECT_FALSE(
      verify(hash, good, ha1(hash, sha256, "Alice", "extra.example.com", "Wonderland"), "AUTH"))
      << "wrong password";
  EXPECT_FALSE(
      verify(hash, good, ha1(hash, sha256, "Alice", "intra.example.com", "wonderland"), "AUTH"))
      << "wrong realm";
  EXPECT_FALSE(
      verify(hash, good, ha1(hash, md5, "Alice", "extra.example.com", "wonderland"), "AUTH"))
      << "HA1 of another algorithm";
  EXPECT_FALSE(verify(hash, good, stored, "SEND")) << "wrong method";

  const auto changed = [&](auto change) {
    auto c = good;
    change(c);
    return verify(hash, c, stored, "AUTH");
  };
  EXPECT_FALSE(changed([](credentials& c) { c.nonce = "bz8V080GEA2sLyEDpITF2AZCq7gIkc"; }))
      << "wrong nonce";
  EXPECT_FALSE(changed([](credentials& c) { c.uri = "msrps://evil.example.com;tcp"; }))
      << "tampered uri";
  EXPECT_FALSE(changed([](credentials& c) { c.uri.clear(); })) << "uri left out";
  EXPECT_FALSE(changed([](credentials& c) { c.nc = "00000002"; })) << "other nonce count";
  EXPECT_FALSE(changed([](credentials& c) { c.cnonce = "85a0dca9"; })) << "other cnonce";
  EXPECT_FALSE(changed([](credentials& c) { c.algorithm = md5; })) << "other algorithm";
  EXPECT_FALSE(changed([](credentials& c) { c.response.back() ^= 1; })) << "last digit flipped";
  EXPECT_FALSE(changed([](credentials& c) { c.response.front() ^= 1; })) << "first digit flipped";
  EXPECT_FALSE(changed([](credentials& c) { c.response.pop_back(); })) << "truncated";
  EXPECT_FALSE(changed([](credentials& c) { c.response.clear(); })) << "empty";
  EXPECT_FALSE(changed([](credentials& c) { c.response += '0'; })) << "extended";

  // The username and opaque enter only through HA1 and the relay's own checks: a relay looks
  // HA1 up by username, and compares opaque with what it sent.
  EXPECT_TRUE(changed([](credentials& c) { c.username = "Mallory"; }));
  EXPECT_TRUE(changed([](credentials& c) { c.opaque = "forged"; }));
}

}  // namespace
}  // namespace msrp::digest
