// Builds and saves a small TorchScript module from source text, without Python: for
// tests that need a model whose output distribution is known. No libtorch in this header.
#pragma once

#include <map>
#include <string>

namespace predflow::inference {

struct ScriptModuleSource {
  std::string name = "TestModule";
  std::string source;                      // TorchScript methods (def forward(self, x): ...)
  std::map<std::string, double> floats;    // float attributes, e.g. {"p": 0.5}
  std::map<std::string, long> ints;        // int attributes, e.g. {"input_width": 3}
};

// Defines the module (with a `training` attribute, so eval() works) and saves it to path.
// Throws std::runtime_error on a TorchScript compile error.
void save_script_module(const ScriptModuleSource& module, const std::string& path);

}  // namespace predflow::inference
