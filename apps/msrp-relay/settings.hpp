// apps/msrp-relay/settings.hpp: what msrp-relay runs with: embedded defaults, then the TOML
// configuration file, then command-line flags (each overriding the one before).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "msrp/net/relay_server.hpp"

namespace msrp::relayd {

struct settings {
  /// The realm is left empty here, so that finish() can make it the host (however that was set).
  settings() { server.engine.realm.clear(); }

  /// Where the certificate, key, user store and demo password live unless set one by one.
  std::filesystem::path state_dir;
  /// TLS listeners (msrps), as ADDRESS:PORT; IPv6 in brackets.
  std::vector<std::string> listen_tls = {"127.0.0.1:2855"};
  /// Plain TCP listeners (msrp), only when configured (TLS terminated in front, benchmarks).
  std::vector<std::string> listen_tcp{};
  std::filesystem::path cert_file;   ///< default: state_dir/cert.pem (made on first run)
  std::filesystem::path key_file;    ///< default: state_dir/key.pem
  std::filesystem::path store_file;  ///< SQLite user store; default: state_dir/users.db
  /// A postgresql:// URI: the user store is that PostgreSQL database (shared by relays)
  /// instead of `store_file`.
  std::string store_url;
  std::size_t store_workers = 4;   ///< threads (and database connections) for AUTH lookups
  std::string ca_file;             ///< CAs of other relays (next hops, mutual TLS)
  std::string metrics;             ///< ADDRESS:PORT of the Prometheus endpoint; empty: off
  std::string demo_user = "demo";  ///< made on first run with a random password; empty: none
  bool trace = false;              ///< log every frame's start line
  net::relay_server::options server{};
};

/// Reads `file` (TOML) over `s`. Unknown keys are errors, so a typo never goes unnoticed.
/// Fails with a one-line message naming the key or the line.
bool load_toml(const std::filesystem::path& file, settings& s, std::string& error);

/// Fills what is still unset from the state directory and checks the whole: listeners parse,
/// bounds are ordered. Fails with a one-line message.
bool finish(settings& s, std::string& error);

/// Where the user store is: `store_url` if set, otherwise `store_file`.
std::string store_location(const settings& s);

/// Sets the store from a `--store` value: a postgresql:// URI, or a file.
void set_store(settings& s, const std::string& location);

/// Splits ADDRESS:PORT (IPv6 as [ADDRESS]:PORT); false if it is not one.
bool split_address(const std::string& text, std::string& address, std::uint16_t& port);

}  // namespace msrp::relayd
