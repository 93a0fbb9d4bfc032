#include "msrp/endpoint.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "endpoint_pair.hpp"
#include "openssl_hash.hpp"
#include "parser_driver.hpp"
#include "random_workload.hpp"

namespace msrp {
namespace {

using namespace std::chrono_literals;
using test::link;
using test::pair;
using test::pair_options;
using test::side;
using test::wire_log;
using wire_frame = wire_log::frame;

// --- Helpers -------------------------------------------------------------------------------

/// The events of type `E`, in order.
template <class E>
std::vector<E> only(const std::vector<event>& events) {
  std::vector<E> out;
  for (const auto& e : events) {
    if (const auto* x = std::get_if<E>(&e)) out.push_back(*x);
  }
  return out;
}

/// The `send_finished` events of message `h`.
std::vector<events::send_finished> finished(const std::vector<event>& events, message_handle h) {
  std::vector<events::send_finished> out;
  for (const auto& f : only<events::send_finished>(events)) {
    if (f.message == h) out.push_back(f);
  }
  return out;
}

/// Position of the first event that satisfies `match`, or -1.
template <class E, class Match>
int index_of(const std::vector<event>& events, Match match) {
  for (std::size_t i = 0; i < events.size(); ++i) {
    if (const auto* x = std::get_if<E>(&events[i]); x && match(*x)) return static_cast<int>(i);
  }
  return -1;
}

/// The requests of `method` on a wire.
std::vector<const wire_frame*> requests(const wire_log& wire, std::string_view method) {
  std::vector<const wire_frame*> out;
  for (const auto& f : wire.frames()) {
    if (f.head.method == method) out.push_back(&f);
  }
  return out;
}

/// The responses on a wire.
std::vector<const wire_frame*> responses(const wire_log& wire) {
  std::vector<const wire_frame*> out;
  for (const auto& f : wire.frames()) {
    if (!f.head.is_request()) out.push_back(&f);
  }
  return out;
}

/// A frame from a wire log as bytes again, to replay it into an endpoint.
std::string replay(const wire_frame& f) {
  return serialize(f.head, f.has_body ? std::string_view(f.body) : std::string_view{}, f.flag)
      .to_string();
}

/// Reads and consumes everything `e` has for `connection`, parsed into frames.
std::vector<test::parsed_frame> take_output(endpoint& e, connection_id connection) {
  test::parser_driver driver;
  for (;;) {
    const auto out = e.output(connection);
    if (out.empty()) break;
    driver.feed(out);
    e.consume_output(connection, out.size());
  }
  EXPECT_EQ(driver.buffered(), 0u) << "output ended inside a frame";
  return driver.frames();
}

/// The status codes of the responses in `frames`, in order.
std::vector<int> statuses(const std::vector<test::parsed_frame>& frames) {
  std::vector<int> out;
  for (const auto& f : frames) {
    if (!f.head.is_request()) out.push_back(f.head.status_code);
  }
  return out;
}

std::uint64_t mix(std::uint64_t x) {
  // splitmix64
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

/// A body that is computed, not stored: any byte range can be produced again to compare.
struct body_spec {
  std::uint64_t seed = 0;
  std::uint64_t size = 0;
  /// Text full of near end-lines (CRLF, seven dashes, ids and flags) instead of noise.
  bool lookalike = false;
};

void fill(const body_spec& body, std::uint64_t offset, std::span<char> into) {
  if (body.lookalike) {
    static constexpr std::string_view pattern = "\r\n-------a1b2c3d4$\r\n-------x+\r\n--";
    for (std::size_t i = 0; i < into.size(); ++i) {
      into[i] = pattern[(body.seed + offset + i) % pattern.size()];
    }
    return;
  }
  std::uint64_t position = offset;
  std::size_t i = 0;
  while (i < into.size()) {
    const auto word = mix(body.seed * 0x100000001b3ULL + (position >> 3));
    for (auto k = position & 7; k < 8 && i < into.size(); ++k, ++i, ++position) {
      into[i] = static_cast<char>(word >> (8 * k));
    }
  }
}

std::string bytes_of(const body_spec& body, std::uint64_t offset, std::uint64_t n) {
  std::string out(n, '\0');
  fill(body, offset, out);
  return out;
}

std::string bytes_of(const body_spec& body) {
  return bytes_of(body, 0, body.size);
}

/// How a body_reader was used.
struct reader_stats {
  std::size_t calls = 0;
  std::size_t largest = 0;  // the largest `into` asked for
  std::uint64_t bytes = 0;
};

/// A message whose body comes from a body_reader, as a file would.
outgoing_message from_reader(std::string content_type, body_spec body,
                             std::shared_ptr<reader_stats> stats = nullptr) {
  outgoing_message m;
  m.content_type = std::move(content_type);
  m.size = body.size;
  m.read = [body, stats](std::uint64_t offset, std::span<char> into) -> result<std::size_t> {
    EXPECT_LE(offset, body.size);
    const auto n =
        static_cast<std::size_t>(std::min<std::uint64_t>(into.size(), body.size - offset));
    fill(body, offset, into.first(n));
    if (stats) {
      ++stats->calls;
      stats->largest = std::max(stats->largest, into.size());
      stats->bytes += n;
    }
    return n;
  };
  return m;
}

outgoing_message text(std::string body, report_mode success = report_mode::no,
                      report_mode failure = report_mode::yes) {
  auto m = outgoing_message::text("text/plain", std::move(body));
  m.success_report = success;
  m.failure_report = failure;
  return m;
}

/// Reassembles what a receiver delivered, by Message-ID.
struct reassembled {
  int whole = 0;
  int started = 0;
  int completed = 0;
  int aborted = 0;
  int abort_status = -1;
  std::optional<std::uint64_t> size;  // from message_started or message_completed
  std::string bytes;
};

std::map<std::string, reassembled> reassemble(const std::vector<event>& events) {
  std::map<std::string, reassembled> out;
  for (const auto& e : events) {
    if (const auto* r = std::get_if<events::message_received>(&e)) {
      auto& m = out[r->message_id];
      ++m.whole;
      m.bytes = r->body;
      m.size = r->body.size();
    } else if (const auto* s = std::get_if<events::message_started>(&e)) {
      auto& m = out[s->message_id];
      ++m.started;
      m.size = s->size;
    } else if (const auto* p = std::get_if<events::message_piece>(&e)) {
      auto& m = out[p->message_id];
      EXPECT_EQ(m.started, 1) << "a piece of a message that did not start";
      EXPECT_EQ(m.completed, 0) << "a piece after the message completed";
      if (m.bytes.size() < p->offset + p->bytes.size()) m.bytes.resize(p->offset + p->bytes.size());
      m.bytes.replace(p->offset, p->bytes.size(), p->bytes);
    } else if (const auto* c = std::get_if<events::message_completed>(&e)) {
      auto& m = out[c->message_id];
      ++m.completed;
      m.size = c->size;
    } else if (const auto* a = std::get_if<events::message_aborted>(&e)) {
      auto& m = out[a->message_id];
      ++m.aborted;
      m.abort_status = a->status;
    }
  }
  return out;
}

/// A message/cpim body (RFC 3862): message headers, a blank line, MIME headers, a blank
/// line, the content.
std::string cpim(std::string_view inner_type, std::string_view content) {
  return "From: Alice <im:alice@example.com>\r\n"
         "To: Bob <im:bob@example.com>\r\n"
         "DateTime: 2006-05-15T15:02:31-03:00\r\n"
         "\r\n"
         "Content-Disposition: inline\r\n"
         "Content-Type: " +
         std::string(inner_type) +
         "\r\n"
         "\r\n" +
         std::string(content);
}

// A peer that is not one of the pair: requests crafted by hand come from here.
constexpr std::string_view carol = "msrp://carol.example.com:7777/crafted1;tcp";

/// A request written by hand.
struct request_spec {
  std::string tid = "tx000001";
  std::string method = "SEND";
  std::string to = {};
  std::string from = std::string(carol);
  std::optional<std::string> message_id = "msg0001";
  std::optional<std::string> byte_range = {};
  std::vector<header_field> headers = {};   // after Byte-Range, before Content-Type
  std::string content_type = "text/plain";  // empty: no body
  std::string body = {};
  end_flag flag = end_flag::complete;
};

std::string wire_bytes(const request_spec& r) {
  message m;
  m.transaction_id = r.tid;
  m.method = r.method;
  m.headers.push_back({"To-Path", r.to});
  m.headers.push_back({"From-Path", r.from});
  if (r.message_id) m.headers.push_back({"Message-ID", *r.message_id});
  if (r.byte_range) m.headers.push_back({"Byte-Range", *r.byte_range});
  for (const auto& h : r.headers)
    m.headers.push_back(h);
  if (!r.content_type.empty()) m.headers.push_back({"Content-Type", r.content_type});
  return serialize(m, r.content_type.empty() ? std::string_view{} : r.body, r.flag).to_string();
}

std::string bob_uri(pair& p) {
  return p.bob().local_uri(p.bob_session).to_string();
}

/// Feeds a crafted request to Bob on `connection` and returns his answers there.
std::vector<test::parsed_frame> to_bob(pair& p, const request_spec& r, connection_id c = 1) {
  p.bob().receive(c, wire_bytes(r));
  p.drain();
  return take_output(p.bob(), c);
}

// --- Sending and outcomes (RFC 4975 §7.1.1, §5.3) ------------------------------------------

TEST(EndpointSend, TextWithSuccessReportIsDelivered) {
  pair p;
  const auto h = p.alice().send(p.alice_session, text("Hello, Bob!", report_mode::yes));
  EXPECT_NE(h, 0u);
  p.pump();

  const auto done = finished(p.alice_events, h);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].session, p.alice_session);
  EXPECT_EQ(done[0].outcome, send_outcome::delivered);
  EXPECT_EQ(done[0].status, 200);

  ASSERT_EQ(p.bob_events.size(), 1u);
  const auto got = only<events::message_received>(p.bob_events);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].session, p.bob_session);
  EXPECT_EQ(got[0].body, "Hello, Bob!");
  EXPECT_EQ(got[0].head.content_type(), std::optional<std::string_view>("text/plain"));
  const auto sends = requests(p.wire(side::alice), "SEND");
  ASSERT_EQ(sends.size(), 1u);
  EXPECT_EQ(sends[0]->head.message_id(), std::optional<std::string_view>(got[0].message_id));
  EXPECT_EQ(sends[0]->head.header("Success-Report"), std::optional<std::string_view>("yes"));
}

// Found by the torture corpus (valid-odd.md, "Several frames back to back"): the success REPORT
// for a one-chunk message went out before the chunk's 200, though the response is due
// "immediately" (RFC 4975 §7.2) and §11.6 shows it first; a repeated message likewise.
TEST(EndpointReceive, DefectSuccessReportWentBeforeTheResponse) {
  pair p;
  p.alice().send(p.alice_session, text("Hello, Bob!", report_mode::yes));
  p.pump();
  const auto& frames = p.wire(side::bob).frames();
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_EQ(frames[0].head.status_code, 200);
  EXPECT_EQ(frames[1].head.method, "REPORT");
}

TEST(EndpointSend, DeliveredNeedsSuccessReportAndEveryResponse) {
  // Success-Report yes with Failure-Report yes: delivered once the REPORT covers every byte
  // and every chunk got its 200, in whichever order they arrive.
  for (const bool report_first : {false, true}) {
    SCOPED_TRACE(report_first ? "REPORT first" : "200 first");
    pair p;
    p.bob_to_alice = link::drop;  // Bob's answers are replayed by hand below
    const auto h = p.alice().send(p.alice_session, text("Hi", report_mode::yes));
    p.pump();
    EXPECT_TRUE(finished(p.alice_events, h).empty()) << "an outcome before any answer";

    const auto answers = responses(p.wire(side::bob));
    const auto reports = requests(p.wire(side::bob), "REPORT");
    ASSERT_EQ(answers.size(), 1u);
    ASSERT_EQ(reports.size(), 1u);
    EXPECT_EQ(answers[0]->head.status_code, 200);
    const auto* first = report_first ? reports[0] : answers[0];
    const auto* second = report_first ? answers[0] : reports[0];

    p.alice().receive(1, replay(*first));
    p.drain();
    EXPECT_TRUE(finished(p.alice_events, h).empty()) << "delivered on half the confirmation";
    p.alice().receive(1, replay(*second));
    p.drain();
    const auto done = finished(p.alice_events, h);
    ASSERT_EQ(done.size(), 1u);
    EXPECT_EQ(done[0].outcome, send_outcome::delivered);
    EXPECT_EQ(done[0].status, 200);
    EXPECT_TRUE(p.alice().output(1).empty()) << "Alice answered a REPORT or a response";
  }
}

TEST(EndpointSend, FailureReportOnlyIsDeliveredOnTheResponse) {
  pair p;
  p.bob_to_alice = link::drop;
  const auto h = p.alice().send(p.alice_session, text("Hi"));
  p.pump();
  EXPECT_TRUE(finished(p.alice_events, h).empty()) << "delivered before the 200";
  EXPECT_TRUE(requests(p.wire(side::bob), "REPORT").empty()) << "a REPORT nobody asked for";
  const auto answers = responses(p.wire(side::bob));
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0]->head.status_code, 200);

  p.alice().receive(1, replay(*answers[0]));
  p.drain();
  const auto done = finished(p.alice_events, h);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].outcome, send_outcome::delivered);
  EXPECT_EQ(done[0].status, 200);
}

TEST(EndpointSend, WithoutReportsIsSentOnceTheLastByteIsWritten) {
  // Failure-Report no, and partial (no 200 will come, §7.2): `sent` when the bytes are out.
  for (const auto failure : {report_mode::no, report_mode::partial}) {
    SCOPED_TRACE(failure == report_mode::no ? "Failure-Report no" : "Failure-Report partial");
    pair p;
    p.alice_to_bob = link::hold;
    const auto h =
        p.alice().send(p.alice_session, text("fire and forget", report_mode::no, failure));
    p.pump();
    EXPECT_TRUE(finished(p.alice_events, h).empty()) << "sent before a byte was written";

    p.alice_to_bob = link::deliver;
    p.pump();
    const auto done = finished(p.alice_events, h);
    ASSERT_EQ(done.size(), 1u);
    EXPECT_EQ(done[0].outcome, send_outcome::sent);
    EXPECT_TRUE(p.wire(side::bob).frames().empty()) << "Bob answered a request that asked for none";
    const auto got = only<events::message_received>(p.bob_events);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].body, "fire and forget");
    EXPECT_FALSE(p.alice().next_deadline()) << "a timer for a message that expects nothing";
  }
}

TEST(EndpointSend, StreamsReaderBodyWithinTheOutputWindow) {
  pair_options o;
  o.alice_config.chunk_ceiling = 100'000;
  o.random_reads = true;
  pair p(o);
  const body_spec body{.seed = 7, .size = 5 * 1024 * 1024 + 123};
  auto stats = std::make_shared<reader_stats>();
  const auto h =
      p.alice().send(p.alice_session, from_reader("application/octet-stream", body, stats));
  p.pump();

  const auto done = finished(p.alice_events, h);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].outcome, send_outcome::delivered);
  EXPECT_GT(stats->calls, 1u);
  EXPECT_LE(stats->largest, o.alice_config.output_window) << "the reader was asked for too much";
  EXPECT_GE(stats->bytes, body.size);
  EXPECT_LE(p.max_output(side::alice), o.alice_config.output_window);
  EXPECT_GT(p.max_output(side::alice), 0u);

  EXPECT_TRUE(only<events::message_received>(p.bob_events).empty());
  const auto started = only<events::message_started>(p.bob_events);
  ASSERT_EQ(started.size(), 1u);
  EXPECT_EQ(started[0].session, p.bob_session);
  EXPECT_EQ(started[0].size, std::optional<std::uint64_t>(body.size));
  EXPECT_EQ(started[0].head.content_type(),
            std::optional<std::string_view>("application/octet-stream"));
  const auto all = reassemble(p.bob_events);
  ASSERT_EQ(all.size(), 1u);
  const auto& got = all.begin()->second;
  EXPECT_EQ(got.completed, 1);
  EXPECT_EQ(got.aborted, 0);
  EXPECT_EQ(got.size, std::optional<std::uint64_t>(body.size));
  EXPECT_EQ(got.bytes.size(), body.size);
  EXPECT_TRUE(got.bytes == bytes_of(body)) << "reassembled bytes differ";

  // As few chunks as the ceiling allows, each interruptible, in order, one Message-ID.
  const auto sends = requests(p.wire(side::alice), "SEND");
  ASSERT_EQ(sends.size(), (body.size + 99'999) / 100'000);
  std::uint64_t next = 1;
  std::set<std::string> tids;
  for (std::size_t i = 0; i < sends.size(); ++i) {
    const auto& f = *sends[i];
    const bool last = i + 1 == sends.size();
    EXPECT_EQ(f.body_size, last ? body.size - next + 1 : 100'000u) << "chunk " << i;
    EXPECT_EQ(f.flag, last ? end_flag::complete : end_flag::continued) << "chunk " << i;
    const auto range = f.head.byte_range();
    ASSERT_TRUE(range) << "chunk " << i;
    EXPECT_EQ(range->start, next);
    EXPECT_EQ(range->total, std::optional<std::uint64_t>(body.size));
    if (f.body_size > 2048) {
      EXPECT_FALSE(range->end) << "a chunk over 2048 bytes needs '*'";
    }
    EXPECT_EQ(f.head.message_id(), sends[0]->head.message_id());
    tids.insert(f.head.transaction_id);
    next += f.body_size;
  }
  EXPECT_EQ(tids.size(), sends.size()) << "transaction ids repeat";
}

/// Starts an 8 MiB file, lets some of it out, then sends a chat line. Returns the wire
/// offset of Alice's output when the chat line was queued.
std::uint64_t file_then_chat(pair& p, const body_spec& file, message_handle& file_handle,
                             message_handle& chat_handle) {
  file_handle = p.alice().send(p.alice_session, from_reader("application/octet-stream", file));
  p.pump(300'000);
  EXPECT_TRUE(finished(p.alice_events, file_handle).empty());
  const auto at = p.wire(side::alice).size();
  chat_handle = p.alice().send(p.alice_session, text("are you there?"));
  p.pump();
  return at;
}

TEST(EndpointSend, ChatLineOvertakesFileAfterAtMostOneChunk) {
  pair p;
  const body_spec file{.seed = 11, .size = 8u << 20};
  message_handle f = 0;
  message_handle c = 0;
  const auto at = file_then_chat(p, file, f, c);

  ASSERT_EQ(finished(p.alice_events, f).size(), 1u);
  ASSERT_EQ(finished(p.alice_events, c).size(), 1u);
  EXPECT_EQ(finished(p.alice_events, f)[0].outcome, send_outcome::delivered);
  EXPECT_EQ(finished(p.alice_events, c)[0].outcome, send_outcome::delivered);

  // Bob has the chat line before the file is complete.
  const auto chat_at = index_of<events::message_received>(
      p.bob_events, [](const auto& m) { return m.body == "are you there?"; });
  const auto file_at =
      index_of<events::message_completed>(p.bob_events, [](const auto&) { return true; });
  ASSERT_GE(chat_at, 0);
  ASSERT_GE(file_at, 0);
  EXPECT_LT(chat_at, file_at);

  // On the wire: at most one chunk of the file ends between queueing and the chat line, and
  // what went before it is no more than the window that was already full plus the 2048
  // bytes a chunk needs before it may be interrupted.
  const wire_frame* chat = nullptr;
  int file_chunks_before = 0;
  int file_chunks = 0;
  for (const auto& fr : p.wire(side::alice).frames()) {
    if (fr.head.content_type() == std::optional<std::string_view>("text/plain")) {
      chat = &fr;
    } else if (fr.head.method == "SEND") {
      ++file_chunks;
      if (!chat && fr.end > at) ++file_chunks_before;
    }
  }
  ASSERT_NE(chat, nullptr);
  EXPECT_LE(file_chunks_before, 1);
  EXPECT_LE(chat->begin - at, p.config_of(side::alice).output_window + 4096);
  EXPECT_EQ(file_chunks, 2) << "interrupted more often than other traffic required";
}

TEST(EndpointSend, InterruptedChunkEndsWithPlusAndResumesAtTheNextByte) {
  pair p;
  const body_spec file{.seed = 12, .size = 8u << 20};
  message_handle f = 0;
  message_handle c = 0;
  file_then_chat(p, file, f, c);

  std::vector<const wire_frame*> chunks;
  for (const auto* fr : requests(p.wire(side::alice), "SEND")) {
    if (fr->head.content_type() == std::optional<std::string_view>("application/octet-stream")) {
      chunks.push_back(fr);
    }
  }
  ASSERT_GE(chunks.size(), 2u);
  std::uint64_t next = 1;
  std::string bytes;
  for (std::size_t i = 0; i < chunks.size(); ++i) {
    const auto& fr = *chunks[i];
    const auto range = fr.head.byte_range();
    ASSERT_TRUE(range);
    EXPECT_EQ(range->start, next) << "chunk " << i << " does not resume at the next byte";
    EXPECT_EQ(range->total, std::optional<std::uint64_t>(file.size));
    if (fr.body_size > 2048) {
      EXPECT_FALSE(range->end) << "chunk " << i << " is not interruptible";
    }
    if (i + 1 < chunks.size()) {
      EXPECT_EQ(fr.flag, end_flag::continued) << "chunk " << i;
      EXPECT_GE(fr.body_size, 2048u) << "interrupted before 2048 bytes";
    } else {
      EXPECT_EQ(fr.flag, end_flag::complete);
    }
    next += fr.body_size;
    bytes += fr.body;
  }
  EXPECT_EQ(next, file.size + 1);
  EXPECT_TRUE(bytes == bytes_of(file)) << "chunk bodies do not make up the file";
}

TEST(EndpointSend, ResponseInterruptsChunk) {
  // Responses go out before the rest of a chunk in progress (§7.1.1).
  pair p;
  const body_spec file{.seed = 13, .size = 8u << 20};
  const auto f = p.alice().send(p.alice_session, from_reader("application/octet-stream", file));
  p.pump(300'000);
  ASSERT_EQ(only<events::message_started>(p.bob_events).size(), 1u);  // Bob is bound now
  const auto ping = p.bob().send(p.bob_session, text("ping"));
  p.pump();

  ASSERT_EQ(finished(p.bob_events, ping).size(), 1u);
  EXPECT_EQ(finished(p.bob_events, ping)[0].outcome, send_outcome::delivered);
  ASSERT_EQ(finished(p.alice_events, f).size(), 1u);
  EXPECT_EQ(finished(p.alice_events, f)[0].outcome, send_outcome::delivered);
  const auto got = only<events::message_received>(p.alice_events);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].body, "ping");

  const auto& frames = p.wire(side::alice).frames();
  int response_at = -1;
  int last_chunk_at = -1;
  int chunks = 0;
  for (std::size_t i = 0; i < frames.size(); ++i) {
    if (!frames[i].head.is_request()) response_at = static_cast<int>(i);
    if (frames[i].head.method == "SEND") {
      ++chunks;
      last_chunk_at = static_cast<int>(i);
    }
  }
  ASSERT_GE(response_at, 0);
  EXPECT_LT(response_at, last_chunk_at) << "the 200 waited for the whole file";
  EXPECT_EQ(chunks, 2);
}

TEST(EndpointSend, AbortEndsTheChunkWithHash) {
  pair p;
  const body_spec file{.seed = 14, .size = 1u << 20};
  const auto f = p.alice().send(p.alice_session, from_reader("application/octet-stream", file));
  p.pump(100'000);
  ASSERT_TRUE(finished(p.alice_events, f).empty());
  const auto before = p.alice().bytes_sent(f);
  EXPECT_GT(before, 0u);
  EXPECT_LT(before, file.size);
  p.alice().abort(f);
  p.pump();
  p.advance(200s);
  p.pump();

  const auto done = finished(p.alice_events, f);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].outcome, send_outcome::aborted);

  const auto sends = requests(p.wire(side::alice), "SEND");
  ASSERT_FALSE(sends.empty());
  std::uint64_t sent = 0;
  for (std::size_t i = 0; i < sends.size(); ++i) {
    EXPECT_EQ(sends[i]->flag, i + 1 == sends.size() ? end_flag::aborted : end_flag::continued);
    sent += sends[i]->body_size;
  }
  EXPECT_LT(sent, file.size);

  const auto all = reassemble(p.bob_events);
  ASSERT_EQ(all.size(), 1u);
  const auto& got = all.begin()->second;
  EXPECT_EQ(got.started, 1);
  EXPECT_EQ(got.aborted, 1);
  EXPECT_EQ(got.abort_status, 0);
  EXPECT_EQ(got.completed, 0);
  EXPECT_EQ(got.whole, 0);
  EXPECT_TRUE(got.bytes == bytes_of(file, 0, got.bytes.size()));
}

