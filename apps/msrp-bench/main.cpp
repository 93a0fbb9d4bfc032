// msrp-bench: a load generator for MSRP relays (RFC 4976) and endpoints (RFC 4975).
//
//   msrp-bench messages --relay 'msrps://localhost:2855;tcp' --user U --password-file F
//       --ca-file cert.pem --sessions 64 --window 16 --size 100 --duration 10
//   msrp-bench bulk --relay ... --sessions 4 --message-size 16777216 --chunk-size 65536
//   msrp-bench hold --relay ... --sessions 10000 --active 0.01 --relay-pid PID
//   msrp-bench messages --direct [--tls] ...       # no relay: the client-to-client ceiling
//   msrp-bench messages --relay ... --sessions 8 --rate 20000   # open loop: latency at a rate
//   msrp-bench messages --direct --sessions 64 --threads 2      # the pairs over two threads
//
// Prints one JSON line with the results on stdout and a summary on stderr; on failure, a
// last line `msrp-bench: error: ...` on stderr. Exit status: 0 every message delivered
// byte-exact; 1 AUTH refused or messages failed, lost or corrupted; 2 bad arguments; 3
// network (cannot connect, TLS, connection lost).
#include <CLI/CLI.hpp>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <sstream>

#include <sys/resource.h>

#include "bench.hpp"
#include "password_file.hpp"

namespace {

using msrp::bench::exit_status;

/// Many sessions need many descriptors (two per session and side): take all we may, beyond
/// the hard limit where we are allowed to (root: up to fs.nr_open).
void raise_descriptor_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  const rlimit wide{1 << 20, 1 << 20};
  if (limit.rlim_max < wide.rlim_max && setrlimit(RLIMIT_NOFILE, &wide) == 0) return;
  limit.rlim_cur = limit.rlim_max;
  setrlimit(RLIMIT_NOFILE, &limit);
}

std::string number(double value, int decimals) {
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", decimals, value);
  return text;
}

std::string quoted(const std::string& text) {
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      out += ' ';
      continue;
    }
    out += c;
  }
  return out + '"';
}

/// The results as one JSON object on one line.
std::string json_line(const msrp::bench::plan& p, const msrp::bench::outcome& o) {
  const double seconds = o.measured_seconds > 0 ? o.measured_seconds : 1;
  std::ostringstream out;
  out << "{\"mode\":" << quoted(p.mode)
      << ",\"target\":" << quoted(p.relay.empty() ? "direct" : "relay") << ",\"transport\":"
      << quoted(p.relay.empty()                ? (p.tls ? "tls" : "tcp")
                : p.relay.starts_with("msrps") ? "tls"
                                               : "tcp")
      << ",\"sessions\":" << p.sessions << ",\"threads\":" << o.threads
      << ",\"ready\":" << o.pairs_ready << ",\"active\":" << o.active << ",\"window\":" << p.window
      << ",\"rate\":" << number(p.rate, p.rate == std::floor(p.rate) ? 0 : 3)
      << ",\"message_size\":" << p.message_size << ",\"chunk_size\":" << p.chunk_size
      << ",\"setup_s\":" << number(o.setup_seconds, 3)
      << ",\"setup_cpu_s\":" << number(o.setup_cpu_seconds, 3)
      << ",\"duration_s\":" << number(o.measured_seconds, 3) << ",\"sent\":" << o.sent
      << ",\"delivered\":" << o.delivered << ",\"failed\":" << o.failed << ",\"lost\":" << o.lost
      << ",\"corrupt\":" << o.corrupt << ",\"unexpected\":" << o.unexpected
      << ",\"msgs_per_s\":" << number(static_cast<double>(o.delivered_in_period) / seconds, 1)
      << ",\"mb_per_s\":" << number(static_cast<double>(o.bytes_in_period) / seconds / 1e6, 2)
      << ",\"latency_us\":{\"p50\":" << o.latency.p50 << ",\"p99\":" << o.latency.p99
      << ",\"p999\":" << o.latency.p999 << ",\"max\":" << o.latency.max << '}'
      << ",\"ack_us\":{\"p50\":" << o.ack.p50 << ",\"p99\":" << o.ack.p99
      << ",\"p999\":" << o.ack.p999 << ",\"max\":" << o.ack.max << '}'
      << ",\"cpu_pct\":" << number(100 * o.cpu_seconds / seconds, 1);
  if (o.relay_setup_cpu_seconds) {
    out << ",\"relay_setup_cpu_s\":" << number(*o.relay_setup_cpu_seconds, 3);
  }
  if (o.relay_cpu_seconds) {
    out << ",\"relay_cpu_pct\":" << number(100 * *o.relay_cpu_seconds / seconds, 1);
  }
  const auto field = [&](const char* name, const std::optional<std::uint64_t>& value) {
    if (value) out << ",\"" << name << "\":" << *value;
  };
  field("relay_rss_kib_before", o.relay_rss_before);
  field("relay_rss_kib_ready", o.relay_rss_ready);
  field("relay_rss_kib_end", o.relay_rss_end);
  if (o.relay_rss_before && o.relay_rss_ready && o.pairs_ready > 0) {
    const auto grown =
        static_cast<double>(*o.relay_rss_ready) - static_cast<double>(*o.relay_rss_before);
    out << ",\"relay_rss_kib_per_session\":"
        << number(grown / static_cast<double>(o.pairs_ready), 2);
  }
  out << ",\"ok\":" << (o.status == msrp::bench::ok ? "true" : "false")
      << ",\"error\":" << quoted(o.error) << '}';
  return out.str();
}

