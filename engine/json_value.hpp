// Writes one value of any column type as JSON, for `predflow tap` and diagnostics: the
// engine can show a row without knowing what its columns hold.
//
// Built in: bool, numbers (non-finite → null), strings, system_clock time points (RFC 3339,
// UTC, microseconds), std::optional (empty → null), std::vector (an array). A node's own
// struct is written by a `void write_json(std::string& out, const T& value)` declared next
// to the struct (found by argument-dependent lookup); a type with neither is written as
// null rather than refused, so that a tap never fails because of a column it cannot show.
#pragma once

#include <chrono>
#include <concepts>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace predflow::json_out {

// "s" with JSON escapes; bytes that are not valid UTF-8 become U+FFFD, so that whatever a
// message carried, the output is valid JSON.
void append_string(std::string& out, std::string_view s);
// Shortest round-trip form; NaN and infinities (not JSON) → null.
void append_number(std::string& out, double v);
void append_number(std::string& out, float v);  // a float's own shortest form (0.1f → 0.1)
void append_integer(std::string& out, long long v);
void append_unsigned(std::string& out, unsigned long long v);
void append_time(std::string& out, std::chrono::system_clock::time_point t);

template <typename T>
struct is_optional : std::false_type {};
template <typename T>
struct is_optional<std::optional<T>> : std::true_type {};
template <typename T>
struct is_vector : std::false_type {};
template <typename T, typename A>
struct is_vector<std::vector<T, A>> : std::true_type {};

template <typename T>
void append_value(std::string& out, const T& v) {
  if constexpr (std::is_same_v<T, bool>) {
    out += v ? "true" : "false";
  } else if constexpr (std::is_same_v<T, float>) {
    append_number(out, v);
  } else if constexpr (std::is_floating_point_v<T>) {
    append_number(out, static_cast<double>(v));
  } else if constexpr (std::is_integral_v<T> && std::is_signed_v<T>) {
    append_integer(out, static_cast<long long>(v));
  } else if constexpr (std::is_integral_v<T>) {
    append_unsigned(out, static_cast<unsigned long long>(v));
  } else if constexpr (std::is_convertible_v<const T&, std::string_view>) {
    append_string(out, std::string_view(v));
  } else if constexpr (std::is_same_v<T, std::chrono::system_clock::time_point>) {
    append_time(out, v);
  } else if constexpr (is_optional<T>::value) {
    if (v) append_value(out, *v);
    else out += "null";
  } else if constexpr (is_vector<T>::value) {
    out += '[';
    for (std::size_t i = 0; i < v.size(); ++i) {
      if (i > 0) out += ',';
      append_value(out, v[i]);
    }
    out += ']';
  } else if constexpr (requires { write_json(out, v); }) {
    write_json(out, v);
  } else {
    out += "null";
  }
}

}  // namespace predflow::json_out
