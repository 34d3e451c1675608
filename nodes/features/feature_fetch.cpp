// feature_fetch: the features of each routed symbol from Redis (docs/interface.md §2), in one
// round trip per batch; earnings routes append earnings_analysis:{symbol}. Symbols whose
// values are missing or malformed leave on `dead` with the reason; when Redis cannot be
// reached the batch's messages are failed, so that the source delivers them again.
#include <algorithm>
#include <array>
#include <chrono>
#include <map>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "connectors/redis.hpp"
#include "engine/log.hpp"
#include "engine/metrics.hpp"
#include "engine/registry.hpp"
#include "nodes/codecs/feature_json.hpp"
#include "nodes/schema/prediction_columns.hpp"

namespace predflow {
namespace {

using features::FeatureJsonParser;
using features::Skip;
using features::SkipReason;

NodeSpec feature_fetch_spec() {
  return NodeSpec("feature_fetch", Category::Transform)
      .summarize("Reads each symbol's features (and earnings analysis) from Redis in one round trip per batch")
      .describe(
          "For every row, reads `features_prefix + symbol` (contract: {\"ts\": \"...\", \"price\": 189.52, \"features\": "
          "[width numbers]}) and, with `earnings: true`, `earnings_prefix + symbol` ({\"features\": [earnings_width numbers], "
          "\"report_date\": \"...\", \"timing\": \"BMO\"}), all keys of the batch in ONE pipelined round trip of MGETs of "
          "`chunk` keys. Good rows leave on `out` with prices, features_ts and a row-major feature matrix of width (or "
          "width + earnings_width: the earnings values follow the technical ones). With earnings, each row's "
          "earnings context takes report_date and timing from the analysis when it has them, else keeps what the router "
          "set; a missing analysis is imputed as zeros with features_imputed: true, or skipped with `missing_earnings: "
          "skip`. Unknown keys in the values are ignored. A skipped symbol leaves on `dead` as a failure (stage "
          "feature_fetch, the raw value as payload) with one of these reasons, counted in "
          "predflow_symbols_skipped_total{reason}: missing_features (no key), invalid_json (not a JSON object with a "
          "features array), wrong_feature_count, non_numeric_features (not a number, NaN/Infinity, or outside float "
          "range), invalid_price (missing, not a number, or <= 0), missing_earnings_features (missing analysis, with "
          "skip), invalid_earnings_features; one warning line per batch summarises them. Failures that arrive with the "
          "input pass on with the dead letters. When Redis fails after `retries` retries (a call refused by an open "
          "circuit breaker is not retried), every message of the batch is marked failed so that the source delivers it "
          "again, nothing is emitted, and predflow_prediction_errors_total{type=\"features_unavailable\"} counts it. "
          "Runs on its own thread (blocking I/O); serial.")
      .input("in", kind::symbols, "routed symbols with correlation ids (and, from calendar_router, an earnings context)")
      .output("out", kind::features, "the rows with features, prices and features_ts (and earnings contexts)")
      .output("dead", kind::dead_letters, "skipped symbols, as failures (stage feature_fetch)")
      .field(field::resource("redis", "redis").require().describe("the redis resource to read the features from"))
      .field(field::string("features_prefix").default_value("features:").describe(
          "key prefix of a symbol's features value (the key is prefix + symbol)"))
      .field(field::integer("width").default_value("20").at_least(1).at_most(100000).in_unit("features").describe(
          "features per symbol; a value with another count is skipped (wrong_feature_count)"))
      .field(field::boolean("earnings").default_value("false").describe(
          "also read earnings_prefix + symbol and append its earnings_width values (20 + 17 = 37 by default)"))
      .field(field::string("earnings_prefix").default_value("earnings_analysis:").describe(
          "key prefix of a symbol's earnings analysis (with earnings: true)"))
      .field(field::integer("earnings_width").default_value("17").at_least(1).at_most(100000).in_unit("features").describe(
          "earnings features per symbol (with earnings: true)"))
      .field(field::one_of("missing_earnings", {"impute", "skip"}).default_value("impute").describe(
          "without an earnings analysis: impute zeros (features_imputed: true) or skip the symbol "
          "(missing_earnings_features)"))
      .field(field::integer("chunk").default_value("1000").at_least(1).in_unit("keys").describe(
          "keys per MGET command; all of a batch's MGETs go in one round trip"))
      .field(field::integer("retries").default_value("2").at_least(0).at_most(10).in_unit("retries").describe(
          "retries of a failed Redis call before the batch is given up (its messages failed, for redelivery)"))
      .field(field::duration("retry_backoff").default_value("50ms").at_least(0).describe(
          "wait before the first retry; doubles for each further one"))
      .blocking_io()
      .show_in_label({"redis", "earnings"})
      .with_example(
          "type: feature_fetch\nfrom: [route.earnings]\nredis: cache\nearnings: true\nmissing_earnings: impute\n"
          "chunk: 1000\nretries: 2\nretry_backoff: 50ms\n");
}

class FeatureFetch : public Processor {
 public:
  explicit FeatureFetch(const NodeContext& ctx)
      : id_(ctx.id),
        redis_(ctx.resource<connectors::RedisResource>("redis")),
        redis_name_(ctx.config.get_string("redis")),
        features_prefix_(ctx.config.get_string("features_prefix")),
        width_(static_cast<std::size_t>(ctx.config.get_int("width"))),
        earnings_(ctx.config.get_bool("earnings")),
        earnings_prefix_(ctx.config.get_string("earnings_prefix")),
        earnings_width_(earnings_ ? static_cast<std::size_t>(ctx.config.get_int("earnings_width")) : 0),
        skip_missing_earnings_(ctx.config.get_string("missing_earnings") == "skip"),
        chunk_(static_cast<std::size_t>(ctx.config.get_int("chunk"))),
        retries_(static_cast<int>(ctx.config.get_int("retries"))),
        retry_backoff_(ctx.config.get_duration("retry_backoff")),
        unavailable_total_(ctx.metrics.counter("predflow_prediction_errors_total", "Prediction errors by type",
                                               {{"type", "features_unavailable"}})) {
    if (!redis_) throw std::runtime_error("feature_fetch " + id_ + ": resource '" + redis_name_ + "' is not a redis resource");
    for (SkipReason r : features::all_skip_reasons())
      skipped_total_[static_cast<std::size_t>(r)] = &ctx.metrics.counter(
          "predflow_symbols_skipped_total", "Symbols skipped (not predicted) by reason", {{"reason", features::skip_label(r)}});
    for (const char* key : {"features", "earnings"}) {
      if (std::string_view(key) == "earnings" && !earnings_) continue;
      for (const char* result : {"hit", "miss"})
        lookups_[std::string_view(key) == "earnings"][std::string_view(result) == "miss"] = &ctx.metrics.counter(
            "predflow_feature_lookups_total", "Feature keys read from Redis, by key kind and whether the key was there",
            {{"node", id_}, {"key", key}, {"result", result}});
    }
  }

