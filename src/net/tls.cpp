#include "msrp/net/tls.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/buffer.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <array>
#include <cassert>
#include <cerrno>
#include <climits>
#include <memory>

#include "msrp/detail/text.hpp"

namespace msrp::net {
namespace {

namespace fs = std::filesystem;

// --- Ownership of OpenSSL objects: every one lives in a unique_ptr from the moment it exists.

template <auto Free>
struct free_with {
  template <class T>
  void operator()(T* object) const noexcept {
    Free(object);
  }
};

using bio_ptr = std::unique_ptr<BIO, free_with<BIO_free_all>>;
using bignum_ptr = std::unique_ptr<BIGNUM, free_with<BN_free>>;
using key_ptr = std::unique_ptr<EVP_PKEY, free_with<EVP_PKEY_free>>;
using x509_ptr = std::unique_ptr<X509, free_with<X509_free>>;
using general_name_ptr = std::unique_ptr<GENERAL_NAME, free_with<GENERAL_NAME_free>>;
using general_names_ptr = std::unique_ptr<GENERAL_NAMES, free_with<GENERAL_NAMES_free>>;
using asn1_string_ptr = std::unique_ptr<ASN1_STRING, free_with<ASN1_STRING_free>>;

/// A POSIX file descriptor, closed when it goes out of scope.
class file_descriptor {
 public:
  explicit file_descriptor(int fd) noexcept : fd_(fd) {}
  file_descriptor(const file_descriptor&) = delete;
  file_descriptor& operator=(const file_descriptor&) = delete;
  ~file_descriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const noexcept { return fd_; }
  /// Closes now and reports whether close() succeeded (it can report a failed write).
  bool close() noexcept {
    const int fd = fd_;
    fd_ = -1;
    return ::close(fd) == 0;
  }

 private:
  int fd_;
};

// --- Errors

/// Larger PEM files are refused rather than read: a certificate chain and key are a few KiB.
constexpr std::size_t max_file_size = 1024 * 1024;

thread_local std::string last_detail;

/// Drains the calling thread's OpenSSL error queue into one line. Draining matters beyond the
/// message: a TLS stream on this thread reads the same queue after SSL_read/SSL_write.
std::string last_openssl_error() {
  std::string text;
  while (const unsigned long code = ERR_get_error()) {
    std::array<char, 256> buffer{};
    ERR_error_string_n(code, buffer.data(), buffer.size());
    if (!text.empty()) text += "; ";
    text += buffer.data();
  }
  return text;
}

std::error_code fail(tls_errc code, std::string detail) {
  last_detail = std::move(detail);
  return make_error_code(code);
}

/// Fails with `code`, appending OpenSSL's reasons (if it left any) to `what`.
std::error_code fail_openssl(tls_errc code, std::string what) {
  if (std::string reason = last_openssl_error(); !reason.empty()) what += ": " + reason;
  return fail(code, std::move(what));
}

std::error_code fail_errno(const fs::path& file, std::string_view action) {
  const int error = errno;
  return fail(tls_errc::io_error, file.string() + ": cannot " + std::string(action) + ": " +
                                      std::generic_category().message(error));
}

// --- PEM and DER

/// A password callback that refuses, so an encrypted key fails instead of prompting on the
/// terminal (OpenSSL's default when no callback is given).
int no_password(char*, int, int, void*) {
  return -1;
}

result<bio_ptr> open_memory(std::string_view text, std::string_view source) {
  if (text.empty() || text.size() > INT_MAX) {
    return fail(tls_errc::bad_pem, std::string(source) + ": no PEM data");
  }
  bio_ptr bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
  if (!bio) return fail_openssl(tls_errc::openssl_error, "BIO_new_mem_buf");
  return bio;
}

/// Reads the first certificate of `pem`; `source` names it in the error detail.
result<x509_ptr> read_certificate(std::string_view pem, std::string_view source) {
  auto bio = open_memory(pem, source);
  if (!bio) return bio.error();
  x509_ptr certificate(PEM_read_bio_X509(bio->get(), nullptr, no_password, nullptr));
  if (!certificate) {
    return fail_openssl(tls_errc::bad_pem, std::string(source) + ": no PEM certificate");
  }
  return certificate;
}

/// Reads the first unencrypted private key of `pem`.
result<key_ptr> read_private_key(std::string_view pem, std::string_view source) {
  auto bio = open_memory(pem, source);
  if (!bio) return bio.error();
  key_ptr key(PEM_read_bio_PrivateKey(bio->get(), nullptr, no_password, nullptr));
  if (!key) {
    return fail_openssl(tls_errc::bad_pem,
                        std::string(source) + ": no unencrypted PEM private key");
  }
  return key;
}

/// The contents of a memory BIO as a string.
std::string drain(BIO* bio) {
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  return size > 0 ? std::string(data, static_cast<std::size_t>(size)) : std::string();
}

result<std::string> certificate_to_pem(X509* certificate) {
  bio_ptr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), certificate) != 1) {
    return fail_openssl(tls_errc::openssl_error, "cannot write the certificate as PEM");
  }
  return drain(bio.get());
}

