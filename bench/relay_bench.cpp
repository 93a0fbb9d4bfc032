// The relay engine with no sockets: S senders each stream one large chunk to their own
// receiver through one relay core, in 64 KiB reads taken in turn, while the receivers' output
// is written out (dropped) as fast as it comes. Measures throughput and what the relay holds
// per session while chunks of any size pass: the queued output (bounded by the output window)
// and the process's resident memory. Then small messages one at a time (the core's cost per
// relayed message) and the same with many idle sessions and a transaction timing out at every
// step (the cost of a deadline falling due).
// Run: build/release/bench/relay_bench   (figures in docs/benchmarks.md)
#include <benchmark/benchmark.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <random>

#include "msrp/relay.hpp"

namespace {

using namespace msrp;

/// A stand-in for MD5/SHA-256: the digest only has to be the same on both sides here.
std::string fake_hash(std::string_view algorithm, std::string_view data) {
  const auto h = std::hash<std::string_view>{}(data) ^ std::hash<std::string_view>{}(algorithm);
  char text[17];
  std::snprintf(text, sizeof text, "%016zx", h);
  return std::string(text) + std::string(algorithm == digest::md5 ? 16 : 48, '0');
}

constexpr std::string_view password = "secret";
constexpr std::size_t read_size = 64 * 1024;

std::size_t resident_kib() {
  std::ifstream status("/proc/self/status");
  std::string key;
  std::size_t value = 0;
  while (status >> key) {
    if (key == "VmRSS:") {
      status >> value;
      return value;
    }
    status.ignore(4096, '\n');
  }
  return 0;
}

struct harness {
  std::mt19937_64 random{7};
  relay core;

  static relay::config settings() {
    relay::config c;
    c.host = "relay.example.com";
    c.realm = "relay.example.com";
    c.ports = {2855};
    c.max_sessions_per_user = 1'000'000;
    c.max_connections = 1'000'000;
    return c;
  }

  harness()
      : core(
            settings(), [this] { return random(); }, fake_hash) {}

  /// Takes the relay's actions; the credential store answers every lookup at once.
  void answer_lookups() {
    while (auto action = core.next_action()) {
      if (const auto* query = std::get_if<relay_actions::lookup>(&*action)) {
        core.credentials(query->ticket, {lookup_outcome::found,
                                         digest::ha1(fake_hash, query->algorithm, query->username,
                                                     query->realm, password)});
      }
    }
  }

  /// The frames `id` has to write, parsed; the output is consumed.
  std::vector<message> heads(connection_id id) {
    std::vector<message> found;
    parser wire;
    for (auto out = core.output(id); !out.empty(); out = core.output(id)) {
      std::string_view rest = out;
      while (!rest.empty()) {
        const auto e = wire.parse(rest);
        rest.remove_prefix(e.consumed);
        if (e.kind == parser::event_kind::head) found.push_back(wire.head());
        if (e.kind == parser::event_kind::need_more && e.consumed == 0) break;
      }
      core.consume_output(id, out.size());
    }
    return found;
  }

  /// Connects a client as `id` and authenticates it (RFC 4976 §5.1); returns its Use-Path URI.
  std::string authenticate(connection_id id, const std::string& client) {
    core.accept(id, {.secure = true, .local_port = 2855});
    const auto auth = [&](const std::string& extra) {
      core.receive(id, "MSRP auth" + std::to_string(id) + " AUTH\r\nTo-Path: msrps://" +
                           "relay.example.com:2855;tcp\r\nFrom-Path: " + client + "\r\n" + extra +
                           "-------auth" + std::to_string(id) + "$\r\n");
      answer_lookups();
      return heads(id).at(0);
    };
    const auto challenged = auth("");
    const auto ch = digest::challenge::parse(challenged.www_authenticate().at(0));
    const auto answer = digest::answer(fake_hash, *ch, "user", password,
                                       "msrps://relay.example.com:2855;tcp", "cnonce", 1);
    const auto granted = auth("Authorization: " + answer.to_header_value() + "\r\n");
    return std::string(*granted.header("Use-Path"));
  }
};

/// S senders (arg 0), each sending one chunk of arg 1 MiB.
void BM_RelayStreams(benchmark::State& state) {
  const auto senders = static_cast<std::size_t>(state.range(0));
  const auto chunk = static_cast<std::uint64_t>(state.range(1)) << 20;
  const std::string zeros(read_size, '\0');
  std::uint64_t peak_queued = 0;
  std::size_t peak_rss = 0;
  for (auto _ : state) {
    state.PauseTiming();
    const auto rss_before = resident_kib();
    harness h;
    struct flow {
      connection_id from, to;
      std::uint64_t sent = 0;
    };
    std::vector<flow> flows;
    for (std::size_t i = 0; i < senders; ++i) {
      const connection_id from = 2 * i + 1, to = 2 * i + 2;
      const auto client = [](connection_id id) {
        return "msrps://c" + std::to_string(id) + ".example.com:1/s;tcp";
      };
      const auto from_path = h.authenticate(from, client(from));
      const auto to_path = h.authenticate(to, client(to));
      h.core.receive(from, "MSRP send" + std::to_string(from) + " SEND\r\nTo-Path: " + from_path +
                               ' ' + to_path + ' ' + client(to) + "\r\nFrom-Path: " + client(from) +
                               "\r\nMessage-ID: m" + std::to_string(from) + "\r\nByte-Range: 1-*/" +
                               std::to_string(chunk) +
                               "\r\nContent-Type: application/octet-stream\r\n\r\n");
      flows.push_back({from, to});
    }
    state.ResumeTiming();
    for (std::size_t done = 0; done < senders;) {
      done = 0;
      for (auto& f : flows) {
        if (f.sent < chunk && h.core.wants_input(f.from)) {
          const auto n = std::min<std::uint64_t>(read_size, chunk - f.sent);
          h.core.receive(f.from, std::string_view(zeros).substr(0, n));
          f.sent += n;
          if (f.sent == chunk) {
            h.core.receive(f.from, "\r\n-------send" + std::to_string(f.from) + "$\r\n");
          }
        }
        peak_queued = std::max(peak_queued, h.core.statistics().queued_bytes / senders);
        for (auto out = h.core.output(f.to); !out.empty(); out = h.core.output(f.to)) {
          h.core.consume_output(f.to, out.size());
        }
        h.core.consume_output(f.from, h.core.output(f.from).size());  // its 200
        if (f.sent == chunk) ++done;
      }
      if ((flows.front().sent / read_size) % 64 == 0) {
        peak_rss = std::max(peak_rss, resident_kib() - std::min(resident_kib(), rss_before));
      }
    }
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * senders * chunk));
  state.counters["queued_per_session_KiB"] = static_cast<double>(peak_queued) / 1024.0;
  state.counters["rss_growth_per_session_KiB"] =
      static_cast<double>(peak_rss) / static_cast<double>(senders);
}
BENCHMARK(BM_RelayStreams)
    ->ArgNames({"senders", "chunk_MiB"})
    ->Args({1, 64})
    ->Args({1, 1024})
    ->Args({16, 64})
    ->Args({256, 4})
    ->Unit(benchmark::kMillisecond);

