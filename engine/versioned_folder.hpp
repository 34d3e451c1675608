// A folder of version folders — a model repository (models/normal_day/2.2/model.yaml) and
// anything else kept the same way. Plain C++ (the standalone inference benchmark compiles
// it on a machine that has only libtorch).
#pragma once

#include <string>
#include <vector>

namespace predflow {

// A version folder's name starts with a digit, or with `v` and a digit (1, 2.2, v3,
// 2026-12-06); other names (testdata, .git, tmp-upload) are not versions.
bool is_version_name(const std::string& name);

// Natural order: runs of digits compare as numbers of any length (2.9 < 2.10 < 10,
// v2 < v10), everything else byte by byte.
bool version_less(const std::string& a, const std::string& b);

// The versions in `folder` whose folder holds `marker` (e.g. model.yaml), oldest first;
// empty when there is none or `folder` cannot be read.
std::vector<std::string> versions_in(const std::string& folder, const std::string& marker);

}  // namespace predflow
