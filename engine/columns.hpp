// Typed, node-owned columns of a Batch.
//
// The engine knows no domain: it moves rows, tokens and failures. What a row carries —
// features, samples, prediction statistics, prices — is declared by the nodes as keys:
//
//   inline constexpr Column<double> price{"price"};             // one value per row
//   inline constexpr MatrixColumn<float> features{"features"};  // `width` values per row
//   inline constexpr Attribute<std::string> route{"route"};     // one value per batch
//
// and read or written as batch[price], batch[features].values, batch[route]. A key is
// identified by its address (an inline variable has one address in the whole program),
// so declaring a column in a header is all it takes: no registry, no engine edit. Because
// Batch::select()/append() treat every column through the type-erased interface below, a
// column can never be dropped by a window or a batcher that does not know it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/json_value.hpp"

namespace predflow {

template <typename T>
struct Column {
  std::string_view name;
};

template <typename T>
struct MatrixColumn {
  std::string_view name;
};

template <typename T>
struct Attribute {
  std::string_view name;
};

// Row-major values, `width` per row (width 0: the column is empty).
template <typename T>
struct Matrix {
  std::vector<T> values;
  std::size_t width = 0;

  std::size_t rows() const { return width == 0 ? 0 : values.size() / width; }
  bool empty() const { return values.empty(); }
  std::span<const T> row(std::size_t r) const { return {values.data() + r * width, width}; }
  std::span<T> row(std::size_t r) { return {values.data() + r * width, width}; }
};

namespace detail {

// One stored column or attribute, whatever its type.
class StoredColumn {
 public:
  virtual ~StoredColumn() = default;
  virtual std::string_view name() const = 0;
  virtual std::unique_ptr<StoredColumn> clone() const = 0;
  // The same kind of column with no values (the side of an append that lacks it).
  virtual std::unique_ptr<StoredColumn> empty_like() const = 0;
  // The values of `rows` (an attribute: its value).
  virtual std::unique_ptr<StoredColumn> select(std::span<const std::uint32_t> rows) const = 0;
  // Appends `other` (null: a batch without this column, whose b_rows rows get default
  // values). An attribute keeps its value unless it has none (equals T{}).
  virtual void append(const StoredColumn* other, std::size_t a_rows, std::size_t b_rows) = 0;
  // Rows the column holds (an attribute: none); non-empty columns hold exactly size().
  virtual std::size_t rows() const = 0;
  virtual bool per_row() const = 0;
  // Row `row`'s value as JSON (engine/json_value.hpp); null when the column is empty.
  virtual void write_json(std::string& out, std::size_t row) const = 0;
};

template <typename T>
class StoredRows final : public StoredColumn {
 public:
  explicit StoredRows(std::string_view name) : name_(name) {}
  std::vector<T> values;

  std::string_view name() const override { return name_; }
  std::unique_ptr<StoredColumn> clone() const override { return std::make_unique<StoredRows>(*this); }
  std::unique_ptr<StoredColumn> empty_like() const override { return std::make_unique<StoredRows>(name_); }
  std::unique_ptr<StoredColumn> select(std::span<const std::uint32_t> rows) const override {
    auto out = std::make_unique<StoredRows>(name_);
    if (values.empty()) return out;
    out->values.reserve(rows.size());
    for (std::uint32_t r : rows) out->values.push_back(values[r]);
    return out;
  }
  void append(const StoredColumn* other, std::size_t a_rows, std::size_t b_rows) override {
    const auto* b = static_cast<const StoredRows*>(other);
    const bool b_has = b != nullptr && !b->values.empty();
    if (values.empty() && !b_has) return;
    if (values.empty()) values.resize(a_rows);
    if (b_has) values.insert(values.end(), b->values.begin(), b->values.end());
    else values.resize(values.size() + b_rows);
  }
  std::size_t rows() const override { return values.size(); }
  bool per_row() const override { return true; }
  void write_json(std::string& out, std::size_t row) const override {
    if (row < values.size()) json_out::append_value(out, values[row]);
    else out += "null";
  }

 private:
  std::string_view name_;
};

template <typename T>
class StoredMatrix final : public StoredColumn {
 public:
  explicit StoredMatrix(std::string_view name) : name_(name) {}
  Matrix<T> matrix;

