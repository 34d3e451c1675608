#include "nodes/codecs/symbol_messages.hpp"

#include <nlohmann/json.hpp>

#include <unordered_set>

#include "nodes/codecs/input_limits.hpp"

namespace predflow {

bool is_valid_symbol(std::string_view s) {
  if (s.empty() || s.size() > 15) return false;
  auto upper_or_digit = [](char c) { return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); };
  if (!upper_or_digit(s[0])) return false;
  for (std::size_t i = 1; i < s.size(); ++i)
    if (!upper_or_digit(s[i]) && s[i] != '.' && s[i] != '-') return false;
  return true;
}

namespace {

using nlohmann::json;

// A scalar as the reader saw it: its JSON type name and its text (a string's content, a
// number's digits).
struct Scalar {
  const char* type;
  std::string text;
  bool is_string() const { return std::string_view(type) == "string"; }
  bool is_number() const { return std::string_view(type) == "number"; }
  bool is_null() const { return std::string_view(type) == "null"; }
};

// Reads a message as a stream of SAX events, never as a tree: nesting costs one bit per
// level in nlohmann's own parser stack and nothing here (an entry nested 300,000 deep is
// one invalid entry, skipped), and nothing read is copied more than once. Only what the
// contract's messages hold is kept: the top-level fields `symbols`, `symbol`,
// `correlation_id`, `ts` and `route`; the rest is skipped as it streams by.
class MessageReader final : public json::json_sax_t {
 public:
  MessageReader(SymbolMessage& out, const std::string& stage, std::string_view payload)
      : out_(out), stage_(stage), quoted_(limits::utf8_prefix(payload, limits::kMaxQuotedBytes)),
        payload_bytes_(payload.size()) {}

  // --- SAX events --------------------------------------------------------------------
  bool null() override { return scalar({"null", "null"}); }
  bool boolean(bool v) override { return scalar({"boolean", v ? "true" : "false"}); }
  bool number_integer(json::number_integer_t v) override { return scalar({"number", std::to_string(v)}); }
  bool number_unsigned(json::number_unsigned_t v) override { return scalar({"number", std::to_string(v)}); }
  bool number_float(json::number_float_t, const json::string_t& text) override { return scalar({"number", text}); }
  bool string(json::string_t& v) override { return scalar({"string", std::move(v)}); }
  bool binary(json::binary_t&) override { return scalar({"binary", "(binary)"}); }
  bool key(json::string_t& k) override {
    if (depth_ == 1) field_ = classify(k);
    return true;
  }
  bool start_object(std::size_t) override { return open("object"); }
  bool start_array(std::size_t) override { return open("array"); }
  bool end_object() override { return close(); }
  bool end_array() override { return close(); }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override { return false; }

  // --- results -----------------------------------------------------------------------
  const char* root_type() const { return root_type_; }
  const std::optional<std::string>& route() const { return route_; }
  bool route_seen() const { return route_seen_; }
  const std::string& route_shown() const { return route_shown_; }
  const std::string& correlation_problem() const { return correlation_problem_; }

  // The failures of invalid entries, once the correlation id is known (it may come last).
  void finish_entries() {
    for (auto& f : out_.failures) f.correlation_id = out_.correlation_id;
    const std::size_t unrecorded = out_.invalid_symbols - std::min(out_.invalid_symbols, limits::kMaxInvalidEntryRecords);
    if (unrecorded > 0)
      out_.failures.push_back(failure("too_many_invalid_symbols",
                                      std::to_string(unrecorded) + " more invalid entries (" +
                                          std::to_string(out_.invalid_symbols) + " in all) were not dead-lettered one by "
                                          "one: a message yields at most " +
                                          std::to_string(limits::kMaxInvalidEntryRecords) + " records for them",
                                      std::nullopt));
  }

  // A record quotes the message (its first 4 KiB) while this message's records have quoted
  // less than kQuoteBudget in all; past that, only the offending entry — so that a small
  // message of many bad entries does not become a hundred copies of itself.
  RowFailure failure(std::string reason, std::string error, std::optional<std::string> symbol,
                     std::string_view entry = {}) {
    RowFailure f;
    f.stage = stage_;
    f.symbol = std::move(symbol);
    f.reason = std::move(reason);
    f.error = std::move(error);
    f.correlation_id = out_.correlation_id;
    if (entry.empty() || quoted_so_far_ + quoted_.size() <= kQuoteBudget) {
      f.payload = std::string(quoted_);
      f.payload_bytes = payload_bytes_;
    } else {
      f.payload = std::string(limits::utf8_prefix(entry, limits::kMaxQuotedBytes));
      f.payload_bytes = entry.size();
    }
    quoted_so_far_ += f.payload.size();
    return f;
  }