result<std::string> private_key_to_pem(EVP_PKEY* key) {
  bio_ptr bio(BIO_new(BIO_s_mem()));
  // Unencrypted PKCS #8 ("BEGIN PRIVATE KEY"); the file's mode protects it.
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return fail_openssl(tls_errc::openssl_error, "cannot write the private key as PEM");
  }
  return drain(bio.get());
}

/// RFC 8122 §5: hash-func tokens are case-insensitive; the names are from the IANA "Hash
/// Function Textual Names" registry.
const EVP_MD* find_hash(std::string_view name) {
  if (detail::iequals(name, "sha-256")) return EVP_sha256();
  if (detail::iequals(name, "sha-1")) return EVP_sha1();
  if (detail::iequals(name, "sha-384")) return EVP_sha384();
  if (detail::iequals(name, "sha-512")) return EVP_sha512();
  return nullptr;
}

std::error_code unsupported(std::string_view hash_function) {
  return fail(tls_errc::unsupported_hash,
              "hash function \"" + std::string(hash_function) +
                  "\" is not supported (use sha-256, sha-1, sha-384 or sha-512)");
}

// --- Making a certificate

/// The subjectAltName entry for `name`: an iPAddress for an IPv4 or IPv6 literal, a dNSName
/// otherwise (RFC 5280 §4.2.1.6). Empty, with the error detail set, for an unusable name.
result<general_name_ptr> make_alt_name(const std::string& name) {
  general_name_ptr entry(GENERAL_NAME_new());
  if (!entry) return fail_openssl(tls_errc::openssl_error, "GENERAL_NAME_new");

  std::array<unsigned char, 16> address{};
  int address_size = 0;
  if (inet_pton(AF_INET, name.c_str(), address.data()) == 1) {
    address_size = 4;
  } else if (inet_pton(AF_INET6, name.c_str(), address.data()) == 1) {
    address_size = 16;
  }

  if (address_size != 0) {
    asn1_string_ptr octets(ASN1_OCTET_STRING_new());
    if (!octets || ASN1_OCTET_STRING_set(octets.get(), address.data(), address_size) != 1) {
      return fail_openssl(tls_errc::openssl_error, "cannot encode the IP address");
    }
    GENERAL_NAME_set0_value(entry.get(), GEN_IPADD, octets.release());
    return entry;
  }

  for (const char c : name) {
    if (c < 0x21 || c > 0x7E) {
      return fail(tls_errc::bad_name, "common name \"" + name +
                                          "\" is neither an IP address nor a printable ASCII "
                                          "DNS name");
    }
  }
  asn1_string_ptr dns(ASN1_IA5STRING_new());
  if (!dns || ASN1_STRING_set(dns.get(), name.data(), static_cast<int>(name.size())) != 1) {
    return fail_openssl(tls_errc::openssl_error, "cannot encode the DNS name");
  }
  GENERAL_NAME_set0_value(entry.get(), GEN_DNS, dns.release());
  return entry;
}

