#include "msrp/endpoint.hpp"

#include <algorithm>
#include <cassert>
#include <deque>
#include <limits>
#include <unordered_map>
#include <unordered_set>

#include "msrp/detail/text.hpp"
#include "msrp/sdp.hpp"

namespace msrp {
namespace {

// RFC 4975 §7.1.1: chunks are interrupted only once at least 2048 octets went out.
constexpr std::uint64_t min_interrupted_chunk = 2048;
// How many Message-IDs a session remembers, to acknowledge duplicates without delivering them
// again and to answer `reject` for messages already delivered.
constexpr std::size_t remembered_messages = 4096;
// The start of a message/cpim body kept to find the wrapped Content-Type (§8.6).
constexpr std::size_t cpim_prefix_size = 4096;
// How long a relay's URIs last when its 200 to AUTH states no Expires (RFC 4976 §6.3 says it
// does) and we asked for none: the Expires of RFC 4976 §5.1's example.
constexpr std::chrono::seconds default_auth_expires{1800};

const char* reason_phrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 403:
      return "Forbidden";
    case 408:
      return "Request Timeout";
    case 413:
      return "Message Too Large";
    case 415:
      return "Unsupported Media Type";
    case 481:
      return "No Such Session";
    case 501:
      return "Not Implemented";
    case 506:
      return "Session Bound To Another Connection";
  }
  return "Error";
}

/// Byte ranges [begin, end) received or reported, merged.
class interval_set {
 public:
  void add(std::uint64_t begin, std::uint64_t end) {
    if (begin >= end) return;
    auto it = ranges_.upper_bound(begin);
    if (it != ranges_.begin() && std::prev(it)->second >= begin) --it;
    while (it != ranges_.end() && it->first <= end) {
      begin = std::min(begin, it->first);
      end = std::max(end, it->second);
      it = ranges_.erase(it);
    }
    ranges_.emplace(begin, end);
  }
  /// True if [0, size) is covered.
  bool covers(std::uint64_t size) const {
    if (size == 0) return true;
    return !ranges_.empty() && ranges_.begin()->first == 0 && ranges_.begin()->second >= size;
  }
  /// The end of the range that starts at 0: how many bytes are covered from the start.
  std::uint64_t prefix() const {
    return ranges_.empty() || ranges_.begin()->first != 0 ? 0 : ranges_.begin()->second;
  }
  const std::map<std::uint64_t, std::uint64_t>& ranges() const { return ranges_; }

 private:
  std::map<std::uint64_t, std::uint64_t> ranges_;
};

/// The Content-Type of the payload wrapped in a message/cpim body (RFC 3862 §2): the CPIM
/// headers, a blank line, then the MIME headers of the payload. Empty if `body` is too short.
std::string_view cpim_wrapped_type(std::string_view body) {
  const auto mime = body.find("\r\n\r\n");
  if (mime == std::string_view::npos) return {};
  for (auto line = mime + 4; line < body.size();) {
    const auto end = body.find("\r\n", line);
    if (end == std::string_view::npos || end == line) return {};
    const auto text = body.substr(line, end - line);
    const auto colon = text.find(':');
    if (colon != std::string_view::npos && detail::iequals(text.substr(0, colon), "Content-Type")) {
      auto value = text.substr(colon + 1);
      while (!value.empty() && value.front() == ' ')
        value.remove_prefix(1);
      return value;
    }
    line = end + 2;
  }
  return {};
}

/// The first challenge of a 401 that the endpoint can answer. RFC 7616 §3.7: a relay sends
/// them most preferred first, and a client skips those it does not support (such as MD5-sess).
std::optional<digest::challenge> usable_challenge(const message& head) {
  for (const auto value : head.www_authenticate()) {
    if (auto parsed = digest::challenge::parse(value)) return std::move(*parsed);
  }
  return std::nullopt;
}

/// The first URI of a path header value, as written.
std::string_view first_hop(std::string_view path) {
  return path.substr(0, path.find(' '));
}

/// Position just before the last byte of the first full end-line of `id` in `text`
/// (CRLF "-------" id flag CRLF), or npos: a chunk cut there cannot end early (§7.1).
std::size_t end_line_cut(std::string_view text, std::string_view id) {
  const std::string lead = "\r\n-------" + std::string(id);
  for (auto at = text.find(lead); at != std::string_view::npos; at = text.find(lead, at + 1)) {
    const auto rest = text.substr(at + lead.size());
    if (rest.size() >= 3 && (rest[0] == '$' || rest[0] == '+' || rest[0] == '#') &&
        rest[1] == '\r' && rest[2] == '\n') {
      return at + lead.size() + 2;
    }
  }
  return std::string_view::npos;
}

}  // namespace

outgoing_message outgoing_message::text(std::string content_type, std::string body) {
  auto shared = std::make_shared<const std::string>(std::move(body));
  outgoing_message m;
  m.content_type = std::move(content_type);
  m.size = shared->size();
  m.read = [shared](std::uint64_t offset, std::span<char> into) -> result<std::size_t> {
    const auto n = std::min<std::uint64_t>(into.size(), shared->size() - offset);
    std::copy_n(shared->data() + offset, n, into.data());
    return static_cast<std::size_t>(n);
  };
  return m;
}

struct endpoint::state {
  struct outgoing {
    session_handle session = 0;
    std::string message_id;
    outgoing_message message;
    chunker chunks;
    std::uint64_t written = 0;                // body bytes put into output
    std::size_t open_transactions = 0;        // chunks awaiting a 200
    bool started = false;                     // a chunk went into output
    bool all_queued = false;                  // no more chunks will be written
    bool flushed = false;                     // the last chunk left through consume_output
    bool queued = false;                      // in a waiting or ready list, or the current chunk
    bool finished = false;                    // its outcome was reported
    bool abandoned = false;                   // aborted, or timed out paused: ends with '#'
    std::vector<std::string> transactions{};  // ids of its chunks awaiting a response
    connection_id connection = 0;             // where those chunks went
    interval_set reported{};                  // bytes covered by success REPORTs
    bool report_seen = false;
    std::optional<clock::time_point> report_deadline{};
    bool paused = false;       // waits for success REPORTs (unconfirmed_window)
    std::uint64_t body_end{};  // stream offset just past its last body byte written
  };

  struct incoming {
    message head;  // the head of the first chunk that arrived, then of the latest one
    std::optional<std::uint64_t> total;
    interval_set received;
    std::string buffer;  // the bytes, while the message may still be delivered whole
    bool streaming = false;
    std::string opening;  // its first bytes, where a message/cpim names its payload
    bool payload_checked = false;
    std::uint64_t progress_reported = 0;  // bytes from the start its last progress REPORT covered
  };

  // What a session remembers of a message it received, to answer `reject`.
  struct received_record {
    std::string reply_path;
    report_mode failure_report = report_mode::yes;
    std::optional<std::uint64_t> size;
  };

  // The AUTH transaction of a relay binding in flight, with what the retries depend on.
  struct auth_exchange {
    std::string transaction_id;
    std::optional<digest::credentials> sent;  // the Authorization of the request in flight
    int challenges = 0;                       // 401s answered
    bool stale_retried = false;
    bool expires_retried = false;
  };