  void process(BatchPtr in, Output& out) override {
    const std::size_t n = in->size();
    if (n == 0) {  // failures (or tokens) only: on to the dead letters
      if (!in->failures.empty()) out.emit(1, std::move(in));
      return;
    }
    const Batch& b = *in;
    const std::size_t key_count = earnings_ ? 2 * n : n;
    if (keys_.size() < key_count) keys_.resize(key_count);
    for (std::size_t r = 0; r < n; ++r) {
      keys_[r].assign(features_prefix_).append(b.symbols[r]);
      if (earnings_) keys_[n + r].assign(earnings_prefix_).append(b.symbols[r]);
    }

    auto values = fetch(b, std::span<const std::string>(keys_.data(), key_count));
    if (!values) return;
    count_lookups(*values, n);
    parse_and_emit(std::move(in), *values, out);
  }

 private:
  struct Skipped {
    std::uint32_t row;
    Skip skip;
    std::string payload;
  };

  // The values of `keys`, with retries; nullopt when Redis could not answer: then every
  // message of the batch is failed (the source redelivers it) and nothing is emitted.
  std::optional<std::vector<std::optional<std::string>>> fetch(const Batch& b, std::span<const std::string> keys) {
    Duration wait = retry_backoff_;
    int attempt = 0;
    std::string error;
    for (;; ++attempt) {
      try {
        return redis_->mget(keys, chunk_);
      } catch (const connectors::BreakerOpenError& e) {
        error = e.what();  // nothing was sent: fail fast, the breaker knows the server is down
      } catch (const connectors::ConnectorError& e) {
        error = e.what();
        if (attempt < retries_) {
          spdlog::warn("msg=\"redis call failed: retrying\" node={} resource={} attempt={} retry_in_ms={} error=\"{}\"", id_,
                       redis_name_, attempt + 1, std::chrono::duration_cast<std::chrono::milliseconds>(wait).count(), error);
          std::this_thread::sleep_for(wait);
          wait *= 2;
          continue;
        }
      } catch (const std::exception& e) {
        error = e.what();  // the server answered with an error: retrying would get the same answer
      }
      break;
    }
    std::size_t tokens = 0;
    for (const auto* list : {&b.acks, &b.shared_acks})
      for (const AckPtr& ack : *list)
        if (ack) ack->fail(), ++tokens;
    unavailable_total_.Increment();
    spdlog::error(
        "msg=\"features unavailable: batch failed for redelivery\" node={} resource={} symbols={} messages={} attempts={} "
        "correlation_id={} error=\"{}\"",
        id_, redis_name_, b.size(), tokens, attempt + 1, first_correlation(b), error);
    return std::nullopt;
  }

