// Runs the torture vectors of tests/vectors/torture/*.md through the endpoint and the relay,
// whole, split in two at every byte and one byte at a time, and checks their `session:` and
// `relay:` lines (torture/README.md): what each engine answers, delivers, forwards or closes.
// The parser's event log of the same vectors is checked by vectors_test.cpp.
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <deque>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "endpoint_pair.hpp"
#include "msrp/detail/text.hpp"
#include "msrp/endpoint.hpp"
#include "msrp/relay.hpp"
#include "openssl_hash.hpp"
#include "parser_driver.hpp"
#include "vector_file.hpp"

namespace msrp::test {
namespace {

// The corpus's two endpoints (torture/README.md): Bob receives, Alice sends.
constexpr std::string_view bob_uri = "msrp://bob.example.com:8888/9di4eae923wzd8Qx;tcp";
constexpr std::string_view alice_uri = "msrp://alicepc.example.com:7777/iau39soe2843z;tcp";
constexpr std::string_view bob_session_id = "9di4eae923wzd8Qx";

/// A random source whose first draws are `script`, then a seeded generator's.
random_source scripted(std::vector<std::uint64_t> script, std::uint64_t seed = 4975) {
  return [script = std::deque<std::uint64_t>(script.begin(), script.end()),
          rng = std::mt19937_64(seed)]() mutable {
    if (script.empty()) return rng();
    const auto next = script.front();
    script.pop_front();
    return next;
  };
}

/// The two draws from which `make_ident` (serializer.cpp) spells `id`: 16 characters of
/// [0-9A-Za-z], eight base-62 digits from each draw, least significant first.
std::vector<std::uint64_t> draws_for(std::string_view id) {
  static constexpr std::string_view alphabet =
      "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  std::vector<std::uint64_t> draws(2, 0);
  for (std::size_t half = 0; half < 2; ++half) {
    for (std::size_t i = 8; i-- > 0;)
      draws[half] = draws[half] * alphabet.size() + alphabet.find(id[half * 8 + i]);
  }
  return draws;
}

/// `items` joined by ", ", or "-" when there are none.
std::string join(const std::vector<std::string>& items) {
  if (items.empty()) return "-";
  std::string out;
  for (const auto& item : items)
    out += (out.empty() ? "" : ", ") + item;
  return out;
}

/// `written; other`, or `nothing` when both are empty (torture/README.md).
std::string outcome(const std::vector<std::string>& written,
                    const std::vector<std::string>& other) {
  if (written.empty() && other.empty()) return "nothing";
  return join(written) + "; " + join(other);
}

/// A frame the engine wrote back to the sender: `200`, `REPORT 413 1-5/5`, or the method of
/// any other request; `...` marks a frame cut off before its end-line.
std::string answer_item(const wire_log::frame& f) {
  std::string item;
  if (!f.head.is_request()) {
    item = std::to_string(f.head.status_code);
  } else if (f.head.method == "REPORT") {
    const auto status = f.head.status();
    item = "REPORT " + (status && *status ? std::to_string((*status)->code) : "?");
    if (const auto range = f.head.header("Byte-Range")) item += ' ' + std::string(*range);
  } else {
    item = f.head.method;
  }
  return f.ended ? item : item + " ...";
}

// --- The session --------------------------------------------------------------------------

/// Bob's endpoint with his session `bob_uri` (its random source spells the session-id), which
/// knows Alice's path from SDP; the vector's bytes arrive on connection 1.
class session_harness {
 public:
  static constexpr connection_id connection = 1;

  session_harness() : engine_({}, scripted(draws_for(bob_session_id))) {
    session_settings settings;
    settings.host = "bob.example.com";
    settings.port = 8888;
    const auto bob = engine_.open_session(settings);
    EXPECT_EQ(engine_.local_uri(bob).to_string(), bob_uri);
    engine_.set_remote_path(bob, {*uri::parse(alice_uri)});
  }

  void receive(std::string_view bytes) {
    if (!closed_) engine_.receive(connection, bytes);
    drain();
  }

  /// What the session did so far, as a `session:` line says it.
  std::string log() const {
    std::vector<std::string> written;
    for (const auto& f : wire_.frames())
      written.push_back(answer_item(f));
    if (wire_.error()) written.push_back("malformed output");
    if (closed_) written.push_back("closed");
    return outcome(written, events_);
  }

 private:
  void drain() {
    for (auto out = engine_.output(connection); !out.empty(); out = engine_.output(connection)) {
      wire_.feed(out);
      engine_.consume_output(connection, out.size());
    }
    while (auto e = engine_.next_event())
      std::visit([this](const auto& event) { on_event(event); }, *e);
  }