  // A relay the session authenticated to (RFC 4976 §5.1).
  struct relay_binding {
    std::vector<uri> to_path;  // of its AUTH requests: the relay path then, and the relay
    relay_account account;
    std::optional<std::chrono::seconds> expires;   // to ask for; clamped after a 423
    std::vector<uri> use_path{};                   // the last one it returned
    std::optional<digest::challenge> challenge{};  // the nonce to answer next, if any
    std::uint32_t nonce_count = 0;                 // requests sent with that nonce
    std::optional<clock::time_point> refresh_at{};
    std::optional<auth_exchange> exchange{};
  };

  struct session {
    session_settings settings;
    uri local;
    std::vector<uri> remote_path;
    std::vector<uri> relay_path;          // the Use-Path of the outermost relay
    std::vector<relay_binding> relays{};  // innermost first
    std::optional<connection_id> connection;
    bool closed = false;
    std::deque<message_handle> waiting;                    // queued before the session could send
    std::unordered_map<std::string, message_handle> sent;  // Message-ID -> message (REPORTs)
    std::unordered_map<std::string, incoming> incoming_messages;
    std::unordered_map<std::string, received_record> received;  // seen; oldest evicted
    std::deque<std::string> received_order;
    std::unordered_map<std::string, int> refused;  // Message-IDs refused, with the status
  };

  struct transaction {
    message_handle message = 0;
    bool expects_200 = false;  // Failure-Report yes: a missing response is a failure
    std::optional<clock::time_point> deadline;
    session_handle auth_session = 0;  // an AUTH's session (0 for a SEND chunk) ...
    std::size_t relay = 0;            // ... and its index in session::relays
  };

  // A response, REPORT or AUTH waiting to go out; an AUTH's timer starts once it is written.
  struct urgent_frame {
    std::string bytes;
    std::string transaction_id{};
  };

  // A point in a connection's output stream and what happens once it is written.
  struct flush_mark {
    std::uint64_t end = 0;
    std::string transaction_id;  // its timer starts (empty: none)
    message_handle last_of = 0;  // this was the message's last chunk
  };

  // The request being received on a connection.
  struct frame {
    session_handle session = 0;
    bool is_send = false;
    int answer = 0;  // status to answer at the end-line; 0 for none
    report_mode failure_report = report_mode::yes;
    std::string message_id;  // of a SEND being stored
    std::uint64_t position = 0;
    std::uint64_t chunk_start = 0;
    bool discard = false;
    bool report_duplicate = false;  // a repeated chunk still gets its success REPORT (§5.4)
  };

  struct chunk_in_progress {
    message_handle message = 0;
    std::string transaction_id;
    chunk plan;
    std::uint64_t sent = 0;
    std::string tail;  // last body bytes, to find an end-line spanning two reads
  };

  struct connection {
    parser wire;
    std::string held;  // received bytes the parser left unconsumed
    std::string out;
    std::uint64_t out_base = 0;          // stream offset of out[0]
    std::deque<urgent_frame> urgent;     // responses, REPORTs and AUTH
    std::deque<message_handle> ready;    // messages with chunks to send, in turn
    std::vector<message_handle> paused;  // messages between chunks waiting for success REPORTs
    std::optional<chunk_in_progress> current;
    std::unordered_map<std::string, transaction> transactions;
    std::deque<flush_mark> marks;
    frame request;
    bool failed = false;
    connection_id id;

    connection(const parser::limits& limits, connection_id identity) : wire(limits), id(identity) {}
  };

  config settings;
  random_source random;
  clock::time_point now{};
  session_handle next_session = 1;
  message_handle next_message = 1;
  std::map<session_handle, session> sessions;
  std::unordered_map<std::string, session_handle> by_session_id;
  std::unordered_map<message_handle, outgoing> messages;
  std::map<connection_id, connection> connections;
  std::deque<event> events;

  state(config c, random_source r) : settings(std::move(c)), random(std::move(r)) {}

  connection& connection_for(connection_id id) {
    return connections.try_emplace(id, settings.limits, id).first->second;
  }

  // --- Sending

  /// Moves the session's waiting messages to its connection once it can send.
  void activate(session_handle handle) {
    auto& s = sessions.at(handle);
    if (!s.connection || s.remote_path.empty()) return;
    auto& c = connection_for(*s.connection);
    for (const auto m : s.waiting)
      c.ready.push_back(m);
    s.waiting.clear();
  }

  void finish(message_handle handle, send_outcome outcome, int status, std::string comment) {
    auto& m = messages.at(handle);
    if (m.finished) return;
    m.finished = true;
    events.push_back(events::send_finished{m.session, handle, outcome, status, std::move(comment)});
    // A paused message between chunks goes back in turn: for its '#' chunk, or to be dropped.
    if (m.paused) {
      m.paused = false;
      if (const auto c = connections.find(m.connection); c != connections.end()) {
        auto& parked = c->second.paused;
        if (const auto it = std::find(parked.begin(), parked.end(), handle); it != parked.end()) {
          parked.erase(it);
          c->second.ready.push_back(handle);
        }
      }
    }
    // Its chunks' responses no longer matter (Failure-Report partial ones may never come).
    if (const auto c = connections.find(m.connection); c != connections.end()) {
      for (const auto& id : m.transactions)
        c->second.transactions.erase(id);
    }
    auto& s = sessions.at(m.session);
    s.sent.erase(m.message_id);
    if (!m.queued) messages.erase(handle);
  }

  void fail(message_handle handle, int status, std::string comment) {
    finish(handle, send_outcome::failed, status, std::move(comment));
  }

  /// Reports the outcome once everything the report modes ask for has happened.
  void check_delivered(message_handle handle) {
    auto& m = messages.at(handle);
    if (m.finished || !m.all_queued || !m.flushed) return;
    const bool want_responses = m.message.failure_report == report_mode::yes;
    const bool want_report = m.message.success_report == report_mode::yes;
    if (want_responses && m.open_transactions > 0) return;
    if (want_report && !(m.report_seen && m.reported.covers(m.message.size))) return;
    if (want_responses || want_report) {
      finish(handle, send_outcome::delivered, 200, "OK");
    } else {
      finish(handle, send_outcome::sent, 0, "no report requested");
    }
  }

  // --- Pacing (RFC 4975 §7.1.3: success REPORTs may cover the bytes received so far)

  /// Body bytes `m` may still put into the output before its success REPORTs catch up;
  /// unlimited without `unconfirmed_window` or without Success-Report yes.
  std::uint64_t unconfirmed_room(const outgoing& m) const {
    const auto window = settings.unconfirmed_window;
    if (window == 0 || m.message.success_report != report_mode::yes) return UINT64_MAX;
    const auto unconfirmed = m.written - std::min(m.written, m.reported.prefix());
    return window - std::min(window, unconfirmed);
  }

  /// Whether `m` waits for success REPORTs before its next chunk. A chunk starts only with
  /// room for 2048 bytes (§7.1.1: senders SHOULD NOT send shorter chunks but the last), or
  /// for the whole of a shorter chunk; but never needs more than half the window, so that a
  /// receiver reporting every quarter window or so always has a REPORT due while it waits. (A
  /// chunk of at most 2048 bytes is written whole, so under a window below 4 KiB it may
  /// overshoot by less than 2048 bytes.)
  bool waits_to_start(const outgoing& m) const {
    if (m.finished || m.chunks.is_done()) return false;
    const auto half = std::max<std::uint64_t>(1, settings.unconfirmed_window / 2);
    const auto need = std::min({min_interrupted_chunk, half, m.chunks.next().length});
    return unconfirmed_room(m) < need;
  }