TEST(EndpointSend, AbortBeforeAnyByteSendsNothing) {
  pair p;
  // Bob is not bound yet, so his message waits in the queue.
  const auto h = p.bob().send(p.bob_session, text("never mind"));
  p.pump();
  EXPECT_TRUE(p.wire(side::bob).frames().empty());
  p.bob().abort(h);
  p.drain();
  p.alice().send_empty(p.alice_session);
  p.pump();

  const auto done = finished(p.bob_events, h);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].outcome, send_outcome::aborted);
  EXPECT_TRUE(requests(p.wire(side::bob), "SEND").empty());
  EXPECT_TRUE(only<events::message_received>(p.alice_events).empty());
}

TEST(EndpointSend, EmptySendBindsThePassiveSide) {
  pair p;
  p.bob_to_alice = link::drop;
  const auto h = p.alice().send_empty(p.alice_session);
  p.pump();

  const auto sends = requests(p.wire(side::alice), "SEND");
  ASSERT_EQ(sends.size(), 1u);
  EXPECT_EQ(sends[0]->head.header("Byte-Range"), std::optional<std::string_view>("1-0/0"));
  EXPECT_FALSE(sends[0]->head.content_type());
  EXPECT_FALSE(sends[0]->has_body);
  EXPECT_EQ(sends[0]->body_size, 0u);
  EXPECT_TRUE(sends[0]->head.message_id());
  EXPECT_EQ(sends[0]->flag, end_flag::complete);
  EXPECT_TRUE(finished(p.alice_events, h).empty()) << "delivered before the 200";

  const auto answers = responses(p.wire(side::bob));
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0]->head.status_code, 200);
  p.alice().receive(1, replay(*answers[0]));
  p.drain();
  const auto done = finished(p.alice_events, h);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].outcome, send_outcome::delivered);
  EXPECT_EQ(done[0].status, 200);

  // Bob is bound to the connection now: his message reaches Alice.
  p.bob_to_alice = link::deliver;
  const auto reply = p.bob().send(p.bob_session, text("hi Alice"));
  p.pump();
  const auto got = only<events::message_received>(p.alice_events);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].body, "hi Alice");
  EXPECT_EQ(got[0].session, p.alice_session);
  ASSERT_EQ(finished(p.bob_events, reply).size(), 1u);
  EXPECT_EQ(finished(p.bob_events, reply)[0].outcome, send_outcome::delivered);
}

TEST(EndpointSend, PassiveSideSendsOnceBound) {
  pair p;
  const auto h = p.bob().send(p.bob_session, text("early"));
  p.pump();
  EXPECT_TRUE(p.wire(side::bob).frames().empty()) << "Bob sent before any connection was his";
  EXPECT_TRUE(finished(p.bob_events, h).empty());

  p.alice().send_empty(p.alice_session);
  p.pump();
  const auto got = only<events::message_received>(p.alice_events);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].body, "early");
  ASSERT_EQ(finished(p.bob_events, h).size(), 1u);
  EXPECT_EQ(finished(p.bob_events, h)[0].outcome, send_outcome::delivered);
}

TEST(EndpointSend, EveryChunkCarriesTheSameHeadersWithContentTypeLast) {
  pair_options o;
  o.alice_config.chunk_ceiling = 4000;
  pair p(o);
  const body_spec body{.seed = 15, .size = 10'000};
  auto m = from_reader("application/octet-stream", body);
  m.success_report = report_mode::yes;
  m.failure_report = report_mode::partial;
  m.headers = {{"Content-Disposition", "attachment; filename=\"a.bin\""}};
  const auto h = p.alice().send(p.alice_session, std::move(m));
  p.pump();

  const auto sends = requests(p.wire(side::alice), "SEND");
  ASSERT_EQ(sends.size(), 3u);
  for (const auto* f : sends) {
    ASSERT_FALSE(f->head.headers.empty());
    EXPECT_EQ(f->head.headers.back().name, "Content-Type");
    EXPECT_EQ(f->head.header("Content-Disposition"),
              std::optional<std::string_view>("attachment; filename=\"a.bin\""));
    EXPECT_EQ(f->head.header("Success-Report"), std::optional<std::string_view>("yes"));
    EXPECT_EQ(f->head.header("Failure-Report"), std::optional<std::string_view>("partial"));
    EXPECT_EQ(f->head.message_id(), sends[0]->head.message_id());
  }
  // The last chunk is 2000 bytes: small enough to declare its end exactly.
  EXPECT_EQ(sends[2]->head.header("Byte-Range"),
            std::optional<std::string_view>("8001-10000/10000"));
  ASSERT_EQ(finished(p.alice_events, h).size(), 1u);
  EXPECT_EQ(finished(p.alice_events, h)[0].outcome, send_outcome::delivered);
  const auto got = only<events::message_received>(p.bob_events);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(got[0].body == bytes_of(body));
  EXPECT_EQ(got[0].head.header("Content-Disposition"),
            std::optional<std::string_view>("attachment; filename=\"a.bin\""));
}

TEST(EndpointSend, MessageIdsAreDistinct) {
  pair p;
  for (int i = 0; i < 20; ++i)
    p.alice().send(p.alice_session, text("m" + std::to_string(i)));
  p.pump();
  std::set<std::string> ids;
  for (const auto* f : requests(p.wire(side::alice), "SEND"))
    ids.insert(std::string(f->head.message_id().value_or("")));
  EXPECT_EQ(ids.size(), 20u);
  EXPECT_EQ(only<events::message_received>(p.bob_events).size(), 20u);
}

TEST(EndpointSend, ReaderErrorFailsTheMessage) {
  pair p;
  const body_spec body{.seed = 16, .size = 1u << 20};
  outgoing_message m;
  m.content_type = "application/octet-stream";
  m.size = body.size;
  m.read = [body](std::uint64_t offset, std::span<char> into) -> result<std::size_t> {
    if (offset >= 200'000) return std::make_error_code(std::errc::io_error);
    const auto n =
        static_cast<std::size_t>(std::min<std::uint64_t>(into.size(), body.size - offset));
    fill(body, offset, into.first(n));
    return n;
  };
  const auto h = p.alice().send(p.alice_session, std::move(m));
  p.pump();

  const auto done = finished(p.alice_events, h);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].outcome, send_outcome::failed);
  EXPECT_EQ(done[0].status, 0) << "a local cause has status 0";
  const auto sends = requests(p.wire(side::alice), "SEND");
  ASSERT_FALSE(sends.empty());
  EXPECT_EQ(sends.back()->flag, end_flag::aborted) << "the message must end with '#'";
  const auto all = reassemble(p.bob_events);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all.begin()->second.completed, 0);
  EXPECT_EQ(all.begin()->second.whole, 0);
  EXPECT_EQ(all.begin()->second.aborted, 1);
}

TEST(EndpointSend, IgnoresUnknownAndDuplicateResponses) {
  pair_options o;
  o.alice_config.chunk_ceiling = 1000;
  pair p(o);
  p.bob_to_alice = link::drop;
  const auto h = p.alice().send(p.alice_session, text(std::string(3000, 'x')));
  p.pump();
  const auto answers = responses(p.wire(side::bob));
  ASSERT_EQ(answers.size(), 3u);
  for (const auto* a : answers)
    EXPECT_EQ(a->head.status_code, 200);

  // Two chunks confirmed twice each is still not three chunks confirmed.
  for (int i = 0; i < 2; ++i) {
    p.alice().receive(1, replay(*answers[0]));
    p.alice().receive(1, replay(*answers[1]));
  }
  p.drain();
  EXPECT_TRUE(finished(p.alice_events, h).empty()) << "duplicate 200s counted as new ones";
  p.alice().receive(1, replay(*answers[2]));
  p.drain();
  ASSERT_EQ(finished(p.alice_events, h).size(), 1u);
  EXPECT_EQ(finished(p.alice_events, h)[0].outcome, send_outcome::delivered);

  // After the outcome: a duplicate 200, a late error for a confirmed chunk, and a response
  // nobody asked for change nothing.
  const auto before = p.alice_events.size();
  p.alice().receive(1, replay(*answers[2]));
  auto late = answers[1]->head;
  late.status_code = 413;
  late.comment = "too late";
  p.alice().receive(1, serialize(late).to_string());
  message stray;
  stray.transaction_id = "unknown9999";
  stray.status_code = 200;
  stray.comment = "OK";
  stray.headers = {{"To-Path", p.alice().local_uri(p.alice_session).to_string()},
                   {"From-Path", bob_uri(p)}};
  p.alice().receive(1, serialize(stray).to_string());
  p.drain();
  EXPECT_EQ(p.alice_events.size(), before);
  EXPECT_TRUE(p.alice().output(1).empty()) << "a response was answered";
  EXPECT_FALSE(p.alice().next_deadline());
}

TEST(EndpointSend, OutputStaysWithinTheWindow) {
  // endpoint.hpp: output() holds at most output_window bytes. Small chunks (at most 2048
  // bytes, so written whole), responses and REPORTs must wait for room like body bytes do.
  pair_options o;
  o.alice_config.output_window = 4096;
  o.bob_config.output_window = 4096;
  o.check_window = false;  // checked below, once, with the sizes
  pair p(o);
  for (int i = 0; i < 3; ++i)
    p.alice().send(p.alice_session, text(std::string(2000, 'a'), report_mode::yes));
  p.pump();
  EXPECT_LE(p.max_output(side::alice), 4096u) << "Alice's output() outgrew the window";
  EXPECT_LE(p.max_output(side::bob), 4096u) << "Bob's output() outgrew the window";
  EXPECT_EQ(only<events::message_received>(p.bob_events).size(), 3u);
}

/// Sends `body` (20000 bytes) from Alice in a pair seeded `seed`, with a 4096-byte window,
/// and returns the pair for inspection.
std::unique_ptr<pair> send_through_window(std::uint64_t seed, std::string body) {
  pair_options o;
  o.seed = seed;
  o.alice_config.output_window = 4096;
  auto p = std::make_unique<pair>(o);
  auto shared = std::make_shared<const std::string>(std::move(body));
  outgoing_message m;
  m.content_type = "text/plain";
  m.size = shared->size();
  m.read = [shared](std::uint64_t offset, std::span<char> into) -> result<std::size_t> {
    const auto n = std::min<std::size_t>(into.size(), shared->size() - offset);
    std::copy_n(shared->data() + offset, n, into.data());
    return n;
  };
  p->alice().send(p->alice_session, std::move(m));
  p->pump();
  return p;
}

TEST(EndpointSend, BodyHoldingItsOwnEndLineEndsTheChunkBeforeIt) {
  // §7.1: the body must not contain the chunk's end-line. An interruptible chunk may end
  // early instead of picking a new id. A control run with the same seed shows which
  // transaction id the first chunk draws; the second run plants that chunk's end-line in the
  // body, at offsets around the first read's end so that it also straddles two reads.
  const auto control = send_through_window(3, std::string(20000, 'a'));
  const auto control_sends = requests(control->wire(side::alice), "SEND");
  ASSERT_EQ(control_sends.size(), 1u);
  const auto tid = control_sends[0]->head.transaction_id;
  const auto first_read = 4096 - serialize_head(control_sends[0]->head).size();
  int flag = 0;
  for (auto at = first_read - 24; at <= first_read + 2; ++at) {
    SCOPED_TRACE(at);
    const std::string end_line = std::string("\r\n-------") + tid + "$+#"[flag++ % 3] + "\r\n";
    std::string body = std::string(at, 'a') + end_line;
    body += std::string(20000 - body.size(), 'b');
    const auto p = send_through_window(3, body);
    const auto sends = requests(p->wire(side::alice), "SEND");
    ASSERT_GE(sends.size(), 2u);
    ASSERT_EQ(sends[0]->head.transaction_id, tid) << "the planted end-line is not this chunk's";
    EXPECT_EQ(sends[0]->flag, end_flag::continued);
    EXPECT_LT(sends[0]->body_size, at + end_line.size()) << "the body held its end-line";
    const auto got = only<events::message_received>(p->bob_events);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_TRUE(got[0].body == body) << "the message arrived altered";
  }
}

TEST(EndpointSend, SmallChunkPicksATransactionIdItsBodyLacks) {
  // A chunk of at most 2048 bytes declares its end, so it cannot be cut: its id must change.
  const auto control = send_through_window(4, std::string(1000, 'a'));
  const auto control_sends = requests(control->wire(side::alice), "SEND");
  ASSERT_EQ(control_sends.size(), 1u);
  const auto tid = control_sends[0]->head.transaction_id;
  const auto body = std::string(400, 'a') + "\r\n-------" + tid + "$\r\n" + std::string(572, 'b');
  ASSERT_EQ(body.size(), 1000u);
  const auto p = send_through_window(4, body);
  const auto sends = requests(p->wire(side::alice), "SEND");
  ASSERT_EQ(sends.size(), 1u);
  EXPECT_NE(sends[0]->head.transaction_id, tid);
  EXPECT_FALSE(contains_end_line(body, sends[0]->head.transaction_id));
  const auto got = only<events::message_received>(p->bob_events);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].body, body);
}

TEST(EndpointSend, ConcurrentFilesTakeTurns) {
  // §7.1.1: messages sharing a connection alternate, each chunk at least 2048 bytes.
  pair p;
  const body_spec a{.seed = 61, .size = 2u << 20};
  const body_spec b{.seed = 62, .size = 2u << 20};
  const auto ha = p.alice().send(p.alice_session, from_reader("application/octet-stream", a));
  const auto hb = p.alice().send(p.alice_session, from_reader("application/octet-stream", b));
  p.pump();
  for (const auto h : {ha, hb}) {
    ASSERT_EQ(finished(p.alice_events, h).size(), 1u);
    EXPECT_EQ(finished(p.alice_events, h)[0].outcome, send_outcome::delivered);
  }
  // Until one of them is done, no message sends two chunks in a row.
  const auto sends = requests(p.wire(side::alice), "SEND");
  ASSERT_GE(sends.size(), 4u);
  for (std::size_t i = 1; i < sends.size(); ++i) {
    if (sends[i - 1]->flag == end_flag::complete) break;
    EXPECT_GE(sends[i - 1]->body_size, 2048u) << "chunk " << i - 1 << " was cut too short";
    EXPECT_NE(sends[i]->head.message_id(), sends[i - 1]->head.message_id())
        << "chunk " << i << " did not give the other file a turn";
  }
  const auto all = reassemble(p.bob_events);
  ASSERT_EQ(all.size(), 2u);
  for (const auto& [id, m] : all) {
    EXPECT_EQ(m.completed, 1);
    EXPECT_TRUE(m.bytes == bytes_of(a) || m.bytes == bytes_of(b));
  }
}

// --- Timeouts (§7.1.1, §10.4) ----------------------------------------------------------------

TEST(EndpointTimeout, UnansweredChunkFailsWith408) {
  EXPECT_EQ(endpoint::config{}.transaction_timeout, 30s);
  for (const auto timeout : {std::chrono::milliseconds(30s), std::chrono::milliseconds(2500)}) {
    SCOPED_TRACE(timeout.count());
    pair_options o;
    o.alice_config.transaction_timeout = timeout;
    pair p(o);
    p.bob_to_alice = link::drop;
    const auto start = p.now;
    const auto h = p.alice().send(p.alice_session, text("anyone?"));
    p.pump();
    EXPECT_EQ(only<events::message_received>(p.bob_events).size(), 1u);
    EXPECT_EQ(p.alice().next_deadline(), std::optional<clock::time_point>(start + timeout));

    p.advance_to(start + timeout - 1ms);
    EXPECT_TRUE(finished(p.alice_events, h).empty()) << "timed out early";
    p.advance_to(start + timeout);
    const auto done = finished(p.alice_events, h);
    ASSERT_EQ(done.size(), 1u);
    EXPECT_EQ(done[0].outcome, send_outcome::failed);
    EXPECT_EQ(done[0].status, 408);
    EXPECT_FALSE(p.alice().next_deadline());
    p.advance(1h);
    EXPECT_EQ(finished(p.alice_events, h).size(), 1u);
  }
}

TEST(EndpointTimeout, TimerStartsWhenTheLastByteLeaves) {
  pair p;
  p.alice_to_bob = link::hold;
  const auto h = p.alice().send(p.alice_session, text("stuck"));
  p.pump();
  EXPECT_FALSE(p.alice().next_deadline()) << "a timer before the bytes left";
  p.advance(60s);
  EXPECT_TRUE(finished(p.alice_events, h).empty());

  const auto left = p.now;
  p.alice_to_bob = link::deliver;
  p.bob_to_alice = link::drop;
  p.pump();
  EXPECT_EQ(p.alice().next_deadline(), std::optional<clock::time_point>(left + 30s));
  p.advance_to(left + 30s);
  ASSERT_EQ(finished(p.alice_events, h).size(), 1u);
  EXPECT_EQ(finished(p.alice_events, h)[0].status, 408);
}

