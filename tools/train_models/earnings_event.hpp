// Simulated quarterly reports: a hidden surprise and guidance shock move the price the
// next day, and the 17 earnings features see them through noise.
#pragma once

#include <deque>
#include <vector>

#include "rng.hpp"

namespace predflow::train {

struct EarningsProfile {
  double reaction_scale;  // typical size of the move after a report
  double reaction_bias;   // habit of rallying (+) or selling off (-), in reaction_scale units
  double beat_tendency;   // mean of the hidden surprise: some companies guide low and beat
  double short_interest;  // typical short interest, fraction of float
};

// What an analyst database remembers about the symbol's past reports.
struct EarningsHistory {
  std::deque<double> reactions;  // next-period returns after the last reports (up to 8)
  std::deque<double> beats;      // 1 when EPS beat consensus, 0 otherwise (up to 8)
};

struct EarningsEvent {
  std::vector<double> features;  // the 17, in earnings_feature_names() order
  double jump;                   // added to the next-period return
};

EarningsProfile draw_earnings_profile(Rng& rng);
EarningsHistory initial_earnings_history(const EarningsProfile& profile, Rng& rng);
EarningsEvent draw_earnings_event(const EarningsProfile& profile, EarningsHistory& history,
                                  Rng& rng);
void record_reaction(EarningsHistory& history, double next_period_return);

}  // namespace predflow::train
