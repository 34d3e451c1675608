// The engine's per-node metrics (messages and rows per port, busy time, queue depth,
// errors), kept in relaxed integer atomics on the hot path and turned into Prometheus
// families only when /metrics is scraped. prometheus-cpp's own counters cost a CAS loop on
// a double each and its histogram a mutex — several per message per node.
#pragma once

#include <prometheus/collectable.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace predflow {

class NodeStats {
 public:
  NodeStats(std::string node, std::vector<std::string> ports);

  void count(std::size_t port, std::size_t rows) {
    ports_[port].messages.fetch_add(1, std::memory_order_relaxed);
    ports_[port].rows.fetch_add(rows, std::memory_order_relaxed);
  }
  void queued() { queue_depth_.fetch_add(1, std::memory_order_relaxed); }
  void dequeued() { queue_depth_.fetch_sub(1, std::memory_order_relaxed); }
  void error() { errors_.fetch_add(1, std::memory_order_relaxed); }
  void busy(std::chrono::nanoseconds d);

  const std::string& node() const { return node_; }

 private:
  friend class NodeStatsCollector;
  struct Port {
    std::string name;
    std::atomic<std::uint64_t> messages{0}, rows{0};
  };
  std::string node_;
  std::deque<Port> ports_;  // deque: atomics neither copy nor move
  std::atomic<std::int64_t> queue_depth_{0};
  std::atomic<std::uint64_t> errors_{0};
  std::vector<std::atomic<std::uint64_t>> busy_buckets_;  // one per bound, plus +Inf
  std::atomic<std::uint64_t> busy_count_{0}, busy_sum_ns_{0};
};

// The counters of one node at one moment (the live graph's rates are differences of two).
struct NodeStatsSnapshot {
  std::string node;
  std::vector<std::pair<std::string, std::uint64_t>> port_rows, port_messages;  // by port, in order
  std::vector<std::uint64_t> busy_cumulative;  // per bucket bound of Metrics::latency_buckets(), then +Inf
  std::uint64_t busy_count = 0, busy_sum_ns = 0, errors = 0;
  std::int64_t queue_depth = 0;
};

class NodeStatsCollector : public prometheus::Collectable {
 public:
  std::vector<NodeStatsSnapshot> snapshot() const;
  // Stats for one node; ports: the input port (if any) then the output ports, by name.
  NodeStats& add(std::string node, std::vector<std::string> ports);
  // `predflow_in_flight_messages`, read at scrape time (null: not reported).
  void set_in_flight(std::function<std::int64_t()> read);
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  mutable std::mutex mutex_;
  std::deque<NodeStats> nodes_;
  std::function<std::int64_t()> in_flight_;
};

}  // namespace predflow