TEST(EndpointTimeout, MissingSuccessReportFails) {
  pair p;
  p.bob_to_alice = link::drop;
  const auto start = p.now;
  const auto h = p.alice().send(p.alice_session, text("confirm please", report_mode::yes));
  p.pump();
  const auto answers = responses(p.wire(side::bob));
  ASSERT_EQ(answers.size(), 1u);
  p.alice().receive(1, replay(*answers[0]));  // the 200 arrives, the REPORT never does
  p.drain();
  EXPECT_TRUE(finished(p.alice_events, h).empty());
  EXPECT_EQ(p.alice().next_deadline(), std::optional<clock::time_point>(start + 120s));
  p.advance_to(start + 120s);
  const auto done = finished(p.alice_events, h);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].outcome, send_outcome::failed);
  EXPECT_EQ(done[0].status, 408);
}

// --- Receiving (§7.3.1) ----------------------------------------------------------------------

TEST(EndpointReceive, ReassemblesChunksOutOfOrder) {
  pair p;
  const std::string body = "abcdefghijklmnopqrstuvwxyz";
  const auto to = bob_uri(p);
  std::vector<int> codes;
  auto feed = [&](std::string tid, std::string range, std::string piece, end_flag flag) {
    const auto answers =
        to_bob(p, {.tid = tid, .to = to, .byte_range = range, .body = piece, .flag = flag});
    for (const auto& a : answers) {
      EXPECT_EQ(a.head.transaction_id, tid);
      codes.push_back(a.head.status_code);
    }
  };
  feed("tx000001", "11-20/26", body.substr(10, 10), end_flag::continued);
  feed("tx000002", "21-26/26", body.substr(20), end_flag::complete);
  EXPECT_TRUE(only<events::message_received>(p.bob_events).empty()) << "delivered with a gap";
  feed("tx000003", "1-10/26", body.substr(0, 10), end_flag::continued);

  EXPECT_EQ(codes, (std::vector<int>{200, 200, 200}));
  const auto got = only<events::message_received>(p.bob_events);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].body, body);
  EXPECT_EQ(got[0].message_id, "msg0001");
  EXPECT_EQ(got[0].session, p.bob_session);
  EXPECT_EQ(got[0].head.transaction_id, "tx000003") << "not the head of the completing chunk";
}

TEST(EndpointReceive, LastChunkReceivedWinsWithUnknownTotals) {
  const std::string good = "0123456789ABCDEFGHIJ";
  struct piece {
    std::string range;
    std::string bytes;
    end_flag flag;
  };
  const piece garbled{"1-*/*", "0123XXXXXX", end_flag::continued};
  const piece middle{"5-*/*", good.substr(4, 11), end_flag::continued};
  const piece tail{"16-*/*", good.substr(15), end_flag::complete};  // `$` gives the total: 20
  struct order {
    std::vector<piece> pieces;
    std::string expected;
  };
  const std::vector<order> orders = {
      // The tail first, then the start, then a chunk that overwrites part of it, repeated.
      {{tail, garbled, middle, middle}, good},
      // The overlapping chunk first: the garbled one arrives last and takes precedence.
      {{middle, garbled, tail}, "0123XXXXXX" + good.substr(10)},
  };
  for (const auto& o : orders) {
    SCOPED_TRACE(o.expected);
    pair p;
    int n = 0;
    for (const auto& pc : o.pieces) {
      const auto answers = to_bob(p, {.tid = "tx00000" + std::to_string(++n),
                                      .to = bob_uri(p),
                                      .byte_range = pc.range,
                                      .body = pc.bytes,
                                      .flag = pc.flag});
      EXPECT_EQ(statuses(answers), std::vector<int>{200}) << "chunk " << n;
    }
    const auto got = only<events::message_received>(p.bob_events);
    ASSERT_EQ(got.size(), 1u) << "delivered " << got.size() << " times";
    EXPECT_EQ(got[0].body, o.expected);
  }
}

TEST(EndpointReceive, StreamsLargeMessageReceivedOutOfOrder) {
  pair_options o;
  o.bob_config.whole_message_limit = 8;
  pair p(o);
  const std::string body = "abcdefghijklmnopqrstuvwxyz";
  to_bob(p, {.tid = "tx000001",
             .to = bob_uri(p),
             .byte_range = "11-20/26",
             .body = body.substr(10, 10),
             .flag = end_flag::continued});
  to_bob(p, {.tid = "tx000002",
             .to = bob_uri(p),
             .byte_range = "1-10/26",
             .body = body.substr(0, 10),
             .flag = end_flag::continued});
  EXPECT_TRUE(only<events::message_completed>(p.bob_events).empty());
  to_bob(p, {.tid = "tx000003",
             .to = bob_uri(p),
             .byte_range = "21-26/26",
             .body = body.substr(20),
             .flag = end_flag::complete});

  EXPECT_TRUE(only<events::message_received>(p.bob_events).empty());
  const auto started = only<events::message_started>(p.bob_events);
  ASSERT_EQ(started.size(), 1u);
  EXPECT_EQ(started[0].size, std::optional<std::uint64_t>(26));
  EXPECT_EQ(started[0].head.transaction_id, "tx000001") << "not the head of the first chunk";
  const auto all = reassemble(p.bob_events);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all.begin()->first, "msg0001");
  EXPECT_EQ(all.begin()->second.completed, 1);
  EXPECT_EQ(all.begin()->second.size, std::optional<std::uint64_t>(26));
  EXPECT_EQ(all.begin()->second.bytes, body);
  EXPECT_LT(index_of<events::message_started>(p.bob_events, [](const auto&) { return true; }),
            index_of<events::message_piece>(p.bob_events, [](const auto&) { return true; }));
}

TEST(EndpointReceive, RepeatedMessageIsAcknowledgedButNotDeliveredAgain) {
  pair p;
  const auto first = to_bob(p, {.tid = "tx000001", .to = bob_uri(p), .body = "hello"});
  const auto again = to_bob(p, {.tid = "tx000002", .to = bob_uri(p), .body = "hello"});
  ASSERT_EQ(first.size(), 1u);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(first[0].head.status_code, 200);
  EXPECT_EQ(again[0].head.status_code, 200);
  EXPECT_EQ(again[0].head.transaction_id, "tx000002");
  EXPECT_EQ(only<events::message_received>(p.bob_events).size(), 1u);

  // And a streamed one, repeated after completion.
  pair_options o;
  o.bob_config.whole_message_limit = 2;
  pair q(o);
  for (const auto* tid : {"tx000003", "tx000004"}) {
    const auto answers =
        to_bob(q, {.tid = tid, .to = bob_uri(q), .byte_range = "1-5/5", .body = "hello"});
    EXPECT_EQ(statuses(answers), std::vector<int>{200});
  }
  EXPECT_EQ(only<events::message_completed>(q.bob_events).size(), 1u);
  EXPECT_EQ(only<events::message_started>(q.bob_events).size(), 1u);
}

TEST(EndpointReceive, FuzzFindStreamingSwitchAfterALaterChunk) {
  // Found by fuzz_endpoint: a buffered chunk at a later offset, then a chunk from the start
  // that crosses whole_message_limit. Switching to streaming handed out pieces the buffer
  // did not hold (an exception, or truncated pieces).
  pair_options o;
  o.bob_config.whole_message_limit = 16;
  pair p(o);
  to_bob(p, {.tid = "tx000001",
             .to = bob_uri(p),
             .byte_range = "21-30/*",
             .body = "KLMNOPQRST",
             .flag = end_flag::continued});
  to_bob(p, {.tid = "tx000002",
             .to = bob_uri(p),
             .byte_range = "1-*/*",
             .body = "abcdefghijklmnopqrst",
             .flag = end_flag::continued});
  to_bob(p, {.tid = "tx000003", .to = bob_uri(p), .byte_range = "31-32/32", .body = "UV"});
  std::string assembled(32, '?');
  for (const auto& piece : only<events::message_piece>(p.bob_events)) {
    ASSERT_LE(piece.offset + piece.bytes.size(), assembled.size());
    assembled.replace(piece.offset, piece.bytes.size(), piece.bytes);
  }
  EXPECT_EQ(assembled, "abcdefghijklmnopqrstKLMNOPQRSTUV");
  EXPECT_EQ(only<events::message_completed>(p.bob_events).size(), 1u);
}

TEST(EndpointReceive, RepeatedMessageGetsItsSuccessReportAgain) {
  // §5.4: acknowledgments the report headers ask for are still sent for duplicates, so a
  // sender that resends after losing the first REPORT can still learn of delivery.
  pair p;
  const std::vector<header_field> success = {{"Success-Report", "yes"}};
  std::vector<int> reports;
  for (const auto* tid : {"tx000001", "tx000002"}) {
    int n = 0;
    for (const auto& f : to_bob(p, {.tid = tid,
                                   .to = bob_uri(p),
                                   .byte_range = "1-5/5",
                                   .headers = success,
                                   .body = "hello"})) {
      if (f.head.method == "REPORT") ++n;
    }
    reports.push_back(n);
  }
  EXPECT_EQ(reports, (std::vector<int>{1, 1}));
  EXPECT_EQ(only<events::message_received>(p.bob_events).size(), 1u);
}

TEST(EndpointReceive, WholeUpToTheLimitStreamedBeyond) {
  pair_options o;
  o.bob_config.whole_message_limit = 1000;
  pair p(o);
  p.alice().send(p.alice_session, text(std::string(1000, 'a')));
  p.pump();
  EXPECT_EQ(only<events::message_received>(p.bob_events).size(), 1u);
  EXPECT_TRUE(only<events::message_started>(p.bob_events).empty());

  p.alice().send(p.alice_session, text(std::string(1001, 'b')));
  p.pump();
  EXPECT_EQ(only<events::message_received>(p.bob_events).size(), 1u);
  const auto started = only<events::message_started>(p.bob_events);
  ASSERT_EQ(started.size(), 1u);
  const auto all = reassemble(p.bob_events);
  const auto& streamed = all.at(started[0].message_id);
  EXPECT_EQ(streamed.completed, 1);
  EXPECT_EQ(streamed.bytes, std::string(1001, 'b'));
}

TEST(EndpointReceive, ResponseGoesToThePreviousHop) {
  // §7.2: a response to SEND carries the leftmost From-Path URI as its To-Path, the
  // responder's URI as From-Path, and the request's transaction id.
  pair p;
  const std::string relay = "msrp://relay.example.com:9000/hop1;tcp";
  const auto answers = to_bob(p, {.tid = "abcdEFGH1234",
                                  .to = bob_uri(p),
                                  .from = relay + " " + std::string(carol),
                                  .body = "via relay"});
  ASSERT_EQ(answers.size(), 1u);
  const auto& r = answers[0].head;
  EXPECT_EQ(r.transaction_id, "abcdEFGH1234");
  EXPECT_EQ(r.status_code, 200);
  const auto to = r.to_path();
  const auto from = r.from_path();
  ASSERT_TRUE(to);
  ASSERT_TRUE(from);
  ASSERT_EQ(to->size(), 1u);
  EXPECT_EQ((*to)[0], *uri::parse(relay));
  ASSERT_EQ(from->size(), 1u);
  EXPECT_EQ((*from)[0], p.bob().local_uri(p.bob_session));
  EXPECT_EQ(answers[0].flag, end_flag::complete);
}

/// One line per event, pieces joined per message, so logs compare across input splits.
std::string event_log(const std::vector<event>& events) {
  std::string log;
  std::map<std::string, std::string> pieces;
  for (const auto& e : events) {
    if (const auto* r = std::get_if<events::message_received>(&e)) {
      log += "received " + r->message_id + " " + test::escape(r->body) + "\n";
    } else if (const auto* s = std::get_if<events::message_started>(&e)) {
      log += "started " + s->message_id + " " + std::to_string(s->size.value_or(0)) + "\n";
    } else if (const auto* p = std::get_if<events::message_piece>(&e)) {
      auto& bytes = pieces[p->message_id];
      if (bytes.size() < p->offset + p->bytes.size()) bytes.resize(p->offset + p->bytes.size());
      bytes.replace(p->offset, p->bytes.size(), p->bytes);
    } else if (const auto* c = std::get_if<events::message_completed>(&e)) {
      log += "completed " + c->message_id + " " + std::to_string(c->size) + " " +
             test::escape(pieces[c->message_id]) + "\n";
    } else if (const auto* a = std::get_if<events::message_aborted>(&e)) {
      log += "aborted " + a->message_id + " " + std::to_string(a->status) + "\n";
    } else if (const auto* f = std::get_if<events::connection_failed>(&e)) {
      log += "connection_failed " + f->error.message() + "\n";
    } else {
      log += "other\n";
    }
  }
  return log;
}

TEST(EndpointReceive, SameOutcomeAtEverySplit) {
  // STYLE §9: the input whole, split in two at every byte, and one byte at a time must give
  // the same events and the same answers. The input mixes a whole message, a chunked one out
  // of order, a streamed one, a message/cpim with a refused payload, a REPORT and a 481.
  pair_options o;
  o.bob_settings.accept_types = {"text/plain", "message/cpim"};
  o.bob_settings.accept_wrapped_types = {"text/html"};
  o.bob_config.whole_message_limit = 100;
  std::string input;
  {
    pair p(o);
    const auto to = bob_uri(p);
    const std::vector<request_spec> requests_in = {
        {.tid = "tx000001", .to = to, .message_id = "whole1", .body = "hello"},
        {.tid = "tx000002",
         .to = to,
         .message_id = "chunky",
         .byte_range = "6-*/10",
         .body = "world",
         .flag = end_flag::complete},
        {.tid = "tx000003",
         .to = to,
         .message_id = "chunky",
         .byte_range = "1-5/10",
         .body = "hello",
         .flag = end_flag::continued},
        {.tid = "tx000004",
         .to = to,
         .message_id = "big1",
         .byte_range = "1-300/300",
         .body = std::string(150, 'x') + "\r\n-------tx00000" + std::string(134, 'y')},
        {.tid = "tx000005",
         .to = to,
         .message_id = "cpim1",
         .content_type = "message/cpim",
         .body = cpim("image/png", "not for you")},
        {.tid = "tx000006",
         .to = to,
         .message_id = "cpim2",
         .content_type = "message/cpim",
         .body = cpim("text/html", "<b>ok</b>")},
        {.tid = "tx000007",
         .method = "REPORT",
         .to = to,
         .message_id = "nosuch",
         .headers = {{"Status", "000 200 OK"}},
         .content_type = ""},
        {.tid = "tx000008", .to = "msrp://bob.example.com:8888/nosuch;tcp", .body = "lost"},
    };
    for (const auto& r : requests_in)
      input += wire_bytes(r);
  }
  const auto run = [&](const std::vector<std::size_t>& cuts) {
    pair p(o);
    std::size_t from = 0;
    std::vector<test::parsed_frame> answers;
    const auto feed = [&](std::string_view piece) {
      p.bob().receive(1, piece);
      for (auto& f : take_output(p.bob(), 1))
        answers.push_back(std::move(f));
    };
    for (const auto cut : cuts) {
      feed(std::string_view(input).substr(from, cut - from));
      from = cut;
    }
    feed(std::string_view(input).substr(from));
    p.drain();
    std::string log = event_log(p.bob_events);
    for (const auto& a : answers)
      log += "answer " + a.head.transaction_id + " " + std::to_string(a.head.status_code) + "\n";
    return log;
  };
  const auto whole = run({});
  // The whole run is right, too.
  EXPECT_NE(whole.find("received whole1 hello\n"), std::string::npos) << whole;
  EXPECT_NE(whole.find("received chunky helloworld\n"), std::string::npos) << whole;
  EXPECT_NE(whole.find("completed big1 300 "), std::string::npos) << whole;
  EXPECT_NE(whole.find("answer tx000005 415\n"), std::string::npos) << whole;
  EXPECT_NE(whole.find("aborted cpim1 415\n"), std::string::npos) << whole;
  EXPECT_EQ(whole.find("completed cpim1"), std::string::npos) << whole;
  EXPECT_NE(whole.find("completed cpim2 "), std::string::npos) << whole;
  EXPECT_EQ(whole.find("answer tx000007"), std::string::npos) << whole;
  EXPECT_NE(whole.find("answer tx000008 481\n"), std::string::npos) << whole;
  for (std::size_t cut = 1; cut < input.size(); ++cut) {
    const auto split = run({cut});
    EXPECT_EQ(split, whole) << "split at byte " << cut;
    if (split != whole) break;
  }
  std::vector<std::size_t> every;
  for (std::size_t i = 1; i < input.size(); ++i)
    every.push_back(i);
  EXPECT_EQ(run(every), whole) << "one byte at a time";
}

// --- Responses the engine gives (§7.2, §7.3, §10) -------------------------------------------

TEST(EndpointRespond, MessageOverMaxSizeIs413) {
  pair_options o;
  o.bob_settings.max_size = 1000;
  pair p(o);
  const auto fits = p.alice().send(p.alice_session, text(std::string(1000, 'f')));
  const auto big = p.alice().send(p.alice_session, text(std::string(1001, 'b')));
  p.pump();

  ASSERT_EQ(finished(p.alice_events, fits).size(), 1u);
  EXPECT_EQ(finished(p.alice_events, fits)[0].outcome, send_outcome::delivered);
  const auto done = finished(p.alice_events, big);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].outcome, send_outcome::failed);
  EXPECT_EQ(done[0].status, 413);
  const auto got = only<events::message_received>(p.bob_events);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].body.size(), 1000u);
  std::vector<int> codes;
  for (const auto* r : responses(p.wire(side::bob)))
    codes.push_back(r->head.status_code);
  EXPECT_EQ(codes, (std::vector<int>{200, 413}));
}

TEST(EndpointRespond, SenderStopsAfter413) {
  pair_options o;
  o.bob_settings.max_size = 100'000;
  o.alice_config.chunk_ceiling = 8192;
  pair p(o);
  const body_spec body{.seed = 21, .size = 4u << 20};
  const auto h = p.alice().send(p.alice_session, from_reader("application/octet-stream", body));
  p.pump();
  p.advance(1h);
  p.pump();

  const auto done = finished(p.alice_events, h);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].outcome, send_outcome::failed);
  EXPECT_EQ(done[0].status, 413);
  std::uint64_t sent = 0;
  for (const auto* f : requests(p.wire(side::alice), "SEND"))
    sent += f->body_size;
  EXPECT_LE(sent, 4 * o.alice_config.output_window) << "Alice went on sending after the 413";
  const auto all = reassemble(p.bob_events);
  for (const auto& [id, m] : all) {
    EXPECT_EQ(m.whole + m.completed, 0) << "a refused message was delivered";
    if (m.started) {
      EXPECT_EQ(m.aborted, 1);
      EXPECT_EQ(m.abort_status, 413);
    }
  }
}

TEST(EndpointRespond, UnknownTotalGrowingPastMaxSizeIs413) {
  pair_options o;
  o.bob_settings.max_size = 1000;
  pair p(o);
  const auto first = to_bob(p, {.tid = "tx000001",
                                .to = bob_uri(p),
                                .byte_range = "1-*/*",
                                .body = std::string(600, 'a'),
                                .flag = end_flag::continued});
  EXPECT_EQ(statuses(first), std::vector<int>{200});
  const auto second = to_bob(p, {.tid = "tx000002",
                                 .to = bob_uri(p),
                                 .byte_range = "601-*/*",
                                 .body = std::string(600, 'b'),
                                 .flag = end_flag::continued});
  EXPECT_EQ(statuses(second), std::vector<int>{413});
  const auto third = to_bob(p, {.tid = "tx000003",
                                .to = bob_uri(p),
                                .byte_range = "1201-1300/1300",
                                .body = std::string(100, 'c'),
                                .flag = end_flag::complete});
  ASSERT_EQ(statuses(third).size(), 1u);
  EXPECT_NE(statuses(third)[0], 200);
  EXPECT_TRUE(only<events::message_received>(p.bob_events).empty());
  EXPECT_TRUE(only<events::message_completed>(p.bob_events).empty());
}

/// The status Bob answers to a SEND of `content_type` with `body`, given his accept lists.
int answer_to(std::vector<std::string> accept, std::vector<std::string> wrapped,
              std::string content_type, std::string body = "x") {
  pair_options o;
  o.bob_settings.accept_types = std::move(accept);
  o.bob_settings.accept_wrapped_types = std::move(wrapped);
  pair p(o);
  const auto answers = to_bob(
      p, {.to = bob_uri(p), .content_type = std::move(content_type), .body = std::move(body)});
  const auto codes = statuses(answers);
  const auto delivered = only<events::message_received>(p.bob_events).size();
  if (codes.size() != 1) {
    ADD_FAILURE() << "expected one response, got " << codes.size();
    return -1;
  }
  EXPECT_EQ(delivered, codes[0] == 200 ? 1u : 0u) << "delivery disagrees with the response";
  return codes[0];
}

