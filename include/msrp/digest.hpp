// msrp/digest.hpp: HTTP Digest authentication as MSRP relays use it (RFC 4976 §5.1, §6.3, §7,
// §9.1; RFC 7616 for SHA-256 and the algorithm rules; RFC 2617 for MD5 and qop=auth).
//
// A client that wants a relay to act on its behalf sends AUTH; the relay answers 401 with a
// challenge, the client retries with credentials, and the relay answers 200 with a Use-Path
// and proof that it knows the password too (RFC 4976 §5.1):
//
//     client                                               relay
//       AUTH (no Authorization)                       ->
//                                                     <-   401, WWW-Authenticate: `challenge`
//       AUTH, Authorization: `credentials`            ->   (made by `answer()`)
//                                                          `verify()`
//                                                     <-   200, Authentication-Info:
//                                                          `authentication_info` (`rspauth()`)
//
// This header holds the three header values (`challenge`, `credentials`,
// `authentication_info`), each with `parse()` and `to_header_value()`, and the digest
// arithmetic (`ha1()`, `response()`, `rspauth()`, `answer()`, `verify()`).
//
// The arithmetic (RFC 7616 §3.4.1-§3.4.3, §3.5, with qop=auth and no "-sess" variant):
//
//     H(data)          = <algorithm>(data), as lowercase hex (RFC 7616 §3.2)
//     KD(secret, data) = H(secret ":" data)
//     HA1              = H(username ":" realm ":" password)
//     response         = KD(HA1, nonce ":" nc ":" cnonce ":" qop ":" H(method ":" uri))
//     rspauth          = KD(HA1, nonce ":" nc ":" cnonce ":" qop ":" H(":" uri))
//
// In MSRP the method is always AUTH, the only request RFC 4976 authenticates (§9.1: "AUTH
// requests MUST be authenticated"), and `uri` is "the rightmost URI in the To-Path header"
// (§9.1), which is the URI of the relay being authenticated, written exactly as it appears in
// the To-Path of the AUTH request. When Alice authenticates to her outer relay through her
// inner one (§5.1), the To-Path is `msrps://intra.example.com:9000/jui787s2f;tcp
// msrps://extra.example.com;tcp` and the uri is `msrps://extra.example.com;tcp`.
//
// The core has no cryptography, so the hash function is injected as a `hasher` (see below);
// the application supplies one built on OpenSSL or any other library. Everything else is pure
// computation on values: no I/O, no clock, no randomness. Client nonces come from the caller.
//
// What this header leaves to the relay (RFC 7616 §5.4-§5.5, §5.12; RFC 4976 §6.3, §9.1):
//
// - Nonces. Make each nonce from a strong random source (at least 64 bits; base64 or hex, so it
//   needs no escaping), remember when it was issued and to which connection, and accept it
//   only for a limited time. RFC 4976 §9.1 notes AUTH cannot be pipelined, so a relay can make
//   nonces single-use at no cost: accept each nonce once (remember the nonce and nc it saw and
//   refuse a repeat as a replay) and send a fresh one as `authentication_info::nextnonce`.
// - Stale nonces. When the credentials are right but the nonce is unknown, expired or used,
//   answer 401 with a new challenge and `stale = true`, so the client retries without asking
//   its user for the password again (RFC 7616 §3.3).
// - The fields `verify()` does not check: that `realm` is the relay's realm, that `nonce` is one
//   it issued (and `opaque` the one it sent with it), that `algorithm` is the one it offered,
//   and that `uri` names this relay, the rightmost To-Path URI, answering 400 if not (RFC 7616
//   §3.4.6). RFC 4976's own examples and ABNF carry no `uri` parameter at all; `parse()`
//   then leaves `credentials::uri` empty and the relay must set it to the rightmost To-Path
//   URI before calling `verify()`.
// - Passwords. Store HA1 rather than the password (RFC 7616 §5.2): `verify()` takes HA1, so the
//   relay never needs the password itself. HA1 depends on the algorithm, so a relay offering
//   both SHA-256 and MD5 stores one HA1 for each.
// - Failures. After several failed AUTH requests from a directly connected client, close the
//   connection (RFC 4976 §6.3); a 401 with `stale = true` is not a failure. Log a failed
//   verification without the password (RFC 7616 §3.4).
// - Offering algorithms. One challenge per WWW-Authenticate header, most preferred first and
//   each with a different algorithm (RFC 7616 §3.7): SHA-256, then MD5 for RFC 4976 clients
//   that know only RFC 2617. Never MD5-sess (RFC 4976 §9.1), never qop=auth-int (§9.1), never
//   Basic (§9.1).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "msrp/result.hpp"

