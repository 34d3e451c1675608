#include "technical_features.hpp"

#include <algorithm>
#include <cmath>

namespace predflow::train {

namespace {

// Statistics over the window of n days ending at day t (inclusive).
double mean_of(const std::vector<double>& v, int t, int n) {
  double s = 0.0;
  for (int i = t - n + 1; i <= t; ++i) s += v[i];
  return s / n;
}

double std_of(const std::vector<double>& v, int t, int n) {
  const double m = mean_of(v, t, n);
  double s = 0.0;
  for (int i = t - n + 1; i <= t; ++i) s += (v[i] - m) * (v[i] - m);
  return std::sqrt(s / (n - 1));
}

double close_location(const Bars& b, int t) {
  const double range = b.high[t] - b.low[t];
  return range > 0.0 ? (b.close[t] - b.low[t]) / range : 0.5;
}

double rsi(const Bars& b, int t, int n) {
  double gain = 0.0, loss = 0.0;
  for (int i = t - n + 1; i <= t; ++i) {
    gain += std::max(b.ret[i], 0.0);
    loss += std::max(-b.ret[i], 0.0);
  }
  if (loss <= 0.0) return 100.0;
  return 100.0 - 100.0 / (1.0 + gain / loss);
}

// Lag-1 autocorrelation of daily returns over n days: positive in trending stretches,
// negative in choppy ones.
double autocorrelation(const std::vector<double>& r, int t, int n) {
  const double m = mean_of(r, t, n);
  double num = 0.0, den = 0.0;
  for (int i = t - n + 1; i <= t; ++i) {
    den += (r[i] - m) * (r[i] - m);
    if (i > t - n + 1) num += (r[i] - m) * (r[i - 1] - m);
  }
  return den > 0.0 ? num / den : 0.0;
}

// Where closes sit in the day's range, signed by the day's direction and averaged: +1 when
// up days close at the high and down days at the low (buyers and sellers follow through).
double close_pressure(const Bars& b, int t, int n) {
  double s = 0.0;
  for (int i = t - n + 1; i <= t; ++i) {
    const double dir = b.ret[i] > 0.0 ? 1.0 : b.ret[i] < 0.0 ? -1.0 : 0.0;
    s += (2.0 * close_location(b, i) - 1.0) * dir;
  }
  return s / n;
}

}  // namespace

std::vector<double> technical_features(const Bars& b, int t) {
  const auto& c = b.close;
  const auto& lv = b.log_volume;
  const double ma5 = mean_of(c, t, 5);
  const double ma20 = mean_of(c, t, 20);
  const double ma50 = mean_of(c, t, 50);
  const double vol5 = std_of(b.ret, t, 5);
  const double vol60 = std_of(b.ret, t, 60);
  const double sd_price20 = std_of(c, t, 20);
  const double sd_volume20 = std_of(lv, t, 20);
  const double volume_z = sd_volume20 > 0.0 ? (lv[t] - mean_of(lv, t, 20)) / sd_volume20 : 0.0;
  const double bollinger = sd_price20 > 0.0 ? (c[t] - ma20) / (2.0 * sd_price20) : 0.0;
  return {
      b.ret[t],                                          // f00_ret_1d
      c[t] / c[t - 5] - 1.0,                             // f01_ret_5d
      c[t] / c[t - 20] - 1.0,                            // f02_ret_20d
      c[t] / c[t - 60] - 1.0,                            // f03_ret_60d
      c[t] / ma5 - 1.0,                                  // f04_ma5_gap
      c[t] / ma20 - 1.0,                                 // f05_ma20_gap
      c[t] / ma50 - 1.0,                                 // f06_ma50_gap
      ma5 / ma20 - 1.0,                                  // f07_ma5_ma20_spread
      vol5,                                              // f08_vol_5d
      std_of(b.ret, t, 20),                              // f09_vol_20d
      vol60 > 0.0 ? vol5 / vol60 : 1.0,                  // f10_vol_ratio_5_60
      rsi(b, t, 14),                                     // f11_rsi_14
      volume_z,                                          // f12_volume_z_20
      std::exp(mean_of(lv, t, 5) - mean_of(lv, t, 60)),  // f13_volume_ratio_5_60
      (b.high[t] - b.low[t]) / c[t],                     // f14_range_pct
      close_location(b, t),                              // f15_close_location
      close_pressure(b, t, 10),                          // f16_close_pressure_10d
      bollinger,                                         // f17_bollinger_pos_20
      autocorrelation(b.ret, t, 20),                     // f18_autocorr_20d
      b.market_ret[t],                                   // f19_market_ret_1d
  };
}

}  // namespace predflow::train
