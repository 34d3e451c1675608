#include "tools/demo_data/demo_data.hpp"

#include <yaml-cpp/yaml.h>

#include <nlohmann/json.hpp>

#include <random>
#include <stdexcept>

#include "engine/timestamps.hpp"
#include "engine/versioned_folder.hpp"

namespace predflow::demo {

std::vector<std::string> demo_symbols(std::size_t n) {
  static const char* known[] = {"AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "BRK.B", "JPM", "V",
                                "UNH",  "XOM",  "JNJ",  "WMT",  "MA",    "PG",   "AVGO", "HD",    "CVX", "BF-B"};
  std::vector<std::string> out;
  out.reserve(n);
  std::map<std::string, bool> used;
  for (const char* k : known) {
    if (out.size() == n) return out;
    out.emplace_back(k);
    used[k] = true;
  }
  for (std::size_t i = 0; out.size() < n; ++i) {
    // 3 letters for the first 17,576, then 4.
    std::string s;
    std::size_t v = i, len = i < 17576 ? 3 : 4;
    if (len == 4) v -= 17576;
    for (std::size_t k = 0; k < len; ++k) s.insert(s.begin(), static_cast<char>('A' + v % 26)), v /= 26;
    if (!used.count(s)) out.push_back(s);
  }
  return out;
}

FeatureScaler read_scaler(const std::string& model_folder) {
  // A model repository (models/normal_day/2.2/model.yaml): its latest version.
  const auto versions = versions_in(model_folder, "model.yaml");
  const std::string model_dir = versions.empty() ? model_folder : model_folder + "/" + versions.back();
  YAML::Node card = YAML::LoadFile(model_dir + "/model.yaml");
  FeatureScaler s;
  s.mean = card["scaler"]["mean"].as<std::vector<double>>();
  s.scale = card["scaler"]["scale"].as<std::vector<double>>();
  if (s.mean.size() != s.scale.size()) throw std::runtime_error(model_dir + "/model.yaml: scaler mean and scale differ in length");
  return s;
}

namespace {

nlohmann::json draw(std::mt19937_64& rng, const FeatureScaler& s, std::size_t from, std::size_t count) {
  std::normal_distribution<double> n(0.0, 1.0);
  nlohmann::json values = nlohmann::json::array();
  for (std::size_t i = from; i < from + count; ++i) {
    double m = i < s.mean.size() ? s.mean[i] : 0.0, sc = i < s.scale.size() ? s.scale[i] : 1.0;
    values.push_back(static_cast<float>(m + sc * n(rng)));
  }
  return values;
}

std::string date_string(std::chrono::sys_days d) {
  return format_rfc3339_millis(d).substr(0, 10);
}

std::chrono::sys_days parse_date(const std::string& text) {
  auto t = parse_rfc3339(text + "T12:00:00Z");
  if (!t) throw std::invalid_argument("not a date (YYYY-MM-DD): " + text);
  return std::chrono::floor<std::chrono::days>(*t);
}

std::chrono::sys_days previous_weekday(std::chrono::sys_days d) {
  do d -= std::chrono::days{1};
  while (std::chrono::weekday{d} == std::chrono::Saturday || std::chrono::weekday{d} == std::chrono::Sunday);
  return d;
}

}  // namespace

DemoSeed seed_redis(connectors::RedisResource& redis, const std::vector<std::string>& symbols, const FeatureScaler& normal,
                    const FeatureScaler& earnings, const DemoOptions& o) {
  DemoSeed seed;
  seed.symbols = symbols;
  std::mt19937_64 rng(o.seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::lognormal_distribution<double> price(4.0, 1.0);
  const std::string ts = format_rfc3339_millis(std::chrono::system_clock::now());
  std::vector<connectors::RedisCommand> commands;
  auto add_set = [&](const std::string& key, std::string value) {
    if (o.ttl.count() > 0) commands.push_back({"SET", key, std::move(value), "EX", std::to_string(o.ttl.count())});
    else commands.push_back({"SET", key, std::move(value)});
  };
  auto flush = [&] {
    if (commands.empty()) return;
    for (const auto& reply : redis.pipeline(commands))
      if (reply.is_error()) throw std::runtime_error("seeding Redis: " + reply.str);
    commands.clear();
  };
  for (const auto& s : symbols) {
    nlohmann::json f = {{"ts", ts}, {"price", std::round(price(rng) * 100.0) / 100.0 + 1.0}, {"features", draw(rng, normal, 0, 20)}};
    add_set("features:" + s, f.dump());
    if (u(rng) < o.flag_share) {
      std::string flag = u(rng) < 0.9 ? "1" : "0";
      seed.flags[s] = flag;
      add_set("earnings_flag:" + s, flag);
    }
    // Analyses for symbols that may route to earnings (flags and reporters alike): the same
    // draw decides in seed_calendar, so a share of the earnings symbols has one.
    if (u(rng) < (o.flag_share + o.report_today_share + o.reported_yesterday_share) * o.analysis_share) {
      nlohmann::json a = {{"features", draw(rng, earnings, 20, 17)}, {"report_date", nullptr}, {"timing", nullptr}};
      add_set("earnings_analysis:" + s, a.dump());
      ++seed.analyses;
    }
    if (commands.size() >= 2000) flush();
  }
  flush();
  return seed;
}

std::size_t seed_calendar(connectors::PostgresResource& db, const std::vector<std::string>& symbols,
                          const std::string& as_of_date, const DemoOptions& o) {
  db.exec(
      "CREATE TABLE IF NOT EXISTS earnings_calendar ("
      " symbol text NOT NULL, report_date date NOT NULL,"
      " timing text NOT NULL DEFAULT 'UNKNOWN' CHECK (timing IN ('BMO','AMC','DMH','UNKNOWN')),"
      " PRIMARY KEY (symbol, report_date))");
  const auto today = parse_date(as_of_date);
  const auto yesterday = previous_weekday(today);
  std::mt19937_64 rng(o.seed + 1);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  static const char* timings[] = {"BMO", "AMC", "DMH", "UNKNOWN"};
  std::string rows;
  std::size_t n = 0;
  for (const auto& s : symbols) {
    double x = u(rng);
    std::string date, timing;
    if (x < o.report_today_share) {
      date = date_string(today), timing = timings[static_cast<std::size_t>(u(rng) * 4) % 4];
    } else if (x < o.report_today_share + o.reported_yesterday_share) {
      date = date_string(yesterday), timing = "AMC";
    } else if (x < 0.25) {  // other quarters: outside the window that matters today
      date = date_string(today + std::chrono::days{1 + static_cast<int>(u(rng) * 60)});
      timing = timings[static_cast<std::size_t>(u(rng) * 4) % 4];
    } else {
      continue;
    }
    rows += s + "\t" + date + "\t" + timing + "\n";
    ++n;
  }
  db.exec("CREATE TEMP TABLE IF NOT EXISTS demo_calendar (LIKE earnings_calendar)");
  db.exec("TRUNCATE demo_calendar");
  db.copy_in("COPY demo_calendar (symbol, report_date, timing) FROM STDIN", rows);
  db.exec("INSERT INTO earnings_calendar SELECT * FROM demo_calendar ON CONFLICT (symbol, report_date) DO UPDATE "
          "SET timing = EXCLUDED.timing");
  return n;
}

std::string features_ready_json(const std::vector<std::string>& symbols, const std::string& correlation_id) {
  nlohmann::json j = {{"symbols", symbols}, {"ts", format_rfc3339_millis(std::chrono::system_clock::now())}};
  if (!correlation_id.empty()) j["correlation_id"] = correlation_id;
  return j.dump();
}

}  // namespace predflow::demo
