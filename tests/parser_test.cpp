#include "msrp/parser.hpp"

#include <gtest/gtest.h>

#include <random>

#include "parser_driver.hpp"

namespace msrp::test {
namespace {

constexpr std::string_view paths =
    "To-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp\r\n"
    "From-Path: msrp://alicepc.example.com:7777/iau39soe2843z;tcp\r\n";

std::string send_frame(std::string_view id, std::string_view body, char flag = '$') {
  return "MSRP " + std::string(id) + " SEND\r\n" + std::string(paths) +
         "Message-ID: m1x2\r\nByte-Range: 1-*/*\r\nContent-Type: application/octet-stream\r\n\r\n" +
         std::string(body) + "\r\n-------" + std::string(id) + flag + "\r\n";
}

/// Runs `wire` whole, split in two at every byte, and one byte at a time; each run must
/// give the same log, which is returned.
std::string log_at_every_split(std::string_view wire, parser::limits limits = {}) {
  parser_driver whole(limits);
  whole.feed(wire);
  for (std::size_t cut = 1; cut < wire.size(); ++cut) {
    parser_driver split(limits);
    split.feed_split(wire, {cut});
    EXPECT_EQ(split.log(), whole.log()) << "split at byte " << cut;
    if (split.log() != whole.log()) break;
  }
  parser_driver bytes(limits);
  for (const char c : wire)
    bytes.feed(std::string_view(&c, 1));
  EXPECT_EQ(bytes.log(), whole.log()) << "one byte at a time";
  return whole.log();
}

TEST(Parser, StreamsBinaryBodyWithEveryByteValue) {
  std::string body;
  for (int i = 0; i < 4096; ++i)
    body += static_cast<char>(i % 256);
  const auto log = log_at_every_split(send_frame("tx01", body));
  EXPECT_NE(log.find("body " + escape(body) + "\nend $\n"), std::string::npos) << log;
}

TEST(Parser, BodyMayContainNearMatchesOfTheEndLine) {
  // Only CRLF "-------" + this transaction id + flag + CRLF ends the body (RFC 4975 §7.1).
  const std::string body =
      "a\r\n-------tx02\r\n"    // no flag
      "b\r\n-------tx02!\r\n"   // not a flag
      "c\r\n-------tx02$x"      // flag without CRLF
      "d\r\n-------tx0$\r\n"    // a shorter id
      "e\r\n-------tx023$\r\n"  // a longer id
      "f\r\n-------other$\r\n"  // another id
      "g\n-------tx02$\r\n"     // not preceded by CRLF
      "h\r\n------tx02$\r\n"    // six dashes
      "i-------tx02$\r\n\r";    // within a line
  const auto log = log_at_every_split(send_frame("tx02", body, '+'));
  EXPECT_NE(log.find("body " + escape(body) + "\nend +\n"), std::string::npos) << log;
}

TEST(Parser, ReportsEachContinuationFlag) {
  for (const char flag : {'$', '+', '#'}) {
    const auto log = log_at_every_split(send_frame("tx03", "abc", flag));
    EXPECT_NE(log.find(std::string("end ") + flag + "\n"), std::string::npos) << log;
  }
}

TEST(Parser, EmptyBodyDiffersFromNoBody) {
  // RFC 4975 §7.1: a bodiless request has no Content-Type and no blank line.
  const auto empty = log_at_every_split(send_frame("tx04", ""));
  EXPECT_EQ(empty.find("body"), std::string::npos);
  parser_driver driver;
  driver.feed(send_frame("tx04", ""));
  ASSERT_EQ(driver.frames().size(), 1u);
  EXPECT_TRUE(driver.state().has_body());

  const std::string bodiless = "MSRP tx05 SEND\r\n" + std::string(paths) +
                               "Message-ID: m1x2\r\nByte-Range: 1-0/0\r\n-------tx05$\r\n";
  parser_driver other;
  other.feed(bodiless);
  ASSERT_EQ(other.frames().size(), 1u);
  EXPECT_FALSE(other.state().has_body());
  EXPECT_EQ(other.log().find("error"), std::string::npos);
}

TEST(Parser, KeepsUnknownMethodsAndHeadersInOrder) {
  const std::string wire = "MSRP tx06 FROB\r\n" + std::string(paths) +
                           "X-Zeta: 1\r\nContent-Disposition: inline\r\nx-alpha: two words\r\n"
                           "-------tx06$\r\n";
  const auto log = log_at_every_split(wire);
  EXPECT_NE(log.find("head MSRP tx06 FROB\n"), std::string::npos);
  EXPECT_NE(log.find("header X-Zeta: 1\nheader Content-Disposition: inline\n"
                     "header x-alpha: two words\nend $\n"),
            std::string::npos)
      << log;
}

TEST(Parser, ParsesResponsesWithAndWithoutComment) {
  const auto log = log_at_every_split(
      "MSRP tx07 200 OK\r\n-------tx07$\r\nMSRP tx08 481\r\n-------tx08$\r\n"
      "MSRP tx09 413 Stop sending now\r\n-------tx09$\r\n");
  EXPECT_EQ(log,
            "head MSRP tx07 200 OK\nend $\nhead MSRP tx08 481\nend $\n"
            "head MSRP tx09 413 Stop sending now\nend $\n");
}

TEST(Parser, StreamsALargeBodyWithoutHoldingIt) {
  // 8 MiB in 1,500-byte reads: the parser never asks the caller to keep more than a possible
  // end-line (CRLF + 7 dashes + 32-byte id + flag + CRLF = 44 bytes).
  std::mt19937_64 random(7);
  std::string body(8 << 20, '\0');
  for (auto& c : body)
    c = static_cast<char>(random());
  const auto wire = send_frame("tx10", body);
  parser_driver driver;
  std::size_t most_buffered = 0;
  for (std::size_t at = 0; at < wire.size(); at += 1500) {
    driver.feed(std::string_view(wire).substr(at, 1500));
    if (driver.state().has_body()) most_buffered = std::max(most_buffered, driver.buffered());
  }
  ASSERT_EQ(driver.frames().size(), 1u);
  EXPECT_EQ(driver.frames()[0].body, body);
  EXPECT_EQ(driver.frames()[0].flag, end_flag::complete);
  EXPECT_LE(most_buffered, 44u);
  EXPECT_EQ(driver.state().offset(), wire.size());
}

TEST(Parser, ErrorsStick) {
  parser p;
  const auto first = p.parse("MSRP tx SEND\r\n");
  ASSERT_EQ(first.kind, parser::event_kind::error);
  const auto again = p.parse(send_frame("tx11", "fine"));
  EXPECT_EQ(again.kind, parser::event_kind::error);
  EXPECT_EQ(again.error, first.error);
  EXPECT_EQ(again.consumed, 0u);
}

TEST(Parser, ErrorNamesTheOffsetAndKeepsTheTransactionId) {
  const std::string good = send_frame("tx12", "one");
  const std::string bad = "MSRP tx13 SEND\r\n" + std::string(paths) + "Bad Header: x\r\n";
  parser_driver driver;
  driver.feed(good + bad);
  EXPECT_EQ(driver.state().error(), errc::bad_header);
  EXPECT_EQ(driver.state().error_offset(), good.size() + 16 + paths.size());
  EXPECT_EQ(driver.state().head().transaction_id, "tx13");
}

TEST(Parser, AcceptsLimitsAtTheirEdge) {
  const std::string wire = send_frame("tx14", std::string(100, 'x'));
  parser::limits limits;
  limits.max_chunk_size = 100;
  limits.max_head_size = wire.find("\r\n\r\n") + 4;
  limits.max_header_count = 5;
  EXPECT_EQ(log_at_every_split(wire, limits).find("error"), std::string::npos);
}

// The malformed-input table: each input, at every split, ends in the given error, and the
// error maps to the given status code.
struct malformed {
  const char* name;
  std::string wire;
  errc error;
  int status = 400;
  parser::limits limits = {};
};

std::string request(std::string_view start, std::string_view headers = paths,
                    std::string_view id = "abcd") {
  return std::string(start) + "\r\n" + std::string(headers) + "-------" + std::string(id) + "$\r\n";
}

std::string with_header(std::string_view header) {
  return request("MSRP abcd SEND", std::string(paths) + std::string(header) + "\r\n");
}

parser::limits small_chunks() {
  parser::limits limits;
  limits.max_chunk_size = 10;
  return limits;
}

std::vector<malformed> malformed_inputs() {
  std::string many_headers(paths);
  for (int i = 0; i < 63; ++i)
    many_headers += "X-H" + std::to_string(i) + ": v\r\n";
  const std::string big_report = "MSRP abcd REPORT\r\n" + std::string(paths) +
                                 "Content-Type: text/plain\r\n\r\n" + std::string(10241, 'r') +
                                 "\r\n-------abcd$\r\n";
  return {
      {"ShortTransactionId", request("MSRP abc SEND", paths, "abc"), errc::bad_transaction_id},
      {"LongTransactionId", request("MSRP " + std::string(33, 'a') + " SEND"),
       errc::bad_transaction_id},
      {"TransactionIdBadChar", request("MSRP ab_cd SEND"), errc::bad_transaction_id},
      {"TransactionIdBadFirstChar", request("MSRP .abcd SEND"), errc::bad_transaction_id},
      {"TransactionIdMissing", request("MSRP  SEND"), errc::bad_transaction_id},
      {"MethodMissing", request("MSRP abcd"), errc::bad_start_line},
      {"ProtocolLowercase", request("msrp abcd SEND"), errc::bad_start_line},
      {"ProtocolHttp", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", errc::bad_start_line},
      {"TlsOnPlainPort", std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11),
       errc::bad_start_line},
      {"EmptyFirstLine", "\r\nMSRP abcd SEND\r\n", errc::bad_start_line},
      {"MethodLowercase", request("MSRP abcd send"), errc::bad_method},
      {"MethodWithDigit", request("MSRP abcd SEND2"), errc::bad_method},
      {"MethodTrailingSpace", request("MSRP abcd SEND "), errc::bad_method},
      {"MethodTwoWords", request("MSRP abcd SEND NOW"), errc::bad_method},
      {"StatusTwoDigits", request("MSRP abcd 20", ""), errc::bad_status_code},
      {"StatusFourDigits", request("MSRP abcd 2000", ""), errc::bad_status_code},
      {"StatusNoSpaceBeforeComment", request("MSRP abcd 200OK", ""), errc::bad_status_code},
      {"StatusCommentWithNul", request(std::string("MSRP abcd 200 O\0K", 17), ""),
       errc::bad_status_code},
      {"BareLfStartLine", "MSRP abcd SEND\n" + std::string(paths), errc::bad_line_ending},
      {"BareLfHeader", "MSRP abcd SEND\r\nTo-Path: msrp://a.example:1/s;tcp\n",
       errc::bad_line_ending},
      {"BareCrInHeader", with_header("X-A: one\rtwo"), errc::bad_line_ending},
      {"NulInHeader", with_header(std::string("X-A: o\0ne", 9)), errc::bad_header},
      {"ControlByteInHeader", with_header("X-A: o\x01ne"), errc::bad_header},
      {"HeaderWithoutColon", with_header("X-A one"), errc::bad_header},
      {"HeaderNameWithSpace", with_header("X A: one"), errc::bad_header},
      {"HeaderNameStartsWithDigit", with_header("1X: one"), errc::bad_header},
      {"HeaderNameEmpty", with_header(": one"), errc::bad_header},
      {"EndLineWrongTransactionId", request("MSRP abcd SEND", paths, "abce"), errc::bad_end_line},
      {"EndLineWrongFlag", "MSRP abcd SEND\r\n" + std::string(paths) + "-------abcd!\r\n",
       errc::bad_end_line},
      {"EndLineWithoutCrlf", "MSRP abcd SEND\r\n" + std::string(paths) + "-------abcd$X\r\n",
       errc::bad_end_line},
      {"ResponseEndLineWrongId", request("MSRP abcd 200 OK", "", "abcde"), errc::bad_end_line},
      {"ByteRangeStartZero", with_header("Byte-Range: 0-10/10"), errc::bad_byte_range},
      {"ByteRangeEndBeforeStart", with_header("Byte-Range: 5-3/10"), errc::bad_byte_range},
      {"ByteRangeTotalBelowEnd", with_header("Byte-Range: 1-10/5"), errc::bad_byte_range},
      {"ByteRangeNonNumeric", with_header("Byte-Range: a-10/10"), errc::bad_byte_range},
      {"ByteRangeWithoutTotal", with_header("Byte-Range: 1-10"), errc::bad_byte_range},
      {"ByteRangeStarStart", with_header("Byte-Range: *-10/10"), errc::bad_byte_range},
      {"ByteRangeBadTotal", with_header("Byte-Range: 1-*/x"), errc::bad_byte_range},
      {"ByteRangeOverflow", with_header("Byte-Range: 99999999999999999999-*/*"),
       errc::bad_byte_range},
      {"ByteRangeNegative", with_header("Byte-Range: -1-5/5"), errc::bad_byte_range},
      {"HeaderBlockTooLarge", with_header("X-Big: " + std::string(17000, 'b')),
       errc::header_block_too_large},
      {"StartLineTooLong", "MSRP abcd " + std::string(17000, 'S'), errc::header_block_too_large},
      {"TooManyHeaders", request("MSRP abcd SEND", many_headers), errc::too_many_headers},
      {"RequestWithoutToPath",
       request("MSRP abcd SEND", "From-Path: msrp://a.example.com:1/s;tcp\r\n"),
       errc::missing_to_path},
      {"RequestWithoutFromPath",
       request("MSRP abcd SEND", "To-Path: msrp://a.example.com:1/s;tcp\r\n"),
       errc::missing_from_path},
      {"RequestWithoutHeaders", request("MSRP abcd SEND", ""), errc::missing_to_path},
      {"ToPathTwice", with_header("To-Path: msrp://a.example.com:1/s;tcp"), errc::duplicate_header},
      {"DuplicateContentType",
       "MSRP abcd SEND\r\n" + std::string(paths) +
           "Content-Type: text/plain\r\nContent-Type: text/html\r\n\r\nhi\r\n-------abcd$\r\n",
       errc::duplicate_header},
      {"DuplicateMessageIdDifferentCase", with_header("Message-ID: a1\r\nmessage-id: a2"),
       errc::duplicate_header},
      {"DuplicateByteRange", with_header("Byte-Range: 1-1/1\r\nByte-Range: 1-1/1"),
       errc::duplicate_header},
      {"BodyWithoutContentType",
       "MSRP abcd SEND\r\n" + std::string(paths) + "\r\nhi\r\n-------abcd$\r\n",
       errc::body_without_content_type},
      {"ResponseWithBody",
       "MSRP abcd 200 OK\r\nContent-Type: text/plain\r\n\r\nhi\r\n-------abcd$\r\n",
       errc::response_with_body},
      {"ReportBodyOver10240", big_report, errc::body_too_large, 413},
      {"ChunkOverLimit", send_frame("abcd", std::string(11, 'x')), errc::body_too_large, 413,
       small_chunks()},
  };
}

// Names the case, rather than dumping its bytes, in test names and failure messages.
void PrintTo(const malformed& c, std::ostream* out) {
  *out << c.name;
}

class Malformed : public ::testing::TestWithParam<malformed> {};

TEST_P(Malformed, FailsAtEverySplitWithItsStatus) {
  const auto& c = GetParam();
  const auto log = log_at_every_split(c.wire, c.limits);
  const std::error_code expected = c.error;
  EXPECT_NE(log.find("error " + expected.message() + ' ' + std::to_string(c.status) + '\n'),
            std::string::npos)
      << log;
  EXPECT_EQ(to_status(expected), c.status);
}

INSTANTIATE_TEST_SUITE_P(Table, Malformed, ::testing::ValuesIn(malformed_inputs()),
                         [](const auto& test) { return std::string(test.param.name); });

TEST(Malformed, TableHasAtLeastFortyCases) {
  EXPECT_GE(malformed_inputs().size(), 40u);
}

TEST(Parser, LeavesHeaderValuesToTheMessage) {
  // A malformed URI does not break the framing: the request parses, and the session answers
  // 400 when `to_path()` reports the error.
  const std::string wire = request("MSRP abcd SEND",
                                   "To-Path: http://a.example.com/;tcp\r\n"
                                   "From-Path: msrp://a.example.com:1/s;tcp\r\n");
  parser_driver driver;
  driver.feed(wire);
  ASSERT_EQ(driver.frames().size(), 1u);
  EXPECT_FALSE(driver.state().error());
  EXPECT_EQ(driver.frames()[0].head.to_path().error(), errc::bad_uri);
}

// Found by the torture corpus (invalid.md, "CRLF after a complete frame"): a start line that
// failed before its transaction id left the previous frame's head in `head()`, and the
// endpoint and the relay answered that frame's transaction a second time.
TEST(Parser, DefectFailedStartLineKeepsPreviousHead) {
  for (const std::string_view next : {"\r\n", "msrp abcd SEND\r\n", "MSRP abcd\n"}) {
    parser p;
    std::string wire = send_frame("prev1", "hi") + std::string(next);
    std::string_view rest = wire;
    parser::event e;
    do {
      e = p.parse(rest);
      rest.remove_prefix(e.consumed);
    } while (e.kind != parser::event_kind::error);
    EXPECT_TRUE(p.head().transaction_id.empty()) << escape(next);
    EXPECT_TRUE(p.head().headers.empty()) << escape(next);
    EXPECT_TRUE(p.head().method.empty()) << escape(next);
  }
}

}  // namespace
}  // namespace msrp::test
