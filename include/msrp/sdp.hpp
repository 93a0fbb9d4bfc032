// msrp/sdp.hpp: the session description that sets up an MSRP session (RFC 4975 §8, RFC 6135,
// RFC 8122 §5, RFC 8866).
//
// MSRP sessions are negotiated with SDP offers and answers, usually carried by SIP. Each side
// describes one `m=message` media section: where it can be reached (`a=path`), what it accepts
// (`a=accept-types`, `a=accept-wrapped-types`, `a=max-size`), who opens the TCP connection
// (`a=setup`, RFC 6135) and, with TLS, which certificate it will present (`a=fingerprint`,
// RFC 8122). An MSRP offer looks like this (RFC 4975 §8.7):
//
//     v=0
//     o=usera 2890844526 2890844527 IN IP4 alice.example.com
//     s= -
//     c=IN IP4 alice.example.com
//     t=0 0
//     m=message 7394 TCP/MSRP *
//     a=accept-types:message/cpim text/plain text/html
//     a=path:msrp://alice.example.com:7394/2s93i93idj;tcp
//
// This header turns such text into a `session_description` and back (`parse_sdp`,
// `format_sdp`), computes an answer from an offer and our own settings (`make_answer`), and
// answers the two questions the rest of the stack asks of a negotiated session: which side
// connects (`is_active`) and whether the peer takes a content type (`accepts_type`).
//
// Only what MSRP needs is modelled. The first MSRP media section is kept in full; other media
// sections (audio, video, a second MSRP stream) are checked for syntax and skipped. Of the
// session-level lines only the origin, the session name and the attributes are kept; `i=`,
// `u=`, `e=`, `p=`, `b=`, `t=`, `r=`, `z=` and `k=` are checked and dropped, and `format_sdp`
// writes `t=0 0` (RFC 8866 §5.9: an unbounded session). Attributes this header does not
// interpret (`a=sendonly`, RFC 5547 `a=file-selector`, RFC 6714 `a=msrp-cema` ...) are kept as
// written and in order, so nothing an extension needs is lost.
//
// Everything here is pure computation on values: no I/O, no clock, no randomness. Session ids,
// ports and addresses come from the caller.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "msrp/result.hpp"
#include "msrp/uri.hpp"

namespace msrp {

/// The `a=setup` attribute (RFC 4145 §4, as RFC 6135 §4.2 uses it for MSRP): which side
/// opens the TCP connection.
///
///     setup-attr = "a=setup:" role
///     role       = "active" / "passive" / "actpass" / "holdconn"
enum class setup_role {
  active,    ///< This side will open the connection.
  passive,   ///< This side will accept the connection.
  actpass,   ///< This side can do either; an offer lets the answerer choose.
  holdconn,  ///< Not yet; RFC 6135 §4.2.1 says MSRP must treat it as if `a=setup` were absent.
};

/// The `a=connection` attribute (RFC 4145 §5). RFC 6135 §4.4 forbids MSRP endpoints to send
/// it and tells them to ignore it on receipt; it is parsed only so that nothing is lost.
///
///     connection-attr = "a=connection:" conn-value
///     conn-value      = "new" / "existing"
enum class connection_mode {
  new_connection,       ///< `new`
  existing_connection,  ///< `existing`
};

/// One `a=fingerprint` attribute (RFC 8122 §5): a hash of the certificate that the side will
/// present in the TLS handshake, so that a self-signed certificate can be checked.
///
///     fingerprint-attribute = "fingerprint" ":" hash-func SP fingerprint
///     hash-func             = "sha-1" / "sha-224" / "sha-256" / "sha-384" / "sha-512" /
///                             "md5" / "md2" / token
///     fingerprint           = 2UHEX *(":" 2UHEX)
///
/// A media section may carry several (RFC 8122 §5.1: one per hash function and certificate).
struct fingerprint {
  /// The hash function as written, such as `sha-256` (RFC 8122's own example writes
  /// `SHA-256`, so compare it case-insensitively).
  std::string hash_function;
  /// The hash value, one element per byte.
  std::vector<std::uint8_t> digest;

