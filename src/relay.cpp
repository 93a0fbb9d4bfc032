// The RFC 4976 relay engine; see msrp/relay.hpp for the theory of operation.
#include "msrp/relay.hpp"

#include <algorithm>
#include <array>
#include <deque>
#include <map>
#include <tuple>
#include <unordered_map>

#include "msrp/detail/text.hpp"

namespace msrp {
namespace {

// RFC 4975 §7.1.1: chunks are interrupted only once at least 2048 octets went out, and a
// chunk of more than 2048 octets must say "*" for its range-end.
constexpr std::uint64_t min_interrupted_chunk = 2048;
// A chunk whose sender has sent nothing for this long is interrupted for frames waiting behind
// it however short it is: §7.1.1's 2048 octets are a SHOULD, for senders that send.
constexpr auto stalled_chunk = std::chrono::seconds(1);
// Output capacity a connection keeps once all of it was written: room for the frames of a
// steady stream of small messages, so that they allocate nothing.
constexpr std::size_t kept_output = 4096;
// Nonces one connection may hold: two challenges (two algorithms each) and a nextnonce.
constexpr std::size_t max_nonces = 8;

std::string_view first_hop(std::string_view path) {
  return path.substr(0, path.find(' '));
}

std::string_view last_hop(std::string_view path) {
  const auto space = path.rfind(' ');
  return space == std::string_view::npos ? path : path.substr(space + 1);
}

std::string status_value(int code, std::string_view comment) {
  return "000 " + std::to_string(code) + ' ' + std::string(comment);
}

std::string lower(std::string_view text) {
  std::string result(text);
  for (auto& ch : result)
    ch = detail::to_lower(ch);
  return result;
}

bool same_path(const std::vector<uri>& a, const std::vector<uri>& b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
}

/// A first-in first-out queue that allocates nothing until something is put in it, and then
/// keeps its storage for the next items: most of a connection's queues stay empty, and a
/// libstdc++ deque allocates 512 bytes as soon as it is constructed.
template <class T>
class fifo {
 public:
  bool empty() const { return head_ == items_.size(); }
  std::size_t size() const { return items_.size() - head_; }
  T& front() { return items_[head_]; }
  const T& front() const { return items_[head_]; }
  T& back() { return items_.back(); }
  auto begin() { return items_.begin() + static_cast<std::ptrdiff_t>(head_); }
  auto end() { return items_.end(); }
  auto begin() const { return items_.begin() + static_cast<std::ptrdiff_t>(head_); }
  auto end() const { return items_.end(); }
  void push_back(T item) { items_.push_back(std::move(item)); }
  void pop_front() {
    items_[head_++] = T{};
    if (head_ == items_.size()) return clear();
    // The slots before `head_` are reused once they are half of the storage: O(1) amortized.
    if (2 * head_ >= items_.size()) {
      items_.erase(items_.begin(), begin());
      head_ = 0;
    }
  }
  void clear() {
    items_.clear();
    head_ = 0;
  }
  /// Removes every item equal to `item`.
  void remove(const T& item) { items_.erase(std::remove(begin(), end(), item), end()); }

 private:
  std::vector<T> items_;
  std::size_t head_ = 0;
};

/// Gives the storage of `s` back.
void give_back(std::string& s) {
  std::string().swap(s);
}

}  // namespace

struct relay::state {
  struct session {
    std::string self;  // the Use-Path URI handed out, as text (only the AUTH's 200 needs it)
    connection_id connection = 0;
    std::vector<uri> client_path;  // From-Path of the AUTH
    std::string user;
    clock::time_point expires{};
  };

  // A nonce issued to a connection, for one algorithm, single use (RFC 7616 §3.3).
  struct nonce_record {
    std::array<char, 32> value{};  // 128 bits as hex
    std::string algorithm;
    clock::time_point expires{};
  };

  // The To-Path and From-Path of the last request routed from a connection, parsed and
  // formatted, and what the relay found out about them: a sender's requests mostly repeat
  // them, so each pair is parsed and checked once, not per request. Shared with the forwards
  // routed by them, which keep views into them.
  struct paths {
    std::string to_text;  // the header values as received
    std::string from_text;
    std::vector<uri> to;
    std::vector<uri> from;
    std::string to_formatted;  // format_path(to)
    std::string from_formatted;
    // Whether the first two To-Path URIs name this relay (`is_ours`), under the settings of
    // when they were parsed: new settings or a new port drop every connection's paths.
    bool first_ours = false;
    bool second_ours = false;
    // The session whose authenticated From-Path `from` was found to be (that of a session
    // never changes).
    std::string client_of;
  };

  // A request passing through: received on `source`, written to `target`.
  struct forward : std::enable_shared_from_this<forward> {
    connection_id source = 0;
    connection_id target = 0;
    message head;  // the outgoing head: paths rewritten; its tid is the current chunk's
    std::size_t range_field = 0;  // of a SEND: where in `head` its Byte-Range is
    bool is_send = false;
    report_mode failure_report = report_mode::yes;
    std::shared_ptr<const paths> route;  // what it was routed by, for these two views:
    std::string_view reply_path;         // the request's From-Path as received
    std::string_view self;               // our URI the request was addressed to
    std::string in_tid;
    byte_range range{};             // of the received chunk
    std::uint64_t forwarded = 0;    // body bytes written to the target
    std::uint64_t chunk_start = 0;  // `forwarded` when the current outgoing chunk began
    std::string held;               // body bytes waiting for the target
    bool granted = false;           // owns the target's output now
    bool waiting = false;           // in the target's waiters
    bool ended = false;             // its end-line arrived
    end_flag flag = end_flag::complete;
    int failure = 0;  // why it cannot be delivered (0: it can)
    std::string failure_comment;
    bool answered = false;  // the relay answered the sender
  };

  // A request the relay handles or refuses itself, being received.
  struct local {
    message head;
    int answer = 0;  // 0: AUTH to handle
    std::string comment;
  };

  // An AUTH whose credentials wait for the store (a `lookup` action).
  struct awaiting {
    std::uint64_t ticket = 0;
    message head;
    digest::credentials credentials;
  };

  // A forwarded chunk or request waiting for the next hop's response.
  struct pending {
    std::shared_ptr<const forward> request;  // kept for its sender, paths and ids
    byte_range range{};                      // of the chunk
    clock::time_point deadline{};
  };

