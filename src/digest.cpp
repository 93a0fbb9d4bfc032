// msrp/digest.cpp: HTTP Digest headers and arithmetic for MSRP relays (RFC 4976 §7, §9.1;
// RFC 7616 §3; RFC 2617 §3).
//
// The three headers share one reader: `read_params` splits a value into name/value pairs and
// checks the syntax common to all of them; each `parse()` then picks out its parameters and
// checks their values. Writing goes through `writer`, which quotes and separates.
#include "msrp/digest.hpp"

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "msrp/detail/text.hpp"

namespace msrp::digest {
namespace {

using detail::iequals;
using detail::is_text_char;
using detail::is_token_char;
using detail::trim;

// A peer cannot make us compare every parameter name with every other one without bound
// (duplicate detection is quadratic). The longest legitimate header, RFC 7616's
// Authorization, has a dozen.
constexpr std::size_t max_parameters = 64;

bool is_token(std::string_view s) {
  return !s.empty() && std::ranges::all_of(s, is_token_char);
}

bool is_space(char c) {
  return c == ' ' || c == '\t';
}

// RFC 4976 §7: LHEX = DIGIT / %x61-66 ;lowercase a-f
bool is_lhex(std::string_view s) {
  return std::ranges::all_of(s,
                             [](char c) { return detail::is_digit(c) || (c >= 'a' && c <= 'f'); });
}

// RFC 4976 §7: nc-value = 8LHEX
bool is_nc(std::string_view s) {
  return s.size() == 8 && is_lhex(s);
}

// RFC 7616 §3.2: 32 hex digits for MD5, 64 for SHA-256.
std::size_t digest_length(std::string_view algorithm) {
  return algorithm == md5 ? 32 : 64;
}

// Used only in assertions, hence unused in release builds.
[[maybe_unused]] bool is_supported(std::string_view algorithm) {
  return algorithm == md5 || algorithm == sha256;
}

// RFC 4976 §7: algorithm = "algorithm=" ( "MD5" / token ). Tokens compare case-insensitively
// (RFC 4975 §9), so `sha-256` names SHA-256. Everything else, the "-sess" variants included,
// is unsupported (RFC 4976 §9.1 forbids MD5-sess; we need no session keys).
result<std::string> canonical_algorithm(std::string_view token) {
  if (iequals(token, md5)) return std::string(md5);
  if (iequals(token, sha256)) return std::string(sha256);
  return errc::unsupported_digest_algorithm;
}

// RFC 4976 §7: qop-list = qop-value *( "," qop-value ). RFC 7616 §3.9.1 writes
// `qop="auth, auth-int"`, so whitespace around the commas is allowed.
result<bool> offers_auth(std::string_view list) {
  bool found = false;
  while (true) {
    const auto comma = list.find(',');
    const auto option = trim(list.substr(0, comma));
    if (!is_token(option)) return errc::bad_digest_parameter;
    if (option == "auth") found = true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return found;
}

// ---------------------------------------------------------------------------------------------
// Reading a parameter list.

struct param {
  std::string_view name;
  std::string value;  // unquoted
};

// RFC 7230 §3.2.6 (RFC 2617 §2's quoted-string, as RFC 4975 §9's):
//   quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE
//   qdtext        = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
//   quoted-pair   = "\" ( HTAB / SP / VCHAR / obs-text )
// RFC 4975's qd-esc allows only `\\` and `\"`; any quoted-pair is accepted, as HTTP does.
// `text` starts after the opening quote; on success it is left after the closing one.
result<std::string> read_quoted(std::string_view& text) {
  std::string value;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '"') {
      text.remove_prefix(i + 1);
      return value;
    }
    if (c == '\\') {
      if (++i == text.size()) break;
      c = text[i];
    }
    if (!is_text_char(c)) return errc::bad_digest_syntax;
    value += c;
  }
  return errc::bad_digest_syntax;  // unterminated
}

// RFC 7235 §2.1, as RFC 4976 §7 writes it for each header:
//   list       = auth-param *( OWS "," OWS auth-param )
//   auth-param = token BWS "=" BWS ( token / quoted-string )
// with no empty list elements. Names must not repeat, in any case (RFC 7235 §2.2).
result<std::vector<param>> read_params(std::string_view text) {
  std::vector<param> params;
  const auto skip_space = [&text] {
    while (!text.empty() && is_space(text.front()))
      text.remove_prefix(1);
  };
  const auto take_token = [&text] {
    const auto end = std::ranges::find_if_not(text, is_token_char) - text.begin();
    const auto token = text.substr(0, static_cast<std::size_t>(end));
    text.remove_prefix(token.size());
    return token;
  };
  while (true) {
    skip_space();
    param p;
    p.name = take_token();
    if (p.name.empty()) return errc::bad_digest_syntax;
    skip_space();
    if (text.empty() || text.front() != '=') return errc::bad_digest_syntax;
    text.remove_prefix(1);
    skip_space();
    if (!text.empty() && text.front() == '"') {
      text.remove_prefix(1);
      auto value = read_quoted(text);
      if (!value) return value.error();
      p.value = std::move(*value);
    } else {
      p.value = take_token();
      if (p.value.empty()) return errc::bad_digest_syntax;
    }
    const auto same_name = [&p](const param& q) { return iequals(q.name, p.name); };
    if (std::ranges::any_of(params, same_name)) return errc::duplicate_digest_parameter;
    if (params.size() == max_parameters) return errc::bad_digest_syntax;
    params.push_back(std::move(p));
    skip_space();
    if (text.empty()) return params;
    if (text.front() != ',') return errc::bad_digest_syntax;
    text.remove_prefix(1);
  }
}

// RFC 4976 §7: "Digest" SP digest-param *("," SP digest-param). The scheme name is
// case-insensitive (RFC 7235 §2.1); Basic and any other scheme are refused (RFC 4976 §9.1).
result<std::vector<param>> read_digest_params(std::string_view value) {
  value = trim(value);
  constexpr std::string_view scheme = "Digest";
  if (value.size() <= scheme.size() || !iequals(value.substr(0, scheme.size()), scheme) ||
      !is_space(value[scheme.size()])) {
    return errc::bad_digest_syntax;
  }
  return read_params(value.substr(scheme.size()));
}

// The parameters a header requires, as they are found.
class required {
 public:
  explicit required(std::initializer_list<std::string*> fields) : missing_(fields) {}
  void found(std::string* field) { std::erase(missing_, field); }
  bool complete() const { return missing_.empty(); }

