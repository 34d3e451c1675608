// The feature_fetch node against a real redis-server (tests/support/servers.hpp), driven
// through NodeHarness: the normal and earnings routes, every skip reason on the dead port,
// one round trip for 5,000 symbols, Redis down (messages failed for redelivery), and the
// acknowledgement tokens of a mixed batch.
#include <doctest/doctest.h>

#include <chrono>
#include <cmath>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "connectors/redis.hpp"
#include "support/eventually.hpp"
#include "support/node_harness.hpp"
#include "support/servers.hpp"
#include "nodes/schema/prediction_columns.hpp"

using namespace predflow;
using namespace predflow::connectors;
using namespace predflow::test;
using namespace std::chrono_literals;

namespace {

struct AckCounter {
  int done = 0, failed = 0;
  AckPtr token() {
    return std::make_shared<AckToken>([this](AckOutcome o) { (o == AckOutcome::Done ? done : failed)++; });
  }
};

// Feature i of a symbol's test vector: distinct per symbol and position.
float feature_of(std::size_t symbol_index, std::size_t i) { return static_cast<float>(symbol_index) + 0.01f * static_cast<float>(i); }

std::string array_of(const std::vector<float>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s + "]";
}

std::vector<float> vector_of(std::size_t symbol_index, std::size_t width) {
  std::vector<float> v(width);
  for (std::size_t i = 0; i < width; ++i) v[i] = feature_of(symbol_index, i);
  return v;
}

std::string features_value(std::size_t symbol_index, double price, const std::string& ts = "2026-11-26T14:30:00Z") {
  return R"({"ts": ")" + ts + R"(", "price": )" + std::to_string(price) + R"(, "features": )" + array_of(vector_of(symbol_index, 20)) +
         R"(, "model_hint": "v2"})";
}

std::string earnings_value(std::size_t symbol_index, const std::string& report_date, const std::string& timing) {
  return R"({"features": )" + array_of(vector_of(100 + symbol_index, 17)) + R"(, "report_date": ")" + report_date +
         R"(", "timing": ")" + timing + R"("})";
}

class Fixture {
 public:
  explicit Fixture(const std::string& fields = "") {
    server_.start();
    harness_ = std::make_unique<NodeHarness>(
        "feature_fetch", "redis: cache, retry_backoff: 10ms" + (fields.empty() ? "" : ", " + fields),
        "cache: {type: redis, url: '" + server_.url() + "', timeout: 1s, backoff_initial: 10ms, backoff_max: 20ms, breaker_reset: 100ms}");
    harness_->start();
  }
  NodeHarness& h() { return *harness_; }
  RedisServer& server() { return server_; }
  RedisResource& redis() { return *harness_->resource<RedisResource>("cache"); }
  void set(const std::vector<std::pair<std::string, std::string>>& items) {
    std::vector<RedisCommand> commands;
    for (const auto& [k, v] : items) commands.push_back({"SET", k, v});
    for (const auto& reply : redis().pipeline(commands)) REQUIRE_FALSE(reply.is_error());
  }
  double metric(const std::string& series) { return metric_value(harness_->metrics_text(), series); }
  double skipped(const std::string& reason) { return metric("predflow_symbols_skipped_total{reason=\"" + reason + "\"}"); }

 private:
  RedisServer server_;  // declared first: outlives the harness and its resource
  std::unique_ptr<NodeHarness> harness_;
};

const RowFailure* failure_for(const std::vector<BatchPtr>& batches, const std::string& symbol) {
  for (const auto& b : batches)
    for (const auto& f : b->failures)
      if (f.symbol == symbol) return &f;
  return nullptr;
}

}  // namespace