namespace msrp::digest {

/// Hashes bytes with the named algorithm, returning the digest as lowercase hex (RFC 7616
/// §3.2: 32 characters for MD5, 64 for SHA-256).
///
/// The core calls it only with the algorithm names `"MD5"` and `"SHA-256"`, spelled exactly
/// so. Digests are compared as text, so a hasher that returned uppercase hex would make every
/// response look wrong to a peer.
using hasher = std::function<std::string(std::string_view algorithm, std::string_view data)>;

/// The algorithms this header supports, spelled as RFC 7616 §6.1 registers them. `parse()`
/// writes these spellings whatever the case of the received token.
inline constexpr std::string_view md5 = "MD5";
inline constexpr std::string_view sha256 = "SHA-256";

/// A challenge: the value of a WWW-Authenticate header in a 401 answer to AUTH (RFC 4976 §7,
/// RFC 7616 §3.3). One challenge per header value.
///
///     WWW-Authenticate = "WWW-Authenticate:" SP "Digest" SP digest-param
///                        *("," SP digest-param)
///     digest-param     = ( realm / nonce / [ opaque ] / [ stale ] / [ algorithm ] /
///                        qop-options / [auth-param] )
///     realm            = "realm=" realm-value
///     realm-value      = quoted-string
///     nonce            = "nonce=" nonce-value
///     nonce-value      = quoted-string
///     opaque           = "opaque=" quoted-string
///     stale            = "stale=" ( "true" / "false" )
///     algorithm        = "algorithm=" ( "MD5" / token )
///     qop-options      = "qop=" DQUOTE qop-list DQUOTE
///     qop-list         = qop-value *( "," qop-value )
///     qop-value        = "auth" / token
///     auth-param       = token "=" ( token / quoted-string )
///
/// For example (RFC 4976 §5.1):
///
///     Digest realm="intra.example.com", qop="auth", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093"
struct challenge {
  /// The protection space; RFC 4976 §5.1 suggests the relay's host name.
  std::string realm;
  /// The server nonce, unquoted. Opaque to the client.
  std::string nonce;
  /// Data the client returns unchanged in its credentials; empty when absent.
  std::string opaque;
  /// `md5` or `sha256`. Built challenges default to SHA-256, which RFC 7616 §3.7 makes
  /// mandatory to implement; a received challenge without `algorithm` means MD5 (§3.3).
  std::string algorithm{sha256};
  /// True when the previous credentials were rejected only because their nonce was stale, so
  /// the client may retry without asking for the password again (RFC 7616 §3.3).
  bool stale = false;
  /// The qop-list, unquoted, such as `auth` or `auth, auth-int`. It must offer `auth`, the
  /// only one MSRP uses (RFC 4976 §9.1 forbids relays to offer auth-int).
  std::string qop = "auth";
  /// Other parameters (`domain`, `charset`, `userhash`, extensions), in order, names as
  /// written and values unquoted. Kept so nothing is lost; this header acts on none of them
  /// (RFC 4976 §9.1: clients "MUST ignore" domain).
  std::vector<std::pair<std::string, std::string>> other;

  /// The header value: `Digest realm="...", nonce="...", opaque="...", stale=true,
  /// algorithm=SHA-256, qop="auth"`, then `other` as `name="value"`. Quoted strings as RFC
  /// 7616 §3.3 asks (realm, nonce, opaque, qop), the rest as tokens; `opaque` only when
  /// non-empty, `stale` only when true.
  ///
  /// Precondition (asserted): no value contains a control byte other than HTAB, since a
  /// quoted-string cannot carry one, and `algorithm` and the names in `other` are tokens.
  std::string to_header_value() const;

  /// Parses a WWW-Authenticate value.
  ///
  /// Accepts more than the ABNF above, as HTTP recipients do: the scheme name and parameter
  /// names in any case, whitespace around `=` and `,` (or none after `,`), parameters in any
  /// order, and a token where a quoted-string is due or the reverse (RFC 7235 §2.1). A
  /// quoted-string may hold any quoted-pair (`\` and a printable byte), not only RFC 4975's
  /// `\\` and `\"`. The algorithm token is case-insensitive (`sha-256` reads as `SHA-256`);
  /// `stale` is true for `true` in any case and false for anything else (RFC 7616 §3.3).
  ///
  /// Fails with:
  /// - `errc::bad_digest_syntax`: the scheme is not Digest (Basic included, RFC 4976 §9.1),
  ///   a parameter is not `token "=" (token / quoted-string)`, a quoted-string is unterminated
  ///   or holds a control byte, a separator is not a comma (or an element is empty), or there
  ///   are more than 64 parameters;
  /// - `errc::duplicate_digest_parameter`: a parameter name occurs twice (in any case);
  /// - `errc::missing_digest_parameter`: realm, nonce or qop is absent (RFC 4976 §9.1 makes
  ///   qop mandatory);
  /// - `errc::bad_digest_parameter`: the qop-list is not a comma-separated token list or does
  ///   not offer `auth`;
  /// - `errc::unsupported_digest_algorithm`: the algorithm is neither MD5 nor SHA-256, such as
  ///   MD5-sess or SHA-512-256 (RFC 7616 §3.3: the client should then use another challenge).
  static result<challenge> parse(std::string_view value);

