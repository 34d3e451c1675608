// The canary of torch_gpu_infer (`canary_version`): which symbols the candidate version
// serves, and whether it keeps serving them. Plain C++ (no engine, no libtorch).
//
// A stable share of the symbols (a hash of the symbol, so that a symbol stays on one side)
// is predicted by the candidate, the rest by the serving version. Over each window the
// judge compares the two sides — the symbols differ, but a hash split makes them alike — and
// names the first limit the candidate crossed: its error rate, its call latency against the
// serving version's, the shift of its average predicted mean, or the ratio of its median
// band width (p90 − p10). A window is judged once it is over and each side has min_rows.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace predflow::inference {

// Whether `symbol` is in the canary's share (0..1): FNV-1a of the symbol with MurmurHash3's
// finaliser, stable across processes, machines and versions.
bool in_canary_share(const std::string& symbol, double share);

struct CanaryLimits {
  std::chrono::steady_clock::duration window = std::chrono::seconds(60);
  std::int64_t min_rows = 50;       // per side, before a window is judged
  double max_error_rate = 0.01;     // candidate rows that failed / candidate rows
  double max_latency_ratio = 3;     // mean seconds per candidate call / per serving call
  double max_mean_shift = 0.005;    // |average candidate mean − average serving mean|
  double min_band_ratio = 0.5;      // median candidate band / median serving band
  double max_band_ratio = 2;
};

class CanaryJudge {
 public:
  using Clock = std::chrono::steady_clock;
  CanaryJudge(CanaryLimits limits, Clock::time_point start);

  // One model call's rows: their means and bands (p90 − p10) where predicted; `failed` rows
  // had no prediction from this side.
  void serving(double call_seconds, const std::vector<double>& means, const std::vector<double>& bands);
  void candidate(double call_seconds, const std::vector<double>& means, const std::vector<double>& bands, std::int64_t failed);

  struct Verdict {
    bool judged = false;     // the window was over and had the rows: the rest means something
    std::string violation;   // empty: the candidate passed this window
    std::string summary;     // the window's numbers, for the log
  };
  // At `now`: a verdict when the current window is over and has enough rows (then a new
  // window starts), else judged == false.
  Verdict judge(Clock::time_point now);

 private:
  struct Side {
    std::int64_t rows = 0, failed = 0, calls = 0;
    double seconds = 0, sum_means = 0;
    std::vector<double> bands;
  };
  static void add(Side& side, double call_seconds, const std::vector<double>& means, const std::vector<double>& bands);

  CanaryLimits limits_;
  Clock::time_point window_start_;
  Side serving_, candidate_;
};

}  // namespace predflow::inference