TEST(EndpointRespond, TypeOutsideAcceptTypesIs415) {
  struct row {
    std::vector<std::string> accept;
    std::string type;
    int status;
  };
  const std::vector<row> rows = {
      {{"text/plain"}, "text/plain", 200},
      {{"text/plain"}, "text/html", 415},
      {{"text/plain"}, "image/png", 415},
      {{"text/*"}, "text/html", 200},
      {{"text/*"}, "image/png", 415},
      {{"*"}, "image/png", 200},
      {{"*"}, "application/x-anything", 200},
      {{"text/plain", "image/*"}, "image/jpeg", 200},
      {{"text/plain", "image/*"}, "application/json", 415},
      {{"message/cpim"}, "text/plain", 415},  // wrapped types are not root types
  };
  for (const auto& r : rows) {
    SCOPED_TRACE(r.type + " against " + r.accept[0]);
    EXPECT_EQ(answer_to(r.accept, {}, r.type), r.status);
  }
}

TEST(EndpointRespond, MediaTypesMatchWithoutParametersOrCase) {
  // RFC 2045 §5.1: type and subtype are case-insensitive; parameters are not the type.
  EXPECT_EQ(answer_to({"text/plain"}, {}, "text/plain; charset=UTF-8"), 200);
  EXPECT_EQ(answer_to({"text/plain"}, {}, "Text/Plain"), 200);
  EXPECT_EQ(answer_to({"text/*"}, {}, "TEXT/html;charset=utf-8"), 200);
  EXPECT_EQ(answer_to({"text/plain"}, {}, "text/plainer"), 415);
}

TEST(EndpointRespond, Rejects415WithUnacceptableTypeOnTheSender) {
  pair_options o;
  o.bob_settings.accept_types = {"text/plain"};
  pair p(o);
  const auto h = p.alice().send(p.alice_session, outgoing_message::text("image/png", "\x89PNG"));
  p.pump();
  const auto done = finished(p.alice_events, h);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].outcome, send_outcome::failed);
  EXPECT_EQ(done[0].status, 415);
  EXPECT_TRUE(only<events::message_received>(p.bob_events).empty());
}

TEST(EndpointRespond, CpimPayloadOutsideAcceptedTypesIs415) {
  struct row {
    std::vector<std::string> accept;
    std::vector<std::string> wrapped;
    std::string inner;
    int status;
  };
  const std::vector<row> rows = {
      {{"message/cpim"}, {"text/plain"}, "text/plain", 200},
      {{"message/cpim"}, {"text/plain"}, "image/png", 415},
      {{"message/cpim"}, {"image/*"}, "image/gif", 200},
      {{"message/cpim"}, {"image/*"}, "text/plain", 415},
      {{"message/cpim", "text/*"}, {}, "text/html", 200},  // accept-types may be wrapped too
      {{"message/cpim", "text/*"}, {}, "application/pdf", 415},
      {{"message/cpim", "text/plain"}, {"image/png"}, "image/png", 200},
      {{"*"}, {}, "application/pdf", 200},
  };
  for (const auto& r : rows) {
    SCOPED_TRACE("message/cpim wrapping " + r.inner);
    EXPECT_EQ(answer_to(r.accept, r.wrapped, "message/cpim", cpim(r.inner, "payload")), r.status);
  }
}

TEST(EndpointRespond, StreamedCpimPayloadOutsideAcceptedTypesIs415) {
  pair_options o;
  o.bob_settings.accept_types = {"message/cpim"};
  o.bob_settings.accept_wrapped_types = {"text/plain"};
  o.bob_config.whole_message_limit = 16;
  pair p(o);
  const auto body = cpim("image/png", std::string(500, 'p'));
  const auto answers = to_bob(p, {.to = bob_uri(p), .content_type = "message/cpim", .body = body});
  EXPECT_EQ(statuses(answers), std::vector<int>{415});
  const auto all = reassemble(p.bob_events);
  for (const auto& [id, m] : all) {
    EXPECT_EQ(m.whole + m.completed, 0) << "a refused message was delivered";
    if (m.started) {
      EXPECT_EQ(m.aborted, 1);
      EXPECT_EQ(m.abort_status, 415);
    }
  }
}

TEST(EndpointRespond, CpimPayloadTypeInALaterChunkIsStillChecked) {
  // §7.1.1: the receiver cannot assume the sender's chunking; a relay may cut the message/cpim
  // headers anywhere. The wrapped Content-Type is refused wherever the cut falls.
  pair_options o;
  o.bob_settings.accept_types = {"message/cpim"};
  o.bob_settings.accept_wrapped_types = {"text/plain"};
  const auto body = cpim("image/png", "png bytes");
  const auto total = std::to_string(body.size());
  for (const std::size_t cut : {std::size_t{20}, std::size_t{110}}) {
    SCOPED_TRACE(cut);
    pair p(o);
    std::vector<int> codes;
    for (const auto& a : to_bob(p, {.tid = "tx000001",
                                   .to = bob_uri(p),
                                   .byte_range = "1-" + std::to_string(cut) + "/" + total,
                                   .content_type = "message/cpim",
                                   .body = body.substr(0, cut),
                                   .flag = end_flag::continued}))
      codes.push_back(a.head.status_code);
    for (const auto& a :
         to_bob(p, {.tid = "tx000002",
                   .to = bob_uri(p),
                   .byte_range = std::to_string(cut + 1) + "-" + total + "/" + total,
                   .content_type = "message/cpim",
                   .body = body.substr(cut)}))
      codes.push_back(a.head.status_code);
    EXPECT_TRUE(only<events::message_received>(p.bob_events).empty())
        << "a message/cpim wrapping image/png was delivered";
    EXPECT_NE(std::find(codes.begin(), codes.end(), 415), codes.end()) << "no 415";
  }
}

TEST(EndpointRespond, UnknownSessionIs481) {
  pair p;
  const auto answers =
      to_bob(p, {.to = "msrp://bob.example.com:8888/nosuchsession;tcp", .body = "hello?"});
  EXPECT_EQ(statuses(answers), std::vector<int>{481});
  EXPECT_TRUE(p.bob_events.empty());

  // The sender's side: a wrong remote path fails the message with 481.
  pair q;
  q.alice().set_remote_path(q.alice_session,
                            {*uri::parse("msrp://bob.example.com:8888/nosuchsession;tcp")});
  const auto h = q.alice().send(q.alice_session, text("hello?"));
  q.pump();
  const auto done = finished(q.alice_events, h);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].outcome, send_outcome::failed);
  EXPECT_EQ(done[0].status, 481);
  EXPECT_TRUE(q.bob_events.empty());
}

TEST(EndpointRespond, UnknownMethodIs501) {
  pair p;
  const auto answers = to_bob(p, {.tid = "foo12345",
                                  .method = "FOO",
                                  .to = bob_uri(p),
                                  .message_id = std::nullopt,
                                  .content_type = ""});
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].head.status_code, 501);
  EXPECT_EQ(answers[0].head.transaction_id, "foo12345");
  EXPECT_TRUE(p.bob_events.empty());
}

TEST(EndpointRespond, SecondConnectionIs506) {
  pair p;
  p.alice().send_empty(p.alice_session);
  p.pump();  // Bob's session is bound to connection 1 now
  const auto answers = to_bob(p, {.to = bob_uri(p), .body = "intruder"}, 2);
  EXPECT_EQ(statuses(answers), std::vector<int>{506});
  for (const auto& m : only<events::message_received>(p.bob_events))
    EXPECT_NE(m.body, "intruder");

  // Connection 1 still works.
  p.alice().send(p.alice_session, text("still here"));
  p.pump();
  const auto got = only<events::message_received>(p.bob_events);
  ASSERT_FALSE(got.empty());
  EXPECT_EQ(got.back().body, "still here");
}

TEST(EndpointRespond, FirstConnectionBindsAndSecondIs506) {
  pair p;
  EXPECT_EQ(statuses(to_bob(p, {.tid = "tx000001", .to = bob_uri(p), .body = "one"}, 7)),
            std::vector<int>{200});
  EXPECT_EQ(statuses(to_bob(p, {.tid = "tx000002", .to = bob_uri(p), .body = "two"}, 8)),
            std::vector<int>{506});
  EXPECT_EQ(
      statuses(to_bob(
          p, {.tid = "tx000003", .to = bob_uri(p), .message_id = "msg0003", .body = "three"}, 7)),
      std::vector<int>{200});
  const auto got = only<events::message_received>(p.bob_events);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].body, "one");
  EXPECT_EQ(got[1].body, "three");
}

TEST(EndpointRespond, SendWithoutMessageIdIs400) {
  pair p;
  const auto answers = to_bob(p, {.to = bob_uri(p), .message_id = std::nullopt, .body = "who?"});
  EXPECT_EQ(statuses(answers), std::vector<int>{400});
  EXPECT_TRUE(only<events::message_received>(p.bob_events).empty());
  EXPECT_TRUE(only<events::connection_failed>(p.bob_events).empty())
      << "a well-framed request must not cost the connection";

  const auto next = to_bob(p, {.tid = "tx000002", .to = bob_uri(p), .body = "fine"});
  EXPECT_EQ(statuses(next), std::vector<int>{200});
  EXPECT_EQ(only<events::message_received>(p.bob_events).size(), 1u);
}

TEST(EndpointRespond, FailureReportNoSuppressesEveryResponse) {
  pair_options o;
  o.bob_settings.accept_types = {"text/plain"};
  pair p(o);
  const std::vector<header_field> no = {{"Failure-Report", "no"}};
  EXPECT_TRUE(
      to_bob(p, {.tid = "tx000001", .to = bob_uri(p), .headers = no, .body = "ok"}).empty());
  EXPECT_EQ(only<events::message_received>(p.bob_events).size(), 1u);
  EXPECT_TRUE(to_bob(p, {.tid = "tx000002",
                         .to = bob_uri(p),
                         .message_id = "msg0002",
                         .headers = no,
                         .content_type = "image/png",
                         .body = "png"})
                  .empty());
  EXPECT_TRUE(to_bob(p, {.tid = "tx000003",
                         .to = "msrp://bob.example.com:8888/nosuch;tcp",
                         .message_id = "msg0003",
                         .headers = no,
                         .body = "lost"})
                  .empty());
  EXPECT_TRUE(to_bob(p, {.tid = "tx000004",
                         .to = bob_uri(p),
                         .message_id = std::nullopt,
                         .headers = no,
                         .body = "bad"})
                  .empty());
  EXPECT_EQ(only<events::message_received>(p.bob_events).size(), 1u);
}

TEST(EndpointRespond, FailureReportPartialSuppressesOnly200) {
  pair_options o;
  o.bob_settings.accept_types = {"text/plain"};
  pair p(o);
  const std::vector<header_field> partial = {{"Failure-Report", "partial"}};
  EXPECT_TRUE(
      to_bob(p, {.tid = "tx000001", .to = bob_uri(p), .headers = partial, .body = "ok"}).empty());
  EXPECT_EQ(only<events::message_received>(p.bob_events).size(), 1u);
  EXPECT_EQ(statuses(to_bob(p, {.tid = "tx000002",
                                .to = bob_uri(p),
                                .message_id = "msg0002",
                                .headers = partial,
                                .content_type = "image/png",
                                .body = "png"})),
            std::vector<int>{415});
  EXPECT_EQ(statuses(to_bob(p, {.tid = "tx000003",
                                .to = "msrp://bob.example.com:8888/nosuch;tcp",
                                .message_id = "msg0003",
                                .headers = partial,
                                .body = "lost"})),
            std::vector<int>{481});
}

TEST(EndpointRespond, ReportsAreNeverAnswered) {
  pair p;
  const std::vector<header_field> status = {{"Status", "000 200 OK"}};
  const std::vector<header_field> failure = {{"Status", "000 415 nope"}};
  EXPECT_TRUE(to_bob(p, {.tid = "rp000001",
                         .method = "REPORT",
                         .to = bob_uri(p),
                         .message_id = "unknownmsg",
                         .byte_range = "1-5/5",
                         .headers = status,
                         .content_type = ""})
                  .empty());
  EXPECT_TRUE(to_bob(p, {.tid = "rp000002",
                         .method = "REPORT",
                         .to = bob_uri(p),
                         .message_id = "unknownmsg",
                         .headers = failure,
                         .content_type = ""})
                  .empty());
  EXPECT_TRUE(to_bob(p, {.tid = "rp000003",
                         .method = "REPORT",
                         .to = "msrp://bob.example.com:8888/nosuch;tcp",
                         .message_id = "x1y2z3",
                         .headers = status,
                         .content_type = ""})
                  .empty());
  EXPECT_TRUE(to_bob(p, {.tid = "rp000004",
                         .method = "REPORT",
                         .to = bob_uri(p),
                         .message_id = std::nullopt,
                         .headers = status,
                         .content_type = ""})
                  .empty());
  EXPECT_TRUE(p.bob_events.empty());
}

// --- Reports (§7.1.2 - §7.1.4) --------------------------------------------------------------

TEST(EndpointReport, SuccessReportCoversTheWholeMessage) {
  for (const std::uint64_t ceiling : {UINT64_MAX, std::uint64_t{1000}}) {
    SCOPED_TRACE(ceiling);
    pair_options o;
    o.alice_config.chunk_ceiling = ceiling;
    pair p(o);
    const auto h = p.alice().send(p.alice_session, text(std::string(5000, 'r'), report_mode::yes));
    p.pump();

    ASSERT_EQ(finished(p.alice_events, h).size(), 1u);
    EXPECT_EQ(finished(p.alice_events, h)[0].outcome, send_outcome::delivered);
    const auto sends = requests(p.wire(side::alice), "SEND");
    ASSERT_FALSE(sends.empty());
    const auto reports = requests(p.wire(side::bob), "REPORT");
    ASSERT_EQ(reports.size(), 1u);
    const auto& r = reports[0]->head;
    EXPECT_EQ(r.message_id(), sends[0]->head.message_id());
    const auto range = r.byte_range();
    ASSERT_TRUE(range);
    EXPECT_EQ(*range, (byte_range{1, 5000, 5000}));
    const auto st = r.status();
    ASSERT_TRUE(st);
    ASSERT_TRUE(*st);
    EXPECT_EQ((*st)->ns, 0);
    EXPECT_EQ((*st)->code, 200);
    EXPECT_FALSE(r.header("Success-Report")) << "§7.1.2: not in REPORTs";
    EXPECT_FALSE(r.header("Failure-Report")) << "§7.1.2: not in REPORTs";
    ASSERT_TRUE(r.to_path());
    ASSERT_TRUE(r.from_path());
    EXPECT_EQ(*r.to_path(), std::vector<uri>{p.alice().local_uri(p.alice_session)});
    EXPECT_EQ(*r.from_path(), std::vector<uri>{p.bob().local_uri(p.bob_session)});
    EXPECT_TRUE(responses(p.wire(side::alice)).empty()) << "Alice answered the REPORT";
  }
}

TEST(EndpointReport, RejectSendsFailureReportAndFailsTheSender) {
  pair_options o;
  o.alice_config.chunk_ceiling = 65536;
  pair p(o);
  const body_spec body{.seed = 31, .size = 2u << 20};
  const auto h = p.alice().send(p.alice_session, from_reader("application/octet-stream", body));
  p.pump(200'000);
  const auto started = only<events::message_started>(p.bob_events);
  ASSERT_EQ(started.size(), 1u);
  EXPECT_TRUE(p.bob().reject(p.bob_session, started[0].message_id, 403));
  p.pump();

  const auto reports = requests(p.wire(side::bob), "REPORT");
  ASSERT_EQ(reports.size(), 1u);
  const auto& r = reports[0]->head;
  EXPECT_EQ(r.message_id(), std::optional<std::string_view>(started[0].message_id));
  const auto st = r.status();
  ASSERT_TRUE(st && *st);
  EXPECT_EQ((*st)->ns, 0);
  EXPECT_EQ((*st)->code, 403);
  EXPECT_TRUE(r.header("Byte-Range")) << "§7.1.4: a failure REPORT for a chunk has a Byte-Range";
  EXPECT_EQ(*r.to_path(), std::vector<uri>{p.alice().local_uri(p.alice_session)});

  const auto done = finished(p.alice_events, h);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].outcome, send_outcome::failed);
  EXPECT_EQ(done[0].status, 403);
  std::uint64_t sent = 0;
  for (const auto* f : requests(p.wire(side::alice), "SEND"))
    sent += f->body_size;
  EXPECT_LT(sent, body.size) << "Alice kept sending after the failure";
  EXPECT_TRUE(only<events::message_completed>(p.bob_events).empty());
  for (const auto* a : responses(p.wire(side::alice)))
    EXPECT_NE(a->head.transaction_id, reports[0]->head.transaction_id) << "a REPORT was answered";
}

TEST(EndpointReport, RejectOfACompleteMessageReportsItsRange) {
  pair p;
  to_bob(p, {.to = bob_uri(p), .byte_range = "1-5/5", .body = "hello"});
  ASSERT_EQ(only<events::message_received>(p.bob_events).size(), 1u);
  EXPECT_TRUE(p.bob().reject(p.bob_session, "msg0001", 415));
  const auto out = take_output(p.bob(), 1);
  ASSERT_EQ(out.size(), 1u);
  const auto& r = out[0].head;
  EXPECT_EQ(r.method, "REPORT");
  EXPECT_EQ(r.message_id(), std::optional<std::string_view>("msg0001"));
  EXPECT_EQ(r.header("Byte-Range"), std::optional<std::string_view>("1-5/5"));
  const auto st = r.status();
  ASSERT_TRUE(st && *st);
  EXPECT_EQ((*st)->code, 415);
  ASSERT_TRUE(r.to_path());
  EXPECT_EQ(*r.to_path(), std::vector<uri>{*uri::parse(carol)});
}

TEST(EndpointReport, RejectReportsTheBytesReceived) {
  // §7.1.4: a failure REPORT for a chunked message MUST carry a Byte-Range whose range-end
  // comes from the body data actually received.
  for (const auto* total : {"*", "1000"}) {
    SCOPED_TRACE(total);
    pair p;
    to_bob(p, {.to = bob_uri(p),
               .byte_range = std::string("1-*/") + total,
               .body = std::string(100, 'a'),
               .flag = end_flag::continued});
    EXPECT_TRUE(p.bob().reject(p.bob_session, "msg0001", 403));
    const auto out = take_output(p.bob(), 1);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].head.method, "REPORT");
    if (!out[0].head.header("Byte-Range")) {
      ADD_FAILURE() << "no Byte-Range in the failure REPORT";
      continue;
    }
    const auto range = out[0].head.byte_range();
    ASSERT_TRUE(range);
    EXPECT_EQ(range->start, 1u);
    EXPECT_EQ(range->end, std::optional<std::uint64_t>(100)) << range->to_string();
  }
}

TEST(EndpointReport, RejectUnknownMessageReturnsFalse) {
  pair p;
  EXPECT_FALSE(p.bob().reject(p.bob_session, "nosuchmessage", 403));
  EXPECT_TRUE(p.bob().output(1).empty());
}

TEST(EndpointReport, RejectWithoutFailureReportsSendsNothing) {
  pair p;
  to_bob(p, {.to = bob_uri(p), .headers = {{"Failure-Report", "no"}}, .body = "quiet"});
  ASSERT_EQ(only<events::message_received>(p.bob_events).size(), 1u);
  EXPECT_TRUE(p.bob().reject(p.bob_session, "msg0001", 415));
  EXPECT_TRUE(take_output(p.bob(), 1).empty());
}

// --- Sessions (§5.4, §6, §14) ---------------------------------------------------------------