  struct connection {
    connection_id id = 0;
    parser wire;
    peer_info peer{};
    bool outgoing = false;  // opened by the relay toward a next hop
    bool connecting = false;
    std::string authority;  // for outgoing connections, the key they are reused by
    bool closing = false;
    bool marked = false;  // in `ready`
    std::optional<clock::time_point> probation{};
    unsigned failures = 0;
    // Input: frames received, in order; only the front one can own a target.
    // Shared: whoever works on one keeps it alive while what it calls may finish and drop it.
    fifo<std::shared_ptr<forward>> forwards;
    // Rarely set, so held by pointer: an idle connection does not carry their room.
    std::unique_ptr<local> handling;    // the request being received, when not forwarded
    std::unique_ptr<awaiting> lookup;   // input waits (in `unparsed`) while it is set
    std::string unparsed;               // received bytes the parser left unconsumed
    fifo<nonce_record> nonces;          // issued to it, oldest first (some may have expired)
    std::vector<std::string> sessions;  // ids of the sessions opened on it (some may be gone)
    std::shared_ptr<paths> routed;      // the paths of the last request routed from it
    // Slow senders: when the frame being received began (unset between frames), whether it is
    // a SEND whose head is complete (its body has no overall deadline), where the last frame
    // ended, and when input last came or was let in.
    std::optional<clock::time_point> frame_began{};
    bool sending = false;
    std::uint64_t frame_end = 0;  // stream offset after the last end-line
    clock::time_point last_input{};
    // The deadlines of it waiting in `timers` (at most one each): the slow-sender check, and
    // the look at a chunk that may have stalled while others wait for this connection.
    std::optional<clock::time_point> drip_timer, stall_timer;
    // Output.
    std::string out;
    // The bytes `output()` handed out, and how many of them were written: kept unchanged until
    // all are written, so the caller's view stays valid while `out` grows.
    std::string writing;
    std::size_t written = 0;
    // The relay answered a request it handled itself (an AUTH, a refusal): a client mostly
    // waits after that, so its output buffers are given back once all is written.
    bool quiet = false;
    forward* owner = nullptr;     // the forward whose chunk is open in `out`
    fifo<std::string> urgent;     // frames waiting for the open chunk to end
    fifo<connection_id> waiters;  // sources whose front forward waits for `out`
    std::unordered_map<std::string, pending> pendings;

    connection(connection_id identity, const parser::limits& limits) : id(identity), wire(limits) {}
    std::size_t queued() const { return writing.size() - written + out.size(); }
  };

  config settings;
  random_source random;
  digest::hasher hash;
  clock::time_point now{};
  std::map<connection_id, connection> connections;
  std::unordered_map<std::string, session> sessions;         // by session-id
  std::unordered_map<std::string, std::size_t> sessions_of;  // live sessions per user
  std::unordered_map<std::string, connection_id> outgoing;   // by authority
  std::unordered_map<std::uint64_t, connection_id> lookups;  // by ticket, unanswered
  std::uint64_t next_ticket = 1;
  connection_id next_outgoing = connection_id{1} << 62;
  std::deque<relay_action> actions;
  // Connections whose output grew or whose input may flow again, for `next_ready`: the caller
  // wakes only these, not every connection after every event.
  std::vector<connection_id> ready;
  stats counters;
  message reply;  // the response being written (`send_response`)

  // Deadlines in a heap, soonest first: a due one costs O(log n), however many there are. One
  // is not removed when its thing goes or gets a later deadline (a transaction answered, a
  // session refreshed): it is acted on only while it still is that thing's deadline
  // (`current`), and dropped otherwise, when it comes to the top or when stale ones are
  // swept out (`schedule`).
  enum class timer_kind { session, probation, stall, drip, transaction };
  struct timer {
    clock::time_point at{};
    timer_kind kind = timer_kind::session;
    connection_id connection = 0;  // of a probation or a transaction
    std::string key;               // the session-id or transaction id
  };
  struct later {
    bool operator()(const timer& a, const timer& b) const { return a.at > b.at; }
  };
  std::vector<timer> timers;    // a heap by `later`
  std::size_t sweep_at = 1024;  // the size of `timers` at which stale deadlines go

  state(config c, random_source r, digest::hasher h)
      : settings(std::move(c)), random(std::move(r)), hash(std::move(h)) {}

  void schedule(clock::time_point at, timer_kind kind, connection_id id, std::string key = {}) {
    timers.push_back({at, kind, id, std::move(key)});
    std::push_heap(timers.begin(), timers.end(), later{});
    // The heap holds at most about twice what is live: sweeping costs O(n) once per n new
    // deadlines.
    if (timers.size() < sweep_at) return;
    std::erase_if(timers, [&](const timer& t) { return !current(t); });
    std::make_heap(timers.begin(), timers.end(), later{});
    sweep_at = std::max<std::size_t>(1024, 2 * timers.size());
  }

  /// Puts the deadline `at` of `kind` for `c` into `timers`, unless one as early waits there
  /// already (`slot` holds it; when that one falls due, the deadline is looked at again).
  void arm(std::optional<clock::time_point>& slot, clock::time_point at, timer_kind kind,
           const connection& c) {
    if (slot && *slot <= at) return;
    slot = at;
    schedule(at, kind, c.id);
  }

  /// Takes the soonest deadline out of `timers`.
  timer pop_timer() {
    std::pop_heap(timers.begin(), timers.end(), later{});
    auto t = std::move(timers.back());
    timers.pop_back();
    return t;
  }

  void notice(connection_id id, std::string text) {
    actions.emplace_back(relay_actions::notice{id, std::move(text)});
  }

  void mark(connection& c) {
    if (c.marked) return;
    c.marked = true;
    ready.push_back(c.id);
  }
  void mark(connection_id id) {
    if (auto* c = find(id)) mark(*c);
  }

  connection* find(connection_id id) {
    const auto found = connections.find(id);
    return found == connections.end() ? nullptr : &found->second;
  }

  /// `c`'s input may be read again: its reader is woken and the clocks of a frame it is in
  /// the middle of start afresh (they stand while the relay holds its input back).
  void resume(connection& c) {
    c.last_input = now;
    if (c.frame_began) {
      if (!c.sending) c.frame_began = now;
      arm(c.drip_timer, drip_deadline(c), timer_kind::drip, c);
    }
    mark(c);
  }
  void resume(connection_id id) {
    if (auto* c = find(id)) resume(*c);
  }

  /// When `c`, in the middle of a frame, is closed unless more of it comes.
  clock::time_point drip_deadline(const connection& c) const {
    auto at = c.last_input + settings.frame_idle_timeout;
    if (!c.sending) at = std::min(at, *c.frame_began + settings.head_timeout);
    return at;
  }

  /// Closes `c` if it is a slow sender whose deadline passed; a connection whose input the
  /// relay holds back is not one (`resume`).
  void check_slow_sender(connection& c) {
    if (!c.frame_began || c.closing || !wants_input(c)) return;
    const auto at = drip_deadline(c);
    if (at > now) return arm(c.drip_timer, at, timer_kind::drip, c);
    notice(c.id, c.sending ? "no input for " + std::to_string(settings.frame_idle_timeout.count()) +
                                 " s in the middle of a frame; closing"
                           : "frame head, or frame other than a SEND, not complete within " +
                                 std::to_string(settings.head_timeout.count()) + " s; closing");
    close(c);
  }

  /// True if the relay can pass on more of `c`'s input (see `relay::wants_input`).
  bool wants_input(const connection& c) const {
    if (c.closing || c.lookup) return false;
    if (c.forwards.empty()) return true;
    // Only the front forward can be moving; any other one is holding bytes back.
    if (c.forwards.size() > 1) return false;
    const auto& f = *c.forwards.front();
    if (f.failure) return true;  // its bytes are being dropped
    if (!f.granted) return false;
    const auto target = connections.find(f.target);
    return target != connections.end() && target->second.queued() < settings.output_window;
  }

  // --- Who is who

  /// The names or ports of this relay changed: the `paths` checked under the old ones go.
  void forget_paths() {
    for (auto& [id, c] : connections)
      c.routed.reset();
  }

