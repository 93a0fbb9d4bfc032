// msrp/uri.hpp: msrp:// and msrps:// URIs (RFC 4975 §6, §6.1, §9; RFC 7977 §7 for `;ws`).
//
//   MSRP-URI    = msrp-scheme "://" authority ["/" session-id] ";" transport *( ";" URI-parameter)
//   msrp-scheme = "msrp" / "msrps"
//   session-id  = 1*( unreserved / "+" / "=" / "/" )
//   transport   = "tcp" / 1*ALPHANUM
//   URI-parameter = token ["=" token]
//
// `authority` is RFC 3986's: [userinfo "@"] host [":" port], where host is an IPv4 address, an
// IPv6 literal in brackets, or a registered name. A URI is parsed into its parts, kept as
// written, and formats back to the same text.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "msrp/result.hpp"

namespace msrp {

/// What kind of host a URI names.
enum class host_kind {
  name,  ///< A registered name, such as `relay.example.com`.
  ipv4,  ///< A dotted IPv4 address, such as `192.0.2.1`.
  ipv6,  ///< An IPv6 literal; `host()` holds it without the brackets.
};

/// An MSRP URI: scheme, optional userinfo, host, optional port, optional session-id, the
/// transport and any further parameters.
class uri {
 public:
  /// Parses `text` as an MSRP URI (RFC 4975 §9).
  ///
  /// Rejects, with `errc::bad_uri`: a scheme other than msrp/msrps (case-insensitive), a
  /// missing or malformed host, a port that is not a number from 0 to 65535, a numeric host
  /// without a port (§6), a userinfo with a password (§6) or bad characters, a session-id with
  /// characters outside `unreserved / "+" / "=" / "/"`, a missing or non-alphanumeric transport,
  /// parameters that are not `token ["=" token]`, and any byte that is not printable ASCII.
  static result<uri> parse(std::string_view text);

  /// True for the msrps scheme, which requires TLS (§6).
  bool is_secure() const noexcept { return secure_; }
  /// The userinfo, percent-encoding kept; empty when absent.
  const std::string& userinfo() const noexcept { return userinfo_; }
  /// The host as written, without the brackets of an IPv6 literal.
  const std::string& host() const noexcept { return host_; }
  host_kind kind() const noexcept { return kind_; }
  /// The port, when the URI names one.
  std::optional<std::uint16_t> port() const noexcept { return port_; }
  /// The session-id; empty when the URI names a device rather than a session (§6).
  const std::string& session_id() const noexcept { return session_id_; }
  /// The transport parameter as written, such as `tcp` or `ws`.
  const std::string& transport() const noexcept { return transport_; }
  /// Further parameters after the transport, as written without the leading ';'
  /// (for example `foo=bar;baz`); empty when there are none.
  const std::string& parameters() const noexcept { return parameters_; }

  /// The URI as text; parsing the text gives back an equal URI.
  std::string to_string() const;

  /// URI equivalence exactly as RFC 4975 §6.1 defines it: scheme case-insensitive; userinfo
  /// ignored; host compared case-insensitively after decoding percent-encoded unreserved
  /// characters; ports equal (an explicit port never equals an absent one); session-id
  /// case-sensitive (present never equals absent); transport case-insensitive. Further
  /// parameters are not compared.
  friend bool operator==(const uri& a, const uri& b);

 private:
  bool secure_ = false;
  host_kind kind_ = host_kind::name;
  std::string userinfo_;
  std::string host_;
  std::optional<std::uint16_t> port_;
  std::string session_id_;
  std::string transport_;
  std::string parameters_;
};

}  // namespace msrp
