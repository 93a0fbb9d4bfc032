// msrp/result.hpp: a value or the error that prevented it.
//
// `result<T>` is shaped like C++23's `std::expected<T, std::error_code>`, so that it can be
// replaced by it later: `has_value()`, `operator bool`, `*r`, `r->`, `value()`, `value_or()` and
// `error()`.
#pragma once

#include <cassert>
#include <system_error>
#include <utility>
#include <variant>

#include "msrp/error.hpp"

namespace msrp {

/// Holds either a `T` or a non-zero `std::error_code`.
template <class T>
class result {
 public:
  /// A successful result holding `value`.
  result(T value) : storage_(std::in_place_index<0>, std::move(value)) {}
  /// A failed result; `error` must not be zero.
  result(std::error_code error) : storage_(std::in_place_index<1>, error) { assert(error); }
  /// A failed result from an `msrp::errc`.
  result(errc error) : result(make_error_code(error)) {}

  bool has_value() const noexcept { return storage_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }

  /// The value; calling these on a failed result is a programming error.
  T& value() & { return std::get<0>(storage_); }
  const T& value() const& { return std::get<0>(storage_); }
  T&& value() && { return std::get<0>(std::move(storage_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  /// The value, or `fallback` when the result failed (as std::expected::value_or).
  T value_or(T fallback) const& { return has_value() ? value() : std::move(fallback); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  /// The error; zero when the result holds a value.
  std::error_code error() const noexcept {
    return has_value() ? std::error_code{} : std::get<1>(storage_);
  }

 private:
  std::variant<T, std::error_code> storage_;
};

}  // namespace msrp
