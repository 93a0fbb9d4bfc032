// msrp/net/tls.hpp: the certificate side of MSRP over TLS (msrps, RFC 4975 §14.2), on OpenSSL 3.
//
// An MSRP endpoint or relay that accepts TLS needs a certificate and its private key. When the
// peer is not named by a certificate authority, the certificate is self-signed and the peer
// checks it against the fingerprint carried in SDP (`a=fingerprint`, RFC 8122 §5; RFC 4975
// §14.2 and RFC 4572 before it). This header makes such certificates, keeps them on disk, and
// computes their fingerprints:
//
//   auto pair = msrp::net::load_or_create("/var/lib/msrp/cert.pem", "/var/lib/msrp/key.pem",
//                                         "relay.example.com");
//   if (!pair) { /* pair.error(), msrp::net::tls_error_detail() */ }
//   auto digest = msrp::net::certificate_digest(pair->certificate_pem, "sha-256");
//
// Certificates and keys cross this interface as PEM text and DER bytes, so the header needs no
// OpenSSL header; the TLS stream itself (Asio `ssl::stream`) lives in the connection code.
//
// Errors are `tls_errc` values in a `std::error_code` of `tls_category()`. The code is stable
// and meant for programs; the human-readable reason of the most recent failure on the calling
// thread (the file name, errno text or OpenSSL's error string) is `tls_error_detail()`.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "msrp/result.hpp"

