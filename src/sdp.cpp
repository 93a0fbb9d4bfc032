// msrp/sdp.cpp: parsing, writing and negotiating MSRP session descriptions (RFC 4975 §8,
// RFC 6135, RFC 8122 §5, RFC 8866 §5 and §9).
//
// Parsing runs in three passes: split the text into `<letter>=<value>` lines, check the line
// order of RFC 8866 §9 once for the whole description, then read the session-level lines and
// the first MSRP media section. Each grammar rule has one helper, under its ABNF.
#include "msrp/sdp.hpp"

#include <algorithm>
#include <array>
#include <cassert>
#include <cstddef>

#include "msrp/detail/text.hpp"
#include "msrp/message.hpp"

namespace msrp {
namespace {

using detail::trim;

using detail::iequals;
using detail::is_digit;
using detail::is_token_char;
using detail::parse_decimal;

constexpr auto npos = std::string_view::npos;

// ---------------------------------------------------------------------------------------------
// Character classes and small helpers.

// RFC 8866 §9: token = 1*(token-char); its token-char is the same set as RFC 4975's.
bool is_token(std::string_view s) {
  return !s.empty() && std::ranges::all_of(s, is_token_char);
}

// RFC 8866 §9: non-ws-string = 1*(VCHAR/%x80-FF)
bool is_non_ws_string(std::string_view s) {
  return !s.empty() && std::ranges::all_of(s, [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u > 0x20 && u != 0x7F;
  });
}

bool is_digits(std::string_view s) {
  return !s.empty() && std::ranges::all_of(s, is_digit);
}

// The value of a hex digit, or -1. RFC 8122 §5 asks for uppercase (UHEX); lowercase is taken
// too, since it names the same bytes and some stacks write it.
int hex_value(char c) {
  if (is_digit(c)) return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// Splits `text` at every `separator`; two separators in a row give an empty field.
std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> fields;
  while (true) {
    const auto end = text.find(separator);
    fields.push_back(text.substr(0, end));
    if (end == npos) return fields;
    text.remove_prefix(end + 1);
  }
}

// ---------------------------------------------------------------------------------------------
// Lines (RFC 8866 §5): `<type>=<value>`, type one case-significant letter, no space around
// "=". Values are byte-strings: any byte except NUL, CR and LF.

struct line {
  char type;
  std::string_view value;
};

// Splits at LF, dropping one CR before each (§5: accept bare LF too). Blank lines are allowed
// only at the end, where some stacks leave an extra CRLF.
result<std::vector<line>> split_lines(std::string_view text) {
  std::vector<line> lines;
  while (!text.empty()) {
    const auto newline = text.find('\n');
    std::string_view raw = text.substr(0, newline);
    text.remove_prefix(newline == npos ? text.size() : newline + 1);
    if (!raw.empty() && raw.back() == '\r') raw.remove_suffix(1);
    if (raw.empty()) {
      if (text.find_first_not_of("\r\n") != npos) return errc::bad_sdp;
      break;
    }
    if (raw.size() < 2 || raw[1] != '=') return errc::bad_sdp;
    const std::string_view value = raw.substr(2);
    if (value.find_first_of(std::string_view("\0\r", 2)) != npos) return errc::bad_sdp;
    lines.push_back({raw[0], value});
  }
  return lines;
}

// RFC 8866 §9:
//   session-description = version-field origin-field session-name-field [information-field]
//                         [uri-field] *email-field *phone-field [connection-field]
//                         *bandwidth-field 1*time-description [key-field] *attribute-field
//                         *media-description
//   time-description    = time-field [repeat-description]   ; t= r= z=
//   media-description   = media-field [information-field] *connection-field *bandwidth-field
//                         [key-field] *attribute-field
// Each letter gets a rank within its section; ranks never decrease, and a letter that may
// occur once never repeats. t, r and z share a rank (RFC 4566 put z= after all time
// descriptions, RFC 8866 inside one; both are taken), but r and z need a t before them.
// A letter without a rank is refused: RFC 8866 §5 says a parser "MUST completely ignore or
// reject any session description that contains a type letter that it does not understand".
bool is_in_order(const std::vector<line>& lines) {
  constexpr std::string_view session_ranks = "vosiuepcbtka";
  constexpr std::string_view media_ranks = "micbka";
  if (lines.size() < 4 || lines[0].type != 'v' || lines[1].type != 'o' || lines[2].type != 's') {
    return false;
  }
  bool in_media = false;
  bool seen_time = false;
  std::size_t previous_rank = 0;
  char previous_type = 0;
  for (const auto& [type, value] : lines) {
    if (type == 'm') in_media = true;
    const std::string_view ranks = in_media ? media_ranks : session_ranks;
    const char ranked = (!in_media && (type == 'r' || type == 'z')) ? 't' : type;
    const auto rank = ranks.find(ranked);
    if (rank == npos) return false;
    if (type == 'm') {
      previous_rank = 0;
      previous_type = 'm';
      continue;
    }
    if (type == 't') seen_time = true;
    if ((type == 'r' || type == 'z') && !seen_time) return false;
    if (rank < previous_rank) return false;
    const bool repeatable = std::string_view(in_media ? "cba" : "epbtrza").find(type) != npos;
    if (type == previous_type && !repeatable) return false;
    previous_rank = rank;
    previous_type = type;
  }
  return seen_time;
}

// ---------------------------------------------------------------------------------------------
// Session-level fields.

// RFC 8866 §9: origin-field = %s"o" "=" username SP sess-id SP sess-version SP nettype SP
//                             addrtype SP unicast-address CRLF
//   username = non-ws-string ; sess-id = 1*DIGIT ; sess-version = 1*DIGIT
// We model only `IN IP4` and `IN IP6`, the families MSRP runs over.
result<origin> parse_origin(std::string_view value) {
  const auto fields = split(value, ' ');
  if (fields.size() != 6 || !is_non_ws_string(fields[0]) || fields[3] != "IN" ||
      (fields[4] != "IP4" && fields[4] != "IP6") || !is_non_ws_string(fields[5])) {
    return errc::bad_sdp;
  }
  const auto id = parse_decimal(fields[1]);
  const auto version = parse_decimal(fields[2]);
  if (!id || !version) return errc::bad_sdp;
  return origin{std::string(fields[0]), *id, *version, std::string(fields[5]), fields[4] == "IP6"};
}

// RFC 8866 §9: connection-field = %s"c" "=" nettype SP addrtype SP connection-address CRLF
//   nettype = token ; addrtype = token ; connection-address is at least a non-ws-string
struct connection_field {
  std::string_view nettype;
  std::string_view addrtype;
  std::string_view address;
};

result<connection_field> parse_connection_field(std::string_view value) {
  const auto fields = split(value, ' ');
  if (fields.size() != 3 || !is_token(fields[0]) || !is_token(fields[1]) ||
      !is_non_ws_string(fields[2])) {
    return errc::bad_sdp;
  }
  return connection_field{fields[0], fields[1], fields[2]};
}

// RFC 4975 §8.1: the c= address is the IP address or host name of the endpoint's URI, so the
// MSRP media's c= must be `IN IP4` or `IN IP6`.
std::error_code apply_connection(const connection_field& field, media_description& media) {
  if (field.nettype != "IN" || (field.addrtype != "IP4" && field.addrtype != "IP6")) {
    return errc::bad_sdp;
  }
  media.address = std::string(field.address);
  media.ipv6 = field.addrtype == "IP6";
  return {};
}

// RFC 8866 §9: time-field = %s"t" "=" start-time SP stop-time CRLF
//   start-time = time / "0" ; stop-time = time / "0" ; time = POS-DIGIT 9*DIGIT
// Checked only as two numbers; MSRP sessions are unbounded (`t=0 0`).
bool is_time_field(std::string_view value) {
  const auto fields = split(value, ' ');
  return fields.size() == 2 && is_digits(fields[0]) && is_digits(fields[1]);
}

// RFC 8866 §9: media-field = %s"m" "=" media SP port ["/" integer] SP proto 1*(SP fmt) CRLF
//   media = token ; port = 1*DIGIT ; proto = token *("/" token) ; fmt = token
struct media_field {
  std::string_view media;
  std::string_view port;  // with its "/" integer, if any
  std::string_view proto;
};

result<media_field> parse_media_field(std::string_view value) {
  const auto fields = split(value, ' ');
  if (fields.size() < 4 || !is_token(fields[0])) return errc::bad_sdp;
  const auto port = split(fields[1], '/');
  if (port.size() > 2 || !std::ranges::all_of(port, is_digits)) return errc::bad_sdp;
  if (!std::ranges::all_of(split(fields[2], '/'), is_token)) return errc::bad_sdp;
  if (!std::all_of(fields.begin() + 3, fields.end(), is_token)) return errc::bad_sdp;
  return media_field{fields[0], fields[1], fields[2]};
}

// RFC 4975 §8.1: "a protocol field value of "TCP/MSRP", or "TCP/TLS/MSRP" for TLS. The media
// field value MUST be "message"." Compared case-insensitively, to be lenient.
bool is_msrp(const media_field& field) {
  return iequals(field.media, "message") &&
         (iequals(field.proto, "TCP/MSRP") || iequals(field.proto, "TCP/TLS/MSRP"));
}

// RFC 8866 §9: attribute = (attribute-name ":" attribute-value) / attribute-name
//   attribute-name = token ; attribute-value = byte-string
struct attribute {
  std::string_view name;
  std::string_view value;
};

result<attribute> parse_attribute(std::string_view text) {
  const auto colon = text.find(':');
  const std::string_view name = text.substr(0, colon);
  if (!is_token(name)) return errc::bad_sdp;
  return attribute{name, colon == npos ? std::string_view() : text.substr(colon + 1)};
}

// ---------------------------------------------------------------------------------------------
// MSRP attributes (RFC 4975 §8.2, §8.6).

// RFC 4975 §9: quoted-string = DQUOTE *(qdtext / qd-esc) DQUOTE
//   qdtext = SP / HTAB / %x21 / %x23-5B / %x5D-7E / UTF8-NONASCII
//   qd-esc = (BACKSLASH BACKSLASH) / (BACKSLASH DQUOTE)
// Returns the position after the closing quote of the string that opens at `at`, or 0.
std::size_t quoted_string_end(std::string_view s, std::size_t at) {
  for (std::size_t i = at + 1; i < s.size(); ++i) {
    const auto u = static_cast<unsigned char>(s[i]);
    if (u == '"') return i + 1;
    if (u == '\\') {
      if (i + 1 >= s.size() || (s[i + 1] != '\\' && s[i + 1] != '"')) return 0;
      ++i;
    } else if (u != ' ' && u != '\t' && (u < 0x21 || u == 0x7F)) {
      return 0;
    }
  }
  return 0;
}

// The position after the token that starts at `at`; `at` itself when there is none.
std::size_t token_end(std::string_view s, std::size_t at) {
  while (at < s.size() && is_token_char(s[at]))
    ++at;
  return at;
}

// RFC 4975 §8.6:
//   format-entry = ( ( (type "/" subtype) / (type "/" "*") ) *( ";" type-param ) ) / ("*")
//   type = token ; subtype = token
//   type-param = parm-attribute "=" parm-value
//   parm-attribute = token ; parm-value = token / quoted-string
// Returns the length of the entry at the front of `s`, or 0 if there is none.
std::size_t format_entry_length(std::string_view s) {
  if (s == "*" || s.starts_with("* ")) return 1;
  std::size_t i = token_end(s, 0);
  if (i == 0 || i >= s.size() || s[i] != '/') return 0;
  const std::size_t subtype = i + 1;
  i = token_end(s, subtype);
  if (i == subtype) return 0;
  while (i < s.size() && s[i] == ';') {
    const std::size_t name = i + 1;
    i = token_end(s, name);
    if (i == name || i >= s.size() || s[i] != '=') return 0;
    const std::size_t parm_value = i + 1;
    if (parm_value < s.size() && s[parm_value] == '"') {
      i = quoted_string_end(s, parm_value);
      if (i == 0) return 0;
    } else {
      i = token_end(s, parm_value);
      if (i == parm_value) return 0;
    }
  }
  return i;
}

// RFC 4975 §8.6: format-list = format-entry *( SP format-entry)
result<std::vector<std::string>> parse_format_list(std::string_view value) {
  std::vector<std::string> entries;
  while (true) {
    const std::size_t length = format_entry_length(value);
    if (length == 0) return errc::bad_sdp;
    entries.emplace_back(value.substr(0, length));
    value.remove_prefix(length);
    if (value.empty()) return entries;
    if (value.front() != ' ') return errc::bad_sdp;
    value.remove_prefix(1);
  }
}

// RFC 4975 §8.2: path = path-label ":" path-list ; path-list = MSRP-URI *(SP MSRP-URI)
// "MSRP URIs included in an SDP offer or answer MUST include explicit port numbers."
result<std::vector<uri>> parse_sdp_path(std::string_view value) {
  auto path = parse_path(value);
  if (!path) return path.error();
  for (const auto& hop : *path) {
    if (!hop.port()) return errc::bad_uri;
  }
  return path;
}

// RFC 4145 §4: role = "active" / "passive" / "actpass" / "holdconn" (case-insensitive, as
// quoted ABNF strings are).
result<setup_role> parse_setup(std::string_view value) {
  if (iequals(value, "active")) return setup_role::active;
  if (iequals(value, "passive")) return setup_role::passive;
  if (iequals(value, "actpass")) return setup_role::actpass;
  if (iequals(value, "holdconn")) return setup_role::holdconn;
  return errc::bad_sdp;
}

const char* to_string(setup_role role) {
  switch (role) {
    case setup_role::active:
      return "active";
    case setup_role::passive:
      return "passive";
    case setup_role::actpass:
      return "actpass";
    case setup_role::holdconn:
      return "holdconn";
  }
  return "";
}

// RFC 4145 §5: conn-value = "new" / "existing"
result<connection_mode> parse_connection_mode(std::string_view value) {
  if (iequals(value, "new")) return connection_mode::new_connection;
  if (iequals(value, "existing")) return connection_mode::existing_connection;
  return errc::bad_sdp;
}

// ---------------------------------------------------------------------------------------------
// Reading a description.

// What the session level says about every media section that does not say otherwise.
struct session_defaults {
  std::optional<connection_field> connection;
  std::optional<setup_role> setup;
  std::optional<connection_mode> mode;
  std::vector<fingerprint> fingerprints;
};

// Reads the COMEDIA and TLS attributes, which may sit at either level (RFC 4145 §4-5,
// RFC 8122 §5). Returns false if `attr` is none of them; sets `error` if it is malformed or
// repeats a single-valued one.
bool read_transport_attribute(const attribute& attr, std::optional<setup_role>& setup,
                              std::optional<connection_mode>& mode,
                              std::vector<fingerprint>& fingerprints, std::error_code& error) {
  if (attr.name == "setup") {
    const auto role = parse_setup(attr.value);
    if (!role || setup) error = errc::bad_sdp;
    if (role) setup = *role;
  } else if (attr.name == "connection") {
    const auto parsed = parse_connection_mode(attr.value);
    if (!parsed || mode) error = errc::bad_sdp;
    if (parsed) mode = *parsed;
  } else if (attr.name == "fingerprint") {
    auto parsed = fingerprint::parse(attr.value);
    if (!parsed) error = parsed.error();
    if (parsed) fingerprints.push_back(std::move(*parsed));
  } else {
    return false;
  }
  return true;
}

std::error_code read_session_line(const line& current, session_description& sdp,
                                  session_defaults& defaults) {
  switch (current.type) {
    case 'v':  // RFC 8866 §5.1: version-field = %s"v" "=" 1*DIGIT; this memo is version 0.
      return current.value == "0" ? std::error_code() : errc::bad_sdp;
    case 'o': {
      auto parsed = parse_origin(current.value);
      if (!parsed) return parsed.error();
      sdp.origin = std::move(*parsed);
      return {};
    }
    case 's':
      sdp.session_name = std::string(current.value);
      return {};
    case 'c': {
      const auto parsed = parse_connection_field(current.value);
      if (!parsed) return parsed.error();
      defaults.connection = *parsed;
      return {};
    }
    case 't':
      return is_time_field(current.value) ? std::error_code() : errc::bad_sdp;
    case 'a': {
      const auto attr = parse_attribute(current.value);
      if (!attr) return attr.error();
      std::error_code error;
      if (!read_transport_attribute(*attr, defaults.setup, defaults.mode, defaults.fingerprints,
                                    error)) {
        sdp.attributes.emplace_back(current.value);
      }
      return error;
    }
    default:  // i= u= e= p= b= r= z= k=: not used by MSRP.
      return {};
  }
}

// Reads one MSRP attribute of a media section into `media`. `seen` records which of the
// single-valued ones have been read, to refuse repeats.
struct seen_attributes {
  bool path = false;
  bool accept_types = false;
  bool accept_wrapped_types = false;
};

std::error_code read_media_attribute(std::string_view text, media_description& media,
                                     seen_attributes& seen) {
  const auto attr = parse_attribute(text);
  if (!attr) return attr.error();
  std::error_code error;
  if (read_transport_attribute(*attr, media.setup, media.connection, media.fingerprints, error)) {
    return error;
  }
  if (attr->name == "path") {
    if (seen.path) return errc::bad_sdp;
    seen.path = true;
    auto path = parse_sdp_path(attr->value);
    if (!path) return path.error();
    media.path = std::move(*path);
  } else if (attr->name == "accept-types" || attr->name == "accept-wrapped-types") {
    const bool wrapped = attr->name == "accept-wrapped-types";
    bool& already = wrapped ? seen.accept_wrapped_types : seen.accept_types;
    if (already) return errc::bad_sdp;
    already = true;
    auto types = parse_format_list(attr->value);
    if (!types) return types.error();
    (wrapped ? media.accept_wrapped_types : media.accept_types) = std::move(*types);
  } else if (attr->name == "max-size") {
    // RFC 4975 §8.6: max-size-value = 1*(DIGIT) ; max size in octets
    const auto size = parse_decimal(attr->value);
    if (!size || media.max_size) return errc::bad_sdp;
    media.max_size = *size;
  } else {
    media.attributes.emplace_back(text);
  }
  return {};
}

// Reads the MSRP media section `lines` (its m= line first) whose m= line is `field`.
result<media_description> read_msrp_media(const line* lines, std::size_t count,
                                          const media_field& field,
                                          const session_defaults& defaults) {
  media_description media;
  media.tls = iequals(field.proto, "TCP/TLS/MSRP");
  // A port count ("/" integer) makes no sense for a TCP stream.
  const auto port = parse_decimal(field.port);
  if (!port || *port > UINT16_MAX) return errc::bad_sdp;
  media.port = static_cast<std::uint16_t>(*port);

  bool has_connection = false;
  seen_attributes seen;
  for (std::size_t i = 1; i < count; ++i) {
    if (lines[i].type == 'c') {
      // RFC 8866 allows several c= lines for layered multicast; MSRP has one address.
      if (has_connection) return errc::bad_sdp;
      has_connection = true;
      const auto parsed = parse_connection_field(lines[i].value);
      if (!parsed) return parsed.error();
      if (auto error = apply_connection(*parsed, media)) return error;
    } else if (lines[i].type == 'a') {
      if (auto error = read_media_attribute(lines[i].value, media, seen)) return error;
    }
  }
  // RFC 8866 §5: session-level values are the default for all media unless overridden; a
  // connection field "must be present in every media description or at the session level".
  if (!has_connection) {
    if (!defaults.connection) return errc::bad_sdp;
    if (auto error = apply_connection(*defaults.connection, media)) return error;
  }
  if (!media.setup) media.setup = defaults.setup;
  if (!media.connection) media.connection = defaults.mode;
  if (media.fingerprints.empty()) media.fingerprints = defaults.fingerprints;

  // RFC 4975 §8.2, §8.6: an MSRP media line MUST carry path and accept-types. A rejected
  // stream (port 0, RFC 3264 §6) need not.
  if (media.port != 0) {
    if (!seen.path) return errc::sdp_missing_path;
    if (!seen.accept_types) return errc::sdp_missing_accept_types;
  }
  return media;
}

// Checks the lines of a media section that is skipped (its m= line first).
std::error_code check_other_media(const line* lines, std::size_t count) {
  for (std::size_t i = 1; i < count; ++i) {
    if (lines[i].type == 'c') {
      if (const auto parsed = parse_connection_field(lines[i].value); !parsed) {
        return parsed.error();
      }
    } else if (lines[i].type == 'a') {
      if (const auto attr = parse_attribute(lines[i].value); !attr) return attr.error();
    }
  }
  return {};
}

// ---------------------------------------------------------------------------------------------
// Media types (RFC 4975 §8.6).

// A format entry or Content-Type value reduced to type and subtype; "*" becomes "*" / "*".
// Parameters are dropped: "a format-entry with one or more parameters is assumed to match the
// same format-entry with no parameters".
struct media_type {
  std::string_view type;
  std::string_view subtype;
};

std::optional<media_type> split_media_type(std::string_view entry) {
  entry = trim(entry.substr(0, entry.find(';')));
  if (entry == "*") return media_type{"*", "*"};
  const auto slash = entry.find('/');
  if (slash == npos) return std::nullopt;
  const media_type parsed{trim(entry.substr(0, slash)), trim(entry.substr(slash + 1))};
  if (parsed.type.empty() || parsed.subtype.empty()) return std::nullopt;
  return parsed;
}

// §8.6: "*" takes any type; "type/*" any subtype of type. Types are case-insensitive
// (RFC 2045 §5.1).
bool covers(const media_type& pattern, const media_type& type) {
  if (pattern.type == "*") return true;
  if (!iequals(pattern.type, type.type)) return false;
  return pattern.subtype == "*" || iequals(pattern.subtype, type.subtype);
}

// The entries both lists accept: for each pair where one covers the other, the narrower (ours
// when they are equal), in our order, each media type once.
std::vector<std::string> common_types(const std::vector<std::string>& ours,
                                      const std::vector<std::string>& theirs) {
  std::vector<std::string> common;
  std::vector<media_type> taken;
  const auto add = [&](const std::string& entry, const media_type& type) {
    const bool repeat = std::ranges::any_of(taken, [&](const media_type& other) {
      return iequals(other.type, type.type) && iequals(other.subtype, type.subtype);
    });
    if (repeat) return;
    common.push_back(entry);
    taken.push_back(type);
  };
  for (const auto& mine : ours) {
    const auto my_type = split_media_type(mine);
    if (!my_type) continue;
    for (const auto& other : theirs) {
      const auto other_type = split_media_type(other);
      if (!other_type) continue;
      if (covers(*other_type, *my_type)) {
        add(mine, *my_type);
      } else if (covers(*my_type, *other_type)) {
        add(other, *other_type);
      }
    }
  }
  return common;
}

}  // namespace

// RFC 8122 §5: fingerprint-attribute = "fingerprint" ":" hash-func SP fingerprint
//   hash-func = "sha-1" / "sha-224" / "sha-256" / "sha-384" / "sha-512" / "md5" / "md2" / token
//   fingerprint = 2UHEX *(":" 2UHEX)
// "The number of bytes is defined by the hash function": checked for the functions named.
result<fingerprint> fingerprint::parse(std::string_view value) {
  const auto space = value.find(' ');
  if (space == npos || !is_token(value.substr(0, space))) return errc::bad_sdp;
  const std::string_view hash_function = value.substr(0, space);
  const std::string_view hex = value.substr(space + 1);
  if ((hex.size() + 1) % 3 != 0) return errc::bad_sdp;
  fingerprint parsed{std::string(hash_function), {}};
  for (std::size_t i = 0; i < hex.size(); i += 3) {
    const int high = hex_value(hex[i]);
    const int low = hex_value(hex[i + 1]);
    if (high < 0 || low < 0 || (i + 2 < hex.size() && hex[i + 2] != ':')) return errc::bad_sdp;
    parsed.digest.push_back(static_cast<std::uint8_t>(high * 16 + low));
  }
  struct known_hash {
    std::string_view name;
    std::size_t size;
  };
  constexpr std::array<known_hash, 7> known = {{{"sha-1", 20},
                                                {"sha-224", 28},
                                                {"sha-256", 32},
                                                {"sha-384", 48},
                                                {"sha-512", 64},
                                                {"md5", 16},
                                                {"md2", 16}}};
  for (const auto& [name, size] : known) {
    if (iequals(hash_function, name) && parsed.digest.size() != size) return errc::bad_sdp;
  }
  return parsed;
}

std::string fingerprint::to_string() const {
  constexpr std::string_view hex = "0123456789ABCDEF";
  std::string text;
  text.reserve(digest.size() * 3);
  for (const std::uint8_t byte : digest) {
    if (!text.empty()) text += ':';
    text += hex[byte >> 4];
    text += hex[byte & 0x0F];
  }
  return text;
}

result<session_description> parse_sdp(std::string_view text) {
  const auto lines = split_lines(text);
  if (!lines) return lines.error();
  if (!is_in_order(*lines)) return errc::bad_sdp;

  session_description sdp;
  session_defaults defaults;
  std::size_t i = 0;
  for (; i < lines->size() && (*lines)[i].type != 'm'; ++i) {
    if (auto error = read_session_line((*lines)[i], sdp, defaults)) return error;
  }

  bool found = false;
  while (i < lines->size()) {
    std::size_t end = i + 1;
    while (end < lines->size() && (*lines)[end].type != 'm')
      ++end;
    const line* section = lines->data() + i;
    const auto field = parse_media_field(section->value);
    if (!field) return field.error();
    if (!found && is_msrp(*field)) {
      auto media = read_msrp_media(section, end - i, *field, defaults);
      if (!media) return media.error();
      sdp.media = std::move(*media);
      found = true;
    } else if (auto error = check_other_media(section, end - i)) {
      return error;
    }
    i = end;
  }
  if (!found) return errc::sdp_missing_msrp_media;
  return sdp;
}

std::string format_sdp(const session_description& sdp) {
  const auto& media = sdp.media;
  std::string text;
  const auto add_line = [&text](char type, std::string_view value) {
    text += type;
    text += '=';
    text += value;
    text += "\r\n";
  };
  const auto add_attribute = [&add_line](std::string_view name, std::string_view value) {
    add_line('a', std::string(name) + ':' + std::string(value));
  };
  const auto join = [](const std::vector<std::string>& entries) {
    std::string joined;
    for (const auto& entry : entries) {
      if (!joined.empty()) joined += ' ';
      joined += entry;
    }
    return joined;
  };

  add_line('v', "0");
  add_line('o', sdp.origin.username + ' ' + std::to_string(sdp.origin.session_id) + ' ' +
                    std::to_string(sdp.origin.session_version) +
                    (sdp.origin.ipv6 ? " IN IP6 " : " IN IP4 ") + sdp.origin.address);
  add_line('s', sdp.session_name);
  add_line('c', (media.ipv6 ? "IN IP6 " : "IN IP4 ") + media.address);
  add_line('t', "0 0");
  for (const auto& attr : sdp.attributes)
    add_line('a', attr);

  add_line('m', "message " + std::to_string(media.port) +
                    (media.tls ? " TCP/TLS/MSRP *" : " TCP/MSRP *"));
  if (!media.accept_types.empty()) add_attribute("accept-types", join(media.accept_types));
  if (!media.accept_wrapped_types.empty()) {
    add_attribute("accept-wrapped-types", join(media.accept_wrapped_types));
  }
  if (media.max_size) add_attribute("max-size", std::to_string(*media.max_size));
  if (!media.path.empty()) add_attribute("path", format_path(media.path));
  if (media.setup) add_attribute("setup", to_string(*media.setup));
  if (media.connection) {
    add_attribute("connection",
                  *media.connection == connection_mode::new_connection ? "new" : "existing");
  }
  for (const auto& print : media.fingerprints) {
    add_attribute("fingerprint", print.hash_function + ' ' + print.to_string());
  }
  for (const auto& attr : media.attributes)
    add_line('a', attr);
  return text;
}

result<media_description> make_answer(const media_description& offer,
                                      const media_description& local) {
  assert(!local.path.empty() && !local.accept_types.empty());
  if (offer.tls != local.tls) return errc::sdp_tls_mismatch;

  media_description answer = local;
  answer.accept_types = common_types(local.accept_types, offer.accept_types);
  if (answer.accept_types.empty()) return errc::sdp_no_common_type;
  std::vector<std::string> offered = offer.accept_types;
  offered.insert(offered.end(), offer.accept_wrapped_types.begin(),
                 offer.accept_wrapped_types.end());
  answer.accept_wrapped_types = common_types(local.accept_wrapped_types, offered);

  // RFC 6135 §4.2.1: always send a=setup, never holdconn; a received holdconn counts as
  // absent. Without a=setup the offerer is active (RFC 4975 §5.4).
  const auto offered_role = offer.setup.value_or(setup_role::holdconn);
  switch (offered_role) {
    case setup_role::active:
    case setup_role::holdconn:
      answer.setup = setup_role::passive;
      break;
    case setup_role::passive:
      answer.setup = setup_role::active;
      break;
    case setup_role::actpass:
      answer.setup = local.setup == setup_role::passive ? setup_role::passive : setup_role::active;
      break;
  }
  answer.connection.reset();  // RFC 6135 §4.4: MSRP UAs MUST NOT use a=connection.
  return answer;
}

bool is_active(const media_description& local, const media_description& remote,
               bool local_is_offerer) {
  const media_description& offer = local_is_offerer ? local : remote;
  const media_description& answer = local_is_offerer ? remote : local;
  // RFC 4145 §4.1: an answerer may take "active" only if the offer said actpass or passive.
  const bool answerer_connects =
      answer.setup == setup_role::active &&
      (offer.setup == setup_role::actpass || offer.setup == setup_role::passive);
  return local_is_offerer != answerer_connects;
}

bool accepts_type(const std::vector<std::string>& accept_types, std::string_view content_type) {
  const auto type = split_media_type(content_type);
  if (!type || type->type == "*" || type->subtype == "*") return false;
  return std::ranges::any_of(accept_types, [&](const std::string& entry) {
    const auto pattern = split_media_type(entry);
    return pattern && covers(*pattern, *type);
  });
}

}  // namespace msrp