  /// Parses an attribute value, the text after `a=fingerprint:`, such as
  /// `sha-256 AB:CD:...`. Hex digits may be uppercase or lowercase (RFC 8122 asks senders for
  /// uppercase). Fails with `errc::bad_sdp` unless the value is a token, one space and hex
  /// pairs separated by ':', or if a hash function named above has the wrong digest length
  /// (20 octets for sha-1, 32 for sha-256 ...).
  static result<fingerprint> parse(std::string_view value);

  /// The digest as SDP writes it: uppercase hex pairs separated by ':', such as `AB:CD:01`.
  /// The attribute value is `hash_function + ' ' + to_string()`.
  std::string to_string() const;

  friend bool operator==(const fingerprint&, const fingerprint&) = default;
};

/// One MSRP media section: the `m=message` line, its connection address and its attributes
/// (RFC 4975 §8.1-8.6).
///
///     m=message <port> TCP/MSRP *        (or TCP/TLS/MSRP for TLS)
///     c=IN IP4 <address>                 (or IP6; from the media section or the session)
///     a=accept-types:<format-list>
///     a=accept-wrapped-types:<format-list>
///     a=max-size:<octets>
///     a=path:<MSRP-URI> *(SP <MSRP-URI>)
///     a=setup:<role>
///     a=connection:<new|existing>
///     a=fingerprint:<hash-func> <hex:hex:...>
///     a=<anything else>
///
/// Two descriptions compare equal when every field does; path URIs compare by RFC 4975 §6.1.
struct media_description {
  /// True for `TCP/TLS/MSRP`, false for `TCP/MSRP` (§8.1).
  bool tls = false;
  /// The port of the `m=` line. Zero means the stream is rejected (RFC 3264 §6, §8.1). MSRP
  /// does not connect to it (§8.1): the first URI of `path` says where to connect.
  std::uint16_t port = 0;
  /// The connection address of the `c=` line: an IP address or a host name (§8.1).
  std::string address;
  /// True for `c=IN IP6`, false for `c=IN IP4`.
  bool ipv6 = false;
  /// `a=path` (§8.2): the URIs to visit to reach this side, the adjacent hop first and the
  /// endpoint's own session URI last. Every URI has an explicit port. Empty only when `port`
  /// is zero.
  std::vector<uri> path;
  /// `a=accept-types` (§8.6): the media types this side accepts as the top-level type of a
  /// message, in order of preference. Entries are `type/subtype`, `type/*` or `*`, possibly
  /// with `;name=value` parameters. Empty only when `port` is zero.
  std::vector<std::string> accept_types;
  /// `a=accept-wrapped-types` (§8.6): further types this side accepts only inside a container
  /// type listed in `accept_types`. Same form.
  std::vector<std::string> accept_wrapped_types;
  /// `a=max-size` (§8.6): the largest complete message, in octets, this side wishes to
  /// receive. A hint, not a limit the peer must obey.
  std::optional<std::uint64_t> max_size;
  /// `a=setup` (RFC 6135 §4.2), from the media section or else the session level.
  std::optional<setup_role> setup;
  /// `a=connection` (RFC 4145 §5), from the media section or else the session level.
  std::optional<connection_mode> connection;
  /// `a=fingerprint` (RFC 8122 §5), in order; those of the session level when the media
  /// section has none (§5: session-level fingerprints apply to every stream without its own).
  std::vector<fingerprint> fingerprints;
  /// Every other attribute of the media section, in order, as written after `a=`: for example
  /// `sendonly` or `file-transfer-id:vBnG916bdberum2fFEABR1FR3ExZMUrd`.
  std::vector<std::string> attributes;

