// tests/parser_driver.hpp: feeds a parser the way a network reader does, and logs its events.
//
// The driver owns a read buffer, appends each piece of input, calls parse() until it asks for
// more, and drops the consumed bytes: the caller-owned-buffer contract of parser.hpp. Events
// become one text line each, with adjacent body pieces joined, so that the log of a run is the
// same whatever the input's split.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "msrp/parser.hpp"

namespace msrp::test {

/// Printable form of bytes: printable ASCII as is, everything else as \r, \n, \t or \xHH.
inline std::string escape(std::string_view bytes) {
  std::string out;
  for (const char c : bytes) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\r') {
      out += "\\r";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\\') {
      out += "\\\\";
    } else if (u < 0x20 || u >= 0x7F) {
      char hex[5];
      std::snprintf(hex, sizeof hex, "\\x%02X", u);
      out += hex;
    } else {
      out += c;
    }
  }
  return out;
}

/// Everything one frame carried: its head, its whole body and its flag.
struct parsed_frame {
  message head;
  std::string body;
  end_flag flag = end_flag::complete;
};

/// The value of header `name` in `f`, or "<absent>".
inline std::string header(const parsed_frame& f, std::string_view name) {
  return std::string(f.head.header(name).value_or("<absent>"));
}

/// A request head with To-Path, From-Path and `extra` headers, in that order.
inline message request(std::string tid, std::string method, std::string_view to,
                       std::string_view from, std::vector<header_field> extra = {}) {
  message m;
  m.transaction_id = std::move(tid);
  m.method = std::move(method);
  m.headers.push_back({"To-Path", std::string(to)});
  m.headers.push_back({"From-Path", std::string(from)});
  for (auto& field : extra)
    m.headers.push_back(std::move(field));
  return m;
}

/// Parses what a peer writes into whole frames, across as many reads as it takes; a malformed
/// frame is a test failure.
class wire_reader {
 public:
  void feed(std::string_view bytes) {
    buffer_.append(bytes);
    while (!failed_) {
      const auto e = parser_.parse(buffer_);
      switch (e.kind) {
        case parser::event_kind::need_more:
          break;
        case parser::event_kind::head:
          current_ = parsed_frame{parser_.head(), {}, end_flag::complete};
          break;
        case parser::event_kind::body:
          current_->body.append(e.body);
          break;
        case parser::event_kind::end:
          current_->flag = e.flag;
          done_.push_back(std::move(*current_));
          current_.reset();
          break;
        case parser::event_kind::error:
          ADD_FAILURE() << "malformed frame: " << e.error.message() << " in "
                        << escape(buffer_.substr(0, 400));
          failed_ = true;
          break;
      }
      buffer_.erase(0, e.consumed);
      if (e.kind == parser::event_kind::need_more && e.consumed == 0) break;
    }
  }
  /// The frames completed since the last call.
  std::vector<parsed_frame> take() { return std::exchange(done_, {}); }
  /// Frames completed and not yet taken.
  std::size_t pending() const { return done_.size(); }
  /// True while a frame has started and not ended.
  bool in_frame() const { return current_.has_value(); }
  /// Body bytes of the frame in progress, if any.
  std::size_t partial_body() const { return current_ ? current_->body.size() : 0; }

 private:
  parser parser_;
  std::string buffer_;
  std::vector<parsed_frame> done_;
  std::optional<parsed_frame> current_;
  bool failed_ = false;
};

class parser_driver {
 public:
  explicit parser_driver(parser::limits limits = {}) : parser_(limits) {}

  /// Appends `piece` to the buffer and parses until the parser needs more or fails.
  void feed(std::string_view piece) {
    buffer_.append(piece);
    while (!failed_) {
      const auto e = parser_.parse(buffer_);
      on_event(e);
      buffer_.erase(0, e.consumed);
      if (e.kind == parser::event_kind::need_more && e.consumed == 0) break;
    }
  }

  /// Feeds `input` in pieces that end at each of `cuts` (ascending offsets), then the rest.
  void feed_split(std::string_view input, const std::vector<std::size_t>& cuts) {
    std::size_t from = 0;
    for (const auto cut : cuts) {
      feed(input.substr(from, cut - from));
      from = cut;
    }
    feed(input.substr(from));
  }

  /// The event log: `head <start line>`, `header <name>: <value>`, `body <escaped bytes>`,
  /// `end <flag>`, `error <message> <status>`; one line each, `\n`-terminated.
  std::string log() const {
    return pending_body_.empty() ? log_ : log_ + "body " + escape(pending_body_) + '\n';
  }
  /// The frames completed so far.
  const std::vector<parsed_frame>& frames() const { return frames_; }
  /// Bytes still buffered, not consumed by the parser.
  std::size_t buffered() const { return buffer_.size(); }
  const parser& state() const { return parser_; }

 private:
  void on_event(const parser::event& e) {
    // Bodies are logged whole, however the parser split them, so logs compare across splits.
    if (e.kind == parser::event_kind::head || e.kind == parser::event_kind::end) {
      flush_body();
    }
    switch (e.kind) {
      case parser::event_kind::need_more:
        break;
      case parser::event_kind::head: {
        const auto& m = parser_.head();
        log_ += "head MSRP " + m.transaction_id + ' ';
        log_ += m.is_request() ? m.method : std::to_string(m.status_code);
        if (!m.is_request() && !m.comment.empty()) log_ += ' ' + m.comment;
        log_ += '\n';
        for (const auto& field : m.headers) {
          log_ += "header " + field.name + ": " + escape(field.value) + '\n';
        }
        frames_.push_back({m, {}, end_flag::complete});
        break;
      }
      case parser::event_kind::body:
        pending_body_.append(e.body);
        frames_.back().body.append(e.body);
        break;
      case parser::event_kind::end:
        log_ += "end ";
        log_ += static_cast<char>(e.flag);
        log_ += '\n';
        frames_.back().flag = e.flag;
        break;
      case parser::event_kind::error:
        // The frame failed: what its body delivered so far is dropped, as an application
        // drops a failed chunk, so the log does not depend on where the input was split.
        pending_body_.clear();
        log_ += "error " + e.error.message() + ' ' + std::to_string(to_status(e.error)) + '\n';
        failed_ = true;
        break;
    }
  }

  void flush_body() {
    if (pending_body_.empty()) return;
    log_ += "body " + escape(pending_body_) + '\n';
    pending_body_.clear();
  }

  parser parser_;
  std::string buffer_;
  std::string log_;
  std::string pending_body_;
  std::vector<parsed_frame> frames_;
  bool failed_ = false;
};

}  // namespace msrp::test
