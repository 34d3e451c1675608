#include "engine/cli/record.hpp"

#include <atomic>
#include <cstdio>
#include <csignal>
#include <filesystem>
#include <iostream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "engine/cli/http_client.hpp"
#include "engine/recording.hpp"
#include "engine/timestamps.hpp"
#include "engine/units.hpp"

namespace predflow {

namespace {

using nlohmann::json;

constexpr int kExitUsage = 64;
constexpr auto kConnectTimeout = std::chrono::seconds(5);
constexpr auto kIdleTimeout = std::chrono::seconds(15);  // three missed status events
constexpr std::size_t kMaxEvent = kMaxRecordingLine;

constexpr auto kDrainQuiet = std::chrono::milliseconds(500);  // no row for this long: what was sent has arrived
constexpr auto kDrainAtMost = std::chrono::seconds(10);

std::atomic<int> interrupts{0};
extern "C" void on_interrupt(int) { interrupts.fetch_add(1); }

// The ports chosen by kind, from GET /nodes (see record.hpp).
void default_ports(const json& nodes, std::vector<std::string>& inputs, std::vector<std::string>& outputs) {
  for (const auto& n : nodes.value("nodes", json::array())) {
    bool reads_features = false;
    for (const auto& in : n.value("inputs", json::array())) reads_features = reads_features || in.value("kind", "") == "features";
    for (const auto& out : n.value("outputs", json::array())) {
      const std::string port = n.value("id", "") + "." + out.value("name", "");
      const std::string kind = out.value("kind", "");
      if (kind == "features" && !reads_features) inputs.push_back(port);
      if (kind == "predictions") outputs.push_back(port);
    }
  }
}

// "" when NODE.PORT is an output of the running pipeline, else why not (with the ports).
std::string check_port(const json& nodes, const std::string& target) {
  const auto dot = target.find('.');
  if (dot == std::string::npos || dot == 0 || dot + 1 == target.size()) return "expected NODE.PORT, got '" + target + "'";
  std::vector<std::string> all;
  for (const auto& n : nodes.value("nodes", json::array()))
    for (const auto& out : n.value("outputs", json::array())) {
      const std::string port = n.value("id", "") + "." + out.value("name", "");
      if (port == target) return "";
      all.push_back(port);
    }
  std::string list;
  for (const auto& p : all) list += (list.empty() ? "" : ", ") + p;
  return "the pipeline has no output port " + target + " (ports: " + list + ")";
}

struct PortStream {
  std::string port;
  bool output = false;
  std::thread thread;
  std::uint64_t rows = 0, failures = 0;
  std::string last_status, error;
  bool ended = false;  // the tap sent its end event
};

}  // namespace

int record_command(const RecordCommandOptions& options) {
  std::string error;
  auto endpoint = parse_http_url(options.url, error);
  if (!endpoint) {
    std::cerr << "predflow record: " << error << "\n";
    return kExitUsage;
  }
  const auto max_size = parse_size(options.max_size);
  if (!max_size || *max_size == 0) {
    std::cerr << "predflow record: --max-size must be a size such as 500MiB, got '" << options.max_size << "'\n";
    return kExitUsage;
  }
  std::atomic<std::uint64_t> written{0};
  std::optional<Duration> duration;
  if (!options.duration.empty()) {
    duration = parse_duration(options.duration);
    if (!duration || duration->count() <= 0) {
      std::cerr << "predflow record: --duration must be a duration such as 10m, got '" << options.duration << "'\n";
      return kExitUsage;
    }
  }
  auto listing = http_get(*endpoint, "/nodes", kConnectTimeout);
  if (!listing.error.empty() || listing.status != 200) {
    std::cerr << "predflow record: " << options.url << "/nodes: "
              << (listing.error.empty() ? "HTTP " + std::to_string(listing.status) : listing.error) << "\n";
    return 1;
  }
  json nodes = json::parse(listing.body, nullptr, false);
  if (nodes.is_discarded() || !nodes.is_object()) {
    std::cerr << "predflow record: " << options.url << "/nodes is not a predflow pipeline's\n";
    return 1;
  }
  RecordingHeader header{nodes.value("pipeline", ""), options.url, format_rfc3339_millis(std::chrono::system_clock::now()),
                         options.inputs, options.outputs};
  std::vector<std::string> chosen_inputs, chosen_outputs;
  default_ports(nodes, chosen_inputs, chosen_outputs);
  if (header.inputs.empty()) header.inputs = chosen_inputs;
  if (header.outputs.empty()) header.outputs = chosen_outputs;
  if (header.inputs.empty()) {
    std::cerr << "predflow record: the pipeline has no port of kind features to record as input: name one with --input NODE.PORT\n";
    return kExitUsage;
  }
  std::set<std::string> seen;
  for (const auto* list : {&header.inputs, &header.outputs})
    for (const auto& port : *list) {
      if (auto why = check_port(nodes, port); !why.empty()) {
        std::cerr << "predflow record: " << why << "\n";
        return kExitUsage;
      }
      if (!seen.insert(port).second) {
        std::cerr << "predflow record: " << port << " is named twice (a port is an input or an output)\n";
        return kExitUsage;
      }
    }

  std::unique_ptr<RecordingWriter> writer;
  try {
    writer = std::make_unique<RecordingWriter>(options.output, header);
  } catch (const std::exception& e) {
    std::cerr << "predflow record: " << e.what() << "\n";
    return 1;
  }
  std::mutex writer_mutex;
  std::string write_error;  // under writer_mutex until the streams are joined
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> predictions{0};
  std::atomic<int> running{0}, failed{0};
  std::atomic<std::int64_t> last_data{0};  // steady clock, ns: when a row or failure last arrived
  interrupts = 0;
  auto previous_int = std::signal(SIGINT, on_interrupt);
  auto previous_term = std::signal(SIGTERM, on_interrupt);

  std::vector<std::unique_ptr<PortStream>> streams;
  for (const auto* list : {&header.inputs, &header.outputs})
    for (const auto& port : *list) {
      auto s = std::make_unique<PortStream>();
      s->port = port;
      s->output = list == &header.outputs;
      streams.push_back(std::move(s));
    }
  for (auto& stream : streams) {
    ++running;
    PortStream* s = stream.get();
    s->thread = std::thread([&, s] {
      const auto dot = s->port.find('.');
      const std::string path = "/tap?node=" + url_encode(s->port.substr(0, dot)) + "&port=" + url_encode(s->port.substr(dot + 1)) +
                               "&rate=all";
      SseReader reader;
      reader.limit_event_bytes(kMaxEvent);
      auto result = http_stream(*endpoint, path, kConnectTimeout, kIdleTimeout, [&](std::string_view chunk) {
        if (stop.load()) return false;
        return reader.feed(chunk, [&](const std::string& name, const std::string& data) {
          if (stop.load()) return false;
          if (name == "status") {
            s->last_status = data;
            return true;
          }
          if (name == "end") {
            s->last_status = data;
            s->ended = true;
            return false;
          }
          if (!name.empty()) return true;
          last_data = std::chrono::steady_clock::now().time_since_epoch().count();
          const bool row = data.find("\"batch_rows\":") != std::string::npos;
          {
            std::lock_guard lock(writer_mutex);
            try {
              writer->write_line(data);
              written = writer->bytes_in();
            } catch (const std::exception& e) {
              write_error = e.what();
              stop = true;
              return false;
            }
          }
          ++(row ? s->rows : s->failures);
          if (row && s->output) ++predictions;
          return true;
        });
      });
      // A stream the pipeline closed (stopping) is no failure; one that never opened or broke is.
      if (!stop.load() && !s->ended) {
        if (!result.error.empty()) s->error = result.error;
        else if (result.status != 200) s->error = "HTTP " + std::to_string(result.status) + ": " + result.body;
      }
      while (!s->error.empty() && (s->error.back() == '\n' || s->error.back() == '\r')) s->error.pop_back();
      if (!s->error.empty()) ++failed;
      --running;
    });
  }
  std::cerr << "recording " << header.inputs.size() << " input and " << header.outputs.size() << " output ports of "
            << header.pipeline << " to " << options.output
            << (duration ? " for " + format_duration(*duration) : std::string())
            << (options.predictions > 0 ? " until " + std::to_string(options.predictions) + " predictions" : std::string())
            << (duration || options.predictions > 0 ? "" : " until Ctrl-C") << "\n";
  const auto started = std::chrono::steady_clock::now();
  std::string reason;
  while (reason.empty()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (interrupts.load() > 0) reason = "interrupted";
    else if (stop.load()) reason = "writing failed";
    else if (duration && std::chrono::steady_clock::now() - started >= *duration) reason = "duration";
    else if (options.predictions > 0 && predictions.load() >= options.predictions) reason = "predictions";
    else if (written.load() >= *max_size) reason = "size";
    else if (failed.load() > 0) reason = "a stream failed";
    else if (running.load() == 0) reason = "the pipeline closed the streams";
  }
  // Rows the pipeline emitted before the stop are still on their way (the server sends
  // every 100 ms, and this process compresses): read on until the streams are quiet, so
  // that the predictions of inputs already recorded are recorded too. A second Ctrl-C
  // stops at once.
  if (reason == "interrupted" || reason == "duration" || reason == "predictions") {
    if (reason == "interrupted") std::cerr << "finishing: reading what the pipeline already sent (Ctrl-C again stops now)\n";
    const auto drain_start = std::chrono::steady_clock::now();
    for (;;) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      const auto now = std::chrono::steady_clock::now();
      const auto quiet = now - std::chrono::steady_clock::time_point(std::chrono::steady_clock::duration(last_data.load()));
      if (interrupts.load() > 1 || stop.load() || running.load() == 0 || failed.load() > 0) break;
      if ((quiet >= kDrainQuiet && now - drain_start >= kDrainQuiet) || now - drain_start >= kDrainAtMost) break;
    }
  }
  stop = true;
  for (auto& s : streams) s->thread.join();
  std::signal(SIGINT, previous_int);
  std::signal(SIGTERM, previous_term);
  int code = 0;
  try {
    writer->close(reason);
  } catch (const std::exception& e) {
    if (write_error.empty()) write_error = e.what();
  }
  std::uint64_t dropped = 0;
  for (const auto& s : streams) {
    json status = json::parse(s->last_status, nullptr, false);
    const std::uint64_t d = status.is_object() ? status.value("dropped", std::uint64_t{0}) : 0;
    dropped += d;
    std::cerr << "  " << (s->output ? "output " : "input  ") << s->port << ": " << s->rows << " rows, " << s->failures
              << " failures" << (d > 0 ? ", " + std::to_string(d) + " DROPPED (not read in time)" : std::string())
              << (s->error.empty() ? "" : "; failed: " + s->error) << "\n";
    if (!s->error.empty()) code = 1;
  }
  std::error_code ec;
  const auto on_disk = std::filesystem::file_size(options.output, ec);
  char size[64];
  std::snprintf(size, sizeof size, "%.1f MiB of JSON, %.1f MiB compressed,", static_cast<double>(writer->bytes_in()) / (1 << 20),
                ec ? 0.0 : static_cast<double>(on_disk) / (1 << 20));
  std::cerr << "recorded " << size << " to " << options.output << " (stopped: " << reason << ")"
            << (dropped > 0 ? "; rows were dropped: the recording is incomplete" : "") << "\n";
  if (!write_error.empty()) {
    std::cerr << "predflow record: " << write_error << "\n";
    return 1;
  }
  return code;
}

}  // namespace predflow
