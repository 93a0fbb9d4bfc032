#include "msrp/error.hpp"

namespace msrp {
namespace {

class category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "msrp"; }

  std::string message(int value) const override {
    switch (static_cast<errc>(value)) {
      case errc::bad_start_line:
        return "malformed start line";
      case errc::bad_transaction_id:
        return "malformed transaction id";
      case errc::bad_method:
        return "malformed method name";
      case errc::bad_status_code:
        return "malformed status code or comment";
      case errc::bad_line_ending:
        return "line not terminated by CRLF";
      case errc::bad_header:
        return "malformed header field";
      case errc::bad_end_line:
        return "end-line does not match the start line";
      case errc::header_block_too_large:
        return "header block too large";
      case errc::too_many_headers:
        return "too many header fields";
      case errc::missing_to_path:
        return "request without To-Path";
      case errc::missing_from_path:
        return "request without From-Path";
      case errc::duplicate_header:
        return "header field repeated";
      case errc::body_without_content_type:
        return "body without Content-Type";
      case errc::response_with_body:
        return "response with a body";
      case errc::body_too_large:
        return "body too large";
      case errc::bad_uri:
        return "malformed MSRP URI";
      case errc::bad_byte_range:
        return "malformed Byte-Range";
      case errc::bad_report_value:
        return "malformed Success-Report or Failure-Report";
      case errc::bad_status_header:
        return "malformed Status header";
      case errc::bad_number:
        return "malformed number";
      case errc::bad_sdp:
        return "malformed session description";
      case errc::sdp_missing_msrp_media:
        return "session description without MSRP media";
      case errc::sdp_missing_path:
        return "MSRP media without a=path";
      case errc::sdp_missing_accept_types:
        return "MSRP media without a=accept-types";
      case errc::sdp_no_common_type:
        return "no accept-type in common with the offer";
      case errc::sdp_tls_mismatch:
        return "offer and answer disagree on TLS";
      case errc::bad_digest_syntax:
        return "malformed Digest authentication header";
      case errc::duplicate_digest_parameter:
        return "Digest parameter repeated";
      case errc::missing_digest_parameter:
        return "required Digest parameter missing";
      case errc::bad_digest_parameter:
        return "malformed Digest parameter value";
      case errc::unsupported_digest_algorithm:
        return "unsupported Digest algorithm";
    }
    return "unknown msrp error";
  }
};

}  // namespace

const std::error_category& error_category() noexcept {
  static const category instance;
  return instance;
}

int to_status(std::error_code e) noexcept {
  // RFC 4975 §10.5: 413 asks the sender to stop sending a message that is too large.
  if (e == errc::body_too_large) return 413;
  return 400;
}

}  // namespace msrp