  /// Whether `m`, paused on `c`, may go on: a chunk in progress (paused until its end-line
  /// fits the output) with any room, a new chunk as `waits_to_start` says.
  bool may_resume(const connection& c, message_handle handle, const outgoing& m) const {
    const bool in_progress = c.current && c.current->message == handle;
    return in_progress ? unconfirmed_room(m) > 0 : !waits_to_start(m);
  }

  /// `m` waits for success REPORTs on `c`.
  void pause(connection& c, outgoing& m) {
    m.paused = true;
    m.connection = c.id;
    arm_pause_timer(c, m);
  }

  /// A paused message whose bytes have all left the output waits `report_timeout` for a
  /// REPORT that advances (then 408), so a receiver without incremental REPORTs ends the
  /// message instead of holding it forever.
  void arm_pause_timer(const connection& c, outgoing& m) {
    if (m.paused && !m.report_deadline && m.body_end <= c.out_base) {
      m.report_deadline = now + settings.report_timeout;
    }
  }

  /// Moves a message between chunks out of turn until its REPORTs catch up, so the others on
  /// the connection go on.
  void park(connection& c, message_handle handle, outgoing& m) {
    pause(c, m);
    c.paused.push_back(handle);
  }

  /// A success REPORT for paused `m` came; `advanced` if it covers more from the start.
  void on_progress(message_handle handle, outgoing& m, bool advanced) {
    const auto found = connections.find(m.connection);
    if (found == connections.end()) return;
    auto& c = found->second;
    if (!may_resume(c, handle, m)) {
      if (advanced && m.report_deadline) m.report_deadline = now + settings.report_timeout;
      return;
    }
    m.paused = false;
    m.report_deadline.reset();
    if (const auto it = std::find(c.paused.begin(), c.paused.end(), handle); it != c.paused.end()) {
      c.paused.erase(it);
      c.ready.push_back(handle);
    }
  }

  message request_head(const session& s, std::string_view method) {
    message head;
    head.transaction_id = make_ident(random);
    head.method = method;
    // RFC 4976 §5.1: through our relays (the Use-Path), then along the peer's path.
    auto to = s.relay_path;
    to.insert(to.end(), s.remote_path.begin(), s.remote_path.end());
    head.headers.push_back({"To-Path", format_path(to)});
    head.headers.push_back({"From-Path", s.local.to_string()});
    return head;
  }

  /// Starts the message's next chunk; false (and nothing written) if its head, or the
  /// whole of a small chunk, does not fit the output window yet.
  bool start_chunk(connection& c, message_handle handle) {
    auto& m = messages.at(handle);
    auto& s = sessions.at(m.session);
    const auto plan = m.chunks.next();
    auto head = request_head(s, "SEND");
    head.headers.push_back({"Message-ID", m.message_id});
    head.headers.push_back({"Byte-Range", plan.range.to_string()});
    // RFC 4975 §7.1.1: absent Success-Report means no, absent Failure-Report means yes.
    if (m.message.success_report == report_mode::yes) {
      head.headers.push_back({"Success-Report", "yes"});
    }
    if (m.message.failure_report != report_mode::yes) {
      head.headers.push_back(
          {"Failure-Report", m.message.failure_report == report_mode::no ? "no" : "partial"});
    }
    for (const auto& field : m.message.headers)
      head.headers.push_back(field);
    const auto end_line_size = head.transaction_id.size() + 12;
    if (m.message.content_type.empty()) {
      // A bodiless SEND ends at once (§7.1).
      const auto text = serialize_head(head);
      if (!fits(c, text.size() + end_line_size)) return false;
      c.out += text;
      m.started = true;
      c.current = chunk_in_progress{handle, head.transaction_id, plan, 0, {}};
      end_chunk(c, m.chunks.finish(0), false);
      return true;
    }
    head.headers.push_back({"Content-Type", m.message.content_type});
    if (plan.range.end && !m.finished) {
      // A chunk of at most 2048 bytes is not interruptible: read it whole and pick a
      // transaction id that its body cannot end early (§7.1).
      std::string body(plan.length, '\0');
      const auto got = m.message.read(plan.offset, body);
      if (!got || *got != body.size()) {
        fail(handle, 0, got ? "body shorter than its size" : got.error().message());
        m.queued = false;
        messages.erase(handle);
        return true;
      }
      head.transaction_id = make_transaction_id(random, body);
      const auto text = serialize_head(head);
      if (!fits(c, text.size() + body.size() + end_line_size)) return false;
      c.out += text;
      c.out += body;
      m.written += body.size();
      m.body_end = c.out_base + c.out.size();
      m.started = true;
      c.current = chunk_in_progress{handle, head.transaction_id, plan, plan.length, {}};
      end_chunk(c, m.chunks.finish(plan.length));
      return true;
    }
    const auto text = serialize_head(head);
    if (!fits(c, text.size())) return false;
    c.out += text;
    m.started = true;
    c.current = chunk_in_progress{handle, head.transaction_id, plan, 0, {}};
    return true;
  }

  /// Writes the end-line of the chunk in progress and books its transaction.
  void end_chunk(connection& c, end_flag flag, bool after_body = true) {
    auto current = std::move(*c.current);
    c.current.reset();
    c.out += after_body ? "\r\n-------" : "-------";
    c.out += current.transaction_id;
    c.out += static_cast<char>(flag);
    c.out += "\r\n";
    const auto found = messages.find(current.message);
    if (found == messages.end()) return;
    auto& m = found->second;
    flush_mark mark{c.out_base + c.out.size(), {}, 0};
    if (flag != end_flag::aborted && m.message.failure_report != report_mode::no) {
      const bool expects_200 = m.message.failure_report == report_mode::yes;
      c.transactions[current.transaction_id] = {current.message, expects_200, std::nullopt};
      if (expects_200) ++m.open_transactions;
      m.transactions.push_back(current.transaction_id);
      m.connection = c.id;
      mark.transaction_id = current.transaction_id;
    }
    if (flag != end_flag::continued) {
      m.all_queued = true;
      mark.last_of = current.message;
    }
    c.marks.push_back(std::move(mark));
    if (m.finished || m.all_queued) {
      m.queued = false;
      if (m.finished) messages.erase(found);
    } else if (waits_to_start(m)) {
      park(c, current.message, m);
    } else {
      c.ready.push_back(current.message);
    }
  }

  /// Whether `n` more bytes fit the output window; an empty output takes any frame.
  bool fits(const connection& c, std::size_t n) const {
    return c.out.empty() || c.out.size() + n <= settings.output_window;
  }

  bool other_traffic_waiting(const connection& c) const {
    return !c.urgent.empty() || !c.ready.empty();
  }

