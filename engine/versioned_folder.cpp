#include "engine/versioned_folder.hpp"

#include <algorithm>
#include <filesystem>
#include <string_view>
#include <system_error>

namespace predflow {

namespace fs = std::filesystem;

bool is_version_name(const std::string& name) {
  if (name.empty()) return false;
  const std::size_t digit = (name[0] == 'v' || name[0] == 'V') ? 1 : 0;
  return digit < name.size() && name[digit] >= '0' && name[digit] <= '9';
}

bool version_less(const std::string& a, const std::string& b) {
  auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  std::size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (is_digit(a[i]) && is_digit(b[j])) {
      // Compare the digit runs as numbers of any length: leading zeros off, then the
      // longer run is the larger, then digit by digit.
      std::size_t ei = i, ej = j;
      while (ei < a.size() && is_digit(a[ei])) ++ei;
      while (ej < b.size() && is_digit(b[ej])) ++ej;
      std::size_t si = i, sj = j;
      while (si + 1 < ei && a[si] == '0') ++si;
      while (sj + 1 < ej && b[sj] == '0') ++sj;
      const std::string_view na(a.data() + si, ei - si), nb(b.data() + sj, ej - sj);
      if (na.size() != nb.size()) return na.size() < nb.size();
      if (na != nb) return na < nb;
      i = ei, j = ej;
    } else {
      if (a[i] != b[j]) return a[i] < b[j];
      ++i, ++j;
    }
  }
  return a.size() - i < b.size() - j;
}

std::vector<std::string> versions_in(const std::string& folder, const std::string& marker) {
  std::vector<std::string> versions;
  std::error_code ec;
  for (fs::directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!is_version_name(name) || !it->is_directory(ec)) continue;
    if (fs::is_regular_file(it->path() / marker, ec)) versions.push_back(name);
  }
  std::sort(versions.begin(), versions.end(), version_less);
  return versions;
}

}  // namespace predflow