TEST(EndpointSession, SessionIdsAreLongRandomAndDistinct) {
  pair p;
  const auto& a = p.alice().local_uri(p.alice_session);
  const auto& b = p.bob().local_uri(p.bob_session);
  EXPECT_GE(a.session_id().size(), 16u);
  EXPECT_GE(b.session_id().size(), 16u);
  EXPECT_NE(a.session_id(), b.session_id());
  EXPECT_EQ(a.host(), "alice.example.com");
  EXPECT_EQ(a.port(), std::optional<std::uint16_t>(7777));
  EXPECT_EQ(a.transport(), "tcp");
  EXPECT_FALSE(a.is_secure());
  const auto reparsed = uri::parse(a.to_string());
  ASSERT_TRUE(reparsed);
  EXPECT_EQ(*reparsed, a);

  const auto second = p.alice().open_session(test::settings_for("alice.example.com", 7777, true));
  EXPECT_NE(second, p.alice_session);
  EXPECT_NE(second, 0u);
  const auto& c = p.alice().local_uri(second);
  EXPECT_NE(c.session_id(), a.session_id());
  EXPECT_GE(c.session_id().size(), 16u);
  EXPECT_TRUE(c.is_secure());

  // The ids come from the injected source: the same seed gives the same id.
  auto first_id = [](std::uint64_t seed) {
    std::mt19937_64 random(seed);
    endpoint e({}, [&] { return random(); });
    return e.local_uri(e.open_session({})).session_id();
  };
  EXPECT_EQ(first_id(42), first_id(42));
  EXPECT_NE(first_id(42), first_id(43));
}

TEST(EndpointSession, SessionsShareAConnection) {
  pair p;
  const auto alice2 = p.alice().open_session(test::settings_for("alice.example.com", 7777));
  const auto bob2 = p.bob().open_session(test::settings_for("bob.example.com", 8888));
  p.alice().set_remote_path(alice2, {p.bob().local_uri(bob2)});
  p.bob().set_remote_path(bob2, {p.alice().local_uri(alice2)});
  p.alice().bind(alice2, 1);
  p.alice().send(p.alice_session, text("to the first"));
  p.alice().send(alice2, text("to the second"));
  p.pump();

  const auto got = only<events::message_received>(p.bob_events);
  ASSERT_EQ(got.size(), 2u);
  for (const auto& m : got)
    EXPECT_EQ(m.session, m.body == "to the first" ? p.bob_session : bob2);

  const auto reply = p.bob().send(bob2, text("back on the second"));
  p.pump();
  const auto back = only<events::message_received>(p.alice_events);
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].session, alice2);
  ASSERT_EQ(finished(p.bob_events, reply).size(), 1u);
  EXPECT_EQ(finished(p.bob_events, reply)[0].session, bob2);
  EXPECT_EQ(finished(p.bob_events, reply)[0].outcome, send_outcome::delivered);
}

TEST(EndpointSession, CloseSessionFailsItsMessagesAndStopsMatching) {
  pair p;
  const body_spec body{.seed = 41, .size = 2u << 20};
  const auto file = p.alice().send(p.alice_session, from_reader("application/octet-stream", body));
  p.pump(200'000);
  const auto queued = p.alice().send(p.alice_session, text("queued"));
  p.alice().close_session(p.alice_session);
  p.pump();

  for (const auto h : {file, queued}) {
    const auto done = finished(p.alice_events, h);
    ASSERT_EQ(done.size(), 1u);
    EXPECT_EQ(done[0].outcome, send_outcome::failed);
    EXPECT_EQ(done[0].status, 0);
  }
  EXPECT_FALSE(p.alice().next_deadline());

  // Bob, bound by the file's first chunk, now gets 481 from Alice.
  const auto late = p.bob().send(p.bob_session, text("are you gone?"));
  p.pump();
  const auto done = finished(p.bob_events, late);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].outcome, send_outcome::failed);
  EXPECT_EQ(done[0].status, 481);
  EXPECT_TRUE(only<events::message_received>(p.alice_events).empty());
}

// --- Connections (§5.4) ---------------------------------------------------------------------

TEST(EndpointConnection, CloseMidTransferFailsSenderAndAbortsReceiver) {
  pair p;
  const body_spec body{.seed = 51, .size = 2u << 20};
  const auto file = p.alice().send(p.alice_session, from_reader("application/octet-stream", body));
  p.pump(300'000);
  const auto queued = p.alice().send(p.alice_session, text("after the file"));
  ASSERT_EQ(only<events::message_started>(p.bob_events).size(), 1u);
  p.close();

  for (const auto h : {file, queued}) {
    const auto done = finished(p.alice_events, h);
    ASSERT_EQ(done.size(), 1u);
    EXPECT_EQ(done[0].outcome, send_outcome::failed);
    EXPECT_EQ(done[0].status, 0);
  }
  const auto all = reassemble(p.bob_events);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all.begin()->second.aborted, 1);
  EXPECT_EQ(all.begin()->second.abort_status, 0);
  EXPECT_EQ(all.begin()->second.completed, 0);
  EXPECT_FALSE(p.alice().next_deadline());
  EXPECT_FALSE(p.bob().next_deadline());
}

TEST(EndpointConnection, MalformedBytesGet400ThenConnectionFailed) {
  pair p;
  p.bob().receive(1, "MSRP abcd1234 SEND\r\nTo-Path: " + bob_uri(p) +
                         "\r\nFrom-Path: " + std::string(carol) + "\r\nno colon here\r\n\r\n");
  p.drain();
  const auto failed = only<events::connection_failed>(p.bob_events);
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0].connection, 1u);
  EXPECT_EQ(failed[0].error, errc::bad_header);
  const auto out = take_output(p.bob(), 1);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].head.transaction_id, "abcd1234");
  EXPECT_EQ(out[0].head.status_code, 400);
}

TEST(EndpointConnection, MalformedBytesWithoutTransactionIdFailSilently) {
  pair p;
  p.bob().receive(3, "HELLO WORLD\r\n");
  p.drain();
  const auto failed = only<events::connection_failed>(p.bob_events);
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0].connection, 3u);
  EXPECT_TRUE(failed[0].error);
  EXPECT_TRUE(take_output(p.bob(), 3).empty());
}

// Found by the torture corpus (limits.md, "REPORT body of 10241 octets"): a REPORT whose body
// broke the stream was answered 413, though REPORTs are never answered (RFC 4975 §7.1.2), and
// a request with Failure-Report `no` got its 400 too (§7.2).
TEST(EndpointConnection, DefectMalformedReportWasAnswered) {
  for (const std::string_view extra : {"Status: 000 200 OK\r\n", ""}) {
    pair p;
    const std::string method = extra.empty() ? "SEND" : "REPORT";
    p.bob().receive(1, "MSRP abcd1234 " + method + "\r\nTo-Path: " + bob_uri(p) +
                           "\r\nFrom-Path: " + std::string(carol) + "\r\nMessage-ID: m1\r\n" +
                           std::string(extra) + (extra.empty() ? "Failure-Report: no\r\n" : "") +
                           "Content-Type: text/plain\r\nContent-Type: text/plain\r\n\r\n");
    p.drain();
    EXPECT_EQ(only<events::connection_failed>(p.bob_events).size(), 1u) << method;
    EXPECT_TRUE(take_output(p.bob(), 1).empty()) << method;
  }
}

// Found by the torture corpus (valid-odd.md, "Byte-Range ending at 2^64 - 1"): a body running
// past byte 2^64 - 1 overflowed its end position and was copied before the start of the
// message's buffer. It is refused with 400; a chunk starting past `whole_message_limit` is
// streamed from its head, so the outcome does not depend on how the bytes arrive.
TEST(EndpointReceive, DefectBodyPastTheLast64BitPosition) {
  pair p;
  const std::string wire = "MSRP abcd1234 SEND\r\nTo-Path: " + bob_uri(p) +
                           "\r\nFrom-Path: " + std::string(carol) +
                           "\r\nMessage-ID: m1x2y3\r\n"
                           "Byte-Range: 18446744073709551615-18446744073709551615/*\r\n"
                           "Content-Type: text/plain\r\n\r\nabcd\r\n-------abcd1234+\r\n";
  p.bob().receive(1, wire);
  p.drain();
  const auto out = take_output(p.bob(), 1);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].head.status_code, 400);
  EXPECT_EQ(only<events::message_started>(p.bob_events).size(), 1u);
  const auto aborted = only<events::message_aborted>(p.bob_events);
  ASSERT_EQ(aborted.size(), 1u);
  EXPECT_EQ(aborted[0].status, 400);
  for (const auto& piece : only<events::message_piece>(p.bob_events))
    EXPECT_EQ(piece.offset + piece.bytes.size(), 0u) << "a piece wrapped around";
}

// --- Relays (RFC 4976 §5.1, §9.1) -----------------------------------------------------------
//
// One client endpoint against a relay the test scripts: the test reads the AUTH requests the
// client writes to connection 1 and answers them with responses built here, with real MD5 and
// SHA-256 digests.

const digest::hasher digest_hash = test::openssl_hash;
constexpr std::string_view relay_user = "alice";
constexpr std::string_view relay_password = "wonderland";
constexpr std::string_view relay_realm = "relay.example.com";
// The relay as the client addresses its AUTH, and the URI the relay hands out for the session.
constexpr std::string_view relay_uri = "msrps://alice@relay.example.com:2855;tcp";
constexpr std::string_view relay_use = "msrps://relay.example.com:2855/uSe1pAtH;tcp";
// Bob's side: his relay and his session.
constexpr std::string_view bob_side =
    "msrps://bobrelay.example.net:2855/b0bR3lay;tcp msrps://bob.example.net:8888/b0bS3ss;tcp";

relay_account account(std::string_view password = relay_password) {
  return {std::string(relay_user), std::string(password)};
}

std::vector<uri> path_of(std::string_view text) {
  const auto path = parse_path(text);
  EXPECT_TRUE(path) << text;
  return path ? *path : std::vector<uri>{};
}

std::string header_of(const message& m, std::string_view name) {
  return std::string(m.header(name).value_or(""));
}

/// A challenge in the relay's realm.
digest::challenge challenge_of(std::string nonce, std::string_view algorithm = digest::sha256,
                               bool stale = false) {
  digest::challenge c;
  c.realm = relay_realm;
  c.nonce = std::move(nonce);
  c.algorithm = algorithm;
  c.stale = stale;
  return c;
}

/// The relay's response to `request`: back along its From-Path, from the rightmost To-Path URI.
message response_to(const message& request, int status, std::string comment) {
  message r;
  r.transaction_id = request.transaction_id;
  r.status_code = status;
  r.comment = std::move(comment);
  const auto to = header_of(request, "To-Path");
  r.headers.push_back({"To-Path", header_of(request, "From-Path")});
  r.headers.push_back({"From-Path", to.substr(to.rfind(' ') + 1)});
  return r;
}

/// A 401 with one WWW-Authenticate header per value, most preferred first.
message unauthorized_with(const message& auth, const std::vector<std::string>& challenges) {
  auto r = response_to(auth, 401, "Unauthorized");
  for (const auto& value : challenges)
    r.headers.push_back({"WWW-Authenticate", value});
  return r;
}

message unauthorized(const message& auth, const digest::challenge& c) {
  return unauthorized_with(auth, {c.to_header_value()});
}

/// The credentials of an AUTH.
digest::credentials credentials_of(const message& auth) {
  const auto value = auth.authorization();
  EXPECT_TRUE(value) << "AUTH without Authorization";
  const auto c = digest::credentials::parse(value.value_or(""));
  EXPECT_TRUE(c) << c.error().message();
  return c ? *c : digest::credentials{};
}

/// Whether the AUTH's credentials are right for `password`: the relay's check (RFC 7616 §3.4).
bool verifies(const message& auth, std::string_view password = relay_password) {
  const auto c = credentials_of(auth);
  return digest::verify(digest_hash, c,
                        digest::ha1(digest_hash, c.algorithm, relay_user, relay_realm, password),
                        "AUTH");
}

struct acceptance {
  std::string use_path = std::string(relay_use);
  std::optional<std::uint32_t> expires = 900;
  std::string nextnonce = {};
  /// The password the relay's rspauth is computed with: the right one proves the relay.
  std::string password = std::string(relay_password);
};

/// A 200 to `auth` with Use-Path, Expires and Authentication-Info (RFC 4976 §5.1, §9.1).
message authorized(const message& auth, const acceptance& a = {}) {
  auto r = response_to(auth, 200, "OK");
  r.headers.push_back({"Use-Path", a.use_path});
  const auto c = credentials_of(auth);
  digest::authentication_info info;
  info.nextnonce = a.nextnonce;
  info.rspauth = digest::rspauth(
      digest_hash, c, digest::ha1(digest_hash, c.algorithm, c.username, c.realm, a.password));
  info.cnonce = c.cnonce;
  info.nc = c.nc;
  r.headers.push_back({"Authentication-Info", info.to_header_value()});
  if (a.expires) r.headers.push_back({"Expires", std::to_string(*a.expires)});
  return r;
}

/// A client endpoint with one session, bound to connection 1: the connection to its relay.
class relay_client {
 public:
  static constexpr connection_id relay = 1;

  explicit relay_client(endpoint::config config = {})
      : random_(7), endpoint_(with_hash(std::move(config)), [this] { return random_(); }) {
    session = endpoint_.open_session(test::settings_for("alice.example.com", 7777, true));
    endpoint_.bind(session, relay);
    endpoint_.advance(now);
  }

  endpoint& client() { return endpoint_; }
  std::string local() const { return endpoint_.local_uri(session).to_string(); }
  std::string local_path() const { return format_path(endpoint_.local_path(session)); }

  void authenticate(std::optional<std::chrono::seconds> expires = {},
                    std::string_view password = relay_password,
                    std::string_view target = relay_uri) {
    endpoint_.authenticate(session, *uri::parse(target), account(password), expires);
    drain();
  }
  /// The frames the client wrote since the last call.
  std::vector<test::parsed_frame> written() { return take_output(endpoint_, relay); }
  /// The one AUTH the client wrote since the last call.
  message next_auth() {
    const auto frames = written();
    EXPECT_EQ(frames.size(), 1u) << "expected one AUTH";
    if (frames.empty()) return {};
    EXPECT_EQ(frames[0].head.method, "AUTH");
    return frames[0].head;
  }
  /// Delivers a response from the relay.
  void deliver(const message& m) { deliver_bytes(serialize(m).to_string()); }
  /// Delivers bytes from the relay, such as a request it forwards.
  void deliver_bytes(std::string_view bytes) {
    endpoint_.receive(relay, bytes);
    drain();
  }
  void advance(clock::duration d) {
    now += d;
    endpoint_.advance(now);
    drain();
  }
  void close() {
    endpoint_.close_connection(relay);
    drain();
  }
  std::vector<events::auth_finished> finished() const {
    return only<events::auth_finished>(events);
  }
  /// authenticate(), 401, credentials, 200.
  void log_in(std::optional<std::chrono::seconds> expires = {}, const acceptance& a = {}) {
    authenticate(expires);
    deliver(unauthorized(next_auth(), challenge_of("n0nce1")));
    deliver(authorized(next_auth(), a));
    const auto done = finished();
    EXPECT_TRUE(!done.empty() && done.back().status == 200) << "log_in failed";
  }

  session_handle session = 0;
  clock::time_point now = clock::time_point{} + std::chrono::hours(1);
  std::vector<event> events;

 private:
  static endpoint::config with_hash(endpoint::config config) {
    config.hash = digest_hash;
    return config;
  }
  void drain() {
    while (auto e = endpoint_.next_event())
      events.push_back(std::move(*e));
  }

  std::mt19937_64 random_;
  endpoint endpoint_;
};

TEST(EndpointAuth, AnswersTheChallengeAndTakesTheUsePath) {
  relay_client r;
  r.authenticate(600s);
  const auto first = r.next_auth();
  // §5.1: the AUTH goes to the relay, from the session's URI, without credentials at first.
  EXPECT_EQ(header_of(first, "To-Path"), relay_uri);
  EXPECT_EQ(header_of(first, "From-Path"), r.local());
  EXPECT_EQ(header_of(first, "Expires"), "600");
  EXPECT_FALSE(first.authorization());
  EXPECT_TRUE(r.finished().empty());

  // SHA-256 offered first, MD5 second (RFC 7616 §3.7): the client answers SHA-256.
  r.deliver(unauthorized_with(first, {challenge_of("n0nce1").to_header_value(),
                                      challenge_of("n0nce1md5", digest::md5).to_header_value()}));
  const auto second = r.next_auth();
  EXPECT_NE(second.transaction_id, first.transaction_id);
  EXPECT_EQ(header_of(second, "To-Path"), relay_uri);
  EXPECT_EQ(header_of(second, "Expires"), "600");
  const auto c = credentials_of(second);
  EXPECT_EQ(c.algorithm, digest::sha256);
  EXPECT_EQ(c.username, relay_user);
  EXPECT_EQ(c.realm, relay_realm);
  EXPECT_EQ(c.nonce, "n0nce1");
  EXPECT_EQ(c.uri, relay_uri);  // §9.1: the rightmost To-Path URI
  EXPECT_EQ(c.nc, "00000001");
  EXPECT_FALSE(c.cnonce.empty());
  EXPECT_TRUE(verifies(second));
  EXPECT_FALSE(verifies(second, "wonderlant"));

  r.deliver(authorized(second, {.expires = 600}));
  const auto done = r.finished();
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].session, r.session);
  EXPECT_EQ(done[0].status, 200);
  EXPECT_EQ(format_path(done[0].use_path), relay_use);
  EXPECT_EQ(done[0].expires, 600s);
  EXPECT_TRUE(r.written().empty());
}

TEST(EndpointAuth, AnswersTheFirstChallengeItSupports) {
  // Basic is refused (§9.1) and MD5-sess unsupported; the MD5 challenge after them is taken.
  relay_client r;
  r.authenticate();
  r.deliver(unauthorized_with(
      r.next_auth(),
      {"Basic realm=\"relay.example.com\"",
       "Digest realm=\"relay.example.com\", nonce=\"s3ss\", algorithm=MD5-sess, qop=\"auth\"",
       challenge_of("md5only", digest::md5).to_header_value()}));
  const auto answered = r.next_auth();
  const auto c = credentials_of(answered);
  EXPECT_EQ(c.algorithm, digest::md5);
  EXPECT_EQ(c.nonce, "md5only");
  EXPECT_EQ(c.response.size(), 32u);
  EXPECT_TRUE(verifies(answered));
  r.deliver(authorized(answered));
  const auto done = r.finished();
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].status, 200);
}

TEST(EndpointAuth, NoChallengeItCanAnswerFailsWith401) {
  relay_client r;
  r.authenticate();
  r.deliver(unauthorized_with(r.next_auth(), {"Basic realm=\"relay.example.com\""}));
  const auto done = r.finished();
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].status, 401);
  EXPECT_TRUE(r.written().empty());
}

TEST(EndpointAuth, SuccessWithoutUsePathFails) {
  relay_client r;
  r.authenticate();
  r.deliver(unauthorized(r.next_auth(), challenge_of("n0nce1")));
  auto no_path = authorized(r.next_auth());
  no_path.remove_header("Use-Path");
  r.deliver(no_path);
  const auto done = r.finished();
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].status, 0);
  EXPECT_EQ(done[0].comment, "no Use-Path");
  EXPECT_FALSE(r.client().next_deadline());
}

TEST(EndpointAuth, RequestsGoThroughTheRelayPath) {
  relay_client r;
  EXPECT_EQ(r.local_path(), r.local());
  // §5.1's example: Use-Path "B C" gives a=path "C B A" and To-Path "B C" + the peer's path.
  const std::string inner = "msrps://relay.example.com:2855/inn3r;tcp";
  const std::string outer = "msrps://outer.example.com:2855/0ut3r;tcp";
  r.log_in({}, {.use_path = inner + " " + outer});
  EXPECT_EQ(r.local_path(), outer + " " + inner + " " + r.local());

  r.client().set_remote_path(r.session, path_of(bob_side));
  r.client().send(r.session, text("Hi Bob"));
  const auto frames = r.written();
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].head.method, "SEND");
  EXPECT_EQ(header_of(frames[0].head, "To-Path"),
            inner + " " + outer + " " + std::string(bob_side));
  EXPECT_EQ(header_of(frames[0].head, "From-Path"), r.local());
}

TEST(EndpointAuth, ResponsesAndReportsFollowTheFromPathThroughTheRelays) {
  // RFC 4976 §3: the relay forwards Bob's SEND with itself at the front of the From-Path.
  relay_client r;
  r.log_in();
  r.client().set_remote_path(r.session, path_of(bob_side));
  const auto from = std::string(relay_use) + " " + std::string(bob_side);
  r.deliver_bytes(wire_bytes({.tid = "fwd00001",
                              .to = r.local(),
                              .from = from,
                              .message_id = "b0bm3ss4ge1",
                              .headers = {{"Success-Report", "yes"}},
                              .body = "Hi Alice"}));
  r.deliver_bytes(wire_bytes({.tid = "fwd00002",
                              .to = r.local(),
                              .from = from,
                              .message_id = "b0bm3ss4ge2",
                              .body = "refuse me"}));
  ASSERT_TRUE(r.client().reject(r.session, "b0bm3ss4ge2", 415));
  std::multiset<std::string> routes;
  for (const auto& f : r.written()) {
    const auto what = f.head.is_request() ? f.head.method + " " + header_of(f.head, "Status")
                                          : std::to_string(f.head.status_code);
    routes.insert(what + " to " + header_of(f.head, "To-Path") + " from " +
                  header_of(f.head, "From-Path"));
  }
  // RFC 4975 §7.2: a response to SEND goes to the previous hop, the relay; a REPORT goes the
  // whole way back (RFC 4976 §3's example).
  const auto back = " from " + r.local();
  const auto ok = "200 to " + std::string(relay_use) + back;
  EXPECT_EQ(routes, (std::multiset<std::string>{
                        ok, ok, "REPORT 000 200 OK to " + from + back,
                        "REPORT 000 415 Unsupported Media Type to " + from + back}));
}

