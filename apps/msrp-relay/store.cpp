// msrp-relay/store.cpp: what the credential stores share: errors, the rules for names and
// passwords, and the choice of a store by its location.
#include "store.hpp"

#include <algorithm>

#include "postgres_store.hpp"
#include "sqlite_store.hpp"

namespace msrp::relayd {
namespace {

thread_local std::string last_detail;

// RFC 4976 §7: username-value and realm-value are quoted-strings. Printable ASCII without `"`
// and `\` needs no quoted-pair, which not every client writes or reads.
bool is_quotable(std::string_view text, std::size_t max_size) {
  return !text.empty() && text.size() <= max_size && std::ranges::all_of(text, [](char c) {
    return c >= 0x20 && c <= 0x7E && c != '"' && c != '\\';
  });
}

class category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "msrp.store"; }

  std::string message(int value) const override {
    switch (static_cast<store_errc>(value)) {
      case store_errc::exists:
        return "user already exists";
      case store_errc::no_such_user:
        return "no such user";
      case store_errc::bad_user_name:
        return "user name must be 1 to 64 printable ASCII characters, without \" or \\";
      case store_errc::bad_realm:
        return "realm must be 1 to 255 printable ASCII characters, without \" or \\";
      case store_errc::bad_password:
        return "password must be 1 to 1024 bytes";
      case store_errc::database:
        return "credential database failure";
    }
    return "unknown msrp.store error";
  }
};

}  // namespace

const std::error_category& store_category() noexcept {
  static const category instance;
  return instance;
}

std::string store_error_detail() {
  return last_detail;
}

std::optional<std::string> credential_store::ha1(std::string_view user, std::string_view realm,
                                                 std::string_view algorithm) {
  auto found = find_ha1(user, realm, algorithm);
  return found ? std::move(*found) : std::nullopt;
}

bool is_postgres_uri(std::string_view location) {
  return location.starts_with("postgresql://") || location.starts_with("postgres://");
}

std::string redacted(std::string_view location) {
  std::string text(location);
  if (!is_postgres_uri(text)) return text;
  // postgresql://user:password@host/...: the password runs from the first ':' after the
  // scheme to the last '@' of the authority.
  const auto start = text.find("://") + 3;
  const auto authority_end = text.find_first_of("/?", start);
  const auto at = text.rfind('@', authority_end);
  if (at != std::string::npos && at >= start) {
    const auto colon = text.find(':', start);
    if (colon < at) text.replace(colon + 1, at - colon - 1, "***");
  }
  // ...?password=secret&...
  for (auto key = text.find("password=", start); key != std::string::npos;
       key = text.find("password=", key + 1)) {
    const char before = text[key - 1];
    if (before != '?' && before != '&') continue;
    const auto value = key + 9;
    text.replace(value, text.find('&', value) - value, "***");
  }
  return text;
}

result<std::unique_ptr<credential_store>> open_store(const std::string& location) {
  if (is_postgres_uri(location)) {
    auto store = postgres_store::open(location);
    if (!store) return store.error();
    return std::unique_ptr<credential_store>(std::make_unique<postgres_store>(std::move(*store)));
  }
  auto store = sqlite_store::open(location);
  if (!store) return store.error();
  return std::unique_ptr<credential_store>(std::make_unique<sqlite_store>(std::move(*store)));
}

namespace detail {

std::error_code check_names(std::string_view user, std::string_view realm) {
  if (!is_quotable(user, 64)) return store_errc::bad_user_name;
  if (!is_quotable(realm, 255)) return store_errc::bad_realm;
  return {};
}

std::error_code check_password(std::string_view password) {
  if (password.empty() || password.size() > 1024) return store_errc::bad_password;
  return {};
}

std::error_code fail(std::string detail) {
  last_detail = std::move(detail);
  return store_errc::database;
}

void clear_detail() {
  last_detail.clear();
}

}  // namespace detail

}  // namespace msrp::relayd