  /// Appends body bytes of the chunk in progress, or ends it; false when the window has no
  /// room for either (room for the end-line is always kept).
  bool continue_chunk(connection& c) {
    auto& current = *c.current;
    auto& m = messages.at(current.message);
    const auto remaining = current.plan.length - current.sent;
    const auto end_line_size = current.transaction_id.size() + 12;
    const bool interrupt = other_traffic_waiting(c) && !current.plan.range.end &&
                           current.sent >= min_interrupted_chunk;
    if (m.finished || remaining == 0 || interrupt) {
      if (!fits(c, end_line_size)) return false;
      // §7.1.1: a long chunk is interrupted only when other traffic waits, after 2048 octets.
      end_chunk(c, m.finished ? m.chunks.abort() : m.chunks.finish(current.sent));
      return true;
    }
    const auto allowed = unconfirmed_room(m);
    if (allowed == 0) {
      // §7.1.3 pacing: wait for success REPORTs between chunks. The chunk ends with '+' now
      // (it holds at least 2048 bytes, or half the window: see waits_to_start), because its
      // response comes only after its end-line, and it may be a refusal (413, 415) that no
      // REPORT would follow; and a relay may pass on only whole chunks. The other messages on
      // the connection go on meanwhile.
      assert(!current.plan.range.end && "a chunk with a fixed end is written whole");
      pause(c, m);
      if (!fits(c, end_line_size)) return false;
      end_chunk(c, m.chunks.finish(current.sent));
      return true;
    }
    const auto room = settings.output_window - std::min(settings.output_window, c.out.size());
    if (room <= end_line_size && !c.out.empty()) return false;
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(
        {remaining, allowed, std::max<std::size_t>(room, end_line_size + 1) - end_line_size}));
    const auto old_size = c.out.size();
    c.out.resize(old_size + want);
    const auto got = m.message.read(current.plan.offset + current.sent,
                                    std::span<char>(c.out.data() + old_size, want));
    if (!got || *got == 0 || *got > want) {
      c.out.resize(old_size);
      fail(current.message, 0, got ? "body shorter than its size" : got.error().message());
      end_chunk(c, m.chunks.abort());
      return true;
    }
    auto piece = std::string_view(c.out).substr(old_size, *got);
    // §7.1: the body must not contain this chunk's end-line, here or across the previous read;
    // cut the chunk before one.
    const auto& id = current.transaction_id;
    const auto reach = id.size() + 12;
    const auto boundary = current.tail + std::string(piece.substr(0, reach));
    auto cut = end_line_cut(boundary, id);
    cut = cut != std::string::npos ? cut - current.tail.size() : end_line_cut(piece, id);
    if (cut != std::string::npos) piece = piece.substr(0, cut);
    c.out.resize(old_size + piece.size());
    current.sent += piece.size();
    m.written += piece.size();
    m.body_end = c.out_base + c.out.size();
    if (cut != std::string::npos) {
      end_chunk(c, m.chunks.finish(current.sent));
      return true;
    }
    current.tail = piece.size() >= reach ? std::string(piece.substr(piece.size() - reach))
                                         : (current.tail + std::string(piece)).substr(0);
    if (current.tail.size() > reach) current.tail.erase(0, current.tail.size() - reach);
    return true;
  }

  /// Fills the connection's output up to the window (§7.1.1 scheduling).
  void fill(connection& c) {
    while (c.out.size() < settings.output_window) {
      if (c.current) {
        if (!continue_chunk(c)) break;
      } else if (!c.urgent.empty()) {
        auto& next = c.urgent.front();
        if (!fits(c, next.bytes.size())) break;
        c.out += next.bytes;
        if (!next.transaction_id.empty()) {
          c.marks.push_back({c.out_base + c.out.size(), std::move(next.transaction_id), 0});
        }
        c.urgent.pop_front();
      } else if (c.failed) {
        break;  // a broken connection only flushes its responses
      } else if (!c.ready.empty()) {
        const auto handle = c.ready.front();
        c.ready.pop_front();
        auto& m = messages.at(handle);
        if (waits_to_start(m)) {
          park(c, handle, m);
        } else if (!m.finished || (m.abandoned && m.started)) {
          // An abandoned message between chunks gets one empty chunk ending in '#' (§7.1);
          // one refused by the peer gets nothing more (§10.5).
          if (!start_chunk(c, handle)) {
            c.ready.push_front(handle);
            break;
          }
        } else {
          m.queued = false;
          messages.erase(handle);
        }
      } else {
        break;
      }
    }
  }

  void flushed(connection& c) {
    while (!c.marks.empty() && c.marks.front().end <= c.out_base) {
      const auto mark = std::move(c.marks.front());
      c.marks.pop_front();
      if (auto t = c.transactions.find(mark.transaction_id); t != c.transactions.end()) {
        if (t->second.expects_200) t->second.deadline = now + settings.transaction_timeout;
      }
      if (mark.last_of == 0) continue;
      auto found = messages.find(mark.last_of);
      if (found == messages.end()) continue;
      found->second.flushed = true;
      if (found->second.message.success_report == report_mode::yes) {
        found->second.report_deadline = now + settings.report_timeout;
      }
      check_delivered(mark.last_of);
    }
    for (const auto handle : c.paused)
      arm_pause_timer(c, messages.at(handle));
    if (c.current) {
      if (const auto m = messages.find(c.current->message); m != messages.end()) {
        arm_pause_timer(c, m->second);
      }
    }
  }

  // --- Receiving

  /// Queues a response to the request being received on `c`.
  void respond(connection& c, const message& request, int status) {
    message response;
    response.transaction_id = request.transaction_id;
    response.status_code = status;
    response.comment = reason_phrase(status);
    const auto from = request.header("From-Path").value_or("");
    // §7.2: a response to SEND goes to the previous hop only; others to the whole path.
    response.headers.push_back(
        {"To-Path", std::string(request.method == "SEND" ? first_hop(from) : from)});
    response.headers.push_back(
        {"From-Path", std::string(first_hop(request.header("To-Path").value_or("")))});
    c.urgent.push_back({serialize(response).to_string()});
  }

  /// Queues a REPORT for message `id` (§7.1.2-7.1.4).
  void report(session& s, const std::string& id, const std::string& reply_path,
              std::optional<byte_range> range, int status) {
    if (!s.connection) return;
    message head;
    head.transaction_id = make_ident(random);
    head.method = "REPORT";
    head.headers.push_back({"To-Path", reply_path});
    head.headers.push_back({"From-Path", s.local.to_string()});
    head.headers.push_back({"Message-ID", id});
    if (range) head.headers.push_back({"Byte-Range", range->to_string()});
    head.headers.push_back(
        {"Status", "000 " + std::to_string(status) + ' ' + reason_phrase(status)});
    connection_for(*s.connection).urgent.push_back({serialize(head).to_string()});
  }

  void remember(session& s, const std::string& id, received_record record) {
    if (s.received.insert_or_assign(id, std::move(record)).second) {
      s.received_order.push_back(id);
      if (s.received_order.size() > remembered_messages) {
        s.received.erase(s.received_order.front());
        s.received_order.pop_front();
      }
    }
  }

  void on_head(connection_id id, connection& c) {
    c.request = frame{};
    auto& f = c.request;
    const auto& head = c.wire.head();
    if (!head.is_request()) return on_response(c, head);
    const bool is_report = head.method == "REPORT";
    const auto failure_report = head.failure_report();
    f.failure_report = failure_report ? *failure_report : report_mode::yes;
    const auto refuse = [&](int status) {
      f.answer = is_report ? 0 : status;  // §7.1.2: REPORTs are never answered
      f.discard = true;
    };
    const auto to = head.to_path();
    auto from = head.from_path();
    if (!to || !from || !failure_report) return refuse(400);
    // §7.3: the To-Path holds exactly one URI, naming a session on this connection.
    const auto match =
        to->size() == 1 ? by_session_id.find((*to)[0].session_id()) : by_session_id.end();
    if (match == by_session_id.end() || !(sessions.at(match->second).local == (*to)[0])) {
      return refuse(481);
    }
    auto& s = sessions.at(match->second);
    if (s.connection && *s.connection != id) return refuse(506);  // §5.4
    if (!s.connection) s.connection = id;
    // Without signalling (quick mode) the passive side learns the peer's path here. Our own
    // relays put themselves at its front as they forwarded the request (RFC 4976 §6.4.1).
    if (s.remote_path.empty()) {
      if (from->size() > s.relay_path.size() &&
          std::equal(s.relay_path.begin(), s.relay_path.end(), from->begin())) {
        from->erase(from->begin(),
                    from->begin() + static_cast<std::ptrdiff_t>(s.relay_path.size()));
      }
      s.remote_path = std::move(*from);
    }
    activate(match->second);
    f.session = match->second;
    if (is_report) {
      f.discard = true;
      return on_report(s, head);
    }
    if (head.method != "SEND") return refuse(501);
    on_send_head(f, s, head);
  }

  void on_send_head(frame& f, session& s, const message& head) {
    const auto refuse = [&](int status) {
      f.answer = status;
      f.discard = true;
    };
    f.answer = 200;
    f.discard = true;
    const auto id = head.message_id();
    if (!id || !detail::is_ident(*id)) return refuse(400);
    const auto range = head.byte_range();
    if (!range) return refuse(400);
    f.message_id = *id;
    f.is_send = true;
    f.position = f.chunk_start = range->start - 1;
    if (const auto refused = s.refused.find(f.message_id); refused != s.refused.end()) {
      return refuse(refused->second);
    }
    // A duplicate of a delivered message is acknowledged, not delivered again, but still gets
    // the reports it asks for (§5.4).
    if (s.received.contains(f.message_id) && !s.incoming_messages.contains(f.message_id)) {
      const auto wanted = head.success_report();
      f.report_duplicate = wanted && *wanted == report_mode::yes;
      return;
    }
    const auto type = head.content_type();
    if (!type) return;  // a bodiless SEND carries no content (§7.1)
    if (!accepts_type(s.settings.accept_types, *type)) return refuse(415);  // §7.3.1, §8.6
    auto& m = s.incoming_messages.try_emplace(f.message_id).first->second;
    m.head = head;
    if (range->total) m.total = range->total;
    remember(s, f.message_id, {std::string(*head.header("From-Path")), f.failure_report, m.total});
    if (s.settings.max_size && m.total && *m.total > *s.settings.max_size) {
      return refuse_message(f, s, 413);  // §10.5
    }
    f.discard = false;
    // A message larger than `whole_message_limit` is streamed from its first chunk's head: one
    // with such a total, or one starting past the limit (its every byte lies beyond it).
    if (!m.streaming && ((m.total && *m.total > settings.whole_message_limit) ||
                         range->start > settings.whole_message_limit)) {
      start_streaming(f.session, m);
    }
  }

  /// Drops the message being received and refuses its further chunks with `status`.
  void refuse_message(frame& f, session& s, int status) {
    const auto found = s.incoming_messages.find(f.message_id);
    if (found != s.incoming_messages.end()) {
      if (found->second.streaming) {
        events.push_back(events::message_aborted{f.session, f.message_id, status});
      }
      s.incoming_messages.erase(found);
    }
    s.refused[f.message_id] = status;
    f.answer = status;
    f.discard = true;
  }

  void start_streaming(session_handle handle, incoming& m) {
    m.streaming = true;
    const std::string id(*m.head.message_id());
    events.push_back(events::message_started{handle, id, m.head, m.total});
    for (const auto& [begin, end] : m.received.ranges()) {
      events.push_back(
          events::message_piece{handle, id, begin, m.buffer.substr(begin, end - begin)});
    }
    m.buffer = std::string();
  }

  void on_body(connection& c, std::string_view bytes) {
    auto& f = c.request;
    if (f.discard) return;
    auto& s = sessions.at(f.session);
    const auto found = s.incoming_messages.find(f.message_id);
    if (found == s.incoming_messages.end()) {  // rejected while this chunk was arriving
      f.discard = true;
      return;
    }
    auto& m = found->second;
    const auto begin = f.position;
    // RFC 4975 §9 allows any 1*DIGIT range-start, but positions are 64-bit: a body running
    // past byte 2^64 - 1 cannot be placed, and its message is refused.
    if (bytes.size() > std::numeric_limits<std::uint64_t>::max() - begin) {
      return refuse_message(f, s, 400);
    }
    const auto end = begin + bytes.size();
    f.position = end;
    if (s.settings.max_size && end > *s.settings.max_size) return refuse_message(f, s, 413);
    // Switch to streaming before recording this piece: what `received` holds so far is
    // exactly what the buffer holds. (Found by fuzz_endpoint.)
    if (!m.streaming && end > settings.whole_message_limit) start_streaming(f.session, m);
    m.received.add(begin, end);
    report_progress(s, f.message_id, m);
    if (begin < cpim_prefix_size) {
      const auto n = std::min<std::uint64_t>(end, cpim_prefix_size) - begin;
      if (m.opening.size() < begin + n) m.opening.resize(begin + n);
      std::copy_n(bytes.begin(), n, m.opening.begin() + static_cast<std::ptrdiff_t>(begin));
    }
    if (m.streaming) {
      events.push_back(events::message_piece{f.session, f.message_id, begin, std::string(bytes)});
      return;
    }
    if (m.buffer.size() < end) m.buffer.resize(end);
    std::copy(bytes.begin(), bytes.end(), m.buffer.begin() + static_cast<std::ptrdiff_t>(begin));
  }

  /// §7.1.3: "it MAY generate incremental success REPORTs as the chunks are received. These
  /// can be sent periodically and cover all the bytes that have been received so far."
  /// Bytes count once held, streamed or buffered alike: a sender pacing by its window waits
  /// for them either way.
  void report_progress(session& s, const std::string& id, incoming& m) {
    if (settings.progress_reports == 0) return;
    const auto wanted = m.head.success_report();
    if (!wanted || *wanted != report_mode::yes) return;
    const auto received = m.received.prefix();
    if (received - m.progress_reported < settings.progress_reports) return;
    if (m.total && received >= *m.total) return;  // the final REPORT follows at the end-line
    m.progress_reported = received;
    report(s, id, std::string(*m.head.header("From-Path")), byte_range{1, received, m.total}, 200);
  }

  void on_end(connection& c, end_flag flag) {
    auto& f = c.request;
    const auto queued = c.urgent.size();
    if (f.session != 0 && f.is_send && !f.message_id.empty()) on_send_end(f, flag);
    if (f.report_duplicate) {
      const auto& head = c.wire.head();
      const auto range = head.byte_range();
      report(sessions.at(f.session), f.message_id, std::string(*head.header("From-Path")),
             byte_range{f.chunk_start + 1, f.position, range ? range->total : std::nullopt}, 200);
    }
    // §7.2: Failure-Report no suppresses every response, partial the 200s.
    const bool answer = f.answer != 0 && f.failure_report != report_mode::no &&
                        !(f.failure_report == report_mode::partial && f.answer == 200);
    if (answer) {
      // §7.2: the response goes "immediately", ahead of the REPORTs this chunk brought about
      // (the order of RFC 4975 §11.6).
      respond(c, c.wire.head(), f.answer);
      std::rotate(c.urgent.begin() + static_cast<std::ptrdiff_t>(queued), c.urgent.end() - 1,
                  c.urgent.end());
    }
    c.request = frame{};
  }

  void on_send_end(frame& f, end_flag flag) {
    auto& s = sessions.at(f.session);
    const auto found = s.incoming_messages.find(f.message_id);
    if (found == s.incoming_messages.end()) return;
    auto& m = found->second;
    if (f.discard) return;
    if (!payload_acceptable(s, m)) return refuse_message(f, s, 415);
    if (flag == end_flag::aborted) {
      events.push_back(events::message_aborted{f.session, f.message_id, 0});
      s.incoming_messages.erase(found);
      return;
    }
    // §7.3.1: the chunk ending in '$' defines the total length.
    if (flag == end_flag::complete) m.total = f.position;
    if (!m.total || !m.received.covers(*m.total)) return;
    const auto size = *m.total;
    if (m.streaming) {
      events.push_back(events::message_completed{f.session, f.message_id, size});
    } else {
      m.buffer.resize(size);
      events.push_back(
          events::message_received{f.session, f.message_id, m.head, std::move(m.buffer)});
    }
    const auto reply_path = std::string(*m.head.header("From-Path"));
    // §7.1.3: a success REPORT covering the whole message, when one was asked for.
    if (const auto wanted = m.head.success_report(); wanted && *wanted == report_mode::yes) {
      report(s, f.message_id, reply_path, byte_range{1, size, size}, 200);
    }
    remember(s, f.message_id, {reply_path, f.failure_report, size});
    s.incoming_messages.erase(found);
  }

  /// §8.6: a message/cpim body must wrap a type from accept-types or accept-wrapped-types.
  /// Decided once the payload's Content-Type has arrived, in whichever chunk brings it.
  bool payload_acceptable(const session& s, incoming& m) {
    if (m.payload_checked) return true;
    const auto type = m.head.content_type().value_or("");
    if (!detail::iequals(type.substr(0, type.find(';')), "message/cpim")) {
      m.payload_checked = true;
      return true;
    }
    const auto& ranges = m.received.ranges();
    if (ranges.empty() || ranges.begin()->first != 0) return true;
    const auto contiguous = std::min<std::uint64_t>(ranges.begin()->second, m.opening.size());
    const auto wrapped = cpim_wrapped_type(std::string_view(m.opening).substr(0, contiguous));
    if (wrapped.empty()) return true;
    m.payload_checked = true;
    return accepts_type(s.settings.accept_types, wrapped) ||
           accepts_type(s.settings.accept_wrapped_types, wrapped);
  }

  void on_response(connection& c, const message& head) {
    const auto found = c.transactions.find(head.transaction_id);
    if (found == c.transactions.end()) return;  // unknown or duplicate: ignored
    const auto t = found->second;
    c.transactions.erase(found);
    if (t.auth_session != 0) return on_auth_response(t.auth_session, t.relay, head);
    const auto m = messages.find(t.message);
    if (m == messages.end()) return;
    if (t.expects_200) --m->second.open_transactions;
    if (head.status_code != 200) return fail(t.message, head.status_code, head.comment);
    check_delivered(t.message);
  }

  void on_report(session& s, const message& head) {
    const auto id = head.message_id();
    const auto status = head.status();
    if (!id || !status || !*status) return;
    const auto found = s.sent.find(std::string(*id));
    if (found == s.sent.end()) return;  // §7.1.2: unknown Message-IDs are ignored
    const auto handle = found->second;
    // §7.3.2: namespace 000 codes mean what the same response code means.
    if ((*status)->code != 200) return fail(handle, (*status)->code, (*status)->comment);
    auto& m = messages.at(handle);
    const auto range = head.byte_range();
    if (!range) return;
    const auto end = range->end ? *range->end : range->total.value_or(m.message.size);
    const auto confirmed = m.reported.prefix();
    m.reported.add(range->start - 1, end);
    m.report_seen = true;
    if (m.paused) on_progress(handle, m, m.reported.prefix() > confirmed);
    check_delivered(handle);
  }

  // --- Relays (RFC 4976 §5.1)

  void start_auth(session_handle handle, std::size_t index) {
    sessions.at(handle).relays[index].exchange = auth_exchange{};
    send_auth(handle, index);
  }

  /// Sends the AUTH of the binding's exchange, answering its current nonce if it has one.
  void send_auth(session_handle handle, std::size_t index) {
    auto& s = sessions.at(handle);
    auto& binding = s.relays[index];
    message head;
    head.transaction_id = make_ident(random);
    head.method = "AUTH";
    head.headers.push_back({"To-Path", format_path(binding.to_path)});
    head.headers.push_back({"From-Path", s.local.to_string()});
    if (binding.expires) {
      head.headers.push_back({"Expires", std::to_string(binding.expires->count())});
    }
    auto& exchange = *binding.exchange;
    exchange.sent.reset();
    if (binding.challenge) {
      // RFC 4976 §9.1: the digest-uri is the rightmost To-Path URI; cnonce and nc are always
      // sent. RFC 7616 §3.4: nc counts the requests made with this nonce.
      auto credentials = digest::answer(
          settings.hash, *binding.challenge, binding.account.username, binding.account.password,
          binding.to_path.back().to_string(), make_ident(random), ++binding.nonce_count);
      head.headers.push_back({"Authorization", credentials.to_header_value()});
      exchange.sent = std::move(credentials);
    }
    exchange.transaction_id = head.transaction_id;
    auto& c = connection_for(*s.connection);
    c.transactions[head.transaction_id] = {0, true, std::nullopt, handle, index};
    c.urgent.push_back({serialize(head).to_string(), head.transaction_id});
  }

  void on_auth_response(session_handle handle, std::size_t index, const message& head) {
    auto& binding = sessions.at(handle).relays[index];
    auto& exchange = *binding.exchange;
    if (head.status_code == 200) return on_auth_success(handle, index, head);
    if (head.status_code == 401) {
      // RFC 4976 §5.1: answer the challenge. A second 401 means the credentials are wrong,
      // unless it only says the nonce was stale (RFC 7616 §3.3), which is retried once.
      auto challenge = usable_challenge(head);
      if (!challenge) return finish_auth(handle, index, 401, "no challenge we can answer");
      if (exchange.challenges > 0) {
        if (!challenge->stale || exchange.stale_retried) {
          return finish_auth(handle, index, 401, "relay refused the credentials");
        }
        exchange.stale_retried = true;
      }
      ++exchange.challenges;
      binding.challenge = std::move(*challenge);
      binding.nonce_count = 0;
      return send_auth(handle, index);
    }
    const auto min = head.min_expires();
    const auto max = head.max_expires();
    const bool bounded = (min && *min) || (max && *max);
    if (head.status_code == 423 && bounded && !exchange.expires_retried) {
      // RFC 4976 §6.3, §4.6: the Expires asked for is out of the relay's bounds; ask again
      // once, within them.
      exchange.expires_retried = true;
      auto seconds = binding.expires.value_or(default_auth_expires).count();
      if (max && *max) seconds = std::min<std::int64_t>(seconds, **max);
      if (min && *min) seconds = std::max<std::int64_t>(seconds, **min);
      binding.expires = std::chrono::seconds(seconds);
      return send_auth(handle, index);
    }
    finish_auth(handle, index, head.status_code, head.comment);
  }

  void on_auth_success(session_handle handle, std::size_t index, const message& head) {
    auto& s = sessions.at(handle);
    auto& binding = s.relays[index];
    // RFC 4976 §9.1, RFC 7616 §3.5: the relay proves it knows the password with an rspauth
    // for the credentials we sent, echoing their cnonce and nc. Some relays (Kamailio 5.6)
    // send no Authentication-Info at all; that is taken only from the first relay over TLS,
    // whose certificate already authenticated it (§5.1). A proof that is there must be right.
    const auto& sent = binding.exchange->sent;
    const auto info = digest::authentication_info::parse(head.authentication_info().value_or(""));
    const bool proved =
        sent && info && info->cnonce == sent->cnonce && info->nc == sent->nc &&
        info->rspauth ==
            digest::rspauth(settings.hash, *sent,
                            digest::ha1(settings.hash, sent->algorithm, binding.account.username,
                                        sent->realm, binding.account.password));
    const bool vouched_by_tls =
        !head.authentication_info() && index == 0 && binding.to_path.back().is_secure();
    if (!proved && !vouched_by_tls) {
      return finish_auth(handle, index, 0, "relay did not prove it knows the password");
    }
    const auto use_path = head.use_path();
    if (!use_path || use_path->empty()) return finish_auth(handle, index, 0, "no Use-Path");
    // RFC 4976 §5.1: the Use-Path of the outermost relay is the relay path. A refresh of an
    // inner relay leaves it alone.
    if (binding.use_path.empty() || binding.use_path == s.relay_path) s.relay_path = *use_path;
    binding.use_path = *use_path;
    // RFC 7616 §3.5: a nextnonce is answered in the next request, with nc from 1 again.
    if (!info || info->nextnonce.empty()) {
      binding.challenge.reset();
    } else {
      binding.challenge->nonce = info->nextnonce;
      binding.nonce_count = 0;
    }
    const auto expires = head.expires();
    const auto lifetime = expires && *expires ? std::chrono::seconds(**expires)
                                              : binding.expires.value_or(default_auth_expires);
    binding.refresh_at = now + std::chrono::duration_cast<clock::duration>(lifetime) * 4 / 5;
    finish_auth(handle, index, 200, head.comment, *use_path, lifetime);
  }

  /// Ends the binding's exchange with `auth_finished`. Only a success books a refresh.
  void finish_auth(session_handle handle, std::size_t index, int status, std::string comment,
                   std::vector<uri> use_path = {}, std::chrono::seconds expires = {}) {
    auto& s = sessions.at(handle);
    auto& binding = s.relays[index];
    if (const auto c = connections.find(*s.connection); c != connections.end()) {
      c->second.transactions.erase(binding.exchange->transaction_id);
    }
    binding.exchange.reset();
    events.push_back(
        events::auth_finished{handle, status, std::move(use_path), expires, std::move(comment)});
  }

  void on_parse_error(connection_id id, connection& c, std::error_code error) {
    const auto& head = c.wire.head();
    // §7.1.2: REPORTs are never answered; §7.2: Failure-Report `no` suppresses every
    // response (an unreadable value counts as `yes`).
    const auto failure_report = head.failure_report();
    const bool silent =
        head.method == "REPORT" || (failure_report && *failure_report == report_mode::no);
    if (head.is_request() && !silent && detail::is_ident(head.transaction_id) &&
        head.header("From-Path") && head.header("To-Path")) {
      respond(c, head, to_status(error));
    }
    c.failed = true;
    c.ready.clear();
    c.paused.clear();
    c.current.reset();
    events.push_back(events::connection_failed{id, error});
  }

  // --- Ending

  /// Ends what the session had in progress: messages fail, incoming ones abort.
  void end_session(session_handle handle, std::string_view why) {
    auto& s = sessions.at(handle);
    if (s.closed) return;
    s.closed = true;
    by_session_id.erase(s.local.session_id());
    std::vector<message_handle> pending;
    for (const auto& [h, m] : messages) {
      if (m.session == handle && !m.finished) pending.push_back(h);
    }
    for (const auto h : pending)
      fail(h, 0, std::string(why));
    for (std::size_t i = 0; i < s.relays.size(); ++i) {
      if (s.relays[i].exchange) finish_auth(handle, i, 0, std::string(why));
      s.relays[i].refresh_at.reset();
    }
    for (const auto& [id, m] : s.incoming_messages) {
      events.push_back(events::message_aborted{handle, id, 0});
    }
    s.incoming_messages.clear();
    s.waiting.clear();
    events.push_back(events::session_closed{handle, std::string(why)});
  }
};

