#include "engine/batch.hpp"

#include <atomic>
#include <numeric>

namespace predflow {

AckToken::~AckToken() {
  if (on_complete_) on_complete_(failed() ? AckOutcome::Failed : AckOutcome::Done);
}

namespace {
std::atomic<std::int64_t> live_batches{0};

template <typename T>
void select_column(const std::vector<T>& from, std::vector<T>& to, std::span<const std::uint32_t> rows,
                   std::size_t width = 1) {
  if (from.empty() || width == 0) return;
  to.reserve(rows.size() * width);
  for (std::uint32_t r : rows)
    to.insert(to.end(), from.begin() + static_cast<std::ptrdiff_t>(r * width),
              from.begin() + static_cast<std::ptrdiff_t>((r + 1) * width));
}

// Appends b to a, padding a column that only one side has so that every non-empty
// column keeps exactly size() * width entries.
template <typename T>
void append_column(std::vector<T>& a, const std::vector<T>& b, std::size_t a_rows, std::size_t b_rows,
                   std::size_t width = 1) {
  if (a.empty() && b.empty()) return;
  if (a.empty()) a.resize(a_rows * width);
  if (b.empty()) a.resize(a.size() + b_rows * width);
  else a.insert(a.end(), b.begin(), b.end());
}
}  // namespace

Batch::LiveCounter::LiveCounter() { live_batches.fetch_add(1, std::memory_order_relaxed); }
Batch::LiveCounter::LiveCounter(const LiveCounter&) { live_batches.fetch_add(1, std::memory_order_relaxed); }
Batch::LiveCounter::~LiveCounter() { live_batches.fetch_sub(1, std::memory_order_relaxed); }
std::int64_t Batch::live_count() { return live_batches.load(std::memory_order_relaxed); }

const AckPtr& Batch::ack_of_row(std::size_t row) const {
  static const AckPtr none;
  if (acks.empty()) return none;
  return row_ack.empty() ? acks.front() : acks[row_ack[row]];
}

Batch Batch::select(std::span<const std::uint32_t> rows) const {
  Batch out;
  select_column(symbols, out.symbols, rows);
  select_column(correlation_ids, out.correlation_ids, rows);
  select_column(features_ts, out.features_ts, rows);
  select_column(prices, out.prices, rows);
  select_column(features, out.features, rows, feature_width);
  out.feature_width = feature_width;
  select_column(samples, out.samples, rows, sample_count);
  out.sample_count = sample_count;
  select_column(sample_means, out.sample_means, rows);
  select_column(stats, out.stats, rows);
  select_column(earnings, out.earnings, rows);
  out.route = route;
  out.model_type = model_type;
  out.model_version = model_version;
  out.device = device;
  out.arrived = arrived;
  out.predicted_at = predicted_at;
  out.shared_acks = shared_acks;
  if (!acks.empty() && !rows.empty()) {
    if (row_ack.empty()) {
      out.acks = {acks.front()};
    } else {
      // Re-index only the tokens the selected rows use.
      std::vector<std::int64_t> new_index(acks.size(), -1);
      out.row_ack.reserve(rows.size());
      for (std::uint32_t r : rows) {
        std::uint32_t old = row_ack[r];
        if (new_index[old] < 0) {
          new_index[old] = static_cast<std::int64_t>(out.acks.size());
          out.acks.push_back(acks[old]);
        }
        out.row_ack.push_back(static_cast<std::uint32_t>(new_index[old]));
      }
      if (out.acks.size() == 1) out.row_ack.clear();
    }
  }
  return out;
}

Batch Batch::slice(std::size_t begin, std::size_t end) const {
  std::vector<std::uint32_t> rows(end - begin);
  std::iota(rows.begin(), rows.end(), static_cast<std::uint32_t>(begin));
  return select(rows);
}

void Batch::append(const Batch& other) {
  const std::size_t a_rows = size(), b_rows = other.size();
  if (a_rows == 0 && symbols.empty() && feature_width == 0) feature_width = other.feature_width;
  if (a_rows == 0 && sample_count == 0) sample_count = other.sample_count;
  if (route.empty()) route = other.route;
  if (model_type.empty()) model_type = other.model_type, model_version = other.model_version, device = other.device;
  if (arrived == Clock::time_point{} || (other.arrived != Clock::time_point{} && other.arrived < arrived))
    arrived = other.arrived;
  if (predicted_at == std::chrono::system_clock::time_point{}) predicted_at = other.predicted_at;

  append_column(correlation_ids, other.correlation_ids, a_rows, b_rows);
  append_column(features_ts, other.features_ts, a_rows, b_rows);
  append_column(prices, other.prices, a_rows, b_rows);
  append_column(features, other.features, a_rows, b_rows, feature_width);
  append_column(samples, other.samples, a_rows, b_rows, sample_count);
  append_column(sample_means, other.sample_means, a_rows, b_rows);
  append_column(stats, other.stats, a_rows, b_rows);
  append_column(earnings, other.earnings, a_rows, b_rows);
  symbols.insert(symbols.end(), other.symbols.begin(), other.symbols.end());
  failures.insert(failures.end(), other.failures.begin(), other.failures.end());
  shared_acks.insert(shared_acks.end(), other.shared_acks.begin(), other.shared_acks.end());

  // Row tokens: concatenate the tables and shift the other batch's indices.
  if (b_rows == 0) {  // tokens without rows are held by the batch as a whole
    shared_acks.insert(shared_acks.end(), other.acks.begin(), other.acks.end());
    return;
  }
  if (other.acks.empty()) {
    if (!acks.empty() && b_rows > 0) {
      // Rows without a token: give them none by pointing at a null entry.
      if (row_ack.empty()) row_ack.assign(a_rows, 0);
      acks.push_back(nullptr);
      row_ack.resize(a_rows + b_rows, static_cast<std::uint32_t>(acks.size() - 1));
    }
    return;
  }
  if (acks.empty() && a_rows == 0) {
    acks = other.acks;
    row_ack = other.row_ack;
    return;
  }
  if (acks.empty()) {  // existing rows have no token
    acks.push_back(nullptr);
    row_ack.assign(a_rows, 0);
  } else if (row_ack.empty()) {
    row_ack.assign(a_rows, 0);
  }
  const auto offset = static_cast<std::uint32_t>(acks.size());
  acks.insert(acks.end(), other.acks.begin(), other.acks.end());
  if (other.row_ack.empty()) row_ack.resize(a_rows + b_rows, offset);
  else
    for (std::uint32_t i : other.row_ack) row_ack.push_back(offset + i);
}

std::shared_ptr<Batch> Batch::take(BatchPtr&& ptr) {
  // The object was created mutable (make_batch), so casting const away is sound when we
  // hold the only reference; otherwise other readers exist and we must copy.
  if (ptr.use_count() == 1) return std::const_pointer_cast<Batch>(std::move(ptr));
  return std::make_shared<Batch>(*ptr);
}

}  // namespace predflow
