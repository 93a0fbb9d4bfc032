// Fuzzes the relay engine as its clients would: Alice and Bob have authenticated (their
// Use-Path URIs are fixed by the seeded random source, so seeds can name them), and arbitrary
// bytes arrive from Alice, or from a stranger, in reads of a chosen size while time moves and
// Bob reads or stalls. Checked: no crash; what the relay writes to anyone parses as MSRP; and
// Bob's queue stays bounded while the relay is only fed as `wants_input` allows.
//
// Input: byte 0 picks the read size, byte 1 the flags (bit 0: the bytes come from the
// stranger; bit 1: Bob stalls; bit 2: time moves 10 s per read; bit 3: Bob's connection
// drops half-way; bit 4: the credential store is unavailable); the rest is the byte stream.
//
// The Use-Paths are fixed by the seed; `MSRP_FUZZ_PATHS=1 fuzz_relay SEED` prints them.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <string>

#include "msrp/relay.hpp"
#include "output_reader.hpp"

namespace {

using namespace msrp;
using fuzz::check;

std::string fake_hash(std::string_view algorithm, std::string_view data) {
  const auto h = std::hash<std::string_view>{}(data) ^ std::hash<std::string_view>{}(algorithm);
  std::string hex(algorithm == digest::md5 ? 32 : 64, '0');
  for (std::size_t i = 0; i < 16; ++i)
    hex[i] = "0123456789abcdef"[(h >> (4 * i)) & 15];
  return hex;
}

constexpr connection_id alice = 1, bob = 2, stranger = 3;

struct world {
  std::mt19937_64 random{1};
  relay core;
  std::map<connection_id, fuzz::output_reader> readers;

  static relay::config settings() {
    relay::config c;
    c.host = "relay.example.com";
    c.realm = "relay.example.com";
    c.output_window = 16 * 1024;
    return c;
  }

  // How the credential store answers lookups after the setup (flag bit 4: unavailable).
  lookup_outcome store = lookup_outcome::found;

  world()
      : core(
            settings(), [this] { return random(); }, fake_hash) {
    core.listening(2855);
    for (const auto id : {alice, bob, stranger})
      core.accept(id, {.secure = true, .local_port = 2855});
    authenticate(alice, "msrps://alice.example.com:1/a;tcp");
    authenticate(bob, "msrps://bob.example.com:1/b;tcp");
  }

  void authenticate(connection_id id, const std::string& client) {
    const auto auth = [&](const std::string& extra) {
      core.receive(id, "MSRP auth" + std::to_string(id) +
                           " AUTH\r\nTo-Path: msrps://relay.example.com:2855;tcp\r\n"
                           "From-Path: " +
                           client + "\r\n" + extra + "-------auth" + std::to_string(id) + "$\r\n");
      take_actions();
      return readers[id].take(core, id);
    };
    const auto challenged = auth("");
    check(challenged.size() == 1);
    const auto ch = digest::challenge::parse(challenged[0].www_authenticate().at(0));
    check(ch.has_value());
    const auto answer = digest::answer(fake_hash, *ch, "user", "secret",
                                       "msrps://relay.example.com:2855;tcp", "cn", 1);
    const auto granted = auth("Authorization: " + answer.to_header_value() + "\r\n");
    check(granted.size() == 1 && granted[0].status_code == 200);
    // MSRP_FUZZ_PATHS=1 prints the Use-Paths, for writing seeds.
    if (std::getenv("MSRP_FUZZ_PATHS")) {
      std::printf("%s: %s\n", client.c_str(), std::string(*granted[0].header("Use-Path")).c_str());
    }
  }

  /// Takes the relay's actions; the store answers every lookup at once, as `store` says.
  void take_actions() {
    while (auto action = core.next_action()) {
      const auto* query = std::get_if<relay_actions::lookup>(&*action);
      if (!query) continue;
      credential_answer answer{store, {}};
      if (store == lookup_outcome::found) {
        answer.ha1 =
            digest::ha1(fake_hash, query->algorithm, query->username, query->realm, "secret");
      }
      core.credentials(query->ticket, answer);
    }
  }

  void drain(connection_id id) {
    readers[id].take(core, id);
    take_actions();
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  world w;
  const std::size_t read_size = 1 + data[0] * 7u;
  const auto from = data[1] & 1 ? stranger : alice;
  const bool bob_stalls = data[1] & 2;
  const bool time_moves = data[1] & 4;
  const bool bob_drops = data[1] & 8;
  if (data[1] & 16) w.store = lookup_outcome::unavailable;
  const std::string_view stream(reinterpret_cast<const char*>(data) + 2, size - 2);

  auto now = clock::time_point{};
  bool dropped = false;
  for (std::size_t at = 0; at < stream.size();) {
    if (!w.core.wants_input(from)) {
      if (bob_stalls || dropped) break;  // nobody reads: the sender stays paused
      w.drain(bob);
      if (!w.core.wants_input(from)) break;
    }
    w.core.receive(from, stream.substr(at, read_size));
    at += read_size;
    // Back-pressure bounds what waits for Bob: the window, one read, heads and answers.
    check(w.core.queued(bob) <= w.settings().output_window + read_size + 64 * 1024);
    if (time_moves) w.core.advance(now += std::chrono::seconds(10));
    if (bob_drops && !dropped && at >= stream.size() / 2) {
      w.core.close_connection(bob);
      dropped = true;
    }
    if (!bob_stalls && !dropped) w.drain(bob);
    w.drain(from);
  }
  w.core.advance(now + std::chrono::minutes(5));
  w.drain(from);
  if (!dropped) w.drain(bob);
  return 0;
}
