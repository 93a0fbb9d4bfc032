// msrp-relay/lookup_pool.cpp: worker threads answering credential lookups.
#include "lookup_pool.hpp"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace msrp::relayd {

struct lookup_pool::state {
  struct job {
    std::string username;
    std::string realm;
    std::string algorithm;
    std::function<void(credential_answer)> done;
  };

  opener open;
  options settings;
  std::mutex mutex;
  std::condition_variable wake;
  std::deque<job> waiting;
  bool stopping = false;
  bool working = true;  // the store answered last time (for the log)
  std::vector<std::thread> workers;

  /// The store failed (`failed`) or answered; logs the changes.
  void record(bool failed, const std::string& why) {
    std::lock_guard lock(mutex);
    if (failed == !working) return;
    working = !failed;
    if (settings.log) {
      settings.log(failed ? "credential store unavailable: " + why
                          : "credential store available again");
    }
  }

  std::optional<job> next() {
    std::unique_lock lock(mutex);
    wake.wait(lock, [&] { return stopping || !waiting.empty(); });
    if (stopping) return std::nullopt;
    auto taken = std::move(waiting.front());
    waiting.pop_front();
    return taken;
  }

  void work() {
    std::unique_ptr<credential_store> store;
    while (auto j = next()) {
      if (!store) {
        auto opened = open();
        if (!opened) {
          record(true, store_error_detail());
          j->done({lookup_outcome::unavailable, {}});
          continue;
        }
        store = std::move(*opened);
      }
      auto found = store->find_ha1(j->username, j->realm, j->algorithm);
      if (!found) {
        // Opened again at the next lookup: a database that restarted is found again.
        record(true, store_error_detail());
        store.reset();
        j->done({lookup_outcome::unavailable, {}});
        continue;
      }
      record(false, {});
      if (*found) {
        j->done({lookup_outcome::found, std::move(**found)});
      } else {
        j->done({lookup_outcome::no_such_user, {}});
      }
    }
  }
};

lookup_pool::lookup_pool(opener open, options settings) : state_(std::make_unique<state>()) {
  state_->open = std::move(open);
  state_->settings = std::move(settings);
  for (std::size_t i = 0; i < std::max<std::size_t>(state_->settings.workers, 1); ++i)
    state_->workers.emplace_back([st = state_.get()] { st->work(); });
}

lookup_pool::~lookup_pool() {
  {
    std::lock_guard lock(state_->mutex);
    state_->stopping = true;
  }
  state_->wake.notify_all();
  for (auto& worker : state_->workers)
    worker.join();
  for (auto& j : state_->waiting)
    j.done({lookup_outcome::unavailable, {}});
}

void lookup_pool::lookup(std::string username, std::string realm, std::string algorithm,
                         std::function<void(credential_answer)> done) {
  {
    std::lock_guard lock(state_->mutex);
    if (state_->waiting.size() < state_->settings.max_waiting) {
      state_->waiting.push_back(
          {std::move(username), std::move(realm), std::move(algorithm), std::move(done)});
      state_->wake.notify_one();
      return;
    }
  }
  done({lookup_outcome::unavailable, {}});
}

}  // namespace msrp::relayd