 private:
  std::vector<std::string*> missing_;
};

// ---------------------------------------------------------------------------------------------
// Writing a parameter list.

// Appends `name=value` pairs with a separator between them.
class writer {
 public:
  explicit writer(std::string start, std::string_view separator)
      : text_(std::move(start)), separator_(separator), first_(true) {}

  // RFC 4975 §9: quoted-string with qd-esc for `"` and `\`.
  void quoted(std::string_view name, std::string_view value) {
    begin(name);
    text_ += '"';
    for (const char c : value) {
      assert(is_text_char(c));
      if (c == '"' || c == '\\') text_ += '\\';
      text_ += c;
    }
    text_ += '"';
  }

  void token(std::string_view name, std::string_view value) {
    assert(is_token(value));
    begin(name);
    text_ += value;
  }

  std::string take() { return std::move(text_); }

 private:
  void begin(std::string_view name) {
    assert(is_token(name));
    if (!first_) text_ += separator_;
    first_ = false;
    text_ += name;
    text_ += '=';
  }

  std::string text_;
  std::string_view separator_;
  bool first_;
};

// RFC 7616 §3.3: KD(secret, data) = H(concat(secret, ":", data)), and §3.4.1 with qop=auth:
//   KD(H(A1), unq(nonce) ":" nc ":" unq(cnonce) ":" unq(qop) ":" H(A2))
std::string keyed_digest(const hasher& hash, const credentials& c, std::string_view ha1,
                         std::string_view a2) {
  assert(is_supported(c.algorithm));
  const std::string ha2 = hash(c.algorithm, a2);
  std::string data;
  for (const std::string_view part : {ha1, std::string_view(c.nonce), std::string_view(c.nc),
                                      std::string_view(c.cnonce), std::string_view(c.qop)}) {
    data += part;
    data += ':';
  }
  data += ha2;
  return hash(c.algorithm, data);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// challenge

std::string challenge::to_header_value() const {
  // RFC 7616 §3.3: realm, domain, nonce, opaque and qop quoted; stale and algorithm not.
  writer out("Digest ", ", ");
  out.quoted("realm", realm);
  out.quoted("nonce", nonce);
  if (!opaque.empty()) out.quoted("opaque", opaque);
  if (stale) out.token("stale", "true");
  out.token("algorithm", algorithm);
  out.quoted("qop", qop);
  for (const auto& [name, value] : other)
    out.quoted(name, value);
  return out.take();
}

result<challenge> challenge::parse(std::string_view value) {
  auto params = read_digest_params(value);
  if (!params) return params.error();
  challenge ch;
  ch.algorithm = md5;  // RFC 7616 §3.3: "If this is not present, it is assumed to be "MD5"."
  ch.qop.clear();
  required needs{&ch.realm, &ch.nonce, &ch.qop};
  for (auto& [name, text] : *params) {
    if (iequals(name, "realm")) {
      ch.realm = std::move(text);
      needs.found(&ch.realm);
    } else if (iequals(name, "nonce")) {
      ch.nonce = std::move(text);
      needs.found(&ch.nonce);
    } else if (iequals(name, "opaque")) {
      ch.opaque = std::move(text);
    } else if (iequals(name, "stale")) {
      ch.stale = iequals(text, "true");  // RFC 7616 §3.3: "anything other than true" is false
    } else if (iequals(name, "algorithm")) {
      auto algorithm = canonical_algorithm(text);
      if (!algorithm) return algorithm.error();
      ch.algorithm = std::move(*algorithm);
    } else if (iequals(name, "qop")) {
      const auto auth = offers_auth(text);
      if (!auth) return auth.error();
      if (!*auth) return errc::bad_digest_parameter;
      ch.qop = std::move(text);
      needs.found(&ch.qop);
    } else {
      ch.other.emplace_back(std::string(name), std::move(text));
    }
  }
  if (!needs.complete()) return errc::missing_digest_parameter;
  return ch;
}

// ---------------------------------------------------------------------------------------------
// credentials

std::string credentials::to_header_value() const {
  // RFC 7616 §3.4: username, realm, nonce, uri, response, cnonce and opaque quoted;
  // algorithm, qop and nc not.
  writer out("Digest ", ", ");
  out.quoted("username", username);
  out.quoted("realm", realm);
  out.quoted("nonce", nonce);
  if (!uri.empty()) out.quoted("uri", uri);
  out.token("algorithm", algorithm);
  out.token("qop", qop);
  out.token("nc", nc);
  out.quoted("cnonce", cnonce);
  out.quoted("response", response);
  if (!opaque.empty()) out.quoted("opaque", opaque);
  return out.take();
}

result<credentials> credentials::parse(std::string_view value) {
  auto params = read_digest_params(value);
  if (!params) return params.error();
  credentials c;
  c.algorithm = md5;  // RFC 7616 §3.3, as for the challenge
  required needs{&c.username, &c.realm, &c.nonce, &c.response, &c.cnonce, &c.qop, &c.nc};
  const auto take = [&needs](std::string& field, std::string& text) {
    field = std::move(text);
    needs.found(&field);
  };
  for (auto& [name, text] : *params) {
    if (iequals(name, "username")) {
      take(c.username, text);
    } else if (iequals(name, "realm")) {
      take(c.realm, text);
    } else if (iequals(name, "nonce")) {
      take(c.nonce, text);
    } else if (iequals(name, "uri")) {
      c.uri = std::move(text);
    } else if (iequals(name, "response")) {
      take(c.response, text);
    } else if (iequals(name, "algorithm")) {
      auto algorithm = canonical_algorithm(text);
      if (!algorithm) return algorithm.error();
      c.algorithm = std::move(*algorithm);
    } else if (iequals(name, "cnonce")) {
      take(c.cnonce, text);
    } else if (iequals(name, "opaque")) {
      c.opaque = std::move(text);
    } else if (iequals(name, "qop")) {
      // RFC 4976 §9.1: auth-int "makes no sense for MSRP"; a client may answer only with a qop
      // the challenge offered (RFC 7616 §3.4), and relays offer only auth.
      if (text != "auth") return errc::bad_digest_parameter;
      take(c.qop, text);
    } else if (iequals(name, "nc")) {
      if (!is_nc(text)) return errc::bad_digest_parameter;
      take(c.nc, text);
    } else if (iequals(name, "username*")) {
      return errc::bad_digest_parameter;  // RFC 7616 §3.4's RFC 5987 form: not supported
    }
  }
  if (!needs.complete()) return errc::missing_digest_parameter;
  // RFC 4976 §7: request-digest = DQUOTE 32LHEX DQUOTE, for MD5; 64 for SHA-256 (RFC 7616 §3.2).
  if (c.response.size() != digest_length(c.algorithm) || !is_lhex(c.response)) {
    return errc::bad_digest_parameter;
  }
  return c;
}

// ---------------------------------------------------------------------------------------------
// authentication_info

std::string authentication_info::to_header_value() const {
  // RFC 7616 §3.5: nextnonce, rspauth and cnonce quoted; qop and nc not. RFC 4976 §7:
  // ainfo *("," ainfo), without a space.
  writer out("", ",");
  if (!nextnonce.empty()) out.quoted("nextnonce", nextnonce);
  out.token("qop", qop);
  out.quoted("rspauth", rspauth);
  out.quoted("cnonce", cnonce);
  out.token("nc", nc);
  return out.take();
}

result<authentication_info> authentication_info::parse(std::string_view value) {
  auto params = read_params(trim(value));
  if (!params) return params.error();
  authentication_info info;
  required needs{&info.rspauth, &info.cnonce, &info.qop, &info.nc};
  const auto take = [&needs](std::string& field, std::string& text) {
    field = std::move(text);
    needs.found(&field);
  };
  for (auto& [name, text] : *params) {
    if (iequals(name, "nextnonce")) {
      info.nextnonce = std::move(text);
    } else if (iequals(name, "qop")) {
      if (text != "auth") return errc::bad_digest_parameter;
      take(info.qop, text);
    } else if (iequals(name, "rspauth")) {
      // RFC 4976 §7: response-digest = DQUOTE *LHEX DQUOTE; a digest is 32 or 64 of them.
      if ((text.size() != 32 && text.size() != 64) || !is_lhex(text)) {
        return errc::bad_digest_parameter;
      }
      take(info.rspauth, text);
    } else if (iequals(name, "cnonce")) {
      take(info.cnonce, text);
    } else if (iequals(name, "nc")) {
      if (!is_nc(text)) return errc::bad_digest_parameter;
      take(info.nc, text);
    }
  }
  if (!needs.complete()) return errc::missing_digest_parameter;
  return info;
}

// ---------------------------------------------------------------------------------------------
// Arithmetic

std::string ha1(const hasher& hash, std::string_view algorithm, std::string_view username,
                std::string_view realm, std::string_view password) {
  // RFC 7616 §3.4.2: A1 = unq(username) ":" unq(realm) ":" passwd
  assert(is_supported(algorithm));
  std::string a1;
  a1.reserve(username.size() + realm.size() + password.size() + 2);
  a1 += username;
  a1 += ':';
  a1 += realm;
  a1 += ':';
  a1 += password;
  return hash(algorithm, a1);
}

std::string response(const hasher& hash, const credentials& c, std::string_view ha1,
                     std::string_view method) {
  // RFC 7616 §3.4.3: A2 = Method ":" request-uri
  std::string a2(method);
  a2 += ':';
  a2 += c.uri;
  return keyed_digest(hash, c, ha1, a2);
}

std::string rspauth(const hasher& hash, const credentials& c, std::string_view ha1) {
  // RFC 7616 §3.5: with qop=auth, A2 = ":" request-uri
  return keyed_digest(hash, c, ha1, ":" + c.uri);
}

credentials answer(const hasher& hash, const challenge& ch, std::string_view username,
                   std::string_view password, std::string_view uri, std::string_view cnonce,
                   std::uint32_t nc) {
  assert(is_supported(ch.algorithm));
  assert(offers_auth(ch.qop) && *offers_auth(ch.qop));
  assert(nc >= 1);
  credentials c;
  c.username = username;
  c.realm = ch.realm;
  c.nonce = ch.nonce;
  c.uri = uri;
  c.algorithm = ch.algorithm;
  c.cnonce = cnonce;
  c.opaque = ch.opaque;
  c.qop = "auth";
  // RFC 7616 §3.4: nc is "the hexadecimal count"; RFC 4976 §7: nc-value = 8LHEX.
  constexpr std::string_view digits = "0123456789abcdef";
  c.nc.assign(8, '0');
  for (std::size_t i = 0; i < 8; ++i)
    c.nc[7 - i] = digits[(nc >> (4 * i)) & 0xFu];
  c.response = response(hash, c, ha1(hash, c.algorithm, username, c.realm, password), "AUTH");
  return c;
}

bool verify(const hasher& hash, const credentials& c, std::string_view ha1,
            std::string_view method) {
  const std::string expected = response(hash, c, ha1, method);
  if (expected.size() != c.response.size()) return false;
  // Every byte is compared whatever the earlier ones held: the time does not tell a peer how
  // much of its guess was right.
  unsigned char difference = 0;
  for (std::size_t i = 0; i < expected.size(); ++i)
    difference |= static_cast<unsigned char>(expected[i] ^ c.response[i]);
  return difference == 0;
}

}  // namespace msrp::digest
