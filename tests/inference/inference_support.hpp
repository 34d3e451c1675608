// Helpers for the inference tests: paths of the shipped models, throw-away model folders
// built from TorchScript source, and a harness that drives one node directly (no runtime
// threads), collecting what it emits per port.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/batch.hpp"
#include "engine/metrics.hpp"
#include "engine/node.hpp"
#include "engine/plan.hpp"
#include "support/node_harness.hpp"

namespace predflow::test {

inline std::string source_path(const std::string& relative) { return std::string(PREDFLOW_SOURCE_DIR) + "/" + relative; }
inline std::string normal_model() { return source_path("models/normal_day"); }
inline std::string earnings_model() { return source_path("models/earnings_day"); }
inline std::string python_tiny_model() { return source_path("models/testdata/python_tiny"); }

// A fresh folder under the temp directory, removed when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::string str() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

// Writes <dir>/model.pt from TorchScript `source` (methods forward/sample of x [N, width])
// and a model.yaml with an identity scaler, so tests feed the values the module sees.
// Returns the folder.
std::string write_model(const TempDir& dir, const std::string& source, long input_width,
                        const std::map<std::string, double>& floats = {}, const std::string& name = "test_model_v1",
                        const std::string& model_type = "normal_day");

void write_file(const std::filesystem::path& path, const std::string& text);
std::string read_text(const std::filesystem::path& path);

// repo/<version>/: a copy of the shipped normal-day model (models/normal_day/2.2) named
// lstm_test_<version> (the model_version its predictions carry): a model repository's
// version, for the reload, shadow and canary tests.
void add_model_version(const std::filesystem::path& repo, const std::string& version);

// repo/<version>/: a TorchScript model whose prediction is 0.1·x0 + `bias`, with noise of
// sd 0.01 in sample() (a version that is biased by design, for canary and shadow tests).
void add_scripted_version(const std::filesystem::path& repo, const std::string& version, double bias);

// A batch of `rows` symbols S0, S1, … with correlation ids, prices and features
// (row r, feature f = value(r, f)).
std::shared_ptr<Batch> feature_batch(std::size_t rows, std::size_t width, float (*value)(std::size_t, std::size_t) = nullptr);

}  // namespace predflow::test
