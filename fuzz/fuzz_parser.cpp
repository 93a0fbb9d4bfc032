// Fuzzes the incremental parser. The first input byte picks the read size and the limits;
// the rest is the byte stream. Checks: no crash or sanitizer report, `consumed` never exceeds
// the input, errors stick, the caller never has to hold more than one head or end-line, and
// every complete frame serializes to bytes that parse back to the same frame.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "msrp/parser.hpp"
#include "msrp/serializer.hpp"

namespace {

void check(bool condition) {
  if (!condition) std::abort();
}

struct frame {
  msrp::message head;
  std::string body;
  msrp::end_flag flag = msrp::end_flag::complete;
  bool ended = false;
};

/// Parses `wire` fed in pieces of `read_size`; returns the complete frames.
std::vector<frame> parse_all(std::string_view wire, std::size_t read_size,
                             const msrp::parser::limits& limits, bool* failed) {
  msrp::parser parser(limits);
  std::vector<frame> frames;
  std::string buffer;
  bool have_frame = false;
  for (std::size_t at = 0; at < wire.size() && !*failed; at += read_size) {
    buffer.append(wire.substr(at, read_size));
    for (;;) {
      const auto e = parser.parse(buffer);
      check(e.consumed <= buffer.size());
      using kind = msrp::parser::event_kind;
      if (e.kind == kind::error) {
        check(parser.parse(buffer).error == e.error && parser.parse("").consumed == 0);
        *failed = true;
        break;
      }
      if (e.kind == kind::head) {
        frames.push_back({parser.head(), {}, {}, false});
        have_frame = true;
      }
      if (e.kind == kind::body) {
        check(have_frame && e.body.data() == buffer.data() && e.body.size() == e.consumed);
        frames.back().body.append(e.body);
      }
      if (e.kind == kind::end) {
        frames.back().flag = e.flag;
        frames.back().ended = true;
      }
      buffer.erase(0, e.consumed);
      if (e.kind == kind::need_more && e.consumed == 0) break;
    }
    // What the caller must keep: at most a partial head (within the limit) or end-line.
    check(buffer.size() <= limits.max_head_size + read_size + 64);
  }
  if (!frames.empty() && !frames.back().ended) frames.pop_back();
  return frames;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const auto options = data[0];
  const std::string_view wire(reinterpret_cast<const char*>(data) + 1, size - 1);
  msrp::parser::limits limits;
  limits.max_head_size = (options & 0x80) ? 256 : 16 * 1024;
  limits.max_header_count = (options & 0x40) ? 4 : 64;
  const std::size_t read_size = 1 + (options & 0x3F) * 7;

  bool failed = false;
  const auto frames = parse_all(wire, read_size, limits, &failed);

  // Every complete frame serializes to bytes that parse back to the same frame.
  msrp::parser::limits roomy = limits;
  roomy.max_head_size = 1 << 20;
  for (const auto& f : frames) {
    const auto wire_again = msrp::serialize(f.head, f.body, f.flag).to_string();
    bool failed_again = false;
    const auto again = parse_all(wire_again, wire_again.size(), roomy, &failed_again);
    check(!failed_again && again.size() == 1);
    const auto& a = again[0].head;
    check(a.transaction_id == f.head.transaction_id && a.method == f.head.method &&
          a.status_code == f.head.status_code && a.comment == f.head.comment &&
          a.headers == f.head.headers && again[0].body == f.body && again[0].flag == f.flag);
  }
  return 0;
}
