// fuzz/fuzz_uri.cpp: feeds arbitrary bytes to msrp::uri::parse.
//
// Whatever parses must format to text that parses again into the same URI, part by part (not
// only equal by RFC 4975 §6.1, which ignores userinfo and parameters), and that formats to the
// same text again. Any violation aborts.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "msrp/uri.hpp"

namespace {

bool same_parts(const msrp::uri& a, const msrp::uri& b) {
  return a == b && a.is_secure() == b.is_secure() && a.userinfo() == b.userinfo() &&
         a.host() == b.host() && a.kind() == b.kind() && a.port() == b.port() &&
         a.session_id() == b.session_id() && a.transport() == b.transport() &&
         a.parameters() == b.parameters();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto first = msrp::uri::parse(text);
  if (!first) return 0;
  if (!(*first == *first)) std::abort();

  const std::string formatted = first->to_string();
  if (formatted.size() > text.size()) std::abort();  // formatting only drops port zeros
  const auto second = msrp::uri::parse(formatted);
  if (!second || !same_parts(*first, *second) || second->to_string() != formatted) std::abort();
  return 0;
}
