#include "msrp/serializer.hpp"

#include <gtest/gtest.h>

#include <random>
#include <set>

#include "parser_driver.hpp"

namespace msrp {
namespace {

message send_head(std::string_view id) {
  message m;
  m.transaction_id = id;
  m.method = "SEND";
  m.headers = {{"To-Path", "msrp://bob.example.com:8888/9di4eae923wzd;tcp"},
               {"From-Path", "msrp://alicepc.example.com:7777/iau39soe2843z;tcp"},
               {"Message-ID", "12339sdqwer"},
               {"Content-Type", "text/plain"}};
  return m;
}

TEST(Serializer, WritesHeadBodyAndEndLine) {
  const auto f = serialize(send_head("d93kswow"), "Hi", end_flag::continued);
  EXPECT_EQ(f.to_string(),
            "MSRP d93kswow SEND\r\n"
            "To-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp\r\n"
            "From-Path: msrp://alicepc.example.com:7777/iau39soe2843z;tcp\r\n"
            "Message-ID: 12339sdqwer\r\n"
            "Content-Type: text/plain\r\n"
            "\r\n"
            "Hi\r\n"
            "-------d93kswow+\r\n");
  const auto buffers = f.buffers();
  EXPECT_EQ(buffers[1].data(), f.body.data());  // the body is not copied
}

TEST(Serializer, WritesBodilessRequestsAndResponses) {
  auto bodiless = send_head("abcd");
  bodiless.remove_header("Content-Type");
  EXPECT_EQ(serialize(bodiless).to_string().substr(serialize_head(bodiless).size()),
            "-------abcd$\r\n");
  message response;
  response.transaction_id = "abcd";
  response.status_code = 413;
  response.comment = "too big";
  EXPECT_EQ(serialize(response).to_string(), "MSRP abcd 413 too big\r\n-------abcd$\r\n");
  response.comment.clear();
  response.status_code = 200;
  EXPECT_EQ(serialize(response, {}, end_flag::aborted).to_string(),
            "MSRP abcd 200\r\n-------abcd#\r\n");
}

TEST(Serializer, ResponseWithContentTypeHasNoBody) {
  // Found by fuzz_parser: a response never has a body (RFC 4975 §7.2), whatever its headers.
  message response;
  response.transaction_id = "abcd";
  response.status_code = 200;
  response.headers = {{"Content-Type", "text/plain"}};
  EXPECT_EQ(serialize(response).to_string(),
            "MSRP abcd 200\r\nContent-Type: text/plain\r\n-------abcd$\r\n");
}

TEST(Serializer, OutputParsesBack) {
  std::string body;
  for (int i = 0; i < 1000; ++i)
    body += static_cast<char>(i * 7);
  const auto f = serialize(send_head("abc123XYZ"), body, end_flag::aborted);
  test::parser_driver driver;
  driver.feed(f.to_string());
  ASSERT_EQ(driver.frames().size(), 1u);
  EXPECT_EQ(driver.frames()[0].body, body);
  EXPECT_EQ(driver.frames()[0].flag, end_flag::aborted);
  EXPECT_EQ(driver.frames()[0].head.headers, send_head("x").headers);
}

TEST(TransactionId, HasSixteenAlphanumericCharactersFromTheSource) {
  std::mt19937_64 random(1);
  const random_source source = [&] { return random(); };
  std::set<std::string> ids;
  for (int i = 0; i < 1000; ++i) {
    const auto id = make_transaction_id(source);
    ASSERT_EQ(id.size(), 16u);
    for (const char c : id)
      ASSERT_TRUE(std::isalnum(static_cast<unsigned char>(c))) << id;
    ids.insert(id);
  }
  EXPECT_EQ(ids.size(), 1000u);
  // The same seed gives the same ids: tests control them.
  std::mt19937_64 first(9);
  std::mt19937_64 second(9);
  EXPECT_EQ(make_transaction_id([&] { return first(); }),
            make_transaction_id([&] { return second(); }));
}

TEST(TransactionId, NeverFormsAnEndLineInsideTheBody) {
  // A source that first yields values whose id the body contains, then others.
  const std::uint64_t colliding = 0;
  const auto colliding_id = make_transaction_id([&] { return colliding; });
  const std::string body = "text\r\n-------" + colliding_id + "$\r\nmore";
  ASSERT_TRUE(contains_end_line(body, colliding_id));
  std::uint64_t next = 0;
  const auto id = make_transaction_id([&] { return next++ < 2 ? colliding : next; }, body);
  EXPECT_NE(id, colliding_id);
  EXPECT_FALSE(contains_end_line(body, id));
}

TEST(Chunker, SplitsIntoRangesWithFlags) {
  chunker chunks(5000, 2048);
  auto c = chunks.next();
  EXPECT_EQ(c.range, (byte_range{1, 2048, 5000}));
  EXPECT_EQ(chunks.finish(c.length), end_flag::continued);
  c = chunks.next();
  EXPECT_EQ(c.range, (byte_range{2049, 4096, 5000}));
  EXPECT_EQ(chunks.finish(c.length), end_flag::continued);
  c = chunks.next();
  EXPECT_EQ(c.range, (byte_range{4097, 5000, 5000}));
  EXPECT_EQ(c.length, 904u);
  EXPECT_EQ(chunks.finish(c.length), end_flag::complete);
  EXPECT_TRUE(chunks.is_done());
}

TEST(Chunker, LargeChunksAreInterruptible) {
  // RFC 4975 §7.1.1: chunks over 2048 octets declare "*" as range-end, and an interrupted
  // chunk ends with "+" and resumes at the first unsent byte.
  chunker chunks(1'000'000, 1 << 20);
  auto c = chunks.next();
  EXPECT_EQ(c.range, (byte_range{1, std::nullopt, 1'000'000}));
  EXPECT_EQ(c.length, 1'000'000u);
  EXPECT_EQ(chunks.finish(300'000), end_flag::continued);
  c = chunks.next();
  EXPECT_EQ(c.offset, 300'000u);
  EXPECT_EQ(c.range, (byte_range{300'001, std::nullopt, 1'000'000}));
  EXPECT_EQ(chunks.finish(c.length), end_flag::complete);
}

TEST(Chunker, EmptyMessageIsOneChunk) {
  chunker chunks(0, 2048);
  const auto c = chunks.next();
  EXPECT_EQ(c.range.to_string(), "1-0/0");
  EXPECT_EQ(chunks.finish(0), end_flag::complete);
  EXPECT_TRUE(chunks.is_done());
}

TEST(Chunker, AbortEndsWithHash) {
  chunker chunks(10'000, 4096);
  chunks.finish(chunks.next().length);
  EXPECT_EQ(chunks.abort(), end_flag::aborted);
  EXPECT_TRUE(chunks.is_done());
  EXPECT_EQ(chunks.position(), 4096u);
}

TEST(Chunker, ChunksSerializeAndReassemble) {
  std::mt19937_64 random(3);
  std::string message(100'000, '\0');
  for (auto& c : message)
    c = static_cast<char>(random());
  chunker chunks(message.size(), 30'000);
  std::string wire;
  auto head = send_head("x");
  while (!chunks.is_done()) {
    const auto c = chunks.next();
    head.transaction_id = make_transaction_id([&] { return random(); });
    head.set_header("Byte-Range", c.range.to_string());
    // Interrupt every interruptible chunk halfway; a small one goes out whole.
    const auto sent = c.range.end ? c.length : c.length / 2 + 1;
    const std::string_view body = std::string_view(message).substr(c.offset, sent);
    wire += serialize(head, body, chunks.finish(body.size())).to_string();
  }
  test::parser_driver driver;
  driver.feed(wire);
  std::string reassembled;
  for (const auto& f : driver.frames()) {
    const auto range = f.head.byte_range();
    ASSERT_TRUE(range);
    ASSERT_EQ(range->start, reassembled.size() + 1);
    reassembled += f.body;
  }
  EXPECT_EQ(reassembled, message);
  EXPECT_EQ(driver.frames().back().flag, end_flag::complete);
}

}  // namespace
}  // namespace msrp