  friend bool operator==(const media_description&, const media_description&) = default;
};

/// The `o=` line (RFC 8866 §5.2): who made the description and which version it is.
///
///     o=<username> <sess-id> <sess-version> IN <IP4|IP6> <unicast-address>
struct origin {
  /// The originator's login, or `-`. Must not contain spaces.
  std::string username = "-";
  /// Identifies the session together with the username and address.
  std::uint64_t session_id = 0;
  /// Increased each time the description changes (RFC 4975 §8.4: an unchanged re-offer
  /// repeats the previous `o=` line).
  std::uint64_t session_version = 0;
  /// The address of the originating host: an IP address or a host name.
  std::string address;
  /// True for `IN IP6`, false for `IN IP4`.
  bool ipv6 = false;

  friend bool operator==(const origin&, const origin&) = default;
};

/// A whole session description as MSRP sees it: the origin, the session name, the
/// session-level attributes and the first MSRP media section.
struct session_description {
  /// The `o=` line.
  msrp::origin origin;
  /// The `s=` line, as written (RFC 4975 §8.7 writes `s= -`, so this is " -" there).
  std::string session_name = "-";
  /// Session-level attributes other than `setup`, `connection` and `fingerprint` (which are
  /// folded into `media`), in order, as written after `a=`.
  std::vector<std::string> attributes;
  /// The first `m=message` section whose proto is `TCP/MSRP` or `TCP/TLS/MSRP`.
  media_description media;

