// engine/versioned_folder.hpp: version names, their natural order, and listing a folder of
// version folders (a model repository).
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <unistd.h>
#include <vector>

#include "engine/versioned_folder.hpp"

using namespace predflow;
namespace fs = std::filesystem;

TEST_CASE("version names: a digit first, or v and a digit") {
  for (const char* yes : {"1", "2.2", "10", "v3", "V3", "2026-12-06", "0"}) CHECK_MESSAGE(is_version_name(yes), yes);
  for (const char* no : {"", "v", "latest", "testdata", ".git", "tmp-2", "-1", "vx"}) CHECK_MESSAGE(!is_version_name(no), no);
}

TEST_CASE("versions order naturally: digit runs as numbers of any length") {
  CHECK(version_less("1", "2"));
  CHECK(version_less("2", "10"));
  CHECK(version_less("2.9", "2.10"));
  CHECK(version_less("2.2", "2.2.1"));
  CHECK(version_less("v2", "v10"));
  CHECK(version_less("1.01", "1.2"));    // 01 is 1
  CHECK_FALSE(version_less("1.01", "1.1"));
  CHECK_FALSE(version_less("1.1", "1.01"));  // equal as numbers: neither is less
  CHECK(version_less("2026-12-06", "2026-12-10"));
  CHECK(version_less("99999999999999999999", "100000000000000000000"));  // past 64 bits
  CHECK_FALSE(version_less("3", "3"));
  // A strict weak order: sorting shuffled names gives one answer.
  std::vector<std::string> names{"1", "2", "2.1", "2.9", "2.10", "10", "10.0.1", "v2", "v10"};
  const auto sorted = names;
  std::mt19937 rng(7);
  for (int i = 0; i < 20; ++i) {
    std::shuffle(names.begin(), names.end(), rng);
    std::sort(names.begin(), names.end(), version_less);
    CHECK(names == sorted);
  }
}

TEST_CASE("versions_in: the version folders holding the marker, oldest first") {
  const fs::path root = fs::temp_directory_path() / ("predflow-versions-" + std::to_string(::getpid()));
  fs::remove_all(root);
  auto version = [&](const std::string& name, bool marker) {
    fs::create_directories(root / name);
    if (marker) std::ofstream(root / name / "model.yaml") << "name: x\n";
  };
  version("10", true);
  version("2", true);
  version("2.10", true);
  version("2.9", true);
  version("3", false);         // no marker: still being copied, or not a version
  version("testdata", true);   // not a version name
  std::ofstream(root / "7") << "a file, not a folder\n";
  CHECK(versions_in(root.string(), "model.yaml") == std::vector<std::string>{"2", "2.9", "2.10", "10"});
  CHECK(versions_in((root / "missing").string(), "model.yaml").empty());
  CHECK(versions_in((root / "7").string(), "model.yaml").empty());
  fs::remove_all(root);
}
