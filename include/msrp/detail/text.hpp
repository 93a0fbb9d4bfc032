// msrp/detail/text.hpp: character classes and small text helpers shared by the core.
// Not part of the API.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace msrp::detail {

constexpr bool is_digit(char c) noexcept {
  return c >= '0' && c <= '9';
}
constexpr bool is_alpha(char c) noexcept {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}
constexpr bool is_alphanum(char c) noexcept {
  return is_alpha(c) || is_digit(c);
}
constexpr char to_lower(char c) noexcept {
  return c >= 'A' && c <= 'Z' ? char(c + 32) : c;
}

/// RFC 4975 §9: token = 1*(%x21 / %x23-27 / %x2A-2B / %x2D-2E / %x30-39 / %x41-5A / %x5E-7E)
constexpr bool is_token_char(char c) noexcept {
  const auto u = static_cast<unsigned char>(c);
  return u == 0x21 || (u >= 0x23 && u <= 0x27) || u == 0x2A || u == 0x2B || u == 0x2D ||
         u == 0x2E || is_digit(c) || (u >= 0x41 && u <= 0x5A) || (u >= 0x5E && u <= 0x7E);
}

/// RFC 4975 §9: ident = ALPHANUM 3*31ident-char; ident-char = ALPHANUM / "." / "-" / "+" / "%" /
/// "="
constexpr bool is_ident(std::string_view s) noexcept {
  if (s.size() < 4 || s.size() > 32 || !is_alphanum(s.front())) return false;
  for (char c : s) {
    if (!is_alphanum(c) && c != '.' && c != '-' && c != '+' && c != '%' && c != '=') return false;
  }
  return true;
}

/// RFC 4975 §9: utf8text = *(HTAB / %x20-7E / UTF8-NONASCII). Control bytes and DEL are
/// refused; bytes of 0x80 and above are passed through unchecked.
constexpr bool is_text_char(char c) noexcept {
  const auto u = static_cast<unsigned char>(c);
  return u == '\t' || (u >= 0x20 && u != 0x7F);
}

/// ASCII case-insensitive equality, as header names and URI schemes compare.
constexpr bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (to_lower(a[i]) != to_lower(b[i])) return false;
  }
  return true;
}

/// `s` without leading and trailing spaces and tabs.
constexpr std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

/// Parses 1*DIGIT into an unsigned 64-bit number; empty on any other text or on overflow.
constexpr std::optional<std::uint64_t> parse_decimal(std::string_view s) noexcept {
  if (s.empty()) return std::nullopt;
  std::uint64_t value = 0;
  for (char c : s) {
    if (!is_digit(c)) return std::nullopt;
    const auto digit = static_cast<std::uint64_t>(c - '0');
    if (value > (UINT64_MAX - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
  }
  return value;
}

}  // namespace msrp::detail
