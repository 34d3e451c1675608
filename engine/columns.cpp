#include "engine/columns.hpp"

#include <algorithm>

namespace predflow {

void ColumnSet::erase(const void* key) {
  std::erase_if(entries_, [key](const Entry& e) { return e.key == key; });
}

ColumnSet ColumnSet::select(std::span<const std::uint32_t> rows) const {
  ColumnSet out;
  out.entries_.reserve(entries_.size());
  for (const auto& e : entries_) out.entries_.push_back({e.key, e.column->select(rows)});
  return out;
}

void ColumnSet::append(const ColumnSet& other, std::size_t a_rows, std::size_t b_rows) {
  for (auto& e : entries_) e.column->append(other.find(e.key), a_rows, b_rows);
  // Columns only the other batch has: this batch's rows get default values.
  for (const auto& e : other.entries_) {
    if (find(e.key) != nullptr) continue;
    auto column = e.column->empty_like();
    column->append(e.column.get(), a_rows, b_rows);
    entries_.push_back({e.key, std::move(column)});
  }
}

std::vector<ColumnSet::Shape> ColumnSet::shapes() const {
  std::vector<Shape> out;
  out.reserve(entries_.size());
  for (const auto& e : entries_) out.push_back({e.column->name(), e.column->rows(), e.column->per_row()});
  return out;
}

void ColumnSet::write_json(std::string& out, std::size_t row) const {
  bool first = true;
  for (const auto& e : entries_) {
    if (!first) out += ',';
    first = false;
    json_out::append_string(out, e.column->name());
    out += ':';
    e.column->write_json(out, row);
  }
}

}  // namespace predflow