  void on_event(const events::message_received& e) {
    events_.push_back("message " + e.message_id + ' ' + std::to_string(e.body.size()));
  }
  void on_event(const events::message_started& e) { events_.push_back("started " + e.message_id); }
  void on_event(const events::message_piece&) {}
  void on_event(const events::message_completed& e) {
    events_.push_back("streamed " + e.message_id + ' ' + std::to_string(e.size));
  }
  void on_event(const events::message_aborted& e) {
    events_.push_back("aborted " + e.message_id + ' ' + std::to_string(e.status));
  }
  void on_event(const events::connection_failed&) {
    // The caller writes what the output still holds and closes the connection (endpoint.hpp).
    closed_ = true;
  }
  template <class Other>
  void on_event(const Other&) {
    events_.push_back("unexpected event");
  }

  endpoint engine_;
  wire_log wire_;
  std::vector<std::string> events_;
  bool closed_ = false;
};

// --- The relay ----------------------------------------------------------------------------

constexpr std::string_view relay_uri = "msrps://relay.example.net:2855;tcp";
constexpr connection_id alice_connection = 1, bob_connection = 2, peer_connection = 3;

/// The relay `relay.example.net` with Alice and Bob as authenticated clients. The vector's
/// bytes arrive on a third connection, from a peer that has not authenticated, with every
/// To-Path that starts with Bob's or Alice's URI rewritten to start with their Use-Path URI
/// (`route`), so that they reach the forwarding code. The head limit grows by what the
/// rewrite adds to a head, so heads at or past the limit stay so.
class relay_harness {
 public:
  relay_harness() : core_(settings(0), scripted({}), openssl_hash) {
    core_.listening(2855);
    for (const auto id : {alice_connection, bob_connection})
      core_.accept(id, {.secure = true, .local_port = 2855});
    alice_hop_ = authenticate(alice_connection, alice_uri);
    bob_hop_ = authenticate(bob_connection, bob_uri);
    // A connection's parser takes the limits in force when it is accepted.
    core_.reconfigure(settings(alice_hop_.size() + 1));
    core_.accept(peer_connection, {.secure = true, .local_port = 2855});
    while (core_.next_action()) {
    }
  }

  /// `text` with `<Use-Path> ` inserted before Bob's or Alice's URI at the start of every
  /// To-Path value; lines must begin with `line_start` (`header ` in an event log).
  std::string route(std::string_view text, std::string_view line_start = {}) const {
    std::string out;
    std::size_t line = 0;
    while (line < text.size()) {
      auto next = text.find('\n', line);
      next = next == std::string_view::npos ? text.size() : next + 1;
      auto piece = text.substr(line, next - line);
      out += piece;
      if (piece.starts_with(line_start) &&
          detail::iequals(piece.substr(line_start.size(), 8), "to-path:")) {
        auto value = line_start.size() + 8;
        while (value < piece.size() && (piece[value] == ' ' || piece[value] == '\t'))
          ++value;
        const auto rest = piece.substr(value);
        const auto at = out.size() - piece.size() + value;
        if (rest.starts_with(bob_uri)) out.insert(at, bob_hop_ + ' ');
        if (rest.starts_with(alice_uri)) out.insert(at, alice_hop_ + ' ');
      }
      line = next;
    }
    return out;
  }

  /// The head limit of the rewritten bytes.
  parser::limits limits() const { return settings(alice_hop_.size() + 1).limits; }

  void receive(std::string_view bytes) {
    if (closed_) return;
    core_.receive(peer_connection, bytes);
    drain();
  }

  /// What the relay did so far, as a `relay:` line says it.
  std::string log() const {
    std::vector<std::string> back;
    for (const auto& f : wires_[peer_connection].frames())
      back.push_back(answer_item(f));
    if (closed_) back.push_back("closed");
    std::vector<std::string> forwarded;
    for (const auto& [who, id] : {std::pair{"bob", bob_connection}, {"alice", alice_connection}}) {
      for (const auto& f : wires_[id].frames()) {
        std::string item = std::string(who) + ' ' + answer_item(f);
        // How much of an aborted chunk went out depends on how its bytes arrived.
        if (f.head.is_request() && f.ended && f.flag == end_flag::aborted) item += " #";
        if (f.head.is_request() && f.ended && f.flag != end_flag::aborted) {
          item += ' ' + std::to_string(f.body_size) + static_cast<char>(f.flag);
        }
        forwarded.push_back(item);
      }
    }
    for (const auto& target : connects_)
      forwarded.push_back("connect " + target);
    for (const auto id : {alice_connection, bob_connection, peer_connection}) {
      if (wires_[id].error()) back.push_back("malformed output");
    }
    return outcome(back, forwarded);
  }

 private:
  static relay::config settings(std::size_t head_growth) {
    relay::config c;
    c.host = "relay.example.net";
    c.realm = "relay.example.net";
    c.limits.max_head_size += head_growth;
    return c;
  }

