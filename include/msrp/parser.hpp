// msrp/parser.hpp: the incremental MSRP wire parser (RFC 4975 §5.1, §7.1, §9).
//
// The caller owns the read buffer. Each call to `parse()` looks at the bytes the caller has
// not yet consumed, returns one event and says how many of those bytes it consumed. The
// caller drops the consumed bytes (after handling the event: a body event points into them)
// and calls again with whatever is left, plus anything newly read.
//
//   msrp::parser p;
//   for (;;) {
//     auto e = p.parse(buffer);                    // buffer: the unconsumed bytes
//     handle(e);                                   // e.body views into buffer
//     buffer.remove_prefix(e.consumed);
//     if (e.kind == msrp::parser::event_kind::need_more) read_more_into(buffer);
//     if (e.kind == msrp::parser::event_kind::error) break;
//   }
//
// Theory of operation. Each frame goes through these states, named by what comes next:
//
//   start_line --> headers --+-- blank line --> body --+-- end-line --> (start_line)
//                            +-- end-line -------------+
//
// * The start line and header fields are copied into `head()` line by line as they arrive;
//   the `head` event is returned once the head is complete: at the blank line that starts a
//   body, or at the end-line of a message without one. The head is bounded by
//   `limits::max_head_size` and `limits::max_header_count`.
// * Body bytes are never buffered: each `body` event hands out the bytes that are certainly
//   body. Only a tail that could be the start of this frame's end-line
//   (CRLF "-------" transaction-id flag CRLF) is left unconsumed until more input decides it.
//   Any other text, `\r\n-------` followed by another id included, is body.
// * The `end` event carries the continuation flag: `$`, `+` or `#`.
// * `need_more` consumes what it could and asks for more bytes. It is not an error.
// * The parser checks the framing and what framing depends on: the start line, header syntax,
//   that a request has one To-Path and one From-Path (RFC 4975 §7.1), that Message-ID,
//   Byte-Range and Content-Type occur at most once, and the Byte-Range syntax. Other header
//   values, the URIs in the paths among them, are checked by `message`'s typed accessors
//   when the session or relay reads them: such a request is well framed and is answered 400
//   without losing the connection.
// * An error is final: the parser returns the same error on every later call, since the
//   framing of the byte stream is lost. `to_status(error)` gives the status code to answer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <system_error>

#include "msrp/message.hpp"

namespace msrp {

class parser {
 public:
  /// Limits on what a peer may make the parser hold or accept.
  struct limits {
    /// The start line and header fields together, in bytes (header_block_too_large).
    std::size_t max_head_size = 16 * 1024;
    /// Number of header fields (too_many_headers).
    std::size_t max_header_count = 64;
    /// Body bytes in one SEND chunk (body_too_large, answered with 413).
    std::uint64_t max_chunk_size = UINT64_MAX;
    /// Body bytes of any other request: RFC 4975 §7.1 caps them at 10240 octets.
    std::uint64_t max_other_body_size = 10240;
  };

  enum class event_kind {
    need_more,  ///< No event yet: call again with more bytes.
    head,       ///< `head()` holds a complete start line and header fields.
    body,       ///< `event::body` is the next piece of the body.
    end,        ///< The frame ended; `event::flag` is its continuation flag.
    error,      ///< The input is malformed; `event::error` says why. Final.
  };

  struct event {
    event_kind kind = event_kind::need_more;
    std::size_t consumed = 0;            ///< Bytes of the input used by this call.
    std::string_view body{};             ///< For `body`: a view into the input.
    end_flag flag = end_flag::complete;  ///< For `end`.
    std::error_code error{};             ///< For `error`.
  };

  parser() = default;
  explicit parser(const limits& settings) : limits_(settings) {}

  /// Parses the next event from `input`, the bytes not consumed by earlier calls followed
  /// by any new ones. Never reads past `input`, never keeps a pointer into it.
  event parse(std::string_view input);

  /// The current frame's start line and headers: complete after the `head` event, and
  /// valid until the next frame starts. After an error it holds what was parsed so far
  /// (often the transaction id, which a 400 response needs).
  const message& head() const noexcept { return head_; }
  /// True once the current frame's head announced a body (a blank line after headers).
  bool has_body() const noexcept { return has_body_; }
  /// Body bytes of the current frame handed out so far.
  std::uint64_t body_size() const noexcept { return body_size_; }
  /// Bytes consumed since the parser was created: the stream offset of the next input byte.
  std::uint64_t offset() const noexcept { return offset_; }
  /// The sticky error, if any, and the stream offset at which it was found.
  std::error_code error() const noexcept { return error_; }
  std::uint64_t error_offset() const noexcept { return error_offset_; }

 private:
  enum class state { start_line, headers, body, end_line, failed };

  event parse_start_line(std::string_view input);
  event parse_headers(std::string_view input);
  event parse_body(std::string_view input);
  event parse_end_line(std::string_view input);
  event head_complete(std::size_t consumed);
  event fail(std::error_code code, std::size_t at);
  event need_more(std::size_t consumed, std::size_t scanned);
  std::size_t find_line_end(std::string_view input, std::size_t from);
  /// Records a header the parser acts on; true if it was seen before in this head.
  bool note_single_header(std::string_view name);

  /// The headers `note_single_header` tracks, as bits of `seen_`.
  enum class single : unsigned { to_path, from_path, message_id, byte_range, content_type };
  static constexpr unsigned bit(single s) { return 1u << static_cast<unsigned>(s); }

  limits limits_;
  state state_ = state::start_line;
  message head_;
  std::size_t header_count_ = 0;  // fields parsed into head_.headers (reused capacity)
  unsigned seen_ = 0;             // bits of the single headers seen in this head
  std::size_t head_size_ = 0;     // bytes of this frame's head consumed so far
  std::size_t scanned_ = 0;       // bytes of the unconsumed input known to hold no LF
  bool has_body_ = false;
  std::uint64_t body_limit_ = 0;  // body bytes this frame may carry
  std::uint64_t body_size_ = 0;
  std::uint64_t offset_ = 0;
  std::error_code error_;
  std::uint64_t error_offset_ = 0;
};

}  // namespace msrp