  friend bool operator==(const challenge&, const challenge&) = default;
};

/// Credentials: the value of the Authorization header of an AUTH request (RFC 4976 §7,
/// RFC 7616 §3.4).
///
///     Authorization   = "Authorization:" SP credentials
///     credentials     = "Digest" SP digest-response *( "," SP digest-response)
///     digest-response = ( username / realm / nonce / response / [ algorithm ] / cnonce /
///                       [opaque] / message-qop / [nonce-count] / [auth-param] )
///     username        = "username=" username-value
///     username-value  = quoted-string
///     message-qop     = "qop=" qop-value
///     cnonce          = "cnonce=" cnonce-value
///     cnonce-value    = nonce-value
///     nonce-count     = "nc=" nc-value
///     nc-value        = 8LHEX
///     response        = "response=" request-digest
///     request-digest  = DQUOTE 32LHEX DQUOTE
///     LHEX            = DIGIT / %x61-66 ;lowercase a-f
///
/// plus RFC 7616's `uri = "uri=" DQUOTE digest-uri DQUOTE`, which RFC 4976 §9.1 expects ("the
/// value of the uri parameter MUST be in quotes") though its ABNF leaves it out. The
/// request-digest is 32 LHEX for MD5 and 64 for SHA-256 (RFC 7616 §3.2). For example (RFC
/// 4976 §5.1):
///
///     Digest username="Alice", realm="intra.example.com",
///       nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", qop=auth, nc=00000001,
///       cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1"
///
/// (on one line on the wire).
struct credentials {
  std::string username;
  std::string realm;
  /// The server nonce the credentials answer, unquoted.
  std::string nonce;
  /// The digest-uri: the rightmost To-Path URI of the AUTH. Empty when a parsed header had no
  /// `uri`; see the top of this file for what the relay must then do.
  std::string uri;
  /// The request-digest, lowercase hex.
  std::string response;
  /// `md5` or `sha256`; a parsed header without `algorithm` means MD5 (RFC 7616 §3.3).
  std::string algorithm{sha256};
  /// The client nonce, unquoted.
  std::string cnonce;
  /// The challenge's opaque, returned unchanged; empty when absent.
  std::string opaque;
  /// Always `auth` (RFC 4976 §9.1).
  std::string qop = "auth";
  /// The nonce count, 8 lowercase hex digits such as `00000001`.
  std::string nc = "00000001";

  /// The header value: `Digest username="...", realm="...", nonce="...", uri="...",
  /// algorithm=..., qop=auth, nc=..., cnonce="...", response="...", opaque="..."`. Quoted
  /// strings and tokens as RFC 7616 §3.4 asks; `uri` and `opaque` only when non-empty.
  ///
  /// Precondition (asserted): no value contains a control byte other than HTAB, and
  /// `algorithm`, `qop` and `nc` are tokens.
  std::string to_header_value() const;

  /// Parses an Authorization value, with the same tolerance as `challenge::parse()`.
  /// Parameters this header does not know are ignored.
  ///
  /// Fails with:
  /// - `errc::bad_digest_syntax`, `errc::duplicate_digest_parameter`: as `challenge::parse()`;
  /// - `errc::missing_digest_parameter`: username, realm, nonce, response, cnonce, qop or nc
  ///   is absent (RFC 4976 §9.1 makes cnonce, nc and qop mandatory; `uri` is optional, as
  ///   above);
  /// - `errc::bad_digest_parameter`: nc is not 8LHEX, response is not 32 LHEX for MD5 or 64
  ///   LHEX for SHA-256 (uppercase hex is refused), qop is not `auth`, or `username*` is present
  ///   (RFC 7616's extended username is not supported);
  /// - `errc::unsupported_digest_algorithm`: the algorithm is neither MD5 nor SHA-256.
  static result<credentials> parse(std::string_view value);