  /// True if `u` names this relay: its host or an alias, and one of its ports or none (§6.2).
  bool is_ours(const uri& u) const {
    const auto& host = u.host();
    const bool named = detail::iequals(host, settings.host) ||
                       std::any_of(settings.aliases.begin(), settings.aliases.end(),
                                   [&](const std::string& a) { return detail::iequals(host, a); });
    if (!named) return false;
    if (!u.port()) return true;
    return std::find(settings.ports.begin(), settings.ports.end(), *u.port()) !=
           settings.ports.end();
  }

  /// The live session `u` names, if `u` is one of ours (`ours`: `is_ours(u)`).
  session* live_session(const uri& u, bool ours) {
    if (!ours || u.session_id().empty()) return nullptr;
    const auto found = sessions.find(u.session_id());
    if (found == sessions.end() || found->second.expires <= now) return nullptr;
    return &found->second;
  }

  /// A fresh nonce for connection `c`: 128 bits from the injected CSPRNG, as hex (RFC 7616
  /// §5.4, §5.12). Only `c` may use it, so it is kept there, not in a table of all (and needs
  /// no deadline: it is checked when used). A connection holds at most `max_nonces` (the
  /// oldest, or a used or expired one, is forgotten first), so AUTHs without credentials
  /// cannot fill memory.
  std::string issue_nonce(connection& c, std::string_view algorithm) {
    static constexpr char digits[] = "0123456789abcdef";
    nonce_record nonce{{}, std::string(algorithm), now + settings.nonce_lifetime};
    for (std::size_t word = 0; word < 2; ++word) {
      auto bits = random();
      for (std::size_t i = 0; i < 16; ++i, bits >>= 4)
        nonce.value[word * 16 + i] = digits[bits & 15];
    }
    while (!c.nonces.empty() &&
           (c.nonces.size() == max_nonces || c.nonces.front().expires <= now)) {
      c.nonces.pop_front();
    }
    c.nonces.push_back(std::move(nonce));
    return std::string(c.nonces.back().value.data(), c.nonces.back().value.size());
  }

  // --- Writing

  /// Puts the frame `m`, which has no body, into `c`'s output, or queues it behind the chunk
  /// open there.
  void emit(connection& c, const message& m) {
    const auto write = [&](std::string& out) {
      serialize_head(m, out);
      serialize_end(m, end_flag::complete, out);
    };
    if (!c.owner) {
      write(c.out);
      mark(c);
      return;
    }
    std::string bytes;
    write(bytes);
    c.urgent.push_back(std::move(bytes));
    service(c);
  }

  /// All of `c`'s output was written. One buffer is enough until output comes faster than it
  /// is written (then `output` hands one out while the other fills), and none once it grew
  /// large or the connection goes quiet.
  void drained(connection& c) {
    if (c.out.capacity() < c.writing.capacity()) c.out.swap(c.writing);
    give_back(c.writing);
    if (c.quiet || c.out.capacity() > kept_output) give_back(c.out);
    c.quiet = false;
  }

  /// Answers the request `head` received on `c` (RFC 4975 §7.2).
  void respond(connection& c, const message& head, int code, std::string_view comment,
               std::vector<header_field> extra = {}) {
    c.quiet = true;
    const auto from = head.header("From-Path").value_or("");
    send_response(c, head.transaction_id, head.method == "SEND" ? first_hop(from) : from,
                  first_hop(head.header("To-Path").value_or("")), code, comment, std::move(extra));
  }

  /// Answers a forwarded request's sender, once, as its Failure-Report allows (§7.2).
  void answer_sender(forward& f) {
    if (f.answered) return;
    f.answered = true;
    auto* source = find(f.source);
    if (!source) return;
    const int code = f.failure ? f.failure : 200;
    if (!f.is_send) {
      // Only failures are answered here: the next hop answers the rest (§6.4.3).
      if (f.failure && !f.head.method.empty() && f.head.method != "REPORT") {
        send_response(*source, f.in_tid, f.reply_path, f.self, code, f.failure_comment);
      }
      return;
    }
    if (f.failure_report == report_mode::no) return;
    if (code == 200 && f.failure_report == report_mode::partial) return;
    send_response(*source, f.in_tid, first_hop(f.reply_path), f.self, code,
                  code == 200 ? "OK" : f.failure_comment);
  }

  /// Writes a response to `c` (RFC 4975 §7.2). It is built in `reply`, whose strings keep their
  /// storage from one response to the next: the relay answers most SENDs itself.
  void send_response(connection& c, std::string_view tid, std::string_view to,
                     std::string_view from, int code, std::string_view comment,
                     std::vector<header_field> extra = {}) {
    reply.transaction_id.assign(tid);
    reply.status_code = code;
    reply.comment.assign(comment);
    reply.headers.resize(2);
    reply.headers[0].name.assign("To-Path");
    reply.headers[0].value.assign(to);
    reply.headers[1].name.assign("From-Path");
    reply.headers[1].value.assign(from);
    for (auto& field : extra)
      reply.headers.push_back(std::move(field));
    emit(c, reply);
  }

  /// A failure REPORT to the sender of the SEND `f`, for its chunk `range` (RFC 4975 §7.1.2,
  /// RFC 4976 §6.4.1).
  void report_failure(const forward& f, const byte_range& range, int code,
                      const std::string& comment) {
    auto* c = find(f.source);
    if (!c || c->closing) return;
    const auto message_id = std::string(f.head.message_id().value_or(""));
    message head;
    head.transaction_id = make_ident(random);
    head.method = "REPORT";
    head.headers.push_back({"To-Path", std::string(f.reply_path)});
    head.headers.push_back({"From-Path", std::string(f.self)});
    head.headers.push_back({"Message-ID", message_id});
    head.headers.push_back({"Byte-Range", range.to_string()});
    head.headers.push_back({"Status", status_value(code, comment)});
    ++counters.reports_generated;
    notice(f.source, "REPORT " + std::to_string(code) + " for message " + message_id + " to " +
                         std::string(f.reply_path) + ": " + comment);
    emit(*c, head);
  }

  // --- Forwarding: the target's output

  /// The Byte-Range of the outgoing chunk that starts now (§7.1.1: "*" where it may be
  /// interrupted).
  byte_range outgoing_range(const forward& f) const {
    byte_range r = f.range;
    r.start = f.range.start + f.forwarded;
    const bool small_and_known = f.forwarded == 0 && f.range.end &&
                                 *f.range.end + 1 - f.range.start <= min_interrupted_chunk;
    if (!small_and_known) r.end.reset();
    return r;
  }

  /// Writes the head of `f`'s next chunk into its target's output.
  void open_chunk(connection& target, forward& f) {
    f.head.transaction_id = make_transaction_id(random);
    if (f.is_send) f.head.headers[f.range_field].value = outgoing_range(f).to_string();
    f.chunk_start = f.forwarded;
    serialize_head(f.head, target.out);
    mark(target);
    ++counters.frames_relayed;
  }

