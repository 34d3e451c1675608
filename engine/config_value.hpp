// Reads one value of any column type from a pipeline-test fixture (a ConfigNode), the
// mirror of engine/json_value.hpp: bool, numbers, strings, RFC 3339 times, std::optional
// (null → empty), std::vector (a sequence). A node's own struct is read by a
// `bool read_config(const ConfigNode&, T&, std::string& error)` declared next to it.
#pragma once

#include <chrono>
#include <string>
#include <type_traits>

#include "engine/config.hpp"
#include "engine/json_value.hpp"
#include "engine/timestamps.hpp"
#include "engine/units.hpp"

namespace predflow::config_in {

template <typename T>
bool read_value(const ConfigNode& node, T& out, std::string& error) {
  auto expect = [&](const char* what) {
    error = std::string("expected ") + what + ", got " +
            (node.is_scalar() ? "'" + node.scalar + "'" : std::string("a ") + node.kind_name());
    return false;
  };
  if constexpr (json_out::is_optional<T>::value) {
    if (node.is_null() || (node.is_scalar() && (node.scalar == "null" || node.scalar == "~"))) {
      out.reset();
      return true;
    }
    typename T::value_type inner{};
    if (!read_value(node, inner, error)) return false;
    out = std::move(inner);
    return true;
  } else if constexpr (json_out::is_vector<T>::value) {
    if (!node.is_sequence()) return expect("a sequence");
    out.clear();
    for (const auto& item : node.items) {
      typename T::value_type v{};
      if (!read_value(item, v, error)) return false;
      out.push_back(std::move(v));
    }
    return true;
  } else if constexpr (std::is_same_v<T, bool>) {
    auto v = node.is_scalar() ? parse_bool(node.scalar) : std::nullopt;
    if (!v) return expect("true or false");
    out = *v;
    return true;
  } else if constexpr (std::is_integral_v<T>) {
    auto v = node.is_scalar() ? parse_integer(node.scalar) : std::nullopt;
    if (!v) return expect("a whole number");
    out = static_cast<T>(*v);
    return true;
  } else if constexpr (std::is_floating_point_v<T>) {
    auto v = node.is_scalar() ? parse_number(node.scalar) : std::nullopt;
    if (!v) return expect("a number");
    out = static_cast<T>(*v);
    return true;
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!node.is_scalar()) return expect("a string");
    out = node.scalar;
    return true;
  } else if constexpr (std::is_same_v<T, std::chrono::system_clock::time_point>) {
    auto v = node.is_scalar() ? parse_rfc3339(node.scalar) : std::nullopt;
    if (!v) return expect("an RFC 3339 time such as 2026-12-04T14:30:00Z");
    out = *v;
    return true;
  } else if constexpr (requires { read_config(node, out, error); }) {
    return read_config(node, out, error);
  } else {
    error = "this column cannot be given in a fixture (its type has no read_config)";
    return false;
  }
}

}  // namespace predflow::config_in
