// tests/endpoint_pair.hpp: two endpoints wired back to back in memory (h11's ConnectionPair).
//
// Alice and Bob each hold one endpoint, one session and one connection, id 1 on both sides.
// Alice is the active side: she binds her session to connection 1. Bob is passive: his
// session binds when Alice's first request arrives. Time is a fake clock the test advances;
// random numbers come from seeded generators, so every run can be replayed.
//
// `pump()` moves each side's output to the other side until neither has anything to move,
// draining both sides' events after every step. Each direction can deliver, drop (the bytes
// leave the sender and are lost, as on a dead path) or hold (the sender's output stays put,
// as behind a stalled reader). Everything a side writes is parsed again into a `wire_log`, so
// tests can check the frames on the wire.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "msrp/endpoint.hpp"
#include "msrp/parser.hpp"

namespace msrp::test {

/// The frames one side wrote, parsed back as the reader of its connection would.
class wire_log {
 public:
  struct frame {
    message head;
    bool has_body = false;        ///< The head announced a body (Content-Type present).
    std::string body;             ///< The body, when the log keeps bodies.
    std::uint64_t body_size = 0;  ///< Body bytes seen, kept or not.
    end_flag flag = end_flag::complete;
    bool ended = false;       ///< The end-line has been seen.
    std::uint64_t begin = 0;  ///< Stream offset of the start line.
    std::uint64_t end = 0;    ///< Stream offset just past the end-line.
  };

  explicit wire_log(bool keep_bodies = true, parser::limits limits = {})
      : keep_bodies_(keep_bodies), parser_(limits) {}

  /// Parses the next bytes the side wrote.
  void feed(std::string_view bytes) {
    size_ += bytes.size();
    buffer_.append(bytes);
    std::string_view rest = buffer_;
    while (!error_) {
      const auto e = parser_.parse(rest);
      switch (e.kind) {
        case parser::event_kind::need_more:
          break;
        case parser::event_kind::head:
          frames_.push_back({});
          frames_.back().head = parser_.head();
          frames_.back().has_body = parser_.has_body();
          frames_.back().begin = frame_begin_;
          break;
        case parser::event_kind::body:
          frames_.back().body_size += e.body.size();
          if (keep_bodies_) frames_.back().body.append(e.body);
          break;
        case parser::event_kind::end:
          frames_.back().flag = e.flag;
          frames_.back().ended = true;
          frames_.back().end = consumed_ + e.consumed;
          frame_begin_ = frames_.back().end;
          break;
        case parser::event_kind::error:
          error_ = e.error;
          break;
      }
      rest.remove_prefix(e.consumed);
      consumed_ += e.consumed;
      if (e.kind == parser::event_kind::need_more && e.consumed == 0) break;
    }
    buffer_.erase(0, buffer_.size() - rest.size());
  }

  const std::vector<frame>& frames() const noexcept { return frames_; }
  /// Bytes written so far: the stream offset of the next byte.
  std::uint64_t size() const noexcept { return size_; }
  /// The parse error, if the side ever wrote malformed bytes.
  std::error_code error() const noexcept { return error_; }

 private:
  bool keep_bodies_;
  parser parser_;
  std::string buffer_;
  std::uint64_t size_ = 0;
  std::uint64_t consumed_ = 0;
  std::uint64_t frame_begin_ = 0;
  std::error_code error_;
  std::vector<frame> frames_;
};

enum class side { alice, bob };

inline side other(side s) {
  return s == side::alice ? side::bob : side::alice;
}

/// What happens to the bytes one side writes.
enum class link {
  deliver,  ///< They reach the other side.
  drop,     ///< They leave the sender and are lost.
  hold,     ///< They stay in the sender's output.
};

/// Session settings for `host`:`port`.
inline session_settings settings_for(std::string host, std::uint16_t port, bool secure = false) {
  session_settings s;
  s.host = std::move(host);
  s.port = port;
  s.secure = secure;
  return s;
}

struct pair_options {
  std::uint64_t seed = 1;
  endpoint::config alice_config;
  endpoint::config bob_config;
  session_settings alice_settings = settings_for("alice.example.com", 7777);
  session_settings bob_settings = settings_for("bob.example.com", 8888);
  /// Reads of random size (mostly whole, sometimes a part, now and then a few bytes),
  /// rather than all the output at once.
  bool random_reads = false;
  /// Whether the wire logs keep frame bodies (off for very large transfers).
  bool keep_bodies = true;
  /// Whether events are stored in `alice_events` / `bob_events` (they go to `on_event`
  /// either way).
  bool keep_events = true;
  /// Whether every `output()` view is checked against `output_window` as it is read
  /// (`max_output` records the largest either way).
  bool check_window = true;
};

class pair {
 public:
  static constexpr connection_id connection = 1;

  explicit pair(pair_options options = {})
      : options_(std::move(options)),
        alice_random_(options_.seed * 2 + 1),
        bob_random_(options_.seed * 2 + 2),
        read_random_(options_.seed ^ 0x5eed5eed5eed5eedULL),
        alice_(options_.alice_config, [this] { return alice_random_(); }),
        bob_(options_.bob_config, [this] { return bob_random_(); }),
        alice_wire_(options_.keep_bodies),
        bob_wire_(options_.keep_bodies) {
    alice_session = alice_.open_session(options_.alice_settings);
    bob_session = bob_.open_session(options_.bob_settings);
    alice_.set_remote_path(alice_session, {bob_.local_uri(bob_session)});
    bob_.set_remote_path(bob_session, {alice_.local_uri(alice_session)});
    alice_.advance(now);
    bob_.advance(now);
    alice_.bind(alice_session, connection);  // Alice is the active side (§5.4).
  }
  pair(const pair&) = delete;
  pair& operator=(const pair&) = delete;

