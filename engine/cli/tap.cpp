#include "engine/cli/tap.hpp"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/cli/http_client.hpp"

namespace predflow {

namespace {

constexpr int kExitUsage = 64;
constexpr auto kConnectTimeout = std::chrono::seconds(5);
// The pipeline sends a status event every 5 s: three missed ones mean it is gone.
constexpr auto kIdleTimeout = std::chrono::seconds(15);

// One value, short: numbers with 6 significant digits, strings bare, a long array as its
// length, an object as {k=v …}.
std::string short_value(const nlohmann::json& v) {
  if (v.is_null()) return "-";
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_float()) {
    std::ostringstream out;
    out.precision(6);
    out << v.get<double>();
    return out.str();
  }
  if (v.is_array()) {
    if (v.size() > 4) return "[" + std::to_string(v.size()) + " values]";
    std::string out = "[";
    for (std::size_t i = 0; i < v.size(); ++i) out += (i ? " " : "") + short_value(v[i]);
    return out + "]";
  }
  if (v.is_object()) {
    std::string out = "{";
    bool first = true;
    for (const auto& [k, x] : v.items()) {
      out += (first ? "" : " ") + k + "=" + short_value(x);
      first = false;
    }
    return out + "}";
  }
  return v.dump();
}

std::string pad(std::string s, std::size_t width) {
  if (s.size() < width) s.append(width - s.size(), ' ');
  return s + " ";
}

void print_table_row(const nlohmann::json& record) {
  const std::string batch = record.contains("batch") ? short_value(record["batch"]) : "-";
  if (record.contains("failure")) {
    const auto& f = record["failure"];
    std::cout << pad(short_value(f.value("symbol", nlohmann::json())), 10) << pad(batch, 7) << pad("-", 5)
              << "FAILURE stage=" << short_value(f.value("stage", nlohmann::json()))
              << " reason=" << short_value(f.value("reason", nlohmann::json()))
              << " error=" << short_value(f.value("error", nlohmann::json())) << "\n";
    return;
  }
  std::cout << pad(short_value(record.value("symbol", nlohmann::json())), 10) << pad(batch, 7)
            << pad(short_value(record.value("row", nlohmann::json())), 5);
  bool first = true;
  const auto columns = record.value("columns", nlohmann::json::object());
  for (const auto& [name, value] : columns.items()) {
    std::cout << (first ? "" : " ") << name << "=" << short_value(value);
    first = false;
  }
  std::cout << "\n";
}

}  // namespace

int tap_command(const TapCommandOptions& options) {
  std::string error;
  auto endpoint = parse_http_url(options.url, error);
  if (!endpoint) {
    std::cerr << "predflow tap: " << error << "\n";
    return kExitUsage;
  }
  const auto dot = options.target.find('.');
  const std::string node = options.target.substr(0, dot);
  const std::string port = dot == std::string::npos ? "" : options.target.substr(dot + 1);
  if (node.empty() || (dot != std::string::npos && port.empty())) {
    std::cerr << "predflow tap: expected NODE or NODE.PORT, got '" << options.target << "'\n";
    return kExitUsage;
  }
  std::string path = "/tap?node=" + url_encode(node);
  if (!port.empty()) path += "&port=" + url_encode(port);
  if (!options.rate.empty()) path += "&rate=" + url_encode(options.rate);
  if (options.limit > 0) path += "&limit=" + std::to_string(options.limit);

  const bool table = options.format == "table";
  std::uint64_t shown = 0;
  bool ended = false, bad_data = false;
  std::string where;
  SseReader reader;
  auto result = http_stream(*endpoint, path, kConnectTimeout, kIdleTimeout, [&](std::string_view chunk) {
    return reader.feed(chunk, [&](const std::string& name, const std::string& data) {
      if (name == "status") {
        if (where.empty()) {
          auto status = nlohmann::json::parse(data, nullptr, false);
          if (!status.is_discarded()) {
            where = status.value("node", "") + "." + status.value("port", "");
            if (table) {
              std::cerr << "tapping " << where << " at up to " << short_value(status["rate"]) << " rows/s"
                        << (options.limit > 0 ? ", " + std::to_string(options.limit) + " rows" : std::string(", until Ctrl-C"))
                        << "\n";
              std::cout << pad("SYMBOL", 10) << pad("BATCH", 7) << pad("ROW", 5) << "COLUMNS\n" << std::flush;
            }
          }
        }
        return true;
      }
      if (name == "end") {
        ended = true;
        auto status = nlohmann::json::parse(data, nullptr, false);
        if (table && !status.is_discarded())
          std::cerr << "seen " << short_value(status["seen"]) << " rows, shown " << shown << ", skipped (over the rate) "
                    << short_value(status["skipped"]) << ", dropped (not read in time) " << short_value(status["dropped"])
                    << "\n";
        return false;
      }
      if (!name.empty()) return true;  // an event this version does not know
      if (table) {
        auto record = nlohmann::json::parse(data, nullptr, false);
        if (record.is_discarded()) {
          bad_data = true;
          return false;
        }
        print_table_row(record);
        std::cout << std::flush;
      } else {
        std::cout << data << "\n" << std::flush;
      }
      ++shown;
      return options.limit == 0 || shown < options.limit;
    });
  });
  if (ended || (options.limit > 0 && shown >= options.limit)) return 0;
  const std::string target = options.url + "/tap";
  if (!result.error.empty()) {
    std::cerr << "predflow tap: " << target << ": " << result.error << "\n";
    return 1;
  }
  if (result.status != 200) {
    std::string body = result.body;
    while (!body.empty() && (body.back() == '\n' || body.back() == '\r')) body.pop_back();
    std::cerr << "predflow tap: " << body << " (HTTP " << result.status << " from " << target << ")\n";
    return result.status == 400 || result.status == 404 ? kExitUsage : 1;
  }
  if (bad_data) {
    std::cerr << "predflow tap: " << target << " sent a record that is not JSON\n";
    return 1;
  }
  std::cerr << "predflow tap: the pipeline closed the tap (it is stopping?) after " << shown << " rows\n";
  return 1;
}

}  // namespace predflow
