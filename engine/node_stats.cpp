#include "engine/node_stats.hpp"

#include "engine/tap.hpp"

#include <algorithm>
#include <limits>

#include "engine/metrics.hpp"

namespace predflow {

namespace {
// The busy-time buckets of Metrics::latency_buckets(), in integer nanoseconds.
const std::vector<std::uint64_t>& bucket_bounds_ns() {
  static const std::vector<std::uint64_t> bounds = [] {
    std::vector<std::uint64_t> ns;
    for (double seconds : Metrics::latency_buckets()) ns.push_back(static_cast<std::uint64_t>(seconds * 1e9 + 0.5));
    return ns;
  }();
  return bounds;
}

prometheus::ClientMetric with_labels(std::vector<prometheus::ClientMetric::Label> labels) {
  prometheus::ClientMetric m;
  m.label = std::move(labels);
  return m;
}
}  // namespace

NodeStats::NodeStats(std::string node, std::vector<std::string> ports)
    : node_(std::move(node)), busy_buckets_(bucket_bounds_ns().size() + 1) {
  for (auto& p : ports) ports_.emplace_back().name = std::move(p);
}

void NodeStats::busy(std::chrono::nanoseconds d) {
  const auto ns = static_cast<std::uint64_t>(std::max<std::int64_t>(0, d.count()));
  const auto& bounds = bucket_bounds_ns();
  const auto bucket = static_cast<std::size_t>(std::lower_bound(bounds.begin(), bounds.end(), ns) - bounds.begin());
  busy_buckets_[bucket].fetch_add(1, std::memory_order_relaxed);
  busy_count_.fetch_add(1, std::memory_order_relaxed);
  busy_sum_ns_.fetch_add(ns, std::memory_order_relaxed);
}

NodeStats& NodeStatsCollector::add(std::string node, std::vector<std::string> ports) {
  std::lock_guard lock(mutex_);
  return nodes_.emplace_back(std::move(node), std::move(ports));
}

void NodeStatsCollector::set_in_flight(std::function<std::int64_t()> read) {
  std::lock_guard lock(mutex_);
  in_flight_ = std::move(read);
}

std::vector<prometheus::MetricFamily> NodeStatsCollector::Collect() const {
  using prometheus::MetricType;
  prometheus::MetricFamily messages{"predflow_node_messages_total",
                                    "Batches in (input port) and out (output ports) of each node", MetricType::Counter, {}};
  prometheus::MetricFamily rows{"predflow_node_rows_total", "Rows (symbols) in and out of each node", MetricType::Counter, {}};
  prometheus::MetricFamily busy{"predflow_node_busy_seconds", "Time each node spends processing one batch",
                                MetricType::Histogram, {}};
  prometheus::MetricFamily queue{"predflow_node_queue_depth", "Batches waiting at each node's input", MetricType::Gauge, {}};
  prometheus::MetricFamily errors{"predflow_node_errors_total",
                                  "Batches a node failed to process (their messages are NAKed)", MetricType::Counter, {}};
  std::lock_guard lock(mutex_);
  const auto& bounds = bucket_bounds_ns();
  for (const auto& n : nodes_) {
    for (const auto& p : n.ports_) {
      auto m = with_labels({{"node", n.node_}, {"port", p.name}});
      m.counter.value = static_cast<double>(p.messages.load(std::memory_order_relaxed));
      messages.metric.push_back(m);
      m.counter.value = static_cast<double>(p.rows.load(std::memory_order_relaxed));
      rows.metric.push_back(std::move(m));
    }
    auto h = with_labels({{"node", n.node_}});
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i <= bounds.size(); ++i) {
      cumulative += n.busy_buckets_[i].load(std::memory_order_relaxed);
      double upper = i < bounds.size() ? Metrics::latency_buckets()[i] : std::numeric_limits<double>::infinity();
      h.histogram.bucket.push_back({cumulative, upper});
    }
    h.histogram.sample_count = cumulative;
    h.histogram.sample_sum = static_cast<double>(n.busy_sum_ns_.load(std::memory_order_relaxed)) / 1e9;
    busy.metric.push_back(std::move(h));
    auto q = with_labels({{"node", n.node_}});
    q.gauge.value = static_cast<double>(n.queue_depth_.load(std::memory_order_relaxed));
    queue.metric.push_back(std::move(q));
    auto e = with_labels({{"node", n.node_}});
    e.counter.value = static_cast<double>(n.errors_.load(std::memory_order_relaxed));
    errors.metric.push_back(std::move(e));
  }
  std::vector<prometheus::MetricFamily> families{std::move(messages), std::move(rows), std::move(busy), std::move(queue),
                                                std::move(errors)};
  auto gauge = [&](const char* name, const char* help, double value) {
    prometheus::MetricFamily family{name, help, MetricType::Gauge, {}};
    prometheus::ClientMetric m;
    m.gauge.value = value;
    family.metric.push_back(std::move(m));
    families.push_back(std::move(family));
  };
  if (in_flight_)
    gauge("predflow_in_flight_messages", "Source messages not yet acknowledged", static_cast<double>(in_flight_()));
  // Taps and recordings cost the emitting threads while open: an operator sees them here.
  gauge("predflow_taps_open", "Taps open on this process's ports (predflow tap, predflow record)",
        static_cast<double>(open_taps()));
  return families;
}


std::vector<NodeStatsSnapshot> NodeStatsCollector::snapshot() const {
  std::vector<NodeStatsSnapshot> out;
  std::lock_guard lock(mutex_);
  out.reserve(nodes_.size());
  for (const auto& n : nodes_) {
    NodeStatsSnapshot s;
    s.node = n.node_;
    for (const auto& p : n.ports_) {
      s.port_rows.emplace_back(p.name, p.rows.load(std::memory_order_relaxed));
      s.port_messages.emplace_back(p.name, p.messages.load(std::memory_order_relaxed));
    }
    std::uint64_t cumulative = 0;
    for (const auto& b : n.busy_buckets_) s.busy_cumulative.push_back(cumulative += b.load(std::memory_order_relaxed));
    s.busy_count = cumulative;
    s.busy_sum_ns = n.busy_sum_ns_.load(std::memory_order_relaxed);
    s.errors = n.errors_.load(std::memory_order_relaxed);
    s.queue_depth = n.queue_depth_.load(std::memory_order_relaxed);
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace predflow