  std::string_view name() const override { return name_; }
  std::unique_ptr<StoredColumn> clone() const override { return std::make_unique<StoredMatrix>(*this); }
  std::unique_ptr<StoredColumn> empty_like() const override { return std::make_unique<StoredMatrix>(name_); }
  std::unique_ptr<StoredColumn> select(std::span<const std::uint32_t> rows) const override {
    auto out = std::make_unique<StoredMatrix>(name_);
    const std::size_t w = matrix.width;
    out->matrix.width = w;
    if (matrix.values.empty() || w == 0) return out;
    out->matrix.values.reserve(rows.size() * w);
    for (std::uint32_t r : rows) {
      auto from = matrix.values.begin() + static_cast<std::ptrdiff_t>(r * w);
      out->matrix.values.insert(out->matrix.values.end(), from, from + static_cast<std::ptrdiff_t>(w));
    }
    return out;
  }
  void append(const StoredColumn* other, std::size_t a_rows, std::size_t b_rows) override {
    const auto* b = static_cast<const StoredMatrix*>(other);
    const bool b_has = b != nullptr && !b->matrix.values.empty();
    if (matrix.width == 0 && b != nullptr) matrix.width = b->matrix.width;
    if (matrix.values.empty() && !b_has) return;
    if (matrix.values.empty()) matrix.values.resize(a_rows * matrix.width);
    if (b_has) matrix.values.insert(matrix.values.end(), b->matrix.values.begin(), b->matrix.values.end());
    else matrix.values.resize(matrix.values.size() + b_rows * matrix.width);
  }
  std::size_t rows() const override { return matrix.rows(); }
  bool per_row() const override { return true; }
  void write_json(std::string& out, std::size_t row) const override {
    if (row >= matrix.rows()) {
      out += "null";
      return;
    }
    out += '[';
    const auto values = matrix.row(row);
    for (std::size_t i = 0; i < values.size(); ++i) {
      if (i > 0) out += ',';
      json_out::append_value(out, values[i]);
    }
    out += ']';
  }

 private:
  std::string_view name_;
};

template <typename T>
class StoredAttribute final : public StoredColumn {
 public:
  explicit StoredAttribute(std::string_view name) : name_(name) {}
  T value{};

  std::string_view name() const override { return name_; }
  std::unique_ptr<StoredColumn> clone() const override { return std::make_unique<StoredAttribute>(*this); }
  std::unique_ptr<StoredColumn> empty_like() const override { return std::make_unique<StoredAttribute>(name_); }
  std::unique_ptr<StoredColumn> select(std::span<const std::uint32_t>) const override { return clone(); }
  void append(const StoredColumn* other, std::size_t, std::size_t) override {
    if (other != nullptr && value == T{}) value = static_cast<const StoredAttribute*>(other)->value;
  }
  std::size_t rows() const override { return 0; }
  bool per_row() const override { return false; }
  void write_json(std::string& out, std::size_t) const override { json_out::append_value(out, value); }

 private:
  std::string_view name_;
};

}  // namespace detail

// The columns of one batch, keyed by the address of their key. A batch has a handful, so
// a linear search beats any map; copying a batch copies its columns.
class ColumnSet {
 public:
  ColumnSet() = default;
  ColumnSet(const ColumnSet& other) { *this = other; }
  ColumnSet& operator=(const ColumnSet& other) {
    if (this == &other) return *this;
    entries_.clear();
    entries_.reserve(other.entries_.size());
    for (const auto& e : other.entries_) entries_.push_back({e.key, e.column->clone()});
    return *this;
  }
  ColumnSet(ColumnSet&&) noexcept = default;
  ColumnSet& operator=(ColumnSet&&) noexcept = default;

  template <typename Stored>
  Stored& get_or_add(const void* key, std::string_view name) {
    if (auto* found = find(key)) return static_cast<Stored&>(*found);
    entries_.push_back({key, std::make_unique<Stored>(name)});
    return static_cast<Stored&>(*entries_.back().column);
  }
  template <typename Stored>
  const Stored* get(const void* key) const {
    return static_cast<const Stored*>(find(key));
  }
  void erase(const void* key);

  ColumnSet select(std::span<const std::uint32_t> rows) const;
  void append(const ColumnSet& other, std::size_t a_rows, std::size_t b_rows);

  // Names and row counts, for checks and diagnostics.
  struct Shape {
    std::string_view name;
    std::size_t rows;
    bool per_row;
  };
  std::vector<Shape> shapes() const;
  // `"name":value` for every column at row `row`, comma-separated (no braces).
  void write_json(std::string& out, std::size_t row) const;

 private:
  struct Entry {
    const void* key;
    std::unique_ptr<detail::StoredColumn> column;
  };
  detail::StoredColumn* find(const void* key) const {
    for (const auto& e : entries_)
      if (e.key == key) return e.column.get();
    return nullptr;
  }
  std::vector<Entry> entries_;
};

}  // namespace predflow
