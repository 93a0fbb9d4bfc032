// tests/openssl_hash.hpp: the digest::hasher an application would inject, built on OpenSSL.
//
// The core links no crypto library (STYLE §1); a test that needs real MD5 and SHA-256 digests
// includes this header and links OpenSSL::Crypto.
#pragma once

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <string>
#include <string_view>

namespace msrp::test {

/// `data` hashed with `algorithm` ("MD5" or "SHA-256"), as lowercase hex.
inline std::string openssl_hash(std::string_view algorithm, std::string_view data) {
  const EVP_MD* md = algorithm == "MD5"       ? EVP_md5()
                     : algorithm == "SHA-256" ? EVP_sha256()
                                              : nullptr;
  if (md == nullptr) {
    ADD_FAILURE() << "the core asked for algorithm " << algorithm;
    return {};
  }
  unsigned char bytes[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(data.data(), data.size(), bytes, &length, md, nullptr) != 1) {
    ADD_FAILURE() << "EVP_Digest failed";
    return {};
  }
  constexpr std::string_view digits = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < length; ++i) {
    hex += digits[bytes[i] >> 4];
    hex += digits[bytes[i] & 0xF];
  }
  return hex;
}

}  // namespace msrp::test