  /// Ends `f`'s chunk in its target's output with `flag` and books its transaction.
  void close_chunk(connection& target, forward& f, end_flag flag) {
    serialize_end(f.head, flag, target.out);
    mark(target);
    const bool expects_response =
        f.is_send ? f.failure_report != report_mode::no : f.head.method != "REPORT";
    if (!expects_response || flag == end_flag::aborted) return;
    byte_range range = f.range;
    range.start = f.range.start + f.chunk_start;
    range.end = f.range.start + f.forwarded - 1;
    if (f.forwarded == f.chunk_start) range.end = range.start - 1;
    const auto deadline = now + settings.transaction_timeout;
    schedule(deadline, timer_kind::transaction, target.id, f.head.transaction_id);
    // The chunk's transaction id moves to its record: the next chunk gets a new one.
    target.pendings.insert_or_assign(std::move(f.head.transaction_id),
                                     pending{f.shared_from_this(), range, deadline});
  }

  void write_body(connection& target, forward& f, std::string_view bytes) {
    target.out.append(bytes);
    mark(target);
    f.forwarded += bytes.size();
    counters.bytes_relayed += bytes.size();
  }

  /// Gives `target`'s output to `f`: its head, what it holds and, if it ended, its end-line.
  void grant(connection& target, forward& f) {
    target.owner = &f;
    resume(f.source);  // its input may flow now
    f.granted = true;
    f.waiting = false;
    open_chunk(target, f);
    write_body(target, f, f.held);
    f.held.clear();
    f.held.shrink_to_fit();
    if (f.ended) finish(target, f);
  }

  /// `f` ended and owns `target`: ends the chunk, frees the output and the sender's queue.
  void finish(connection& target, forward& f) {
    close_chunk(target, f, f.flag);
    release(target);
    pop_forward(f);
  }

  /// The front forward of its source is done; the next one may go.
  void pop_forward(forward& f) {
    auto* source = find(f.source);
    if (!source || source->forwards.empty() || source->forwards.front().get() != &f) return;
    source->forwards.pop_front();
    settle(*source);
  }

  /// Frees `target`'s output: waiting frames first, then the next sender in turn.
  void release(connection& target) {
    if (target.owner) target.owner->granted = false;
    target.owner = nullptr;
    while (!target.urgent.empty()) {
      target.out += target.urgent.front();
      mark(target);
      target.urgent.pop_front();
    }
    while (!target.owner && !target.waiters.empty()) {
      const auto next = target.waiters.front();
      target.waiters.pop_front();
      auto* source = find(next);
      if (!source || source->forwards.empty()) continue;
      const auto f = source->forwards.front();
      if (f->target != target.id || f->granted || !f->waiting) continue;
      grant(target, *f);
    }
  }

  /// Interrupts the chunk open in `target` if others wait and it is long enough, or its
  /// sender stalled (§7.1.1).
  void service(connection& target) {
    auto* f = target.owner;
    if (!f || !f->is_send) return;
    if (target.urgent.empty() && target.waiters.empty()) return;
    if (f->forwarded - f->chunk_start < min_interrupted_chunk) {
      const auto* source = find(f->source);
      if (source && source->last_input + stalled_chunk > now) {
        return arm(target.stall_timer, source->last_input + stalled_chunk, timer_kind::stall,
                   target);
      }
    }
    close_chunk(target, *f, end_flag::continued);
    // Its turn comes again: it queues before `release` picks the next sender, or it would
    // never be granted when only urgent frames were waiting.
    f->waiting = true;
    target.waiters.push_back(f->source);
    release(target);
  }

  /// `f` (the front of its source) wants its target's output.
  void request_target(forward& f) {
    auto* target = find(f.target);
    if (!target) return;
    if (!target->connecting && !target->owner && target->waiters.empty()) {
      grant(*target, f);
      return;
    }
    f.waiting = true;
    target->waiters.push_back(f.source);
    service(*target);
  }

  /// A piece of `f`'s body arrived.
  void on_piece(forward& f, std::string_view bytes) {
    if (f.failure) return;
    auto* target = find(f.target);
    // RFC 4975 §7.1.1: a body cannot run past its Byte-Range end or total. Such a chunk is not
    // passed on: what went out of it is aborted and the sender is answered 400.
    if (f.is_send && f.forwarded + f.held.size() + bytes.size() > room(f.range)) {
      if (f.granted && target) {
        close_chunk(*target, f, end_flag::aborted);
        release(*target);
      }
      fail_forward(f, 400, "Body longer than its Byte-Range");
      return;
    }
    if (f.granted && target) {
      write_body(*target, f, bytes);
      service(*target);
      return;
    }
    f.held.append(bytes);
  }

  /// How many body bytes a chunk with Byte-Range `r` may carry.
  static std::uint64_t room(const byte_range& r) {
    if (r.end) return *r.end + 1 - r.start;
    if (r.total) return *r.total + 1 - r.start;
    return UINT64_MAX;
  }

  /// `f`'s end-line arrived.
  void on_end(forward& f, end_flag flag) {
    f.ended = true;
    f.flag = flag;
    // RFC 4976 §6.4.1: a SEND with Failure-Report yes is answered at once by the relay.
    if (f.is_send || f.failure) answer_sender(f);
    if (f.failure) {
      if (auto* source = find(f.source)) settle(*source);
      return;
    }
    if (!f.granted) return;  // it goes when its target is free
    if (auto* target = find(f.target)) finish(*target, f);
  }

  /// Lets `c`'s input go on after its front forwards failed: the ended ones are answered and
  /// dropped, and the next one asks for its target.
  void settle(connection& c) {
    resume(c);  // its front forward changed: its input may flow
    while (!c.forwards.empty() && c.forwards.front()->failure && c.forwards.front()->ended) {
      const auto f = c.forwards.front();
      c.forwards.pop_front();
      answer_sender(*f);
    }
    if (c.forwards.empty()) return;
    const auto f = c.forwards.front();
    if (!f->failure && !f->granted && !f->waiting) request_target(*f);
  }

  /// `f` cannot be delivered: its target closed or could not be reached.
  void fail_forward(forward& f, int code, const std::string& comment) {
    if (f.failure) return;
    resume(f.source);  // its bytes are dropped from now on, so they may be read
    f.failure = code;
    f.failure_comment = comment;
    f.granted = false;
    f.waiting = false;
    f.held.clear();
    if (f.answered && f.is_send && f.failure_report != report_mode::no) {
      report_failure(f, f.range, code, comment);
    }
  }

  // --- Receiving

  void on_head(connection& c) {
    const auto& head = c.wire.head();
    if (settings.trace) {
      notice(c.id, "frame: MSRP " + head.transaction_id + ' ' +
                       (head.is_request() ? head.method : std::to_string(head.status_code)));
    }
    if (!head.is_request()) return on_response(c, head);
    const auto* p = paths_of(c, head);
    if (!p) return refuse(c, head, 400, "Bad Request");
    // RFC 4976 §6.2: a request not addressed to this relay drops the connection.
    if (!p->first_ours) {
      notice(c.id, "request " + head.transaction_id + " not addressed to this relay; closing");
      return close(c);
    }
    if (head.method == "AUTH" && p->to.size() == 1) {
      c.handling = std::make_unique<local>(local{head, 0, {}});
      // Only requests passing through repeat their paths: an idle session keeps none.
      c.routed.reset();
      return;
    }
    route(c, head);
  }

