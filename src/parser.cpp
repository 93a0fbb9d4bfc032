#include "msrp/parser.hpp"

#include <algorithm>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "msrp/detail/text.hpp"

namespace msrp {
namespace {

using detail::trim;

using detail::is_text_char;

constexpr std::string_view end_line_dashes = "-------";

/// How `text` compares with the end-line of transaction `id`: CRLF "-------" id flag CRLF
/// (RFC 4975 §7.1, §9), preceded by CRLF when `after_body`.
enum class match { none, partial, full };

match match_end_line(std::string_view text, std::string_view id, bool after_body) {
  const std::string_view lead = after_body ? "\r\n-------" : end_line_dashes;
  const std::size_t length = lead.size() + id.size() + 3;
  const std::size_t available = std::min(text.size(), length);
  for (std::size_t k = 0; k < available; ++k) {
    const char c = text[k];
    bool ok;
    if (k < lead.size()) {
      ok = c == lead[k];
    } else if (k < lead.size() + id.size()) {
      ok = c == id[k - lead.size()];
    } else if (k == lead.size() + id.size()) {
      ok = c == '$' || c == '+' || c == '#';
    } else {
      ok = c == (k + 2 == length ? '\r' : '\n');
    }
    if (!ok) return match::none;
  }
  return available == length ? match::full : match::partial;
}

/// The first position at or after `from` where the CRLF "-------" of an end-line could
/// start: a CR with a '-' two bytes later, or a CR too near the end of `text` to tell.
std::size_t scan_tail(std::string_view text, std::size_t from) {
  while (from < text.size()) {
    const void* found = std::memchr(text.data() + from, '\r', text.size() - from);
    if (!found) return std::string_view::npos;
    const auto at = static_cast<std::size_t>(static_cast<const char*>(found) - text.data());
    if (at + 2 >= text.size() || text[at + 2] == '-') return at;
    from = at + 1;
  }
  return std::string_view::npos;
}

#if defined(__x86_64__)
// A block test reads 64 + 2 bytes. Once whole blocks run out, the last bytes are tested by
// one block that overlaps the previous one; if it is clean only the final two bytes are left.
constexpr std::size_t block_reach = 64 + 2;

std::size_t scan_rest(std::string_view text, std::size_t from, bool last_block_clean) {
  if (last_block_clean && from + 2 < text.size()) from = text.size() - 2;
  return scan_tail(text, from);
}

// The same search 64 bytes per step, with SSE2 (every x86-64) or AVX2 (chosen at run time):
// a body is scanned at close to memory speed, since a CR two bytes before a '-' is rare.
std::size_t scan_sse2(std::string_view text, std::size_t from) {
  const auto carriage_return = _mm_set1_epi8('\r');
  const auto dash = _mm_set1_epi8('-');
  const auto block = [&](const char* p) {
    const auto a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const auto b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2));
    return _mm_and_si128(_mm_cmpeq_epi8(a, carriage_return), _mm_cmpeq_epi8(b, dash));
  };
  const auto hit = [&](const char* p) {
    const auto any = _mm_or_si128(_mm_or_si128(block(p), block(p + 16)),
                                  _mm_or_si128(block(p + 32), block(p + 48)));
    return _mm_movemask_epi8(any) != 0;
  };
  for (; from + block_reach <= text.size(); from += 64) {
    if (hit(text.data() + from)) return scan_tail(text, from);
  }
  return scan_rest(text, from,
                   text.size() >= block_reach && !hit(text.data() + text.size() - block_reach));
}

__attribute__((target("avx2"))) std::size_t scan_avx2(std::string_view text, std::size_t from) {
  const auto carriage_return = _mm256_set1_epi8('\r');
  const auto dash = _mm256_set1_epi8('-');
  const auto block = [&](const char* p) __attribute__((target("avx2"))) {
    const auto a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    const auto b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 2));
    return _mm256_and_si256(_mm256_cmpeq_epi8(a, carriage_return), _mm256_cmpeq_epi8(b, dash));
  };
  const auto hit = [&](const char* p) __attribute__((target("avx2"))) {
    return _mm256_movemask_epi8(_mm256_or_si256(block(p), block(p + 32))) != 0;
  };
  for (; from + block_reach <= text.size(); from += 64) {
    if (hit(text.data() + from)) return scan_tail(text, from);
  }
  return scan_rest(text, from,
                   text.size() >= block_reach && !hit(text.data() + text.size() - block_reach));
}

std::size_t next_end_line_candidate(std::string_view text, std::size_t from) {
  using scan = std::size_t (*)(std::string_view, std::size_t);
  static const scan best = __builtin_cpu_supports("avx2") ? scan_avx2 : scan_sse2;
  return best(text, from);
}
#else
std::size_t next_end_line_candidate(std::string_view text, std::size_t from) {
  return scan_tail(text, from);
}
#endif

// RFC 4975 §9: other-method = 1*UPALPHA
bool is_method(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
}

bool is_text(std::string_view s) {
  return std::all_of(s.begin(), s.end(), is_text_char);
}