  friend bool operator==(const session_description&, const session_description&) = default;
};

/// Parses an SDP offer or answer (RFC 8866 §5, §9) and extracts its first MSRP media section.
///
/// Lines may end in CRLF or in a bare LF (RFC 8866 §5 asks parsers to tolerate both); the last
/// line may lack its line ending, and blank lines at the very end are ignored. Each line must
/// be `<letter>=<value>` with a letter SDP defines, in the order RFC 8866 §9 gives: v, o, s,
/// then i u e p c b, one or more t (with r and z), k, a, then the media sections, each m
/// followed by i c b k a. The session name may be empty (RFC 5547's examples write `s=`).
///
/// The MSRP media section is the first whose `m=` line reads `message <port> TCP/MSRP ...` or
/// `message <port> TCP/TLS/MSRP ...` (compared case-insensitively; the format list is not
/// checked, although §8.1 asks for `*`). Its `c=` line, or else the session's, must be
/// `IN IP4` or `IN IP6`. Attributes defined for MSRP are checked against their ABNF (see
/// `media_description`); `setup`, `connection` and `fingerprint` are taken from the session
/// level when the media section lacks them. Other attributes are kept as written.
///
/// Errors:
/// - `errc::bad_sdp`: a line that is not `<letter>=<value>`, an unknown letter, a NUL or stray
///   CR, lines out of order or a required line missing, `v=` other than 0, a malformed `o=`,
///   `c=`, `t=` or `m=` line, a port above 65535, no `c=` for the MSRP media, a malformed or
///   repeated `accept-types`, `accept-wrapped-types`, `max-size`, `setup` or `connection`
///   attribute, a repeated `path`, or a fingerprint that is not uppercase or lowercase hex
///   pairs separated by ':' (or has the wrong length for a known hash function).
/// - `errc::bad_uri`: an `a=path` URI that is malformed or lacks its port (§8.2).
/// - `errc::sdp_missing_msrp_media`: no MSRP media section.
/// - `errc::sdp_missing_path`: the MSRP media section has a non-zero port but no `a=path`.
/// - `errc::sdp_missing_accept_types`: likewise without `a=accept-types`.
result<session_description> parse_sdp(std::string_view text);

/// Writes a session description as SDP text with CRLF line endings, in RFC 8866 order:
///
///     v=0
///     o=<username> <session_id> <session_version> IN IP4|IP6 <origin address>
///     s=<session_name>
///     c=IN IP4|IP6 <media address>
///     t=0 0
///     a=<session attributes ...>
///     m=message <port> TCP/MSRP|TCP/TLS/MSRP *
///     a=accept-types, accept-wrapped-types, max-size, path, setup, connection, fingerprint...
///     a=<media attributes ...>
///
/// Empty lists and absent values write no line. `parse_sdp` of the result gives back an equal
/// `session_description`. The description is assumed valid (it is ours): fields are written
/// as they are, without checks.
std::string format_sdp(const session_description& sdp);

/// Computes our answer to an MSRP offer (RFC 4975 §8.6, RFC 6135 §4.2, RFC 3264).
///
/// `local` holds what we are: our path, port, address, the types we accept in order of
/// preference, accepted wrapped types, max-size, fingerprints, extra attributes, and, as a
/// preference only, our setup role. The answer takes all of these from `local`, except:
///
/// - `accept_types` are the types both sides list. Entries match when equal, or when one is
///   `*` or `type/*` and covers the other; parameters are ignored (§8.6). For each match the
///   narrower entry is kept (our own when neither is narrower), in our order of preference,
///   without repeats: if the offer says `*` we answer with our own list; if we say `*` we
///   answer with the offer's entries.
/// - `accept_wrapped_types` are ours narrowed the same way against every type the offer lists
///   (its accept-types and accept-wrapped-types together).
/// - `setup` (RFC 6135 §4.2; an MSRP UA always sends one): offer `active` gives `passive`;
///   offer `passive` gives `active`; offer `actpass` gives `local.setup` if it is `active` or
///   `passive` and `active` otherwise (the offerer promised a reachable address, so
///   connecting out is the choice that also works behind a NAT; RFC 6135 prefers `passive`
///   when we know we are not behind one); no offered `a=setup`, or `holdconn`, gives
///   `passive` (the offerer connects, RFC 4975 §5.4).
/// - `connection` is left empty (RFC 6135 §4.4 forbids sending `a=connection`).
/// - `tls` is the offer's.
///
/// `local.path` and `local.accept_types` must not be empty. To reject an offer, answer with
/// port 0 instead of calling this function.
///
/// Errors:
/// - `errc::sdp_tls_mismatch`: `local.tls` differs from `offer.tls`.
/// - `errc::sdp_no_common_type`: no accept-type is common to both sides (SIP would then
///   answer 488, §8.6).
result<media_description> make_answer(const media_description& offer,
                                      const media_description& local);

/// Tells whether our side opens the connection and sends the first SEND (RFC 4975 §5.4,
/// RFC 6135 §4.2), once offer and answer are known. The active side is also the TLS client
/// (RFC 6135 §6).
///
/// The answerer connects only when it answered `a=setup:active` to an offer of `actpass` or
/// `passive`. In every other case the offerer connects: when the offer has no `a=setup` or
/// says `holdconn` (the RFC 4975 model, which RFC 6135 §5 keeps for such peers), when the
/// answer says `passive` or nothing, and for combinations RFC 4145 does not allow.
///
/// An endpoint behind an MSRP relay always connects to its relay (RFC 6135 §4.5); this
/// function then tells whether it sends the first SEND.
bool is_active(const media_description& local, const media_description& remote,
               bool local_is_offerer);

/// Tells whether `content_type` (a Content-Type value such as `text/plain; charset=UTF-8`) is
/// one of `accept_types` (RFC 4975 §8.6). An entry `*` takes any type, `type/*` takes any
/// subtype of its type, and `type/subtype` takes exactly that type; types compare
/// case-insensitively and parameters on either side are ignored.
///
/// An endpoint MUST NOT send a top-level type its peer did not list in accept-types, nor a
/// wrapped type listed in neither accept-types nor accept-wrapped-types (§8.6).
bool accepts_type(const std::vector<std::string>& accept_types, std::string_view content_type);

}  // namespace msrp