  /// The To-Path and From-Path of `head`, received on `c`, parsed (`c.routed`); null if either
  /// is missing or malformed.
  const paths* paths_of(connection& c, const message& head) {
    const auto to = head.header("To-Path");
    const auto from = head.header("From-Path");
    if (!to || !from) return nullptr;
    if (c.routed && c.routed->to_text == *to && c.routed->from_text == *from) return c.routed.get();
    auto to_uris = parse_path(*to);
    auto from_uris = parse_path(*from);
    if (!to_uris || !from_uris) return nullptr;
    // Forwards may still hold the old ones.
    if (!c.routed || c.routed.use_count() > 1) c.routed = std::make_shared<paths>();
    auto& p = *c.routed;
    p.to_text = *to;
    p.from_text = *from;
    p.to_formatted = format_path(*to_uris);
    p.from_formatted = format_path(*from_uris);
    p.to = std::move(*to_uris);
    p.from = std::move(*from_uris);
    p.first_ours = is_ours(p.to[0]);
    p.second_ours = p.to.size() > 1 && is_ours(p.to[1]);
    p.client_of.clear();
    return &p;
  }

  /// Refuses the request being received on `c` with `code` once it has arrived.
  void refuse(connection& c, const message& head, int code, std::string comment) {
    c.handling = std::make_unique<local>(local{head, code, std::move(comment)});
  }

  /// §6.4: where a request goes, and the forward that takes it there.
  void route(connection& c, const message& head) {
    auto& p = *c.routed;  // as `paths_of` just found them
    const auto& to = p.to;
    auto* s = live_session(to.front(), p.first_ours);
    if (!s) return refuse(c, head, 481, "No Such Session");
    connection_id target = 0;
    const uri* next_hop = nullptr;
    // The To-Path URIs of this relay that move to the front of the From-Path (§6.4.1).
    std::size_t moved = 1;
    if (s->connection == c.id) {
      // The client sends: only from the path it authenticated (§6.4).
      const auto& id = to.front().session_id();
      if (p.client_of != id) {
        if (!same_path(p.from, s->client_path)) {
          return refuse(c, head, 403, "From-Path is not the authenticated one");
        }
        p.client_of = id;
      }
      if (to.size() == 1) return refuse(c, head, 400, "No next hop in To-Path");
      if (p.second_ours) {
        auto* other = live_session(to[1], true);
        if (!other) return refuse(c, head, 481, "No Such Session");
        target = other->connection;
        moved = 2;
        if (to.size() == 2) return refuse(c, head, 400, "No next hop in To-Path");
      } else {
        next_hop = &to[1];
      }
    } else {
      // Someone sends to the client: toward its connection only.
      target = s->connection;
      if (to.size() == 1) return refuse(c, head, 400, "No next hop in To-Path");
    }
    if (next_hop) target = connection_to(*next_hop);

    // The paths as text: the formatted To-Path split after its moved URIs, which go to the
    // front of the From-Path, the last moved first.
    const std::string_view formatted = p.to_formatted;
    const auto self = first_hop(formatted);
    const auto rest = formatted.substr(self.size() + 1);
    std::string out_from;
    if (moved == 2) {
      const auto second = first_hop(rest);
      out_from.reserve(formatted.size() + p.from_formatted.size());
      out_from.append(second).append(1, ' ').append(self).append(1, ' ');
    } else {
      out_from.reserve(self.size() + 1 + p.from_formatted.size());
      out_from.append(self).append(1, ' ');
    }
    out_from.append(p.from_formatted);
    const auto out_to = moved == 2 ? rest.substr(rest.find(' ') + 1) : rest;

    auto f = std::make_shared<forward>();
    f->source = c.id;
    f->target = target;
    // The head goes on with the paths rewritten (both are there: `paths_of` found them), its
    // transaction id set per chunk.
    f->head.method = head.method;
    auto& fields = f->head.headers;
    fields.reserve(head.headers.size() + 1);  // and a Byte-Range
    std::optional<std::size_t> range_field;
    for (const auto& field : head.headers) {
      if (detail::iequals(field.name, "To-Path")) {
        fields.push_back({field.name, std::string(out_to)});
      } else if (detail::iequals(field.name, "From-Path")) {
        fields.push_back({field.name, std::move(out_from)});
      } else {
        if (detail::iequals(field.name, "Byte-Range")) range_field = fields.size();
        fields.push_back(field);
      }
    }
    f->is_send = head.method == "SEND";
    if (f->is_send && !range_field) {
      // Every outgoing chunk carries a Byte-Range; RFC 4975 §9 (content-stuff) keeps the MIME
      // headers, Content-Type last, at the end of the head, so it goes before them.
      const auto mime = std::find_if(fields.begin(), fields.end(), [](const header_field& field) {
        return lower(field.name).starts_with("content-");
      });
      range_field = static_cast<std::size_t>(mime - fields.begin());
      fields.insert(mime, {"Byte-Range", "1-*/*"});
    }
    f->range_field = range_field.value_or(0);
    f->failure_report = head.failure_report().value_or(report_mode::yes);
    f->route = c.routed;
    f->reply_path = p.from_text;
    f->self = self;
    f->in_tid = head.transaction_id;
    f->range = head.byte_range().value_or(byte_range{});
    c.probation.reset();
    c.forwards.push_back(std::move(f));
    if (c.forwards.size() == 1) {
      const auto first = c.forwards.front();
      request_target(*first);
    }
  }

  /// The connection to the host and port of `next` (§6.4.2: reuse one if it exists).
  connection_id connection_to(const uri& next) {
    const auto authority = std::string(next.is_secure() ? "msrps://" : "msrp://") +
                           lower(next.host()) + ':' + std::to_string(next.port().value_or(2855));
    if (const auto found = outgoing.find(authority); found != outgoing.end()) {
      return found->second;
    }
    const auto id = next_outgoing++;
    auto& c = connections.emplace(id, connection(id, settings.limits)).first->second;
    c.outgoing = true;
    c.connecting = true;
    c.authority = authority;
    outgoing.emplace(authority, id);
    ++counters.connections;
    actions.emplace_back(relay_actions::connect{id, next});
    return id;
  }

  void on_body(connection& c, std::string_view bytes) {
    if (c.handling || c.forwards.empty()) return;
    const auto f = c.forwards.back();
    on_piece(*f, bytes);
  }

  void on_frame_end(connection& c, end_flag flag) {
    // A response ends here: its end-line belongs to no request of this connection.
    if (!c.wire.head().is_request()) return;
    if (c.handling) {
      const auto request = std::move(c.handling);
      // The connection mostly goes quiet after a request the relay handles itself (a client
      // waits for its AUTH's answer, and then for its peer): the head the parser keeps for
      // reuse is given back (an AUTH's is large), the next frame starts a new one.
      c.wire = parser(settings.limits);
      c.frame_end = 0;
      if (request->answer == 0) return authenticate(c, request->head);
      return refuse_now(c, *request);
    }
    if (c.forwards.empty()) return;
    const auto f = c.forwards.back();
    on_end(*f, flag);
  }

  /// Answers a refused request as its method and Failure-Report allow (RFC 4975 §7.2).
  void refuse_now(connection& c, const local& request) {
    const auto& head = request.head;
    // The answer goes out before `count_failure` may close the connection: a closing
    // connection takes no new frames.
    const bool answered = head.method != "REPORT" &&  // §7.1.2: never answered
                          (head.method != "SEND" ||
                           head.failure_report().value_or(report_mode::yes) != report_mode::no);
    if (answered) respond(c, head, request.answer, request.comment);
    count_failure(c);
  }

