// The TOML configuration of msrp-relay (toml++). Keys, with their defaults:
//
//   host = "localhost"                 # Use-Path host; RFC 4976 §4.2 wants an FQDN
//   aliases = ["127.0.0.1", "::1"]     # other names that mean this relay in a To-Path
//   realm = "<host>"                   # digest realm (RFC 4976 §5.1)
//   state_dir = "..."                  # certificate, key, users.db, demo password
//   demo_user = "demo"                 # made on first run; "" for none
//   trace = false                      # log every frame's start line
//   [listen]  tls = ["127.0.0.1:2855"]  tcp = []
//   [tls]     cert = ""  key = ""  ca_file = ""
//   [store]   file = ""                # SQLite; default state_dir/users.db
//             url = ""                 # or "postgresql://..." (libpq URI), shared by relays
//             workers = 4              # lookup threads, each with its own connection
//   [metrics] listen = ""              # e.g. "127.0.0.1:9855"
//   [limits]  max_connections, max_sessions_per_user, max_failures, max_head_size,
//             max_header_count, max_other_body_size, output_window
//   [timeouts] default_expires, min_expires, max_expires, nonce_lifetime, probation,
//              transaction, head, frame_idle, connect, write          (seconds)
#include "settings.hpp"

#include "store.hpp"

#include <toml++/toml.h>

#include <cstdlib>
#include <set>

namespace msrp::relayd {
namespace {

/// Reads the keys of one TOML table, remembering which were known.
class table_reader {
 public:
  table_reader(const toml::table& t, std::string prefix) : table_(t), prefix_(std::move(prefix)) {}

  void text(const char* key, std::string& into) {
    known_.insert(key);
    if (const auto* node = table_.get(key)) {
      if (auto v = node->value<std::string>()) {
        into = *v;
      } else {
        fail(key, "a string");
      }
    }
  }
  void path(const char* key, std::filesystem::path& into) {
    std::string value = into.string();
    text(key, value);
    into = value;
  }
  void list(const char* key, std::vector<std::string>& into) {
    known_.insert(key);
    const auto* node = table_.get(key);
    if (!node) return;
    const auto* array = node->as_array();
    if (!array) return fail(key, "a list of strings");
    into.clear();
    for (const auto& item : *array) {
      auto v = item.value<std::string>();
      if (!v) return fail(key, "a list of strings");
      into.push_back(*v);
    }
  }
  template <class Number>
  void number(const char* key, Number& into) {
    known_.insert(key);
    if (const auto* node = table_.get(key)) {
      const auto v = node->value<std::int64_t>();
      if (!v || *v < 0) return fail(key, "a non-negative integer");
      into = static_cast<Number>(*v);
    }
  }
  void seconds(const char* key, std::chrono::seconds& into) {
    auto count = static_cast<std::uint64_t>(into.count());
    number(key, count);
    into = std::chrono::seconds(count);
  }
  template <class Duration>
  void milliseconds_as_seconds(const char* key, Duration& into) {
    auto count =
        static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(into).count());
    number(key, count);
    into = std::chrono::duration_cast<Duration>(std::chrono::seconds(count));
  }
  void flag(const char* key, bool& into) {
    known_.insert(key);
    if (const auto* node = table_.get(key)) {
      if (auto v = node->value<bool>()) {
        into = *v;
      } else {
        fail(key, "true or false");
      }
    }
  }
  /// A sub-table, read by `read`; its keys are checked there.
  template <class F>
  void table(const char* key, F read) {
    known_.insert(key);
    const auto* node = table_.get(key);
    if (!node) return;
    const auto* sub = node->as_table();
    if (!sub) return fail(key, "a table");
    table_reader inner(*sub, prefix_ + key + '.');
    read(inner);
    inner.finish();
    if (error_.empty()) error_ = inner.error_;
  }
  /// Unknown keys are errors.
  void finish() {
    for (const auto& [key, node] : table_) {
      if (!known_.count(std::string(key.str())) && error_.empty()) {
        error_ = "unknown key " + prefix_ + std::string(key.str());
      }
    }
  }
  const std::string& error() const { return error_; }

 private:
  void fail(const char* key, const char* what) {
    if (error_.empty()) error_ = prefix_ + key + " must be " + what;
  }

  const toml::table& table_;
  std::string prefix_;
  std::set<std::string> known_;
  std::string error_;
};

}  // namespace

