// Runs the wire vectors of tests/vectors/*.md and tests/vectors/torture/*.md (see their
// README.md files) at every split.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

#include "msrp/serializer.hpp"
#include "parser_driver.hpp"

namespace msrp::test {
namespace {

struct vector {
  std::string name;
  std::string wire;
  std::string events;
  bool canonical = false;  // `round-trip: canonical`: the round trip compares event logs only
};

// Decodes a ~~~msrp-escaped line: `\r`, `\n`, `\t`, `\\` and `\xHH` stand for one byte each,
// any other character for itself. A malformed escape is a broken corpus file: it throws.
std::string unescape(std::string_view line) {
  std::string out;
  for (std::size_t i = 0; i < line.size(); ++i) {
    if (line[i] != '\\') {
      out += line[i];
      continue;
    }
    const char next = i + 1 < line.size() ? line[i + 1] : '\0';
    ++i;
    if (next == 'r') {
      out += '\r';
    } else if (next == 'n') {
      out += '\n';
    } else if (next == 't') {
      out += '\t';
    } else if (next == '\\') {
      out += '\\';
    } else if (next == 'x' && i + 2 < line.size() &&
               std::isxdigit(static_cast<unsigned char>(line[i + 1])) &&
               std::isxdigit(static_cast<unsigned char>(line[i + 2]))) {
      out += static_cast<char>(std::stoi(std::string(line.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      throw std::invalid_argument("bad escape in ~~~msrp-escaped line: " + std::string(line));
    }
  }
  return out;
}

// Vectors come from tests/vectors/*.md and tests/vectors/torture/*.md (torture/README.md).
// A ~~~msrp block gets CRLF after every line; a ~~~msrp-escaped block gets nothing added: its
// escapes spell out every byte, CR and LF included. A prose line `round-trip: canonical` marks
// a vector whose input is valid but not in the serializer's canonical form.
std::vector<vector> load_vectors() {
  const std::filesystem::path dir = MSRP_VECTORS_DIR;
  std::vector<vector> vectors;
  std::vector<std::filesystem::path> files;
  for (const auto& sub : {dir, dir / "torture"}) {
    for (const auto& entry : std::filesystem::directory_iterator(sub)) {
      if (entry.path().extension() == ".md" && entry.path().filename() != "README.md") {
        files.push_back(entry.path());
      }
    }
  }
  std::sort(files.begin(), files.end());
  for (const auto& file : files) {
    std::ifstream in(file);
    std::string line;
    std::string block;  // "msrp", "msrp-escaped", "events" or empty outside a fenced block
    const auto stem = std::filesystem::relative(file, dir).replace_extension().generic_string();
    while (std::getline(in, line)) {
      if (line.starts_with("## ")) {
        vectors.push_back({stem + ": " + line.substr(3), {}, {}, false});
      } else if (line.starts_with("~~~")) {
        block = block.empty() ? line.substr(3) : std::string();
      } else if (!vectors.empty() && block == "msrp") {
        vectors.back().wire += line + "\r\n";
      } else if (!vectors.empty() && block == "msrp-escaped") {
        vectors.back().wire += unescape(line);
      } else if (!vectors.empty() && block == "events") {
        vectors.back().events += line + '\n';
      } else if (!vectors.empty() && block.empty() && line == "round-trip: canonical") {
        vectors.back().canonical = true;
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
