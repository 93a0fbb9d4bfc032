// msrp/uri.cpp: parsing, formatting and comparing MSRP URIs (RFC 4975 §6, §6.1, §9).
//
// One helper per grammar rule, each under its ABNF. Every character class below excludes
// controls, space and bytes >= 0x80, so a URI holds printable US-ASCII only (§6).
#include "msrp/uri.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstddef>

#include "msrp/detail/text.hpp"

namespace msrp {
namespace {

using detail::iequals;
using detail::is_alphanum;
using detail::is_digit;
using detail::is_token_char;
using detail::to_lower;

// RFC 5234 Appendix B.1: HEXDIG
bool is_hexdig(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// RFC 3986 §2.3: unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~"
bool is_unreserved(char c) {
  return is_alphanum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

// RFC 3986 §2.2: sub-delims = "!" / "$" / "&" / "'" / "(" / ")" / "*" / "+" / "," / ";" / "="
bool is_sub_delim(char c) {
  return std::string_view("!$&'()*+,;=").find(c) != std::string_view::npos;
}

// RFC 3986 §3.2.1: userinfo = *( unreserved / pct-encoded / sub-delims / ":" ), without ":"
// because RFC 4975 §6 forbids a password.
bool is_userinfo_char(char c) {
  return is_unreserved(c) || is_sub_delim(c);
}

// RFC 4975 §9: session-id = 1*( unreserved / "+" / "=" / "/" )
bool is_session_id_char(char c) {
  return is_unreserved(c) || c == '+' || c == '=' || c == '/';
}

// Whether `text` is one or more characters that satisfy `allowed`.
bool is_run_of(std::string_view text, bool (*allowed)(char)) {
  return !text.empty() && std::ranges::all_of(text, allowed);
}

// Whether `text` is one or more characters that satisfy `allowed` or are
// pct-encoded = "%" HEXDIG HEXDIG (RFC 3986 §2.1).
bool is_pct_run_of(std::string_view text, bool (*allowed)(char)) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%') {
      if (text.size() - i < 3 || !is_hexdig(text[i + 1]) || !is_hexdig(text[i + 2])) return false;
      i += 2;
    } else if (!allowed(text[i])) {
      return false;
    }
  }
  return !text.empty();
}

// Removes and returns the longest prefix of `text` that holds none of `delimiters`.
std::string_view take_until(std::string_view& text, std::string_view delimiters) {
  const std::string_view head = text.substr(0, text.find_first_of(delimiters));
  text.remove_prefix(head.size());
  return head;
}

// Removes and returns the longest prefix of `text` whose characters satisfy `allowed`.
std::string_view take_while(std::string_view& text, bool (*allowed)(char)) {
  const auto end = std::ranges::find_if_not(text, allowed);
  const std::string_view head = text.substr(0, static_cast<std::size_t>(end - text.begin()));
  text.remove_prefix(head.size());
  return head;
}

// Removes `c` from the front of `text` if it is there.
bool consume(std::string_view& text, char c) {
  if (!text.starts_with(c)) return false;
  text.remove_prefix(1);
  return true;
}

// RFC 3986 §3.2.2:
//   IPv4address = dec-octet "." dec-octet "." dec-octet "." dec-octet
//   dec-octet   = DIGIT / %x31-39 DIGIT / "1" 2DIGIT / "25" %x30-35 / "2" %x30-34 DIGIT
// that is, 0 to 255 with no leading zeros.
std::optional<std::array<std::uint8_t, 4>> parse_ipv4(std::string_view text) {
  std::array<std::uint8_t, 4> address{};
  for (std::size_t i = 0; i < address.size(); ++i) {
    if (i > 0 && !consume(text, '.')) return std::nullopt;
    const std::string_view octet = take_while(text, is_digit);
    if (octet.empty() || octet.size() > 3 || (octet.size() > 1 && octet[0] == '0')) {
      return std::nullopt;
    }
    const auto parsed = std::from_chars(octet.data(), octet.data() + octet.size(), address[i]);
    if (parsed.ec != std::errc{}) return std::nullopt;  // above 255
  }
  if (!text.empty()) return std::nullopt;
  return address;
}

// RFC 3986 §3.2.2:
//   IPv6address =                            6( h16 ":" ) ls32
//               /                       "::" 5( h16 ":" ) ls32
//               / ...
//               / [ *6( h16 ":" ) h16 ] "::"
//   h16  = 1*4HEXDIG
//   ls32 = ( h16 ":" h16 ) / IPv4address
// that is, eight groups, or fewer with one "::" standing for one or more zero groups; the last
// two groups may be written as an IPv4 address. Returns the 16 bytes of the address.
std::optional<std::array<std::uint8_t, 16>> parse_ipv6(std::string_view text) {
  std::array<std::uint16_t, 8> groups{};
  std::size_t count = 0;
  std::optional<std::size_t> gap;  // the index of the group that "::" precedes
  if (text.starts_with("::")) {
    gap = 0;
    text.remove_prefix(2);
  }
  while (!text.empty()) {
    if (count == groups.size()) return std::nullopt;
    const std::string_view group_start = text;
    const std::string_view hex = take_while(text, is_hexdig);
    if (text.starts_with('.')) {  // ls32 as an IPv4 address ends the literal
      const auto ipv4 = parse_ipv4(group_start);
      if (!ipv4 || count > groups.size() - 2) return std::nullopt;
      groups[count++] = static_cast<std::uint16_t>((*ipv4)[0] << 8 | (*ipv4)[1]);
      groups[count++] = static_cast<std::uint16_t>((*ipv4)[2] << 8 | (*ipv4)[3]);
      break;
    }
    if (hex.empty() || hex.size() > 4) return std::nullopt;
    std::from_chars(hex.data(), hex.data() + hex.size(), groups[count++], 16);  // fits: 4 digits
    if (text.empty()) break;
    if (!consume(text, ':')) return std::nullopt;
    if (consume(text, ':')) {
      if (gap) return std::nullopt;  // "::" at most once
      gap = count;
    } else if (text.empty()) {
      return std::nullopt;  // a single trailing ':'
    }
  }
  // "::" stands for at least one group; without it there must be eight.
  if (gap ? count == groups.size() : count != groups.size()) return std::nullopt;

  std::array<std::uint8_t, 16> address{};
  const std::size_t zeros = groups.size() - count;
  for (std::size_t i = 0; i < count; ++i) {
    const std::size_t at = gap && i >= *gap ? i + zeros : i;
    address[2 * at] = static_cast<std::uint8_t>(groups[i] >> 8);
    address[2 * at + 1] = static_cast<std::uint8_t>(groups[i] & 0xff);
  }
  return address;
}

// RFC 3986 §3.2.2: reg-name = *( unreserved / pct-encoded / sub-delims ), narrowed here to
// 1*( unreserved / pct-encoded ): sub-delims would include ";", which ends the authority.
bool is_reg_name(std::string_view text) {
  return is_pct_run_of(text, is_unreserved);
}

// RFC 3986 §3.2.3: port = *DIGIT, narrowed to 1*DIGIT with a value of at most 65535.
std::optional<std::uint16_t> parse_port(std::string_view text) {
  std::uint16_t port = 0;
  const char* end = text.data() + text.size();
  const auto parsed = std::from_chars(text.data(), end, port);  // digits only: no sign, no space
  if (parsed.ec != std::errc{} || parsed.ptr != end) return std::nullopt;
  return port;
}

struct host_port {
  std::string_view host;  // without the brackets of an IPv6 literal
  host_kind kind;
  std::optional<std::uint16_t> port;
};

// RFC 3986 §3.2.2, §3.2.3: host [ ":" port ], with host = IP-literal / IPv4address / reg-name
// and IP-literal = "[" IPv6address "]" (no IPvFuture, no zone id). A name made only of digits
// and dots must be a valid IPv4 address: "1.2.3", "01.2.3.4" or "1.2.3.256" are rejected rather
// than taken as names that resolvers might read as addresses. RFC 4975 §6: a numeric host must
// come with a port.
std::optional<host_port> parse_host_port(std::string_view text) {
  host_port out{};
  if (consume(text, '[')) {
    out.host = take_until(text, "]");
    if (!consume(text, ']') || !parse_ipv6(out.host)) return std::nullopt;
    out.kind = host_kind::ipv6;
  } else {
    out.host = take_until(text, ":");
    if (parse_ipv4(out.host)) {
      out.kind = host_kind::ipv4;
    } else if (is_reg_name(out.host) &&
               !std::ranges::all_of(out.host, [](char c) { return is_digit(c) || c == '.'; })) {
      out.kind = host_kind::name;
    } else {
      return std::nullopt;
    }
  }
  if (consume(text, ':')) {
    out.port = parse_port(text);
    if (!out.port) return std::nullopt;
  } else if (!text.empty() || out.kind != host_kind::name) {
    return std::nullopt;
  }
  return out;
}

// RFC 4975 §9: *( ";" URI-parameter ) after the first ";", with URI-parameter = token ["=" token]
bool is_parameters(std::string_view text) {
  do {
    std::string_view value = take_until(text, ";");
    const std::string_view name = take_until(value, "=");
    if (!is_run_of(name, is_token_char)) return false;
    if (consume(value, '=') && !is_run_of(value, is_token_char)) return false;
  } while (consume(text, ';'));
  return true;
}

// RFC 3986 §6.2.2: the next character of a host for comparison, with case folded (§6.2.2.1) and
// a percent-encoded unreserved character decoded (§6.2.2.2). Advances `i` past it.
char next_normalized(std::string_view host, std::size_t& i) {
  const auto hex_value = [](char c) { return is_digit(c) ? c - '0' : to_lower(c) - 'a' + 10; };
  if (host[i] == '%' && host.size() - i >= 3) {
    const auto decoded = static_cast<char>(hex_value(host[i + 1]) * 16 + hex_value(host[i + 2]));
    if (is_unreserved(decoded)) {
      i += 3;
      return to_lower(decoded);
    }
  }
  return to_lower(host[i++]);
}

// RFC 4975 §6.1 rule 2: host names compare case-insensitively after percent-decoding.
bool same_name(std::string_view a, std::string_view b) {
  std::size_t i = 0;
  std::size_t j = 0;
  while (i < a.size() && j < b.size()) {
    if (next_normalized(a, i) != next_normalized(b, j)) return false;
  }
  return i == a.size() && j == b.size();
}

}  // namespace

