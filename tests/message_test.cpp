#include "msrp/message.hpp"

#include <gtest/gtest.h>

namespace msrp {
namespace {

message with(std::initializer_list<header_field> headers) {
  message m;
  m.transaction_id = "abcd";
  m.method = "SEND";
  m.headers = headers;
  return m;
}

TEST(ByteRange, ParsesNumbersAndStars) {
  EXPECT_EQ(*byte_range::parse("1-16/16"), (byte_range{1, 16, 16}));
  EXPECT_EQ(*byte_range::parse("1-*/8"), (byte_range{1, std::nullopt, 8}));
  EXPECT_EQ(*byte_range::parse("138-148/148"), (byte_range{138, 148, 148}));
  EXPECT_EQ(*byte_range::parse("5-*/*"), (byte_range{5, std::nullopt, std::nullopt}));
  EXPECT_EQ(*byte_range::parse("1-0/0"), (byte_range{1, 0, 0}));
  EXPECT_EQ(*byte_range::parse("18446744073709551615-*/*"),
            (byte_range{UINT64_MAX, std::nullopt, std::nullopt}));
  // Regression (torture corpus): the largest values must not wrap in the checks.
  EXPECT_EQ(*byte_range::parse("1-*/18446744073709551615"),
            (byte_range{1, std::nullopt, UINT64_MAX}));
  EXPECT_EQ(*byte_range::parse("18446744073709551615-18446744073709551615/*"),
            (byte_range{UINT64_MAX, UINT64_MAX, std::nullopt}));
}

TEST(ByteRange, RejectsImpossibleRanges) {
  for (const auto* text :
       {"0-1/1", "3-1/5", "1-6/5", "7-*/5", "1-2", "1/2", "-1-2/3", "1-2/", "a-2/3", "1-b/3",
        "1-2/c", "", "1--2/3", "1-2/3 ", " 1-2/3", "18446744073709551616-*/*"}) {
    const auto parsed = byte_range::parse(text);
    EXPECT_FALSE(parsed) << text;
    if (!parsed) {
      EXPECT_EQ(parsed.error(), errc::bad_byte_range);
    }
  }
}

TEST(ByteRange, FormatsAsTheHeaderValue) {
  EXPECT_EQ((byte_range{1, std::nullopt, 8}).to_string(), "1-*/8");
  EXPECT_EQ((byte_range{5, 8, 8}).to_string(), "5-8/8");
  EXPECT_EQ((byte_range{2049, std::nullopt, std::nullopt}).to_string(), "2049-*/*");
}

TEST(Message, FindsHeadersCaseInsensitivelyInOrder) {
  auto m = with({{"X-A", "1"}, {"x-a", "2"}, {"Content-Type", "text/plain"}});
  EXPECT_EQ(m.header("X-A"), "1");
  EXPECT_EQ(m.headers_named("X-a"), (std::vector<std::string_view>{"1", "2"}));
  EXPECT_EQ(m.content_type(), "text/plain");
  EXPECT_FALSE(m.header("Missing"));
  m.set_header("x-A", "3");
  EXPECT_EQ(m.headers[0].value, "3");
  m.set_header("New", "n");
  EXPECT_EQ(m.headers.back(), (header_field{"New", "n"}));
  m.remove_header("X-A");
  EXPECT_EQ(m.headers.size(), 2u);
}

TEST(Message, ReportHeadersHaveTheRfcDefaults) {
  // RFC 4975 §7.1.1: absent Success-Report means no, absent Failure-Report means yes.
  const auto plain = with({});
  EXPECT_EQ(*plain.success_report(), report_mode::no);
  EXPECT_EQ(*plain.failure_report(), report_mode::yes);
  const auto set = with({{"Success-Report", "yes"}, {"Failure-Report", "partial"}});
  EXPECT_EQ(*set.success_report(), report_mode::yes);
  EXPECT_EQ(*set.failure_report(), report_mode::partial);
  EXPECT_EQ(with({{"Success-Report", "partial"}}).success_report().error(), errc::bad_report_value);
  EXPECT_EQ(with({{"Failure-Report", "maybe"}}).failure_report().error(), errc::bad_report_value);
}

TEST(Message, ParsesPaths) {
  const auto m =
      with({{"To-Path", "msrps://relay.example.com:2855;tcp msrp://bob.example.com:8888/9di;tcp"},
            {"From-Path", "msrp://alice.example.com:7777/iau;tcp"}});
  const auto to = m.to_path();
  ASSERT_TRUE(to);
  ASSERT_EQ(to->size(), 2u);
  EXPECT_TRUE((*to)[0].is_secure());
  EXPECT_EQ((*to)[1].session_id(), "9di");
  EXPECT_EQ(format_path(*to), *m.header("To-Path"));
  EXPECT_EQ(with({}).to_path().error(), errc::missing_to_path);
  EXPECT_EQ(with({}).from_path().error(), errc::missing_from_path);
  EXPECT_TRUE(with({}).use_path()->empty());
  EXPECT_EQ(with({{"To-Path", "msrp://a.example.com:1/s;tcp "}}).to_path().error(), errc::bad_uri);
  EXPECT_EQ(with({{"Use-Path", "msrp://a.example.com:1/s"}}).use_path().error(), errc::bad_uri);
}

TEST(Message, ByteRangeDefaultsToTheWholeMessage) {
  EXPECT_EQ(*with({}).byte_range(), (byte_range{1, std::nullopt, std::nullopt}));
  EXPECT_EQ(*with({{"Byte-Range", "1-5/5"}}).byte_range(), (byte_range{1, 5, 5}));
  EXPECT_EQ(with({{"Byte-Range", "x"}}).byte_range().error(), errc::bad_byte_range);
}

TEST(Message, ParsesStatus) {
  EXPECT_FALSE(*with({}).status());
  EXPECT_EQ(**with({{"Status", "000 200 OK"}}).status(), (status{0, 200, "OK"}));
  EXPECT_EQ(**with({{"Status", "000 408"}}).status(), (status{0, 408, ""}));
  for (const auto* bad : {"200 OK", "000 20", "000 2000", "00 200", "000 200OK", "abc 200"}) {
    EXPECT_EQ(with({{"Status", bad}}).status().error(), errc::bad_status_header) << bad;
  }
}

TEST(Message, ParsesRelayHeaders) {
  // RFC 4976 §7: Expires, Min-Expires, Max-Expires and the HTTP authentication headers.
  const auto m = with({{"Expires", "900"},
                       {"Min-Expires", "60"},
                       {"Max-Expires", "4294967295"},
                       {"WWW-Authenticate", "Digest realm=\"a\", nonce=\"1\", algorithm=SHA-256"},
                       {"WWW-Authenticate", "Digest realm=\"a\", nonce=\"2\""},
                       {"Authorization", "Digest username=\"u\""},
                       {"Authentication-Info", "nextnonce=\"3\""}});
  EXPECT_EQ(**m.expires(), 900u);
  EXPECT_EQ(**m.min_expires(), 60u);
  EXPECT_EQ(**m.max_expires(), 4294967295u);
  EXPECT_EQ(m.www_authenticate().size(), 2u);
  EXPECT_EQ(m.authorization(), "Digest username=\"u\"");
  EXPECT_EQ(m.authentication_info(), "nextnonce=\"3\"");
  EXPECT_FALSE(*with({}).expires());
  EXPECT_EQ(with({{"Expires", "-1"}}).expires().error(), errc::bad_number);
  EXPECT_EQ(with({{"Expires", "4294967296"}}).expires().error(), errc::bad_number);
  EXPECT_EQ(with({{"Min-Expires", ""}}).min_expires().error(), errc::bad_number);
}

}  // namespace
}  // namespace msrp
