// A model repository's version for tests: repo/<version>/ holding a copy of the shipped
// normal-day model (models/normal_day/2.2) named lstm_test_<version> — the model_version its
// predictions carry — with its model.yaml changed by `edit` where a test needs another model.
#pragma once

#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <stdexcept>
#include <string>

namespace predflow::test {

inline void add_shipped_version(const std::filesystem::path& repo, const std::string& version,
                                const std::function<void(std::string& yaml)>& edit = {}) {
  namespace fs = std::filesystem;
  const fs::path shipped = fs::path(PREDFLOW_SOURCE_DIR) / "models/normal_day/2.2";
  fs::create_directories(repo / version);
  fs::copy_file(shipped / "lstm_normal_v2.2.pt", repo / version / "lstm_normal_v2.2.pt", fs::copy_options::overwrite_existing);
  std::ifstream in(shipped / "model.yaml");
  std::string yaml((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string from = "name: lstm_normal_v2.2";
  const auto at = yaml.find(from);
  if (at == std::string::npos) throw std::runtime_error("the shipped model.yaml has no `" + from + "`");
  yaml.replace(at, from.size(), "name: lstm_test_" + version);
  if (edit) edit(yaml);
  std::ofstream(repo / version / "model.yaml") << yaml;
}

}  // namespace predflow::test
