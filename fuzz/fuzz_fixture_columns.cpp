// The fixtures of `predflow test` files: any YAML text read as the value of every column
// the nodes register (ColumnRegistry readers: numbers, strings, times, optionals, matrices,
// the M5 structs). A reader either fills the column — one value per row, or a matrix whose
// rows have one width — or says why not; it never throws or crashes.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "engine/column_registry.hpp"
#include "engine/config.hpp"
#include "fuzz_check.hpp"

using namespace predflow;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 64 * 1024) return 0;
  Diagnostics diagnostics;
  auto tree = parse_yaml(std::string_view(reinterpret_cast<const char*>(data), size), "fixture.yaml", diagnostics);
  if (!tree) return 0;
  // The document as one row's value, and its items (if a list) as rows of their own.
  std::vector<const ConfigNode*> one = {&*tree}, rows;
  for (const auto& item : tree->items) rows.push_back(&item);
  auto& registry = ColumnRegistry::instance();
  for (const auto& name : registry.names()) {
    const auto* entry = registry.find(name);
    for (const auto* values : {&one, &rows}) {
      if (values->empty()) continue;
      Batch batch;
      batch.symbols.assign(values->size(), "S");
      const std::string error = entry->read(batch, *values);
      if (!error.empty() || !entry->per_row) continue;
      for (const auto& shape : batch.column_shapes())
        if (shape.per_row && shape.rows != 0) FUZZ_CHECK(shape.rows == values->size());
    }
  }
  return 0;
}
