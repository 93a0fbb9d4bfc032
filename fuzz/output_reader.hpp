// What an engine (msrp::endpoint or msrp::relay) writes to one connection, read across calls
// as its peer would: every byte must parse as MSRP, whatever the input was.
#pragma once

#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "msrp/message.hpp"
#include "msrp/parser.hpp"

namespace fuzz {

inline void check(bool condition) {
  if (!condition) std::abort();
}

struct output_reader {
  msrp::parser wire;
  std::string held;  // the start of a frame whose rest has not been written yet

  /// Takes all the output of `id`; returns the heads of the frames it completed or began.
  template <class Engine, class Id>
  std::vector<msrp::message> take(Engine& engine, Id id) {
    std::vector<msrp::message> heads;
    for (auto out = engine.output(id); !out.empty(); out = engine.output(id)) {
      held.append(out);
      engine.consume_output(id, out.size());
      std::string_view rest = held;
      for (;;) {
        const auto e = wire.parse(rest);
        check(e.kind != msrp::parser::event_kind::error);
        rest.remove_prefix(e.consumed);
        if (e.kind == msrp::parser::event_kind::head) heads.push_back(wire.head());
        if (e.kind == msrp::parser::event_kind::need_more && e.consumed == 0) break;
      }
      held = std::string(rest);
    }
    return heads;
  }
};

}  // namespace fuzz
