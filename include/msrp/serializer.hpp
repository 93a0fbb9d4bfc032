// msrp/serializer.hpp: messages and chunks to bytes (RFC 4975 §5.1, §7.1, §7.1.1).
//
// The serializer pairs with the parser. It writes the head (start line, header fields and,
// for a message with a body, the blank line) and the end-line to small strings and leaves the
// body where it is, so head, body and end-line go out in one scatter-gather write. Whether a
// request has a body is decided by its Content-Type header, as §7.1 requires: a request with
// a body MUST carry Content-Type and one without MUST NOT. Responses never have a body.
//
// Transaction ids come from a random source the caller injects, so tests control them.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "msrp/message.hpp"

namespace msrp {

/// A source of uniformly random 64-bit values: a CSPRNG in production, a seeded generator in
/// tests.
using random_source = std::function<std::uint64_t()>;

/// The head of `m`: `MSRP id METHOD` or `MSRP id code [comment]`, each header field as
/// `name: value`, all lines ended by CRLF, then one more CRLF if `m` is a request with a
/// Content-Type.
std::string serialize_head(const message& m);
/// Appends the head of `m` to `out`, which keeps its storage (no string of its own).
void serialize_head(const message& m, std::string& out);

/// The end-line of `m` with `flag`: `-------id$` CRLF, preceded by the CRLF that ends the
/// body when `m` is a request with a Content-Type (§7.1).
std::string serialize_end(const message& m, end_flag flag);
/// Appends the end-line of `m` with `flag` to `out`.
void serialize_end(const message& m, end_flag flag, std::string& out);

/// One frame ready for a scatter-gather write: head, body (a view the caller keeps alive),
/// end-line.
struct frame {
  std::string head;
  std::string_view body;
  std::string end;

  /// The three buffers in wire order.
  std::array<std::string_view, 3> buffers() const { return {head, body, end}; }
  /// The whole frame in one string (for tests and small messages).
  std::string to_string() const;
};

/// Serializes `m` with `body` and `flag`. A response, or a request without Content-Type, has
/// no body; `body` must then be empty.
frame serialize(const message& m, std::string_view body = {}, end_flag flag = end_flag::complete);

/// A new random `ident` (RFC 4975 §9): 16 characters of [0-9A-Za-z], about 95 bits from
/// `random`. Used for Message-IDs and session-ids (which need at least 64 and 80 bits, §7.1.1
/// and §14.1) as well as transaction ids.
std::string make_ident(const random_source& random);

/// A new transaction id (RFC 4975 §7.1): `make_ident`, drawn again until `body` does not
/// contain `-------` followed by the id, so the body cannot end the frame early.
std::string make_transaction_id(const random_source& random, std::string_view body = {});

/// True if `body` contains `-------` followed by `id`: with that id the body could hold an
/// end-line (§7.1), so a sender must pick another id or interrupt the chunk there.
bool contains_end_line(std::string_view body, std::string_view id);

/// One chunk planned by the `chunker`.
struct chunk {
  std::uint64_t offset = 0;  ///< 0-based position of the chunk's first byte in the message.
  std::uint64_t length = 0;  ///< Most body bytes the chunk may carry.
  byte_range range;          ///< The Byte-Range header value for the chunk.
};

/// Splits a message of known size into SEND chunks (RFC 4975 §7.1.1).
///
/// Each chunk carries at most `max_chunk` bytes. A chunk of more than 2048 bytes declares
/// its range-end as "*", since §7.1.1 requires such chunks to be interruptible; a smaller one
/// declares its exact end. The sender may end any chunk early (`finish(sent)` with fewer
/// bytes than planned): the chunk then ends with `+` and the next one starts at the first
/// unsent byte. An empty message is one chunk with Byte-Range `1-0/0`.
class chunker {
 public:
  /// `total` is the message size; `max_chunk` (at least 1) the ceiling for one chunk's body.
  chunker(std::uint64_t total, std::uint64_t max_chunk);

  /// True once the last chunk has been finished or the message aborted.
  bool is_done() const noexcept { return done_; }
  /// 0-based position of the first byte not yet sent.
  std::uint64_t position() const noexcept { return position_; }

  /// The next chunk to send. Calling it again before `finish` returns the same chunk.
  chunk next() const;
  /// Ends the chunk from `next()` after `sent` of its bytes (at most its length) and returns
  /// its continuation flag: `$` if the message is now complete, `+` otherwise.
  end_flag finish(std::uint64_t sent);
  /// Abandons the message (§7.1): the chunk in progress ends with the returned `#`.
  end_flag abort();

 private:
  std::uint64_t total_;
  std::uint64_t max_chunk_;
  std::uint64_t position_ = 0;
  bool done_ = false;
};

}  // namespace msrp