TEST(EndpointAuth, QuickModeLearnsThePeerPathWithoutOurRelays) {
  // Without SDP the session takes the first request's From-Path, less the relay at its front:
  // its own requests put the relay path there again.
  relay_client r;
  r.log_in();
  r.deliver_bytes(wire_bytes({.to = r.local(),
                              .from = std::string(relay_use) + " " + std::string(bob_side),
                              .body = "Hi Alice"}));
  EXPECT_EQ(only<events::message_received>(r.events).size(), 1u);
  r.written();
  r.client().send(r.session, text("Hi Bob"));
  const auto frames = r.written();
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(header_of(frames[0].head, "To-Path"),
            std::string(relay_use) + " " + std::string(bob_side));
}

TEST(EndpointAuth, WrongPasswordFailsWith401) {
  relay_client r;
  r.authenticate({}, "guess");
  r.deliver(unauthorized(r.next_auth(), challenge_of("n0nce1")));
  const auto answered = r.next_auth();
  EXPECT_FALSE(verifies(answered));
  r.deliver(unauthorized(answered, challenge_of("n0nce2")));
  const auto done = r.finished();
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].status, 401);
  EXPECT_TRUE(done[0].use_path.empty());
  EXPECT_TRUE(r.written().empty()) << "a second 401 without stale is not answered";
  EXPECT_EQ(r.local_path(), r.local());
  EXPECT_FALSE(r.client().next_deadline());
}

TEST(EndpointAuth, StaleNonceIsAnsweredOnce) {
  relay_client r;
  r.authenticate();
  r.deliver(unauthorized(r.next_auth(), challenge_of("n0nce1")));
  r.deliver(unauthorized(r.next_auth(), challenge_of("fr3sh", digest::sha256, true)));
  const auto retried = r.next_auth();
  const auto c = credentials_of(retried);
  EXPECT_EQ(c.nonce, "fr3sh");
  EXPECT_EQ(c.nc, "00000001");
  EXPECT_TRUE(verifies(retried));
  r.deliver(authorized(retried));
  ASSERT_EQ(r.finished().size(), 1u);
  EXPECT_EQ(r.finished()[0].status, 200);

  // A second stale 401 in the same exchange is not answered again.
  relay_client q;
  q.authenticate();
  q.deliver(unauthorized(q.next_auth(), challenge_of("n0nce1")));
  q.deliver(unauthorized(q.next_auth(), challenge_of("fr3sh", digest::sha256, true)));
  q.deliver(unauthorized(q.next_auth(), challenge_of("fr3sh2", digest::sha256, true)));
  ASSERT_EQ(q.finished().size(), 1u);
  EXPECT_EQ(q.finished()[0].status, 401);
  EXPECT_TRUE(q.written().empty());
}

TEST(EndpointAuth, RelayThatDoesNotProveThePasswordFails) {
  const std::vector<std::function<message(const message&)>> answers = {
      // rspauth computed with another password
      [](const message& auth) { return authorized(auth, {.password = "anything"}); },
      // the right rspauth, but for another cnonce
      [](const message& auth) {
        auto m = authorized(auth);
        auto info = *digest::authentication_info::parse(*m.authentication_info());
        info.cnonce += "x";
        m.set_header("Authentication-Info", info.to_header_value());
        return m;
      },
  };
  for (std::size_t i = 0; i < answers.size(); ++i) {
    SCOPED_TRACE("answer " + std::to_string(i));
    relay_client r;
    r.authenticate();
    r.deliver(unauthorized(r.next_auth(), challenge_of("n0nce1")));
    r.deliver(answers[i](r.next_auth()));
    const auto done = r.finished();
    ASSERT_EQ(done.size(), 1u);
    EXPECT_EQ(done[0].status, 0);
    EXPECT_EQ(done[0].comment, "relay did not prove it knows the password");
    EXPECT_TRUE(done[0].use_path.empty());
    EXPECT_EQ(r.local_path(), r.local());
    EXPECT_FALSE(r.client().next_deadline()) << "no refresh of a failed AUTH";
  }
}

TEST(EndpointAuth, MissingProofIsTakenOnlyFromTheFirstRelayOverTls) {
  // Kamailio 5.6 answers AUTH 200 without Authentication-Info (RFC 4976 §9.1 wants rspauth).
  // Over TLS the relay's certificate already authenticated it (§5.1), so the 200 is taken;
  // over plain TCP nothing vouches for it.
  for (const std::string_view target :
       {relay_uri, std::string_view("msrp://relay.example.com:2855;tcp")}) {
    SCOPED_TRACE(target);
    relay_client r;
    r.authenticate({}, relay_password, target);
    r.deliver(unauthorized(r.next_auth(), challenge_of("n0nce1")));
    auto ok = authorized(r.next_auth());
    ok.remove_header("Authentication-Info");
    r.deliver(ok);
    const auto done = r.finished();
    ASSERT_EQ(done.size(), 1u);
    if (uri::parse(target)->is_secure()) {
      EXPECT_EQ(done[0].status, 200);
      EXPECT_FALSE(done[0].use_path.empty());
    } else {
      EXPECT_EQ(done[0].status, 0);
      EXPECT_EQ(done[0].comment, "relay did not prove it knows the password");
    }
  }
}

TEST(EndpointAuth, IntervalOutOfBoundsIsRetriedWithinThem) {
  // RFC 4976 §4.6, §6.3: 423 with Min-Expires; the retry asks for the minimum, answering the
  // same nonce again with the next nonce count.
  relay_client r;
  r.authenticate(30s);
  r.deliver(unauthorized(r.next_auth(), challenge_of("n0nce1")));
  const auto answered = r.next_auth();
  EXPECT_EQ(header_of(answered, "Expires"), "30");
  auto too_brief = response_to(answered, 423, "Interval Out-of-Bounds");
  too_brief.headers.push_back({"Min-Expires", "300"});
  r.deliver(too_brief);
  const auto retried = r.next_auth();
  EXPECT_EQ(header_of(retried, "Expires"), "300");
  const auto c = credentials_of(retried);
  EXPECT_EQ(c.nonce, "n0nce1");
  EXPECT_EQ(c.nc, "00000002");
  EXPECT_TRUE(verifies(retried));
  r.deliver(authorized(retried, {.expires = 300}));
  ASSERT_EQ(r.finished().size(), 1u);
  EXPECT_EQ(r.finished()[0].status, 200);
  EXPECT_EQ(r.finished()[0].expires, 300s);

  // Max-Expires, and a second 423 ends it.
  relay_client q;
  q.authenticate(86400s);
  q.deliver(unauthorized(q.next_auth(), challenge_of("n0nce1")));
  auto too_long = response_to(q.next_auth(), 423, "Interval Out-of-Bounds");
  too_long.headers.push_back({"Max-Expires", "3600"});
  q.deliver(too_long);
  const auto clamped = q.next_auth();
  EXPECT_EQ(header_of(clamped, "Expires"), "3600");
  auto again = response_to(clamped, 423, "Interval Out-of-Bounds");
  again.headers.push_back({"Max-Expires", "60"});
  q.deliver(again);
  ASSERT_EQ(q.finished().size(), 1u);
  EXPECT_EQ(q.finished()[0].status, 423);
  EXPECT_TRUE(q.written().empty());
}

TEST(EndpointAuth, ForbiddenFailsWith403) {
  relay_client r;
  r.authenticate();
  r.deliver(unauthorized(r.next_auth(), challenge_of("n0nce1")));
  r.deliver(response_to(r.next_auth(), 403, "Forbidden"));
  const auto done = r.finished();
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].status, 403);
  EXPECT_EQ(done[0].comment, "Forbidden");
  EXPECT_TRUE(r.written().empty());
  EXPECT_EQ(r.local_path(), r.local());
}

TEST(EndpointAuth, NoResponseFailsWith408) {
  endpoint::config config;
  config.transaction_timeout = 5s;
  relay_client r(config);
  r.authenticate();
  EXPECT_FALSE(r.client().next_deadline()) << "the timer starts once the AUTH is written";
  const auto unanswered = r.next_auth();
  EXPECT_EQ(r.client().next_deadline(), r.now + 5s);
  r.advance(5s - 1ms);
  EXPECT_TRUE(r.finished().empty());
  r.advance(1ms);
  const auto done = r.finished();
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].status, 408);
  EXPECT_FALSE(r.client().next_deadline());
  // A late answer is ignored.
  r.deliver(unauthorized(unanswered, challenge_of("n0nce1")));
  EXPECT_TRUE(r.written().empty());
  EXPECT_EQ(r.finished().size(), 1u);
}

TEST(EndpointAuth, ClosingEndsTheExchangeWithStatus0) {
  // One relay authenticated (its refresh booked), the next one in progress.
  relay_client r;
  r.log_in();
  r.authenticate({}, relay_password, "msrps://outer.example.com:2855;tcp");
  r.next_auth();
  r.close();
  const auto done = r.finished();
  ASSERT_EQ(done.size(), 2u);
  EXPECT_EQ(done[1].status, 0);
  EXPECT_EQ(done[1].comment, "connection closed");
  // Before the session's end, as a message's send_finished is; and no refresh is left.
  const auto ended =
      index_of<events::auth_finished>(r.events, [](const auto& f) { return f.status == 0; });
  EXPECT_NE(ended, -1);
  EXPECT_LT(ended, index_of<events::session_closed>(r.events, [](const auto&) { return true; }));
  EXPECT_FALSE(r.client().next_deadline());

  // So does closing the session; authenticating a closed session fails at once.
  relay_client q;
  q.authenticate();
  q.next_auth();
  q.client().close_session(q.session);
  q.authenticate();
  const auto closed = q.finished();
  ASSERT_EQ(closed.size(), 2u);
  for (const auto& f : closed) {
    EXPECT_EQ(f.status, 0);
    EXPECT_EQ(f.comment, "session closed");
  }
  EXPECT_TRUE(q.written().empty());
}

TEST(EndpointAuth, RefreshesAt80PercentWithTheNextNonce) {
  relay_client r;
  r.log_in(1000s, {.expires = 1000, .nextnonce = "n3xt1"});
  EXPECT_EQ(r.client().next_deadline(), r.now + 800s);
  r.advance(799s);
  EXPECT_TRUE(r.written().empty());
  r.advance(1s);
  const auto refresh = r.next_auth();
  EXPECT_EQ(header_of(refresh, "To-Path"), relay_uri);
  EXPECT_EQ(header_of(refresh, "Expires"), "1000");
  const auto c = credentials_of(refresh);
  EXPECT_EQ(c.nonce, "n3xt1");
  EXPECT_EQ(c.nc, "00000001");
  EXPECT_TRUE(verifies(refresh));

  // The relay hands out another Use-Path and a shorter lifetime this time.
  const std::string moved = "msrps://relay.example.com:2855/m0v3d;tcp";
  r.deliver(authorized(refresh, {.use_path = moved, .expires = 500, .nextnonce = "n3xt2"}));
  const auto done = r.finished();
  ASSERT_EQ(done.size(), 2u);
  EXPECT_EQ(done[1].status, 200);
  EXPECT_EQ(format_path(done[1].use_path), moved);
  EXPECT_EQ(done[1].expires, 500s);
  EXPECT_EQ(r.local_path(), moved + " " + r.local());
  EXPECT_EQ(r.client().next_deadline(), r.now + 400s);
  r.advance(400s);
  EXPECT_EQ(credentials_of(r.next_auth()).nonce, "n3xt2");
}

TEST(EndpointAuth, RefreshWithoutNextNonceStartsWithoutCredentials) {
  relay_client r;
  r.log_in({}, {.expires = 100});
  r.advance(80s);
  const auto refresh = r.next_auth();
  EXPECT_FALSE(refresh.authorization());
  EXPECT_FALSE(refresh.header("Expires")) << "none was asked for";
  r.deliver(unauthorized(refresh, challenge_of("n0nce9")));
  const auto answered = r.next_auth();
  EXPECT_EQ(credentials_of(answered).nonce, "n0nce9");
  EXPECT_TRUE(verifies(answered));
  // Without Expires in the 200 (nor in the request) the URI is taken to last 1800 seconds.
  r.deliver(authorized(answered, {.expires = std::nullopt}));
  const auto done = r.finished();
  ASSERT_EQ(done.size(), 2u);
  EXPECT_EQ(done[1].status, 200);
  EXPECT_EQ(done[1].expires, 1800s);
  EXPECT_EQ(r.client().next_deadline(), r.now + 1440s);
}

TEST(EndpointAuth, FailedRefreshIsReportedAndRefreshingStops) {
  relay_client r;
  r.log_in({}, {.expires = 100, .nextnonce = "n3xt1"});
  r.advance(80s);
  r.deliver(response_to(r.next_auth(), 403, "Forbidden"));
  const auto done = r.finished();
  ASSERT_EQ(done.size(), 2u);
  EXPECT_EQ(done[1].status, 403);
  EXPECT_FALSE(r.client().next_deadline());
}

TEST(EndpointAuth, OuterRelayIsReachedThroughTheInnerOne) {
  // §5.1: the second AUTH goes through the first relay's Use-Path; its digest-uri is the outer
  // relay (§9.1); the outer relay's Use-Path becomes the relay path.
  relay_client r;
  r.log_in({}, {.expires = 1000});
  const std::string outer = "msrps://outer.example.com:2855;tcp";
  r.authenticate({}, relay_password, outer);
  const auto first = r.next_auth();
  EXPECT_EQ(header_of(first, "To-Path"), std::string(relay_use) + " " + outer);
  r.deliver(unauthorized(first, challenge_of("0ut3r")));
  const auto answered = r.next_auth();
  EXPECT_EQ(credentials_of(answered).uri, outer);
  EXPECT_TRUE(verifies(answered));
  const std::string outer_use = "msrps://outer.example.com:2855/0ut3rUse;tcp";
  r.deliver(authorized(answered,
                       {.use_path = std::string(relay_use) + " " + outer_use, .expires = 5000}));
  ASSERT_EQ(r.finished().size(), 2u);
  EXPECT_EQ(r.finished()[1].status, 200);
  const auto advertised = outer_use + " " + std::string(relay_use) + " " + r.local();
  EXPECT_EQ(r.local_path(), advertised);

  // The inner relay's refresh goes to it alone and leaves the relay path alone.
  r.advance(800s);
  const auto refresh = r.next_auth();
  EXPECT_EQ(header_of(refresh, "To-Path"), relay_uri);
  r.deliver(unauthorized(refresh, challenge_of("n0nce2")));
  r.deliver(authorized(r.next_auth()));
  ASSERT_EQ(r.finished().size(), 3u);
  EXPECT_EQ(r.finished()[2].status, 200);
  EXPECT_EQ(r.local_path(), advertised);
}

TEST(EndpointAuth, IncomingAuthIs501) {
  // The endpoint is a client: it never answers AUTH as a relay would.
  relay_client r;
  r.deliver_bytes(wire_bytes({.tid = "auth1234",
                              .method = "AUTH",
                              .to = r.local(),
                              .message_id = std::nullopt,
                              .content_type = ""}));
  EXPECT_EQ(statuses(r.written()), std::vector<int>{501});
}

// --- Pacing (§7.1.3: incremental success REPORTs; a window of unconfirmed bytes) -------------

/// How far the success REPORTs for `message_id` on `wire` cover the message from its start.
std::uint64_t confirmed(const wire_log& wire, std::string_view message_id) {
  std::uint64_t covered = 0;
  for (const auto* r : requests(wire, "REPORT")) {
    const auto range = r->head.byte_range();
    const auto st = r->head.status();
    if (r->head.message_id() != message_id || !range || range->start != 1 || !range->end || !st ||
        !*st || (*st)->code != 200) {
      continue;
    }
    covered = std::max(covered, *range->end);
  }
  return covered;
}

/// The Message-ID of the first SEND on `wire`.
std::string first_message_id(const wire_log& wire) {
  const auto sends = requests(wire, "SEND");
  return sends.empty() ? std::string() : std::string(sends[0]->head.message_id().value_or(""));
}

constexpr std::uint64_t kib = 1024;

TEST(EndpointPacing, ProgressReportsCoverTheBytesReceivedSoFar) {
  EXPECT_EQ(endpoint::config{}.progress_reports, 0u) << "off by default";
  pair_options o;
  o.bob_config.progress_reports = 16 * kib;
  pair p(o);
  const body_spec body{.seed = 71, .size = 1u << 20};
  auto m = from_reader("application/octet-stream", body);
  m.success_report = report_mode::yes;
  const auto h = p.alice().send(p.alice_session, std::move(m));
  // What Bob had reported when Alice's outcome came.
  std::uint64_t reported_at_outcome = 0;
  p.on_event = [&](side s, const event& e) {
    const auto* f = std::get_if<events::send_finished>(&e);
    if (s == side::alice && f && f->message == h) {
      reported_at_outcome = confirmed(p.wire(side::bob), first_message_id(p.wire(side::alice)));
    }
  };
  p.pump();

  const auto done = finished(p.alice_events, h);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].outcome, send_outcome::delivered);
  EXPECT_EQ(reported_at_outcome, body.size) << "delivered on a partial REPORT";

  const auto id = first_message_id(p.wire(side::alice));
  const auto reports = requests(p.wire(side::bob), "REPORT");
  ASSERT_GE(reports.size(), 8u) << "no incremental REPORTs";
  std::uint64_t last = 0;
  for (std::size_t i = 0; i < reports.size(); ++i) {
    SCOPED_TRACE(i);
    const auto& r = reports[i]->head;
    EXPECT_EQ(r.message_id(), std::optional<std::string_view>(id));
    const auto st = r.status();
    ASSERT_TRUE(st && *st);
    EXPECT_EQ((*st)->ns, 0);
    EXPECT_EQ((*st)->code, 200);
    const auto range = r.byte_range();
    ASSERT_TRUE(range && range->end);
    EXPECT_EQ(range->start, 1u) << "covers the bytes from the start";
    EXPECT_EQ(range->total, std::optional<std::uint64_t>(body.size));
    EXPECT_GT(*range->end, last);
    if (i + 1 < reports.size()) {
      EXPECT_GE(*range->end, last + o.bob_config.progress_reports) << "closer than the step";
    }
    last = *range->end;
  }
  EXPECT_EQ(*reports.back()->head.byte_range(), (byte_range{1, body.size, body.size}))
      << "the final REPORT covers the whole message";

  const auto all = reassemble(p.bob_events);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all.begin()->second.completed, 1);
  EXPECT_TRUE(all.begin()->second.bytes == bytes_of(body));
}

TEST(EndpointPacing, ProgressReportsForBufferedMessagesAndUnknownTotals) {
  // A message delivered whole is reported on as it is buffered; with a `*` total the range
  // says `*` too. Without Success-Report yes, nothing.
  pair_options o;
  o.bob_config.progress_reports = 16 * kib;
  pair p(o);
  const auto to = bob_uri(p);
  const std::string first(20'000, 'a');
  const std::string second(20'000, 'b');
  auto out = to_bob(p, {.to = to,
                        .message_id = "paced01",
                        .byte_range = "1-*/*",
                        .headers = {{"Success-Report", "yes"}},
                        .body = first,
                        .flag = end_flag::continued});
  ASSERT_EQ(statuses(out), (std::vector<int>{200}));
  std::vector<std::string> ranges;
  for (const auto& f : out) {
    if (f.head.method == "REPORT") ranges.emplace_back(f.head.header("Byte-Range").value_or(""));
  }
  EXPECT_EQ(ranges, (std::vector<std::string>{"1-20000/*"}));
  EXPECT_TRUE(only<events::message_started>(p.bob_events).empty()) << "should be buffered";

  out = to_bob(p, {.tid = "tx000002",
                   .to = to,
                   .message_id = "paced01",
                   .byte_range = "20001-*/*",
                   .headers = {{"Success-Report", "yes"}},
                   .body = second});
  ranges.clear();
  for (const auto& f : out) {
    if (f.head.method == "REPORT") ranges.emplace_back(f.head.header("Byte-Range").value_or(""));
  }
  // The last piece is reported as it arrives, then the whole message at its end-line: an
  // overlap §7.1.3 allows.
  EXPECT_EQ(ranges, (std::vector<std::string>{"1-40000/*", "1-40000/40000"}));
  const auto got = only<events::message_received>(p.bob_events);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].body, first + second);

  out = to_bob(p, {.tid = "tx000003",
                   .to = to,
                   .message_id = "quiet01",
                   .byte_range = "1-*/*",
                   .body = first,
                   .flag = end_flag::continued});
  EXPECT_EQ(statuses(out), (std::vector<int>{200}));
  EXPECT_EQ(out.size(), 1u) << "a REPORT nobody asked for";
}

