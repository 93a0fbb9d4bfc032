// Engine-to-engine benchmarks: two endpoints wired back to back in memory, no sockets.
// Run: build/release/bench/endpoint_bench   (figures in docs/benchmarks.md)
#include <benchmark/benchmark.h>

#include <random>

#include "msrp/endpoint.hpp"

namespace {

/// Alice and Bob, one session each, over connection 1.
struct pair {
  std::mt19937_64 alice_random{1};
  std::mt19937_64 bob_random{2};
  msrp::endpoint alice;
  msrp::endpoint bob;
  msrp::session_handle alice_session;
  msrp::session_handle bob_session;

  explicit pair(msrp::endpoint::config config)
      : alice(config, [this] { return alice_random(); }),
        bob(config, [this] { return bob_random(); }),
        alice_session(alice.open_session({.host = "alice.example.com", .port = 7777})),
        bob_session(bob.open_session({.host = "bob.example.com", .port = 8888})) {
    alice.set_remote_path(alice_session, {bob.local_uri(bob_session)});
    bob.set_remote_path(bob_session, {alice.local_uri(alice_session)});
    alice.bind(alice_session, 1);
  }

  /// Moves bytes both ways until neither side has output; returns events seen by each.
  std::size_t pump() {
    std::size_t events = 0;
    for (bool moved = true; moved;) {
      moved = false;
      if (const auto out = alice.output(1); !out.empty()) {
        bob.receive(1, out);
        alice.consume_output(1, out.size());
        moved = true;
      }
      if (const auto out = bob.output(1); !out.empty()) {
        alice.receive(1, out);
        bob.consume_output(1, out.size());
        moved = true;
      }
      while (alice.next_event())
        ++events;
      while (bob.next_event())
        ++events;
    }
    return events;
  }
};

/// A body of `size` bytes that costs nothing to produce.
msrp::outgoing_message zeros(std::uint64_t size) {
  msrp::outgoing_message m;
  m.content_type = "application/octet-stream";
  m.size = size;
  m.read = [size](std::uint64_t offset, std::span<char> into) -> msrp::result<std::size_t> {
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(into.size(), size - offset));
    std::fill_n(into.data(), n, 'z');
    return n;
  };
  return m;
}

void Transfer1GiB(benchmark::State& state) {
  constexpr std::uint64_t size = 1ull << 30;
  msrp::endpoint::config config;
  config.output_window = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) {
    pair p(config);
    p.alice.send(p.alice_session, zeros(size));
    benchmark::DoNotOptimize(p.pump());
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(size));
}
BENCHMARK(Transfer1GiB)
    ->ArgName("window")
    ->Arg(64 << 10)
    ->Arg(1 << 20)
    ->Unit(benchmark::kMillisecond);

void SmallMessages(benchmark::State& state) {
  constexpr int batch = 1000;
  pair p({});
  for (auto _ : state) {
    for (int i = 0; i < batch; ++i) {
      p.alice.send(p.alice_session,
                   msrp::outgoing_message::text("text/plain", std::string(100, 'm')));
    }
    benchmark::DoNotOptimize(p.pump());
  }
  state.SetItemsProcessed(state.iterations() * batch);
}
BENCHMARK(SmallMessages);

}  // namespace
