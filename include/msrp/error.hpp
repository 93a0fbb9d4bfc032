// msrp/error.hpp: the error codes of the MSRP core and the status code each one earns.
//
// Every failure the core can report is a value of `msrp::errc`, carried in a
// `std::error_code` of `msrp::error_category()`. Errors caused by a peer know the MSRP
// status code (RFC 4975 §10) that the peer should be answered with: `to_status()`.
// Functions that produce a value return `msrp::result<T>` (see result.hpp).
#pragma once

#include <string>
#include <system_error>

namespace msrp {

/// Errors of the MSRP core. Zero is never used, so a default `std::error_code` means success.
enum class errc {
  // --- Framing (RFC 4975 §9): the peer's bytes cannot be a message. Answer 400 if possible.
  bad_start_line = 1,      ///< The first line is not `MSRP SP transact-id SP (method | status)`.
  bad_transaction_id,      ///< The transaction id is not an `ident` (4 to 32 characters, §9).
  bad_method,              ///< The method is not 1*UPALPHA.
  bad_status_code,         ///< The status code is not three digits, or the comment has bad bytes.
  bad_line_ending,         ///< A line ends in a bare LF or contains a bare CR.
  bad_header,              ///< A header line is not `hname ":" SP hval`, or has a control byte.
  bad_end_line,            ///< A message without body does not end in its own end-line.
  header_block_too_large,  ///< The start line and headers exceed the parser's limit.
  too_many_headers,        ///< More header fields than the parser's limit.
  missing_to_path,         ///< A request has no To-Path header field (§7.1).
  missing_from_path,       ///< A request has no From-Path header field (§7.1).
  duplicate_header,        ///< A header that may occur once (To-Path, Byte-Range ...) occurs twice.
  body_without_content_type,  ///< A body follows the headers but there is no Content-Type (§7.1).
  response_with_body,         ///< A response carries a body, which §7.2 forbids.
  body_too_large,             ///< A body exceeds the configured limit; answer 413.
  // --- Header values: answer 400.
  bad_uri,         ///< An MSRP URI does not follow RFC 4975 §6 and §9.
  bad_byte_range,  ///< Byte-Range is not `start-end/total` with 1 <= start, end+1 >= start, end <=
                   ///< total.
  bad_report_value,   ///< Success-Report is not yes/no, or Failure-Report not yes/no/partial.
  bad_status_header,  ///< Status is not `namespace SP status-code [SP comment]`.
  bad_number,         ///< Expires, Min-Expires or Max-Expires is not a decimal number.
  // --- Session descriptions (RFC 4975 §8, RFC 8866; see sdp.hpp). These concern SDP carried
  // by SIP, not an MSRP peer's request: SIP answers a bad offer with 488, which is not ours.
  bad_sdp,                   ///< A malformed SDP line, attribute or line order (RFC 8866 §9).
  sdp_missing_msrp_media,    ///< No `m=message` section with proto TCP/MSRP or TCP/TLS/MSRP.
  sdp_missing_path,          ///< The MSRP media section has no `a=path` (RFC 4975 §8.2).
  sdp_missing_accept_types,  ///< The MSRP media section has no `a=accept-types` (§8.6).
  sdp_no_common_type,        ///< Offer and answerer share no accept-type (§8.6).
  sdp_tls_mismatch,          ///< We would answer TCP/MSRP to TCP/TLS/MSRP, or the reverse.
  // --- HTTP Digest headers (RFC 4976 §7, §9.1; RFC 7616; see digest.hpp): WWW-Authenticate,
  // Authorization and Authentication-Info. A relay answers a bad Authorization with 400
  // (RFC 7616 §3.4: "the proper response is a 4xx error code").
  bad_digest_syntax,             ///< Not `Digest` and `token "=" (token / quoted-string)` pairs.
  duplicate_digest_parameter,    ///< A parameter name occurs twice in one header value.
  missing_digest_parameter,      ///< A required parameter (realm, nonce, qop ...) is absent.
  bad_digest_parameter,          ///< A bad value: nc not 8LHEX, response of the wrong length ...
  unsupported_digest_algorithm,  ///< The algorithm is neither MD5 nor SHA-256 (MD5-sess too).
};

/// The error category of `msrp::errc`; its name is "msrp".
const std::error_category& error_category() noexcept;

/// Makes a `std::error_code` from an `errc`, so `errc` values compare with error codes.
inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), error_category()};
}

/// The MSRP status code (RFC 4975 §10) to answer a peer whose request failed with `e`:
/// 413 for `body_too_large`, 400 for every other `msrp::errc`. An error code of another
/// category, or none, gives 400 too.
int to_status(std::error_code e) noexcept;

}  // namespace msrp

template <>
struct std::is_error_code_enum<msrp::errc> : std::true_type {};
