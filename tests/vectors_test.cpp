// Runs the wire vectors of tests/vectors/*.md and tests/vectors/torture/*.md (see their
// README.md files) at every split.
#include <gtest/gtest.h>

#include <string>

#include "msrp/serializer.hpp"
#include "parser_driver.hpp"
#include "vector_file.hpp"

namespace msrp::test {
namespace {

class Vectors : public ::testing::TestWithParam<vector> {};

TEST_P(Vectors, ParseWhole) {
  parser_driver driver;
  driver.feed(GetParam().wire);
  EXPECT_EQ(driver.log(), GetParam().events);
  // A valid vector is consumed whole; an invalid one stops at its error.
  if (!driver.state().error()) {
    EXPECT_EQ(driver.buffered(), 0u);
  }
}

TEST_P(Vectors, ParseSplitAtEveryByte) {
  const auto& wire = GetParam().wire;
  for (std::size_t cut = 1; cut < wire.size(); ++cut) {
    parser_driver driver;
    driver.feed_split(wire, {cut});
    ASSERT_EQ(driver.log(), GetParam().events) << "split at byte " << cut;
  }
}

TEST_P(Vectors, ParseOneByteAtATime) {
  const auto& wire = GetParam().wire;
  parser_driver driver;
  for (const char c : wire)
    driver.feed(std::string_view(&c, 1));
  EXPECT_EQ(driver.log(), GetParam().events);
}

TEST_P(Vectors, RoundTrip) {
  parser_driver first;
  first.feed(GetParam().wire);
  if (first.state().error()) GTEST_SKIP() << "an invalid vector has no round trip";
  std::string wire;
  for (const auto& frame : first.frames()) {
    wire += serialize(frame.head, frame.body, frame.flag).to_string();
  }
  // A canonical-only vector re-serializes to other bytes (that is why it is marked): only
  // its event log must come back.
  if (GetParam().canonical) {
    EXPECT_NE(wire, GetParam().wire) << "marked `round-trip: canonical` but byte-exact";
  } else {
    EXPECT_EQ(wire, GetParam().wire);
  }
  parser_driver second;
  second.feed(wire);
  EXPECT_EQ(second.log(), GetParam().events);
}

INSTANTIATE_TEST_SUITE_P(Rfc, Vectors, ::testing::ValuesIn(load_vectors()),
                         [](const ::testing::TestParamInfo<vector>& test) {
                           return test_name(test.param, test.index);
                         });

TEST(Vectors, AreFound) {
  EXPECT_GE(load_vectors().size(), 10u);
}

}  // namespace
}  // namespace msrp::test
