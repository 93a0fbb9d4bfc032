// msrp-dump: prints the MSRP frames in a byte stream, as text or as JSON lines.
//
//   msrp-dump [--json] [FILE]     (FILE defaults to standard input; "-" means it too)
//
// Exit status: 0 when every byte formed complete frames, 1 on malformed or truncated input
// (with one line on stderr naming the byte offset and the reason), 2 on bad usage or an
// unreadable file.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

#include "msrp/parser.hpp"

namespace {

constexpr std::size_t preview_size = 64;  // body bytes kept for the preview
constexpr std::size_t hex_preview_size = 16;

/// A JSON string literal for `text` (bytes of 0x80 and above pass through unchanged).
std::string json_string(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u == 0x7F) {
      char escaped[7];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", u);
      out += escaped;
    } else {
      out += c;
    }
  }
  return out + '"';
}

bool is_printable_text(std::string_view bytes) {
  for (const char c : bytes) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 && c != '\r' && c != '\n' && c != '\t') return false;
    if (u == 0x7F) return false;
  }
  return true;
}

std::string hex(std::string_view bytes) {
  std::string out;
  for (const char c : bytes) {
    char pair[4];
    std::snprintf(pair, sizeof pair, "%s%02x", out.empty() ? "" : " ",
                  static_cast<unsigned char>(c));
    out += pair;
  }
  return out;
}

/// Collects one frame's events and prints the frame when it ends.
class printer {
 public:
  explicit printer(bool json) : json_(json) {}

  void head(const msrp::message& m, std::uint64_t offset) {
    head_ = m;
    offset_ = offset;
    body_size_ = 0;
    preview_.clear();
  }

  void body(std::string_view piece) {
    body_size_ += piece.size();
    preview_.append(piece.substr(0, preview_size - std::min(preview_size, preview_.size())));
  }

  void end(msrp::end_flag flag) {
    ++frames_;
    json_ ? print_json(flag) : print_text(flag);
  }

  std::size_t frames() const { return frames_; }

 private:
  void print_text(msrp::end_flag flag) {
    std::cout << "frame " << frames_ << " at byte " << offset_ << ": MSRP " << head_.transaction_id
              << ' ';
    if (head_.is_request()) {
      std::cout << head_.method;
    } else {
      std::cout << head_.status_code << (head_.comment.empty() ? "" : " ") << head_.comment;
    }
    std::cout << '\n';
    for (const auto& field : head_.headers)
      std::cout << "  " << field.name << ": " << field.value << '\n';
    if (head_.content_type()) {
      std::cout << "  body: " << body_size_ << " bytes";
      if (body_size_ > 0) {
        std::cout << (is_printable_text(preview_)
                          ? ", text " + json_string(preview_)
                          : ", hex " + hex(std::string_view(preview_).substr(0, hex_preview_size)));
        if (body_size_ > preview_.size() || !is_printable_text(preview_)) std::cout << " ...";
      }
      std::cout << '\n';
    } else {
      std::cout << "  no body\n";
    }
    const char* meaning = flag == msrp::end_flag::complete    ? "complete"
                          : flag == msrp::end_flag::continued ? "continued"
                                                              : "aborted";
    std::cout << "  end: " << static_cast<char>(flag) << " (" << meaning << ")\n";
  }

  void print_json(msrp::end_flag flag) {
    std::cout << "{\"offset\":" << offset_
              << ",\"transaction_id\":" << json_string(head_.transaction_id);
    if (head_.is_request()) {
      std::cout << ",\"method\":" << json_string(head_.method);
    } else {
      std::cout << ",\"status\":" << head_.status_code
                << ",\"comment\":" << json_string(head_.comment);
    }
    std::cout << ",\"headers\":[";
    for (std::size_t i = 0; i < head_.headers.size(); ++i) {
      std::cout << (i ? "," : "") << '[' << json_string(head_.headers[i].name) << ','
                << json_string(head_.headers[i].value) << ']';
    }
    std::cout << "],\"has_body\":" << (head_.content_type() ? "true" : "false")
              << ",\"body_length\":" << body_size_;
    if (is_printable_text(preview_)) {
      std::cout << ",\"body_preview\":" << json_string(preview_);
    } else {
      std::cout << ",\"body_preview_hex\":" << json_string(hex(preview_));
    }
    std::cout << ",\"flag\":\"" << static_cast<char>(flag) << "\"}\n";
  }

  bool json_;
  msrp::message head_;
  std::uint64_t offset_ = 0;
  std::uint64_t body_size_ = 0;
  std::string preview_;
  std::size_t frames_ = 0;
};

/// Parses all of `in`; returns the exit status.
int dump(std::istream& in, const std::string& name, bool json) {
  msrp::parser parser;
  printer out(json);
  std::string buffer;
  std::uint64_t frame_start = 0;
  char chunk[64 * 1024];
  bool at_eof = false;
  while (!at_eof) {
    in.read(chunk, sizeof chunk);
    at_eof = in.gcount() == 0;
    buffer.append(chunk, static_cast<std::size_t>(in.gcount()));
    for (;;) {
      const auto offset = parser.offset();
      const auto e = parser.parse(buffer);
      using kind = msrp::parser::event_kind;
      if (e.kind == kind::error) {
        std::cerr << "msrp-dump: " << name << ": byte " << parser.error_offset() << ": "
                  << e.error.message() << '\n';
        return 1;
      }
      if (e.kind == kind::head) out.head(parser.head(), frame_start);
      if (e.kind == kind::body) out.body(e.body);
      if (e.kind == kind::end) {
        out.end(e.flag);
        frame_start = offset + e.consumed;
      }
      buffer.erase(0, e.consumed);
      if (e.kind == kind::need_more && e.consumed == 0) break;
    }
  }
  if (in.bad()) {
    std::cerr << "msrp-dump: " << name << ": read error\n";
    return 2;
  }
  if (parser.offset() != frame_start || !buffer.empty()) {
    std::cerr << "msrp-dump: " << name << ": byte " << frame_start
              << ": input ends inside a frame\n";
    return 1;
  }
  if (!json) std::cout << out.frames() << " frames, " << frame_start << " bytes\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Prints the MSRP frames in a file or on standard input."};
  std::string file = "-";
  bool json = false;
  app.add_option("file", file, "Raw MSRP bytes; - for standard input")->capture_default_str();
  app.add_flag("--json", json, "One JSON object per frame, one per line");
  CLI11_PARSE(app, argc, argv);

  if (file == "-") return dump(std::cin, "stdin", json);
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    std::cerr << "msrp-dump: " << file << ": cannot open\n";
    return 2;
  }
  return dump(in, file, json);
}