  void parse_and_emit(BatchPtr in, std::vector<std::optional<std::string>>& values, Output& out) {
    const Batch& b = *in;
    const std::size_t n = b.size();
    const std::size_t W = width_ + earnings_width_;
    std::vector<float> matrix(n * W);
    std::vector<double> prices;
    std::vector<std::string> ts;
    std::vector<EarningsContext> contexts;
    std::vector<std::uint32_t> good;
    std::vector<Skipped> skipped;
    prices.reserve(n), ts.reserve(n), good.reserve(n);
    if (earnings_) contexts.reserve(n);

    features::FeatureValue fv;
    features::EarningsValue ev;
    for (std::uint32_t r = 0; r < n; ++r) {
      float* row = matrix.data() + good.size() * W;  // good rows are packed as they come
      auto& value = values[r];
      if (!value) {
        skipped.push_back({r, {SkipReason::MissingFeatures, "no key " + features_prefix_ + b.symbols[r]}, {}});
        continue;
      }
      if (auto skip = parser_.parse_features(*value, {row, width_}, fv)) {
        skipped.push_back({r, std::move(*skip), std::move(*value)});
        continue;
      }
      ts.emplace_back(fv.ts);  // before the next parse, which reuses the buffer fv.ts views
      if (earnings_) {
        EarningsContext context = r < b[col::earnings].size() ? b[col::earnings][r] : EarningsContext{};
        std::span<float> tail(row + width_, earnings_width_);
        auto& analysis = values[n + r];
        if (!analysis) {
          if (skip_missing_earnings_) {
            ts.pop_back();
            skipped.push_back({r, {SkipReason::MissingEarningsFeatures, "no key " + earnings_prefix_ + b.symbols[r]}, {}});
            continue;
          }
          std::fill(tail.begin(), tail.end(), 0.0f);
          context.features_imputed = true;
        } else if (auto skip = parser_.parse_earnings(*analysis, tail, ev)) {
          ts.pop_back();
          skipped.push_back({r, std::move(*skip), std::move(*analysis)});
          continue;
        } else {
          if (ev.report_date) context.report_date.emplace(*ev.report_date);
          if (ev.timing) context.timing.emplace(*ev.timing);
          context.features_imputed = false;
        }
        contexts.push_back(std::move(context));
      }
      prices.push_back(fv.price);
      good.push_back(r);
    }
    matrix.resize(good.size() * W);

    auto fill = [&](Batch& ok) {
      ok[col::prices] = std::move(prices);
      ok[col::features_ts] = std::move(ts);
      ok[col::features].values = std::move(matrix);
      ok[col::features].width = W;
      if (earnings_) ok[col::earnings] = std::move(contexts);
    };

    if (skipped.empty()) {
      auto ok = Batch::take(std::move(in));
      fill(*ok);
      if (ok->failures.empty()) {
        out.emit(0, std::move(ok));
        return;
      }
      // Failures from upstream travel on with the dead letters, not with the features.
      auto dead = dead_batch(*ok);
      dead->failures = std::move(ok->failures);
      ok->failures.clear();
      out.emit(0, std::move(ok));
      out.emit(1, std::move(dead));
      return;
    }

    auto dead = dead_batch(b);
    dead->failures = b.failures;  // from upstream: they travel on with the dead letters
    dead->failures.reserve(b.failures.size() + skipped.size());
    std::vector<bool> held(b.acks.size(), false);  // each skipped row's token, once
    for (auto& s : skipped) {
      const std::size_t token = b.row_ack.empty() ? 0 : b.row_ack[s.row];
      if (token < held.size() && !held[token] && b.acks[token]) {
        held[token] = true;
        dead->shared_acks.push_back(b.acks[token]);
      }
      skipped_total_[static_cast<std::size_t>(s.skip.reason)]->Increment();
      RowFailure f;
      f.stage = "feature_fetch";
      f.symbol = b.symbols[s.row];
      f.reason = features::skip_label(s.skip.reason);
      f.error = std::move(s.skip.message);
      if (s.row < b.correlation_ids.size() && !b.correlation_ids[s.row].empty()) f.correlation_id = b.correlation_ids[s.row];
      f.attempts = 1;
      f.payload = std::move(s.payload);
      dead->failures.push_back(std::move(f));
    }
    log_skipped(b, *dead, skipped.size());
    if (!good.empty()) {
      auto ok = make_batch(b.select(good));
      fill(*ok);
      out.emit(0, std::move(ok));
    }
    in.reset();
    out.emit(1, std::move(dead));
  }

