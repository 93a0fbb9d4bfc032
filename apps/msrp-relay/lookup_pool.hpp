// msrp-relay/lookup_pool.hpp: credential lookups off the relay's I/O thread.
//
// The relay core asks for an HA1 with a `lookup` action and waits for the answer without
// blocking (msrp/relay.hpp); the relay server hands the lookup to a `credential_service`
// (msrp/net/relay_server.hpp). A `lookup_pool` is that service for a `credential_store`: a few
// worker threads, each with its own store (its own database connection), take lookups in
// order and call back with the answer from their thread.
//
//   relayd::lookup_pool pool([&] { return relayd::open_store(location); }, {.workers = 4});
//   pool.lookup("alice", "relay.example.com", "SHA-256", [](msrp::credential_answer a) {...});
//
// A worker opens its store on first use, and again after the store failed: a database that
// went away is found again once it is back, with no restart. While it is away every lookup
// fails as quickly as the store notices (PostgreSQL: the connect timeout) and is answered
// `unavailable`. Lookups beyond `max_waiting` are answered `unavailable` at once, so a store
// that hangs cannot make the relay queue without bound.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "msrp/relay.hpp"
#include "store.hpp"

namespace msrp::relayd {

class lookup_pool {
 public:
  /// Opens a store for a worker (called on that worker's thread).
  using opener = std::function<result<std::unique_ptr<credential_store>>()>;

  struct options {
    /// Worker threads, each with its own store.
    std::size_t workers = 4;
    /// Lookups that may wait for a worker; more are answered `unavailable` at once.
    std::size_t max_waiting = 1000;
    /// Told, from a worker thread, when the store fails after working (with the reason) and
    /// when it works again after failing, so a log gets one line per change, not per lookup.
    std::function<void(const std::string&)> log{};
  };

  lookup_pool(opener open, options settings);
  /// Waits for the lookups being made; those still waiting are answered `unavailable`.
  ~lookup_pool();
  lookup_pool(const lookup_pool&) = delete;
  lookup_pool& operator=(const lookup_pool&) = delete;

  /// Looks up the HA1 of `username` in `realm` for `algorithm` and calls `done` once with the
  /// answer: `found` with the HA1, `no_such_user`, or `unavailable` when the store failed or
  /// too many lookups wait. `done` runs on a worker thread, or on the caller's when the
  /// lookup is refused at once.
  void lookup(std::string username, std::string realm, std::string algorithm,
              std::function<void(credential_answer)> done);

 private:
  struct state;
  std::unique_ptr<state> state_;
};

}  // namespace msrp::relayd