std::error_code add_alt_name(X509* certificate, const std::string& name) {
  auto entry = make_alt_name(name);
  if (!entry) return entry.error();
  general_names_ptr names(GENERAL_NAMES_new());
  if (!names || sk_GENERAL_NAME_push(names.get(), entry->get()) == 0) {
    return fail_openssl(tls_errc::openssl_error, "cannot build the subjectAltName");
  }
  entry->release();  // now owned by `names`
  if (X509_add1_ext_i2d(certificate, NID_subject_alt_name, names.get(), 0, X509V3_ADD_DEFAULT) !=
      1) {
    return fail_openssl(tls_errc::openssl_error, "cannot add the subjectAltName");
  }
  return {};
}

/// RFC 5280 §4.1.2.2: a positive serial of at most 20 octets. Sixteen random bytes with the top
/// bits set to 01 keep it positive, non-zero and always 16 bytes long.
std::error_code set_random_serial(X509* certificate) {
  std::array<unsigned char, 16> bytes{};
  if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) {
    return fail_openssl(tls_errc::openssl_error, "RAND_bytes");
  }
  bytes[0] = static_cast<unsigned char>((bytes[0] & 0x3F) | 0x40);
  bignum_ptr serial(BN_bin2bn(bytes.data(), static_cast<int>(bytes.size()), nullptr));
  if (!serial || !BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(certificate))) {
    return fail_openssl(tls_errc::openssl_error, "cannot set the serial number");
  }
  return {};
}

std::error_code set_validity(X509* certificate, std::chrono::hours validity) {
  constexpr long one_day = 24L * 60 * 60;
  // ASN1_TIME takes days and seconds apart, so long periods do not overflow the seconds.
  const auto days = validity.count() / 24;
  const auto seconds = static_cast<long>(validity.count() % 24) * 60 * 60;
  if (days > INT_MAX || !X509_gmtime_adj(X509_getm_notBefore(certificate), -one_day) ||
      !X509_time_adj_ex(X509_getm_notAfter(certificate), static_cast<int>(days), seconds,
                        nullptr)) {
    return fail_openssl(tls_errc::openssl_error, "cannot set the validity period");
  }
  return {};
}

// --- Files

result<std::string> read_file(const fs::path& file) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail_errno(file, "open");
  file_descriptor guard(fd);
  std::string text;
  std::array<char, 16 * 1024> buffer{};
  for (;;) {
    const ssize_t count = ::read(fd, buffer.data(), buffer.size());
    if (count < 0 && errno == EINTR) continue;
    if (count < 0) return fail_errno(file, "read");
    if (count == 0) break;
    text.append(buffer.data(), static_cast<std::size_t>(count));
    if (text.size() > max_file_size) {
      return fail(tls_errc::io_error, file.string() + ": larger than 1 MiB; not a PEM file");
    }
  }
  return text;
}

/// Creates `file`, which must not exist, with `mode` (less the umask) from the first moment,
/// and writes `text` to it. Removes the file again if writing fails.
std::error_code write_new_file(const fs::path& file, std::string_view text, mode_t mode) {
  // O_EXCL: never replace or follow a file that is already there (a symlink planted by someone
  // else included); the mode applies at creation, so there is no window with wider rights.
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return fail_errno(file, "create");
  file_descriptor guard(fd);
  const auto remove_after = [&file](std::error_code error) {
    ::unlink(file.c_str());
    return error;
  };
  while (!text.empty()) {
    const ssize_t count = ::write(fd, text.data(), text.size());
    if (count < 0 && errno == EINTR) continue;
    if (count < 0) return remove_after(fail_errno(file, "write"));
    text.remove_prefix(static_cast<std::size_t>(count));
  }
  if (::fsync(fd) != 0) return remove_after(fail_errno(file, "fsync"));
  if (!guard.close()) return remove_after(fail_errno(file, "close"));
  return {};
}

