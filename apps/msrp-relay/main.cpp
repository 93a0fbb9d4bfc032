// msrp-relay: an MSRP relay (RFC 4976).
//
//   msrp-relay [--config FILE] [--listen ADDR:PORT]... [--check-config]   run the relay
//   msrp-relay user add|del|passwd NAME [--store STORE] [--realm REALM]   manage users
//   msrp-relay user list [--store STORE] [--realm REALM]
//
// Settings: embedded defaults, then the TOML file, then flags (settings.hpp). The user store
// is an SQLite file (STATE/users.db by default) or a PostgreSQL database that several relays
// share (`--store postgresql://...`, or `[store] url` in the file). On first run the state
// directory gets a self-signed certificate, the user store and a demo user whose password is
// written to STATE/demo-password. SIGTERM and SIGINT stop accepting, let the
// requests in flight finish (at most 10 s) and exit; SIGHUP reloads the configuration file
// and the certificate. Exit status: 0 after a clean stop, 1 when the relay cannot start,
// 2 for bad arguments or configuration.
#include <sys/stat.h>
#include <CLI/CLI.hpp>
#include <csignal>
#include <ctime>
#include <fstream>
#include <iostream>
#include <mutex>
#include <thread>

#include "lookup_pool.hpp"
#include "msrp/net/hash.hpp"
#include "settings.hpp"
#include "store.hpp"
#include "users.hpp"

namespace {

using namespace msrp;
using relayd::settings;

volatile std::sig_atomic_t stop_requested = 0;
volatile std::sig_atomic_t reload_requested = 0;

void on_signal(int number) {
  if (number == SIGHUP) {
    reload_requested = 1;
  } else {
    stop_requested = 1;
  }
}

/// One line on standard error, from any thread (the lookup workers log too).
void log(const std::string& line) {
  static std::mutex one_at_a_time;
  std::lock_guard lock(one_at_a_time);
  char when[32];
  const auto now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &utc);
  std::cerr << when << " msrp-relay: " << line << std::endl;
}

/// The Prometheus text exposition of the relay's counters.
std::string metrics_text(const relay::stats& s) {
  std::string text;
  const auto metric = [&](const char* name, const char* type, const char* help,
                          std::uint64_t value) {
    text += std::string("# HELP msrp_relay_") + name + ' ' + help + '\n';
    text += std::string("# TYPE msrp_relay_") + name + ' ' + type + '\n';
    text += std::string("msrp_relay_") + name + ' ' + std::to_string(value) + '\n';
  };
  metric("connections", "gauge", "Open connections.", s.connections);
  metric("sessions", "gauge", "Live sessions (Use-Path URIs).", s.sessions);
  metric("streams", "gauge", "Requests being passed on.", s.streams);
  metric("queued_bytes", "gauge", "Output waiting to be written.", s.queued_bytes);
  metric("frames_relayed_total", "counter", "Requests and responses forwarded.", s.frames_relayed);
  metric("bytes_relayed_total", "counter", "Body bytes forwarded.", s.bytes_relayed);
  metric("auth_successes_total", "counter", "Successful AUTH requests.", s.auth_successes);
  metric("auth_failures_total", "counter", "AUTH requests with wrong credentials.",
         s.auth_failures);
  metric("auth_store_unavailable_total", "counter",
         "AUTH requests answered 500: the user store was unavailable.", s.auth_unavailable);
  metric("credential_lookups", "gauge", "AUTH requests waiting for the user store.", s.lookups);
  metric("reports_generated_total", "counter", "Failure REPORTs the relay wrote.",
         s.reports_generated);
  return text;
}

/// Reads the configuration file (if any) and applies the flags over it.
bool configure(const std::string& config_file, const settings& flags, const CLI::App& app,
               settings& s, std::string& error) {
  s = settings{};
  if (!config_file.empty() && !relayd::load_toml(config_file, s, error)) return false;
  if (app.count("--state-dir")) s.state_dir = flags.state_dir;
  if (app.count("--listen")) s.listen_tls = flags.listen_tls;
  if (app.count("--listen-tcp")) s.listen_tcp = flags.listen_tcp;
  if (app.count("--host")) s.server.engine.host = flags.server.engine.host;
  if (app.count("--realm")) s.server.engine.realm = flags.server.engine.realm;
  if (app.count("--cert")) s.cert_file = flags.cert_file;
  if (app.count("--key")) s.key_file = flags.key_file;
  if (app.count("--store")) relayd::set_store(s, flags.store_url);  // the flag's raw value
  if (app.count("--ca-file")) s.ca_file = flags.ca_file;
  if (app.count("--metrics")) s.metrics = flags.metrics;
  if (app.count("--demo-user")) s.demo_user = flags.demo_user;
  if (app.count("--trace")) s.trace = flags.trace;
  if (!relayd::finish(s, error)) return false;
  s.server.engine.trace = s.trace;
  s.server.ca_file = s.ca_file;
  return true;
}

