#include "commands.hpp"

#include <unistd.h>

#include <chrono>
#include <ctime>
#include <deque>
#include <iostream>
#include <mutex>
#include <thread>

#include "inbox.hpp"
#include "msrp/sdp.hpp"
#include "outbox.hpp"

namespace msrp::cli {
namespace {

using namespace std::chrono_literals;

int fail_with(const failure& f) {
  std::cerr << "msrp: " << f.message << std::endl;
  return f.status;
}

/// Builds the node and meets the peer; on failure prints it and gives the exit status.
struct connected {
  std::unique_ptr<net::node> node;
  meeting session;
};

std::variant<connected, int> connect_peer(const meeting_options& options) {
  auto settings = node_options(options);
  if (const auto* f = std::get_if<failure>(&settings)) return fail_with(*f);
  auto& chosen = std::get<net::node::options>(settings);
  auto node = std::make_unique<net::node>(chosen);
  auto met = meet(*node, options, chosen);
  if (const auto* f = std::get_if<failure>(&met)) return fail_with(*f);
  return connected{std::move(node), std::get<meeting>(met)};
}

const char* outcome_name(send_outcome outcome) {
  switch (outcome) {
    case send_outcome::delivered:
      return "delivered";
    case send_outcome::sent:
      return "sent";
    case send_outcome::failed:
      return "failed";
    case send_outcome::aborted:
      return "aborted";
  }
  return "?";
}

std::string clock_time() {
  const auto now = std::time(nullptr);
  char text[16];
  std::strftime(text, sizeof text, "%H:%M:%S", std::localtime(&now));
  return text;
}

/// `text` wrapped in message/cpim (RFC 3862 §2, §3), for a peer that accepts text only wrapped.
std::string cpim_wrap(std::string_view text) {
  char now[32];
  const auto t = std::time(nullptr);
  std::strftime(now, sizeof now, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  // RFC 3862 §7.1: the anonymous address, as the CPIM identities are not known here.
  return std::string(
             "From: <im:anonymous@anonymous.invalid>\r\nTo: <im:anonymous@anonymous.invalid>\r\n") +
         "DateTime: " + now + "\r\n\r\nContent-Type: text/plain;charset=utf-8\r\n\r\n" +
         std::string(text);
}

/// The payload of a message/cpim body: after the CPIM headers and the MIME headers.
std::string_view cpim_payload(std::string_view body) {
  for (int block = 0; block < 2; ++block) {
    const auto blank = body.find("\r\n\r\n");
    if (blank == std::string_view::npos) return {};
    body.remove_prefix(blank + 4);
  }
  return body;
}

/// The outgoing message the options describe, checked against the peer's accept-types.
std::variant<outgoing_message, failure> make_message(const send_options& options,
                                                     const meeting& peer) {
  std::variant<outgoing_message, failure> made;
  if (!options.file.empty()) {
    made = file_message(options.file, options.content_type.empty() ? "application/octet-stream"
                                                                   : options.content_type);
  } else if (options.content_type.empty() && !accepts_type(peer.peer_accept_types, "text/plain") &&
             accepts_type(peer.peer_accept_types, "message/cpim")) {
    made = outgoing_message::text("message/cpim", cpim_wrap(options.text));
  } else {
    made = outgoing_message::text(
        options.content_type.empty() ? "text/plain" : options.content_type, options.text);
  }
  auto* m = std::get_if<outgoing_message>(&made);
  if (!m) return made;
  // RFC 4975 §8.6: never send a type the peer did not signal.
  if (!accepts_type(peer.peer_accept_types, m->content_type)) {
    return failure{exit_status::not_delivered, "the peer does not accept " + m->content_type};
  }
  m->success_report = options.no_report ? report_mode::no : report_mode::yes;
  return made;
}

/// Creates the folder received files go to, if needed.
std::optional<failure> make_folder(const std::string& folder) {
  std::error_code error;
  std::filesystem::create_directories(folder, error);
  if (error || !std::filesystem::is_directory(folder)) {
    return failure{exit_status::bad_input, "cannot use folder " + folder};
  }
  return std::nullopt;
}

/// A message we could not store is refused, so that its sender is told (RFC 4975 §7.1.4).
void refuse_unstored(net::node& node, session_handle session, const delivery& result) {
  if (result.what == delivery::kind::failed) node.reject(session, result.message_id, 403);
}

bool timed_out(std::chrono::steady_clock::time_point start, int seconds) {
  return seconds > 0 && std::chrono::steady_clock::now() - start > std::chrono::seconds(seconds);
}

}  // namespace

int run_send(const meeting_options& meeting, const send_options& options) {
  // An unreadable file is bad input whether or not the peer can be reached: check it first.
  if (!options.file.empty()) {
    if (const auto checked = file_message(options.file, {});
        std::holds_alternative<failure>(checked)) {
      return fail_with(std::get<failure>(checked));
    }
  }
  auto peer = connect_peer(meeting);
  if (const auto* status = std::get_if<int>(&peer)) return *status;
  auto& [node, session] = std::get<connected>(peer);
  auto made = make_message(options, session);
  if (const auto* f = std::get_if<failure>(&made)) return fail_with(*f);
  const auto size = std::get<outgoing_message>(made).size;
  const auto handle = node->send(session.session, std::move(std::get<outgoing_message>(made)));
  progress_bar bar(size);
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    if (timed_out(start, options.timeout)) {
      bar.finish();
      return fail_with({exit_status::network, "timed out"});
    }
    const auto e = node->wait_event(200ms);
    bar.update(node->bytes_sent(handle));
    if (!e) continue;
    const auto* ev = std::get_if<msrp::event>(&*e);
    const auto* done = ev ? std::get_if<events::send_finished>(ev) : nullptr;
    if (!done || done->message != handle) continue;
    bar.finish();
    if (done->outcome == send_outcome::delivered) {
      std::cout << "delivered " << size << " bytes" << std::endl;
      return exit_status::ok;
    }
    const auto why =
        done->status ? std::to_string(done->status) + ' ' + done->comment : done->comment;
    return fail_with({done->status == 0 ? exit_status::network : exit_status::not_delivered,
                      std::string("not delivered: ") + outcome_name(done->outcome) + ": " + why});
  }
}

int run_recv(const meeting_options& meeting, const recv_options& options) {
  if (const auto bad = make_folder(options.folder)) return fail_with(*bad);
  auto peer = connect_peer(meeting);
  if (const auto* status = std::get_if<int>(&peer)) return *status;
  auto& node = std::get<connected>(peer).node;
  inbox box(options.folder);
  int saved = 0;
  int status = exit_status::ok;
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    if (options.count > 0 && saved >= options.count) return status;
    if (timed_out(start, options.timeout)) return fail_with({exit_status::network, "timed out"});
    const auto e = node->wait_event(200ms);
    if (!e) continue;
    const auto* ev = std::get_if<msrp::event>(&*e);
    if (!ev) continue;
    if (const auto* closed = std::get_if<events::session_closed>(ev)) {
      // The peer left: done, if it sent what it had.
      for (const auto& lost : box.discard_unfinished()) {
        std::cerr << "msrp: message " << lost.message_id << ' ' << lost.detail << std::endl;
        status = exit_status::not_delivered;
      }
      if (saved > 0) return status;
      return fail_with({exit_status::network, "session ended: " + closed->reason});
    }
    const auto result = box.handle(*ev);
    if (!result) continue;
    refuse_unstored(*node, std::get<connected>(peer).session.session, *result);
    if (result->what == delivery::kind::saved) {
      ++saved;
      std::cout << result->file.string() << '\t' << result->size << '\t' << result->content_type
                << std::endl;
    } else {
      std::cerr << "msrp: message " << result->message_id << ' ' << result->detail << std::endl;
      status = exit_status::not_delivered;
    }
  }
}