// RFC 4975 §9: ext-header = hname ":" SP hval; hname = ALPHA *token
bool is_header_name(std::string_view s) {
  return !s.empty() && detail::is_alpha(s.front()) &&
         std::all_of(s.begin(), s.end(), detail::is_token_char);
}

}  // namespace

parser::event parser::parse(std::string_view input) {
  switch (state_) {
    case state::start_line: {
      const auto start = parse_start_line(input);
      if (state_ != state::headers) return start;
      auto rest = parse_headers(input.substr(start.consumed));
      rest.consumed += start.consumed;
      return rest;
    }
    case state::headers:
      return parse_headers(input);
    case state::body:
      return parse_body(input);
    case state::end_line:
      return parse_end_line(input);
    case state::failed:
      break;
  }
  return {.kind = event_kind::error, .error = error_};
}

std::size_t parser::find_line_end(std::string_view input, std::size_t from) {
  const auto at = std::min(input.size(), from + scanned_);
  const void* lf = std::memchr(input.data() + at, '\n', input.size() - at);
  return lf ? static_cast<std::size_t>(static_cast<const char*>(lf) - input.data())
            : std::string_view::npos;
}

parser::event parser::need_more(std::size_t consumed, std::size_t scanned) {
  scanned_ = scanned;
  offset_ += consumed;
  return {.kind = event_kind::need_more, .consumed = consumed};
}

parser::event parser::fail(std::error_code code, std::size_t at) {
  state_ = state::failed;
  error_ = code;
  error_offset_ = offset_ + at;
  head_.headers.resize(std::min(head_.headers.size(), header_count_));
  return {.kind = event_kind::error, .error = error_};
}

parser::event parser::parse_start_line(std::string_view input) {
  // RFC 4975 §9: req-start  = pMSRP SP transact-id SP method CRLF
  //              resp-start = pMSRP SP transact-id SP status-code [SP comment] CRLF
  constexpr std::string_view protocol = "MSRP ";
  if (!input.empty()) {
    // A new frame begins: what `head()` holds after a failure must be this frame's, not the
    // previous one's, or a peer would answer that transaction a second time (RFC 4975 §7.2).
    head_.transaction_id.clear();
    head_.method.clear();
    head_.status_code = 0;
    head_.comment.clear();
    header_count_ = 0;
  }
  const auto prefix = std::min(input.size(), protocol.size());
  if (input.substr(0, prefix) != protocol.substr(0, prefix)) return fail(errc::bad_start_line, 0);
  const auto lf = find_line_end(input, 0);
  if (lf == std::string_view::npos) {
    if (input.size() > limits_.max_head_size) return fail(errc::header_block_too_large, 0);
    return need_more(0, input.size());
  }
  if (lf + 1 > limits_.max_head_size) return fail(errc::header_block_too_large, 0);
  if (lf == 0 || input[lf - 1] != '\r') return fail(errc::bad_line_ending, lf);
  const auto line = input.substr(protocol.size(), lf - 1 - protocol.size());
  if (line.find('\r') != std::string_view::npos) return fail(errc::bad_line_ending, 0);

  const auto space = line.find(' ');
  const auto id = line.substr(0, space);
  head_.transaction_id.assign(id);
  seen_ = 0;
  head_size_ = lf + 1;
  scanned_ = 0;
  has_body_ = false;
  body_size_ = 0;
  if (!detail::is_ident(id)) return fail(errc::bad_transaction_id, protocol.size());
  if (space == std::string_view::npos) return fail(errc::bad_start_line, protocol.size());

  const auto rest = line.substr(space + 1);
  if (!rest.empty() && detail::is_digit(rest.front())) {
    // A response: three digits, then nothing or SP and a comment.
    const auto code = rest.substr(0, 3);
    if (code.size() != 3 || !std::all_of(code.begin(), code.end(), detail::is_digit) ||
        (rest.size() > 3 && rest[3] != ' ') ||
        !is_text(rest.substr(std::min<std::size_t>(4, rest.size())))) {
      return fail(errc::bad_status_code, protocol.size() + space + 1);
    }
    head_.status_code = (code[0] - '0') * 100 + (code[1] - '0') * 10 + (code[2] - '0');
    if (rest.size() > 4) head_.comment.assign(rest.substr(4));
  } else {
    if (!is_method(rest)) return fail(errc::bad_method, protocol.size() + space + 1);
    head_.method.assign(rest);
  }
  state_ = state::headers;
  offset_ += lf + 1;
  return {.kind = event_kind::need_more, .consumed = lf + 1};
}

bool parser::note_single_header(std::string_view name) {
  // Headers that say where a request goes, which message and which bytes it carries, and
  // whether it has a body may occur only once, or a relay and the endpoint behind it could
  // read different values.
  static constexpr std::string_view names[] = {"To-Path", "From-Path", "Message-ID", "Byte-Range",
                                               "Content-Type"};
  for (unsigned k = 0; k < std::size(names); ++k) {
    if (name != names[k] && !detail::iequals(name, names[k])) continue;
    const auto mask = 1u << k;
    if (seen_ & mask) return true;
    seen_ |= mask;
  }
  return false;
}