namespace msrp::net {

/// Errors of the certificate functions below. Zero is never used, so a default
/// `std::error_code` means success.
enum class tls_errc {
  bad_pem = 1,   ///< The text holds no PEM certificate or no PEM private key where one was
                 ///< expected, the PEM is damaged, or the key is encrypted (no password is asked).
  bad_der,       ///< The bytes are not exactly one DER-encoded X.509 certificate.
  key_mismatch,  ///< The private key does not belong to the certificate's public key.
  unsupported_hash,  ///< The hash function is not one of sha-1, sha-256, sha-384, sha-512.
  bad_name,          ///< The common name cannot be put in a certificate (see `make_self_signed`).
  missing_file,      ///< Only one of the certificate file and the key file exists; `load_or_create`
                     ///< overwrites nothing and leaves the repair to the operator.
  io_error,          ///< A file or directory could not be created, opened, read or written, or a
                     ///< file to read is larger than 1 MiB.
  openssl_error,     ///< OpenSSL failed where it should not (out of memory, no random bytes ...).
};

/// The error category of `tls_errc`; its name is "msrp.tls".
const std::error_category& tls_category() noexcept;

/// Makes a `std::error_code` from a `tls_errc`, so `tls_errc` values compare with error codes.
inline std::error_code make_error_code(tls_errc e) noexcept {
  return {static_cast<int>(e), tls_category()};
}

/// Describes the most recent failure of a function in this header on the calling thread, for
/// logs and people: which file, errno's text, and OpenSSL's error strings where OpenSSL failed,
/// for example "key.pem: key does not match the certificate in cert.pem". Every function below
/// clears it when called, so it is empty after a call that succeeded.
std::string tls_error_detail();

/// A certificate and its private key, both as PEM text.
struct certificate {
  /// One or more `-----BEGIN CERTIFICATE-----` blocks; the first is the certificate itself,
  /// any others are its chain, as a TLS server sends them.
  std::string certificate_pem;
  /// The private key of the first certificate, as unencrypted `-----BEGIN PRIVATE KEY-----`
  /// (PKCS #8) or any other unencrypted PEM key form OpenSSL reads.
  std::string private_key_pem;
};

/// Makes a new key pair and a self-signed certificate for it.
///
/// The key is ECDSA on P-256 (prime256v1). The certificate is X.509 v3 with subject and issuer
/// `CN=<common_name>`, a random positive 16-byte serial number (RFC 5280 §4.1.2.2) from
/// OpenSSL's `RAND_bytes`, one subjectAltName and an ECDSA with SHA-256 signature. It is valid
/// from one day ago, so that a peer whose clock is behind ours accepts it, until `validity`
/// from now. The subjectAltName is `IP:<address>` when `common_name` is an IPv4 or IPv6
/// literal (without brackets, as `inet_pton` reads it), and `DNS:<common_name>` otherwise.
/// `validity` must be positive.
///
/// Errors: `bad_name` when `common_name` is empty, longer than 64 bytes (the X.520 upper bound
/// for commonName), contains a NUL byte, is not valid UTF-8, or, when it is not an IP literal,
/// contains anything but printable ASCII (a DNS name in a certificate is IA5String; write
/// internationalised names as A-labels); `openssl_error` if OpenSSL fails to make the key, draw the
/// serial, encode or sign, or the validity period ends after the year 9999.
result<certificate> make_self_signed(std::string_view common_name,
                                     std::chrono::hours validity = std::chrono::hours(24 * 365));

/// Loads a certificate and its key from two PEM files, or makes and stores a self-signed pair.
///
/// When both files exist, both are read and checked: the certificate file must hold a PEM
/// certificate, the key file an unencrypted PEM private key, and the key must be the one of the
/// (first) certificate. `common_name` is not compared with the certificate and the validity
/// period is not checked, so a certificate that has expired is still returned. When neither exists,
/// a pair is made by `make_self_signed(common_name)`, missing parent directories are created, and
/// the files are written: the key file first, created with `open(O_CREAT | O_EXCL, 0600)` so it is
/// never readable by others, not even for a moment, and never replaces an existing file; then the
/// certificate file (mode 0644 less the umask). If writing fails half-way, the files this
/// call created are removed again. Two processes racing to create the same pair do not
/// overwrite each other: the loser gets `io_error`.
///
/// Errors: `missing_file` when only one of the two files exists; `io_error` when a file
/// cannot be read, created or written, or is larger than 1 MiB; `bad_pem` when a file holds no
/// usable PEM certificate or key (or the key is encrypted); `key_mismatch` when the key is not
/// the certificate's; `bad_name` and `openssl_error` as for `make_self_signed`.
result<certificate> load_or_create(const std::filesystem::path& cert_file,
                                   const std::filesystem::path& key_file,
                                   std::string_view common_name);

/// The digest of a certificate for SDP `a=fingerprint` (RFC 8122 §5): the hash of the DER form
/// of the first certificate in `certificate_pem`.
///
/// `hash_function` is an RFC 8122 hash-func token, compared ignoring ASCII case: "sha-256"
/// (the one RFC 8122 asks for), "sha-1", "sha-384" or "sha-512". The digest is 32, 20, 48 or
/// 64 bytes long respectively. It is the raw digest; the SDP form of it (upper-case hex pairs
/// joined by colons) is the SDP code's business.
///
/// Errors: `unsupported_hash` for any other hash function (checked first); `bad_pem` when the
/// text holds no PEM certificate.
result<std::vector<std::uint8_t>> certificate_digest(std::string_view certificate_pem,
                                                     std::string_view hash_function);

/// The digest of a certificate given as DER bytes, such as the peer certificate of a TLS
/// connection (`i2d_X509` of `SSL_get1_peer_certificate`), for comparison with the peer's
/// `a=fingerprint`. The bytes must be exactly one certificate and are hashed as given, so
/// `certificate_digest_der(der, h)` equals `certificate_digest(pem, h)` when `der` is the
/// content of `pem`'s first certificate.
///
/// Errors: `unsupported_hash` as for `certificate_digest`; `bad_der` when the bytes are not
/// one X.509 certificate, or have bytes after it.
result<std::vector<std::uint8_t>> certificate_digest_der(std::span<const std::uint8_t> der,
                                                         std::string_view hash_function);

}  // namespace msrp::net

template <>
struct std::is_error_code_enum<msrp::net::tls_errc> : std::true_type {};
