// A TorchScript resolver for compiling model source in C++ that calls custom operators:
// `ops.predflow.dropout(x, p, train)` (the spelling TorchScript itself writes into saved
// files). libtorch's default C++ resolver knows only `torch` (the aten operators), so
// Module::define needs this one for anything under `ops`. Only for files that include
// libtorch anyway (script_module.cpp, tools/train_models/torchscript_export.cpp).
#pragma once

#include <torch/csrc/jit/frontend/resolver.h>
#include <torch/csrc/jit/frontend/sugared_value.h>

#include <memory>
#include <string>

namespace predflow::inference {

// `ops.NAMESPACE.op` → the operator NAMESPACE::op.
struct OpsNamespaces : torch::jit::SugaredValue {
  std::string kind() const override { return "ops"; }
  std::shared_ptr<torch::jit::SugaredValue> attr(const torch::jit::SourceRange&, torch::jit::GraphFunction&,
                                                 const std::string& field) override {
    return std::make_shared<torch::jit::BuiltinModule>(field);
  }
};

struct OpsResolver : torch::jit::Resolver {
  std::shared_ptr<torch::jit::SugaredValue> resolveValue(const std::string& name, torch::jit::GraphFunction&,
                                                         const torch::jit::SourceRange&) override {
    if (name == "torch") return std::make_shared<torch::jit::BuiltinModule>("aten");
    if (name == "ops") return std::make_shared<OpsNamespaces>();
    return nullptr;
  }
  c10::TypePtr resolveType(const std::string&, const torch::jit::SourceRange&) override { return nullptr; }
};

inline std::shared_ptr<OpsResolver> ops_resolver() { return std::make_shared<OpsResolver>(); }

}  // namespace predflow::inference
