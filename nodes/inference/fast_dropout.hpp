// The `predflow::dropout` TorchScript operator (fast_dropout.cpp). Its registration is a
// static initialiser; code that loads models calls fast_dropout_registered() so that the
// linker keeps the object file (and with it the registration) in every binary. Python
// loads the same operator from the shared library predflow_torch_ops
// (torch.ops.load_library, docs/models.md). No libtorch in this header.
#pragma once

namespace predflow::inference {

// Always true; referencing it links the operator in.
bool fast_dropout_registered();

}  // namespace predflow::inference