// RFC 4975 §9:
//   MSRP-URI = msrp-scheme "://" authority ["/" session-id] ";" transport *( ";" URI-parameter)
//   msrp-scheme = "msrp" / "msrps"
//   transport = "tcp" / 1*ALPHANUM
// RFC 3986 §3.2: authority = [ userinfo "@" ] host [ ":" port ]
result<uri> uri::parse(std::string_view text) {
  uri out;
  const std::string_view scheme = take_until(text, ":");
  if (iequals(scheme, "msrps")) {
    out.secure_ = true;
  } else if (!iequals(scheme, "msrp")) {
    return errc::bad_uri;
  }
  if (!text.starts_with("://")) return errc::bad_uri;
  text.remove_prefix(3);

  // No rule after the userinfo admits "@", so the first one ends the userinfo. An empty
  // userinfo is refused so that the text formats back as written.
  if (const std::size_t at = text.find('@'); at != std::string_view::npos) {
    const std::string_view userinfo = text.substr(0, at);
    if (!is_pct_run_of(userinfo, is_userinfo_char)) return errc::bad_uri;
    out.userinfo_ = userinfo;
    text.remove_prefix(at + 1);
  }

  const auto host = parse_host_port(take_until(text, "/;"));
  if (!host) return errc::bad_uri;
  out.host_ = host->host;
  out.kind_ = host->kind;
  out.port_ = host->port;

  if (consume(text, '/')) {
    const std::string_view session_id = take_until(text, ";");
    if (!is_run_of(session_id, is_session_id_char)) return errc::bad_uri;
    out.session_id_ = session_id;
  }

  if (!consume(text, ';')) return errc::bad_uri;
  const std::string_view transport = take_until(text, ";");
  if (!is_run_of(transport, is_alphanum)) return errc::bad_uri;
  out.transport_ = transport;

  if (consume(text, ';')) {
    if (!is_parameters(text)) return errc::bad_uri;
    out.parameters_ = text;
  }
  return out;
}

