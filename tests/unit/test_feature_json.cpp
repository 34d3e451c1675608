// The contract's Redis feature values (docs/interface.md §2): what parses, and the skip reason
// and message of everything that does not.
#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "nodes/codecs/feature_json.hpp"

using namespace predflow::features;

namespace {

std::string numbers(std::size_t n, const std::string& first = "") {
  std::string s = "[";
  for (std::size_t i = 0; i < n; ++i) {
    if (i) s += ", ";
    s += (i == 0 && !first.empty()) ? first : std::to_string(0.5 * static_cast<double>(i) - 3.25);
  }
  return s + "]";
}

std::string features_json(const std::string& array, const std::string& price = "189.52", const std::string& extra = "") {
  return R"({"ts": "2026-11-26T14:30:00Z", "price": )" + price + R"(, "features": )" + array + extra + "}";
}

struct Result {
  std::optional<Skip> skip;
  std::vector<float> features;
  double price = 0;
  std::string ts;
};

Result parse(FeatureJsonParser& p, std::string_view json, std::size_t width = 20) {
  Result r;
  r.features.assign(width, -999.0f);
  FeatureValue v;
  r.skip = p.parse_features(json, r.features, v);
  r.price = v.price;
  r.ts = std::string(v.ts);
  return r;
}

// The reason label of a skipped value, or "ok".
std::string reason_of(FeatureJsonParser& p, std::string_view json, std::size_t width = 20) {
  auto r = parse(p, json, width);
  return r.skip ? skip_label(r.skip->reason) : "ok";
}

}  // namespace

