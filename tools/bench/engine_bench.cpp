// Engine overhead: messages/s through a 5-node chain and a 1→3 fan-out of trivial nodes,
// run by predflow and by a hand-written oneTBB graph doing the same work in this binary.
//
//   predflow_engine_bench [messages] [repeats]
//
// Both sides bound the messages in flight the same way (a budget released when the last
// sink is done), so the difference is what the engine adds: spec-driven wiring, per-node
// metrics, envelopes, acknowledgement tokens.
#include <oneapi/tbb/flow_graph.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <thread>

#include "engine/log.hpp"
#include "engine/registry.hpp"
#include "engine/runtime.hpp"

using namespace predflow;
namespace flow = oneapi::tbb::flow;

namespace {

constexpr std::int64_t kInFlight = 1024;

// bench_source: `messages` one-row batches as fast as the budget allows.
class BenchSource : public Source {
 public:
  explicit BenchSource(const NodeContext& ctx) : messages_(ctx.config.get_int("messages")) {}
  void run(SourceContext& ctx) override {
    for (std::int64_t i = 0; i < messages_; ++i) {
      AckPtr ack = ctx.begin_message(nullptr);
      if (!ack) return;
      auto b = make_batch();
      b->symbols.emplace_back("AAPL");
      b->acks = {std::move(ack)};
      ctx.emit(std::move(b));
    }
  }