parser::event parser::parse_headers(std::string_view input) {
  std::size_t pos = 0;
  for (;;) {
    const auto lf = find_line_end(input, pos);
    if (lf == std::string_view::npos) {
      if (head_size_ + (input.size() - pos) > limits_.max_head_size) {
        return fail(errc::header_block_too_large, pos);
      }
      return need_more(pos, input.size() - pos);
    }
    scanned_ = 0;
    head_size_ += lf + 1 - pos;
    if (head_size_ > limits_.max_head_size) return fail(errc::header_block_too_large, pos);
    if (lf == pos || input[lf - 1] != '\r') return fail(errc::bad_line_ending, lf);
    const auto line = input.substr(pos, lf - 1 - pos);

    if (line.empty()) {
      // RFC 4975 §7.1: a body is separated from the headers by an extra CRLF, and a request
      // with a body MUST carry Content-Type. Responses never have bodies (§7.2).
      if (!head_.is_request()) return fail(errc::response_with_body, pos);
      has_body_ = true;
      // RFC 4975 §7.1: only SEND bodies may be large; other requests' are capped.
      body_limit_ = head_.method == "SEND" ? limits_.max_chunk_size : limits_.max_other_body_size;
      state_ = state::body;
      return head_complete(lf + 1);
    }
    if (line.starts_with(end_line_dashes)) {
      // A request without a body ends in its end-line right after the last header (§7.1).
      state_ = state::end_line;
      return head_complete(pos);
    }
    if (line.find('\r') != std::string_view::npos) return fail(errc::bad_line_ending, pos);
    const auto colon = line.find(':');
    if (colon == std::string_view::npos || !is_header_name(line.substr(0, colon))) {
      return fail(errc::bad_header, pos);
    }
    const auto value = trim(line.substr(colon + 1));
    if (!is_text(value)) return fail(errc::bad_header, pos);
    if (header_count_ == limits_.max_header_count) return fail(errc::too_many_headers, pos);
    // Reuse the strings of the previous frame's fields: no allocation in the steady state.
    if (header_count_ < head_.headers.size()) {
      head_.headers[header_count_].name.assign(line.substr(0, colon));
      head_.headers[header_count_].value.assign(value);
    } else {
      head_.headers.push_back({std::string(line.substr(0, colon)), std::string(value)});
    }
    ++header_count_;
    if (const auto duplicate = note_single_header(line.substr(0, colon)); duplicate) {
      return fail(errc::duplicate_header, pos);
    }
    pos = lf + 1;
  }
}

parser::event parser::head_complete(std::size_t consumed) {
  head_.headers.resize(header_count_);
  if (head_.is_request()) {
    // RFC 4975 §7.1: every request names its target and its sender.
    if (!(seen_ & bit(single::to_path))) return fail(errc::missing_to_path, 0);
    if (!(seen_ & bit(single::from_path))) return fail(errc::missing_from_path, 0);
    if ((seen_ & bit(single::byte_range)) && !head_.byte_range()) {
      return fail(errc::bad_byte_range, 0);
    }
  }
  if (has_body_ && !(seen_ & bit(single::content_type))) {
    return fail(errc::body_without_content_type, 0);
  }
  offset_ += consumed;
  return {.kind = event_kind::head, .consumed = consumed};
}

parser::event parser::parse_body(std::string_view input) {
  // The body ends at the first CRLF "-------" transaction-id flag CRLF (RFC 4975 §7.1).
  // Check each candidate position; hold back a candidate that the input cuts short, so that
  // a split end-line is recognised when its rest arrives.
  const std::string_view id = head_.transaction_id;
  std::size_t body_end = input.size();
  match found = match::none;
  for (auto at = next_end_line_candidate(input, 0); at != std::string_view::npos;
       at = next_end_line_candidate(input, at + 1)) {
    found = match_end_line(input.substr(at), id, true);
    if (found != match::none) {
      body_end = at;
      break;
    }
  }

  if (body_end > 0) {
    body_size_ += body_end;
    if (body_size_ > body_limit_) return fail(errc::body_too_large, 0);
    offset_ += body_end;
    return {.kind = event_kind::body, .consumed = body_end, .body = input.substr(0, body_end)};
  }
  if (found != match::full) return need_more(0, 0);
  const auto length = 9 + id.size() + 3;
  state_ = state::start_line;
  offset_ += length;
  return {.kind = event_kind::end,
          .consumed = length,
          .flag = static_cast<end_flag>(input[9 + id.size()])};
}

parser::event parser::parse_end_line(std::string_view input) {
  // RFC 4975 §9: end-line = "-------" transact-id continuation-flag CRLF
  const std::string_view id = head_.transaction_id;
  switch (match_end_line(input, id, false)) {
    case match::none:
      return fail(errc::bad_end_line, 0);
    case match::partial:
      return need_more(0, 0);
    case match::full:
      break;
  }
  const auto length = 7 + id.size() + 3;
  state_ = state::start_line;
  offset_ += length;
  return {.kind = event_kind::end,
          .consumed = length,
          .flag = static_cast<end_flag>(input[7 + id.size()])};
}

}  // namespace msrp
