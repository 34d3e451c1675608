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
void select_column(const std::vector<T>& from, std::vector<T>& to, std::span<const std::uint32_t> rows) {
  if (from.empty()) return;
  to.reserve(rows.size());
  for (std::uint32_t r : rows) to.push_back(from[r]);
}

// Appends b to a, padding a column that only one side has so that a non-empty column
// keeps exactly size() entries.
template <typename T>
void append_column(std::vector<T>& a, const std::vector<T>& b, std::size_t a_rows, std::size_t b_rows) {
  if (a.empty() && b.empty()) return;
  if (a.empty()) a.resize(a_rows);
  if (b.empty()) a.resize(a.size() + b_rows);
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
  out.arrived = arrived;
  out.columns_ = columns_.select(rows);
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
  if (arrived == Clock::time_point{} || (other.arrived != Clock::time_point{} && other.arrived < arrived))
    arrived = other.arrived;

  append_column(correlation_ids, other.correlation_ids, a_rows, b_rows);
  columns_.append(other.columns_, a_rows, b_rows);
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
