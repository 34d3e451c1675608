#include "inference/inference_support.hpp"

#include "support/model_versions.hpp"

#include <atomic>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <unistd.h>

#include "engine/registry.hpp"
#include "nodes/inference/script_module.hpp"
#include "support/test_nodes.hpp"
#include "nodes/schema/prediction_columns.hpp"

namespace predflow::test {

namespace fs = std::filesystem;

TempDir::TempDir() {
  static std::atomic<int> counter{0};
  path_ = fs::temp_directory_path() /
          ("predflow-inference-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1)));
  fs::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

void write_file(const fs::path& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

std::string write_model(const TempDir& dir, const std::string& source, long input_width, const std::map<std::string, double>& floats,
                        const std::string& name, const std::string& model_type) {
  inference::ScriptModuleSource module;
  module.name = "TestModule";
  module.source = source;
  module.floats = floats;
  module.ints = {{"input_width", input_width}};
  inference::save_script_module(module, (dir.path() / "model.pt").string());
  std::string zeros, ones;
  for (long i = 0; i < input_width; ++i) {
    zeros += (i ? ", " : "") + std::string("0");
    ones += (i ? ", " : "") + std::string("1");
  }
  std::ostringstream yaml;
  yaml << "name: " << name << "\nmodel_type: " << model_type << "\nfile: model.pt\ninput_width: " << input_width
       << "\nscaler: {mean: [" << zeros << "], scale: [" << ones << "]}\ndropout: 0.5\nmc_samples_default: 20\n";
  write_file(dir.path() / "model.yaml", yaml.str());
  return dir.str();
}

std::shared_ptr<Batch> feature_batch(std::size_t rows, std::size_t width, float (*value)(std::size_t, std::size_t)) {
  auto b = make_batch();
  (*b)[col::features].width = width;
  for (std::size_t r = 0; r < rows; ++r) {
    b->symbols.push_back("S" + std::to_string(r));
    b->correlation_ids.push_back("corr-" + std::to_string(r));
    (*b)[col::prices].push_back(100.0 + static_cast<double>(r));
    for (std::size_t f = 0; f < width; ++f) (*b)[col::features].values.push_back(value ? value(r, f) : 0.0f);
  }
  return b;
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void add_model_version(const fs::path& repo, const std::string& version) { add_shipped_version(repo, version); }

void add_scripted_version(const fs::path& repo, const std::string& version, double bias) {
  TempDir scratch;
  const std::string source = R"JIT(
def forward(self, x: Tensor) -> Tensor:
    return x[:, 0] * 0.1 + self.bias

def sample(self, x: Tensor) -> Tensor:
    return x[:, 0] * 0.1 + self.bias + 0.01 * torch.randn_like(x[:, 0])
)JIT";
  const std::string folder = write_model(scratch, source, 20, {{"bias", bias}}, "lstm_test_" + version, "normal_day");
  fs::create_directories(repo / version);
  for (const auto& f : fs::directory_iterator(folder)) fs::copy_file(f.path(), repo / version / f.path().filename());
}

}  // namespace predflow::test
