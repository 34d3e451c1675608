// The window node, driven directly (NodeHarness): closing on time and on count, distinct
// symbols, correlation ids, acknowledgement tokens, the contract's environment defaults.
#include <doctest/doctest.h>

#include <thread>

#include "support/node_harness.hpp"

using namespace predflow;
using namespace predflow::test;
using namespace std::chrono_literals;

namespace {
AckPtr token(std::atomic<int>& done) {
  return std::make_shared<AckToken>([&done](AckOutcome o) {
    if (o == AckOutcome::Done) ++done;
  });
}
}  // namespace

TEST_CASE("window: closes on max_symbols at once, the rest opens the next window") {
  NodeHarness h("window", "duration: 1h, max_symbols: 3");
  h.process(symbols_batch({"A", "B"}, "c1"));
  CHECK(h.output.out().empty());
  REQUIRE(h.output.wakes.size() == 1);  // a timer for the window's end
  h.process(symbols_batch({"C", "D", "E", "F", "G"}, "c2"));
  REQUIRE(h.output.out().size() == 2);
  CHECK(h.output.symbols(0) == std::vector<std::string>{"A", "B", "C", "D", "E", "F"});
  CHECK(h.output.out()[0]->size() == 3);
  CHECK(h.output.out()[0]->correlation_ids == std::vector<std::string>{"c1", "c1", "c2"});
  h.flush();  // G is held until shutdown
  REQUIRE(h.output.out().size() == 3);
  CHECK(h.output.out()[2]->symbols == std::vector<std::string>{"G"});
  CHECK(metric_value(h.metrics_text(), "predflow_windows_closed_total{node=\"subject\",reason=\"max_symbols\"}") == 2);
  CHECK(metric_value(h.metrics_text(), "predflow_windows_closed_total{node=\"subject\",reason=\"shutdown\"}") == 1);
}

TEST_CASE("window: closes on time, not before") {
  NodeHarness h("window", "duration: 50ms, max_symbols: 100");
  h.process(symbols_batch({"A"}));
  h.tick();
  CHECK(h.output.out().empty());  // too early: asks to be woken again
  std::this_thread::sleep_for(60ms);
  h.process(symbols_batch({"B"}));
  h.tick();
  REQUIRE(h.output.out().size() == 1);
  CHECK(h.output.out()[0]->symbols == std::vector<std::string>{"A", "B"});
  h.tick();
  CHECK(h.output.out().size() == 1);  // nothing held, nothing sent
  CHECK(metric_value(h.metrics_text(), "predflow_windows_closed_total{node=\"subject\",reason=\"time\"}") == 1);
}

TEST_CASE("window: repeats kept once, their tokens wait for the window") {
  NodeHarness h("window", "duration: 1h, max_symbols: 10");
  std::atomic<int> done{0};
  {
    auto a = symbols_batch({"AAPL", "MSFT"}, "first", {token(done)});
    auto b = symbols_batch({"MSFT", "AAPL", "IBM"}, "second", {token(done)});
    h.process(std::move(a));
    h.process(std::move(b));
  }
  CHECK(done == 0);
  h.flush();
  REQUIRE(h.output.out().size() == 1);
  auto out = h.output.out()[0];
  CHECK(out->symbols == std::vector<std::string>{"AAPL", "MSFT", "IBM"});
  CHECK(out->correlation_ids == std::vector<std::string>{"first", "first", "second"});
  CHECK(metric_value(h.metrics_text(), "predflow_window_repeated_symbols_total{node=\"subject\"}") == 2);
  h.output.clear();
  out.reset();
  CHECK(done == 2);  // both messages complete once the window's batch is released
}

