// apps/msrp-bench/bench.hpp: what msrp-bench runs and what it measures.
//
// A run sets up `sessions` session pairs, each a sender and a receiver with a connection of
// its own: through a relay (RFC 4976: both AUTH and take the relay's Use-Path; the sender's
// To-Path is its relay path, then the receiver's path) or directly (the sender connects to a
// listener of msrp-bench itself over loopback). Then, for `duration`, each active pair keeps
// `window` messages of `message_size` bytes outstanding (or, with a `rate`, sends them at fixed
// intervals), and when the time is up waits for the messages still out. A message is outstanding
// from `send` until both its sender has had the 200 for its last chunk and its receiver has it
// whole; it counts as delivered only if the receiver's copy is byte-exact. REPORTs are never asked
// for, so relays that send none (or answer 200 per hop) are measured the same way.
//
// An Asio loop drives one msrp::endpoint per connection. With `threads` > 1 the pairs are split
// over that many loops, each on a thread of its own (pair i on loop i mod threads), whose
// measuring periods start together once every loop has set up its pairs; the report is one for
// the whole run.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace msrp::bench {

/// Exit statuses (as the msrp command's).
enum exit_status : int {
  ok = 0,
  not_delivered = 1,  ///< AUTH refused, or messages failed, lost or corrupted.
  bad_input = 2,      ///< Bad arguments or files.
  network = 3,        ///< Cannot connect, TLS failure, connection lost.
};

/// What to run.
struct plan {
  std::string mode = "messages";  ///< For the report: messages, bulk or hold.
  /// The relay's URI (msrps: TLS, msrp: TCP); empty for direct mode.
  std::string relay;
  /// Users at the relay, taken in turn by each connection, with their passwords (one for all,
  /// or one per user).
  std::vector<std::string> users;
  std::vector<std::string> passwords;
  std::string ca_file;  ///< CAs to verify the relay (system CAs when empty).
  bool tls = false;     ///< Direct mode: TLS (msrps) rather than TCP.
  std::size_t sessions = 1;
  std::size_t threads = 1;  ///< Event loops, each on a thread; no more are used than sessions.
  /// The share of sessions that send (hold mode); the others are held open, idle.
  double active = 1.0;
  std::size_t window = 16;  ///< Outstanding messages per sending session.
  /// Messages per second over all sending sessions, open loop: message k of the measuring
  /// period is due k / rate seconds into it, however many are outstanding (`window` does not
  /// apply), and its latency counts from when it was due, so queueing behind a slow relay or
  /// generator shows (no coordinated omission). 0: closed loop, the window decides.
  double rate = 0;
  std::uint64_t message_size = 100;
  std::uint64_t chunk_size = 0;  ///< Largest chunk; 0: each message in one chunk.
  std::chrono::milliseconds duration{10'000};
  std::chrono::milliseconds drain_timeout{30'000};
  /// How long a response (to AUTH or SEND) may take; RFC 4975 §7.1.1 says 30 s. A relay
  /// that slows down as it holds more sessions may need longer in a scale run.
  std::chrono::milliseconds transaction_timeout{30'000};
  std::size_t setup_parallel = 64;        ///< Pairs being set up at once.
  std::size_t output_window = 64 * 1024;  ///< The endpoints' output window.
  std::size_t read_buffer = 16 * 1024;    ///< Per connection.
  std::optional<int> relay_pid;           ///< Read the relay's RSS and CPU time from /proc.
};

/// Latency percentiles, in microseconds.
struct percentiles {
  double p50 = 0, p99 = 0, p999 = 0, max = 0;
};

/// What a run measured.
struct outcome {
  exit_status status = ok;
  std::string error;        ///< One line, when status is not ok.
  std::size_t threads = 1;  ///< Event loops used.
  std::size_t pairs_ready = 0;
  std::size_t active = 0;
  double setup_seconds = 0;
  double setup_cpu_seconds = 0;                   ///< msrp-bench's own CPU time during the setup.
  std::optional<double> relay_setup_cpu_seconds;  ///< The relay's (with relay_pid).
  double measured_seconds = 0;                    ///< The measuring period (the drain excluded).
  // Every message sent ends in exactly one of delivered, failed, lost and corrupt.
  std::uint64_t sent = 0;
  std::uint64_t delivered = 0;
  std::uint64_t failed = 0;      ///< The sender was told it failed (error response, timeout).
  std::uint64_t lost = 0;        ///< Still outstanding when the drain timed out.
  std::uint64_t corrupt = 0;     ///< Received, but not byte-exact.
  std::uint64_t unexpected = 0;  ///< Received but never sent, or received twice.
  std::uint64_t delivered_in_period = 0;  ///< Messages completed within the measuring period.
  std::uint64_t bytes_in_period = 0;      ///< Body bytes received and verified in the period.
  /// From `send` (with a rate: from when the message was due) to receipt, whole, at the far
  /// end.
  percentiles latency;
  percentiles ack;  ///< From `send` (or when due) to the 200 for its last chunk.
  /// msrp-bench's own CPU time (user + system, all its threads) in the period.
  double cpu_seconds = 0;
  /// The relay's (with relay_pid): VmRSS before the setup, after it and at the end, in KiB,
  /// and its CPU time in the period.
  std::optional<std::uint64_t> relay_rss_before, relay_rss_ready, relay_rss_end;
  std::optional<double> relay_cpu_seconds;
};

/// Runs the plan. Never throws; failures are in `outcome::status` and `outcome::error`.
outcome run(const plan& p);

}  // namespace msrp::bench