  /// A failed request on a client connection; on probation or for AUTH, enough of them end it
  /// (RFC 4976 §6.1, §6.3).
  void count_failure(connection& c) {
    if (c.outgoing || c.peer.relay) return;
    if (++c.failures < settings.max_failures || !c.probation) return;
    notice(c.id, "too many failed requests on probation; closing");
    close(c);
  }

  void on_response(connection& c, const message& head) {
    const auto found = c.pendings.find(head.transaction_id);
    if (found == c.pendings.end()) return;  // §6.4.3: not ours; dropped
    const auto p = std::move(found->second);
    c.pendings.erase(found);
    const auto& f = *p.request;
    if (f.is_send) {
      // §6.4.3: an error response becomes a REPORT for the sender.
      if (head.status_code != 200 && f.failure_report != report_mode::no) {
        report_failure(f, p.range, head.status_code, head.comment);
      }
      return;
    }
    auto* source = find(f.source);
    if (!source) return;
    // §6.4.3: move our URI from the To-Path to the front of the From-Path and pass it back.
    std::vector<header_field> extra;
    for (const auto& field : head.headers) {
      if (!detail::iequals(field.name, "To-Path") && !detail::iequals(field.name, "From-Path")) {
        extra.push_back(field);
      }
    }
    ++counters.frames_relayed;
    send_response(*source, f.in_tid, f.reply_path,
                  std::string(f.self) + ' ' + std::string(head.header("From-Path").value_or("")),
                  head.status_code, head.comment, std::move(extra));
  }

  // --- AUTH (RFC 4976 §5.1, §6.3, §9.1)

  void challenge(connection& c, const message& head, bool stale) {
    std::vector<header_field> extra;
    // RFC 7616 §3.7: one challenge per algorithm, the preferred one first.
    for (const auto algorithm : {digest::sha256, digest::md5}) {
      digest::challenge ch;
      ch.realm = settings.realm;
      ch.nonce = issue_nonce(c, algorithm);
      ch.algorithm = std::string(algorithm);
      ch.stale = stale;
      extra.push_back({"WWW-Authenticate", ch.to_header_value()});
    }
    respond(c, head, 401, "Unauthorized", std::move(extra));
  }

  void auth_failed(connection& c, const message& head, std::string_view user,
                   std::string_view why) {
    ++counters.auth_failures;
    notice(c.id, "AUTH failed for user \"" + std::string(user) + "\": " + std::string(why));
    // §6.3: several failed AUTHs from a directly connected client end its connection.
    if (!c.peer.relay && ++c.failures >= settings.max_failures) {
      respond(c, head, 403, "Forbidden");
      notice(c.id, "too many failed AUTH attempts; closing");
      return close(c);
    }
    challenge(c, head, false);
  }

  void authenticate(connection& c, const message& head) {
    const auto authorization = head.authorization();
    if (!authorization) return challenge(c, head, false);
    auto credentials = digest::credentials::parse(*authorization);
    if (!credentials) return auth_failed(c, head, "", "malformed Authorization");
    auto& cr = *credentials;
    // §9.1: the digest-uri is the rightmost To-Path URI.
    const auto rightmost = last_hop(head.header("To-Path").value_or(""));
    if (cr.uri.empty()) cr.uri = std::string(rightmost);
    if (cr.uri != rightmost || cr.realm != settings.realm) {
      return auth_failed(c, head, cr.username, "wrong realm or uri");
    }
    // The HA1 comes from the store, maybe later: the connection's input waits for it.
    const auto ticket = next_ticket++;
    lookups.emplace(ticket, c.id);
    actions.emplace_back(relay_actions::lookup{ticket, c.id, cr.username, cr.realm, cr.algorithm});
    c.lookup = std::make_unique<awaiting>(awaiting{ticket, head, std::move(cr)});
  }

  /// The store answered the lookup of the AUTH `head` on `c`.
  void looked_up(connection& c, const message& head, const digest::credentials& cr,
                 const credential_answer& answer) {
    if (answer.outcome == lookup_outcome::unavailable) {
      // RFC 4975 §10 defines no code for a server that cannot do its job for now, and §12
      // leaves new codes to future RFCs. 500, the generic code of the 5xx class that 501 and
      // 506 belong to, says the failure is the relay's (as in SIP and HTTP, whose codes MSRP
      // reuses; RFC 3261 §8.1.3.2 takes an unknown code as the x00 of its class). It is not the
      // client's failure: no count against it (§6.3), no new challenge, the connection stays open.
      ++counters.auth_unavailable;
      notice(c.id,
             "AUTH for user \"" + cr.username + "\" answered 500: credential store unavailable");
      return respond(c, head, 500, "Credential Store Unavailable");
    }
    const auto& ha1 = answer.ha1;
    if (answer.outcome != lookup_outcome::found || !digest::verify(hash, cr, ha1, "AUTH")) {
      return auth_failed(c, head, cr.username, "wrong credentials");
    }
    // Right credentials: the nonce must be one we issued to this connection for this
    // algorithm, still fresh and unused; otherwise a new challenge marked stale (RFC 7616
    // §3.3), so a replayed Authorization never passes.
    const auto nonce = std::find_if(c.nonces.begin(), c.nonces.end(), [&](const auto& n) {
      return std::string_view(n.value.data(), n.value.size()) == cr.nonce;
    });
    if (nonce == c.nonces.end() || nonce->algorithm != cr.algorithm || nonce->expires <= now) {
      return challenge(c, head, true);
    }
    // §4.6: an Expires outside our bounds gets 423 (the nonce stays good for the retry).
    const auto asked = head.expires();
    if (!asked) return respond(c, head, 400, "Bad Expires");
    auto granted = settings.default_expires;
    if (*asked) {
      granted = std::chrono::seconds(**asked);
      if (granted < settings.min_expires) {
        return respond(c, head, 423, "Interval Out-of-Bounds",
                       {{"Min-Expires", std::to_string(settings.min_expires.count())}});
      }
      if (granted > settings.max_expires) {
        return respond(c, head, 423, "Interval Out-of-Bounds",
                       {{"Max-Expires", std::to_string(settings.max_expires.count())}});
      }
    }
    nonce->expires = {};  // single use
    auto from = head.from_path();
    if (!from) return respond(c, head, 400, "Bad Request");
    auto* s = open_session(c, cr.username, *from, granted);
    if (!s) {
      notice(c.id, "user \"" + cr.username + "\" has too many sessions");
      return respond(c, head, 403, "Too many sessions");
    }
    ++counters.auth_successes;
    c.failures = 0;
    c.probation.reset();
    // §4.2, §5.1: the Use-Path is the path back to the client (the relays before us) and our
    // new URI last.
    from->pop_back();
    auto use_path = format_path(*from);
    if (!use_path.empty()) use_path += ' ';
    use_path += s->self;
    digest::authentication_info info;
    info.nextnonce = issue_nonce(c, cr.algorithm);
    info.rspauth = digest::rspauth(hash, cr, ha1);
    info.cnonce = cr.cnonce;
    info.nc = cr.nc;
    respond(c, head, 200, "OK",
            {{"Use-Path", std::move(use_path)},
             {"Expires", std::to_string(granted.count())},
             {"Authentication-Info", info.to_header_value()}});
  }

