#include "earnings_event.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "synthetic_market.hpp"

namespace predflow::train {

const std::vector<std::string>& earnings_feature_names() {
  static const std::vector<std::string> names = {
      "f20_eps_surprise_pct",     "f21_revenue_surprise_pct", "f22_guidance_revision",
      "f23_analyst_revision_30d", "f24_consensus_dispersion", "f25_implied_move",
      "f26_hist_reaction_mean",   "f27_hist_reaction_std",    "f28_beat_rate_8q",
      "f29_short_interest_pct",   "f30_sentiment_score",      "f31_eps_growth_yoy",
      "f32_margin_change",        "f33_options_skew_25d",     "f34_sector_earnings_momentum",
      "f35_timing_bmo",           "f36_timing_amc",
  };
  return names;
}

namespace {

constexpr std::size_t kMemory = 8;  // quarters an analyst database looks back

void push_bounded(std::deque<double>& d, double v) {
  d.push_back(v);
  if (d.size() > kMemory) d.pop_front();
}

double mean_of(const std::deque<double>& d) {
  double s = 0.0;
  for (double v : d) s += v;
  return s / static_cast<double>(d.size());
}

double std_of(const std::deque<double>& d) {
  const double m = mean_of(d);
  double s = 0.0;
  for (double v : d) s += (v - m) * (v - m);
  return std::sqrt(s / static_cast<double>(d.size() - 1));
}

// Unpredictable share of a reaction, in units of its magnitude.
constexpr double kReactionNoise = 0.7;

}  // namespace

EarningsProfile draw_earnings_profile(Rng& rng) {
  EarningsProfile p;
  p.reaction_scale = rng.uniform(0.02, 0.07);
  p.reaction_bias = 0.3 * rng.normal();
  p.beat_tendency = 0.2 + 0.4 * rng.normal();
  p.short_interest = rng.uniform(0.01, 0.20);
  return p;
}

// Four quarters of made-up past so that history features exist from the first report.
EarningsHistory initial_earnings_history(const EarningsProfile& p, Rng& rng) {
  EarningsHistory h;
  for (int i = 0; i < 4; ++i) {
    const double surprise = p.beat_tendency + rng.normal();
    h.beats.push_back(surprise > 0.0 ? 1.0 : 0.0);
    h.reactions.push_back(p.reaction_scale *
                          (p.reaction_bias + 0.6 * surprise + kReactionNoise * rng.normal()));
  }
  return h;
}

EarningsEvent draw_earnings_event(const EarningsProfile& p, EarningsHistory& history, Rng& rng) {
  // Hidden truth: the EPS surprise and the guidance shock (correlated: good quarters tend
  // to come with raised guidance).
  const double surprise = p.beat_tendency + rng.normal();
  const double guidance = 0.5 * surprise + 0.87 * rng.normal();
  const double disagreement = rng.uniform();  // analysts disagree → bigger moves
  const double magnitude = p.reaction_scale * (0.75 + 0.5 * disagreement);
  const double short_interest =
      std::clamp(p.short_interest * std::exp(0.25 * rng.normal()), 0.005, 0.4);
  // A beat on a heavily shorted stock forces short covering on top of the normal reaction.
  const double squeeze = 0.3 * std::max(surprise, 0.0) * (short_interest / 0.1 - 1.0);
  const double drive = 0.55 * surprise + 0.35 * guidance + p.reaction_bias + squeeze;

  EarningsEvent e;
  e.jump = magnitude * (drive + kReactionNoise * rng.student_t_unit(5));

  const double eps_surprise = 0.04 * (surprise + 0.7 * rng.normal());
  const double timing = rng.uniform();  // BMO 45 %, AMC 45 %, during hours / unknown 10 %
  e.features = {
      eps_surprise,                                    // f20
      0.015 * (0.6 * surprise + 0.8 * rng.normal()),   // f21
      std::tanh(0.8 * guidance + 0.4 * rng.normal()),  // f22
      0.02 * (0.3 * surprise + 0.95 * rng.normal()),   // f23 analysts sense it early
      std::max(0.001, 0.02 + 0.08 * disagreement + 0.005 * rng.normal()),  // f24
      magnitude * std::exp(0.15 * rng.normal()),  // f25 options price the size
      mean_of(history.reactions),                 // f26
      std_of(history.reactions),                  // f27
      mean_of(history.beats),                     // f28
      short_interest,                             // f29
      std::tanh(0.3 * surprise + 0.3 * guidance + 0.9 * rng.normal()),  // f30
      0.03 * surprise + 0.1 * rng.normal(),                             // f31
      0.01 * (0.4 * guidance + 0.9 * rng.normal()),                     // f32
      0.02 * (-0.25 * surprise + rng.normal()),    // f33 puts bid before bad news
      0.02 * (0.2 * surprise + rng.normal()),      // f34
      timing < 0.45 ? 1.0 : 0.0,                   // f35
      timing >= 0.45 && timing < 0.9 ? 1.0 : 0.0,  // f36
  };
  push_bounded(history.beats, eps_surprise > 0.0 ? 1.0 : 0.0);
  return e;
}

void record_reaction(EarningsHistory& history, double next_period_return) {
  push_bounded(history.reactions, next_period_return);
}

}  // namespace predflow::train
