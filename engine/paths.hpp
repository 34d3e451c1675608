// Where a relative path in a pipeline file points (FieldType::Path).
#pragma once

#include <optional>
#include <string>

namespace predflow {

struct PathLookup {
  std::optional<std::string> path;   // what exists: the path the node gets
  std::string beside;                // relative paths: the candidate beside the pipeline file
  std::string in_current_directory;  // relative paths: the candidate in the current directory
};

// An absolute path: itself, if it exists. A relative one: beside the pipeline file first
// (a pipeline and the files it names move together), then in the current directory (paths
// given through variables, such as PREDFLOW_MODELS, are often written relative to where
// predflow starts).
PathLookup find_path(const std::string& pipeline_file, const std::string& given);

}  // namespace predflow
