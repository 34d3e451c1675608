#include "nodes/codecs/feature_json.hpp"

#include <simdjson.h>

#include <cfloat>
#include <cmath>
#include <cstring>

namespace predflow::features {

namespace {

namespace od = simdjson::ondemand;

const char* type_name(od::json_type t) {
  switch (t) {
    case od::json_type::array: return "an array";
    case od::json_type::object: return "an object";
    case od::json_type::number: return "a number";
    case od::json_type::string: return "a string";
    case od::json_type::boolean: return "a boolean";
    case od::json_type::null: return "null";
  }
  return "a value";
}

// A raw token for a message: trimmed, at most 32 bytes.
std::string excerpt(od::value& v) {
  std::string_view raw = v.raw_json_token();
  while (!raw.empty() && (raw.back() == ' ' || raw.back() == '\n' || raw.back() == '\r' || raw.back() == '\t'))
    raw.remove_suffix(1);
  if (raw.size() > 32) return std::string(raw.substr(0, 32)) + "...";
  return std::string(raw);
}

Skip invalid_json(std::string message) { return Skip{SkipReason::InvalidJson, std::move(message)}; }
Skip invalid_json(simdjson::error_code e) { return invalid_json(std::string("not valid JSON: ") + simdjson::error_message(e)); }

// A float feature from an element, or a description of why it is not one.
std::optional<std::string> read_number(od::value& v, std::string_view what, std::size_t index, float& out) {
  auto at = [&] { return std::string(what) + "[" + std::to_string(index) + "]"; };
  // The valid path is one get_double() and no allocation; the type and the excerpt are
  // looked at only to explain a failure.
  double d = 0;
  if (!v.get_double().get(d)) {
    if (!std::isfinite(d) || std::fabs(d) > static_cast<double>(FLT_MAX)) return at() + " = " + excerpt(v) + " is outside the float range";
    out = static_cast<float>(d);
    return std::nullopt;
  }
  od::json_type t;
  if (v.type().get(t)) return at() + " = " + excerpt(v) + " is not a JSON number (NaN and Infinity are not JSON)";
  if (t != od::json_type::number) return at() + " is " + type_name(t) + ", expected a finite number";
  return at() + " = " + excerpt(v) + " is not a finite number";
}

// Parses one of the two values: `features` into out, the other keys by kind.
class ValueReader {
 public:
  ValueReader(od::parser& parser, std::string& buffer) : parser_(parser), buffer_(buffer) {}

  // what: "features" or "earnings features" (for messages); fv / ev: which keys to read.
  std::optional<Skip> read(std::string_view json, std::span<float> out, std::string_view what, FeatureValue* fv,
                           EarningsValue* ev) {
    if (json.empty()) return invalid_json("empty value");
    od::document doc;
    if (auto e = load(json, doc)) return invalid_json(e);
    od::object obj;
    if (auto e = doc.get_object().get(obj)) {
      od::json_type t;
      if (e == simdjson::INCORRECT_TYPE && !doc.type().get(t)) return invalid_json(std::string("expected a JSON object, got ") + type_name(t));
      return invalid_json(e);
    }

    bool have_features = false;
    std::size_t count = 0;
    std::string bad;  // the first element that is not a finite float
    std::optional<Skip> price_problem;
    if (fv) price_problem = Skip{SkipReason::InvalidPrice, "no price"};

    for (auto field : obj) {
      std::string_view key;
      if (auto e = field.unescaped_key().get(key)) return invalid_json(e);
      od::value v;
      if (auto e = field.value().get(v)) return invalid_json(e);
      if (key == "features") {
        have_features = true;
        count = 0;
        bad.clear();
        od::json_type t;
        if (auto e = v.type().get(t)) return invalid_json(e);
        if (t != od::json_type::array)
          return invalid_json("features: expected an array of " + std::to_string(out.size()) + " numbers, got " + type_name(t));
        od::array arr;
        if (auto e = v.get_array().get(arr)) return invalid_json(e);
        for (auto element : arr) {
          od::value x;
          if (auto e = std::move(element).get(x)) return invalid_json(e);
          // Every element takes at least one byte: a guard against a stuck iterator.
          if (count >= json.size()) return invalid_json("features: malformed array");
          const std::size_t i = count++;
          if (!bad.empty()) continue;  // one problem is enough; keep counting
          float f = 0;
          if (auto problem = read_number(x, what, i, f)) bad = std::move(*problem);
          else if (i < out.size()) out[i] = f;
        }
      } else if (fv && key == "price") {
        price_problem = check_price(v, fv->price);
      } else if (fv && key == "ts") {
        std::optional<std::string_view> ts;
        if (auto problem = read_text(v, "ts", ts)) return invalid_json(std::move(*problem));
        fv->ts = ts.value_or(std::string_view{});
      } else if (ev && (key == "report_date" || key == "timing")) {
        auto& target = key == "timing" ? ev->timing : ev->report_date;
        if (auto problem = read_text(v, key, target)) return invalid_json(std::move(*problem));
      }
    }
    // Anything after the object (`{...} x`, `{...}}`) makes the value invalid.
    if (doc.current_location().error() != simdjson::OUT_OF_BOUNDS) return invalid_json("unexpected bytes after the JSON object");

    if (!have_features) return invalid_json("no features array");
    if (count != out.size())
      return Skip{SkipReason::WrongFeatureCount,
                  "expected " + std::to_string(out.size()) + " " + std::string(what) + ", got " + std::to_string(count)};
    if (!bad.empty()) return Skip{SkipReason::NonNumericFeatures, std::move(bad)};
    return price_problem;
  }