TEST_CASE("window: rows without a correlation id get the window's, unique per window") {
  NodeHarness h("window", "duration: 1h, max_symbols: 2");
  h.process(symbols_batch({"A", "B", "C", "D"}));
  h.process(symbols_batch({"E"}, "own"));
  h.flush();
  REQUIRE(h.output.out().size() == 3);
  const auto& w1 = h.output.out()[0]->correlation_ids;
  const auto& w2 = h.output.out()[1]->correlation_ids;
  CHECK(w1[0] == w1[1]);
  CHECK(w2[0] == w2[1]);
  CHECK(w1[0] != w2[0]);
  CHECK(w1[0].size() == 36);  // a UUID
  CHECK(h.output.out()[2]->correlation_ids == std::vector<std::string>{"own"});
}

TEST_CASE("window: PREDFLOW_WINDOW and PREDFLOW_WINDOW_MAX_SYMBOLS are the defaults") {
  NodeHarness h("window", "", "", {{"PREDFLOW_WINDOW", "250ms"}, {"PREDFLOW_WINDOW_MAX_SYMBOLS", "2"}});
  h.process(symbols_batch({"A", "B"}));
  CHECK(h.output.out().size() == 1);
  h.output.clear();
  const auto before = Clock::now();
  h.process(symbols_batch({"C"}));
  REQUIRE(h.output.wakes.size() == 1);
  CHECK(h.output.wakes[0] - before >= 250ms);
  CHECK(h.output.wakes[0] - before < 1s);
}

TEST_CASE("window: a batch of failures only passes on at once") {
  NodeHarness h("window", "duration: 1h");
  auto b = make_batch();
  b->failures.push_back(RowFailure{"x", std::nullopt, "r", "e", std::nullopt, 1, "p"});
  h.process(std::move(b));
  REQUIRE(h.output.out().size() == 1);
  CHECK(h.output.out()[0]->failures.size() == 1);
}

TEST_CASE("window: a window larger than max_batch leaves in parts, its tokens complete with the last part") {
  NodeHarness h("window", "duration: 1h, max_symbols: 8, max_batch: 3");
  std::atomic<int> done{0};
  {
    auto a = symbols_batch({"A", "B", "C", "D"}, "c1", {token(done)});
    auto b = symbols_batch({"B", "E", "F", "G"}, "c2", {token(done)});  // B is a repeat: a shared token
    b->failures.push_back(RowFailure{"x", std::nullopt, "r", "e", std::nullopt, 1, "p"});
    h.process(std::move(a));
    h.process(std::move(b));
  }
  h.flush();
  REQUIRE(h.output.out().size() == 3);
  CHECK(h.output.out()[0]->symbols == std::vector<std::string>{"A", "B", "C"});
  CHECK(h.output.out()[1]->symbols == std::vector<std::string>{"D", "E", "F"});
  CHECK(h.output.out()[2]->symbols == std::vector<std::string>{"G"});
  CHECK(h.output.out()[1]->correlation_ids == std::vector<std::string>{"c1", "c2", "c2"});
  CHECK(h.output.out()[0]->failures.size() == 1);
  CHECK(h.output.out()[1]->failures.empty());
  CHECK(h.output.out()[2]->failures.empty());
  // One window, counted once.
  CHECK(metric_value(h.metrics_text(), "predflow_windows_closed_total{node=\"subject\",reason=\"shutdown\"}") == 1);
  CHECK(metric_value(h.metrics_text(), "predflow_window_symbols_count{node=\"subject\"}") == 1);
  // c2's message has rows in the second and third parts and is held as a whole (its repeat):
  // it completes only when every part holding it is released.
  auto first = h.output.out()[0], second = h.output.out()[1], third = h.output.out()[2];
  h.output.clear();
  first.reset();
  CHECK(done == 0);  // c1 has D in the second part; c2 is shared by all
  second.reset();
  CHECK(done == 1);  // c1's rows are all released
  third.reset();
  CHECK(done == 2);
}

TEST_CASE("window: a window of exactly max_batch rows leaves as one batch") {
  NodeHarness h("window", "duration: 1h, max_symbols: 3, max_batch: 3");
  h.process(symbols_batch({"A", "B", "C"}));
  REQUIRE(h.output.out().size() == 1);
  CHECK(h.output.out()[0]->size() == 3);
}
