#include "msrp/serializer.hpp"

#include <algorithm>
#include <cassert>

namespace msrp {
namespace {

// RFC 4975 §7.1: a request has a body exactly when it has a Content-Type; responses have none.
bool has_body(const message& m) {
  return m.is_request() && m.content_type();
}

}  // namespace

std::string serialize_head(const message& m) {
  std::string out;
  serialize_head(m, out);
  return out;
}

void serialize_head(const message& m, std::string& out) {
  // RFC 4975 §9: req-start / resp-start, then `hname ":" SP hval CRLF` for each field.
  std::size_t size = 5 + m.transaction_id.size() + 1 + m.method.size() + 4 + m.comment.size() + 4;
  for (const auto& field : m.headers)
    size += field.name.size() + 2 + field.value.size() + 2;
  // Grown once, and geometrically, as `append` would grow it, when `out` holds more frames.
  if (out.capacity() < out.size() + size)
    out.reserve(std::max(out.size() + size, 2 * out.capacity()));
  out += "MSRP ";
  out += m.transaction_id;
  out += ' ';
  if (m.is_request()) {
    out += m.method;
  } else {
    out += static_cast<char>('0' + m.status_code / 100 % 10);
    out += static_cast<char>('0' + m.status_code / 10 % 10);
    out += static_cast<char>('0' + m.status_code % 10);
    if (!m.comment.empty()) {
      out += ' ';
      out += m.comment;
    }
  }
  out += "\r\n";
  for (const auto& field : m.headers) {
    out += field.name;
    out += ": ";
    out += field.value;
    out += "\r\n";
  }
  if (has_body(m)) out += "\r\n";
}

std::string serialize_end(const message& m, end_flag flag) {
  std::string out;
  serialize_end(m, flag, out);
  return out;
}

void serialize_end(const message& m, end_flag flag, std::string& out) {
  // RFC 4975 §7.1: "If a body is present, the end-line MUST be preceded by a CRLF that is not
  // part of the body."
  out += has_body(m) ? "\r\n-------" : "-------";
  out += m.transaction_id;
  out += static_cast<char>(flag);
  out += "\r\n";
}

std::string frame::to_string() const {
  std::string out;
  out.reserve(head.size() + body.size() + end.size());
  out.append(head).append(body).append(end);
  return out;
}

frame serialize(const message& m, std::string_view body, end_flag flag) {
  assert(body.empty() || has_body(m));
  return {serialize_head(m), body, serialize_end(m, flag)};
}

bool contains_end_line(std::string_view body, std::string_view id) {
  for (auto at = body.find("-------"); at != std::string_view::npos;
       at = body.find("-------", at + 1)) {
    if (body.substr(at + 7, id.size()) == id) return true;
  }
  return false;
}

std::string make_ident(const random_source& random) {
  static constexpr std::string_view alphabet =
      "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  std::string id(16, '0');
  // Two draws of 64 bits, eight characters from each: 8 * log2(62) = 47.6 bits apiece.
  for (std::size_t half = 0; half < 2; ++half) {
    auto bits = random();
    for (std::size_t i = 0; i < 8; ++i) {
      id[half * 8 + i] = alphabet[bits % alphabet.size()];
      bits /= alphabet.size();
    }
  }
  return id;
}

std::string make_transaction_id(const random_source& random, std::string_view body) {
  auto id = make_ident(random);
  while (contains_end_line(body, id))
    id = make_ident(random);
  return id;
}

chunker::chunker(std::uint64_t total, std::uint64_t max_chunk)
    : total_(total), max_chunk_(max_chunk) {
  assert(max_chunk >= 1);
}

chunk chunker::next() const {
  assert(!done_);
  const auto length = std::min(max_chunk_, total_ - position_);
  byte_range range{.start = position_ + 1, .end = std::nullopt, .total = total_};
  // RFC 4975 §7.1.1: a chunk larger than 2048 octets MUST be interruptible, so its range-end
  // is "*"; a smaller one states its last byte ("1-0/0" for the empty message).
  if (length <= 2048) range.end = position_ + length;
  return {.offset = position_, .length = length, .range = range};
}

end_flag chunker::finish(std::uint64_t sent) {
  // Only a chunk declared with a "*" range-end may be cut short (§7.1.1).
  assert(!done_ && sent <= next().length && (!next().range.end || sent == next().length));
  position_ += sent;
  done_ = position_ == total_;
  return done_ ? end_flag::complete : end_flag::continued;
}

end_flag chunker::abort() {
  done_ = true;
  return end_flag::aborted;
}

}  // namespace msrp
