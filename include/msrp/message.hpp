// msrp/message.hpp: the head of an MSRP request or response (RFC 4975 §7, §9; RFC 4976 §7).
//
// A `message` is a start line and its header fields. It owns its strings. The body is not
// part of it: the parser streams bodies in pieces and the serializer writes them from a view,
// so a message of any size never has to sit in memory.
//
// Header fields are kept in the order they arrived, every one of them, MIME headers and
// unknown extension headers included. Typed accessors exist only for the headers MSRP acts
// on; each parses the raw value on demand and reports a malformed value as an error.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "msrp/result.hpp"
#include "msrp/uri.hpp"

namespace msrp {

/// The continuation flag that ends every end-line (RFC 4975 §7.1).
enum class end_flag : char {
  complete = '$',   ///< This chunk ends the message.
  continued = '+',  ///< More chunks of the message follow.
  aborted = '#',    ///< The sender abandons the message; no more chunks follow.
};

/// One header field as it appeared: name and value, the value without the leading space.
struct header_field {
  std::string name;
  std::string value;
  friend bool operator==(const header_field&, const header_field&) = default;
};

/// A Byte-Range value (RFC 4975 §7.1.1, §9):
///   Byte-Range = "Byte-Range:" SP range-start "-" range-end "/" total
///   range-start = 1*DIGIT ; range-end = 1*DIGIT / "*" ; total = 1*DIGIT / "*"
/// Positions count from 1. `1-0/0` names an empty message.
struct byte_range {
  std::uint64_t start = 1;             ///< Position of the chunk's first byte.
  std::optional<std::uint64_t> end;    ///< Position of its last byte; empty for "*".
  std::optional<std::uint64_t> total;  ///< Size of the whole message; empty for "*".

  /// Parses a header value. Fails with `errc::bad_byte_range` unless the three fields are
  /// decimal numbers (or "*" where allowed) that fit 64 bits, start >= 1, end + 1 >= start
  /// and end <= total where both are known.
  static result<byte_range> parse(std::string_view value);
  /// The header value, such as `1-*/8`.
  std::string to_string() const;
  friend bool operator==(const byte_range&, const byte_range&) = default;
};

/// Values of Success-Report and Failure-Report (RFC 4975 §5.3, §7.1.1).
enum class report_mode { no, yes, partial };

/// A Status header (RFC 4975 §7.1.2, §9): `Status: 000 200 OK`.
struct status {
  int ns = 0;    ///< The namespace, "000" for all codes of RFC 4975.
  int code = 0;  ///< The three-digit status code.
  std::string comment;
  friend bool operator==(const status&, const status&) = default;
};

/// The start line and headers of an MSRP request or response.
struct message {
  /// The transaction id of the start line (an `ident`: 4 to 32 characters).
  std::string transaction_id;
  /// The method of a request, such as SEND, REPORT, AUTH or any other 1*UPALPHA;
  /// empty for a response.
  std::string method;
  /// The three-digit status code of a response; 0 for a request.
  int status_code = 0;
  /// The comment after a response's status code, possibly empty.
  std::string comment;
  /// Every header field, in order.
  std::vector<header_field> headers;

  bool is_request() const noexcept { return !method.empty(); }

  /// The value of the first header named `name` (compared case-insensitively), if any.
  std::optional<std::string_view> header(std::string_view name) const;
  /// The values of every header named `name`, in order.
  std::vector<std::string_view> headers_named(std::string_view name) const;
  /// Replaces the value of the first header named `name`, or appends the header.
  void set_header(std::string_view name, std::string_view value);
  /// Removes every header named `name`.
  void remove_header(std::string_view name);

  // Typed accessors (RFC 4975 §9, RFC 4976 §7). Each parses the value on every call.

  /// To-Path: the URIs, leftmost first. `errc::missing_to_path` if absent, `errc::bad_uri` if
  /// any URI is malformed.
  result<std::vector<uri>> to_path() const;
  /// From-Path, as `to_path()`; `errc::missing_from_path` if absent.
  result<std::vector<uri>> from_path() const;
  /// Use-Path (RFC 4976 §7.1) of an AUTH response; empty when absent.
  result<std::vector<uri>> use_path() const;
  /// Message-ID, if present.
  std::optional<std::string_view> message_id() const;
  /// Byte-Range; a request without one covers the whole message: `1-*/*` (§7.1.1).
  result<msrp::byte_range> byte_range() const;
  /// Success-Report; `no` when absent (§7.1.1). `errc::bad_report_value` unless yes or no.
  result<report_mode> success_report() const;
  /// Failure-Report; `yes` when absent (§7.1.1). `errc::bad_report_value` unless yes, no or
  /// partial.
  result<report_mode> failure_report() const;
  /// Status of a REPORT, if present; `errc::bad_status_header` when malformed.
  result<std::optional<msrp::status>> status() const;
  /// Content-Type, if present (the message then has a body, §7.1).
  std::optional<std::string_view> content_type() const;
  /// Expires, Min-Expires and Max-Expires (RFC 4976 §7.2-7.4), in seconds, if present;
  /// `errc::bad_number` unless 1*DIGIT that fits 32 bits.
  result<std::optional<std::uint32_t>> expires() const;
  result<std::optional<std::uint32_t>> min_expires() const;
  result<std::optional<std::uint32_t>> max_expires() const;
  /// WWW-Authenticate challenges of a 401 (RFC 4976 §7.5), raw, in order.
  std::vector<std::string_view> www_authenticate() const;
  /// Authorization (RFC 4976 §7.6) and Authentication-Info (§7.7), raw, if present.
  std::optional<std::string_view> authorization() const;
  std::optional<std::string_view> authentication_info() const;
};

/// Parses a space-separated list of MSRP URIs, the value of To-Path, From-Path or Use-Path.
/// Fails with `errc::bad_uri` if the list is empty or any URI is malformed.
result<std::vector<uri>> parse_path(std::string_view value);

/// The text form of a path: the URIs separated by single spaces.
std::string format_path(const std::vector<uri>& path);

}  // namespace msrp