int run_chat(const meeting_options& meeting, const chat_options& options) {
  if (const auto bad = make_folder(options.folder)) return fail_with(*bad);
  auto peer = connect_peer(meeting);
  if (const auto* status = std::get_if<int>(&peer)) return *status;
  auto& [node, session] = std::get<connected>(peer);
  inbox box(options.folder);

  // Standard input is read on its own thread; lines reach the event loop through `typed`.
  std::mutex mutex;
  std::deque<std::string> typed;
  bool input_closed = false;
  std::thread reader([&] {
    for (std::string line; std::getline(std::cin, line);) {
      std::lock_guard lock(mutex);
      typed.push_back(line);
    }
    std::lock_guard lock(mutex);
    input_closed = true;
  });
  reader.detach();

  std::cerr << "msrp: chat started; type a line to send it, /send FILE to send a file, /quit to "
               "leave"
            << std::endl;
  std::map<message_handle, std::string> pending;  // what each sent message was
  std::optional<std::pair<message_handle, progress_bar>> transfer;
  for (bool leaving = false; !leaving || !pending.empty();) {
    std::vector<std::string> lines;
    {
      std::lock_guard lock(mutex);
      lines.assign(typed.begin(), typed.end());
      typed.clear();
      if (input_closed) leaving = true;
    }
    for (const auto& line : lines) {
      if (line == "/quit") {
        leaving = true;
        break;
      }
      send_options what;
      if (line.starts_with("/send ")) {
        what.file = line.substr(6);
      } else {
        what.text = line;
      }
      auto made = make_message(what, session);
      if (const auto* f = std::get_if<failure>(&made)) {
        std::cerr << "msrp: " << f->message << std::endl;
        continue;
      }
      const auto size = std::get<outgoing_message>(made).size;
      const auto handle = node->send(session.session, std::move(std::get<outgoing_message>(made)));
      pending[handle] = what.file.empty() ? "message" : what.file;
      if (!what.file.empty()) transfer.emplace(handle, progress_bar(size));
    }
    const auto e = node->wait_event(100ms);
    if (transfer) transfer->second.update(node->bytes_sent(transfer->first));
    if (!e) continue;
    const auto* ev = std::get_if<msrp::event>(&*e);
    if (!ev) continue;
    if (const auto* closed = std::get_if<events::session_closed>(ev)) {
      box.discard_unfinished();
      std::cerr << "msrp: chat ended: " << closed->reason << std::endl;
      return exit_status::ok;
    }
    if (const auto* done = std::get_if<events::send_finished>(ev)) {
      if (!pending.contains(done->message)) continue;  // the empty SEND that bound the session
      if (transfer && transfer->first == done->message) {
        transfer->second.finish();
        transfer.reset();
      }
      std::cout << "  [" << clock_time() << "] " << pending[done->message] << ' '
                << outcome_name(done->outcome);
      if (done->outcome == send_outcome::failed)
        std::cout << " (" << done->status << ' ' << done->comment << ')';
      std::cout << std::endl;
      pending.erase(done->message);
      continue;
    }
    if (const auto* text = std::get_if<events::message_received>(ev)) {
      const auto type = text->head.content_type().value_or("");
      const bool plain = type.starts_with("text/plain");
      if (plain || type.starts_with("message/cpim")) {
        const auto from = text->head.from_path();
        std::cout << '[' << clock_time() << "] "
                  << (from && !from->empty() ? from->back().to_string() : std::string("peer"))
                  << ": " << (plain ? std::string_view(text->body) : cpim_payload(text->body))
                  << std::endl;
        continue;
      }
    }
    if (const auto result = box.handle(*ev)) {
      refuse_unstored(*node, session.session, *result);
      std::cout << '[' << clock_time() << "] "
                << (result->what == delivery::kind::saved ? "received file " + result->file.string()
                                                          : "file " + result->detail)
                << std::endl;
    }
  }
  return exit_status::ok;
}

}  // namespace msrp::cli
