// RetryingWriter on its own: a `write` hook stands in for the server (the sinks' tests run
// it against real Redis, PostgreSQL and NATS). What is checked here is the writer's own
// logic: grouping, retries, refusals and isolation, the bound, expiry, fallback, stop.
#include <doctest/doctest.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "connectors/errors.hpp"
#include "connectors/retrying_writer.hpp"
#include "support/node_harness.hpp"

using namespace predflow;
using namespace std::chrono_literals;
using predflow::test::CollectingOutput;
using predflow::test::metric_value;

namespace {

using Writer = connectors::RetryingWriter<std::vector<std::string>>;

struct Tokens {
  std::atomic<int> done{0}, failed{0};
  AckPtr token() {
    return std::make_shared<AckToken>([this](AckOutcome o) { ++(o == AckOutcome::Done ? done : failed); });
  }
};

// A batch of `symbols` holding one token, and its entry (payload: the symbols).
Writer::Entry entry_of(std::vector<std::string> symbols, Tokens& tokens) {
  auto b = make_batch();
  b->symbols = symbols;
  b->acks.push_back(tokens.token());
  Writer::Entry e;
  e.payload = std::move(symbols);
  e.batch = std::move(b);
  return e;
}

// The "server": records every group it is given; fails while `down`, refuses entries
// holding `poison` (CommandError), and refuses single rows named `bad` (Refusals).
struct Server {
  std::mutex mutex;
  std::vector<std::vector<std::string>> groups;
  std::atomic<bool> down{false};
  std::atomic<int> calls{0};

  connectors::Refusals write(Writer::Group& group) {
    ++calls;
    if (down) throw connectors::ConnectorError("server down");
    std::vector<std::string> rows;
    connectors::Refusals refused;
    for (std::size_t e = 0; e < group.size(); ++e)
      for (std::size_t i = 0; i < group[e].payload.size(); ++i) {
        if (group[e].payload[i] == "poison") throw connectors::CommandError("poisoned group");
        if (group[e].payload[i] == "bad") {
          refused.error = "bad row";
          refused.rows.emplace_back(e, i);
        }
      }
    for (auto& e : group) rows.insert(rows.end(), e.payload.begin(), e.payload.end());
    std::lock_guard lock(mutex);
    groups.push_back(rows);
    return refused;
  }
  std::size_t group_count() {
    std::lock_guard lock(mutex);
    return groups.size();
  }
};

// Hooks with only `set` filled in by the caller (write and dead_payload come from the fixture).
Writer::Hooks hooks(const std::function<void(Writer::Hooks&)>& set) {
  Writer::Hooks h;
  set(h);
  return h;
}

connectors::WriterOptions options() {
  connectors::WriterOptions o;
  o.node_id = "w";
  o.destination = "the test server";
  o.unavailable_reason = "test_unavailable";
  o.rejected_reason = "test_rejected";
  o.backoff = {10ms, 20ms, 2.0};
  o.stop_timeout = 200ms;
  o.metrics = {"t_written_total", "t_retries_total", "t_abandoned_total", "t_pending", "t_dead_total", "t_degraded",
               "rows"};
  return o;
}

struct Fixture {
  Metrics metrics;
  Server server;
  CollectingOutput out;
  Tokens tokens;
  std::unique_ptr<Writer> writer;

