#include "engine/prometheus_text.hpp"

#include <charconv>
#include <cmath>
#include <limits>
#include <optional>

namespace predflow {

namespace {

constexpr std::size_t kMaxLine = 64 * 1024;
constexpr std::size_t kMaxLabels = 64;

bool name_char(char c, bool first) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' || (!first && c >= '0' && c <= '9');
}

std::optional<double> parse_value(std::string_view v) {
  if (v == "+Inf" || v == "Inf") return std::numeric_limits<double>::infinity();
  if (v == "-Inf") return -std::numeric_limits<double>::infinity();
  if (v == "NaN") return std::numeric_limits<double>::quiet_NaN();
  double out = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || end != v.data() + v.size()) return std::nullopt;
  return out;
}

// One sample line: name, optional {labels}, value, optional timestamp.
bool parse_line(std::string_view line, MetricSample& out) {
  std::size_t i = 0;
  while (i < line.size() && name_char(line[i], i == 0)) ++i;
  if (i == 0) return false;
  out.name.assign(line.substr(0, i));
  out.labels.clear();
  if (i < line.size() && line[i] == '{') {
    ++i;
    for (;;) {
      while (i < line.size() && (line[i] == ' ' || line[i] == ',')) ++i;
      if (i < line.size() && line[i] == '}') {
        ++i;
        break;
      }
      const std::size_t key_start = i;
      while (i < line.size() && name_char(line[i], i == key_start)) ++i;
      if (i == key_start || i + 1 >= line.size() || line[i] != '=' || line[i + 1] != '"') return false;
      std::string key(line.substr(key_start, i - key_start));
      i += 2;
      std::string value;
      for (;; ++i) {
        if (i >= line.size()) return false;
        const char c = line[i];
        if (c == '"') break;
        if (c == '\\' && i + 1 < line.size()) {
          const char e = line[++i];
          value += e == 'n' ? '\n' : e;
        } else {
          value += c;
        }
      }
      ++i;  // the closing quote
      if (out.labels.size() >= kMaxLabels) return false;
      out.labels.emplace_back(std::move(key), std::move(value));
    }
  }
  while (i < line.size() && line[i] == ' ') ++i;
  std::size_t end = i;
  while (end < line.size() && line[end] != ' ') ++end;
  auto value = parse_value(line.substr(i, end - i));
  if (!value) return false;
  out.value = *value;
  return true;
}

}  // namespace

const std::string& MetricSample::label(std::string_view key) const {
  static const std::string none;
  for (const auto& [k, v] : labels)
    if (k == key) return v;
  return none;
}

ParsedMetrics parse_prometheus_text(std::string_view text, std::size_t max_samples) {
  ParsedMetrics out;
  MetricSample sample;
  while (!text.empty()) {
    const std::size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line.front() == '#') continue;
    if (line.size() > kMaxLine || out.samples.size() >= max_samples || !parse_line(line, sample)) {
      ++out.skipped_lines;
      continue;
    }
    out.samples.push_back(sample);
  }
  return out;
}

}  // namespace predflow
