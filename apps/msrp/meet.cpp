// How two msrp commands meet: quick mode (one listens and prints its URI, the other
// connects) or strict SDP offer/answer through files (RFC 4975 §8, RFC 6135, RFC 8122).
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <thread>

#include "cli.hpp"
#include "msrp/net/dns.hpp"
#include "msrp/sdp.hpp"
#include "msrp/srv.hpp"
#include "password_file.hpp"

namespace msrp::cli {
namespace {

using namespace std::chrono_literals;

/// Splits "[address:]port" (an IPv6 address in brackets).
std::optional<std::pair<std::string, std::uint16_t>> split_listen(std::string_view text) {
  std::string address = "127.0.0.1";
  const auto colon = text.rfind(':');
  if (colon != std::string_view::npos) {
    address = std::string(text.substr(0, colon));
    if (address.size() > 2 && address.front() == '[' && address.back() == ']') {
      address = address.substr(1, address.size() - 2);
    }
    text.remove_prefix(colon + 1);
  }
  unsigned port = 0;
  std::istringstream in{std::string(text)};
  if (!(in >> port) || !in.eof() || port > 65535) return std::nullopt;
  return std::pair{address, static_cast<std::uint16_t>(port)};
}

/// Reads a file, waiting for it to appear ("-": standard input to its end).
std::optional<std::string> read_text(const std::string& name) {
  std::stringstream text;
  if (name == "-") {
    text << std::cin.rdbuf();
    return text.str();
  }
  for (int waited = 0; !std::filesystem::exists(name); ++waited) {
    if (waited == 1200) return std::nullopt;  // two minutes
    std::this_thread::sleep_for(100ms);
  }
  std::ifstream in(name, std::ios::binary);
  if (!in) return std::nullopt;
  text << in.rdbuf();
  return text.str();
}

/// Writes a file whole, or not at all: a temporary file renamed into place ("-": stdout).
bool write_text(const std::string& name, const std::string& text) {
  if (name == "-") {
    std::cout << text << std::flush;
    return true;
  }
  const auto temporary = name + ".tmp";
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    if (!(out << text)) return false;
  }
  std::error_code error;
  std::filesystem::rename(temporary, name, error);
  return !error;
}

failure network_failure(std::string_view what, std::error_code error) {
  return {exit_status::network, std::string(what) + ": " + error.message()};
}

/// Our certificate's fingerprint for the SDP (RFC 8122: sha-256).
std::optional<fingerprint> own_fingerprint(const net::node::options& settings) {
  if (!settings.identity) return std::nullopt;
  auto digest = net::certificate_digest(settings.identity->certificate_pem, "sha-256");
  if (!digest) return std::nullopt;
  return fingerprint{"sha-256", std::move(*digest)};
}

/// Connects to the first hop of `path` and binds the session to it (the active side).
std::optional<failure> connect_and_bind(net::node& node, session_handle session, const uri& target,
                                        const std::optional<fingerprint>& peer) {
  auto connection = node.connect(target, peer);
  if (!connection)
    return network_failure("cannot connect to " + target.to_string(), connection.error());
  node.bind(session, *connection);
  node.send_empty(session);  // RFC 4975 §5.4: the active side sends at once
  return std::nullopt;
}

/// A listener and a session whose URI names it.
struct listening {
  session_handle session;
  std::string address;
  std::uint16_t port;
};

std::variant<listening, failure> listen_with_session(net::node& node,
                                                     const meeting_options& options, bool tls) {
  const auto text = options.listen.empty() ? std::string("127.0.0.1:0") : options.listen;
  const auto where = split_listen(text);
  if (!where) return failure{exit_status::bad_input, "bad --listen address: " + text};
  const auto port = node.listen(where->first, where->second, tls);
  if (!port) return network_failure("cannot listen on " + text, port.error());
  const auto session = node.open_session({.secure = tls,
                                          .host = where->first,
                                          .port = *port,
                                          .accept_types = options.accept_types,
                                          .max_size = options.max_size});
  return listening{session, where->first, *port};
}

std::variant<meeting, failure> quick_listen(net::node& node, const meeting_options& options,
                                            const net::node::options& settings) {
  const auto listened = listen_with_session(node, options, options.tls);
  if (const auto* f = std::get_if<failure>(&listened)) return *f;
  const auto session = std::get<listening>(listened).session;
  // The URI in quotes, for a shell: it holds a ';'.
  std::string announcement = node.local_uri(session).to_string();
  announcement.insert(announcement.begin(), '\'');
  announcement.push_back('\'');
  if (const auto mine = own_fingerprint(settings); mine && options.tls) {
    announcement += " --fingerprint '" + mine->hash_function + ' ' + mine->to_string() + "'";
  }
  std::cerr << "msrp: listening; connect with: --connect " << announcement << std::endl;
  if (!options.uri_file.empty() && !write_text(options.uri_file, announcement + '\n')) {
    return failure{exit_status::bad_input, "cannot write " + options.uri_file};
  }
  return meeting{session, {"*"}};
}

std::variant<meeting, failure> quick_connect(net::node& node, const meeting_options& options) {
  const auto target = uri::parse(options.connect);
  if (!target) return failure{exit_status::bad_input, "bad MSRP URI: " + options.connect};
  std::optional<fingerprint> peer;
  if (!options.fingerprint.empty()) {
    auto parsed = fingerprint::parse(options.fingerprint);
    if (!parsed) return failure{exit_status::bad_input, "bad fingerprint: " + options.fingerprint};
    peer = std::move(*parsed);
  }
  const auto session = node.open_session({.secure = target->is_secure(),
                                          .host = "client.invalid",
                                          .port = std::nullopt,
                                          .accept_types = options.accept_types,
                                          .max_size = options.max_size});
  node.set_remote_path(session, {*target});
  if (auto failed = connect_and_bind(node, session, *target, peer)) return *failed;
  return meeting{session, {"*"}};
}

/// The relay password: --password-file or $MSRP_PASSWORD (see read_relay_password).
std::variant<std::string, failure> relay_password(const meeting_options& options) {
  auto read = apps::read_relay_password(options.password_file);
  if (const auto* problem = std::get_if<apps::password_problem>(&read)) {
    return failure{exit_status::bad_input, problem->message};
  }
  return std::get<std::string>(std::move(read));
}

/// Waits for the end of an AUTH exchange on `connection`.
std::optional<failure> await_auth(net::node& node, connection_id connection,
                                  const std::string& relay) {
  for (;;) {
    const auto e = node.wait_event(std::chrono::seconds(60));
    if (!e) return failure{exit_status::network, "relay " + relay + " did not answer AUTH"};
    if (const auto* closed = std::get_if<net::connection_closed>(&*e)) {
      if (closed->connection == connection) {
        return network_failure("relay closed the connection", closed->error);
      }
      continue;
    }
    const auto* ev = std::get_if<msrp::event>(&*e);
    const auto* done = ev ? std::get_if<events::auth_finished>(ev) : nullptr;
    if (!done) continue;
    if (done->status == 200) return std::nullopt;
    return failure{
        done->status == 0 || done->status == 408 ? exit_status::network
                                                 : exit_status::not_delivered,
        "relay " + relay + " refused AUTH: " + std::to_string(done->status) + ' ' + done->comment};
  }
}

/// Connects to our first relay. RFC 4975 §5.4, RFC 4976 §9.2: its certificate must be valid
/// for the host name of its URI. RFC 4976 §8: an msrps URI with a domain name and no port
/// names the relays that DNS SRV gives for the domain (or its own addresses on port 2855);
/// when one does not answer (refused, timeout, TLS failure), the next is tried.
std::variant<connection_id, failure> connect_relay(net::node& node, const uri& relay,
                                                   const meeting_options& options) {
  if (!srv_name(relay)) {
    auto connection = node.connect(relay, std::nullopt);
    if (!connection) {
      return network_failure("cannot connect to relay " + relay.to_string(), connection.error());
    }
    return *connection;
  }
  std::optional<net::dns_server> server;
  if (!options.dns_server.empty()) {
    server = net::parse_dns_server(options.dns_server);
    if (!server) return failure{exit_status::bad_input, "bad --dns-server: " + options.dns_server};
  }
  std::random_device device;
  const auto found =
      net::find_relay(relay, server, [&] { return std::uint64_t{device()} << 32 | device(); });
  if (!found && found.error() == net::dns_errc::not_found) {
    return failure{exit_status::network, "cannot find relay " + relay.to_string() +
                                             ": no SRV, A or AAAA records for " + relay.host()};
  }
  if (!found) return network_failure("cannot find relay " + relay.to_string(), found.error());
  for (std::size_t i = 0;; ++i) {
    const auto& candidate = (*found)[i];
    const auto where = "relay " + candidate.host + " (" + candidate.address + " port " +
                       std::to_string(candidate.port) + ")";
    auto connection = node.connect(relay, std::nullopt, {{candidate.address, candidate.port}});
    if (connection) return *connection;
    if (i + 1 == found->size()) {
      return network_failure("cannot connect to " + where, connection.error());
    }
    std::cerr << "msrp: " << where << " did not answer: " << connection.error().message()
              << "; trying the next" << std::endl;
  }
}

/// Through relays (RFC 4976 §5.1): connects to the first, authenticates to each in turn (the
/// outer ones through the inner ones) and returns the session, bound to that connection.
std::variant<session_handle, failure> join_relays(net::node& node, const meeting_options& options) {
  std::vector<uri> relays;
  for (const auto& text : options.relay) {
    auto parsed = uri::parse(text);
    if (!parsed) return failure{exit_status::bad_input, "bad relay URI: " + text};
    relays.push_back(std::move(*parsed));
  }
  if (options.user.empty()) return failure{exit_status::bad_input, "--relay needs --user"};
  auto password = relay_password(options);
  if (const auto* f = std::get_if<failure>(&password)) return *f;
  const auto& first = relays.front();
  // Our URI is never connected to (the relay delivers over our connection), but RFC 4976 §8
  // wants an explicit port in paths exchanged in SDP: 9, the discard port, says so.
  const auto session = node.open_session({.secure = first.is_secure(),
                                          .host = "client.invalid",
                                          .port = 9,
                                          .accept_types = options.accept_types,
                                          .max_size = options.max_size});
  const auto connection = connect_relay(node, first, options);
  if (const auto* f = std::get_if<failure>(&connection)) return *f;
  node.bind(session, std::get<connection_id>(connection));
  for (const auto& relay : relays) {
    node.authenticate(session, relay, {options.user, std::get<std::string>(password)});
    if (auto failed = await_auth(node, std::get<connection_id>(connection), relay.to_string())) {
      return *failed;
    }
  }
  return session;
}

/// Quick mode through relays: send to the peer's path (`--connect`), or announce ours, the
/// Use-Path reversed and our URI (`--uri-file`).
std::variant<meeting, failure> via_relay(net::node& node, const meeting_options& options) {
  std::vector<uri> peer_path;
  if (!options.connect.empty()) {
    auto parsed = parse_path(options.connect);
    if (!parsed) return failure{exit_status::bad_input, "bad MSRP path: " + options.connect};
    peer_path = std::move(*parsed);
  }
  const auto joined = join_relays(node, options);
  if (const auto* f = std::get_if<failure>(&joined)) return *f;
  const auto session = std::get<session_handle>(joined);
  if (!peer_path.empty()) {
    node.set_remote_path(session, peer_path);
    node.send_empty(session);  // RFC 4975 §5.4, and the peer learns our path from it
    return meeting{session, {"*"}};
  }
  const auto announcement = "'" + format_path(node.local_path(session)) + "'";
  std::cerr << "msrp: ready via relay; the peer sends with: --connect " << announcement
            << std::endl;
  if (!options.uri_file.empty() && !write_text(options.uri_file, announcement + '\n')) {
    return failure{exit_status::bad_input, "cannot write " + options.uri_file};
  }
  return meeting{session, {"*"}};
}

/// Our media description behind relays (RFC 4976 §5.1): the path is the Use-Path reversed
/// and our URI; the c= and m= lines copy the first URI (RFC 4975 §8.1). We are always
/// connected to our relay, so we offer actpass and answer active: a peer without relays may
/// connect to our relay or be reached through it.
media_description relay_media(net::node& node, const meeting_options& options,
                              session_handle session) {
  media_description media;
  media.path = node.local_path(session);
  const auto& first = media.path.front();
  media.tls = first.is_secure();
  media.port = first.port().value_or(2855);
  media.address = first.host();
  media.ipv6 = first.kind() == host_kind::ipv6;
  media.accept_types = options.accept_types;
  media.max_size = options.max_size;
  media.setup = setup_role::active;
  return media;
}

/// Our media description: a listening URI, the types we take, our fingerprint.
media_description local_media(net::node& node, const meeting_options& options,
                              const net::node::options& settings, session_handle session,
                              std::uint16_t port, const std::string& address) {
  media_description media;
  media.tls = options.tls;
  media.port = port;
  media.address = address;
  media.ipv6 = address.find(':') != std::string::npos;
  media.path = {node.local_uri(session)};
  media.accept_types = options.accept_types;
  media.max_size = options.max_size;
  if (const auto mine = own_fingerprint(settings); mine && options.tls) {
    media.fingerprints.push_back(*mine);
  }
  return media;
}

std::optional<fingerprint> first_fingerprint(const media_description& media) {
  if (media.fingerprints.empty()) return std::nullopt;
  return media.fingerprints.front();
}

/// Offerer: listens, offers `a=setup:actpass` (RFC 6135), then connects if the answer
/// makes it the active side.
std::variant<meeting, failure> offer(net::node& node, const meeting_options& options,
                                     const net::node::options& settings) {
  const bool relayed = !options.relay.empty();
  session_handle session = 0;
  session_description sdp;
  if (relayed) {
    const auto joined = join_relays(node, options);
    if (const auto* f = std::get_if<failure>(&joined)) return *f;
    session = std::get<session_handle>(joined);
    sdp.media = relay_media(node, options, session);
  } else {
    const auto listened = listen_with_session(node, options, options.tls);
    if (const auto* f = std::get_if<failure>(&listened)) return *f;
    const auto& [listener, address, port] = std::get<listening>(listened);
    session = listener;
    sdp.media = local_media(node, options, settings, session, port, address);
  }
  sdp.origin.address = sdp.media.address;
  sdp.origin.ipv6 = sdp.media.ipv6;
  sdp.media.setup = setup_role::actpass;
  if (!write_text(options.write_offer, format_sdp(sdp))) {
    return failure{exit_status::bad_input, "cannot write " + options.write_offer};
  }
  const auto text = read_text(options.read_answer);
  if (!text) return failure{exit_status::bad_input, "no answer in " + options.read_answer};
  const auto answer = parse_sdp(*text);
  if (!answer) {
    return failure{exit_status::bad_input, "malformed SDP answer: " + answer.error().message()};
  }
  node.set_remote_path(session, answer->media.path);
  if (relayed) {
    node.send_empty(session);  // binds a passive answerer's session (RFC 4975 §5.4)
    return meeting{session, answer->media.accept_types};
  }
  if (const auto peer = first_fingerprint(answer->media)) node.expect_client(*peer);
  if (is_active(sdp.media, answer->media, true)) {
    if (auto failed = connect_and_bind(node, session, answer->media.path.front(),
                                       first_fingerprint(answer->media))) {
      return *failed;
    }
  }
  return meeting{session, answer->media.accept_types};
}

/// Answerer: reads the offer, answers, and connects when it is the active side.
std::variant<meeting, failure> answer(net::node& node, const meeting_options& options,
                                      const net::node::options& settings) {
  const auto text = read_text(options.read_offer);
  if (!text) return failure{exit_status::bad_input, "no offer in " + options.read_offer};
  const auto offered = parse_sdp(*text);
  if (!offered) {
    return failure{exit_status::bad_input, "malformed SDP offer: " + offered.error().message()};
  }
  const bool relayed = !options.relay.empty();
  session_handle session = 0;
  media_description local;
  if (relayed) {
    const auto joined = join_relays(node, options);
    if (const auto* f = std::get_if<failure>(&joined)) return *f;
    session = std::get<session_handle>(joined);
    local = relay_media(node, options, session);
  } else {
    meeting_options mine = options;
    mine.tls = offered->media.tls;
    // Listen in case the answer makes us passive (an offer without a=setup, RFC 4975 §5.4).
    const auto listened = listen_with_session(node, options, mine.tls);
    if (const auto* f = std::get_if<failure>(&listened)) return *f;
    const auto& [listener, address, port] = std::get<listening>(listened);
    session = listener;
    local = local_media(node, mine, settings, session, port, address);
  }
  const auto media = make_answer(offered->media, local);
  if (!media) return failure{exit_status::bad_input, "cannot answer: " + media.error().message()};
  session_description sdp;
  sdp.origin.address = local.address;
  sdp.origin.ipv6 = local.ipv6;
  sdp.media = *media;
  node.set_remote_path(session, offered->media.path);
  if (const auto peer = first_fingerprint(offered->media)) node.expect_client(*peer);
  if (!write_text(options.write_answer, format_sdp(sdp))) {
    return failure{exit_status::bad_input, "cannot write " + options.write_answer};
  }
  if (relayed) return meeting{session, offered->media.accept_types};
  if (is_active(*media, offered->media, false)) {
    if (auto failed = connect_and_bind(node, session, offered->media.path.front(),
                                       first_fingerprint(offered->media))) {
      return *failed;
    }
  }
  return meeting{session, offered->media.accept_types};
}

}  // namespace