endpoint::endpoint(config settings, random_source random)
    : state_(std::make_unique<state>(std::move(settings), std::move(random))) {}

endpoint::~endpoint() = default;

session_handle endpoint::open_session(const session_settings& settings) {
  auto& st = *state_;
  // RFC 4975 §14.1: the session-id is the secret that keeps others out of the session.
  const auto session_id = make_ident(st.random);
  const bool ipv6 = settings.host.find(':') != std::string::npos;
  const auto text = std::string(settings.secure ? "msrps://" : "msrp://") +
                    (ipv6 ? "[" + settings.host + "]" : settings.host) +
                    (settings.port ? ':' + std::to_string(*settings.port) : "") + '/' + session_id +
                    ';' + settings.transport;
  auto local = uri::parse(text);
  assert(local && "session_settings must form a valid MSRP URI");
  const auto handle = st.next_session++;
  auto& s = st.sessions[handle];
  s.settings = settings;
  s.local = std::move(*local);
  st.by_session_id.emplace(session_id, handle);
  return handle;
}

const uri& endpoint::local_uri(session_handle session) const {
  return state_->sessions.at(session).local;
}

void endpoint::authenticate(session_handle session, uri relay, relay_account account,
                            std::optional<std::chrono::seconds> expires) {
  auto& st = *state_;
  auto& s = st.sessions.at(session);
  if (s.closed) {
    st.events.push_back(events::auth_finished{session, 0, {}, {}, "session closed"});
    return;
  }
  assert(st.settings.hash && "endpoint::config::hash is needed for AUTH");
  assert(s.connection && "bind the session to its first relay's connection first");
  assert(std::none_of(s.relays.begin(), s.relays.end(),
                      [](const auto& r) { return r.exchange && r.use_path.empty(); }) &&
         "authenticate to one relay at a time");
  // RFC 4976 §5.1: an outer relay is reached through the relays authenticated so far.
  auto to_path = s.relay_path;
  to_path.push_back(std::move(relay));
  s.relays.push_back({std::move(to_path), std::move(account), expires});
  st.start_auth(session, s.relays.size() - 1);
}