 private:
  std::int64_t messages_;
};

class BenchSink : public Processor {
 public:
  void process(BatchPtr, Output&) override {}
};

PREDFLOW_REGISTER_NODE(NodeSpec("bench_source", Category::Source)
                           .summarize("benchmark source")
                           .output("out", kind::any)
                           .field(field::integer("messages").default_value("100000").describe("messages")),
                       [](const NodeContext& ctx) { return std::make_unique<BenchSource>(ctx); });
PREDFLOW_REGISTER_NODE(NodeSpec("bench_sink", Category::Sink).summarize("benchmark sink").input("in", kind::any).concurrency(0, 0),
                       [](const NodeContext&) { return std::make_unique<BenchSink>(); });

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double run_predflow(const std::string& yaml) {
  Plan plan = load_plan_text(yaml, "bench.yaml");
  Metrics metrics;
  Runtime runtime(plan, metrics);
  runtime.start();
  auto t0 = Clock::now();
  runtime.run();
  return seconds_since(t0);
}

std::string chain_yaml(std::int64_t n) {
  return "settings: {http_port: 0, max_in_flight: " + std::to_string(kInFlight) +
         "}\nnodes:\n  src: {type: bench_source, messages: " + std::to_string(n) +
         "}\n  p1: {type: passthrough, from: [src]}\n  p2: {type: passthrough, from: [p1]}\n"
         "  p3: {type: passthrough, from: [p2]}\n  p4: {type: passthrough, from: [p3]}\n"
         "  p5: {type: passthrough, from: [p4]}\n  sink: {type: bench_sink, from: [p5]}\n";
}

std::string fanout_yaml(std::int64_t n) {
  return "settings: {http_port: 0, max_in_flight: " + std::to_string(kInFlight) +
         "}\nnodes:\n  src: {type: bench_source, messages: " + std::to_string(n) +
         "}\n  a: {type: passthrough, from: [src]}\n  b: {type: passthrough, from: [src]}\n"
         "  c: {type: passthrough, from: [src]}\n  sa: {type: bench_sink, from: [a]}\n"
         "  sb: {type: bench_sink, from: [b]}\n  sc: {type: bench_sink, from: [c]}\n";
}

// The same budget the engine uses: a slot per message, returned by the last consumer.
class Budget {
 public:
  void acquire() {
    std::unique_lock lock(m_);
    cv_.wait(lock, [&] { return used_ < kInFlight; });
    ++used_;
  }
  void release() {
    { std::lock_guard lock(m_); --used_; }
    cv_.notify_one();
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  std::int64_t used_ = 0;
};

using Msg = std::shared_ptr<const Batch>;

// Hand-written: the token releases the budget when the last holder drops the batch,
// exactly as a reference-counted acknowledgement would.
Msg make_message(Budget& budget) {
  budget.acquire();
  auto b = std::make_shared<Batch>();
  b->symbols.emplace_back("AAPL");
  b->acks = {std::make_shared<AckToken>([&budget](AckOutcome) { budget.release(); })};
  return b;
}

double run_hand_chain(std::int64_t n) {
  flow::graph g;
  Budget budget;
  auto pass = [](const Msg& m) { return m; };
  flow::function_node<Msg, Msg> p1(g, flow::unlimited, pass), p2(g, flow::unlimited, pass), p3(g, flow::unlimited, pass),
      p4(g, flow::unlimited, pass), p5(g, flow::unlimited, pass);
  flow::function_node<Msg> sink(g, flow::unlimited, [](const Msg&) { return flow::continue_msg(); });
  flow::make_edge(p1, p2);
  flow::make_edge(p2, p3);
  flow::make_edge(p3, p4);
  flow::make_edge(p4, p5);
  flow::make_edge(p5, sink);
  auto t0 = Clock::now();
  g.reserve_wait();
  std::thread source([&] {
    for (std::int64_t i = 0; i < n; ++i) p1.try_put(make_message(budget));
    g.release_wait();
  });
  source.join();
  g.wait_for_all();
  return seconds_since(t0);
}

double run_hand_fanout(std::int64_t n) {
  flow::graph g;
  Budget budget;
  auto pass = [](const Msg& m) { return m; };
  flow::broadcast_node<Msg> split(g);
  flow::function_node<Msg, Msg> a(g, flow::unlimited, pass), b(g, flow::unlimited, pass), c(g, flow::unlimited, pass);
  auto sink_body = [](const Msg&) { return flow::continue_msg(); };
  flow::function_node<Msg> sa(g, flow::unlimited, sink_body), sb(g, flow::unlimited, sink_body), sc(g, flow::unlimited, sink_body);
  flow::make_edge(split, a);
  flow::make_edge(split, b);
  flow::make_edge(split, c);
  flow::make_edge(a, sa);
  flow::make_edge(b, sb);
  flow::make_edge(c, sc);
  auto t0 = Clock::now();
  g.reserve_wait();
  std::thread source([&] {
    for (std::int64_t i = 0; i < n; ++i) split.try_put(make_message(budget));
    g.release_wait();
  });
  source.join();
  g.wait_for_all();
  return seconds_since(t0);
}

double best_of(int repeats, const std::function<double()>& f) {
  double best = 1e300;
  for (int i = 0; i < repeats; ++i) best = std::min(best, f());
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  std::int64_t n = argc > 1 ? std::atoll(argv[1]) : 200000;
  int repeats = argc > 2 ? std::atoi(argv[2]) : 5;
  setup_logging("warn");
  std::printf("messages per run: %lld, best of %d runs, in-flight budget %lld, hardware threads %u\n",
              static_cast<long long>(n), repeats, static_cast<long long>(kInFlight), std::thread::hardware_concurrency());

  struct Case {
    const char* name;
    int hops;  // node executions per message (excluding the source)
    std::function<double()> predflow, hand;
  };
  Case cases[] = {
      {"5-node chain (src → 5 passthrough → sink)", 6, [&] { return run_predflow(chain_yaml(n)); }, [&] { return run_hand_chain(n); }},
      {"1→3 fan-out (src → 3 passthrough → 3 sinks)", 6, [&] { return run_predflow(fanout_yaml(n)); }, [&] { return run_hand_fanout(n); }},
  };
  std::printf("\n| graph | predflow msg/s | hand-written TBB msg/s | predflow / hand time | predflow per node-execution | extra per node-execution |\n");
  std::printf("|---|---|---|---|---|---|\n");
  for (auto& c : cases) {
    double p = best_of(repeats, c.predflow);
    double h = best_of(repeats, c.hand);
    double per_node_p = p / static_cast<double>(n * c.hops) * 1e6;
    double per_node_h = h / static_cast<double>(n * c.hops) * 1e6;
    std::printf("| %s | %.0f | %.0f | %.2f× | %.3f µs | %.3f µs |\n", c.name, n / p, n / h, p / h, per_node_p,
                per_node_p - per_node_h);
  }
  return 0;
}
