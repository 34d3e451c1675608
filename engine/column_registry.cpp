#include "engine/column_registry.hpp"

#include <stdexcept>

namespace predflow {

ColumnRegistry& ColumnRegistry::instance() {
  static ColumnRegistry registry;
  return registry;
}

bool ColumnRegistry::add_entry(Entry entry) {
  auto [it, inserted] = entries_.emplace(entry.name, entry);
  if (!inserted) throw std::logic_error("column '" + entry.name + "' registered twice");
  return true;
}

const ColumnRegistry::Entry* ColumnRegistry::find(const std::string& name) const {
  auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : &it->second;
}

std::vector<std::string> ColumnRegistry::names() const {
  std::vector<std::string> out;
  for (const auto& [name, entry] : entries_) out.push_back(name);
  return out;
}

}  // namespace predflow