std::error_code create_parent(const fs::path& file) {
  const fs::path parent = file.parent_path();
  if (parent.empty()) return {};
  std::error_code error;
  fs::create_directories(parent, error);
  if (error) {
    return fail(tls_errc::io_error,
                parent.string() + ": cannot create directory: " + error.message());
  }
  return {};
}

result<bool> file_exists(const fs::path& file) {
  std::error_code error;
  const bool found = fs::exists(file, error);
  if (error) return fail(tls_errc::io_error, file.string() + ": " + error.message());
  return found;
}

result<certificate> load(const fs::path& cert_file, const fs::path& key_file) {
  auto certificate_text = read_file(cert_file);
  if (!certificate_text) return certificate_text.error();
  auto key_text = read_file(key_file);
  if (!key_text) return key_text.error();

  auto parsed_certificate = read_certificate(*certificate_text, cert_file.string());
  if (!parsed_certificate) return parsed_certificate.error();
  auto parsed_key = read_private_key(*key_text, key_file.string());
  if (!parsed_key) return parsed_key.error();

  EVP_PKEY* public_key = X509_get0_pubkey(parsed_certificate->get());
  if (public_key == nullptr) {
    return fail_openssl(tls_errc::bad_pem,
                        cert_file.string() + ": the certificate's public key is unreadable");
  }
  if (EVP_PKEY_eq(public_key, parsed_key->get()) != 1) {
    return fail_openssl(
        tls_errc::key_mismatch,
        key_file.string() + ": key does not match the certificate in " + cert_file.string());
  }
  return certificate{std::move(*certificate_text), std::move(*key_text)};
}

result<std::vector<std::uint8_t>> digest_of(X509* certificate, const EVP_MD* hash) {
  std::vector<std::uint8_t> digest(EVP_MAX_MD_SIZE);
  unsigned int size = 0;
  if (X509_digest(certificate, hash, digest.data(), &size) != 1) {
    return fail_openssl(tls_errc::openssl_error, "X509_digest");
  }
  digest.resize(size);
  return digest;
}

}  // namespace

// --- Error category

namespace {

class category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "msrp.tls"; }

  std::string message(int value) const override {
    switch (static_cast<tls_errc>(value)) {
      case tls_errc::bad_pem:
        return "no usable PEM certificate or private key";
      case tls_errc::bad_der:
        return "not a DER-encoded certificate";
      case tls_errc::key_mismatch:
        return "private key does not match the certificate";
      case tls_errc::unsupported_hash:
        return "unsupported fingerprint hash function";
      case tls_errc::bad_name:
        return "name cannot be used in a certificate";
      case tls_errc::missing_file:
        return "certificate file or key file missing";
      case tls_errc::io_error:
        return "certificate or key file I/O error";
      case tls_errc::openssl_error:
        return "OpenSSL failure";
    }
    return "unknown msrp.tls error";
  }
};

}  // namespace

const std::error_category& tls_category() noexcept {
  static const category instance;
  return instance;
}

std::string tls_error_detail() {
  return last_detail;
}

// --- Certificates

result<certificate> make_self_signed(std::string_view common_name, std::chrono::hours validity) {
  last_detail.clear();
  assert(validity.count() > 0);
  // X.520 ub-common-name is 64; OpenSSL refuses longer commonName values as well. A NUL would
  // cut the name short for inet_pton and for C code that reads the certificate.
  if (common_name.empty() || common_name.size() > 64 ||
      common_name.find('\0') != std::string_view::npos) {
    return fail(tls_errc::bad_name, "common name must be 1 to 64 bytes long, without NUL");
  }
  const std::string name(common_name);

  key_ptr key(EVP_EC_gen("P-256"));
  if (!key) return fail_openssl(tls_errc::openssl_error, "cannot make a P-256 key");

  x509_ptr x509(X509_new());
  if (!x509 || X509_set_version(x509.get(), X509_VERSION_3) != 1) {
    return fail_openssl(tls_errc::openssl_error, "X509_new");
  }
  if (const auto error = set_random_serial(x509.get())) return error;
  if (const auto error = set_validity(x509.get(), validity)) return error;

  // Self-signed: the issuer is the subject.
  X509_NAME* subject = X509_get_subject_name(x509.get());
  if (X509_NAME_add_entry_by_NID(subject, NID_commonName, MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(name.data()),
                                 static_cast<int>(name.size()), -1, 0) != 1) {
    return fail_openssl(tls_errc::bad_name, "common name \"" + name + "\" is not valid UTF-8");
  }
  if (X509_set_issuer_name(x509.get(), subject) != 1 ||
      X509_set_pubkey(x509.get(), key.get()) != 1) {
    return fail_openssl(tls_errc::openssl_error, "cannot set the issuer or public key");
  }
  if (const auto error = add_alt_name(x509.get(), name)) return error;
  if (X509_sign(x509.get(), key.get(), EVP_sha256()) == 0) {
    return fail_openssl(tls_errc::openssl_error, "cannot sign the certificate");
  }

  auto certificate_pem = certificate_to_pem(x509.get());
  if (!certificate_pem) return certificate_pem.error();
  auto private_key_pem = private_key_to_pem(key.get());
  if (!private_key_pem) return private_key_pem.error();
  return certificate{std::move(*certificate_pem), std::move(*private_key_pem)};
}