TEST_SUITE("unit.feature_json") {

TEST_CASE("feature_json: a valid features value gives price, ts and 20 floats in order") {
  FeatureJsonParser p;
  auto r = parse(p, features_json(numbers(20)));
  REQUIRE_FALSE(r.skip.has_value());
  CHECK(r.price == 189.52);
  CHECK(r.ts == "2026-11-26T14:30:00Z");
  for (std::size_t i = 0; i < 20; ++i) CHECK(r.features[i] == doctest::Approx(0.5 * static_cast<double>(i) - 3.25));

  // Keys in any order, integers, exponents, an escaped ts kept as given, no ts at all.
  r = parse(p, R"({"features": [1, -2, 3e2, 4.5E-1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1e-50], "price": 42})");
  REQUIRE_FALSE(r.skip.has_value());
  CHECK(r.price == 42);
  CHECK(r.ts.empty());
  CHECK(r.features[1] == -2.0f);
  CHECK(r.features[2] == 300.0f);
  CHECK(r.features[3] == 0.45f);
  CHECK(r.features[19] == 0.0f);  // below float range: rounds to zero, still a finite number
  r = parse(p, R"({"ts": "2026-11-26T14:30:00\u002B00:00", "price": 1, "features": )" + numbers(20) + "}");
  REQUIRE_FALSE(r.skip.has_value());
  CHECK(r.ts == "2026-11-26T14:30:00+00:00");
  r = parse(p, R"({"ts": null, "price": 1, "features": )" + numbers(20) + "}");
  REQUIRE_FALSE(r.skip.has_value());
  CHECK(r.ts.empty());
  CHECK(reason_of(p, R"(  {"price": 1, "features": )" + numbers(20) + "}\n") == "ok");  // whitespace around
}

TEST_CASE("feature_json: unknown keys are ignored, whatever their value") {
  FeatureJsonParser p;
  auto r = parse(p, features_json(numbers(20), "10",
                                  R"(, "source": "v2", "extra": {"nested": [1, {"a": null}]}, "flags": [true, false], "n": null)"));
  REQUIRE_FALSE(r.skip.has_value());
  CHECK(r.price == 10);
  CHECK(reason_of(p, R"({"version": 3, "price": 5, "features": )" + numbers(20) + R"(, "z": "é ✓"})") == "ok");
}

TEST_CASE("feature_json: a wrong number of features says expected and got") {
  FeatureJsonParser p;
  auto r = parse(p, features_json(numbers(19)));
  REQUIRE(r.skip.has_value());
  CHECK(r.skip->reason == SkipReason::WrongFeatureCount);
  CHECK(r.skip->message == "expected 20 features, got 19");
  r = parse(p, features_json(numbers(21)));
  REQUIRE(r.skip.has_value());
  CHECK(r.skip->message == "expected 20 features, got 21");
  r = parse(p, features_json("[]"));
  REQUIRE(r.skip.has_value());
  CHECK(r.skip->message == "expected 20 features, got 0");
  // The count wins over an odd element, so that the message says the larger problem.
  r = parse(p, features_json(numbers(25, "\"x\"")));
  REQUIRE(r.skip.has_value());
  CHECK(r.skip->message == "expected 20 features, got 25");
  CHECK(reason_of(p, features_json(numbers(37)), 37) == "ok");
}

TEST_CASE("feature_json: strings, null, booleans, nested arrays and objects in features are non-numeric") {
  FeatureJsonParser p;
  auto r = parse(p, features_json(numbers(20, "\"1.5\"")));
  REQUIRE(r.skip.has_value());
  CHECK(r.skip->reason == SkipReason::NonNumericFeatures);
  CHECK(r.skip->message == "features[0] is a string, expected a finite number");
  std::string with_null = numbers(20);
  with_null.replace(with_null.find(", ") + 2, 0, "null, ");
  with_null.erase(with_null.rfind(", "));  // still 20 elements
  with_null += "]";
  r = parse(p, features_json(with_null));
  REQUIRE(r.skip.has_value());
  CHECK(r.skip->reason == SkipReason::NonNumericFeatures);
  CHECK(r.skip->message == "features[1] is null, expected a finite number");
  CHECK(reason_of(p, features_json(numbers(20, "true"))) == "non_numeric_features");
  CHECK(reason_of(p, features_json(numbers(20, "[1, 2]"))) == "non_numeric_features");
  CHECK(reason_of(p, features_json(numbers(20, R"({"v": 1})"))) == "non_numeric_features");
  r = parse(p, features_json(numbers(20, "[[1], [2, [3]]]")));
  REQUIRE(r.skip.has_value());
  CHECK(r.skip->message == "features[0] is an array, expected a finite number");
}

TEST_CASE("feature_json: NaN and Infinity literals, and numbers outside float range, are non-numeric") {
  FeatureJsonParser p;
  for (std::string bad : {"NaN", "Infinity", "-Infinity", "nan", "inf"}) {
    CAPTURE(bad);
    auto r = parse(p, features_json(numbers(20, bad)));
    REQUIRE(r.skip.has_value());
    CHECK(r.skip->reason == SkipReason::NonNumericFeatures);
    CHECK(r.skip->message.find("features[0]") == 0);
  }
  auto r = parse(p, features_json(numbers(20, "1e400")));
  REQUIRE(r.skip.has_value());
  CHECK(r.skip->reason == SkipReason::NonNumericFeatures);
  CHECK(r.skip->message == "features[0] = 1e400 is not a finite number");
  r = parse(p, features_json(numbers(20, "-1e39")));  // a double, but not a float
  REQUIRE(r.skip.has_value());
  CHECK(r.skip->reason == SkipReason::NonNumericFeatures);
  CHECK(r.skip->message == "features[0] = -1e39 is outside the float range");
  CHECK(reason_of(p, features_json(numbers(20, "3.4e38"))) == "ok");
  CHECK(reason_of(p, features_json(numbers(20, "18446744073709551616"))) == "ok");  // a big integer is a number
}

TEST_CASE("feature_json: price must be a positive finite number") {
  FeatureJsonParser p;
  auto r = parse(p, R"({"ts": "x", "features": )" + numbers(20) + "}");
  REQUIRE(r.skip.has_value());
  CHECK(r.skip->reason == SkipReason::InvalidPrice);
  CHECK(r.skip->message == "no price");
  r = parse(p, features_json(numbers(20), "0"));
  REQUIRE(r.skip.has_value());
  CHECK(r.skip->reason == SkipReason::InvalidPrice);
  CHECK(r.skip->message == "price must be positive, got 0");
  r = parse(p, features_json(numbers(20), "-5.5"));
  REQUIRE(r.skip.has_value());
  CHECK(r.skip->message == "price must be positive, got -5.5");
  r = parse(p, features_json(numbers(20), "\"189.52\""));
  REQUIRE(r.skip.has_value());
  CHECK(r.skip->reason == SkipReason::InvalidPrice);
  CHECK(r.skip->message == "price is a string, expected a positive number");
  CHECK(reason_of(p, features_json(numbers(20), "null")) == "invalid_price");
  CHECK(reason_of(p, features_json(numbers(20), "1e400")) == "invalid_price");
  CHECK(reason_of(p, features_json(numbers(20), "NaN")) == "invalid_price");
  CHECK(reason_of(p, features_json(numbers(20), "[1]")) == "invalid_price");
  CHECK(reason_of(p, features_json(numbers(20), "-0")) == "invalid_price");
  CHECK(reason_of(p, features_json(numbers(20), "0.0001")) == "ok");
  // Feature problems are reported before price problems.
  CHECK(reason_of(p, features_json(numbers(3), "0")) == "wrong_feature_count");
}

TEST_CASE("feature_json: values that are not a JSON object with a features array are invalid_json") {
  FeatureJsonParser p;
  auto check_invalid = [&](const std::string& json, const std::string& message_part) {
    CAPTURE(json);
    auto r = parse(p, json);
    REQUIRE(r.skip.has_value());
    CHECK(r.skip->reason == SkipReason::InvalidJson);
    INFO(r.skip->message);
    CHECK(r.skip->message.find(message_part) != std::string::npos);
  };
  check_invalid("", "empty value");
  check_invalid("   ", "not valid JSON");
  check_invalid("[1, 2, 3]", "expected a JSON object, got an array");
  check_invalid("\"features\"", "expected a JSON object, got a string");
  check_invalid("42", "expected a JSON object, got a number");
  check_invalid("null", "expected a JSON object, got null");
  check_invalid(R"({"price": 1})", "no features array");
  check_invalid(R"({"price": 1, "features": null})", "features: expected an array of 20 numbers, got null");
  check_invalid(R"({"price": 1, "features": "1,2,3"})", "got a string");
  check_invalid(R"({"price": 1, "features": {"0": 1}})", "got an object");
  check_invalid(R"({"price": 1, "ts": 1764167400, "features": )" + numbers(20) + "}", "ts: expected a string, got a number");
  // Truncated, trailing bytes, broken structure.
  const std::string valid = features_json(numbers(20));
  check_invalid(valid.substr(0, valid.size() - 1), "not valid JSON");
  check_invalid(valid.substr(0, valid.size() / 2), "not valid JSON");
  check_invalid(valid.substr(0, 1), "not valid JSON");
  check_invalid(valid + " x", "not valid JSON");
  check_invalid(valid + "}", "unexpected bytes after the JSON object");
  check_invalid(valid + valid, "");
  check_invalid(R"({"price": 1, "features": [1 2]})", "not valid JSON");
  check_invalid(R"({"price" 1, "features": []})", "not valid JSON");
  check_invalid(R"({"price": 1, "features": [1, 2],})", "not valid JSON");
  check_invalid(R"({"price": 1, "features": ["unterminated]})", "not valid JSON");
}

