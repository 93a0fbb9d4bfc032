// msrp/net/hash.cpp: MD5 and SHA-256 as lowercase hex, and random tokens, on OpenSSL 3.
#include "msrp/net/hash.hpp"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <array>
#include <cassert>
#include <climits>
#include <cstdlib>
#include <span>
#include <vector>

#include "msrp/digest.hpp"

namespace msrp::net {
namespace {

// RFC 7616 §3.2 compares digests as lowercase hex, so uppercase would never match.
std::string to_hex(std::span<const unsigned char> bytes) {
  constexpr std::string_view digits = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * bytes.size());
  for (const unsigned char byte : bytes) {
    hex += digits[byte >> 4];
    hex += digits[byte & 0xF];
  }
  return hex;
}

}  // namespace

std::string digest_hex(std::string_view algorithm, std::string_view data) {
  const EVP_MD* md = algorithm == digest::md5      ? EVP_md5()
                     : algorithm == digest::sha256 ? EVP_sha256()
                                                   : nullptr;
  assert(md != nullptr);
  std::array<unsigned char, EVP_MAX_MD_SIZE> bytes{};
  unsigned int length = 0;
  if (EVP_Digest(data.data(), data.size(), bytes.data(), &length, md, nullptr) != 1) std::abort();
  return to_hex(std::span(bytes).first(length));
}

std::string random_token(std::size_t bytes) {
  assert(bytes <= INT_MAX);
  std::vector<unsigned char> random(bytes);
  if (RAND_bytes(random.data(), static_cast<int>(bytes)) != 1) std::abort();
  return to_hex(random);
}

}  // namespace msrp::net
