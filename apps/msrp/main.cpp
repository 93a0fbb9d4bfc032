// msrp: chat and file transfer over MSRP from a terminal (RFC 4975).
//
//   msrp recv --listen 127.0.0.1:0 --dir out       # prints its URI on stderr
//   msrp send --connect 'msrp://127.0.0.1:PORT/ID;tcp' --file photo.jpg
//   msrp chat --listen 127.0.0.1:7777   /   msrp chat --connect URI
//
// Exit status: 0 delivered / done, 1 not delivered (refused, failed, aborted), 2 bad input
// (arguments, file, URI, SDP), 3 network (unreachable, TLS, connection lost).
#include <CLI/CLI.hpp>

#include "commands.hpp"

namespace {

void add_meeting_options(CLI::App& command, msrp::cli::meeting_options& m) {
  command.add_option("--listen", m.listen,
                     "Listen on [ADDRESS:]PORT and print the URI to give the peer");
  command.add_option("--connect", m.connect, "Connect to the peer's MSRP URI");
  command.add_option("--fingerprint", m.fingerprint,
                     "The peer's certificate fingerprint (msrps), e.g. 'sha-256 AB:CD:...'");
  command.add_option("--uri-file", m.uri_file, "Write the URI to this file when listening");
  command.add_option("--write-offer", m.write_offer, "Write an SDP offer to FILE (- for stdout)");
  command.add_option("--read-answer", m.read_answer, "Read the SDP answer from FILE (- for stdin)");
  command.add_option("--read-offer", m.read_offer, "Read an SDP offer from FILE (- for stdin)");
  command.add_option("--write-answer", m.write_answer,
                     "Write the SDP answer to FILE (- for stdout)");
  command.add_flag("--tls", m.tls, "Listen with TLS (msrps)");
  command.add_option("--cert", m.cert_file, "Certificate PEM file (created if missing)");
  command.add_option("--key", m.key_file, "Private key PEM file (created if missing)");
  command.add_option("--ca-file", m.ca_file,
                     "CA certificates to verify a peer without fingerprint");
  command.add_option("--accept-types", m.accept_types, "Media types to accept")->delimiter(',');
  command.add_option("--max-size", m.max_size, "Refuse messages larger than this (413)");
  command.add_option("--chunk-size", m.chunk_size, "Largest chunk to send, in bytes");
  command.add_option("--pace", m.pace,
                     "Keep at most BYTES sent but not yet confirmed by the receiver's success "
                     "REPORTs (relays without back-pressure, such as Kamailio)");
  command
      .add_option("--progress-reports", m.progress_reports,
                  "Confirm received bytes with a success REPORT every BYTES (0: at the end)")
      ->capture_default_str();
  command.add_option("--relay", m.relay,
                     "Go through this MSRP relay (RFC 4976), e.g. 'msrps://host:2855;tcp'; "
                     "repeat for more, innermost first");
  command
      .add_option("--dns-server", m.dns_server,
                  "DNS server ADDRESS[:PORT] (IPv4) that finds a relay given as a domain without "
                  "port, e.g. 'msrps://example.com;tcp' (SRV _msrps._tcp.example.com); default: "
                  "the system's")
      ->envname("MSRP_DNS_SERVER");
  command.add_option("--user", m.user, "User name at the relay");
  command.add_option("--password-file", m.password_file,
                     "File (mode 0600) whose first line is the relay password "
                     "(default: $MSRP_PASSWORD)");
  command.callback([&command, &m] {
    const int modes = !m.connect.empty() + !m.listen.empty();
    if (!m.write_offer.empty() != !m.read_answer.empty() ||
        !m.read_offer.empty() != !m.write_answer.empty()) {
      throw CLI::ValidationError("--write-offer needs --read-answer, --read-offer --write-answer");
    }
    if (!m.write_offer.empty() && !m.read_offer.empty()) {
      throw CLI::ValidationError("either offer or answer, not both");
    }
    if (!m.connect.empty() && !m.listen.empty()) {
      throw CLI::ValidationError("--listen and --connect exclude each other");
    }
    if (!m.relay.empty() && !m.listen.empty()) {
      throw CLI::ValidationError("--relay and --listen exclude each other");
    }
    if (modes == 0 && m.write_offer.empty() && m.read_offer.empty() && m.relay.empty()) {
      throw CLI::ValidationError(command.get_name() + ": give --listen, --connect or SDP files");
    }
  });
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Chat and file transfer over MSRP (RFC 4975)."};
  app.require_subcommand(1);

  msrp::cli::meeting_options send_meeting, recv_meeting, chat_meeting;
  msrp::cli::send_options send;
  msrp::cli::recv_options recv;
  msrp::cli::chat_options chat;

  auto* send_command = app.add_subcommand("send", "Send a text or a file; exit 0 once delivered");
  add_meeting_options(*send_command, send_meeting);
  auto* what = send_command->add_option_group("what");
  what->add_option("--text", send.text, "Text to send");
  what->add_option("--file", send.file, "File to send");
  what->require_option(1);
  send_command->add_option("--type", send.content_type, "Content-Type of what is sent");
  send_command->add_flag("--no-report", send.no_report,
                         "Ask for no success report: delivered when the peer answered 200");
  send_command->add_option("--timeout", send.timeout, "Give up after SECONDS");

  auto* recv_command = app.add_subcommand("recv", "Receive messages into files in a folder");
  add_meeting_options(*recv_command, recv_meeting);
  recv_command->add_option("--dir", recv.folder, "Folder for received files")
      ->capture_default_str();
  recv_command->add_option("--count", recv.count, "Stop after N messages");
  recv_command->add_option("--timeout", recv.timeout, "Give up after SECONDS");

  auto* chat_command = app.add_subcommand("chat", "Chat interactively; /send FILE, /quit");
  add_meeting_options(*chat_command, chat_meeting);
  chat_command->add_option("--dir", chat.folder, "Folder for received files")
      ->capture_default_str();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help exits 0; any usage error is bad input (2), whatever CLI11's own code is.
    return app.exit(e) == 0 ? 0 : msrp::cli::exit_status::bad_input;
  }
  if (send_command->parsed()) return msrp::cli::run_send(send_meeting, send);
  if (recv_command->parsed()) return msrp::cli::run_recv(recv_meeting, recv);
  return msrp::cli::run_chat(chat_meeting, chat);
}