std::variant<net::node::options, failure> node_options(const meeting_options& options) {
  net::node::options settings;
  settings.ca_file = options.ca_file;
  if (options.chunk_size > 0) settings.engine.chunk_ceiling = options.chunk_size;
  settings.engine.unconfirmed_window = options.pace;
  settings.engine.progress_reports = options.progress_reports;
  if (!options.cert_file.empty() || !options.key_file.empty()) {
    auto identity = net::load_or_create(options.cert_file, options.key_file, "msrp");
    if (!identity) {
      return failure{exit_status::bad_input, "certificate: " + identity.error().message()};
    }
    settings.identity = std::move(*identity);
  } else {
    // RFC 8122: a self-signed certificate, made for this run, is checked by its fingerprint.
    auto identity = net::make_self_signed("msrp.invalid");
    if (!identity) return failure{exit_status::network, identity.error().message()};
    settings.identity = std::move(*identity);
  }
  return settings;
}

std::variant<meeting, failure> meet(net::node& node, const meeting_options& options,
                                    const net::node::options& settings) {
  if (!options.write_offer.empty()) return offer(node, options, settings);
  if (!options.read_offer.empty()) return answer(node, options, settings);
  if (!options.relay.empty()) return via_relay(node, options);
  if (!options.connect.empty()) return quick_connect(node, options);
  return quick_listen(node, options, settings);
}

}  // namespace msrp::cli