TEST_SUITE("integration.feature_fetch") {

TEST_CASE("feature_fetch: normal route fills prices, features_ts and 20 features per row, keeping ids, route and tokens") {
  if (!RedisServer::available()) return;
  Fixture fx;
  fx.set({{"features:AAPL", features_value(0, 189.52)},
          {"features:MSFT", features_value(1, 401.25, "2026-11-26T14:29:59.5Z")},
          {"features:BRK.B", features_value(2, 455.0)}});
  AckCounter acks;
  auto a = acks.token(), m = acks.token(), k = acks.token();
  auto in = symbols_batch({"AAPL", "MSFT", "BRK.B"}, "", {a, m, k});
  in->correlation_ids = {"c-1", "c-2", "c-1"};
  (*in)[col::route] = "normal";
  const auto arrived = in->arrived;
  fx.h().process(std::move(in));

  REQUIRE(fx.h().output.out().size() == 1);
  CHECK(fx.h().output.dead().empty());
  const Batch& b = *fx.h().output.out().front();
  CHECK(b.symbols == std::vector<std::string>{"AAPL", "MSFT", "BRK.B"});
  CHECK(b.correlation_ids == std::vector<std::string>{"c-1", "c-2", "c-1"});
  CHECK(b[col::prices] == std::vector<double>{189.52, 401.25, 455.0});
  CHECK(b[col::features_ts] == std::vector<std::string>{"2026-11-26T14:30:00Z", "2026-11-26T14:29:59.5Z", "2026-11-26T14:30:00Z"});
  CHECK(b[col::features].width == 20);
  REQUIRE(b[col::features].values.size() == 60);
  for (std::size_t r = 0; r < 3; ++r)
    for (std::size_t i = 0; i < 20; ++i) CHECK(b[col::features].values[r * 20 + i] == doctest::Approx(feature_of(r, i)).epsilon(1e-6));
  CHECK(b[col::earnings].empty());  // the normal route has no earnings context
  CHECK(b[col::route] == "normal");
  CHECK(b.arrived == arrived);
  CHECK(b.failures.empty());
  CHECK(b.ack_of_row(0) == a);
  CHECK(b.ack_of_row(1) == m);
  CHECK(b.ack_of_row(2) == k);
  CHECK(fx.skipped("missing_features") == 0);  // every reason is exported, at zero

  a.reset(), m.reset(), k.reset();
  fx.h().output.clear();
  CHECK(acks.done == 3);
  CHECK(acks.failed == 0);
}

TEST_CASE("feature_fetch: earnings route appends 17 analysis features, with report_date and timing from the analysis") {
  if (!RedisServer::available()) return;
  Fixture fx("earnings: true");
  fx.set({{"features:AAPL", features_value(0, 189.52)},
          {"features:MSFT", features_value(1, 401.25)},
          {"features:NVDA", features_value(2, 120.5)},
          {"earnings_analysis:AAPL", earnings_value(0, "2026-11-26", "BMO")},
          {"earnings_analysis:NVDA", R"({"features": )" + array_of(vector_of(102, 17)) + R"(, "timing": null})"}});

  auto in = symbols_batch({"AAPL", "MSFT", "NVDA"}, "corr");
  (*in)[col::route] = "earnings";
  // What the router found in the calendar: the analysis overrides it where it has a value.
  (*in)[col::earnings] = {EarningsContext{"2026-11-25", "AMC", false}, EarningsContext{"2026-11-26", "DMH", false},
                  EarningsContext{"2026-11-26", "UNKNOWN", false}};
  fx.h().process(std::move(in));

  REQUIRE(fx.h().output.out().size() == 1);
  CHECK(fx.h().output.dead().empty());
  const Batch& b = *fx.h().output.out().front();
  CHECK(b[col::features].width == 37);
  REQUIRE(b[col::features].values.size() == 3 * 37);
  REQUIRE(b[col::earnings].size() == 3);
  for (std::size_t i = 0; i < 20; ++i) CHECK(b[col::features].values[i] == doctest::Approx(feature_of(0, i)).epsilon(1e-6));
  for (std::size_t i = 0; i < 17; ++i) CHECK(b[col::features].values[20 + i] == doctest::Approx(feature_of(100, i)).epsilon(1e-6));
  // AAPL: the analysis decides.
  CHECK(b[col::earnings][0].report_date == std::optional<std::string>("2026-11-26"));
  CHECK(b[col::earnings][0].timing == std::optional<std::string>("BMO"));
  CHECK_FALSE(b[col::earnings][0].features_imputed);
  // MSFT: no analysis: zeros, imputed, the router's context kept.
  for (std::size_t i = 0; i < 20; ++i) CHECK(b[col::features].values[37 + i] == doctest::Approx(feature_of(1, i)).epsilon(1e-6));
  for (std::size_t i = 0; i < 17; ++i) CHECK(b[col::features].values[37 + 20 + i] == 0.0f);
  CHECK(b[col::earnings][1].features_imputed);
  CHECK(b[col::earnings][1].report_date == std::optional<std::string>("2026-11-26"));
  CHECK(b[col::earnings][1].timing == std::optional<std::string>("DMH"));
  // NVDA: an analysis without report_date and with a null timing keeps the router's values.
  for (std::size_t i = 0; i < 17; ++i) CHECK(b[col::features].values[74 + 20 + i] == doctest::Approx(feature_of(102, i)).epsilon(1e-6));
  CHECK_FALSE(b[col::earnings][2].features_imputed);
  CHECK(b[col::earnings][2].report_date == std::optional<std::string>("2026-11-26"));
  CHECK(b[col::earnings][2].timing == std::optional<std::string>("UNKNOWN"));

  // Without a router context (an empty earnings column): null unless the analysis has them.
  fx.h().output.clear();
  fx.h().process(symbols_batch({"AAPL", "MSFT"}, "corr"));
  REQUIRE(fx.h().output.out().size() == 1);
  const Batch& c = *fx.h().output.out().front();
  REQUIRE(c[col::earnings].size() == 2);
  CHECK(c[col::earnings][0].report_date == std::optional<std::string>("2026-11-26"));
  CHECK_FALSE(c[col::earnings][1].report_date.has_value());
  CHECK_FALSE(c[col::earnings][1].timing.has_value());
  CHECK(c[col::earnings][1].features_imputed);
}

TEST_CASE("feature_fetch: with missing_earnings skip, a symbol without analysis is dead-lettered") {
  if (!RedisServer::available()) return;
  Fixture fx("earnings: true, missing_earnings: skip");
  fx.set({{"features:AAPL", features_value(0, 189.52)},
          {"features:MSFT", features_value(1, 401.25)},
          {"earnings_analysis:AAPL", earnings_value(0, "2026-11-26", "BMO")}});
  AckCounter acks;
  auto a = acks.token(), m = acks.token();
  fx.h().process(symbols_batch({"AAPL", "MSFT"}, "corr-9", {a, m}));

  CHECK(fx.h().output.symbols(0) == std::vector<std::string>{"AAPL"});
  REQUIRE(fx.h().output.dead().size() == 1);
  const RowFailure* f = failure_for(fx.h().output.dead(), "MSFT");
  REQUIRE(f != nullptr);
  CHECK(f->stage == "feature_fetch");
  CHECK(f->reason == "missing_earnings_features");
  CHECK(f->error == "no key earnings_analysis:MSFT");
  CHECK(f->correlation_id == std::optional<std::string>("corr-9"));
  CHECK(f->payload.empty());
  CHECK(fx.skipped("missing_earnings_features") == 1);
  const Batch& dead = *fx.h().output.dead().front();
  CHECK(dead.size() == 0);
  CHECK(dead.shared_acks == std::vector<AckPtr>{m});
  CHECK(fx.h().output.out().front()->acks == std::vector<AckPtr>{a});
}

TEST_CASE("feature_fetch: every skip reason is dead-lettered with stage, symbol, reason, correlation id and raw payload") {
  if (!RedisServer::available()) return;
  Fixture fx("earnings: true");
  const std::string not_json = "{\"price\": 1, \"features\": [1, 2";
  const std::string short_features = R"({"price": 10, "features": [1, 2, 3]})";
  const std::string nan_value = R"({"price": 10, "features": [NaN,)" + array_of(vector_of(5, 19)).substr(1) + "}";
  const std::string zero_price = R"({"price": 0, "features": )" + array_of(vector_of(6, 20)) + "}";
  const std::string bad_earnings = R"({"features": [1, 2], "report_date": "2026-11-26"})";
  fx.set({{"features:GOOD", features_value(0, 50)},
          {"features:JSON", not_json},
          {"features:COUNT", short_features},
          {"features:NAN", nan_value},
          {"features:PRICE", zero_price},
          {"features:EARN", features_value(7, 70)},
          {"earnings_analysis:EARN", bad_earnings},
          {"earnings_analysis:GOOD", earnings_value(0, "2026-11-26", "AMC")}});
  for (const auto& reply : fx.redis().pipeline(std::vector<RedisCommand>{{"HSET", "features:HASH", "f", "1"}}))
    REQUIRE_FALSE(reply.is_error());

  const std::vector<std::string> symbols = {"GOOD", "MISSING", "JSON", "COUNT", "NAN", "PRICE", "EARN", "HASH"};
  auto in = symbols_batch(symbols, "corr-x");
  fx.h().process(std::move(in));

  CHECK(fx.h().output.symbols(0) == std::vector<std::string>{"GOOD"});
  REQUIRE(fx.h().output.dead().size() == 1);
  const auto& dead = fx.h().output.dead();
  struct Expect {
    std::string symbol, reason, error_part, payload;
  };
  const std::vector<Expect> expected = {
      {"MISSING", "missing_features", "no key features:MISSING", ""},
      {"JSON", "invalid_json", "not valid JSON", not_json},
      {"COUNT", "wrong_feature_count", "expected 20 features, got 3", short_features},
      {"NAN", "non_numeric_features", "features[0] = NaN", nan_value},
      {"PRICE", "invalid_price", "price must be positive, got 0", zero_price},
      {"EARN", "invalid_earnings_features", "expected 17 earnings features, got 2", bad_earnings},
      {"HASH", "missing_features", "no key features:HASH", ""},  // not a string value
  };
  CHECK(dead.front()->failures.size() == expected.size());
  for (const auto& e : expected) {
    CAPTURE(e.symbol);
    const RowFailure* f = failure_for(dead, e.symbol);
    REQUIRE(f != nullptr);
    CHECK(f->stage == "feature_fetch");
    CHECK(f->reason == e.reason);
    INFO(f->error);
    CHECK(f->error.find(e.error_part) != std::string::npos);
    CHECK(f->correlation_id == std::optional<std::string>("corr-x"));
    CHECK(f->attempts == 1);
    CHECK(f->payload == e.payload);
  }
  CHECK(fx.skipped("missing_features") == 2);
  CHECK(fx.skipped("invalid_json") == 1);
  CHECK(fx.skipped("wrong_feature_count") == 1);
  CHECK(fx.skipped("non_numeric_features") == 1);
  CHECK(fx.skipped("invalid_price") == 1);
  CHECK(fx.skipped("invalid_earnings_features") == 1);
  CHECK(fx.skipped("missing_earnings_features") == 0);

  // A row without a correlation id has none in its failure (null in the record).
  fx.h().output.clear();
  fx.h().process(symbols_batch({"MISSING"}));
  const RowFailure* f = failure_for(fx.h().output.dead(), "MISSING");
  REQUIRE(f != nullptr);
  CHECK_FALSE(f->correlation_id.has_value());
  CHECK(fx.h().output.out().empty());
  CHECK(fx.skipped("missing_features") == 3);
}

TEST_CASE("feature_fetch: 5,000 symbols are fetched in one round trip of MGETs of 1000 keys") {
  if (!RedisServer::available()) return;
  Fixture fx("earnings: true");
  const std::size_t n = 5000;
  std::vector<std::string> symbols;
  std::vector<std::pair<std::string, std::string>> items;
  for (std::size_t i = 0; i < n; ++i) {
    symbols.push_back("S" + std::to_string(i));
    items.emplace_back("features:" + symbols.back(), features_value(i % 50, 10.0 + static_cast<double>(i)));
    if (i % 2 == 0) items.emplace_back("earnings_analysis:" + symbols.back(), earnings_value(i % 50, "2026-11-26", "BMO"));
  }
  fx.set(items);

  const auto before = fx.redis().stats();
  const auto started = std::chrono::steady_clock::now();
  fx.h().process(symbols_batch(symbols, "big"));
  const auto took = std::chrono::steady_clock::now() - started;
  const auto after = fx.redis().stats();
  MESSAGE("5,000 symbols (10,000 keys) fetched and parsed in "
          << std::chrono::duration_cast<std::chrono::microseconds>(took).count() << " us");
  CHECK(after.round_trips - before.round_trips == 1);
  CHECK(after.commands - before.commands == 10);  // 5 MGETs of features, 5 of earnings analyses

  REQUIRE(fx.h().output.out().size() == 1);
  CHECK(fx.h().output.dead().empty());
  const Batch& b = *fx.h().output.out().front();
  REQUIRE(b.size() == n);
  REQUIRE(b[col::features].values.size() == n * 37);
  for (std::size_t r : {std::size_t{0}, std::size_t{1}, std::size_t{2499}, std::size_t{4999}}) {
    CAPTURE(r);
    CHECK(b.symbols[r] == "S" + std::to_string(r));
    CHECK(b[col::prices][r] == doctest::Approx(10.0 + static_cast<double>(r)));
    CHECK(b[col::features].values[r * 37 + 19] == doctest::Approx(feature_of(r % 50, 19)).epsilon(1e-6));
    CHECK(b[col::earnings][r].features_imputed == (r % 2 == 1));
    if (r % 2 == 0) CHECK(b[col::features].values[r * 37 + 36] == doctest::Approx(feature_of(100 + r % 50, 16)).epsilon(1e-6));
  }

  // Without earnings, the same batch is 5 MGETs, still one round trip.
  Fixture plain("chunk: 1000");
  plain.set(items);
  const auto p0 = plain.redis().stats();
  const auto plain_started = std::chrono::steady_clock::now();
  plain.h().process(symbols_batch(symbols, "big"));
  const auto plain_took = std::chrono::steady_clock::now() - plain_started;
  const auto p1 = plain.redis().stats();
  MESSAGE("5,000 symbols (5,000 keys) fetched and parsed in "
          << std::chrono::duration_cast<std::chrono::microseconds>(plain_took).count() << " us");
  CHECK(p1.round_trips - p0.round_trips == 1);
  CHECK(p1.commands - p0.commands == 5);
  CHECK(plain.h().output.rows(0) == n);
}

TEST_CASE("feature_fetch: Redis down fails every token of the batch for redelivery, emits nothing, and counts it") {
  if (!RedisServer::available()) return;
  Fixture fx("retries: 2");
  fx.set({{"features:AAPL", features_value(0, 189.52)}});
  fx.h().process(symbols_batch({"AAPL"}));  // connected once
  REQUIRE(fx.h().output.rows(0) == 1);
  fx.h().output.clear();

  fx.server().kill();
  AckCounter acks;
  {
    auto in = symbols_batch({"AAPL", "MSFT", "NVDA"}, "c", {acks.token(), acks.token(), acks.token()});
    in->shared_acks.push_back(acks.token());  // e.g. a message whose symbols were all invalid upstream
    in->failures.push_back(RowFailure{"ingest", std::nullopt, "invalid_json", "not JSON", std::nullopt, 1, "x"});
    fx.h().process(std::move(in));
  }
  CHECK(fx.h().output.ports.empty());
  CHECK(acks.failed == 4);
  CHECK(acks.done == 0);
  CHECK(fx.metric("predflow_prediction_errors_total{type=\"features_unavailable\"}") == 1);
  CHECK(fx.skipped("missing_features") == 0);

  // Back up (empty: the server kept no data): batches go through again after the reconnect
  // backoff and the breaker's reset.
  fx.server().start();
  CHECK(eventually([&] {
    fx.h().output.clear();
    fx.h().process(symbols_batch({"AAPL"}));
    return !fx.h().output.ports.empty();  // Redis answered: AAPL is missing now
  }));
  fx.set({{"features:AAPL", features_value(0, 189.52)}});
  fx.h().output.clear();
  AckCounter later;
  fx.h().process(symbols_batch({"AAPL"}, "", {later.token()}));
  CHECK(fx.h().output.rows(0) == 1);
  fx.h().output.clear();
  CHECK(later.done == 1);
}

TEST_CASE("feature_fetch: a mixed batch splits into out and dead, each with the tokens of its rows") {
  if (!RedisServer::available()) return;
  Fixture fx;
  fx.set({{"features:AAPL", features_value(0, 189.52)}, {"features:MSFT", features_value(1, 401.25)}});
  AckCounter acks;
  auto a = acks.token(), b = acks.token(), c = acks.token(), upstream = acks.token();
  // Message a: AAPL (good) and BAD1; message b: MSFT (good); message c: BAD2 only.
  auto in = make_batch();
  in->symbols = {"AAPL", "BAD1", "MSFT", "BAD2"};
  in->correlation_ids = {"ca", "ca", "cb", "cc"};
  in->acks = {a, b, c};
  in->row_ack = {0, 0, 1, 2};
  (*in)[col::route] = "normal";
  in->shared_acks = {upstream};
  in->failures.push_back(RowFailure{"ingest", std::string("bad$"), "invalid_symbol", "not a symbol", std::string("cu"), 1, "bad$"});
  fx.h().process(std::move(in));

  REQUIRE(fx.h().output.out().size() == 1);
  REQUIRE(fx.h().output.dead().size() == 1);
  const Batch& ok = *fx.h().output.out().front();
  CHECK(ok.symbols == std::vector<std::string>{"AAPL", "MSFT"});
  CHECK(ok.correlation_ids == std::vector<std::string>{"ca", "cb"});
  CHECK(ok[col::prices] == std::vector<double>{189.52, 401.25});
  CHECK(ok.ack_of_row(0) == a);
  CHECK(ok.ack_of_row(1) == b);
  CHECK(ok.acks.size() == 2);
  CHECK(ok.failures.empty());
  CHECK(ok[col::route] == "normal");

  const Batch& dead = *fx.h().output.dead().front();
  CHECK(dead.size() == 0);
  REQUIRE(dead.failures.size() == 3);
  CHECK(dead.failures[0].reason == "invalid_symbol");  // upstream failures travel on with the dead letters
  CHECK(dead.failures[1].symbol == std::optional<std::string>("BAD1"));
  CHECK(dead.failures[1].correlation_id == std::optional<std::string>("ca"));
  CHECK(dead.failures[2].symbol == std::optional<std::string>("BAD2"));
  CHECK(dead.failures[2].correlation_id == std::optional<std::string>("cc"));
  CHECK(std::set<AckPtr>(dead.shared_acks.begin(), dead.shared_acks.end()) == std::set<AckPtr>{upstream, a, c});
  CHECK(dead.shared_acks.size() == 3);
  CHECK(dead[col::route] == "normal");

  // Every message completes, none failed, once both outputs are released.
  a.reset(), b.reset(), c.reset(), upstream.reset();
  CHECK(acks.done == 0);
  fx.h().output.clear();
  CHECK(acks.done == 4);
  CHECK(acks.failed == 0);
}

TEST_CASE("feature_fetch: upstream failures leave on dead also when every row is good, or when there are no rows") {
  if (!RedisServer::available()) return;
  Fixture fx;
  fx.set({{"features:AAPL", features_value(0, 189.52)}});
  auto in = symbols_batch({"AAPL"}, "c1");
  in->failures.push_back(RowFailure{"ingest", std::nullopt, "invalid_json", "not JSON", std::nullopt, 1, "{"});
  fx.h().process(std::move(in));
  REQUIRE(fx.h().output.out().size() == 1);
  CHECK(fx.h().output.out().front()->failures.empty());
  REQUIRE(fx.h().output.dead().size() == 1);
  CHECK(failure_reasons(fx.h().output.dead()) == std::map<std::string, std::size_t>{{"invalid_json", 1}});

  fx.h().output.clear();
  auto only = make_batch();
  only->failures.push_back(RowFailure{"ingest", std::nullopt, "invalid_json", "not JSON", std::nullopt, 1, "{"});
  const auto round_trips = fx.redis().stats().round_trips;
  fx.h().process(std::move(only));
  CHECK(fx.h().output.out().empty());
  REQUIRE(fx.h().output.dead().size() == 1);
  CHECK(fx.h().output.dead().front()->failures.size() == 1);
  CHECK(fx.redis().stats().round_trips == round_trips);  // nothing to fetch

  fx.h().output.clear();
  fx.h().process(make_batch());  // nothing at all: nothing out
  CHECK(fx.h().output.ports.empty());
}

}  // TEST_SUITE
