#include "msrp/error.hpp"

#include <gtest/gtest.h>

#include <set>

#include "msrp/result.hpp"

namespace msrp {
namespace {

TEST(Error, EveryCodeHasItsOwnMessage) {
  std::set<std::string> messages;
  for (int value = 1; value <= static_cast<int>(errc::unsupported_digest_algorithm); ++value) {
    const std::error_code code = static_cast<errc>(value);
    EXPECT_EQ(code.category().name(), std::string("msrp"));
    EXPECT_NE(code.message(), "unknown msrp error") << value;
    messages.insert(code.message());
  }
  EXPECT_EQ(messages.size(), static_cast<std::size_t>(errc::unsupported_digest_algorithm));
}

TEST(Error, MapsToTheStatusAPeerShouldGet) {
  EXPECT_EQ(to_status(errc::body_too_large), 413);
  EXPECT_EQ(to_status(errc::bad_header), 400);
  EXPECT_EQ(to_status(errc::missing_to_path), 400);
  EXPECT_EQ(to_status(std::make_error_code(std::errc::io_error)), 400);
}

TEST(Error, ComparesWithErrorCodes) {
  const std::error_code code = errc::bad_uri;
  EXPECT_EQ(code, errc::bad_uri);
  EXPECT_NE(code, errc::bad_header);
  EXPECT_TRUE(code);
}

TEST(Result, HoldsAValueOrAnError) {
  result<int> good = 7;
  ASSERT_TRUE(good);
  EXPECT_EQ(*good, 7);
  EXPECT_FALSE(good.error());
  result<int> bad = errc::bad_number;
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error(), errc::bad_number);
}

}  // namespace
}  // namespace msrp
