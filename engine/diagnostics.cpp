#include "engine/diagnostics.hpp"

#include <algorithm>
#include <tuple>

namespace predflow {

std::string Diagnostic::str() const {
  std::string out = mark.file;
  if (mark.line > 0) out += ":" + std::to_string(mark.line) + ":" + std::to_string(mark.column);
  out += ": ";
  if (!path.empty()) out += path + ": ";
  out += message;
  return out;
}

void Diagnostics::add(SourceMark mark, std::string path, std::string message) {
  // One error per place: a value that failed interpolation is not also reported as
  // having the wrong type. A set of places, not a search of every earlier item: a file
  // with n bad entries cost n² (20,000 took 30 s).
  if (!path.empty()) {
    std::string place = mark.file + '\0' + std::to_string(mark.line) + ':' + std::to_string(mark.column) + '\0' + path;
    if (!places_.insert(std::move(place)).second) return;
  }
  items_.push_back({std::move(mark), std::move(path), std::move(message)});
}

std::string Diagnostics::str() const {
  std::vector<const Diagnostic*> sorted;
  for (const auto& d : items_) sorted.push_back(&d);
  std::stable_sort(sorted.begin(), sorted.end(), [](const Diagnostic* a, const Diagnostic* b) {
    return std::tie(a->mark.file, a->mark.line, a->mark.column) <
           std::tie(b->mark.file, b->mark.line, b->mark.column);
  });
  std::string out;
  for (const auto* d : sorted) out += d->str() + "\n";
  return out;
}

ConfigError::ConfigError(Diagnostics diagnostics)
    : std::runtime_error(diagnostics.str()), diagnostics_(std::move(diagnostics)) {}

namespace {
std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}
}  // namespace

std::string join(const std::vector<std::string>& items, const char* separator) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : separator) + s;
  return out;
}

std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  std::size_t best_distance = std::max<std::size_t>(2, word.size() / 3) + 1;
  for (const auto& c : candidates) {
    std::size_t d = edit_distance(word, c);
    if (d < best_distance) best_distance = d, best = c;
  }
  return best;
}

std::string suggest(const std::string& word, const std::vector<std::string>& candidates, const std::string& otherwise) {
  const std::string hint = did_you_mean(word, candidates);
  return hint.empty() ? otherwise : " (did you mean '" + hint + "'?)";
}

}  // namespace predflow
