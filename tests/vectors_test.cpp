// Runs the wire vectors of tests/vectors/*.md (see its README.md) at every split.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "msrp/serializer.hpp"
#include "parser_driver.hpp"

namespace msrp::test {
namespace {

struct vector {
  std::string name;
  std::string wire;
  std::string events;
};

std::vector<vector> load_vectors() {
  const std::filesystem::path dir = MSRP_VECTORS_DIR;
  std::vector<vector> vectors;
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() == ".md" && entry.path().filename() != "README.md") {
      files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  for (const auto& file : files) {
    std::ifstream in(file);
    std::string line;
    std::string block;  // "msrp", "events" or empty outside a fenced block
    while (std::getline(in, line)) {
      if (line.starts_with("## ")) {
        vectors.push_back({file.stem().string() + ": " + line.substr(3), {}, {}});
      } else if (line.starts_with("~~~")) {
        block = block.empty() ? line.substr(3) : std::string();
      } else if (!vectors.empty() && block == "msrp") {
        vectors.back().wire += line + "\r\n";
      } else if (!vectors.empty() && block == "events") {
        vectors.back().events += line + '\n';
      }
    }
  }
  return vectors;
}

void PrintTo(const vector& v, std::ostream* out) {
  *out << v.name;
}

class Vectors : public ::testing::TestWithParam<vector> {};

TEST_P(Vectors, ParseWhole) {
  parser_driver driver;
  driver.feed(GetParam().wire);
  EXPECT_EQ(driver.log(), GetParam().events);
  EXPECT_EQ(driver.buffered(), 0u);
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
  EXPECT_EQ(wire, GetParam().wire);
  parser_driver second;
  second.feed(wire);
  EXPECT_EQ(second.log(), GetParam().events);
}

INSTANTIATE_TEST_SUITE_P(Rfc, Vectors, ::testing::ValuesIn(load_vectors()),
                         [](const ::testing::TestParamInfo<vector>& test) {
                           std::string name;
                           for (const char c : test.param.name) {
                             if (std::isalnum(static_cast<unsigned char>(c))) name += c;
                           }
                           return name + std::to_string(test.index);
                         });

TEST(Vectors, AreFound) {
  EXPECT_GE(load_vectors().size(), 10u);
}

}  // namespace
}  // namespace msrp::test
