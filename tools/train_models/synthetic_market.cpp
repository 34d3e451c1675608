#include "synthetic_market.hpp"

#include <algorithm>
#include <cmath>

#include "earnings_event.hpp"
#include "rng.hpp"
#include "technical_features.hpp"

namespace predflow::train {

const std::vector<std::string>& technical_feature_names() {
  static const std::vector<std::string> names = {
      "f00_ret_1d",
      "f01_ret_5d",
      "f02_ret_20d",
      "f03_ret_60d",
      "f04_ma5_gap",
      "f05_ma20_gap",
      "f06_ma50_gap",
      "f07_ma5_ma20_spread",
      "f08_vol_5d",
      "f09_vol_20d",
      "f10_vol_ratio_5_60",
      "f11_rsi_14",
      "f12_volume_z_20",
      "f13_volume_ratio_5_60",
      "f14_range_pct",
      "f15_close_location",
      "f16_close_pressure_10d",
      "f17_bollinger_pos_20",
      "f18_autocorr_20d",
      "f19_market_ret_1d",
  };
  return names;
}

namespace {

constexpr int kReportEvery = 63;  // trading days in a quarter

enum class Regime { trend, reversal, quiet };

// Daily switching with ~3 % chance: regimes last about a month, long enough for the
// features to reveal which one is running.
Regime next_regime(Regime r, Rng& rng) {
  if (!rng.bernoulli(0.03)) return r;
  const double u = rng.uniform();
  return u < 0.4 ? Regime::trend : u < 0.8 ? Regime::reversal : Regime::quiet;
}

// The predictable part of day t's return, from what was visible at the close of t-1.
// A trend carries a hidden direction for its whole life (the features see it build up in
// past returns and moving-average gaps); a reversal regime pulls price back towards its
// 5-day mean, capped by tanh so that one feature cannot explain everything.
double expected_return(Regime r, int trend_sign, const Bars& b, int t, double sigma) {
  constexpr double kTrend = 0.5;  // in units of the day's volatility
  constexpr double kReversal = 1.0;
  const int p = t - 1;
  switch (r) {
    case Regime::trend:
      return kTrend * sigma * trend_sign;
    case Regime::reversal: {
      double ma5 = 0.0;
      for (int i = p - 4; i <= p; ++i) ma5 += b.close[i] / 5.0;
      return -kReversal * sigma * std::tanh((b.close[p] / ma5 - 1.0) / sigma);
    }
    case Regime::quiet:
      break;
  }
  return 0.0;
}

// The index: mildly positive drift, clustered volatility. Shared by every symbol.
std::vector<double> simulate_index(std::uint64_t seed, int days) {
  Rng rng(mix_seed(seed, 0));
  std::vector<double> m(days, 0.0);
  const double base = std::log(0.008);
  double h = base;
  for (int t = 1; t < days; ++t) {
    h = base + 0.97 * (h - base) + 0.05 * rng.normal();
    m[t] = 0.0003 + std::exp(h) * rng.student_t_unit(5);
  }
  return m;
}

struct SymbolParams {
  double base_vol;  // typical daily idiosyncratic volatility
  double beta;      // exposure to the index
  double log_volume;
  EarningsProfile earnings;
  int report_phase;
};

SymbolParams draw_params(Rng& rng) {
  SymbolParams p;
  p.base_vol = rng.uniform(0.010, 0.025);
  p.beta = rng.uniform(0.6, 1.4);
  p.log_volume = rng.uniform(12.0, 17.0);
  p.earnings = draw_earnings_profile(rng);
  p.report_phase = static_cast<int>(rng.uniform() * kReportEvery);
  return p;
}

// Volume runs hot in trends and cold in quiet markets; closes sit at the day's extreme
// in the direction of the move in trends and away from it in reversals. These are the
// regime's fingerprints in the features.
void write_bar(Bars& b, int t, double ret, double sigma, Regime r, const SymbolParams& p,
               Rng& rng) {
  const double shift = r == Regime::trend ? 0.4 : r == Regime::reversal ? -0.1 : -0.3;
  const double follow = r == Regime::trend ? 1.0 : r == Regime::reversal ? -1.0 : 0.0;
  const double prev = b.close[t - 1];
  const double close = prev * (1.0 + ret);
  const double z = ret / sigma;
  const double clv =
      std::clamp(0.5 + 0.35 * follow * std::tanh(z) + 0.15 * rng.normal(), 0.02, 0.98);
  const double range =
      std::max(std::abs(close - prev) * 1.2, prev * sigma * (0.8 + 0.5 * std::abs(rng.normal())));
  b.ret[t] = ret;
  b.close[t] = close;
  b.low[t] = close - clv * range;
  b.high[t] = b.low[t] + range;
  b.log_volume[t] = p.log_volume + shift + 0.5 * std::min(std::abs(z), 6.0) + 0.25 * rng.normal();
}

Bars empty_bars(const std::vector<double>& index) {
  const std::size_t n = index.size();
  Bars b{std::vector<double>(n, 0.0),   std::vector<double>(n, 100.0),
         std::vector<double>(n, 100.0), std::vector<double>(n, 100.0),
         std::vector<double>(n, 0.0),   index};
  return b;
}

void simulate_symbol(const MarketConfig& cfg, const std::vector<double>& index, int s,
                     MarketData& out) {
  Rng rng(mix_seed(cfg.seed, 1000 + static_cast<std::uint64_t>(s)));
  const SymbolParams p = draw_params(rng);
  EarningsHistory history = initial_earnings_history(p.earnings, rng);
  Bars b = empty_bars(index);
  b.log_volume[0] = p.log_volume;

  const int days = static_cast<int>(index.size());
  const double base_h = std::log(p.base_vol);
  double h = base_h;
  Regime regime = next_regime(Regime::quiet, rng);
  int trend_sign = 1;

  // The row written at the close of day t waits one day for its target, ret[t + 1].
  std::vector<double> pending;
  Dataset* pending_to = nullptr;
  double jump = 0.0;  // tomorrow's reaction to a report made today
  bool reported = false;
  for (int t = 1; t < days; ++t) {
    const Regime before = regime;
    regime = next_regime(regime, rng);
    if (regime == Regime::trend && before != Regime::trend)
      trend_sign = rng.bernoulli(0.5) ? 1 : -1;
    h = base_h + 0.95 * (h - base_h) + 0.08 * rng.normal();  // stationary sd 0.26
    const double sigma = std::exp(h);
    const double mu = t > 6 ? expected_return(regime, trend_sign, b, t, sigma) : 0.0;
    // Floored so that a fat-tailed draw can never take the price to zero.
    const double ret =
        std::max(-0.6, mu + p.beta * index[t] + sigma * rng.student_t_unit(5) + jump);
    write_bar(b, t, ret, sigma, regime, p, rng);

    if (pending_to != nullptr) pending_to->append(pending, ret, s);
    if (reported) record_reaction(history, ret);
    pending_to = nullptr;
    jump = 0.0;
    reported = false;
    if (t < kFeatureHistory || t + 1 >= days) continue;

    pending = technical_features(b, t);
    if ((t - p.report_phase) % kReportEvery == 0) {
      const EarningsEvent e = draw_earnings_event(p.earnings, history, rng);
      pending.insert(pending.end(), e.features.begin(), e.features.end());
      jump = e.jump;
      reported = true;
      pending_to = &out.earnings;
    } else if (rng.bernoulli(cfg.normal_keep)) {
      pending_to = &out.normal;
    }
  }
}

}  // namespace

MarketData generate_market(const MarketConfig& cfg) {
  MarketData out;
  out.normal.feature_names = technical_feature_names();
  out.earnings.feature_names = technical_feature_names();
  for (const auto& n : earnings_feature_names()) out.earnings.feature_names.push_back(n);

  const std::vector<double> index = simulate_index(cfg.seed, kFeatureHistory + cfg.days);
  for (int s = 0; s < cfg.symbols; ++s) simulate_symbol(cfg, index, s, out);
  return out;
}

}  // namespace predflow::train
