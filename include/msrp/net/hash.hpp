// msrp/net/hash.hpp: hashing and random tokens on OpenSSL, for what the core leaves to the
// edge: the `msrp::digest::hasher` of Digest authentication (RFC 7616 §3.2) and the nonces
// and session ids a relay draws (RFC 7616 §5.12, RFC 4975 §14.1).
//
//   const msrp::digest::hasher hash = msrp::net::digest_hex;
//   auto ha1 = msrp::digest::ha1(hash, msrp::digest::sha256, "alice", realm, password);
//   auto nonce = msrp::net::random_token(16);  // 32 hex digits
//
// Both functions fail only when OpenSSL cannot work at all (out of memory, no entropy, MD5
// disabled by a FIPS configuration), and then abort: the hasher's signature has no room for an
// error, and no digest or token would be safe to use instead.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace msrp::net {

/// The digest of `data` with `algorithm`, as lowercase hex: 32 characters for `"MD5"`, 64 for
/// `"SHA-256"` (RFC 7616 §3.2). `algorithm` must be spelled exactly as `msrp::digest::md5` or
/// `msrp::digest::sha256` (asserted). The signature is that of `msrp::digest::hasher`, so the
/// function can be passed as one.
///
/// Aborts if OpenSSL fails.
std::string digest_hex(std::string_view algorithm, std::string_view data);

/// `bytes` bytes from OpenSSL's CSPRNG (`RAND_bytes`), as lowercase hex (2 × `bytes`
/// characters): fit for nonces and session ids, and a token in every header grammar.
///
/// Aborts if OpenSSL cannot draw random bytes.
std::string random_token(std::size_t bytes);

}  // namespace msrp::net