std::vector<uri> endpoint::local_path(session_handle session) const {
  const auto& s = state_->sessions.at(session);
  // RFC 4976 §5.1: "reverses the list of URIs in the Use-Path header ... and appends the
  // client's own URI".
  std::vector<uri> path(s.relay_path.rbegin(), s.relay_path.rend());
  path.push_back(s.local);
  return path;
}

void endpoint::set_remote_path(session_handle session, std::vector<uri> path) {
  state_->sessions.at(session).remote_path = std::move(path);
  state_->activate(session);
}

void endpoint::bind(session_handle session, connection_id connection) {
  auto& s = state_->sessions.at(session);
  s.connection = connection;
  state_->connection_for(connection);
  state_->activate(session);
}

void endpoint::close_session(session_handle session) {
  state_->end_session(session, "session closed");
}

message_handle endpoint::send(session_handle session, outgoing_message message) {
  auto& st = *state_;
  auto& s = st.sessions.at(session);
  const auto handle = st.next_message++;
  const auto size = message.size;
  const auto ceiling = std::max<std::uint64_t>(1, st.settings.chunk_ceiling);
  state::outgoing m{session, make_ident(st.random), std::move(message), chunker(size, ceiling)};
  m.queued = true;
  s.sent.emplace(m.message_id, handle);
  st.messages.emplace(handle, std::move(m));
  if (s.closed) {
    st.messages.at(handle).queued = false;
    st.fail(handle, 0, "session closed");
    return handle;
  }
  s.waiting.push_back(handle);
  st.activate(session);
  return handle;
}

