#include "msrp/net/tls.hpp"

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>

namespace msrp::net {
namespace {

namespace fs = std::filesystem;

// --- Helpers: read what the library wrote with OpenSSL directly, not through the library.

struct openssl_free {
  void operator()(X509* certificate) const { X509_free(certificate); }
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
  void operator()(BIO* bio) const { BIO_free_all(bio); }
  void operator()(GENERAL_NAMES* names) const { GENERAL_NAMES_free(names); }
};
using x509_ptr = std::unique_ptr<X509, openssl_free>;
using key_ptr = std::unique_ptr<EVP_PKEY, openssl_free>;
using bio_ptr = std::unique_ptr<BIO, openssl_free>;
using general_names_ptr = std::unique_ptr<GENERAL_NAMES, openssl_free>;

x509_ptr parse_certificate(const std::string& pem) {
  bio_ptr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return x509_ptr(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

key_ptr parse_key(const std::string& pem) {
  bio_ptr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return key_ptr(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
}

std::vector<std::uint8_t> to_der(X509* certificate) {
  unsigned char* buffer = nullptr;
  const int size = i2d_X509(certificate, &buffer);
  std::vector<std::uint8_t> der(buffer, buffer + (size > 0 ? size : 0));
  OPENSSL_free(buffer);
  return der;
}

/// The subjectAltName entries of a certificate as "DNS:<name>" or "IP:<raw bytes as hex>".
std::set<std::string> alt_names(X509* certificate) {
  general_names_ptr names(static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(certificate, NID_subject_alt_name, nullptr, nullptr)));
  std::set<std::string> found;
  for (int i = 0; names && i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
    if (name->type == GEN_DNS) {
      const ASN1_STRING* dns = name->d.dNSName;
      found.insert("DNS:" + std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(dns)),
                                        static_cast<std::size_t>(ASN1_STRING_length(dns))));
    } else if (name->type == GEN_IPADD) {
      const ASN1_STRING* ip = name->d.iPAddress;
      std::string hex = "IP:";
      static constexpr char digits[] = "0123456789abcdef";
      for (int j = 0; j < ASN1_STRING_length(ip); ++j) {
        const unsigned char byte = ASN1_STRING_get0_data(ip)[j];
        hex += digits[byte >> 4];
        hex += digits[byte & 0xF];
      }
      found.insert(hex);
    } else {
      found.insert("other");
    }
  }
  return found;
}

std::string common_name_of(X509* certificate) {
  std::array<char, 256> buffer{};
  X509_NAME_get_text_by_NID(X509_get_subject_name(certificate), NID_commonName, buffer.data(),
                            static_cast<int>(buffer.size()));
  return buffer.data();
}

std::string digest_hex(const std::vector<std::uint8_t>& digest) {
  std::ostringstream out;
  for (const auto byte : digest)
    out << std::hex << (byte >> 4) << (byte & 0xF);
  return out.str();
}

/// A fresh directory under the system's temporary directory, removed with its contents.
class temporary_directory {
 public:
  temporary_directory() {
    std::string pattern = (fs::temp_directory_path() / "msrp-tls-test-XXXXXX").string();
    path_ = ::mkdtemp(pattern.data()) != nullptr ? fs::path(pattern) : fs::path();
  }
  temporary_directory(const temporary_directory&) = delete;
  temporary_directory& operator=(const temporary_directory&) = delete;
  ~temporary_directory() {
    std::error_code ignored;
    if (!path_.empty()) fs::remove_all(path_, ignored);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void write_file(const fs::path& file, const std::string& text) {
  std::ofstream out(file, std::ios::binary);
  out << text;
}

std::string read_file(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// --- make_self_signed

TEST(Tls, SelfSignedCertificateParsesAndNamesItsHost) {
  const auto pair = make_self_signed("relay.example.test");
  ASSERT_TRUE(pair) << pair.error().message() << ": " << tls_error_detail();
  EXPECT_EQ(tls_error_detail(), "");

  const x509_ptr certificate = parse_certificate(pair->certificate_pem);
  ASSERT_TRUE(certificate);
  const key_ptr key = parse_key(pair->private_key_pem);
  ASSERT_TRUE(key);
  EXPECT_NE(pair->private_key_pem.find("-----BEGIN PRIVATE KEY-----"), std::string::npos);

  EXPECT_EQ(alt_names(certificate.get()), std::set<std::string>{"DNS:relay.example.test"});
  EXPECT_EQ(common_name_of(certificate.get()), "relay.example.test");
  EXPECT_EQ(X509_NAME_cmp(X509_get_subject_name(certificate.get()),
                          X509_get_issuer_name(certificate.get())),
            0);
  EXPECT_EQ(X509_get_version(certificate.get()), X509_VERSION_3);

  // ECDSA P-256 key, SHA-256 signature, and the certificate signs itself with the key given.
  EXPECT_TRUE(EVP_PKEY_is_a(key.get(), "EC"));
  std::array<char, 64> group{};
  ASSERT_EQ(EVP_PKEY_get_group_name(key.get(), group.data(), group.size(), nullptr), 1);
  EXPECT_STREQ(group.data(), "prime256v1");
  EXPECT_EQ(X509_get_signature_nid(certificate.get()), NID_ecdsa_with_SHA256);
  EXPECT_EQ(X509_check_private_key(certificate.get(), key.get()), 1);
  EXPECT_EQ(X509_verify(certificate.get(), key.get()), 1);

  // Serial: positive and 16 bytes.
  const ASN1_INTEGER* serial = X509_get0_serialNumber(certificate.get());
  EXPECT_EQ(ASN1_STRING_type(serial), V_ASN1_INTEGER);  // V_ASN1_NEG_INTEGER if negative
  EXPECT_EQ(ASN1_STRING_length(serial), 16);

  // Valid now, for about a year (checked to the day).
  EXPECT_LT(X509_cmp_current_time(X509_get0_notBefore(certificate.get())), 0);
  EXPECT_GT(X509_cmp_current_time(X509_get0_notAfter(certificate.get())), 0);
  int days = 0;
  int seconds = 0;
  ASSERT_EQ(ASN1_TIME_diff(&days, &seconds, nullptr, X509_get0_notAfter(certificate.get())), 1);
  EXPECT_TRUE(days == 364 || days == 365) << days;
}

TEST(Tls, EachCallMakesANewKeyAndSerial) {
  const auto first = make_self_signed("a.example.test");
  const auto second = make_self_signed("a.example.test");
  ASSERT_TRUE(first && second);
  EXPECT_NE(first->private_key_pem, second->private_key_pem);
  const x509_ptr one = parse_certificate(first->certificate_pem);
  const x509_ptr two = parse_certificate(second->certificate_pem);
  EXPECT_NE(ASN1_INTEGER_cmp(X509_get0_serialNumber(one.get()), X509_get0_serialNumber(two.get())),
            0);
}

TEST(Tls, IpLiteralGetsAnIpAddressAltName) {
  const auto v4 = make_self_signed("192.0.2.7");
  ASSERT_TRUE(v4) << tls_error_detail();
  EXPECT_EQ(alt_names(parse_certificate(v4->certificate_pem).get()),
            std::set<std::string>{"IP:c0000207"});

  const auto v6 = make_self_signed("2001:db8::1");
  ASSERT_TRUE(v6) << tls_error_detail();
  EXPECT_EQ(alt_names(parse_certificate(v6->certificate_pem).get()),
            std::set<std::string>{"IP:20010db8000000000000000000000001"});

  // Not quite an address: a DNS name.
  const auto almost = make_self_signed("192.0.2.7.example");
  ASSERT_TRUE(almost) << tls_error_detail();
  EXPECT_EQ(alt_names(parse_certificate(almost->certificate_pem).get()),
            std::set<std::string>{"DNS:192.0.2.7.example"});
}

TEST(Tls, ValidityIsTheOneAskedFor) {
  const auto pair = make_self_signed("short.example.test", std::chrono::hours(48));
  ASSERT_TRUE(pair);
  const x509_ptr certificate = parse_certificate(pair->certificate_pem);
  int days = 0;
  int seconds = 0;
  ASSERT_EQ(ASN1_TIME_diff(&days, &seconds, nullptr, X509_get0_notAfter(certificate.get())), 1);
  EXPECT_TRUE(days == 1 || days == 2) << days;
  // notBefore is a day back, for peers whose clocks lag.
  ASSERT_EQ(ASN1_TIME_diff(&days, &seconds, nullptr, X509_get0_notBefore(certificate.get())), 1);
  EXPECT_TRUE(days == -1 || (days == 0 && seconds < -23 * 3600)) << days << " " << seconds;
}

TEST(Tls, UnusableNamesAreBadName) {
  const std::string too_long(65, 'a');
  for (const std::string_view name :
       {std::string_view(""), std::string_view("has space.example"),
        std::string_view("caf\xc3\xa9.example"), std::string_view("nul\0.example", 12),
        std::string_view("bad\xff", 4), std::string_view(too_long)}) {
    const auto pair = make_self_signed(name);
    ASSERT_FALSE(pair) << name;
    EXPECT_EQ(pair.error(), tls_errc::bad_name) << name;
    EXPECT_NE(tls_error_detail(), "");
  }
}

// --- Digests

TEST(Tls, PemAndDerDigestsAgreeAndHaveTheHashLength) {
  const auto pair = make_self_signed("digest.example.test");
  ASSERT_TRUE(pair);
  const x509_ptr certificate = parse_certificate(pair->certificate_pem);
  const std::vector<std::uint8_t> der = to_der(certificate.get());
  ASSERT_FALSE(der.empty());

  const std::pair<const char*, std::size_t> hashes[] = {
      {"sha-256", 32}, {"sha-1", 20}, {"sha-384", 48}, {"sha-512", 64}, {"SHA-256", 32}};
  std::set<std::string> distinct;
  for (const auto& [name, size] : hashes) {
    const auto from_pem = certificate_digest(pair->certificate_pem, name);
    const auto from_der = certificate_digest_der(der, name);
    ASSERT_TRUE(from_pem) << name << ": " << tls_error_detail();
    ASSERT_TRUE(from_der) << name << ": " << tls_error_detail();
    EXPECT_EQ(from_pem->size(), size) << name;
    EXPECT_EQ(*from_pem, *from_der) << name;
    distinct.insert(digest_hex(*from_pem));
  }
  EXPECT_EQ(distinct.size(), 4u);  // "SHA-256" gives the same digest as "sha-256"

  // And it is what OpenSSL itself computes over the DER.
  std::array<unsigned char, EVP_MAX_MD_SIZE> expected{};
  unsigned int expected_size = 0;
  ASSERT_EQ(X509_digest(certificate.get(), EVP_sha256(), expected.data(), &expected_size), 1);
  EXPECT_EQ(*certificate_digest(pair->certificate_pem, "sha-256"),
            std::vector<std::uint8_t>(expected.begin(), expected.begin() + expected_size));
}

TEST(Tls, UnknownHashIsUnsupportedHash) {
  const auto pair = make_self_signed("hash.example.test");
  ASSERT_TRUE(pair);
  const std::vector<std::uint8_t> der = to_der(parse_certificate(pair->certificate_pem).get());
  for (const char* name : {"md5", "sha256", "sha-224", "", "sha-256 "}) {
    const auto from_pem = certificate_digest(pair->certificate_pem, name);
    ASSERT_FALSE(from_pem) << name;
    EXPECT_EQ(from_pem.error(), tls_errc::unsupported_hash) << name;
    const auto from_der = certificate_digest_der(der, name);
    ASSERT_FALSE(from_der) << name;
    EXPECT_EQ(from_der.error(), tls_errc::unsupported_hash) << name;
  }
}

TEST(Tls, MalformedPemIsBadPem) {
  const auto pair = make_self_signed("pem.example.test");
  ASSERT_TRUE(pair);
  std::string damaged = pair->certificate_pem;
  damaged[damaged.size() / 2] = '!';  // not base64
  for (const std::string& text :
       {std::string(), std::string("not a certificate"), damaged, pair->private_key_pem}) {
    const auto digest = certificate_digest(text, "sha-256");
    ASSERT_FALSE(digest);
    EXPECT_EQ(digest.error(), tls_errc::bad_pem);
    EXPECT_NE(tls_error_detail(), "");
  }
}

TEST(Tls, MalformedDerIsBadDer) {
  const auto pair = make_self_signed("der.example.test");
  ASSERT_TRUE(pair);
  std::vector<std::uint8_t> der = to_der(parse_certificate(pair->certificate_pem).get());
  const std::vector<std::uint8_t> truncated(der.begin(), der.end() - 1);
  std::vector<std::uint8_t> trailing = der;
  trailing.push_back(0);
  for (const auto& bytes : {std::vector<std::uint8_t>(), truncated, trailing}) {
    const auto digest = certificate_digest_der(bytes, "sha-256");
    ASSERT_FALSE(digest) << bytes.size();
    EXPECT_EQ(digest.error(), tls_errc::bad_der) << bytes.size();
  }
}

// --- load_or_create

TEST(Tls, LoadOrCreateWritesThenLoadsTheSamePair) {
  const temporary_directory directory;
  ASSERT_FALSE(directory.path().empty());
  const fs::path cert_file = directory.path() / "tls" / "cert.pem";
  const fs::path key_file = directory.path() / "tls" / "private" / "key.pem";

  // Even with a umask that lets everyone read, the key is the owner's alone.
  const mode_t old_umask = ::umask(0);
  const auto created = load_or_create(cert_file, key_file, "files.example.test");
  ::umask(old_umask);
  ASSERT_TRUE(created) << created.error().message() << ": " << tls_error_detail();

  struct stat key_status {};
  ASSERT_EQ(::stat(key_file.c_str(), &key_status), 0);
  EXPECT_EQ(key_status.st_mode & 0777, 0600u);
  struct stat cert_status {};
  ASSERT_EQ(::stat(cert_file.c_str(), &cert_status), 0);
  EXPECT_EQ(cert_status.st_mode & 0777, 0644u);
  EXPECT_EQ(read_file(cert_file), created->certificate_pem);
  EXPECT_EQ(read_file(key_file), created->private_key_pem);

  const auto loaded = load_or_create(cert_file, key_file, "files.example.test");
  ASSERT_TRUE(loaded) << loaded.error().message() << ": " << tls_error_detail();
  EXPECT_EQ(loaded->certificate_pem, created->certificate_pem);
  EXPECT_EQ(loaded->private_key_pem, created->private_key_pem);
  const auto created_digest = certificate_digest(created->certificate_pem, "sha-256");
  const auto loaded_digest = certificate_digest(loaded->certificate_pem, "sha-256");
  ASSERT_TRUE(created_digest && loaded_digest);
  EXPECT_EQ(*created_digest, *loaded_digest);
}

TEST(Tls, LoadOrCreateRefusesMalformedPem) {
  const temporary_directory directory;
  const fs::path cert_file = directory.path() / "cert.pem";
  const fs::path key_file = directory.path() / "key.pem";
  const auto pair = make_self_signed("bad.example.test");
  ASSERT_TRUE(pair);

  write_file(cert_file, "-----BEGIN CERTIFICATE-----\nnonsense\n-----END CERTIFICATE-----\n");
  write_file(key_file, pair->private_key_pem);
  auto loaded = load_or_create(cert_file, key_file, "bad.example.test");
  ASSERT_FALSE(loaded);
  EXPECT_EQ(loaded.error(), tls_errc::bad_pem);
  EXPECT_NE(tls_error_detail().find(cert_file.string()), std::string::npos) << tls_error_detail();

  write_file(cert_file, pair->certificate_pem);
  write_file(key_file, "garbage");
  loaded = load_or_create(cert_file, key_file, "bad.example.test");
  ASSERT_FALSE(loaded);
  EXPECT_EQ(loaded.error(), tls_errc::bad_pem);
  EXPECT_NE(tls_error_detail().find(key_file.string()), std::string::npos) << tls_error_detail();
}

TEST(Tls, EncryptedKeyIsBadPemWithoutAskingForAPassword) {
  const temporary_directory directory;
  const fs::path cert_file = directory.path() / "cert.pem";
  const fs::path key_file = directory.path() / "key.pem";
  const auto pair = make_self_signed("locked.example.test");
  ASSERT_TRUE(pair);
  const key_ptr key = parse_key(pair->private_key_pem);
  bio_ptr bio(BIO_new(BIO_s_mem()));
  static const char password[] = "secret";
  ASSERT_EQ(PEM_write_bio_PrivateKey(bio.get(), key.get(), EVP_aes_256_cbc(),
                                     reinterpret_cast<const unsigned char*>(password),
                                     static_cast<int>(sizeof password - 1), nullptr, nullptr),
            1);
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  write_file(cert_file, pair->certificate_pem);
  write_file(key_file, std::string(data, static_cast<std::size_t>(size)));

  const auto loaded = load_or_create(cert_file, key_file, "locked.example.test");
  ASSERT_FALSE(loaded);
  EXPECT_EQ(loaded.error(), tls_errc::bad_pem);
}

TEST(Tls, KeyOfAnotherCertificateIsKeyMismatch) {
  const temporary_directory directory;
  const fs::path cert_file = directory.path() / "cert.pem";
  const fs::path key_file = directory.path() / "key.pem";
  const auto ours = make_self_signed("ours.example.test");
  const auto theirs = make_self_signed("ours.example.test");
  ASSERT_TRUE(ours && theirs);
  write_file(cert_file, ours->certificate_pem);
  write_file(key_file, theirs->private_key_pem);

  const auto loaded = load_or_create(cert_file, key_file, "ours.example.test");
  ASSERT_FALSE(loaded);
  EXPECT_EQ(loaded.error(), tls_errc::key_mismatch);
  EXPECT_NE(tls_error_detail(), "");
  // Nothing was replaced.
  EXPECT_EQ(read_file(key_file), theirs->private_key_pem);
}

TEST(Tls, OnlyOneFileIsMissingFileAndNothingIsOverwritten) {
  const temporary_directory directory;
  const fs::path cert_file = directory.path() / "cert.pem";
  const fs::path key_file = directory.path() / "key.pem";
  write_file(cert_file, "left alone");

  const auto loaded = load_or_create(cert_file, key_file, "half.example.test");
  ASSERT_FALSE(loaded);
  EXPECT_EQ(loaded.error(), tls_errc::missing_file);
  EXPECT_FALSE(fs::exists(key_file));
  EXPECT_EQ(read_file(cert_file), "left alone");
}

TEST(Tls, UnwritableDirectoryIsIoError) {
  const temporary_directory directory;
  // A regular file where a parent directory should be.
  write_file(directory.path() / "file", "x");
  const auto created = load_or_create(directory.path() / "file" / "cert.pem",
                                      directory.path() / "file" / "key.pem", "io.example.test");
  ASSERT_FALSE(created);
  EXPECT_EQ(created.error(), tls_errc::io_error);
  EXPECT_NE(tls_error_detail(), "");
}

// --- Error codes

TEST(Tls, EveryErrorHasItsOwnMessage) {
  std::set<std::string> messages;
  for (int value = 1; value <= static_cast<int>(tls_errc::openssl_error); ++value) {
    const std::error_code code = static_cast<tls_errc>(value);
    EXPECT_STREQ(code.category().name(), "msrp.tls");
    EXPECT_NE(code.message(), "unknown msrp.tls error") << value;
    messages.insert(code.message());
  }
  EXPECT_EQ(messages.size(), static_cast<std::size_t>(tls_errc::openssl_error));
  const std::error_code code = tls_errc::bad_pem;
  EXPECT_EQ(code, tls_errc::bad_pem);
  EXPECT_NE(code, msrp::errc::bad_header);
}

}  // namespace
}  // namespace msrp::net
