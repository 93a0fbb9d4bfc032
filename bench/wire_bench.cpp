// Micro-benchmarks of the wire core: parsing small SENDs, scanning bodies (whole and in
// 1,500-byte reads) against memchr as the ceiling, and serializing small SENDs.
// Run: build/release/bench/wire_bench   (figures in docs/benchmarks.md)
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <cstring>
#include <random>
#include <string>

#include "msrp/parser.hpp"
#include "msrp/serializer.hpp"

namespace {

msrp::message small_send() {
  msrp::message m;
  m.transaction_id = "d93kswow";
  m.method = "SEND";
  m.headers = {{"To-Path", "msrp://bob.example.com:8888/9di4eae923wzd;tcp"},
               {"From-Path", "msrp://alicepc.example.com:7777/iau39soe2843z;tcp"},
               {"Message-ID", "12339sdqwer"},
               {"Byte-Range", "1-100/100"},
               {"Content-Type", "text/plain"}};
  return m;
}

/// Random bytes without any NUL, so memchr for NUL scans them all.
std::string random_body(std::size_t size) {
  std::mt19937_64 random(42);
  std::string body(size, '\0');
  for (auto& c : body)
    c = static_cast<char>(1 + random() % 255);
  return body;
}

/// Parses every frame in `wire`, fed in reads of `read_size` bytes the way a reader does.
/// The unconsumed bytes stay contiguous in `wire`, so no copy is measured.
std::size_t parse_stream(msrp::parser& parser, std::string_view wire, std::size_t read_size) {
  std::size_t events = 0;
  std::size_t begin = 0;
  std::size_t end = std::min(read_size, wire.size());
  for (;;) {
    if (begin == end) {  // an empty buffer: a reader reads before it parses again
      if (end == wire.size()) break;
      end = std::min(end + read_size, wire.size());
    }
    const auto e = parser.parse(wire.substr(begin, end - begin));
    ++events;
    begin += e.consumed;
    if (e.kind == msrp::parser::event_kind::error) std::abort();
    if (e.kind == msrp::parser::event_kind::need_more && e.consumed == 0) {
      if (end == wire.size()) break;
      end = std::min(end + read_size, wire.size());
    }
  }
  return events;
}

void ParseSmallSend(benchmark::State& state) {
  const auto frame = msrp::serialize(small_send(), std::string(100, 'x')).to_string();
  std::string wire;
  for (int i = 0; i < 1000; ++i)
    wire += frame;
  msrp::parser parser;
  for (auto _ : state) {
    benchmark::DoNotOptimize(parse_stream(parser, wire, wire.size()));
  }
  state.SetItemsProcessed(state.iterations() * 1000);
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(wire.size()));
}
BENCHMARK(ParseSmallSend);

void ScanBody(benchmark::State& state) {
  const auto body_size = static_cast<std::size_t>(state.range(0));
  const auto read_size = state.range(1) ? static_cast<std::size_t>(state.range(1)) : SIZE_MAX;
  const auto body = random_body(body_size);
  auto m = small_send();
  m.set_header("Byte-Range", "1-*/*");
  const auto wire = msrp::serialize(m, body).to_string();
  msrp::parser parser;
  for (auto _ : state) {
    benchmark::DoNotOptimize(parse_stream(parser, wire, std::min(read_size, wire.size())));
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(body_size));
}
BENCHMARK(ScanBody)
    ->ArgNames({"body", "read"})
    ->Args({64 << 10, 0})
    ->Args({64 << 10, 1500})
    ->Args({1 << 20, 0})
    ->Args({1 << 20, 1500});

void Memchr(benchmark::State& state) {
  const auto body_size = static_cast<std::size_t>(state.range(0));
  const auto read_size = state.range(1) ? static_cast<std::size_t>(state.range(1)) : body_size;
  const auto body = random_body(body_size);
  for (auto _ : state) {
    for (std::size_t at = 0; at < body.size(); at += read_size) {
      benchmark::DoNotOptimize(
          std::memchr(body.data() + at, 0, std::min(read_size, body.size() - at)));
    }
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(body_size));
}
BENCHMARK(Memchr)
    ->ArgNames({"body", "read"})
    ->Args({64 << 10, 0})
    ->Args({64 << 10, 1500})
    ->Args({1 << 20, 0})
    ->Args({1 << 20, 1500});

void SerializeSmallSend(benchmark::State& state) {
  const auto m = small_send();
  const std::string body(100, 'x');
  for (auto _ : state) {
    auto frame = msrp::serialize(m, body);
    benchmark::DoNotOptimize(frame.head.data());
    benchmark::DoNotOptimize(frame.end.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(SerializeSmallSend);

}  // namespace
