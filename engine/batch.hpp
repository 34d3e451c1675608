// The message on every edge: a columnar batch of symbols.
//
// Columns fill in as the batch moves down the pipeline (symbols → features → samples →
// statistics). Every per-row column is either empty or exactly size() long. After an
// emit the batch is shared read-only (BatchPtr is a pointer to const); a node that
// changes it calls Batch::take(), which copies only when someone else still holds it.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "engine/ack.hpp"

namespace predflow {

struct PredictionStats {
  double mean = 0, std = 0, p10 = 0, p50 = 0, p90 = 0;
  int samples = 0;
};

struct EarningsContext {
  std::optional<std::string> report_date;
  std::optional<std::string> timing;
  bool features_imputed = false;
};

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
  // --- per-row columns -------------------------------------------------------------
  std::vector<std::string> symbols;
  std::vector<std::string> correlation_ids;
  std::vector<std::string> features_ts;
  std::vector<double> prices;
  std::vector<float> features;  // row-major, size() x feature_width
  std::size_t feature_width = 0;
  std::vector<float> samples;   // row-major, size() x sample_count (MC samples per row)
  std::size_t sample_count = 0;
  // The Rao-Blackwellised mean of each row's samples (the mean head averaged over the
  // same dropout passes, without the zero-mean noise), when the model provides one;
  // mc_dropout publishes it as predicted_return. Empty: the mean of `samples` is used.
  std::vector<double> sample_means;
  std::vector<PredictionStats> stats;
  std::vector<EarningsContext> earnings;

  // --- batch-wide ------------------------------------------------------------------
  std::string route;          // e.g. "normal" / "earnings" once routed
  std::string model_type;     // set by inference
  std::string model_version;
  std::string device;
  Clock::time_point arrived{};  // when the earliest triggering event entered the pipeline
  std::chrono::system_clock::time_point predicted_at{};  // when its predictions were made (mc_dropout)
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

  std::size_t size() const { return symbols.size(); }
  bool empty() const { return symbols.empty() && failures.empty(); }

  // The token of one row's source message (null when the batch has none).
  const AckPtr& ack_of_row(std::size_t row) const;

  // The rows at `rows`, every column and the tokens they need; batch-wide fields copied,
  // failures not (they travel once, with the batch that first carried them).
  Batch select(std::span<const std::uint32_t> rows) const;
  Batch slice(std::size_t begin, std::size_t end) const;
  // Appends other's rows, failures and tokens (batch-wide fields kept from this batch).
  void append(const Batch& other);

  // A mutable batch: the same object when `ptr` is its only owner, else a copy.
  static std::shared_ptr<Batch> take(BatchPtr&& ptr);

  // For tests and the back-pressure benchmark: batches alive right now.
  static std::int64_t live_count();

 private:
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