/// A few lines for people.
std::string summary(const msrp::bench::plan& p, const msrp::bench::outcome& o) {
  const double seconds = o.measured_seconds > 0 ? o.measured_seconds : 1;
  std::ostringstream out;
  out << "msrp-bench " << p.mode << ": " << o.pairs_ready << " of " << p.sessions
      << " sessions set up in " << number(o.setup_seconds, 2) << " s (CPU "
      << number(o.setup_cpu_seconds, 2) << " s; " << (p.relay.empty() ? "direct" : "via " + p.relay)
      << (o.threads > 1 ? "; " + std::to_string(o.threads) + " threads" : std::string()) << "), "
      << o.active << " sending, "
      << (p.rate > 0 ? number(p.rate, 0) + " messages/s asked (open loop)"
                     : "window " + std::to_string(p.window))
      << ", " << p.message_size << "-byte messages"
      << (p.chunk_size ? " in chunks of " + std::to_string(p.chunk_size) : std::string()) << '\n'
      << "  " << number(static_cast<double>(o.delivered_in_period) / seconds, 0) << " messages/s, "
      << number(static_cast<double>(o.bytes_in_period) / seconds / 1e6, 1) << " MB/s over "
      << number(o.measured_seconds, 2) << " s; " << o.delivered << " of " << o.sent
      << " delivered byte-exact\n"
      << "  latency to the far end p50 " << number(o.latency.p50 / 1000, 3) << " ms, p99 "
      << number(o.latency.p99 / 1000, 3) << " ms, p99.9 " << number(o.latency.p999 / 1000, 3)
      << " ms; to the 200 p50 " << number(o.ack.p50 / 1000, 3) << " ms\n"
      << "  msrp-bench CPU " << number(100 * o.cpu_seconds / seconds, 0) << " %";
  if (o.cpu_seconds / seconds > 0.9 * static_cast<double>(o.threads)) {
    out << " (its threads are busy: the generator may be the bottleneck; see --threads)";
  }
  if (o.relay_cpu_seconds) {
    out << ", relay CPU " << number(100 * *o.relay_cpu_seconds / seconds, 0) << " %";
  }
  if (o.relay_rss_before && o.relay_rss_ready) {
    out << "\n  relay RSS " << *o.relay_rss_before << " KiB before, " << *o.relay_rss_ready
        << " KiB with the sessions open";
    if (o.pairs_ready > 0) {
      out << " ("
          << number((static_cast<double>(*o.relay_rss_ready) -
                     static_cast<double>(*o.relay_rss_before)) /
                        static_cast<double>(o.pairs_ready),
                    1)
          << " KiB per session of 2 connections)";
    }
  }
  return out.str();
}

/// What the command line gives beyond the plan.
struct extras {
  std::vector<std::string> password_files;
  double seconds = 10;
  bool direct = false;
  int drain_seconds = 30;
  int transaction_seconds = 30;
  bool quiet = false;
};