bool load_toml(const std::filesystem::path& file, settings& s, std::string& error) {
  toml::table root;
  try {
    root = toml::parse_file(file.string());
  } catch (const toml::parse_error& e) {
    error = file.string() + ':' + std::to_string(e.source().begin.line) + ": " +
            std::string(e.description());
    return false;
  }
  auto& relay = s.server.engine;
  auto& limits = relay.limits;
  table_reader top(root, "");
  top.text("host", relay.host);
  top.list("aliases", relay.aliases);
  top.text("realm", relay.realm);
  top.path("state_dir", s.state_dir);
  top.text("demo_user", s.demo_user);
  top.flag("trace", s.trace);
  top.table("listen", [&](table_reader& t) {
    t.list("tls", s.listen_tls);
    t.list("tcp", s.listen_tcp);
  });
  top.table("tls", [&](table_reader& t) {
    t.path("cert", s.cert_file);
    t.path("key", s.key_file);
    t.text("ca_file", s.ca_file);
  });
  top.table("store", [&](table_reader& t) {
    t.path("file", s.store_file);
    t.text("url", s.store_url);
    t.number("workers", s.store_workers);
  });
  top.table("metrics", [&](table_reader& t) { t.text("listen", s.metrics); });
  top.table("limits", [&](table_reader& t) {
    t.number("max_connections", relay.max_connections);
    t.number("max_sessions_per_user", relay.max_sessions_per_user);
    t.number("max_failures", relay.max_failures);
    t.number("max_head_size", limits.max_head_size);
    t.number("max_header_count", limits.max_header_count);
    t.number("max_other_body_size", limits.max_other_body_size);
    t.number("output_window", relay.output_window);
  });
  top.table("timeouts", [&](table_reader& t) {
    t.seconds("default_expires", relay.default_expires);
    t.seconds("min_expires", relay.min_expires);
    t.seconds("max_expires", relay.max_expires);
    t.seconds("nonce_lifetime", relay.nonce_lifetime);
    t.seconds("probation", relay.probation);
    t.seconds("transaction", relay.transaction_timeout);
    t.seconds("head", relay.head_timeout);
    t.seconds("frame_idle", relay.frame_idle_timeout);
    t.milliseconds_as_seconds("connect", s.server.connect_timeout);
    t.milliseconds_as_seconds("write", s.server.write_timeout);
  });
  top.finish();
  if (!top.error().empty()) {
    error = file.string() + ": " + top.error();
    return false;
  }
  return true;
}

std::string store_location(const settings& s) {
  return s.store_url.empty() ? s.store_file.string() : s.store_url;
}

void set_store(settings& s, const std::string& location) {
  s.store_url.clear();
  s.store_file.clear();
  if (is_postgres_uri(location)) {
    s.store_url = location;
  } else {
    s.store_file = location;
  }
}

bool split_address(const std::string& text, std::string& address, std::uint16_t& port) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos || colon + 1 == text.size()) return false;
  address = text.substr(0, colon);
  if (address.size() >= 2 && address.front() == '[' && address.back() == ']') {
    address = address.substr(1, address.size() - 2);
  }
  const auto digits = text.substr(colon + 1);
  if (digits.size() > 5 || digits.find_first_not_of("0123456789") != std::string::npos) {
    return false;
  }
  const auto value = std::stoul(digits);
  if (value > 65535) return false;
  port = static_cast<std::uint16_t>(value);
  return !address.empty();
}

bool finish(settings& s, std::string& error) {
  if (s.state_dir.empty()) {
    const char* state = std::getenv("XDG_STATE_HOME");
    const char* home = std::getenv("HOME");
    s.state_dir = state && *state ? std::filesystem::path(state) / "msrp-relay"
                  : home && *home ? std::filesystem::path(home) / ".local/state/msrp-relay"
                                  : std::filesystem::path("msrp-relay-state");
  }
  if (s.cert_file.empty()) s.cert_file = s.state_dir / "cert.pem";
  if (s.key_file.empty()) s.key_file = s.state_dir / "key.pem";
  if (!s.store_url.empty() && !s.store_file.empty()) {
    error = "store: give file or url, not both";
    return false;
  }
  if (!s.store_url.empty() && !is_postgres_uri(s.store_url)) {
    error = "store.url must be a postgresql:// URI";
    return false;
  }
  if (s.store_workers == 0) {
    error = "store.workers must be positive";
    return false;
  }
  if (s.store_url.empty() && s.store_file.empty()) s.store_file = s.state_dir / "users.db";
  auto& relay = s.server.engine;
  if (relay.realm.empty()) relay.realm = relay.host;
  if (s.listen_tls.empty() && s.listen_tcp.empty()) {
    error = "no listener: give listen.tls or listen.tcp";
    return false;
  }
  std::string address;
  std::uint16_t port = 0;
  for (const auto* list : {&s.listen_tls, &s.listen_tcp}) {
    for (const auto& where : *list) {
      if (!split_address(where, address, port)) {
        error = "bad listen address '" + where + "' (want ADDRESS:PORT, [IPv6]:PORT)";
        return false;
      }
    }
  }
  if (!s.metrics.empty() && !split_address(s.metrics, address, port)) {
    error = "bad metrics address '" + s.metrics + "'";
    return false;
  }
  if (relay.min_expires > relay.max_expires || relay.default_expires < relay.min_expires ||
      relay.default_expires > relay.max_expires) {
    error = "timeouts: want min_expires <= default_expires <= max_expires";
    return false;
  }
  if (relay.head_timeout.count() <= 0 || relay.frame_idle_timeout.count() <= 0) {
    error = "timeouts: head and frame_idle must be positive";
    return false;
  }
  if (relay.max_failures == 0 || relay.output_window == 0) {
    error = "limits: max_failures and output_window must be positive";
    return false;
  }
  return true;
}

}  // namespace msrp::relayd