/// Alice sends SENDs of `size` bytes to Bob one after another through the relay core, which
/// answers her 200 (Failure-Report yes, RFC 4976 §6.4.1) and passes each on to Bob.
struct small_messages {
  harness h;
  std::string head;
  std::string back;
  std::string frame;
  std::uint64_t n = 0;

  static std::string client(connection_id id) {
    return "msrps://c" + std::to_string(id) + ".example.com:1/s;tcp";
  }

  explicit small_messages(std::size_t size) {
    const auto from_path = h.authenticate(1, client(1));
    const auto to_path = h.authenticate(2, client(2));
    head = " SEND\r\nTo-Path: " + from_path + ' ' + to_path + ' ' + client(2) +
           "\r\nFrom-Path: " + client(1) + "\r\nMessage-ID: m\r\nByte-Range: 1-" +
           std::to_string(size) + "/" + std::to_string(size) +
           "\r\nContent-Type: text/plain\r\n\r\n" + std::string(size, 'x') + "\r\n-------";
    back = " 200 OK\r\nTo-Path: " + to_path + "\r\nFrom-Path: " + client(2) + "\r\n-------";
  }

  /// Alice sends one; what the relay writes to Bob is consumed. Returns the forwarded
  /// transaction id (a view into the relay's output, valid until the next call).
  std::string_view send() {
    const auto tid = "tid" + std::to_string(++n);  // RFC 4975 §9: 4 to 32 characters
    frame.assign("MSRP ").append(tid).append(head).append(tid).append("$\r\n");
    h.core.receive(1, frame);
    const auto out = h.core.output(2);
    h.core.consume_output(2, out.size());
    return out.substr(5, out.find(' ', 5) - 5);
  }

  /// Bob answers the forwarded SEND `tid` with 200 (the generator's part: writing the
  /// response); what the relay wrote to Alice (its 200) is consumed.
  void answer(std::string_view tid) {
    frame.assign("MSRP ").append(tid).append(back).append(tid).append("$\r\n");
    h.core.receive(2, frame);
    h.core.consume_output(1, h.core.output(1).size());
  }
};

/// Small messages of arg 0 bytes, each answered by Bob at once. The time per iteration is the
/// relay core's cost per relayed message, plus the small part of the generator.
void BM_RelaySmallMessages(benchmark::State& state) {
  small_messages m(static_cast<std::size_t>(state.range(0)));
  for (auto _ : state)
    m.answer(m.send());
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_RelaySmallMessages)->ArgName("bytes")->Arg(100)->Arg(1000);

/// Timers among many sessions: arg 0 idle sessions beside Alice's and Bob's; Alice sends a
/// small message every millisecond and Bob never answers, so from 30 s on a transaction times
/// out at every step (a REPORT 408 to Alice, RFC 4976 §6.4.1). The time per iteration is one
/// step: a deadline falling due, a message relayed; it should not grow with the sessions.
void BM_RelayTimeouts(benchmark::State& state) {
  small_messages m(100);
  const auto idle = static_cast<connection_id>(state.range(0));
  for (connection_id id = 3; id < 3 + idle; ++id)
    m.h.authenticate(id, small_messages::client(id));
  clock::time_point now{};
  const auto step = [&] {
    now += std::chrono::milliseconds(1);
    m.h.core.advance(now);
    m.send();
    m.h.core.consume_output(1, m.h.core.output(1).size());
  };
  for (int i = 0; i < 30'000; ++i)
    step();
  for (auto _ : state)
    step();
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_RelayTimeouts)->ArgName("idle_sessions")->Arg(100)->Arg(1000)->Arg(10'000);

}  // namespace