  // The Redis feature store's hit rate: a key that is there (valid or not) is a hit.
  void count_lookups(const std::vector<std::optional<std::string>>& values, std::size_t n) {
    std::size_t hits[2] = {0, 0};
    for (std::size_t i = 0; i < values.size(); ++i)
      if (values[i]) ++hits[i >= n];
    for (std::size_t kind = 0; kind < (earnings_ ? 2u : 1u); ++kind) {
      const std::size_t asked = kind == 0 ? n : values.size() - n;
      lookups_[kind][0]->Increment(static_cast<double>(hits[kind]));
      lookups_[kind][1]->Increment(static_cast<double>(asked - hits[kind]));
    }
  }

  // A batch for failures: no rows; the tokens the batch as a whole holds.
  static std::shared_ptr<Batch> dead_batch(const Batch& b) {
    auto dead = make_batch();
    (*dead)[col::route] = b[col::route];
    dead->arrived = b.arrived;
    dead->shared_acks = b.shared_acks;
    return dead;
  }

  // One line per batch, however many symbols were skipped: counts per reason, a few symbols.
  void log_skipped(const Batch& b, const Batch& dead, std::size_t count) const {
    const auto ours = std::span<const RowFailure>(dead.failures).last(count);
    std::map<std::string_view, std::size_t> counts;
    for (const auto& f : ours) ++counts[f.reason];
    std::string reasons, symbols;
    for (const auto& [reason, k] : counts) {
      if (!reasons.empty()) reasons += ',';
      reasons.append(reason).append(":").append(std::to_string(k));
    }
    constexpr std::size_t kExamples = 5;
    for (std::size_t i = 0; i < std::min(kExamples, ours.size()); ++i) {
      if (i) symbols += ',';
      symbols += ours[i].symbol.value_or("-");
    }
    if (ours.size() > kExamples) symbols += ",...";
    spdlog::warn("msg=\"symbols skipped\" node={} skipped={} of={} reasons={} symbols={} correlation_id={} first_error=\"{}\"",
                 id_, count, b.size(), reasons, symbols, first_correlation(b), ours.front().error);
  }

  static std::string first_correlation(const Batch& b) {
    return b.correlation_ids.empty() || b.correlation_ids.front().empty() ? "-" : b.correlation_ids.front();
  }

  const std::string id_;
  const std::shared_ptr<connectors::RedisResource> redis_;
  const std::string redis_name_;
  const std::string features_prefix_;
  const std::size_t width_;
  const bool earnings_;
  const std::string earnings_prefix_;
  const std::size_t earnings_width_;  // 0 without earnings
  const bool skip_missing_earnings_;
  const std::size_t chunk_;
  const int retries_;
  const Duration retry_backoff_;
  prometheus::Counter& unavailable_total_;
  std::array<prometheus::Counter*, features::kSkipReasonCount> skipped_total_{};
  prometheus::Counter* lookups_[2][2] = {};  // [features, earnings][hit, miss]

  FeatureJsonParser parser_;
  std::vector<std::string> keys_;  // reused: the strings keep their capacity between batches
};

PREDFLOW_REGISTER_NODE(feature_fetch_spec(), [](const NodeContext& ctx) { return std::make_unique<FeatureFetch>(ctx); });

}  // namespace
}  // namespace predflow