  explicit Fixture(connectors::WriterOptions o = options(), Writer::Hooks extra = {}) {
    extra.write = [this](Writer::Group& g) { return server.write(g); };
    extra.dead_payload = [](const Writer::Entry& e, std::size_t i) { return e.payload[i]; };
    writer = std::make_unique<Writer>(std::move(o), metrics, std::move(extra));
    writer->start();
  }
  double metric(const std::string& series) { return metric_value(metrics.serialize(), series); }
  std::vector<RowFailure> dead() {
    std::vector<RowFailure> all;
    for (const auto& b : out.snapshot(0)) all.insert(all.end(), b->failures.begin(), b->failures.end());
    return all;
  }
};

bool eventually(const std::function<bool()>& ok, std::chrono::milliseconds within = 5000ms) {
  const auto until = Clock::now() + within;
  while (Clock::now() < until) {
    if (ok()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return ok();
}

}  // namespace

TEST_CASE("RetryingWriter: writes in arrival order and releases each batch's token once written") {
  Fixture fx;
  fx.writer->offer(entry_of({"A", "B"}, fx.tokens), fx.out);
  fx.writer->offer(entry_of({"C"}, fx.tokens), fx.out);
  fx.writer->flush();
  CHECK(fx.tokens.done == 2);
  CHECK(fx.tokens.failed == 0);
  std::vector<std::string> written;
  for (auto& g : fx.server.groups) written.insert(written.end(), g.begin(), g.end());
  CHECK(written == std::vector<std::string>{"A", "B", "C"});
  CHECK(fx.metric("t_written_total{node=\"w\"}") == 3);
  CHECK(fx.metric("t_pending{node=\"w\"}") == 0);
  CHECK(fx.metric("t_dead_total{node=\"w\",reason=\"test_unavailable\"}") == 0);  // declared at 0
}

TEST_CASE("RetryingWriter: waits for min_group rows or max_delay, and groups up to max_group") {
  auto o = options();
  o.min_group = 4;
  o.max_delay = 300ms;
  o.max_group = 5;
  Fixture fx(o);
  fx.writer->offer(entry_of({"A", "B"}, fx.tokens), fx.out);
  std::this_thread::sleep_for(100ms);
  CHECK(fx.server.group_count() == 0);  // 2 < min_group, and the oldest waited < max_delay
  fx.writer->offer(entry_of({"C", "D"}, fx.tokens), fx.out);
  REQUIRE(eventually([&] { return fx.server.group_count() == 1; }));
  CHECK(fx.server.groups[0] == std::vector<std::string>{"A", "B", "C", "D"});
  fx.writer->offer(entry_of({"E"}, fx.tokens), fx.out);
  const auto offered = Clock::now();
  REQUIRE(eventually([&] { return fx.server.group_count() == 2; }));
  CHECK(Clock::now() - offered >= 250ms);  // written by max_delay, not at once
  // A group never passes max_group (one entry at least).
  fx.server.down = true;
  for (int i = 0; i < 3; ++i) fx.writer->offer(entry_of({"x", "y"}, fx.tokens), fx.out);
  REQUIRE(eventually([&] { return fx.metric("t_retries_total{node=\"w\"}") >= 1; }));
  fx.server.down = false;
  fx.writer->flush();
  for (std::size_t g = 2; g < fx.server.groups.size(); ++g) CHECK(fx.server.groups[g].size() <= 5);
  CHECK(fx.tokens.done == 6);
}

TEST_CASE("RetryingWriter: holds rows through an outage and writes them when the server is back") {
  Fixture fx;
  fx.server.down = true;
  fx.writer->offer(entry_of({"A"}, fx.tokens), fx.out);
  REQUIRE(eventually([&] { return fx.server.calls >= 3; }));
  CHECK(fx.metric("t_degraded{node=\"w\"}") == 1);
  CHECK(fx.metric("t_pending{node=\"w\"}") == 1);
  CHECK(fx.tokens.done + fx.tokens.failed == 0);
  fx.server.down = false;
  REQUIRE(eventually([&] { return fx.tokens.done == 1; }));
  CHECK(fx.metric("t_degraded{node=\"w\"}") == 0);
  CHECK(fx.dead().empty());
}

TEST_CASE("RetryingWriter: after retry_for, rows leave as dead letters that carry their tokens") {
  auto o = options();
  o.retry_for = 100ms;
  o.count_prediction_errors = true;
  Fixture fx(o);
  fx.server.down = true;
  fx.writer->offer(entry_of({"A", "B"}, fx.tokens), fx.out);
  REQUIRE(eventually([&] { return fx.dead().size() == 2; }));
  auto dead = fx.dead();
  CHECK(dead[0].reason == "test_unavailable");
  CHECK(dead[0].payload == "A");
  CHECK(dead[0].attempts >= 1);
  CHECK(dead[0].error.find("server down") != std::string::npos);
  CHECK(fx.tokens.done == 0);  // the dead batch holds the token...
  fx.out.clear();
  CHECK(fx.tokens.done == 1);  // ...until the dead letters are handled
  CHECK(fx.metric("t_dead_total{node=\"w\",reason=\"test_unavailable\"}") == 2);
  CHECK(fx.metric("predflow_prediction_errors_total{type=\"test_unavailable\"}") == 2);
}

TEST_CASE("RetryingWriter: with expire_to_dead_letters false, expired rows fail their tokens (redelivery)") {
  auto o = options();
  o.retry_for = 50ms;
  o.expire_to_dead_letters = false;
  Fixture fx(o);
  fx.server.down = true;
  fx.writer->offer(entry_of({"A"}, fx.tokens), fx.out);
  REQUIRE(eventually([&] { return fx.tokens.failed == 1; }));
  CHECK(fx.dead().empty());
  CHECK(fx.metric("t_abandoned_total{node=\"w\"}") == 1);
}

TEST_CASE("RetryingWriter: a refused group is written one entry at a time, only the culprit is dead-lettered") {
  Fixture fx;
  fx.server.down = true;  // so that the three entries queue up into one group
  fx.writer->offer(entry_of({"A"}, fx.tokens), fx.out);
  fx.writer->offer(entry_of({"poison", "B"}, fx.tokens), fx.out);
  fx.writer->offer(entry_of({"C"}, fx.tokens), fx.out);
  REQUIRE(eventually([&] { return fx.server.calls >= 1; }));
  fx.server.down = false;
  fx.writer->flush();
  auto dead = fx.dead();
  REQUIRE(dead.size() == 2);
  CHECK(dead[0].payload == "poison");
  CHECK(dead[1].payload == "B");  // the whole entry: the server refused it as one
  CHECK(dead[0].reason == "test_rejected");
  std::vector<std::string> written;
  for (auto& g : fx.server.groups) written.insert(written.end(), g.begin(), g.end());
  CHECK(written == std::vector<std::string>{"A", "C"});
  fx.out.clear();
  CHECK(fx.tokens.done == 3);
}

TEST_CASE("RetryingWriter: rows refused within a write leave as dead letters, the rest counts as written") {
  Fixture fx;
  fx.writer->offer(entry_of({"A", "bad", "C"}, fx.tokens), fx.out);
  fx.writer->flush();
  auto dead = fx.dead();
  REQUIRE(dead.size() == 1);
  CHECK(dead[0].payload == "bad");
  CHECK(dead[0].symbol == "bad");
  CHECK(dead[0].reason == "test_rejected");
  CHECK(fx.metric("t_written_total{node=\"w\"}") == 2);
}

TEST_CASE("RetryingWriter: what does not fit in max_pending leaves at once, with `truncate` the part that fits stays") {
  SUBCASE("whole entries") {
    auto o = options();
    o.max_pending = 3;
    Fixture fx(o);
    fx.server.down = true;
    CHECK(fx.writer->offer(entry_of({"A", "B"}, fx.tokens), fx.out) == 0);
    CHECK(fx.writer->offer(entry_of({"C", "D"}, fx.tokens), fx.out) == 2);
    auto dead = fx.dead();
    REQUIRE(dead.size() == 2);
    CHECK(dead[0].payload == "C");
    CHECK(dead[0].error.find("max_pending 3") != std::string::npos);
  }
  SUBCASE("the first rows of an entry") {
    auto o = options();
    o.max_pending = 3;
    Fixture fx(o, hooks([](Writer::Hooks& h) {
      h.truncate = [](Writer::Entry& e, std::size_t keep) { e.payload.resize(keep); };
    }));
    fx.server.down = true;
    fx.writer->offer(entry_of({"A", "B"}, fx.tokens), fx.out);
    CHECK(fx.writer->offer(entry_of({"C", "D"}, fx.tokens), fx.out) == 1);
    REQUIRE(fx.dead().size() == 1);
    CHECK(fx.dead()[0].payload == "D");
    fx.server.down = false;
    fx.writer->flush();
    std::vector<std::string> written;
    for (auto& g : fx.server.groups) written.insert(written.end(), g.begin(), g.end());
    CHECK(written == std::vector<std::string>{"A", "B", "C"});
  }
  SUBCASE("an entry larger than max_pending is taken when nothing is held") {
    auto o = options();
    o.max_pending = 1;
    Fixture fx(o);
    CHECK(fx.writer->offer(entry_of({"A", "B", "C"}, fx.tokens), fx.out) == 0);
    fx.writer->flush();
    CHECK(fx.tokens.done == 1);
  }
}

TEST_CASE("RetryingWriter: a fallback that stores the group ends its retries") {
  std::vector<std::string> stored;
  Fixture fx(options(), hooks([&](Writer::Hooks& h) {
    h.fallback = [&](Writer::Group& g) {
      for (auto& e : g) stored.insert(stored.end(), e.payload.begin(), e.payload.end());
      return true;
    };
  }));
  fx.server.down = true;
  fx.writer->offer(entry_of({"A", "B"}, fx.tokens), fx.out);
  REQUIRE(eventually([&] { return fx.tokens.done == 1; }));
  fx.writer->flush();
  CHECK(stored == std::vector<std::string>{"A", "B"});
  CHECK(fx.server.calls == 1);
}

TEST_CASE("RetryingWriter: tick runs on the writer's thread every tick_every") {
  auto o = options();
  o.tick_every = 20ms;
  std::atomic<int> ticks{0};
  Fixture fx(o, hooks([&](Writer::Hooks& h) { h.tick = [&] { return ++ticks, Clock::now(); }; }));
  REQUIRE(eventually([&] { return ticks >= 3; }));
  fx.server.down = true;  // also while retrying
  fx.writer->offer(entry_of({"A"}, fx.tokens), fx.out);
  const int before = ticks;
  REQUIRE(eventually([&] { return ticks >= before + 3; }));
}

TEST_CASE("RetryingWriter: a tick with nothing left to do sleeps until the writer next writes a group") {
  auto o = options();
  o.tick_every = 20ms;
  std::atomic<int> ticks{0};
  std::atomic<bool> busy{false};  // the tick's own work: a spool, fresh keys
  Fixture fx(o, hooks([&](Writer::Hooks& h) {
    h.tick = [&] {
      ++ticks;
      return busy ? Clock::now() : Clock::time_point::max();
    };
  }));
  REQUIRE(eventually([&] { return ticks == 1; }));
  std::this_thread::sleep_for(200ms);
  CHECK(ticks == 1);  // ten tick_every later: not called again
  busy = true;
  fx.writer->offer(entry_of({"A"}, fx.tokens), fx.out);
  REQUIRE(eventually([&] { return ticks >= 4; }));  // armed by the write, then every tick_every
  busy = false;
  REQUIRE(eventually([&] { return fx.tokens.done == 1; }));
  std::this_thread::sleep_for(100ms);
  const int settled = ticks;
  std::this_thread::sleep_for(200ms);
  CHECK(ticks == settled);
}

TEST_CASE("RetryingWriter: flush gives held rows stop_timeout, stop fails the tokens of what is left, emitting nothing") {
  SUBCASE("flush: dead letters after stop_timeout") {
    Fixture fx;
    fx.server.down = true;
    fx.writer->offer(entry_of({"A"}, fx.tokens), fx.out);
    const auto started = Clock::now();
    fx.writer->flush();
    CHECK(Clock::now() - started >= 150ms);
    CHECK(Clock::now() - started < 3s);
    CHECK(fx.dead().size() == 1);
  }
  SUBCASE("stop without flush: redelivery") {
    Fixture fx;
    fx.server.down = true;
    fx.writer->offer(entry_of({"A"}, fx.tokens), fx.out);
    fx.writer->stop();
    CHECK(fx.tokens.failed == 1);
    CHECK(fx.dead().empty());
    CHECK(fx.metric("t_abandoned_total{node=\"w\"}") == 1);
    CHECK(fx.writer->pending() == 0);
  }
}

TEST_CASE("RetryingWriter: breaker_aware_retry_for never leaves retry_for under the breaker's open time") {
  CHECK(connectors::breaker_aware_retry_for("n", 45s, 30s, 2s) == 45s);
  CHECK(connectors::breaker_aware_retry_for("n", 10s, 30s, 2s) == 33s);
}
