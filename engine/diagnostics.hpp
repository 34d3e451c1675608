// Errors that point at a place in a pipeline file: `file:line:col: yaml.path: message`.
#pragma once

#include <stdexcept>
#include <string>
#include <unordered_set>
#include <vector>

namespace predflow {

// 1-based line and column; line 0 means "no position" (e.g. a --set override).
struct SourceMark {
  std::string file;
  int line = 0;
  int column = 0;
};

struct Diagnostic {
  SourceMark mark;
  std::string path;  // dotted YAML path, e.g. nodes.window.max_delay
  std::string message;

  std::string str() const;
};

class Diagnostics {
 public:
  void add(SourceMark mark, std::string path, std::string message);
  bool empty() const { return items_.empty(); }
  std::size_t size() const { return items_.size(); }
  const std::vector<Diagnostic>& items() const { return items_; }
  // All diagnostics, one per line, sorted by file position.
  std::string str() const;

 private:
  std::vector<Diagnostic> items_;
  std::unordered_set<std::string> places_;  // file, line, column and path of each item with a path
};

// Thrown when a pipeline cannot be loaded or validated; carries every error found.
class ConfigError : public std::runtime_error {
 public:
  explicit ConfigError(Diagnostics diagnostics);
  const Diagnostics& diagnostics() const { return diagnostics_; }

 private:
  Diagnostics diagnostics_;
};

// "a, b, c": the candidates a message lists.
std::string join(const std::vector<std::string>& items, const char* separator = ", ");

// Closest candidate by edit distance, or "" when nothing is close enough to suggest.
std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates);

// " (did you mean 'X'?)" for an unknown `word`, or `otherwise` (e.g. " (keys: a, b)") when
// no candidate is close: the tail of every "unknown …" message.
std::string suggest(const std::string& word, const std::vector<std::string>& candidates, const std::string& otherwise = "");

}  // namespace predflow