message_handle endpoint::send_empty(session_handle session) {
  return send(session, outgoing_message{});
}

void endpoint::abort(message_handle message) {
  const auto found = state_->messages.find(message);
  if (found == state_->messages.end() || found->second.finished) return;
  found->second.abandoned = true;
  state_->finish(message, send_outcome::aborted, 0, "aborted");
}

bool endpoint::reject(session_handle session, std::string_view message_id, int status) {
  auto& st = *state_;
  auto& s = st.sessions.at(session);
  const std::string id(message_id);
  const auto found = s.received.find(id);
  if (found == s.received.end()) return false;
  // §7.1.4: the Byte-Range reports the bytes actually received.
  std::optional<byte_range> range;
  if (found->second.size) range = byte_range{1, *found->second.size, *found->second.size};
  if (const auto partial = s.incoming_messages.find(id); partial != s.incoming_messages.end()) {
    range = byte_range{1, partial->second.received.prefix(), partial->second.total};
    // The message is refused from here on: no more of it is delivered.
    if (partial->second.streaming)
      st.events.push_back(events::message_aborted{session, id, status});
    s.incoming_messages.erase(partial);
    s.refused[id] = status;
  }
  // §7.1.4: no failure REPORT when the sender said Failure-Report: no.
  if (found->second.failure_report != report_mode::no) {
    st.report(s, id, found->second.reply_path, range, status);
  }
  return true;
}