TEST(EndpointPacing, WindowBoundsTheUnconfirmedBytes) {
  EXPECT_EQ(endpoint::config{}.unconfirmed_window, 0u) << "off by default";
  pair_options o;
  o.alice_config.unconfirmed_window = 64 * kib;
  o.bob_config.progress_reports = 16 * kib;
  o.random_reads = true;
  o.keep_bodies = false;
  pair p(o);
  const body_spec body{.seed = 72, .size = 4u << 20};
  auto m = from_reader("application/octet-stream", body);
  m.success_report = report_mode::yes;
  const auto h = p.alice().send(p.alice_session, std::move(m));

  // Alice's output moves up to four times before Bob's once: without the window she would
  // run far ahead of his REPORTs.
  std::uint64_t most = 0;
  std::size_t reads = 0;
  const auto measure = [&] {
    if (!finished(p.alice_events, h).empty()) return;
    const auto written = p.alice().bytes_sent(h);
    const auto covered = confirmed(p.wire(side::bob), first_message_id(p.wire(side::alice)));
    ASSERT_GE(written, covered);
    most = std::max(most, written - covered);
    // Reads are cut to the room left, so not even one read goes beyond the window.
    EXPECT_LE(written - covered, o.alice_config.unconfirmed_window) << "after read " << reads;
  };
  for (std::size_t round = 0; round < 1'000'000; ++round) {
    std::size_t moved = 0;
    for (std::size_t i = 0; i <= round % 4; ++i) {
      moved += p.move(side::alice, std::numeric_limits<std::size_t>::max());
      ++reads;
      measure();
    }
    moved += p.move(side::bob, std::numeric_limits<std::size_t>::max());
    measure();
    if (moved == 0) break;
  }
  EXPECT_GE(most, o.alice_config.unconfirmed_window - 2048) << "the window was never reached";

  const auto done = finished(p.alice_events, h);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].outcome, send_outcome::delivered);
  const auto all = reassemble(p.bob_events);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all.begin()->second.completed, 1);
  EXPECT_TRUE(all.begin()->second.bytes == bytes_of(body)) << "reassembled bytes differ";
  EXPECT_FALSE(p.alice().next_deadline());
}

TEST(EndpointPacing, WindowWithoutProgressReportsFailsAfterReportTimeout) {
  pair_options o;
  o.alice_config.unconfirmed_window = 64 * kib;
  o.alice_config.output_window = 256 * kib;  // so the window, not the output, stops her
  pair p(o);
  const body_spec body{.seed = 73, .size = 1u << 20};
  auto m = from_reader("application/octet-stream", body);
  m.success_report = report_mode::yes;
  p.alice_to_bob = link::hold;
  const auto h = p.alice().send(p.alice_session, std::move(m));
  p.pump();
  EXPECT_EQ(p.alice().bytes_sent(h), o.alice_config.unconfirmed_window);
  EXPECT_FALSE(p.alice().next_deadline()) << "a timer before the bytes left";
  p.advance(1h);
  EXPECT_TRUE(finished(p.alice_events, h).empty());

  const auto left = p.now;
  p.alice_to_bob = link::deliver;
  p.pump();
  EXPECT_TRUE(requests(p.wire(side::bob), "REPORT").empty());
  EXPECT_EQ(p.alice().bytes_sent(h), o.alice_config.unconfirmed_window) << "went past the window";
  EXPECT_EQ(p.alice().next_deadline(),
            std::optional<clock::time_point>(left + o.alice_config.report_timeout));
  p.advance_to(left + o.alice_config.report_timeout - 1ms);
  EXPECT_TRUE(finished(p.alice_events, h).empty()) << "timed out early";
  p.advance_to(left + o.alice_config.report_timeout);
  const auto done = finished(p.alice_events, h);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].outcome, send_outcome::failed);
  EXPECT_EQ(done[0].status, 408);

  // Its chunk ended with '+' at the window; now an empty '#' chunk tells Bob that the message
  // will not go on.
  p.pump();
  const auto sends = requests(p.wire(side::alice), "SEND");
  ASSERT_EQ(sends.size(), 2u);
  EXPECT_EQ(sends[0]->flag, end_flag::continued);
  EXPECT_EQ(sends[0]->body_size, o.alice_config.unconfirmed_window);
  EXPECT_EQ(sends[1]->flag, end_flag::aborted);
  EXPECT_EQ(sends[1]->body_size, 0u);
  const auto all = reassemble(p.bob_events);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all.begin()->second.aborted, 1);
  EXPECT_EQ(all.begin()->second.completed, 0);
  EXPECT_FALSE(p.alice().next_deadline());
}

TEST(EndpointPacing, PauseTimerCountsFromTheLastReportThatAdvances) {
  pair_options o;
  o.alice_config.unconfirmed_window = 64 * kib;
  o.bob_config.progress_reports = 16 * kib;
  pair p(o);
  p.bob_to_alice = link::drop;  // Bob's REPORTs are handed over below, one at a time
  const body_spec body{.seed = 74, .size = 1u << 20};
  auto m = from_reader("application/octet-stream", body);
  m.success_report = report_mode::yes;
  m.failure_report = report_mode::no;  // no 200s to miss
  const auto start = p.now;
  const auto h = p.alice().send(p.alice_session, std::move(m));
  p.pump();
  EXPECT_EQ(p.alice().bytes_sent(h), o.alice_config.unconfirmed_window);
  EXPECT_EQ(p.alice().next_deadline(), std::optional<clock::time_point>(start + 120s));
  const auto reports = requests(p.wire(side::bob), "REPORT");
  ASSERT_FALSE(reports.empty());

  p.advance(100s);
  p.alice().receive(1, replay(*reports.back()));
  p.pump();
  EXPECT_GT(p.alice().bytes_sent(h), o.alice_config.unconfirmed_window) << "did not resume";
  EXPECT_EQ(p.alice().next_deadline(), std::optional<clock::time_point>(p.now + 120s))
      << "the timer did not start again";
  p.advance_to(start + 120s);
  EXPECT_TRUE(finished(p.alice_events, h).empty()) << "timed out from the first pause";
  p.advance_to(start + 220s);
  const auto done = finished(p.alice_events, h);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].status, 408);
}

/// A REPORT Bob wrote, with another Byte-Range, as bytes to replay.
std::string report_with_range(const wire_frame& report, std::string_view range) {
  auto copy = report;
  for (auto& field : copy.head.headers) {
    if (field.name == "Byte-Range") field.value = std::string(range);
  }
  return replay(copy);
}

TEST(EndpointPacing, PausedBetweenChunksResumesWithRoomForAFullChunk) {
  pair_options o;
  o.alice_config.unconfirmed_window = 64 * kib;
  o.bob_config.progress_reports = 16 * kib;
  pair p(o);
  p.bob_to_alice = link::drop;  // Bob's REPORTs are handed over below, edited
  const body_spec body{.seed = 78, .size = 1u << 20};
  auto m = from_reader("application/octet-stream", body);
  m.success_report = report_mode::yes;
  const auto h = p.alice().send(p.alice_session, std::move(m));
  p.pump();
  ASSERT_EQ(p.alice().bytes_sent(h), o.alice_config.unconfirmed_window);
  const auto reports = requests(p.wire(side::bob), "REPORT");
  ASSERT_FALSE(reports.empty());
  for (const auto* answer : responses(p.wire(side::bob)))
    p.alice().receive(1, replay(*answer));  // the 200 for the file's chunk
  const auto total = "/" + std::to_string(body.size);

  // 100 bytes of room: too little for a new chunk (§7.1.1: not under 2048 bytes), but the
  // REPORT advanced, so the timer starts again.
  p.advance(100s);
  p.alice().receive(1, report_with_range(*reports[0], "1-100" + total));
  p.pump();
  EXPECT_EQ(p.alice().bytes_sent(h), o.alice_config.unconfirmed_window) << "a chunk under 2048";
  EXPECT_EQ(p.alice().next_deadline(), std::optional<clock::time_point>(p.now + 120s))
      << "the timer did not start again";

  // Room for 2048 bytes: a new chunk with exactly that much.
  p.alice().receive(1, report_with_range(*reports[0], "1-2048" + total));
  p.pump();
  EXPECT_EQ(p.alice().bytes_sent(h), o.alice_config.unconfirmed_window + 2048);
  const auto sends = requests(p.wire(side::alice), "SEND");
  ASSERT_FALSE(sends.empty());
  EXPECT_EQ(sends.back()->head.header("Byte-Range"),
            std::optional<std::string_view>("65537-*" + total));
  EXPECT_EQ(sends.back()->body_size, 2048u);
  EXPECT_EQ(sends.back()->flag, end_flag::continued);
  EXPECT_TRUE(finished(p.alice_events, h).empty());
}

TEST(EndpointPacing, PausedMessageDoesNotHoldUpTheConnection) {
  // Bob sends no incremental REPORTs, so the first file stays paused. (Under a 1 KiB window
  // its chunk is shorter than 2048 bytes.)
  for (const std::uint64_t window : {64 * kib, 1 * kib}) {
    SCOPED_TRACE(window);
    pair_options o;
    o.alice_config.unconfirmed_window = window;
    pair p(o);
    const auto alice2 = p.alice().open_session(test::settings_for("alice.example.com", 7777));
    const auto bob2 = p.bob().open_session(test::settings_for("bob.example.com", 8888));
    p.alice().set_remote_path(alice2, {p.bob().local_uri(bob2)});
    p.bob().set_remote_path(bob2, {p.alice().local_uri(alice2)});
    p.alice().bind(alice2, 1);

    const body_spec paused_body{.seed = 75, .size = 1u << 20};
    auto m = from_reader("application/octet-stream", paused_body);
    m.success_report = report_mode::yes;
    const auto file = p.alice().send(p.alice_session, std::move(m));
    p.pump();
    ASSERT_EQ(p.alice().bytes_sent(file), window);
    const auto id = first_message_id(p.wire(side::alice));

    // A chat line in the same session and a file in another session on the same connection
    // go out while the first file waits.
    const auto chat = p.alice().send(p.alice_session, text("still there?", report_mode::yes));
    const body_spec other_body{.seed = 76, .size = 256 * kib};
    const auto other = p.alice().send(alice2, from_reader("application/octet-stream", other_body));
    p.pump();
    for (const auto h : {chat, other}) {
      const auto done = finished(p.alice_events, h);
      ASSERT_EQ(done.size(), 1u);
      EXPECT_EQ(done[0].outcome, send_outcome::delivered);
    }
    EXPECT_TRUE(finished(p.alice_events, file).empty());
    EXPECT_EQ(p.alice().bytes_sent(file), window);
    const auto got = only<events::message_received>(p.bob_events);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].body, "still there?");
    std::string other_id;
    for (const auto& [rid, r] : reassemble(p.bob_events)) {
      if (r.completed == 1 && r.bytes == bytes_of(other_body)) other_id = rid;
    }
    ASSERT_FALSE(other_id.empty()) << "the other session's file did not get through";
    // The paused file's chunk ended with '+' after the whole window; the waiting file did not
    // cut the other one short either.
    const auto sends = requests(p.wire(side::alice), "SEND");
    ASSERT_FALSE(sends.empty());
    EXPECT_EQ(sends[0]->flag, end_flag::continued);
    EXPECT_EQ(sends[0]->body_size, window);
    EXPECT_EQ(std::count_if(sends.begin(), sends.end(),
                            [&](const auto* f) { return f->head.message_id() == other_id; }),
              1);

    // Waiting between chunks, it still times out, and its end goes out as an empty '#' chunk.
    p.settle();
    const auto done = finished(p.alice_events, file);
    ASSERT_EQ(done.size(), 1u);
    EXPECT_EQ(done[0].outcome, send_outcome::failed);
    EXPECT_EQ(done[0].status, 408);
    const auto after = requests(p.wire(side::alice), "SEND");
    EXPECT_EQ(after.back()->head.message_id(), std::optional<std::string_view>(id));
    EXPECT_EQ(after.back()->flag, end_flag::aborted);
    EXPECT_EQ(after.back()->body_size, 0u);
    EXPECT_EQ(reassemble(p.bob_events)[id].aborted, 1);
    EXPECT_FALSE(p.alice().next_deadline());
  }
}

TEST(EndpointPacing, AbortOfAPausedMessage) {
  // Paused once its bytes have left, and paused with them still in the output.
  for (const bool held : {false, true}) {
    SCOPED_TRACE(held ? "bytes held" : "bytes delivered");
    pair_options o;
    o.alice_config.unconfirmed_window = 64 * kib;
    o.alice_config.output_window = 256 * kib;  // so the window, not the output, stops her
    pair p(o);
    const body_spec body{.seed = 77, .size = 1u << 20};
    auto m = from_reader("application/octet-stream", body);
    m.success_report = report_mode::yes;
    if (held) p.alice_to_bob = link::hold;
    const auto file = p.alice().send(p.alice_session, std::move(m));
    p.pump();
    ASSERT_EQ(p.alice().bytes_sent(file), o.alice_config.unconfirmed_window);
    p.alice().abort(file);
    p.alice_to_bob = link::deliver;
    p.pump();

    const auto done = finished(p.alice_events, file);
    ASSERT_EQ(done.size(), 1u);
    EXPECT_EQ(done[0].outcome, send_outcome::aborted);
    const auto sends = requests(p.wire(side::alice), "SEND");
    ASSERT_EQ(sends.size(), 2u);
    EXPECT_EQ(sends[0]->body_size, o.alice_config.unconfirmed_window);
    EXPECT_EQ(sends[1]->flag, end_flag::aborted);
    const auto all = reassemble(p.bob_events);
    ASSERT_EQ(all.size(), 1u);
    EXPECT_EQ(all.begin()->second.aborted, 1);
    EXPECT_EQ(all.begin()->second.completed, 0);
    EXPECT_FALSE(p.alice().next_deadline()) << "a timer for an aborted message";
    p.advance(1h);
    EXPECT_EQ(finished(p.alice_events, file).size(), 1u);
  }
}

TEST(EndpointPacing, RefusalOfAPausedMessageArrives) {
  // A receiver answers a chunk only after its end-line, and sends no REPORT for a message it
  // refuses: the paused sender must end its chunk to hear the 413. (Found by
  // EndpointRandom.NothingLost: the sender failed with 408 after report_timeout instead.)
  pair_options o;
  o.alice_config.unconfirmed_window = 64 * kib;
  o.bob_config.progress_reports = 16 * kib;
  o.bob_settings.max_size = 512 * kib;
  pair p(o);
  const body_spec body{.seed = 79, .size = 1u << 20};
  auto m = from_reader("application/octet-stream", body);
  m.success_report = report_mode::yes;
  const auto h = p.alice().send(p.alice_session, std::move(m));
  p.pump();
  const auto done = finished(p.alice_events, h);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].outcome, send_outcome::failed);
  EXPECT_EQ(done[0].status, 413);
  EXPECT_TRUE(requests(p.wire(side::bob), "REPORT").empty());
}

// --- Randomized: nothing is lost ------------------------------------------------------------
//
// Two endpoints with random settings exchange random messages both ways over one connection,
// in one or two sessions, with random chunk ceilings, output windows, read splits,
// interleavings, aborts, report modes, accept-types, max-sizes and pacing (unconfirmed
// windows, progress REPORTs), and now and then a fault
// (one direction starts dropping bytes, or the connection closes). Whatever happens:
//   - every message sent ends in exactly one send_finished at its sender;
//   - every message whose outcome is `delivered` was received whole and byte-exact;
//   - every byte received (whole or in pieces) is the byte sent at that offset;
//   - no message is received complete twice, and nothing is received that was not sent;
//   - a message the receiver refuses (type, size) is never delivered;
//   - each side's output parses, and its chunks go out in Byte-Range order with '*' ends
//     above 2048 bytes.
// Without a fault, every message that was neither aborted nor refused is received and reaches
// the outcome its report modes promise.
//
// MSRP_SEEDS=n runs seeds 1..n (default 200); MSRP_SEED=n runs only seed n; MSRP_BIG=1 lets
// messages grow to 64 MiB instead of 4 MiB.

using test::chance;
using test::log_uniform;
using test::uniform;

/// The test's own reading of accept-types (§8.6), for the simple lowercase types it uses.
bool accepts(const std::vector<std::string>& accepted, std::string_view type) {
  for (const auto& a : accepted) {
    if (a == "*" || a == type) return true;
    if (a.size() > 2 && a.ends_with("/*") && type.starts_with(a.substr(0, a.size() - 1))) {
      return true;
    }
  }
  return false;
}

/// What the runs did, printed at the end so a reader can see the test is not vacuous.
struct run_totals {
  std::uint64_t messages = 0;
  std::uint64_t bytes = 0;
  std::uint64_t received = 0;
  std::uint64_t two_session_runs = 0;
  std::uint64_t paced_runs = 0;
  std::map<std::string, std::uint64_t> outcomes;
  std::map<std::string, std::uint64_t> faults;
  // output() views larger than output_window: counted, not fatal, so that one broken
  // promise does not hide the others.
  std::uint64_t window_overflows = 0;
  std::uint64_t first_overflow_seed = 0;
  std::size_t worst_overflow = 0;
};

class nothing_lost_run {
 public:
  nothing_lost_run(std::uint64_t seed, bool big, run_totals& totals)
      : seed_(seed), random_(seed), big_(big), totals_(totals) {}

  void run();

 private:
  enum class fault { none, drop_to_bob, drop_to_alice, close };

  struct planned {
    int id = 0;  // its Content-Description is "msg-<id>"; negative for the bodiless SENDs
    side from = side::alice;
    std::size_t session = 0;  // index into sessions_
    body_spec body;
    std::string content_type;
    report_mode success = report_mode::no;
    report_mode failure = report_mode::yes;
    bool use_reader = true;
    bool acceptable = true;  // the receiver's accept-types and max-size let it in
    std::set<int> refusals;  // the statuses a refusal may carry
    message_handle handle = 0;
    bool queued = false;
    int finishes = 0;
    send_outcome outcome = send_outcome::sent;
    int status = -1;
    bool aborted_by_test = false;
    bool aborted_after_last_byte = false;
    int completions = 0;  // times the peer received it complete
  };

  struct reception {
    int id = -1;
    bool ended = false;
    std::map<std::uint64_t, std::uint64_t> covered;  // begin -> end, merged
  };

  endpoint::config random_config();
  session_settings random_settings(side s);
  void plan_messages(const pair_options& o);
  void queue(pair& p, planned& m);
  void observe(side s, const event& e);
  void observe_finished(side s, const events::send_finished& f);
  planned* sent_by_peer(side receiver, session_handle session,
                        std::optional<std::string_view> description);
  void add_piece(reception& rx, const events::message_piece& piece);
  void check_wire(const wire_log& wire, side s);
  void check_outcomes(bool healthy);
  void count(const pair& p, const pair_options& o);

  std::size_t session_index(side s, session_handle h) const {
    for (std::size_t i = 0; i < session_count_; ++i) {
      if (sessions_[static_cast<std::size_t>(s)][i] == h) return i;
    }
    return 99;
  }

  std::uint64_t seed_;
  std::mt19937_64 random_;
  bool big_;
  run_totals& totals_;
  fault fault_ = fault::none;
  std::size_t session_count_ = 1;
  session_handle sessions_[2][2] = {};  // [side][index]
  std::vector<planned> messages_;
  std::vector<planned> empties_;  // one bodiless SEND per session, from Alice
  std::map<std::pair<side, message_handle>, planned*> by_handle_;
  std::map<std::pair<side, std::string>, reception> receptions_;
  int bodiless_received_[2] = {};
};

endpoint::config nothing_lost_run::random_config() {
  endpoint::config c;
  c.chunk_ceiling = chance(random_, 0.3) ? UINT64_MAX : log_uniform(random_, 512, 1u << 20);
  c.output_window = log_uniform(random_, 4096, 256 * 1024);
  c.whole_message_limit = chance(random_, 0.1) ? 0 : log_uniform(random_, 1, 256 * 1024);
  return c;
}