  /// `s` ends or changes hands: one session fewer for its user.
  void forget_owner(const session& s) {
    const auto found = sessions_of.find(s.user);
    if (found == sessions_of.end()) return;
    if (--found->second == 0) sessions_of.erase(found);
  }

  /// A new session for `user` on `c`, or the refreshed one it already has for `client_path`.
  session* open_session(connection& c, const std::string& user, const std::vector<uri>& client_path,
                        std::chrono::seconds lifetime) {
    const auto expires = now + lifetime;
    // Only this connection's sessions and a count per user: an AUTH costs the same however many
    // sessions the relay holds.
    std::erase_if(c.sessions, [&](const std::string& id) { return !sessions.contains(id); });
    for (const auto& id : c.sessions) {
      auto& s = sessions.at(id);
      if (same_path(s.client_path, client_path) && s.expires > now) {
        if (s.user != user) {
          forget_owner(s);
          ++sessions_of[user];
        }
        s.expires = expires;
        schedule(expires, timer_kind::session, c.id, id);
        s.user = user;
        notice(c.id, "session " + id + " of \"" + user + "\" refreshed for " +
                         std::to_string(lifetime.count()) + " s");
        return &s;
      }
    }
    if (const auto owned = sessions_of.find(user);
        owned != sessions_of.end() && owned->second >= settings.max_sessions_per_user) {
      return nullptr;
    }
    std::string id = make_ident(random);
    const auto text = std::string(c.peer.secure ? "msrps://" : "msrp://") + settings.host + ':' +
                      std::to_string(c.peer.local_port) + '/' + id + ";tcp";
    auto self = uri::parse(text);
    if (!self) return nullptr;
    auto& s = sessions[id];
    s = session{self->to_string(), c.id, client_path, user, expires};
    schedule(expires, timer_kind::session, c.id, id);
    c.sessions.push_back(id);
    ++sessions_of[user];
    counters.sessions = sessions.size();
    notice(c.id, "session " + id + " opened for \"" + user + "\" from " + c.peer.address + " for " +
                     std::to_string(lifetime.count()) + " s");
    return &s;
  }

  // --- Connections

  /// Parses `bytes` received on `c`, after what was left unparsed, and acts on every event;
  /// stops after an AUTH that waits for the store, keeping the rest in `unparsed`.
  void parse(connection& c, std::string_view bytes) {
    // Parse straight from `bytes` when nothing is held back; otherwise join them first.
    if (!c.unparsed.empty()) {
      c.unparsed.append(bytes);
      bytes = c.unparsed;
    }
    std::size_t at = 0;
    for (;;) {
      const auto e = c.wire.parse(bytes.substr(at));
      at += e.consumed;
      using kind = parser::event_kind;
      if (e.kind == kind::head) {
        c.sending = c.wire.head().method == "SEND";
        on_head(c);
      }
      if (e.kind == kind::body) on_body(c, e.body);
      if (e.kind == kind::end) {
        c.sending = false;
        c.frame_end = c.wire.offset();
        on_frame_end(c, e.flag);
      }
      if (e.kind == kind::error) {
        fail_stream(c, e.error);
        c.unparsed.clear();
        return;
      }
      if (c.closing) {
        c.unparsed.clear();
        return;
      }
      if (c.lookup || (e.kind == kind::need_more && e.consumed == 0)) break;
    }
    if (at == bytes.size()) {
      give_back(c.unparsed);  // an empty string keeps its storage when assigned to
    } else {
      c.unparsed = std::string(bytes.substr(at));
    }
    // A frame is begun once bytes of it were consumed or wait unparsed.
    if (c.wire.offset() == c.frame_end && c.unparsed.empty()) {
      c.frame_began.reset();
    } else {
      if (!c.frame_began) c.frame_began = now;
      arm(c.drip_timer, drip_deadline(c), timer_kind::drip, c);
    }
  }

  void close(connection& c) {
    if (c.closing) return;
    c.closing = true;
    // Its probation is over: left set, the lapsed time would stay due at every `advance`
    // and `next_deadline` would lie in the past until the connection is gone.
    c.probation.reset();
    actions.emplace_back(relay_actions::close{c.id});
  }

  void fail_stream(connection& c, std::error_code error) {
    const auto& head = c.wire.head();
    // REPORTs are never answered (RFC 4975 §7.1.2); Failure-Report `no` suppresses every
    // response (§7.2).
    const auto failure_report = head.failure_report();
    const bool silent =
        head.method == "REPORT" || (failure_report && *failure_report == report_mode::no);
    if (!head.transaction_id.empty() && head.is_request() && !silent) {
      const int code = to_status(error);
      respond(c, head, code, code == 413 ? "Message Too Large" : "Bad Request");
    }
    notice(c.id, "malformed input (" + error.message() + "); closing");
    close(c);
  }

  void drop(connection_id id) {
    auto* c = find(id);
    if (!c) return;
    // Sessions reachable through it end (§6.3: "the URI MUST be invalidated").
    for (const auto& session_id : c->sessions) {
      const auto found = sessions.find(session_id);
      if (found == sessions.end()) continue;
      notice(id, "session " + session_id + " closed with its connection");
      forget_owner(found->second);
      sessions.erase(found);
    }
    counters.sessions = sessions.size();
    // What it was sending: a chunk open elsewhere is aborted (RFC 4975 §7.1: `#`).
    for (auto& f : c->forwards) {
      if (auto* target = find(f->target)) target->waiters.remove(id);
    }
    for (auto& f : c->forwards) {
      auto* target = find(f->target);
      if (!target || !f->granted) continue;
      close_chunk(*target, *f, end_flag::aborted);
      release(*target);
    }
    c->forwards.clear();
    // What was going to it fails (§6.4.1: "next hop unreachable or gone mid-message").
    const std::string why = c->connecting ? "next hop unreachable" : "next hop closed";
    for (auto& [other_id, other] : connections) {
      if (other_id == id) continue;
      // A copy: a failure REPORT may let other forwards finish and leave the queue.
      const auto queued = std::vector(other.forwards.begin(), other.forwards.end());
      bool failed = false;
      for (const auto& f : queued) {
        if (f->target != id) continue;
        fail_forward(*f, 481, why);
        failed = true;
      }
      if (failed) settle(other);
    }
    for (auto& [tid, p] : c->pendings) {
      const auto& f = *p.request;
      if (f.is_send && f.failure_report != report_mode::no) {
        report_failure(f, p.range, 481, why);
      } else if (auto* source = find(f.source); source && !f.is_send) {
        // A forwarded AUTH (or unknown method) gets its failure as the response (§6.4.3).
        send_response(*source, f.in_tid, f.reply_path, f.self, 481, why);
      }
    }
    if (c->lookup) lookups.erase(c->lookup->ticket);  // its answer, if it comes, is ignored
    if (c->outgoing) outgoing.erase(c->authority);
    connections.erase(id);
    counters.connections = connections.size();
  }

  // --- Time

  /// Acts on every deadline that fell due, in the order of a walk over everything: sessions,
  /// then each connection by id: its probation, a stalled chunk, a slow sender, then its
  /// transactions.
  void run_timers() {
    std::vector<timer> due;
    while (!timers.empty() && timers.front().at <= now)
      due.push_back(pop_timer());
    const auto order = [](const timer& t) {
      const bool of_connection = t.kind >= timer_kind::probation;
      return std::tuple(of_connection, of_connection ? t.connection : 0, t.kind);
    };
    std::stable_sort(due.begin(), due.end(),
                     [&](const timer& a, const timer& b) { return order(a) < order(b); });
    for (const auto& t : due) {
      if (current(t)) expire(t);
    }
    counters.sessions = sessions.size();
    // Those gone meanwhile would make `next_deadline` early.
    while (!timers.empty() && !current(timers.front()))
      pop_timer();
  }