  friend bool operator==(const credentials&, const credentials&) = default;
};

/// The value of the Authentication-Info header of a 200 answer to AUTH (RFC 4976 §7, RFC 7616
/// §3.5). No scheme name precedes the parameters.
///
///     Authentication-Info = "Authentication-Info:" SP ainfo *("," ainfo)
///     ainfo               = nextnonce / message-qop / response-auth / cnonce / nonce-count
///     nextnonce           = "nextnonce=" nonce-value
///     response-auth       = "rspauth=" response-digest
///     response-digest     = DQUOTE *LHEX DQUOTE
///
/// RFC 4976 §9.1: relays "MUST include rspauth, cnonce, nc, and qop parameters" in every 200 to
/// AUTH. For example (RFC 4976 §5.1, on one line on the wire):
///
///     nextnonce="40f2e879449675f288476d772627370a", rspauth="7327570c586207eca2afae94fc20903d",
///       cnonce="0a4f113b", nc=00000001, qop=auth
///
/// A client checks the relay with `info.rspauth == rspauth(hash, sent, ha1)` and that `cnonce`
/// and `nc` are the ones it sent, and uses `nextnonce`, when present, for its next AUTH.
struct authentication_info {
  /// The nonce to use next; empty when absent.
  std::string nextnonce;
  /// Always `auth`.
  std::string qop = "auth";
  /// The response digest (`rspauth()`), lowercase hex.
  std::string rspauth;
  /// The client nonce and nonce count of the request this answers.
  std::string cnonce;
  std::string nc = "00000001";

  /// The header value: `nextnonce="...",qop=auth,rspauth="...",cnonce="...",nc=...`, with
  /// `nextnonce` only when non-empty. The parameters are separated by a bare comma, as the
  /// ABNF above writes it (unlike the other two headers, which put a space after it).
  ///
  /// Precondition (asserted): no value contains a control byte other than HTAB, and `qop` and
  /// `nc` are tokens.
  std::string to_header_value() const;

  /// Parses an Authentication-Info value, with the same tolerance as `challenge::parse()`.
  /// Parameters this header does not know are ignored.
  ///
  /// Fails with:
  /// - `errc::bad_digest_syntax`, `errc::duplicate_digest_parameter`: as `challenge::parse()`
  ///   (a leading `Digest` is a syntax error here);
  /// - `errc::missing_digest_parameter`: rspauth, cnonce, nc or qop is absent;
  /// - `errc::bad_digest_parameter`: nc is not 8LHEX, rspauth is not 32 or 64 LHEX (the header
  ///   does not say which algorithm made it), or qop is not `auth`.
  static result<authentication_info> parse(std::string_view value);

  friend bool operator==(const authentication_info&, const authentication_info&) = default;
};

/// HA1 = H(username ":" realm ":" password) (RFC 7616 §3.4.2, the non-session variant).
///
/// A relay may store this instead of the password (RFC 7616 §5.2). `algorithm` must be `md5`
/// or `sha256` (asserted).
std::string ha1(const hasher& hash, std::string_view algorithm, std::string_view username,
                std::string_view realm, std::string_view password);

/// The request-digest for `c` (RFC 7616 §3.4.1, qop=auth):
///
///     KD(HA1, nonce ":" nc ":" cnonce ":" qop ":" H(method ":" uri))
///
/// with H and KD of `c.algorithm` (`md5` or `sha256`, asserted) and every field of `c` except
/// `response`, `username`, `realm` and `opaque` (the first two enter through `ha1`). For MSRP
/// `method` is `"AUTH"` and `c.uri` the rightmost To-Path URI of the request (RFC 4976 §9.1).
std::string response(const hasher& hash, const credentials& c, std::string_view ha1,
                     std::string_view method);

/// The response-digest the relay returns in `authentication_info::rspauth` (RFC 7616 §3.5):
/// as `response()` but with an empty method, so A2 = ":" uri.
std::string rspauth(const hasher& hash, const credentials& c, std::string_view ha1);

/// Answers a challenge for the client side of RFC 4976 §5.1: credentials for an AUTH request
/// whose rightmost To-Path URI is `uri`, with `response` computed for method AUTH.
///
/// Copies realm, nonce, opaque and algorithm from the challenge, sets qop to `auth` and nc
/// to `nc` as 8 lowercase hex digits. `cnonce` is the client nonce, which the caller draws
/// from a strong random source (RFC 7616 §5.12), fresh for each request.
/// `nc` counts the requests sent with this nonce, this one included: 1 for the first
/// (asserted to be at least 1). The challenge must offer `auth` and name a supported
/// algorithm, as every challenge `challenge::parse()` returns does (asserted).
credentials answer(const hasher& hash, const challenge& ch, std::string_view username,
                   std::string_view password, std::string_view uri, std::string_view cnonce,
                   std::uint32_t nc);

/// True if `c.response` is the request-digest `response(hash, c, ha1, method)`.
///
/// Compares in time that depends only on the lengths, not on where the digests differ, so a
/// peer cannot learn the expected digest a byte at a time. Checks nothing else: see the top of
/// this file for the relay's other checks (realm, nonce, opaque, algorithm, uri).
bool verify(const hasher& hash, const credentials& c, std::string_view ha1,
            std::string_view method);

}  // namespace msrp::digest