session_settings nothing_lost_run::random_settings(side s) {
  auto settings = s == side::alice ? test::settings_for("alice.example.com", 7777)
                                   : test::settings_for("bob.example.com", 8888);
  const auto pick = uniform(random_, 0, 9);
  if (pick < 6) {
    settings.accept_types = {"*"};
  } else if (pick < 8) {
    settings.accept_types = {"text/*", "application/octet-stream"};
  } else {
    settings.accept_types = {"text/plain"};
  }
  if (chance(random_, 0.2)) settings.max_size = log_uniform(random_, 1000, 8u << 20);
  return settings;
}

void nothing_lost_run::plan_messages(const pair_options& o) {
  static const std::vector<std::string> types = {"text/plain",
                                                 "text/plain",
                                                 "text/plain",
                                                 "application/octet-stream",
                                                 "application/octet-stream",
                                                 "text/html",
                                                 "image/png"};
  const std::uint64_t largest = big_ ? 64u << 20 : 4u << 20;
  const auto count = uniform(random_, 1, 10);
  for (std::uint64_t i = 0; i < count; ++i) {
    planned m;
    m.id = static_cast<int>(i);
    m.from = chance(random_, 0.6) ? side::alice : side::bob;
    m.session = uniform(random_, 0, session_count_ - 1);
    // Sizes with a heavy tail: mostly chat lines, sometimes files.
    const auto pick = uniform(random_, 0, 99);
    if (pick < 45) {
      m.body.size = uniform(random_, 0, 300);
    } else if (pick < 75) {
      m.body.size = uniform(random_, 301, 70'000);
    } else if (pick < 94) {
      m.body.size = log_uniform(random_, 70'000, 1u << 20);
    } else {
      m.body.size = log_uniform(random_, 1u << 20, largest);
    }
    m.body.seed = mix(seed_ * 1000 + i);
    m.body.lookalike = chance(random_, 0.1);
    m.content_type = types[uniform(random_, 0, types.size() - 1)];
    m.success = chance(random_, 0.4) ? report_mode::yes : report_mode::no;
    const auto failure = uniform(random_, 0, 3);
    m.failure =
        failure < 2 ? report_mode::yes : (failure == 2 ? report_mode::partial : report_mode::no);
    m.use_reader = m.body.size > 1024 ? chance(random_, 0.8) : chance(random_, 0.2);
    const auto& receiver = m.from == side::alice ? o.bob_settings : o.alice_settings;
    if (!accepts(receiver.accept_types, m.content_type)) m.refusals.insert(415);
    if (receiver.max_size && m.body.size > *receiver.max_size) m.refusals.insert(413);
    m.acceptable = m.refusals.empty();
    messages_.push_back(std::move(m));
  }
}

void nothing_lost_run::queue(pair& p, planned& m) {
  auto out = m.use_reader ? from_reader(m.content_type, m.body)
                          : outgoing_message::text(m.content_type, bytes_of(m.body));
  out.success_report = m.success;
  out.failure_report = m.failure;
  out.headers = {{"Content-Description", "msg-" + std::to_string(m.id)}};
  m.handle =
      p.of(m.from).send(sessions_[static_cast<std::size_t>(m.from)][m.session], std::move(out));
  m.queued = true;
  by_handle_[{m.from, m.handle}] = &m;
}

nothing_lost_run::planned* nothing_lost_run::sent_by_peer(
    side receiver, session_handle session, std::optional<std::string_view> description) {
  if (!description || !description->starts_with("msg-")) return nullptr;
  const auto id = std::strtol(std::string(description->substr(4)).c_str(), nullptr, 10);
  if (id < 0 || static_cast<std::size_t>(id) >= messages_.size()) return nullptr;
  auto& m = messages_[static_cast<std::size_t>(id)];
  if (m.from == receiver || !m.queued) return nullptr;
  EXPECT_EQ(session_index(receiver, session), m.session)
      << "message " << m.id << " arrived in the wrong session";
  return &m;
}

void nothing_lost_run::observe_finished(side s, const events::send_finished& f) {
  const auto found = by_handle_.find({s, f.message});
  if (found == by_handle_.end()) {
    ADD_FAILURE() << "send_finished for a message never sent";
    return;
  }
  auto& m = *found->second;
  EXPECT_EQ(session_index(s, f.session), m.session) << "send_finished names the wrong session";
  if (++m.finishes > 1) ADD_FAILURE() << "message " << m.id << " finished twice";
  m.outcome = f.outcome;
  m.status = f.status;
}

void nothing_lost_run::add_piece(reception& rx, const events::message_piece& piece) {
  const auto& m = messages_[static_cast<std::size_t>(rx.id)];
  if (piece.offset + piece.bytes.size() > m.body.size) {
    ADD_FAILURE() << "message " << m.id << ": piece past the end";
    return;
  }
  EXPECT_TRUE(piece.bytes == bytes_of(m.body, piece.offset, piece.bytes.size()))
      << "message " << m.id << " corrupted at offset " << piece.offset;
  test::cover(rx.covered, piece.offset, piece.offset + piece.bytes.size());
}

void nothing_lost_run::observe(side s, const event& e) {
  if (const auto* f = std::get_if<events::send_finished>(&e)) return observe_finished(s, *f);
  if (const auto* c = std::get_if<events::connection_failed>(&e)) {
    ADD_FAILURE() << "connection_failed between two well-behaved endpoints: " << c->error.message();
    return;
  }
  if (const auto* r = std::get_if<events::message_received>(&e)) {
    const auto description = r->head.header("Content-Description");
    if (!description && s == side::bob && r->body.empty() && !r->head.content_type()) {
      // The bodiless SEND that binds Bob's session, if the engine reports it at all.
      const auto index = session_index(s, r->session);
      ASSERT_LT(index, session_count_);
      EXPECT_LE(++bodiless_received_[index], 1) << "the bodiless SEND was delivered twice";
      return;
    }
    auto* m = sent_by_peer(s, r->session, description);
    if (m == nullptr) {
      ADD_FAILURE() << "received a message the peer never sent";
      return;
    }
    EXPECT_TRUE(m->acceptable) << "refused message " << m->id << " was delivered";
    EXPECT_EQ(r->body.size(), m->body.size) << "message " << m->id;
    EXPECT_TRUE(r->body == bytes_of(m->body)) << "message " << m->id << " arrived corrupted";
    if (++m->completions > 1) ADD_FAILURE() << "message " << m->id << " delivered twice";
    return;
  }
  if (const auto* st = std::get_if<events::message_started>(&e)) {
    const auto key = std::make_pair(s, st->message_id);
    EXPECT_FALSE(receptions_.contains(key)) << "message_started twice for " << st->message_id;
    auto* m = sent_by_peer(s, st->session, st->head.header("Content-Description"));
    if (m == nullptr) {
      ADD_FAILURE() << "started a message the peer never sent";
      return;
    }
    receptions_[key].id = m->id;
    if (st->size) {
      EXPECT_EQ(*st->size, m->body.size) << "message " << m->id;
    }
    return;
  }
  if (const auto* piece = std::get_if<events::message_piece>(&e)) {
    const auto found = receptions_.find({s, piece->message_id});
    if (found == receptions_.end() || found->second.id < 0) {
      ADD_FAILURE() << "a piece of a message that never started";
      return;
    }
    EXPECT_FALSE(found->second.ended) << "a piece after the message ended";
    return add_piece(found->second, *piece);
  }
  if (const auto* done = std::get_if<events::message_completed>(&e)) {
    const auto found = receptions_.find({s, done->message_id});
    if (found == receptions_.end() || found->second.id < 0) {
      ADD_FAILURE() << "completed a message that never started";
      return;
    }
    auto& rx = found->second;
    EXPECT_FALSE(rx.ended) << "completed after it ended";
    rx.ended = true;
    auto& m = messages_[static_cast<std::size_t>(rx.id)];
    EXPECT_TRUE(m.acceptable) << "refused message " << m.id << " was delivered";
    EXPECT_EQ(done->size, m.body.size) << "message " << m.id;
    const bool whole =
        m.body.size == 0 || (rx.covered.size() == 1 && rx.covered.begin()->first == 0 &&
                             rx.covered.begin()->second == m.body.size);
    EXPECT_TRUE(whole) << "message " << m.id << " completed with gaps";
    if (++m.completions > 1) ADD_FAILURE() << "message " << m.id << " delivered twice";
    return;
  }
  if (const auto* aborted = std::get_if<events::message_aborted>(&e)) {
    const auto found = receptions_.find({s, aborted->message_id});
    if (found != receptions_.end()) {
      EXPECT_FALSE(found->second.ended) << "aborted after it ended";
      found->second.ended = true;
    }
  }
}

void nothing_lost_run::check_wire(const wire_log& wire, side s) {
  SCOPED_TRACE(s == side::alice ? "Alice's wire" : "Bob's wire");
  EXPECT_FALSE(wire.error()) << "malformed output: " << wire.error().message();
  std::map<std::string, std::uint64_t> next;  // Message-ID -> expected range-start
  for (const auto& f : wire.frames()) {
    if (f.head.method != "SEND" || !f.ended) continue;
    const auto range = f.head.byte_range();
    ASSERT_TRUE(range);
    const auto description = f.head.header("Content-Description");
    if (!description) continue;  // a bodiless SEND
    const auto id = std::strtol(std::string(description->substr(4)).c_str(), nullptr, 10);
    ASSERT_GE(id, 0);
    ASSERT_LT(static_cast<std::size_t>(id), messages_.size());
    const auto& m = messages_[static_cast<std::size_t>(id)];
    EXPECT_EQ(range->total, std::optional<std::uint64_t>(m.body.size));
    if (f.body_size > 2048) {
      EXPECT_FALSE(range->end) << "a chunk over 2048 bytes needs '*'";
    }
    if (range->end && f.flag != end_flag::aborted) {
      EXPECT_EQ(*range->end + 1 - range->start, f.body_size) << "range-end does not match";
    }
    const std::string message_id(f.head.message_id().value_or(""));
    const auto expected = next.contains(message_id) ? next[message_id] : 1;
    EXPECT_EQ(range->start, expected) << "chunks out of Byte-Range order";
    next[message_id] = range->start + f.body_size;
    if (f.flag == end_flag::complete) {
      EXPECT_EQ(range->start + f.body_size, m.body.size + 1) << "'$' before the last byte";
    }
  }
}

void nothing_lost_run::check_outcomes(bool healthy) {
  std::vector<planned*> all;
  for (auto& m : messages_) {
    if (m.queued) all.push_back(&m);
  }
  for (auto& m : empties_)
    all.push_back(&m);
  for (auto* m : all) {
    SCOPED_TRACE("message " + std::to_string(m->id) + " from " +
                 (m->from == side::alice ? "Alice" : "Bob") + " in session " +
                 std::to_string(m->session) + ", " + std::to_string(m->body.size) + " bytes of " +
                 m->content_type);
    EXPECT_EQ(m->finishes, 1) << "every message ends in exactly one send_finished";
    if (m->finishes != 1) continue;
    if (m->aborted_by_test) {
      EXPECT_EQ(m->outcome, send_outcome::aborted);
    }
    if (m->outcome == send_outcome::delivered) {
      EXPECT_EQ(m->status, 200);
      if (m->id >= 0) {
        EXPECT_EQ(m->completions, 1) << "delivered but not received";
      }
    }
    if (!m->acceptable) {
      EXPECT_EQ(m->completions, 0) << "refused but received";
    }
    if (m->completions > 0 && m->outcome == send_outcome::failed) {
      // Received whole, yet the sender saw it fail: only the transport may do that. A 408
      // means the answer did not come back in time, 0 that the connection or session went
      // away before it did; in both cases the bytes may well have arrived (a sender cannot
      // tell a lost request from a lost response, which is why §5.4 resends with the same
      // Message-ID and receivers drop duplicates). Any other status is the receiver
      // refusing the message, which it must not also deliver.
      EXPECT_TRUE(m->status == 408 || m->status == 0) << "received, yet failed with " << m->status;
    }
    if (m->completions > 0 && m->outcome == send_outcome::aborted) {
      EXPECT_TRUE(m->aborted_after_last_byte) << "aborted mid-way, yet received whole";
    }
    if (!healthy || m->aborted_by_test) continue;
    // Without faults, outcomes follow from the report modes.
    if (m->id < 0) {
      EXPECT_EQ(m->outcome, send_outcome::delivered) << "the bodiless SEND";
    } else if (m->acceptable) {
      EXPECT_EQ(m->completions, 1) << "never arrived on a healthy connection";
      const bool confirmed = m->success == report_mode::yes || m->failure == report_mode::yes;
      EXPECT_EQ(m->outcome, confirmed ? send_outcome::delivered : send_outcome::sent)
          << "status " << m->status;
    } else if (m->failure == report_mode::yes) {
      EXPECT_EQ(m->outcome, send_outcome::failed);
      EXPECT_TRUE(m->refusals.contains(m->status)) << "failed with " << m->status;
    } else {
      EXPECT_NE(m->outcome, send_outcome::delivered);
    }
  }
  if (healthy) {
    for (const auto& [key, rx] : receptions_) {
      if (rx.id >= 0 && !messages_[static_cast<std::size_t>(rx.id)].aborted_by_test) {
        EXPECT_TRUE(rx.ended) << "message " << rx.id << " still incomplete at its receiver";
      }
    }
  }
}

void nothing_lost_run::count(const pair& p, const pair_options& o) {
  static const char* const fault_names[] = {"none", "drop to Bob", "drop to Alice", "close"};
  ++totals_.faults[fault_names[static_cast<int>(fault_)]];
  if (session_count_ == 2) ++totals_.two_session_runs;
  static const char* const outcome_names[] = {"delivered", "sent", "failed", "aborted"};
  for (const auto& m : messages_) {
    if (!m.queued) continue;
    ++totals_.messages;
    totals_.bytes += m.body.size;
    totals_.received += static_cast<std::uint64_t>(m.completions);
    auto name = std::string(outcome_names[static_cast<int>(m.outcome)]);
    if (m.outcome == send_outcome::failed) name += " " + std::to_string(m.status);
    ++totals_.outcomes[name];
  }
  for (const auto s : {side::alice, side::bob}) {
    const auto window = (s == side::alice ? o.alice_config : o.bob_config).output_window;
    if (p.max_output(s) <= window) continue;
    if (totals_.window_overflows++ == 0) totals_.first_overflow_seed = seed_;
    totals_.worst_overflow = std::max(totals_.worst_overflow, p.max_output(s) - window);
  }
}

void nothing_lost_run::run() {
  pair_options o;
  o.seed = seed_;
  o.random_reads = true;
  o.keep_bodies = false;
  o.keep_events = false;
  o.check_window = false;  // counted in `count` instead
  o.alice_config = random_config();
  o.bob_config = random_config();
  // Pacing (§7.1.3) in some runs: a sender's window, with the receiver's progress step at most
  // a quarter of it (or progress REPORTs alone). A generator of its own leaves the other
  // choices of each seed as they were.
  std::mt19937_64 pacing(mix(seed_ ^ 0x7ace));
  bool paced = false;
  for (auto* sender : {&o.alice_config, &o.bob_config}) {
    auto& receiver = sender == &o.alice_config ? o.bob_config : o.alice_config;
    const auto pick = uniform(pacing, 0, 9);
    if (pick < 3) {
      sender->unconfirmed_window = log_uniform(pacing, 1024, 1u << 20);
      receiver.progress_reports = sender->unconfirmed_window / uniform(pacing, 4, 16);
      paced = true;
    } else if (pick < 4) {
      receiver.progress_reports = log_uniform(pacing, 1, 1u << 20);
    }
  }
  if (paced) ++totals_.paced_runs;
  o.alice_settings = random_settings(side::alice);
  o.bob_settings = random_settings(side::bob);
  session_count_ = chance(random_, 0.3) ? 2 : 1;
  plan_messages(o);
  const auto fault_pick = uniform(random_, 0, 99);
  fault_ = fault_pick < 60   ? fault::none
           : fault_pick < 73 ? fault::drop_to_bob
           : fault_pick < 86 ? fault::drop_to_alice
                             : fault::close;
  const auto steps = uniform(random_, 5, 60);
  const auto fault_step = uniform(random_, 0, steps);

  pair p(o);
  sessions_[0][0] = p.alice_session;
  sessions_[1][0] = p.bob_session;
  if (session_count_ == 2) {
    // A second session on the same connection (§5.4: sessions may share one).
    const auto a = p.alice().open_session(o.alice_settings);
    const auto b = p.bob().open_session(o.bob_settings);
    p.alice().set_remote_path(a, {p.bob().local_uri(b)});
    p.bob().set_remote_path(b, {p.alice().local_uri(a)});
    p.alice().bind(a, pair::connection);
    sessions_[0][1] = a;
    sessions_[1][1] = b;
  }
  p.on_event = [&](side s, const event& e) { observe(s, e); };

  // The active side speaks first in every session (§5.4).
  empties_.resize(session_count_);
  for (std::size_t i = 0; i < session_count_; ++i) {
    auto& m = empties_[i];
    m.id = -1 - static_cast<int>(i);
    m.session = i;
    m.content_type = "(none)";
    m.handle = p.alice().send_empty(sessions_[0][i]);
    m.queued = true;
    by_handle_[{side::alice, m.handle}] = &m;
  }

  std::size_t next = 0;
  for (std::uint64_t step = 0; step <= steps; ++step) {
    if (step == fault_step) {
      switch (fault_) {
        case fault::none:
          break;
        case fault::drop_to_bob:
          p.alice_to_bob = link::drop;
          break;
        case fault::drop_to_alice:
          p.bob_to_alice = link::drop;
          break;
        case fault::close:
          p.close();
          break;
      }
    }
    const auto action = uniform(random_, 0, 99);
    if (action < 35) {
      if (next < messages_.size() && !p.closed()) queue(p, messages_[next++]);
    } else if (action < 78) {
      p.pump(chance(random_, 0.5) ? std::numeric_limits<std::size_t>::max()
                                  : log_uniform(random_, 1, 1u << 20));
    } else if (action < 88) {
      p.advance(std::chrono::milliseconds(uniform(random_, 0, 200)));
    } else if (action < 95) {
      std::vector<planned*> open;
      for (auto& m : messages_) {
        if (m.queued && m.finishes == 0) open.push_back(&m);
      }
      if (!open.empty()) {
        auto& m = *open[uniform(random_, 0, open.size() - 1)];
        m.aborted_by_test = true;
        m.aborted_after_last_byte = p.of(m.from).bytes_sent(m.handle) == m.body.size;
        p.of(m.from).abort(m.handle);
        p.drain();
      }
    }
  }
  while (next < messages_.size() && !p.closed())
    queue(p, messages_[next++]);
  p.settle();

  const bool healthy = fault_ == fault::none;
  if (healthy) {
    for (const auto& m : messages_) {
      EXPECT_EQ(m.finishes, 1) << "message " << m.id << " unfinished on a healthy connection";
    }
  }
  // Closing the sessions ends whatever is still waiting.
  for (std::size_t i = 0; i < session_count_; ++i) {
    p.alice().close_session(sessions_[0][i]);
    p.bob().close_session(sessions_[1][i]);
  }
  p.drain();
  p.settle();
  check_outcomes(healthy);
  check_wire(p.wire(side::alice), side::alice);
  check_wire(p.wire(side::bob), side::bob);
  count(p, o);
}

TEST(EndpointRandom, NothingLost) {
  const auto [first, last, big] = test::seeds_from_env("MSRP", 200);
  run_totals totals;
  for (auto seed = first; seed <= last; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed) +
                 " (replay with MSRP_SEED=" + std::to_string(seed) + ")");
    nothing_lost_run(seed, big, totals).run();
    if (::testing::Test::HasFailure()) {
      ADD_FAILURE() << "seed " << seed << " failed; replay with MSRP_SEED=" << seed;
      break;
    }
  }
  EXPECT_EQ(totals.window_overflows, 0u)
      << "output() exceeded output_window in " << totals.window_overflows << " runs, by up to "
      << totals.worst_overflow << " bytes; first in seed " << totals.first_overflow_seed
      << " (replay with MSRP_SEED=" << totals.first_overflow_seed << ")";
  std::string summary = "seeds " + std::to_string(first) + ".." + std::to_string(last) + ": " +
                        std::to_string(totals.messages) + " messages, " +
                        std::to_string(totals.bytes) + " bytes, " +
                        std::to_string(totals.received) + " received whole, " +
                        std::to_string(totals.two_session_runs) + " runs with two sessions, " +
                        std::to_string(totals.paced_runs) + " paced; " + "outcomes:";
  for (const auto& [name, n] : totals.outcomes)
    summary += " " + name + " x" + std::to_string(n);
  summary += "; faults:";
  for (const auto& [name, n] : totals.faults)
    summary += " " + name + " x" + std::to_string(n);
  std::printf("%s\n", summary.c_str());
}

}  // namespace
}  // namespace msrp
