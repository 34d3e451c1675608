#include "nodes/inference/canary_judge.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace predflow::inference {

bool in_canary_share(const std::string& symbol, double share) {
  if (share <= 0) return false;
  if (share >= 1) return true;
  std::uint64_t h = 1469598103934665603ULL;  // FNV-1a, 64 bits
  for (unsigned char c : symbol) h = (h ^ c) * 1099511628211ULL;
  // FNV's high bits hardly change between short names (SYM1, SYM2): mix them (MurmurHash3's
  // finaliser) before taking the top 53 bits as a fraction in [0, 1).
  h ^= h >> 33, h *= 0xff51afd7ed558ccdULL, h ^= h >> 33, h *= 0xc4ceb9fe1a85ec53ULL, h ^= h >> 33;
  return static_cast<double>(h >> 11) / 9007199254740992.0 < share;
}

CanaryJudge::CanaryJudge(CanaryLimits limits, Clock::time_point start) : limits_(limits), window_start_(start) {}

void CanaryJudge::add(Side& side, double call_seconds, const std::vector<double>& means, const std::vector<double>& bands) {
  side.calls += 1;
  side.seconds += call_seconds;
  for (double m : means)
    if (std::isfinite(m)) side.sum_means += m, side.rows += 1;
  for (double b : bands)
    if (std::isfinite(b)) side.bands.push_back(b);
}

void CanaryJudge::serving(double call_seconds, const std::vector<double>& means, const std::vector<double>& bands) {
  add(serving_, call_seconds, means, bands);
}

void CanaryJudge::candidate(double call_seconds, const std::vector<double>& means, const std::vector<double>& bands,
                            std::int64_t failed) {
  add(candidate_, call_seconds, means, bands);
  candidate_.failed += failed;
}

namespace {
double median(std::vector<double> v) {
  if (v.empty()) return std::nan("");
  const auto mid = v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2);
  std::nth_element(v.begin(), mid, v.end());
  return *mid;
}
std::string number(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%.4g", v);
  return text;
}
}  // namespace

CanaryJudge::Verdict CanaryJudge::judge(Clock::time_point now) {
  Verdict v;
  const std::int64_t candidate_rows = candidate_.rows + candidate_.failed;
  if (now - window_start_ < limits_.window || serving_.rows < limits_.min_rows || candidate_rows < limits_.min_rows) return v;
  v.judged = true;
  const double error_rate = static_cast<double>(candidate_.failed) / static_cast<double>(candidate_rows);
  const double latency_ratio = candidate_.calls > 0 && serving_.calls > 0 && serving_.seconds > 0
                                   ? (candidate_.seconds / static_cast<double>(candidate_.calls)) /
                                         (serving_.seconds / static_cast<double>(serving_.calls))
                                   : 1.0;
  const double shift = candidate_.rows > 0 ? std::fabs(candidate_.sum_means / static_cast<double>(candidate_.rows) -
                                                       serving_.sum_means / static_cast<double>(serving_.rows))
                                           : 0.0;
  const double serving_band = median(serving_.bands), candidate_band = median(candidate_.bands);
  const double band_ratio = serving_band > 0 && std::isfinite(candidate_band) ? candidate_band / serving_band : 1.0;
  v.summary = "candidate_rows=" + std::to_string(candidate_rows) + " serving_rows=" + std::to_string(serving_.rows) +
              " error_rate=" + number(error_rate) + " latency_ratio=" + number(latency_ratio) + " mean_shift=" + number(shift) +
              " band_ratio=" + number(band_ratio);
  if (error_rate > limits_.max_error_rate)
    v.violation = "error rate " + number(error_rate) + " above " + number(limits_.max_error_rate);
  else if (latency_ratio > limits_.max_latency_ratio)
    v.violation = "call latency " + number(latency_ratio) + " x the serving version's, above " + number(limits_.max_latency_ratio);
  else if (shift > limits_.max_mean_shift)
    v.violation = "average predicted mean shifted by " + number(shift) + " from the serving version's, above " +
                  number(limits_.max_mean_shift);
  else if (band_ratio < limits_.min_band_ratio || band_ratio > limits_.max_band_ratio)
    v.violation = "median band width " + number(band_ratio) + " x the serving version's, outside " + number(limits_.min_band_ratio) +
                  ".." + number(limits_.max_band_ratio);
  serving_ = {}, candidate_ = {};
  window_start_ = now;
  return v;
}

}  // namespace predflow::inference