/// Makes the demo user on first run, with a random password kept in STATE/demo-password.
bool ensure_demo_user(const settings& s, relayd::credential_store& store, std::string& error) {
  if (s.demo_user.empty()) return true;
  const auto& realm = s.server.engine.realm;
  const auto present = store.contains(s.demo_user, realm);
  if (!present) {
    error = "user store: " + present.error().message();
    return false;
  }
  if (*present) return true;
  const auto password = net::random_token(12);
  if (const auto failed = store.add(s.demo_user, realm, password, net::digest_hex)) {
    error = "demo user: " + failed.message();
    return false;
  }
  const auto file = s.state_dir / "demo-password";
  std::ofstream out(file, std::ios::trunc);
  ::chmod(file.c_str(), 0600);
  out << password << '\n';
  if (!out) {
    error = "cannot write " + file.string();
    return false;
  }
  return true;
}

int run(const std::string& config_file, const settings& flags, const CLI::App& app,
        bool check_only) {
  settings s;
  std::string error;
  if (!configure(config_file, flags, app, s, error)) {
    std::cerr << "msrp-relay: " << error << '\n';
    return 2;
  }
  if (check_only) {
    std::cout << "configuration ok\n";
    return 0;
  }
  std::error_code made;
  std::filesystem::create_directories(s.state_dir, made);
  auto identity = net::load_or_create(s.cert_file, s.key_file, s.server.engine.host);
  if (!identity) {
    std::cerr << "msrp-relay: certificate " << s.cert_file.string() << ": "
              << identity.error().message() << '\n';
    return 1;
  }
  s.server.identity = *identity;
  // The schema is created or migrated now; a store that cannot be opened stops the start.
  const auto location = relayd::store_location(s);
  {
    auto store = relayd::open_store(location);
    if (!store) {
      std::cerr << "msrp-relay: user store: " << relayd::store_error_detail() << '\n';
      return 1;
    }
    if (!ensure_demo_user(s, **store, error)) {
      std::cerr << "msrp-relay: " << error << '\n';
      return 1;
    }
  }
  log("user store " + relayd::redacted(location));
  // AUTH lookups run on worker threads, each with its own store; the server waits for none.
  relayd::lookup_pool lookups(
      [location] { return relayd::open_store(location); },
      {.workers = s.store_workers, .log = [](const std::string& line) { log(line); }});
  net::relay_server server(
      s.server, [&lookups](const relay_actions::lookup& query, net::credential_callback done) {
        lookups.lookup(query.username, query.realm, query.algorithm, std::move(done));
      });
  std::string address;
  std::uint16_t port = 0;
  std::string first_uri;
  for (const bool tls : {true, false}) {
    for (const auto& where : tls ? s.listen_tls : s.listen_tcp) {
      relayd::split_address(where, address, port);
      const auto bound = server.listen(address, port, tls);
      if (!bound) {
        std::cerr << "msrp-relay: cannot listen on " << where << ": " << bound.error().message()
                  << '\n';
        return 1;
      }
      const auto uri = std::string(tls ? "msrps://" : "msrp://") + s.server.engine.host + ':' +
                       std::to_string(*bound) + ";tcp";
      if (first_uri.empty()) first_uri = uri;
      log("listening on " + address + " port " + std::to_string(*bound) + " as " + uri);
    }
  }
  if (!s.metrics.empty()) {
    relayd::split_address(s.metrics, address, port);
    const auto bound = server.serve_metrics(address, port, metrics_text);
    if (!bound) {
      std::cerr << "msrp-relay: cannot serve metrics on " << s.metrics << ": "
                << bound.error().message() << '\n';
      return 1;
    }
    log("metrics on http://" + s.metrics.substr(0, s.metrics.rfind(':') + 1) +
        std::to_string(*bound) + "/metrics");
  }
  if (!s.demo_user.empty()) {
    log("connect a client: msrp recv --relay '" + first_uri + "' --user " + s.demo_user +
        " --password-file " + (s.state_dir / "demo-password").string() + " --ca-file " +
        s.cert_file.string() + " --uri-file peer.uri  (then msrp send --connect \"$(cat " +
        "peer.uri)\" ... the same way)");
  }

  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  std::signal(SIGHUP, on_signal);
  while (!stop_requested) {
    if (auto line = server.wait_notice(std::chrono::milliseconds(200))) log(*line);
    if (reload_requested) {
      reload_requested = 0;
      settings fresh;
      auto reloaded =
          configure(config_file, flags, app, fresh, error)
              ? net::load_or_create(fresh.cert_file, fresh.key_file, fresh.server.engine.host)
              : result<net::certificate>(std::make_error_code(std::errc::invalid_argument));
      if (!reloaded) {
        log("reload failed, keeping the running configuration: " +
            (error.empty() ? reloaded.error().message() : error));
      } else {
        server.reconfigure(fresh.server.engine, *reloaded);
        log("configuration and certificate reloaded");
      }
    }
  }
  // Graceful stop: no new connections; what is in flight may finish.
  server.stop_listening();
  log("stopping: waiting for requests in flight");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    const auto now = server.statistics();
    if (now.streams == 0 && now.queued_bytes == 0) break;
    if (auto line = server.wait_notice(std::chrono::milliseconds(100))) log(*line);
  }
  log("stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"msrp-relay: an MSRP relay (RFC 4976)."};
  std::string config_file;
  bool check_only = false;
  settings flags;
  app.add_option("--config", config_file, "TOML configuration file")->check(CLI::ExistingFile);
  app.add_flag("--check-config", check_only, "Check the configuration and exit");
  app.add_option("--state-dir", flags.state_dir, "Directory for certificate, key, user store");
  app.add_option("--listen", flags.listen_tls, "TLS listener ADDRESS:PORT (repeatable)");
  app.add_option("--listen-tcp", flags.listen_tcp, "Plain TCP listener ADDRESS:PORT (repeatable)");
  app.add_option("--host", flags.server.engine.host, "Host name in Use-Path URIs");
  app.add_option("--realm", flags.server.engine.realm, "Digest realm (default: the host)");
  app.add_option("--cert", flags.cert_file, "Certificate PEM file (made if missing)");
  app.add_option("--key", flags.key_file, "Private key PEM file (made if missing)");
  app.add_option("--store", flags.store_url, "User store: SQLite file or postgresql:// URI");
  app.add_option("--ca-file", flags.ca_file, "CAs of other relays (next hops, mutual TLS)");
  app.add_option("--metrics", flags.metrics, "Serve Prometheus metrics on ADDRESS:PORT");
  app.add_option("--demo-user", flags.demo_user, "Demo user made on first run ('' for none)");
  app.add_flag("--trace", flags.trace, "Log every frame's start line");

  auto* user = app.add_subcommand("user", "Manage the users of the relay");
  user->fallthrough();  // --config, --state-dir and the like may follow the subcommand
  std::string action, name, store, realm;
  user->add_option("action", action, "add, del, passwd or list")
      ->required()
      ->check(CLI::IsMember({"add", "del", "passwd", "list"}));
  user->add_option("name", name, "The user name");
  user->add_option(
      "--store", store,
      "User store: SQLite file or postgresql:// URI (default: from the configuration)");
  user->add_option("--realm", realm, "Realm (default: from the configuration)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    std::cerr << "msrp-relay: " << e.what() << '\n';
    return 2;
  }
  if (*user) {
    settings s;
    std::string error;
    if (!configure(config_file, flags, app, s, error)) {
      std::cerr << "msrp-relay: " << error << '\n';
      return 2;
    }
    if (action != "list" && name.empty()) {
      std::cerr << "msrp-relay: user " << action << " needs a user name\n";
      return 2;
    }
    std::error_code made;
    std::filesystem::create_directories(s.state_dir, made);
    return relayd::run_user_command(action, name, store.empty() ? relayd::store_location(s) : store,
                                    realm.empty() ? s.server.engine.realm : realm, std::cin,
                                    std::cout, std::cerr);
  }
  return run(config_file, flags, app, check_only);
}
