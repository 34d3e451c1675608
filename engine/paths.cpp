#include "engine/paths.hpp"

#include <filesystem>

namespace predflow {

PathLookup find_path(const std::string& pipeline_file, const std::string& given) {
  namespace fs = std::filesystem;
  std::error_code ec;
  PathLookup out;
  const fs::path p(given);
  if (p.is_absolute()) {
    if (fs::exists(p, ec)) out.path = given;
    return out;
  }
  const fs::path beside = (fs::path(pipeline_file).parent_path() / p).lexically_normal();
  out.beside = beside.string();
  out.in_current_directory = (fs::current_path(ec) / p).lexically_normal().string();
  if (fs::exists(beside, ec)) out.path = out.beside;
  else if (fs::exists(p, ec)) out.path = given;
  return out;
}

}  // namespace predflow
