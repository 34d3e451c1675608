#include "nodes/inference/script_module.hpp"

#include <torch/script.h>

#include "nodes/inference/ops_resolver.hpp"

namespace predflow::inference {

void save_script_module(const ScriptModuleSource& s, const std::string& path) {
  try {
    torch::jit::Module m(s.name);
    m.register_attribute("training", c10::BoolType::get(), false);
    for (const auto& [name, value] : s.floats) m.register_attribute(name, c10::FloatType::get(), value);
    for (const auto& [name, value] : s.ints) m.register_attribute(name, c10::IntType::get(), static_cast<int64_t>(value));
    m.define(s.source, ops_resolver());  // ops.predflow.dropout and other custom operators
    m.save(path);
  } catch (const c10::Error& e) {
    throw std::runtime_error("save_script_module " + s.name + ": " + e.what_without_backtrace());
  }
}

}  // namespace predflow::inference