  /// Runs the AUTH exchange of RFC 4976 §5.1 for `client` on `id`; returns its Use-Path.
  std::string authenticate(connection_id id, std::string_view client) {
    const auto auth = [&](std::string tid, std::vector<header_field> extra) {
      core_.receive(id,
                    serialize(request(std::move(tid), "AUTH", relay_uri, client, std::move(extra)))
                        .to_string());
      drain();
      const auto& frames = wires_[id].frames();
      return frames.empty() ? message{} : frames.back().head;
    };
    const auto challenged = auth("auth0001", {});
    const auto values = challenged.www_authenticate();
    const auto challenge = digest::challenge::parse(values.empty() ? "" : values.front());
    EXPECT_TRUE(challenge) << "no challenge for " << client;
    if (!challenge) return {};
    const auto credentials =
        digest::answer(openssl_hash, *challenge, "user", "secret", relay_uri, "c0ffee", 1);
    const auto granted = auth("auth0002", {{"Authorization", credentials.to_header_value()}});
    EXPECT_EQ(granted.status_code, 200) << "AUTH of " << client;
    wires_[id] = reader();
    return std::string(granted.header("Use-Path").value_or(""));
  }

  void drain() {
    for (const auto id : {alice_connection, bob_connection, peer_connection}) {
      for (auto out = core_.output(id); !out.empty(); out = core_.output(id)) {
        wires_[id].feed(out);
        core_.consume_output(id, out.size());
      }
    }
    while (auto action = core_.next_action()) {
      if (const auto* close = std::get_if<relay_actions::close>(&*action)) {
        if (close->connection != peer_connection || closed_) continue;
        // As the edge does: write what is left, then close (relay.hpp).
        closed_ = true;
        const auto out = core_.output(peer_connection);
        wires_[peer_connection].feed(out);
        core_.consume_output(peer_connection, out.size());
        core_.close_connection(peer_connection);
        drain();
        return;
      }
      if (const auto* connect = std::get_if<relay_actions::connect>(&*action)) {
        connects_.push_back(connect->target.to_string());
      }
      // The credential store answers at once: every user's password is "secret".
      if (const auto* lookup = std::get_if<relay_actions::lookup>(&*action)) {
        core_.credentials(lookup->ticket, {lookup_outcome::found,
                                           digest::ha1(openssl_hash, lookup->algorithm,
                                                       lookup->username, lookup->realm, "secret")});
        drain();
        return;
      }
    }
  }

  /// Reads what the relay writes. A forwarded head can outgrow the limits the relay took it
  /// with (a longer transaction id, an added Byte-Range), and the readers are not under test.
  static wire_log reader() {
    return wire_log(true, {.max_head_size = 64 * 1024, .max_header_count = 256});
  }

  relay core_;
  std::array<wire_log, 4> wires_{reader(), reader(), reader(), reader()};
  std::string alice_hop_;
  std::string bob_hop_;
  std::vector<std::string> connects_;
  bool closed_ = false;
};

// --- The tests ----------------------------------------------------------------------------

std::vector<vector> torture_vectors() {
  std::vector<vector> out;
  for (auto& v : load_vectors()) {
    if (v.name.starts_with("torture/")) out.push_back(std::move(v));
  }
  return out;
}

/// Feeds `bytes` to a fresh `Harness` whole, split in two at every byte and one byte at a
/// time; each run must give `expected`.
template <class Harness>
void check_every_split(std::string_view expected, std::string_view bytes) {
  {
    Harness whole;
    whole.receive(bytes);
    ASSERT_EQ(whole.log(), expected) << "fed whole";
  }
  for (std::size_t cut = 1; cut < bytes.size(); ++cut) {
    Harness split;
    split.receive(bytes.substr(0, cut));
    split.receive(bytes.substr(cut));
    ASSERT_EQ(split.log(), expected) << "split at byte " << cut;
  }
  Harness bytewise;
  for (const char c : bytes)
    bytewise.receive(std::string_view(&c, 1));
  EXPECT_EQ(bytewise.log(), expected) << "fed one byte at a time";
}

class Torture : public ::testing::TestWithParam<vector> {};

TEST_P(Torture, Session) {
  ASSERT_FALSE(GetParam().session.empty()) << "no `session:` line";
  check_every_split<session_harness>(GetParam().session, GetParam().wire);
}

TEST_P(Torture, Relay) {
  ASSERT_FALSE(GetParam().relay.empty()) << "no `relay:` line";
  // Every relay_harness draws the same Use-Paths (a seeded random source): one rewrite does.
  check_every_split<relay_harness>(GetParam().relay, relay_harness().route(GetParam().wire));
}

// The rewrite of `relay_harness::route` changes heads only, and the parser (with the grown
// head limit) sees the same frames in them, To-Paths aside, as in the vector's event log.
TEST_P(Torture, RelayRewriteKeepsFrames) {
  const relay_harness h;
  parser_driver driver(h.limits());
  driver.feed(h.route(GetParam().wire));
  EXPECT_EQ(driver.log(), h.route(GetParam().events, "header "));
}

INSTANTIATE_TEST_SUITE_P(Corpus, Torture, ::testing::ValuesIn(torture_vectors()),
                         [](const ::testing::TestParamInfo<vector>& test) {
                           return test_name(test.param, test.index);
                         });

TEST(Torture, HasAtLeastSixtyVectors) {
  EXPECT_GE(torture_vectors().size(), 60u);
}

}  // namespace
}  // namespace msrp::test