std::uint64_t endpoint::bytes_sent(message_handle message) const {
  const auto found = state_->messages.find(message);
  return found == state_->messages.end() ? 0 : found->second.written;
}

void endpoint::receive(connection_id connection, std::string_view bytes) {
  auto& st = *state_;
  auto& c = st.connection_for(connection);
  if (c.failed) return;
  // Parse straight from `bytes` when nothing is held back; otherwise join them first.
  if (!c.held.empty()) {
    c.held.append(bytes);
    bytes = c.held;
  }
  std::size_t at = 0;
  for (;;) {
    const auto e = c.wire.parse(bytes.substr(at));
    at += e.consumed;
    using kind = parser::event_kind;
    if (e.kind == kind::head) st.on_head(connection, c);
    if (e.kind == kind::body) st.on_body(c, e.body);
    if (e.kind == kind::end) st.on_end(c, e.flag);
    if (e.kind == kind::error) {
      st.on_parse_error(connection, c, e.error);
      c.held.clear();
      return;
    }
    if (e.kind == kind::need_more && e.consumed == 0) break;
  }
  c.held = std::string(bytes.substr(at));
}

std::string_view endpoint::output(connection_id connection) {
  auto& c = state_->connection_for(connection);
  state_->fill(c);
  return c.out;
}

void endpoint::consume_output(connection_id connection, std::size_t n) {
  auto& c = state_->connection_for(connection);
  assert(n <= c.out.size());
  c.out.erase(0, n);
  c.out_base += n;
  state_->flushed(c);
}

void endpoint::close_connection(connection_id connection) {
  auto& st = *state_;
  for (auto& [handle, s] : st.sessions) {
    // RFC 4975 §5.4: a session fails with its connection.
    if (s.connection == connection) st.end_session(handle, "connection closed");
  }
  st.connections.erase(connection);
}

void endpoint::advance(clock::time_point now) {
  auto& st = *state_;
  st.now = now;
  // Collected first: failing a message drops its other transactions from the same map.
  std::vector<state::transaction> expired;
  for (auto& [id, c] : st.connections) {
    std::erase_if(c.transactions, [&](const auto& entry) {
      const auto& t = entry.second;
      if (!t.deadline || *t.deadline > now) return false;
      expired.push_back(t);
      return true;
    });
  }
  // §10.4: a missing response is treated as a 408.
  for (const auto& t : expired) {
    if (t.auth_session != 0) {
      st.finish_auth(t.auth_session, t.relay, 408, "no response");
    } else if (st.messages.contains(t.message)) {
      st.fail(t.message, 408, "no response");
    }
  }
  // RFC 4976 §5.1: AUTH again before the relay's URIs expire (closed sessions have none due).
  for (auto& [handle, s] : st.sessions) {
    for (std::size_t i = 0; i < s.relays.size(); ++i) {
      auto& binding = s.relays[i];
      if (!binding.refresh_at || *binding.refresh_at > now) continue;
      binding.refresh_at.reset();
      st.start_auth(handle, i);
    }
  }
  std::vector<message_handle> late;
  for (const auto& [handle, m] : st.messages) {
    if (!m.finished && m.report_deadline && *m.report_deadline <= now) late.push_back(handle);
  }
  for (const auto handle : late) {
    // A paused message's chunk ends with '#', and one between chunks gets an empty '#' chunk,
    // as on `abort`: the receiver learns that the message will not go on (§7.1).
    auto& m = st.messages.at(handle);
    if (m.paused) m.abandoned = true;
    st.fail(handle, 408, "no success report");
  }
}

std::optional<clock::time_point> endpoint::next_deadline() const {
  std::optional<clock::time_point> next;
  const auto consider = [&](const std::optional<clock::time_point>& t) {
    if (t && (!next || *t < *next)) next = t;
  };
  for (const auto& [id, c] : state_->connections) {
    for (const auto& [tid, t] : c.transactions)
      consider(t.deadline);
  }
  for (const auto& [handle, m] : state_->messages) {
    if (!m.finished) consider(m.report_deadline);
  }
  for (const auto& [handle, s] : state_->sessions) {
    for (const auto& binding : s.relays)
      consider(binding.refresh_at);
  }
  return next;
}

std::optional<event> endpoint::next_event() {
  auto& events = state_->events;
  if (events.empty()) return std::nullopt;
  auto next = std::move(events.front());
  events.pop_front();
  return next;
}

}  // namespace msrp