 private:
  enum class Field { Other, Symbols, Symbol, CorrelationId, Ts, Route };

  static Field classify(std::string_view k) {
    if (k == "symbols") return Field::Symbols;
    if (k == "symbol") return Field::Symbol;
    if (k == "correlation_id") return Field::CorrelationId;
    if (k == "ts") return Field::Ts;
    if (k == "route") return Field::Route;
    return Field::Other;
  }
  static const char* field_name(Field f) { return f == Field::Symbols ? "symbols" : "symbol"; }
  bool symbol_field() const { return field_ == Field::Symbols || field_ == Field::Symbol; }

  bool open(const char* type) {
    ++depth_;
    if (depth_ == 1) {
      root_type_ = type;
    } else if (depth_ == 2) {
      // The value of a top-level field is a container.
      if (symbol_field() && type[0] == 'a') {
        in_symbol_list_ = true, entry_ = 0;
      } else if (symbol_field()) {
        invalid_entry(field_name(field_), type, "");
      } else if (field_ == Field::CorrelationId) {
        correlation_problem_ = std::string("correlation_id is an ") + type + "; it must be a string";
      } else if (field_ == Field::Route) {
        route_seen_ = true, route_.reset(), route_shown_ = std::string("an ") + type;
      }
    } else if (depth_ == 3 && in_symbol_list_) {
      invalid_entry(entry_name(), type, "");  // whatever it holds, however deep: one entry
      ++entry_;
    }
    return true;
  }

  bool close() {
    if (depth_ == 2) in_symbol_list_ = false;
    --depth_;
    return true;
  }

  bool scalar(Scalar v) {
    if (depth_ == 0) {
      root_type_ = v.type;
    } else if (depth_ == 2 && in_symbol_list_) {
      entry(entry_name(), std::move(v));
      ++entry_;
    } else if (depth_ == 1) {
      switch (field_) {
        case Field::Symbols:
        case Field::Symbol:
          if (!v.is_null()) entry(field_name(field_), std::move(v));
          break;
        case Field::CorrelationId: correlation_id(std::move(v)); break;
        case Field::Ts:
          if (v.is_string() && v.text.size() <= 64) out_.ts = std::move(v.text);
          break;
        case Field::Route:
          route_seen_ = true;
          route_shown_ = v.is_string() ? "\"" + limits::shown_value(v.text) + "\"" : limits::shown_value(v.text);
          if (v.is_string()) route_ = std::move(v.text);
          else route_.reset();
          break;
        case Field::Other: break;
      }
    }
    return true;
  }

  void correlation_id(Scalar v) {
    correlation_problem_.clear();
    out_.correlation_id.reset();
    if (v.is_null()) return;                      // null: none, as when absent
    if (v.is_string() && v.text.empty()) return;        // empty: none
    if (!v.is_string() && !v.is_number()) {
      correlation_problem_ = std::string("correlation_id is a ") + v.type + "; it must be a string";
      return;
    }
    // A numeric id is still an id (its digits).
    correlation_problem_ = limits::correlation_id_problem(v.text);
    if (correlation_problem_.empty()) out_.correlation_id = std::move(v.text);
  }

  std::string entry_name() const { return std::string(field_name(field_)) + "[" + std::to_string(entry_) + "]"; }

  void entry(const std::string& where, Scalar v) {
    if (v.is_string() && is_valid_symbol(v.text)) {
      // A repeat within one message adds nothing (a window keeps one row per symbol).
      if (seen_.insert(v.text).second) out_.symbols.push_back(std::move(v.text));
      return;
    }
    if (v.is_string()) {
      if (++out_.invalid_symbols > limits::kMaxInvalidEntryRecords) return;
      out_.failures.push_back(failure("invalid_symbol",
                                      where + " \"" + limits::shown_value(v.text) +
                                          "\" does not match ^[A-Z0-9][A-Z0-9.\\-]{0,14}$",
                                      std::string(limits::utf8_prefix(v.text, limits::kMaxShownBytes)), v.text));
      return;
    }
    invalid_entry(where, v.type, v.text);
  }

