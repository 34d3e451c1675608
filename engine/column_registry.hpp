// Columns by name, for what names them from outside the code: the fixtures of
// `predflow test` (engine/pipeline_test.hpp). A node's column is known here once its key
// is registered — PREDFLOW_REGISTER_COLUMN(col::prices) in a .cpp of the node library —
// and read with engine/config_value.hpp.
#pragma once

#include <algorithm>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "engine/batch.hpp"
#include "engine/config_value.hpp"
#include "engine/registry.hpp"  // PREDFLOW_CONCAT

namespace predflow {

class ColumnRegistry {
 public:
  // Fills a column of `batch` from one value per row (null: the row has none, and gets
  // the type's default), or — for an attribute — from `values.front()`. "" or the error,
  // naming the row.
  using Reader = std::function<std::string(Batch& batch, const std::vector<const ConfigNode*>& values)>;
  struct Entry {
    std::string name;
    bool per_row = true;
    Reader read;
  };

  static ColumnRegistry& instance();
  const Entry* find(const std::string& name) const;
  std::vector<std::string> names() const;

  template <typename T>
  bool add(const Column<T>& key) {
    return add_entry({std::string(key.name), true, [&key](Batch& b, const std::vector<const ConfigNode*>& values) {
                        auto& column = b[key];
                        column.assign(values.size(), T{});
                        return read_rows(values, [&](std::size_t r, const ConfigNode& v, std::string& error) {
                          return config_in::read_value(v, column[r], error);
                        });
                      }});
  }
  template <typename T>
  bool add(const MatrixColumn<T>& key) {
    return add_entry({std::string(key.name), true, [&key](Batch& b, const std::vector<const ConfigNode*>& values) {
                        auto& matrix = b[key];
                        std::vector<std::vector<T>> rows(values.size());
                        std::string error = read_rows(values, [&](std::size_t r, const ConfigNode& v, std::string& e) {
                          return config_in::read_value(v, rows[r], e);
                        });
                        if (!error.empty()) return error;
                        matrix.width = 0;
                        for (const auto& row : rows) matrix.width = std::max(matrix.width, row.size());
                        for (std::size_t r = 0; r < rows.size(); ++r)
                          if (values[r] != nullptr && rows[r].size() != matrix.width)
                            return "row " + std::to_string(r + 1) + ": " + std::to_string(rows[r].size()) +
                                   " values, but other rows have " + std::to_string(matrix.width);
                        matrix.values.assign(rows.size() * matrix.width, T{});
                        for (std::size_t r = 0; r < rows.size(); ++r)
                          std::copy(rows[r].begin(), rows[r].end(), matrix.values.begin() + static_cast<std::ptrdiff_t>(r * matrix.width));
                        return std::string();
                      }});
  }
  template <typename T>
  bool add(const Attribute<T>& key) {
    return add_entry({std::string(key.name), false, [&key](Batch& b, const std::vector<const ConfigNode*>& values) {
                        std::string error;
                        if (values.empty() || values.front() == nullptr) return std::string();
                        return config_in::read_value(*values.front(), b[key], error) ? std::string() : error;
                      }});
  }

 private:
  bool add_entry(Entry entry);
  template <typename ReadOne>
  static std::string read_rows(const std::vector<const ConfigNode*>& values, ReadOne&& read_one) {
    for (std::size_t r = 0; r < values.size(); ++r) {
      if (values[r] == nullptr) continue;
      std::string error;
      if (!read_one(r, *values[r], error)) return "row " + std::to_string(r + 1) + ": " + error;
    }
    return "";
  }
  std::map<std::string, Entry> entries_;
};

}  // namespace predflow

// Makes a column nameable in fixtures: PREDFLOW_REGISTER_COLUMN(col::prices).
#define PREDFLOW_REGISTER_COLUMN(key)                                                        \
  [[maybe_unused]] static const bool PREDFLOW_CONCAT(predflow_registered_column_, __LINE__) = \
      ::predflow::ColumnRegistry::instance().add(key)
