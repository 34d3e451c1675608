// The message on every edge: a columnar batch of symbols.
//
// The engine owns what every pipeline needs — the row keys (symbols), correlation ids,
// acknowledgement tokens, failures, and when the batch's first event arrived. Everything
// else is a typed column the nodes declare (engine/columns.hpp) and fill in as the batch
// moves down the pipeline (the M5 nodes' columns: nodes/schema/prediction_columns.hpp).
// Every per-row column is either empty or exactly size() long. After an emit the batch is
// shared read-only (BatchPtr is a pointer to const); a node that changes it calls
// Batch::take(), which copies only when someone else still holds it.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "engine/ack.hpp"
#include "engine/columns.hpp"

namespace predflow {

// A symbol (or a whole input message) that a node could not process; the dead-letter
// node turns these into `dlq.predflow` records.
struct RowFailure {
  std::string stage;
  std::optional<std::string> symbol;
  std::string reason;
  std::string error;
  std::optional<std::string> correlation_id;
  int attempts = 1;
  std::string payload;  // raw input; the dead-letter node base64-encodes non-UTF-8
  std::size_t payload_bytes = 0;  // the input's whole size when `payload` quotes only its start
};

struct Batch;
using BatchPtr = std::shared_ptr<const Batch>;
using Clock = std::chrono::steady_clock;

struct Batch {
  // --- per-row, known to the engine ------------------------------------------------
  std::vector<std::string> symbols;
  std::vector<std::string> correlation_ids;

  // --- batch-wide ------------------------------------------------------------------
  Clock::time_point arrived{};  // when the earliest triggering event entered the pipeline
  std::vector<RowFailure> failures;

  // --- acknowledgement -------------------------------------------------------------
  // acks: the tokens of the source messages whose rows are in this batch; row_ack maps
  // each row to its token (index into acks), and may be empty when acks has one token.
  // shared_acks: tokens the batch as a whole holds — e.g. a message whose symbol was
  // merged into another row, or whose rows failed and travel here as `failures` —
  // copied into every batch derived from this one.
  std::vector<AckPtr> acks;
  std::vector<std::uint32_t> row_ack;
  std::vector<AckPtr> shared_acks;

  // --- the nodes' columns (engine/columns.hpp) --------------------------------------
  // Reading a column the batch lacks gives an empty one (const) or adds it (non-const).
  template <typename T>
  std::vector<T>& operator[](const Column<T>& key) {
    return columns_.get_or_add<detail::StoredRows<T>>(&key, key.name).values;
  }
  template <typename T>
  const std::vector<T>& operator[](const Column<T>& key) const {
    static const std::vector<T> none;
    const auto* c = columns_.get<detail::StoredRows<T>>(&key);
    return c != nullptr ? c->values : none;
  }
  template <typename T>
  Matrix<T>& operator[](const MatrixColumn<T>& key) {
    return columns_.get_or_add<detail::StoredMatrix<T>>(&key, key.name).matrix;
  }
  template <typename T>
  const Matrix<T>& operator[](const MatrixColumn<T>& key) const {
    static const Matrix<T> none;
    const auto* c = columns_.get<detail::StoredMatrix<T>>(&key);
    return c != nullptr ? c->matrix : none;
  }
  template <typename T>
  T& operator[](const Attribute<T>& key) {
    return columns_.get_or_add<detail::StoredAttribute<T>>(&key, key.name).value;
  }
  template <typename T>
  const T& operator[](const Attribute<T>& key) const {
    static const T none{};
    const auto* c = columns_.get<detail::StoredAttribute<T>>(&key);
    return c != nullptr ? c->value : none;
  }
  // Drops a column (e.g. inputs no later node reads, to free their memory).
  template <typename Key>
  void erase(const Key& key) { columns_.erase(&key); }
  // Every column's name and length: non-empty per-row columns must have size() rows.
  std::vector<ColumnSet::Shape> column_shapes() const { return columns_.shapes(); }
  // Row `row`'s columns as `"name":value,…` (JSON members without braces), for taps.
  void write_columns_json(std::string& out, std::size_t row) const { columns_.write_json(out, row); }

  std::size_t size() const { return symbols.size(); }
  bool empty() const { return symbols.empty() && failures.empty(); }

  // The token of one row's source message (null when the batch has none).
  const AckPtr& ack_of_row(std::size_t row) const;

  // The rows at `rows`, every column and the tokens they need; batch-wide fields copied,
  // failures not (they travel once, with the batch that first carried them).
  Batch select(std::span<const std::uint32_t> rows) const;
  Batch slice(std::size_t begin, std::size_t end) const;
  // Appends other's rows, columns, failures and tokens (attributes kept from this batch
  // unless it has none).
  void append(const Batch& other);

  // A mutable batch: the same object when `ptr` is its only owner, else a copy.
  static std::shared_ptr<Batch> take(BatchPtr&& ptr);

  // For tests and the back-pressure benchmark: batches alive right now.
  static std::int64_t live_count();

 private:
  ColumnSet columns_;
  struct LiveCounter {  // counts Batch objects without hand-written special members
    LiveCounter();
    LiveCounter(const LiveCounter&);
    LiveCounter& operator=(const LiveCounter&) { return *this; }
    ~LiveCounter();
  } live_counter_;
};

template <typename... Args>
std::shared_ptr<Batch> make_batch(Args&&... args) {
  return std::make_shared<Batch>(std::forward<Args>(args)...);
}

}  // namespace predflow
