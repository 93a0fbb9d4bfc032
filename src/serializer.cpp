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
  const bool request = m.is_request();
  const bool body = has_body(m);
  std::size_t size =
      5 + m.transaction_id.size() + 1 + 2 + (body ? 2 : 0) +
      (request ? m.method.size() : 3 + (m.comment.empty() ? 0 : 1 + m.comment.size()));
  for (const auto& field : m.headers)
    size += field.name.size() + 2 + field.value.size() + 2;
  // Sized once, then written; grown geometrically, as `append` would, when `out` holds more.
  const auto at = out.size();
  if (out.capacity() < at + size) out.reserve(std::max(at + size, 2 * out.capacity()));
  out.resize(at + size);
  auto* next = out.data() + at;
  const auto put = [&next](std::string_view text) {
    next = std::copy(text.begin(), text.end(), next);
  };
  put("MSRP ");
  put(m.transaction_id);
  put(" ");
  if (request) {
    put(m.method);
  } else {
    const char code[] = {static_cast<char>('0' + m.status_code / 100 % 10),
                         static_cast<char>('0' + m.status_code / 10 % 10),
                         static_cast<char>('0' + m.status_code % 10)};
    put(std::string_view(code, sizeof code));
    if (!m.comment.empty()) {
      put(" ");
      put(m.comment);
    }
  }
  put("\r\n");
  for (const auto& field : m.headers) {
    put(field.name);
    put(": ");
    put(field.value);
    put("\r\n");
  }
  if (body) put("\r\n");
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