  void invalid_entry(const std::string& where, const char* type, const std::string& text) {
    if (++out_.invalid_symbols > limits::kMaxInvalidEntryRecords) return;
    const std::string article = type[0] == 'a' || type[0] == 'o' ? "an " : "a ";
    out_.failures.push_back(failure("invalid_symbol",
                                    where + " is " + article + type +
                                        (text.empty() ? "" : " (" + limits::shown_value(text) + ")") + ", not a string",
                                    std::nullopt, text.empty() ? (type[0] == 'a' ? "[...]" : "{...}") : text));
  }

  SymbolMessage& out_;
  const std::string& stage_;
  static constexpr std::size_t kQuoteBudget = 64 * 1024;
  const std::string_view quoted_;
  const std::size_t payload_bytes_;
  std::size_t quoted_so_far_ = 0;

  std::size_t depth_ = 0;
  Field field_ = Field::Other;
  bool in_symbol_list_ = false;
  std::size_t entry_ = 0;
  std::unordered_set<std::string> seen_;
  const char* root_type_ = nullptr;
  std::string correlation_problem_;
  std::optional<std::string> route_;
  bool route_seen_ = false;
  std::string route_shown_;
};

// A failure for the whole message: nothing of it is used.
SymbolMessage whole_message_failure(const std::string& stage, std::string_view payload, std::string reason,
                                    std::string error) {
  SymbolMessage out;
  RowFailure f;
  f.stage = stage;
  f.reason = std::move(reason);
  f.error = std::move(error);
  f.payload = std::string(limits::utf8_prefix(payload, limits::kMaxQuotedBytes));
  f.payload_bytes = payload.size();
  out.failures.push_back(std::move(f));
  return out;
}

enum class Shape { FeaturesReady, Job };

SymbolMessage parse(std::string_view payload, const std::string& stage, Shape shape) {
  if (payload.size() > limits::kMaxMessageBytes)
    return whole_message_failure(stage, payload, "message_too_large",
                                 "message is " + std::to_string(payload.size()) + " bytes; the limit is " +
                                     std::to_string(limits::kMaxMessageBytes) + " bytes (1 MiB)");
  SymbolMessage out;
  MessageReader reader(out, stage, payload);
  const bool parsed = json::sax_parse(payload.begin(), payload.end(), &reader, json::input_format_t::json,
                                      /*strict=*/true, /*ignore_comments=*/false);
  if (!parsed)
    return whole_message_failure(stage, payload, "invalid_json",
                                 "payload is not valid JSON (" + std::to_string(payload.size()) + " bytes)");
  if (reader.root_type() == nullptr || std::string_view(reader.root_type()) != "object")
    return whole_message_failure(stage, payload, "invalid_json",
                                 std::string("payload is JSON ") + (reader.root_type() ? reader.root_type() : "nothing") +
                                     ", not an object");
  if (!reader.correlation_problem().empty())
    return whole_message_failure(stage, payload, "invalid_correlation_id", reader.correlation_problem());
  if (shape == Shape::Job) {
    if (!reader.route() || (*reader.route() != "normal" && *reader.route() != "earnings")) {
      auto bad = whole_message_failure(stage, payload, "invalid_route",
                                       "`route` must be \"normal\" or \"earnings\", got " +
                                           (reader.route_seen() ? reader.route_shown() : std::string("nothing")));
      bad.failures.front().correlation_id = out.correlation_id;
      return bad;
    }
    out.route = *reader.route();
  }
  reader.finish_entries();
  if (out.symbols.empty() && out.failures.empty())
    out.failures.push_back(reader.failure("no_symbols", "message has no `symbol` or `symbols` to predict", std::nullopt));
  return out;
}

}  // namespace

SymbolMessage parse_features_ready(std::string_view payload, const std::string& stage) {
  return parse(payload, stage, Shape::FeaturesReady);
}

SymbolMessage parse_job(std::string_view payload, const std::string& stage) { return parse(payload, stage, Shape::Job); }

std::string job_json(const std::string& correlation_id, const std::string& route, const std::vector<std::string>& symbols,
                     const std::string& ts) {
  json j = {{"correlation_id", correlation_id}, {"route", route}, {"symbols", symbols}, {"ts", ts}};
  return j.dump();
}

}  // namespace predflow