TEST_CASE("feature_json: junk bytes and invalid UTF-8 are invalid_json") {
  FeatureJsonParser p;
  CHECK(reason_of(p, std::string("\x00\x01\x02\xff", 4)) == "invalid_json");
  CHECK(reason_of(p, "\x89PNG\r\n\x1a\n") == "invalid_json");
  CHECK(reason_of(p, "not json at all") == "invalid_json");
  auto r = parse(p, features_json(numbers(20), "1", ", \"note\": \"caf\xe9\""));  // Latin-1, not UTF-8
  REQUIRE(r.skip.has_value());
  CHECK(r.skip->reason == SkipReason::InvalidJson);
  CHECK(r.skip->message.find("UTF-8") != std::string::npos);
  CHECK(reason_of(p, features_json(numbers(20), "1", ", \"note\": \"\xed\xa0\x80\"")) == "invalid_json");  // a surrogate
  CHECK(reason_of(p, std::string(features_json(numbers(20)).append(1, '\0'))) == "invalid_json");
}

TEST_CASE("feature_json: a 1 MiB value parses (extra key) or is skipped by its count, and the parser is reused") {
  FeatureJsonParser p;
  const std::string big_note(1 << 20, 'x');
  auto r = parse(p, features_json(numbers(20), "3", ", \"note\": \"" + big_note + "\""));
  REQUIRE_FALSE(r.skip.has_value());
  CHECK(r.price == 3);

  std::string huge = "[";
  for (int i = 0; huge.size() < (1u << 20); ++i) huge += (i ? ",1.25" : "1.25");
  huge += "]";
  const std::size_t elements = static_cast<std::size_t>(std::count(huge.begin(), huge.end(), ',')) + 1;
  r = parse(p, features_json(huge));
  REQUIRE(r.skip.has_value());
  CHECK(r.skip->reason == SkipReason::WrongFeatureCount);
  CHECK(r.skip->message == "expected 20 features, got " + std::to_string(elements));

  // After large and broken values the same parser handles a small one.
  CHECK(reason_of(p, "{") == "invalid_json");
  r = parse(p, features_json(numbers(20), "7.5"));
  REQUIRE_FALSE(r.skip.has_value());
  CHECK(r.price == 7.5);
  CHECK(r.features[19] == doctest::Approx(6.25));
}