result<certificate> load_or_create(const fs::path& cert_file, const fs::path& key_file,
                                   std::string_view common_name) {
  last_detail.clear();
  const auto have_certificate = file_exists(cert_file);
  if (!have_certificate) return have_certificate.error();
  const auto have_key = file_exists(key_file);
  if (!have_key) return have_key.error();

  if (*have_certificate && *have_key) return load(cert_file, key_file);
  if (*have_certificate != *have_key) {
    const fs::path& present = *have_certificate ? cert_file : key_file;
    const fs::path& absent = *have_certificate ? key_file : cert_file;
    return fail(tls_errc::missing_file, present.string() + " exists but " + absent.string() +
                                            " does not; remove it or supply the other file");
  }

  auto pair = make_self_signed(common_name);
  if (!pair) return pair;
  if (const auto error = create_parent(key_file)) return error;
  if (const auto error = create_parent(cert_file)) return error;
  if (const auto error = write_new_file(key_file, pair->private_key_pem, 0600)) return error;
  if (const auto error = write_new_file(cert_file, pair->certificate_pem, 0644)) {
    ::unlink(key_file.c_str());  // ours: created just above with O_EXCL
    return error;
  }
  return pair;
}

result<std::vector<std::uint8_t>> certificate_digest(std::string_view certificate_pem,
                                                     std::string_view hash_function) {
  last_detail.clear();
  const EVP_MD* hash = find_hash(hash_function);
  if (hash == nullptr) return unsupported(hash_function);
  auto parsed = read_certificate(certificate_pem, "certificate");
  if (!parsed) return parsed.error();
  return digest_of(parsed->get(), hash);
}

result<std::vector<std::uint8_t>> certificate_digest_der(std::span<const std::uint8_t> der,
                                                         std::string_view hash_function) {
  last_detail.clear();
  const EVP_MD* hash = find_hash(hash_function);
  if (hash == nullptr) return unsupported(hash_function);

  // Parse only to check that the bytes are one certificate and nothing more.
  const unsigned char* cursor = der.data();
  x509_ptr parsed(
      der.size() > LONG_MAX ? nullptr : d2i_X509(nullptr, &cursor, static_cast<long>(der.size())));
  if (!parsed) return fail_openssl(tls_errc::bad_der, "not a DER certificate");
  if (cursor != der.data() + der.size()) {
    return fail(tls_errc::bad_der, "bytes follow the DER certificate");
  }

  // RFC 8122 §5: the fingerprint is over the DER form as sent, so hash the bytes as given.
  std::vector<std::uint8_t> digest(EVP_MAX_MD_SIZE);
  unsigned int size = 0;
  if (EVP_Digest(der.data(), der.size(), digest.data(), &size, hash, nullptr) != 1) {
    return fail_openssl(tls_errc::openssl_error, "EVP_Digest");
  }
  digest.resize(size);
  return digest;
}

}  // namespace msrp::net