std::string uri::to_string() const {
  std::array<char, 5> digits{};  // up to "65535"
  char* const digits_end =
      port_ ? std::to_chars(digits.data(), digits.data() + digits.size(), *port_).ptr
            : digits.data();

  std::string text;  // 15: "msrps://", '@', "[]", ':', '/' and two ';'
  text.reserve(15 + userinfo_.size() + host_.size() + digits.size() + session_id_.size() +
               transport_.size() + parameters_.size());
  text += secure_ ? "msrps://" : "msrp://";
  if (!userinfo_.empty()) text.append(userinfo_).append("@");
  if (kind_ == host_kind::ipv6) {
    text.append("[").append(host_).append("]");
  } else {
    text += host_;
  }
  if (port_) text.append(":").append(digits.data(), digits_end);
  if (!session_id_.empty()) text.append("/").append(session_id_);
  text.append(";").append(transport_);
  if (!parameters_.empty()) text.append(";").append(parameters_);
  return text;
}

// RFC 4975 §6.1, rules 1 to 5 in order. Rule 2 ignores the userinfo, compares IP addresses as
// addresses and anything else as a case-insensitive string after percent-decoding. Parameters
// after the transport are not compared.
bool operator==(const uri& a, const uri& b) {
  const bool either_ipv6 = a.kind_ == host_kind::ipv6 || b.kind_ == host_kind::ipv6;
  const bool same_host = either_ipv6
                             ? a.kind_ == b.kind_ && parse_ipv6(a.host_) == parse_ipv6(b.host_)
                             : same_name(a.host_, b.host_);
  return a.secure_ == b.secure_ && same_host && a.port_ == b.port_ &&
         a.session_id_ == b.session_id_ && iequals(a.transport_, b.transport_);
}

}  // namespace msrp
