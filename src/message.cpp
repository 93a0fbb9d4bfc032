#include "msrp/message.hpp"

#include <algorithm>
#include <charconv>
#include <iterator>

#include "msrp/detail/text.hpp"

namespace msrp {

using detail::iequals;
using detail::parse_decimal;

result<byte_range> byte_range::parse(std::string_view value) {
  // RFC 4975 §9: range-start "-" range-end "/" total, with "*" allowed for end and total.
  const auto dash = value.find('-');
  const auto slash = value.find('/', dash == std::string_view::npos ? 0 : dash);
  if (dash == std::string_view::npos || slash == std::string_view::npos) {
    return errc::bad_byte_range;
  }
  const auto star_or_number =
      [](std::string_view s) -> std::optional<std::optional<std::uint64_t>> {
    if (s == "*") return std::optional<std::uint64_t>{};
    if (auto n = parse_decimal(s)) return n;
    return std::nullopt;
  };
  const auto start = parse_decimal(value.substr(0, dash));
  const auto end = star_or_number(value.substr(dash + 1, slash - dash - 1));
  const auto total = star_or_number(value.substr(slash + 1));
  if (!start || !end || !total || *start == 0) return errc::bad_byte_range;
  byte_range range{*start, *end, *total};
  // An end below start - 1 or past the total cannot describe any chunk; `1-0/0` is the
  // empty message (§7.1.1).
  // (Written without `+ 1` so that values up to 2^64 - 1 cannot wrap.)
  if (range.end && *range.end < range.start - 1) return errc::bad_byte_range;
  if (range.end && range.total && *range.end > *range.total) return errc::bad_byte_range;
  if (!range.end && range.total && range.start - 1 > *range.total) return errc::bad_byte_range;
  return range;
}

std::string byte_range::to_string() const {
  // No string per number: every forwarded chunk needs one of these.
  std::string text;
  const auto put = [&text](const std::optional<std::uint64_t>& n) {
    if (!n) return text.push_back('*');
    char digits[20];  // as many as UINT64_MAX has
    text.append(digits, std::to_chars(std::begin(digits), std::end(digits), *n).ptr);
  };
  put(start);
  text += '-';
  put(end);
  text += '/';
  put(total);
  return text;
}

std::optional<std::string_view> message::header(std::string_view name) const {
  for (const auto& field : headers) {
    if (iequals(field.name, name)) return field.value;
  }
  return std::nullopt;
}

std::vector<std::string_view> message::headers_named(std::string_view name) const {
  std::vector<std::string_view> values;
  for (const auto& field : headers) {
    if (iequals(field.name, name)) values.emplace_back(field.value);
  }
  return values;
}

void message::set_header(std::string_view name, std::string_view value) {
  for (auto& field : headers) {
    if (iequals(field.name, name)) {
      field.value = value;
      return;
    }
  }
  headers.push_back({std::string(name), std::string(value)});
}

void message::remove_header(std::string_view name) {
  std::erase_if(headers, [&](const header_field& field) { return iequals(field.name, name); });
}

result<std::vector<uri>> parse_path(std::string_view value) {
  // RFC 4975 §9: To-Path = "To-Path:" SP MSRP-URI *( SP MSRP-URI ), likewise From-Path and
  // (RFC 4976 §7) Use-Path.
  std::vector<uri> path;
  while (!value.empty()) {
    const auto space = value.find(' ');
    auto parsed = uri::parse(value.substr(0, space));
    if (!parsed) return parsed.error();
    path.push_back(std::move(*parsed));
    if (space == std::string_view::npos) break;
    value.remove_prefix(space + 1);
    if (value.empty()) return errc::bad_uri;  // a trailing space promises another URI
  }
  if (path.empty()) return errc::bad_uri;
  return path;
}

std::string format_path(const std::vector<uri>& path) {
  std::string text;
  for (const auto& hop : path) {
    if (!text.empty()) text += ' ';
    text += hop.to_string();
  }
  return text;
}

namespace {

result<std::vector<uri>> required_path(const message& m, std::string_view name, errc missing) {
  const auto value = m.header(name);
  if (!value) return missing;
  return parse_path(*value);
}

result<std::optional<std::uint32_t>> optional_seconds(const message& m, std::string_view name) {
  const auto value = m.header(name);
  if (!value) return std::optional<std::uint32_t>{};
  const auto seconds = parse_decimal(*value);
  if (!seconds || *seconds > UINT32_MAX) return errc::bad_number;
  return std::optional<std::uint32_t>{static_cast<std::uint32_t>(*seconds)};
}

result<report_mode> report_header(const message& m, std::string_view name, report_mode absent,
                                  bool partial_allowed) {
  const auto value = m.header(name);
  if (!value) return absent;
  if (*value == "yes") return report_mode::yes;
  if (*value == "no") return report_mode::no;
  if (partial_allowed && *value == "partial") return report_mode::partial;
  return errc::bad_report_value;
}

}  // namespace

result<std::vector<uri>> message::to_path() const {
  return required_path(*this, "To-Path", errc::missing_to_path);
}

result<std::vector<uri>> message::from_path() const {
  return required_path(*this, "From-Path", errc::missing_from_path);
}

result<std::vector<uri>> message::use_path() const {
  if (!header("Use-Path")) return std::vector<uri>{};
  return parse_path(*header("Use-Path"));
}

std::optional<std::string_view> message::message_id() const {
  return header("Message-ID");
}

result<msrp::byte_range> message::byte_range() const {
  const auto value = header("Byte-Range");
  if (!value) return msrp::byte_range{};
  return msrp::byte_range::parse(*value);
}

result<report_mode> message::success_report() const {
  // RFC 4975 §9: Success-Report = "Success-Report:" SP ("yes" / "no")
  return report_header(*this, "Success-Report", report_mode::no, false);
}

result<report_mode> message::failure_report() const {
  // RFC 4975 §9: Failure-Report = "Failure-Report:" SP ("yes" / "no" / "partial")
  return report_header(*this, "Failure-Report", report_mode::yes, true);
}

result<std::optional<msrp::status>> message::status() const {
  // RFC 4975 §9: Status = "Status:" SP namespace SP status-code [SP comment]
  const auto value = header("Status");
  if (!value) return std::optional<msrp::status>{};
  const auto is_three_digits = [](std::string_view s) {
    return s.size() == 3 && std::all_of(s.begin(), s.end(), detail::is_digit);
  };
  const std::string_view text = *value;
  if (text.size() < 7 || text[3] != ' ' || !is_three_digits(text.substr(0, 3)) ||
      !is_three_digits(text.substr(4, 3)) || (text.size() > 7 && text[7] != ' ')) {
    return errc::bad_status_header;
  }
  msrp::status parsed{static_cast<int>(*parse_decimal(text.substr(0, 3))),
                      static_cast<int>(*parse_decimal(text.substr(4, 3))),
                      std::string(text.size() > 8 ? text.substr(8) : std::string_view{})};
  return std::optional<msrp::status>{std::move(parsed)};
}

std::optional<std::string_view> message::content_type() const {
  return header("Content-Type");
}

result<std::optional<std::uint32_t>> message::expires() const {
  return optional_seconds(*this, "Expires");
}

result<std::optional<std::uint32_t>> message::min_expires() const {
  return optional_seconds(*this, "Min-Expires");
}

result<std::optional<std::uint32_t>> message::max_expires() const {
  return optional_seconds(*this, "Max-Expires");
}

std::vector<std::string_view> message::www_authenticate() const {
  return headers_named("WWW-Authenticate");
}

std::optional<std::string_view> message::authorization() const {
  return header("Authorization");
}

std::optional<std::string_view> message::authentication_info() const {
  return header("Authentication-Info");
}

}  // namespace msrp