TEST_CASE("feature_json: earnings analysis values") {
  FeatureJsonParser p;
  std::vector<float> out(17, -1.0f);
  EarningsValue v;
  auto skip = p.parse_earnings(R"({"features": )" + numbers(17) + R"(, "report_date": "2026-11-26", "timing": "BMO", "x": 1})", out, v);
  REQUIRE_FALSE(skip.has_value());
  CHECK(v.report_date == std::optional<std::string_view>("2026-11-26"));
  CHECK(v.timing == std::optional<std::string_view>("BMO"));
  CHECK(out[16] == doctest::Approx(0.5 * 16 - 3.25));

  skip = p.parse_earnings(R"({"features": )" + numbers(17) + R"(, "report_date": null})", out, v);
  REQUIRE_FALSE(skip.has_value());
  CHECK_FALSE(v.report_date.has_value());
  CHECK_FALSE(v.timing.has_value());

  auto reason = [&](const std::string& json) {
    auto s = p.parse_earnings(json, out, v);
    return s ? std::string(skip_label(s->reason)) + ": " + s->message : std::string("ok");
  };
  CHECK(reason(R"({"features": )" + numbers(16) + "}") == "invalid_earnings_features: earnings_analysis: expected 17 earnings features, got 16");
  CHECK(reason(R"({"features": )" + numbers(17, "\"a\"") + "}") ==
        "invalid_earnings_features: earnings_analysis: earnings features[0] is a string, expected a finite number");
  CHECK(reason(R"({"features": )" + numbers(17, "NaN") + "}").rfind("invalid_earnings_features: ", 0) == 0);
  CHECK(reason("{\"features\": [1,") == "invalid_earnings_features: earnings_analysis: not valid JSON: "
                                         "JSON document ended early in the middle of an object or array.");
  CHECK(reason(R"({"report_date": "2026-11-26"})") == "invalid_earnings_features: earnings_analysis: no features array");
  CHECK(reason(R"({"features": )" + numbers(17) + R"(, "timing": 3})") ==
        "invalid_earnings_features: earnings_analysis: timing: expected a string, got a number");
  CHECK(reason("") == "invalid_earnings_features: earnings_analysis: empty value");
  // No price is needed, and a price-like key is just another unknown key.
  CHECK(reason(R"({"price": "n/a", "features": )" + numbers(17) + "}") == "ok");
}

TEST_CASE("feature_json: reason labels are stable") {
  std::vector<std::string> labels;
  for (SkipReason r : all_skip_reasons()) labels.emplace_back(skip_label(r));
  CHECK(labels == std::vector<std::string>{"missing_features", "invalid_json", "wrong_feature_count", "non_numeric_features",
                                           "invalid_price", "missing_earnings_features", "invalid_earnings_features"});
}

}  // TEST_SUITE