  /// True while `t` still is the deadline of its thing.
  bool current(const timer& t) {
    switch (t.kind) {
      case timer_kind::session: {
        const auto found = sessions.find(t.key);
        return found != sessions.end() && found->second.expires == t.at;
      }
      case timer_kind::probation: {
        const auto* c = find(t.connection);
        return c && c->probation == t.at;
      }
      case timer_kind::stall: {
        const auto* c = find(t.connection);
        return c && c->stall_timer == t.at;
      }
      case timer_kind::drip: {
        const auto* c = find(t.connection);
        return c && c->drip_timer == t.at;
      }
      case timer_kind::transaction: {
        auto* c = find(t.connection);
        if (!c) return false;
        const auto found = c->pendings.find(t.key);
        return found != c->pendings.end() && found->second.deadline == t.at;
      }
    }
    return false;
  }

  /// The current deadline `t` fell due.
  void expire(const timer& t) {
    switch (t.kind) {
      case timer_kind::session: {
        const auto found = sessions.find(t.key);
        notice(found->second.connection, "session " + t.key + " expired");
        forget_owner(found->second);
        sessions.erase(found);
        return;
      }
      case timer_kind::probation:
        notice(t.connection, "no successful request within the probation time; closing");
        return close(*find(t.connection));
      case timer_kind::stall: {
        // A chunk that stalled while others wait for the connection.
        auto& c = *find(t.connection);
        c.stall_timer.reset();
        return service(c);
      }
      case timer_kind::drip: {
        auto& c = *find(t.connection);
        c.drip_timer.reset();
        return check_slow_sender(c);
      }
      case timer_kind::transaction: {
        auto& pendings = find(t.connection)->pendings;
        const auto found = pendings.find(t.key);
        auto p = std::move(found->second);
        pendings.erase(found);
        return timed_out(p);
      }
    }
  }

  /// §6.4.1: no response within the transaction timeout.
  void timed_out(const pending& p) {
    const auto& f = *p.request;
    if (f.is_send) {
      if (f.failure_report == report_mode::yes) report_failure(f, p.range, 408, "Request Timeout");
      return;
    }
    if (auto* source = find(f.source)) {
      send_response(*source, f.in_tid, f.reply_path, f.self, 408, "Request Timeout");
    }
  }
};

relay::relay(config settings, random_source random, digest::hasher hash)
    : state_(std::make_unique<state>(std::move(settings), std::move(random), std::move(hash))) {}

relay::~relay() = default;

void relay::reconfigure(config settings) {
  settings.ports = std::move(state_->settings.ports);
  state_->settings = std::move(settings);
  state_->forget_paths();
}

void relay::listening(std::uint16_t port) {
  state_->settings.ports.push_back(port);
  state_->forget_paths();
}

void relay::accept(connection_id connection, const peer_info& peer) {
  auto& st = *state_;
  auto& c = st.connections.emplace(connection, state::connection(connection, st.settings.limits))
                .first->second;
  c.peer = peer;
  st.counters.connections = st.connections.size();
  if (st.connections.size() > st.settings.max_connections) {
    st.notice(connection, "too many connections; closing");
    return st.close(c);
  }
  if (peer.relay) {
    st.notice(connection, "relay connected, certificate verified (" + peer.address + ")");
  } else {
    c.probation = st.now + st.settings.probation;
    st.schedule(*c.probation, state::timer_kind::probation, connection);
  }
  st.mark(c);  // its input may flow
}

void relay::connected(connection_id connection) {
  auto* c = state_->find(connection);
  if (!c || !c->connecting) return;
  c->connecting = false;
  state_->mark(*c);
  state_->release(*c);
}

void relay::close_connection(connection_id connection) {
  state_->drop(connection);
}

void relay::receive(connection_id connection, std::string_view bytes) {
  auto* c = state_->find(connection);
  if (!c || c->closing) return;
  c->last_input = state_->now;
  // An AUTH waits for its credentials: what follows it waits too, in order.
  if (c->lookup) {
    c->unparsed.append(bytes);
    return;
  }
  state_->parse(*c, bytes);
}

void relay::credentials(std::uint64_t ticket, credential_answer answer) {
  auto& st = *state_;
  const auto found = st.lookups.find(ticket);
  if (found == st.lookups.end()) return;  // its connection is gone
  auto* c = st.find(found->second);
  st.lookups.erase(found);
  if (!c || !c->lookup || c->lookup->ticket != ticket) return;
  const auto request = std::move(c->lookup);
  st.resume(*c);  // its input may flow again
  if (c->closing) return;
  st.looked_up(*c, request->head, request->credentials, answer);
  // The input held back meanwhile.
  if (c->closing || c->lookup || c->unparsed.empty()) return;
  std::string held;
  held.swap(c->unparsed);
  st.parse(*c, held);
}

bool relay::wants_input(connection_id connection) const {
  const auto found = state_->connections.find(connection);
  return found != state_->connections.end() && state_->wants_input(found->second);
}

std::string_view relay::output(connection_id connection) {
  auto* c = state_->find(connection);
  if (!c || c->connecting) return {};
  if (c->written == c->writing.size()) {
    c->writing.clear();
    c->written = 0;
    if (c->out.empty()) {
      state_->drained(*c);
      return {};
    }
    c->writing.swap(c->out);
  }
  return std::string_view(c->writing).substr(c->written);
}

std::size_t relay::queued(connection_id connection) const {
  const auto found = state_->connections.find(connection);
  return found == state_->connections.end() ? 0 : found->second.queued();
}

void relay::consume_output(connection_id connection, std::size_t n) {
  auto* c = state_->find(connection);
  if (!c) return;
  c->written += std::min(n, c->writing.size() - c->written);
  // The sender streaming into it may be under the output window again.
  if (c->owner) state_->resume(c->owner->source);
}

void relay::advance(clock::time_point now) {
  state_->now = now;
  state_->run_timers();
}

std::optional<clock::time_point> relay::next_deadline() const {
  const auto& timers = state_->timers;
  return timers.empty() ? std::nullopt : std::optional(timers.front().at);
}

std::optional<connection_id> relay::next_ready() {
  auto& st = *state_;
  while (!st.ready.empty()) {
    const auto id = st.ready.back();
    st.ready.pop_back();
    if (auto* c = st.find(id)) {
      c->marked = false;
      return id;
    }
  }
  return std::nullopt;
}

std::optional<relay_action> relay::next_action() {
  auto& actions = state_->actions;
  if (actions.empty()) return std::nullopt;
  auto next = std::move(actions.front());
  actions.pop_front();
  return next;
}

relay::stats relay::statistics() const {
  auto result = state_->counters;
  result.queued_bytes = 0;
  result.lookups = state_->lookups.size();
  for (const auto& [id, c] : state_->connections) {
    result.queued_bytes += c.queued();
    result.streams += c.forwards.size();
  }
  return result;
}

}  // namespace msrp
