// The contract's Redis feature values (docs/interface.md §2), parsed with simdjson On Demand:
//
//   features:{symbol}           {"ts": "...", "price": 189.52, "features": [20 finite numbers]}
//   earnings_analysis:{symbol}  {"features": [17 finite numbers], "report_date": "...", "timing": "BMO"}
//
// A value either parses or yields a Skip: a stable reason label (the `reason` of dead
// letters and of predflow_symbols_skipped_total) and a message for people. Unknown keys
// are ignored, so upstream may add fields (their values are skipped, not validated).
// No simdjson headers here: they are large, and only feature_json.cpp needs them.
#pragma once

#include <array>
#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace predflow::features {

enum class SkipReason : unsigned char {
  MissingFeatures,          // no features:{symbol} key (or not a string value)
  InvalidJson,              // not JSON, not an object, no `features` array, trailing bytes, a bad `ts`
  WrongFeatureCount,        // features holds another number of elements than the width
  NonNumericFeatures,       // an element is not a number, is NaN/Infinity, or is outside float range
  InvalidPrice,             // price missing, not a number, not finite, or <= 0
  MissingEarningsFeatures,  // no earnings_analysis:{symbol} key, with missing_earnings: skip
  InvalidEarningsFeatures,  // earnings_analysis:{symbol} present but not the contract's JSON
};
inline constexpr std::size_t kSkipReasonCount = 7;

// "missing_features", "invalid_json", "wrong_feature_count", "non_numeric_features",
// "invalid_price", "missing_earnings_features", "invalid_earnings_features".
const char* skip_label(SkipReason reason);
// Every reason, in enum order.
const std::array<SkipReason, kSkipReasonCount>& all_skip_reasons();

struct Skip {
  SkipReason reason;
  std::string message;  // e.g. "expected 20 features, got 19"
};

// What a features value holds besides the features themselves. The views point into the
// parser and stay valid until its next call: copy them before parsing the next value.
struct FeatureValue {
  double price = 0;
  std::string_view ts;  // as given; empty when absent or null
};

struct EarningsValue {
  std::optional<std::string_view> report_date;  // absent or null: nullopt
  std::optional<std::string_view> timing;
};

// One reusable parser (its buffers grow to the largest value seen and are kept). Not
// thread-safe: one per node (or per thread).
class FeatureJsonParser {
 public:
  FeatureJsonParser();
  ~FeatureJsonParser();
  FeatureJsonParser(FeatureJsonParser&&) noexcept;
  FeatureJsonParser& operator=(FeatureJsonParser&&) noexcept;

  // A features:{symbol} value with exactly out.size() features, written to `out` as floats
  // (`out` may be partly written when the value is skipped). nullopt when it is valid.
  std::optional<Skip> parse_features(std::string_view json, std::span<float> out, FeatureValue& value);

  // An earnings_analysis:{symbol} value with exactly out.size() features; every problem
  // is InvalidEarningsFeatures (the message says which).
  std::optional<Skip> parse_earnings(std::string_view json, std::span<float> out, EarningsValue& value);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace predflow::features