 private:
  simdjson::error_code load(std::string_view json, od::document& doc) {
    // simdjson reads up to simdjson::SIMDJSON_PADDING bytes past the end: a padded copy, in a
    // buffer that is kept (a value is a few hundred bytes; the copy is cheap).
    const std::size_t need = json.size() + simdjson::SIMDJSON_PADDING;
    if (buffer_.size() < need) buffer_.resize(need);
    std::memcpy(buffer_.data(), json.data(), json.size());
    std::memset(buffer_.data() + json.size(), 0, simdjson::SIMDJSON_PADDING);
    return parser_.iterate(buffer_.data(), json.size(), buffer_.size()).get(doc);
  }

  static std::optional<Skip> check_price(od::value& v, double& price) {
    const std::string raw = excerpt(v);
    od::json_type t;
    if (v.type().get(t)) return Skip{SkipReason::InvalidPrice, "price = " + raw + " is not a JSON number"};
    if (t != od::json_type::number)
      return Skip{SkipReason::InvalidPrice, std::string("price is ") + type_name(t) + ", expected a positive number"};
    double d = 0;
    if (v.get_double().get(d) || !std::isfinite(d)) return Skip{SkipReason::InvalidPrice, "price = " + raw + " is not a finite number"};
    if (d <= 0) return Skip{SkipReason::InvalidPrice, "price must be positive, got " + raw};
    price = d;
    return std::nullopt;
  }

  // A string (a view of the parser's string buffer) or null (nullopt); anything else is a problem.
  static std::optional<std::string> read_text(od::value& v, std::string_view key, std::optional<std::string_view>& out) {
    out.reset();
    od::json_type t;
    if (v.type().get(t)) return std::string(key) + ": not valid JSON";
    if (t == od::json_type::null) return std::nullopt;
    std::string_view text;
    if (t != od::json_type::string || v.get_string().get(text)) return std::string(key) + ": expected a string, got " + type_name(t);
    out = text;
    return std::nullopt;
  }

  od::parser& parser_;
  std::string& buffer_;
};

}  // namespace

const char* skip_label(SkipReason reason) {
  switch (reason) {
    case SkipReason::MissingFeatures: return "missing_features";
    case SkipReason::InvalidJson: return "invalid_json";
    case SkipReason::WrongFeatureCount: return "wrong_feature_count";
    case SkipReason::NonNumericFeatures: return "non_numeric_features";
    case SkipReason::InvalidPrice: return "invalid_price";
    case SkipReason::MissingEarningsFeatures: return "missing_earnings_features";
    case SkipReason::InvalidEarningsFeatures: return "invalid_earnings_features";
  }
  return "unknown";
}

const std::array<SkipReason, kSkipReasonCount>& all_skip_reasons() {
  static const std::array<SkipReason, kSkipReasonCount> all = {
      SkipReason::MissingFeatures,    SkipReason::InvalidJson,  SkipReason::WrongFeatureCount,
      SkipReason::NonNumericFeatures, SkipReason::InvalidPrice, SkipReason::MissingEarningsFeatures,
      SkipReason::InvalidEarningsFeatures};
  return all;
}

struct FeatureJsonParser::Impl {
  od::parser parser;
  std::string buffer;
};

FeatureJsonParser::FeatureJsonParser() : impl_(std::make_unique<Impl>()) {}
FeatureJsonParser::~FeatureJsonParser() = default;
FeatureJsonParser::FeatureJsonParser(FeatureJsonParser&&) noexcept = default;
FeatureJsonParser& FeatureJsonParser::operator=(FeatureJsonParser&&) noexcept = default;

std::optional<Skip> FeatureJsonParser::parse_features(std::string_view json, std::span<float> out, FeatureValue& value) {
  value = FeatureValue{};
  return ValueReader(impl_->parser, impl_->buffer).read(json, out, "features", &value, nullptr);
}

std::optional<Skip> FeatureJsonParser::parse_earnings(std::string_view json, std::span<float> out, EarningsValue& value) {
  value = EarningsValue{};
  auto skip = ValueReader(impl_->parser, impl_->buffer).read(json, out, "earnings features", nullptr, &value);
  if (skip) {
    skip->reason = SkipReason::InvalidEarningsFeatures;
    skip->message = "earnings_analysis: " + skip->message;
  }
  return skip;
}

}  // namespace predflow::features