/// Options every mode takes; the mode's defaults are already in `p`.
void add_common(CLI::App& command, msrp::bench::plan& p, extras& x) {
  command.add_option("--relay", p.relay,
                     "The relay's URI, such as 'msrps://localhost:2855;tcp' (msrp: plain TCP)");
  command.add_flag("--direct", x.direct, "No relay: pairs of endpoints connected over loopback");
  command.add_flag("--tls", p.tls, "Direct mode: TLS (msrps) rather than TCP");
  command.add_option("--user", p.users,
                     "User at the relay; repeat to spread sessions over users (each connection "
                     "takes the next)");
  command.add_option("--password-file", x.password_files,
                     "File (mode 0600) whose first line is the password; one for all users or "
                     "one per --user (default: $MSRP_PASSWORD)");
  command.add_option("--ca-file", p.ca_file, "CA certificates to verify the relay");
  command.add_option("--sessions", p.sessions, "Session pairs (each: sender and receiver)")
      ->capture_default_str()
      ->check(CLI::Range(1, 100'000));
  command
      .add_option("--threads", p.threads,
                  "Event loops, each on a thread of its own, the sessions split over them "
                  "(no more than there are sessions)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  command.add_option("--window", p.window, "Messages outstanding per sending session")
      ->capture_default_str()
      ->check(CLI::Range(1, 100'000));
  command
      .add_option("--rate", p.rate,
                  "Messages per second over all sending sessions, sent at fixed intervals "
                  "whatever is outstanding (open loop; --window does not apply); latency counts "
                  "from when each was due")
      ->check(CLI::Validator(
          [](std::string& text) -> std::string {
            double value = 0;
            const auto* end = text.data() + text.size();
            const auto [stop, error] = std::from_chars(text.data(), end, value);
            if (error == std::errc{} && stop == end && value > 0 && std::isfinite(value)) return {};
            return "not a positive number of messages per second: " + text;
          },
          "RATE"));
  command.add_option("--chunk-size", p.chunk_size, "Largest chunk in bytes (0: one chunk)")
      ->capture_default_str();
  command.add_option("--duration", x.seconds, "Seconds to measure")->capture_default_str();
  command.add_option("--drain-timeout", x.drain_seconds, "Seconds to wait for the last messages")
      ->capture_default_str();
  command
      .add_option("--transaction-timeout", x.transaction_seconds,
                  "Seconds a response to AUTH or SEND may take")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  command.add_flag("--quiet", x.quiet, "No summary on stderr, only the JSON line on stdout");
  command.add_option("--relay-pid", p.relay_pid, "Read the relay's RSS and CPU from /proc/PID");
  command.add_option("--setup-parallel", p.setup_parallel, "Sessions being set up at once")
      ->capture_default_str()
      ->check(CLI::Range(1, 10'000));
  command.add_option("--output-window", p.output_window, "Endpoint output window in bytes")
      ->capture_default_str();
  command.add_option("--read-buffer", p.read_buffer, "Read buffer per connection in bytes")
      ->capture_default_str()
      ->check(CLI::Range(512, 64 << 20));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Load generator for MSRP relays (RFC 4976) and endpoints (RFC 4975)."};
  app.require_subcommand(1);
  msrp::bench::plan messages;
  messages.mode = "messages";
  msrp::bench::plan bulk;
  bulk.mode = "bulk";
  bulk.window = 1;
  bulk.message_size = 16 << 20;
  bulk.chunk_size = 64 << 10;
  bulk.output_window = 256 << 10;
  bulk.read_buffer = 256 << 10;
  msrp::bench::plan hold;
  hold.mode = "hold";
  hold.sessions = 1000;
  hold.active = 0.01;
  hold.window = 1;
  hold.read_buffer = 4 << 10;

  extras x;
  auto* m = app.add_subcommand("messages", "Small messages: messages/s and latency");
  add_common(*m, messages, x);
  m->add_option("--size", messages.message_size, "Message size in bytes")->capture_default_str();
  auto* b = app.add_subcommand("bulk", "Large messages: MB/s");
  add_common(*b, bulk, x);
  b->add_option("--message-size", bulk.message_size, "Message size in bytes")
      ->capture_default_str();
  auto* h = app.add_subcommand("hold", "Many sessions held open, a fraction of them sending");
  add_common(*h, hold, x);
  h->add_option("--active", hold.active, "Share of the sessions that send")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  h->add_option("--size", hold.message_size, "Message size in bytes")->capture_default_str();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help
    // One line, as every other error of msrp-bench.
    std::cerr << "msrp-bench: error: " << e.what() << std::endl;
    return exit_status::bad_input;
  }
  auto& p = m->parsed() ? messages : b->parsed() ? bulk : hold;
  const auto fail = [](exit_status status, const std::string& message) {
    std::cerr << "msrp-bench: error: " << message << std::endl;
    return status;
  };
  if (x.direct == !p.relay.empty()) return fail(exit_status::bad_input, "give --relay or --direct");
  if (x.seconds <= 0) return fail(exit_status::bad_input, "--duration must be positive");
  p.duration = std::chrono::milliseconds(static_cast<std::int64_t>(x.seconds * 1000));
  p.drain_timeout = std::chrono::seconds(x.drain_seconds);
  p.transaction_timeout = std::chrono::seconds(x.transaction_seconds);
  if (!x.direct) {
    if (p.users.empty()) return fail(exit_status::bad_input, "--relay needs --user");
    if (x.password_files.size() > 1 && x.password_files.size() != p.users.size()) {
      return fail(exit_status::bad_input, "give one --password-file, or one per --user");
    }
    if (x.password_files.empty()) x.password_files.emplace_back();  // $MSRP_PASSWORD
    for (const auto& file : x.password_files) {
      auto read = msrp::apps::read_relay_password(file);
      if (const auto* problem = std::get_if<msrp::apps::password_problem>(&read)) {
        return fail(exit_status::bad_input, problem->message);
      }
      p.passwords.push_back(std::get<std::string>(std::move(read)));
    }
  }
  raise_descriptor_limit();

  const auto result = msrp::bench::run(p);
  std::cout << json_line(p, result) << std::endl;
  if (result.pairs_ready > 0 && !x.quiet) {
    std::cerr << summary(p, result) << std::endl;
  }
  if (result.status != msrp::bench::ok) return fail(result.status, result.error);
  return 0;
}
