// Fuzzes the endpoint engine as a peer would: arbitrary bytes arrive on a connection, time
// moves, and whatever the engine writes back must parse as MSRP, read as its peer would, and
// what it offers to write at once stays within its output window (or one larger frame). The first
// input bytes pick the read size and the engine's limits; the rest is the byte stream. A session
// exists so that requests naming it reach the deeper code (the seeds use its URI, see below).
#include <algorithm>
#include <cstdint>
#include <random>
#include <string>

#include "msrp/endpoint.hpp"
#include "output_reader.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  std::mt19937_64 random(1);  // fixed: the seeds can name the session's URI
  msrp::endpoint::config config;
  config.whole_message_limit = 1 + data[0] * 64u;
  config.output_window = 256 + data[0] * 16u;
  msrp::endpoint engine(config, [&] { return random(); });
  msrp::session_settings settings;
  settings.host = "bob.example.com";
  settings.port = 8888;
  settings.max_size = data[1] & 1 ? std::optional<std::uint64_t>(4096) : std::nullopt;
  settings.accept_types = {"text/*", "message/cpim"};
  settings.accept_wrapped_types = {"text/plain"};
  engine.open_session(settings);
  const std::size_t read_size = 1 + (data[1] >> 1) * 3u;
  const std::string_view wire(reinterpret_cast<const char*>(data) + 2, size - 2);

  fuzz::output_reader peer;
  auto now = msrp::clock::time_point{};
  for (std::size_t at = 0; at < wire.size(); at += read_size) {
    engine.receive(1, wire.substr(at, read_size));
    now += std::chrono::seconds(1);
    engine.advance(now);
    // What the engine offers to write at once stays within its window, or is one frame (a
    // response echoes the request's paths: at most a head's 16 KiB and a little).
    fuzz::check(engine.output(1).size() <= std::max<std::size_t>(config.output_window, 32 * 1024));
    peer.take(engine, 1);
    while (engine.next_event()) {
    }
  }
  engine.close_connection(1);
  while (engine.next_event()) {
  }
  return 0;
}
