// tests/vector_file.hpp: loads the wire vectors of tests/vectors/*.md and
// tests/vectors/torture/*.md (see the README.md files there).
#pragma once

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace msrp::test {

struct vector {
  std::string name;
  std::string wire;
  std::string events;
  bool canonical = false;  // `round-trip: canonical`: the round trip compares event logs only
  // `session: ...` and `relay: ...`: what the endpoint and the relay do with the bytes
  // (torture/README.md); empty when the vector does not say.
  std::string session;
  std::string relay;
};

// Decodes a ~~~msrp-escaped line: `\r`, `\n`, `\t`, `\\` and `\xHH` stand for one byte each,
// any other character for itself. A malformed escape is a broken corpus file: it throws.
inline std::string unescape(std::string_view line) {
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
inline std::vector<vector> load_vectors() {
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
        vectors.push_back({stem + ": " + line.substr(3), {}, {}, false, {}, {}});
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
      } else if (!vectors.empty() && block.empty() && line.starts_with("session: ")) {
        vectors.back().session = line.substr(9);
      } else if (!vectors.empty() && block.empty() && line.starts_with("relay: ")) {
        vectors.back().relay = line.substr(7);
      }
    }
  }
  return vectors;
}

inline void PrintTo(const vector& v, std::ostream* out) {
  *out << v.name;
}

/// A test name for `v`, the `index`-th vector: its alphanumeric characters and the index.
inline std::string test_name(const vector& v, std::size_t index) {
  std::string name;
  for (const char c : v.name) {
    if (std::isalnum(static_cast<unsigned char>(c))) name += c;
  }
  return name + std::to_string(index);
}

}  // namespace msrp::test