  endpoint& alice() { return alice_; }
  endpoint& bob() { return bob_; }
  endpoint& of(side s) { return s == side::alice ? alice_ : bob_; }
  session_handle session_of(side s) const { return s == side::alice ? alice_session : bob_session; }
  std::vector<event>& events_of(side s) { return s == side::alice ? alice_events : bob_events; }
  /// What `s` has written to its connection (delivered or not).
  const wire_log& wire(side s) const { return s == side::alice ? alice_wire_ : bob_wire_; }
  link& link_from(side s) { return s == side::alice ? alice_to_bob : bob_to_alice; }
  const endpoint::config& config_of(side s) const {
    return s == side::alice ? options_.alice_config : options_.bob_config;
  }
  /// The largest view `output()` returned on `s`.
  std::size_t max_output(side s) const {
    return s == side::alice ? alice_max_output_ : bob_max_output_;
  }

  /// Moves output both ways until neither side has anything to move. `limit` caps the bytes
  /// moved in each direction by this call: a slow reader.
  void pump(std::size_t limit = std::numeric_limits<std::size_t>::max()) {
    std::size_t moved_ab = 0;
    std::size_t moved_ba = 0;
    drain();
    for (std::uint64_t steps = 0;; ++steps) {
      if (steps > 100'000'000) {
        ADD_FAILURE() << "pump() never went quiet";
        return;
      }
      const auto ab = move(side::alice, limit - moved_ab);
      moved_ab += ab;
      const auto ba = move(side::bob, limit - moved_ba);
      moved_ba += ba;
      if (ab == 0 && ba == 0) return;
    }
  }

  /// One read of at most `limit` bytes from `from`'s output; returns the bytes moved.
  std::size_t move(side from, std::size_t limit) {
    if (closed_ || limit == 0) return 0;
    auto& sender = of(from);
    const auto out = sender.output(connection);
    auto& max = from == side::alice ? alice_max_output_ : bob_max_output_;
    max = std::max(max, out.size());
    if (options_.check_window) {
      EXPECT_LE(out.size(), config_of(from).output_window) << "output() exceeds output_window";
    }
    if (out.empty() || link_from(from) == link::hold) return 0;
    auto n = std::min(read_size(out.size()), limit);
    const auto bytes = out.substr(0, n);
    (from == side::alice ? alice_wire_ : bob_wire_).feed(bytes);
    if (link_from(from) == link::deliver) of(other(from)).receive(connection, bytes);
    sender.consume_output(connection, n);
    drain();
    return n;
  }

  /// Collects both sides' events.
  void drain() {
    for (const auto s : {side::alice, side::bob}) {
      while (auto e = of(s).next_event()) {
        if (on_event) on_event(s, *e);
        if (options_.keep_events) events_of(s).push_back(std::move(*e));
      }
    }
  }

  /// Moves the clock forward by `d` on both sides.
  void advance(clock::duration d) { advance_to(now + d); }
  void advance_to(clock::time_point t) {
    now = t;
    alice_.advance(now);
    bob_.advance(now);
    drain();
    // advance() runs what is due, so nothing may be left due now.
    for (const auto s : {side::alice, side::bob}) {
      const auto deadline = of(s).next_deadline();
      EXPECT_TRUE(!deadline || *deadline > now) << "a deadline was left due after advance()";
    }
  }
  /// The earlier of the two sides' deadlines.
  std::optional<clock::time_point> next_deadline() const {
    auto a = alice_.next_deadline();
    auto b = bob_.next_deadline();
    if (!a) return b;
    if (!b) return a;
    return std::min(*a, *b);
  }
  /// Pumps and runs timers until nothing is left to do: what an event loop does.
  void settle(int max_rounds = 100'000) {
    for (int round = 0; round < max_rounds; ++round) {
      pump();
      const auto deadline = next_deadline();
      if (!deadline) return;
      if (*deadline <= now) {
        ADD_FAILURE() << "next_deadline() is not in the future";
        return;
      }
      advance_to(*deadline);
    }
    ADD_FAILURE() << "settle() never went quiet";
  }

  /// The connection breaks: both sides learn of it.
  void close() {
    closed_ = true;
    alice_.close_connection(connection);
    bob_.close_connection(connection);
    drain();
  }
  bool closed() const noexcept { return closed_; }

  session_handle alice_session = 0;
  session_handle bob_session = 0;
  std::vector<event> alice_events;
  std::vector<event> bob_events;
  link alice_to_bob = link::deliver;
  link bob_to_alice = link::deliver;
  clock::time_point now = clock::time_point{} + std::chrono::hours(1);
  /// Sees every event as it is drained.
  std::function<void(side, const event&)> on_event;

 private:
  std::size_t read_size(std::size_t available) {
    if (!options_.random_reads || available <= 1) return available;
    const auto pick = read_random_() % 100;
    if (pick < 80) return available;
    if (pick < 95) return 1 + read_random_() % available;
    return 1 + read_random_() % std::min<std::size_t>(available, 64);
  }

  pair_options options_;
  std::mt19937_64 alice_random_;
  std::mt19937_64 bob_random_;
  std::mt19937_64 read_random_;
  endpoint alice_;
  endpoint bob_;
  wire_log alice_wire_;
  wire_log bob_wire_;
  std::size_t alice_max_output_ = 0;
  std::size_t bob_max_output_ = 0;
  bool closed_ = false;
};

}  // namespace msrp::test
