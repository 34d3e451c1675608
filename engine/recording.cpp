#include "engine/recording.hpp"

#include <zlib.h>

#include <nlohmann/json.hpp>
#include <algorithm>
#include <stdexcept>

#include "engine/column_registry.hpp"
#include "engine/config.hpp"
#include "engine/pipeline_cut.hpp"

namespace predflow {

namespace {

using nlohmann::json;

// JSON → config tree (what fixture_batch and the column readers take). Numbers keep a
// round-trip text; `depth` bounds the recursion whatever the line holds.
ConfigNode to_config(const json& v, const SourceMark& mark, int depth) {
  if (depth > kMaxRecordingDepth) throw MarkedError(mark, "nested deeper than " + std::to_string(kMaxRecordingDepth) + " levels");
  ConfigNode n;
  n.mark = mark;
  switch (v.type()) {
    case json::value_t::null:
    case json::value_t::discarded:
      n.kind = ConfigNode::Kind::Null;
      break;
    case json::value_t::object:
      n.kind = ConfigNode::Kind::Map;
      for (const auto& [key, value] : v.items()) n.entries.push_back({key, mark, to_config(value, mark, depth + 1)});
      break;
    case json::value_t::array:
      n.kind = ConfigNode::Kind::Sequence;
      n.items.reserve(v.size());
      for (const auto& item : v) n.items.push_back(to_config(item, mark, depth + 1));
      break;
    case json::value_t::string:
      n.kind = ConfigNode::Kind::Scalar;
      n.scalar = v.get<std::string>();
      break;
    default:  // numbers and booleans: their JSON text
      n.kind = ConfigNode::Kind::Scalar;
      n.scalar = v.dump();
      break;
  }
  return n;
}

std::string text_of(const json& v, const char* key) {
  auto it = v.find(key);
  return it != v.end() && it->is_string() ? it->get<std::string>() : "";
}

std::vector<std::string> ports_of(const json& header, const char* key) {
  std::vector<std::string> out;
  auto it = header.find(key);
  if (it == header.end() || !it->is_array()) return out;
  for (const auto& p : *it)
    if (p.is_string()) out.push_back(p.get<std::string>());
  return out;
}

constexpr std::size_t kMaxGapsListed = 5;

}  // namespace

// ---- writing ------------------------------------------------------------------------------

struct RecordingWriter::File {
  gzFile gz = nullptr;
  std::string path;
  bool closed = false;
};

RecordingWriter::RecordingWriter(const std::string& path, const RecordingHeader& header) : file_(std::make_unique<File>()) {
  file_->path = path;
  // Level 1: the recorder shares the machine with the pipeline it records. On five m5
  // windows (32 MiB of JSON) level 6 took 3.5 times the CPU (1.2 s against 0.35 s) for a
  // file 11 % smaller.
  file_->gz = gzopen(path.c_str(), "wb1");
  if (file_->gz == nullptr) throw std::runtime_error("cannot write " + path);
  json h = {{"format", kRecordingFormat},     {"version", kRecordingVersion}, {"pipeline", header.pipeline},
            {"source", header.source},        {"started_at", header.started_at}, {"inputs", header.inputs},
            {"outputs", header.outputs}};
  write_line(h.dump(-1, ' ', false, json::error_handler_t::replace));
}

RecordingWriter::~RecordingWriter() {
  if (file_->gz != nullptr) gzclose(file_->gz);
}

void RecordingWriter::write_line(std::string_view line) {
  if (file_->closed) return;
  if (gzwrite(file_->gz, line.data(), static_cast<unsigned>(line.size())) != static_cast<int>(line.size()) ||
      gzputc(file_->gz, '\n') != '\n')
    throw std::runtime_error("writing " + file_->path + " failed (disk full?)");
  bytes_ += line.size() + 1;
}

void RecordingWriter::close(const std::string& reason) {
  if (file_->closed) return;
  json end = {{"end", {{"reason", reason}}}};
  write_line(end.dump());
  file_->closed = true;
  const int rc = gzclose(file_->gz);
  file_->gz = nullptr;
  if (rc != Z_OK) throw std::runtime_error("closing " + file_->path + " failed (disk full?)");
}

// ---- reading ------------------------------------------------------------------------------

struct RecordingReader::Open {
  std::size_t index = 0;  // into recording_.batches
  std::string port;
  std::uint64_t number = 0;
  std::size_t expected_rows = 0;
  SourceMark mark;
  ConfigNode rows;        // the rows as fixture_batch takes them
  ConfigNode attributes;  // from the first row
  bool closed = false;
};

RecordingReader::RecordingReader(std::string name, std::uint64_t max_rows) : name_(std::move(name)), max_rows_(max_rows) {}
RecordingReader::~RecordingReader() = default;

std::string RecordingReader::where() const { return name_ + ":" + std::to_string(line_); }

void RecordingReader::add_line(std::string_view line) {
  ++line_;
  if (line.size() > kMaxRecordingLine)
    throw std::runtime_error(where() + ": a line over " + std::to_string(kMaxRecordingLine >> 20) + " MiB is not a recording's");
  if (line.empty()) return;
  json v = json::parse(line, nullptr, false);
  if (v.is_discarded() || !v.is_object()) throw std::runtime_error(where() + ": not a JSON object");
  if (!have_header_) {
    if (text_of(v, "format") != kRecordingFormat)
      throw std::runtime_error(where() + ": not a predflow recording (the first line has no \"format\":\"" +
                               std::string(kRecordingFormat) + "\")");
    if (!v.contains("version") || !v["version"].is_number_integer() || v["version"].get<int>() != kRecordingVersion)
      throw std::runtime_error(where() + ": recording format version " + (v.contains("version") ? v["version"].dump() : "?") +
                               " (this predflow reads version " + std::to_string(kRecordingVersion) + ")");
    recording_.header = {text_of(v, "pipeline"), text_of(v, "source"), text_of(v, "started_at"), ports_of(v, "inputs"),
                         ports_of(v, "outputs")};
    if (recording_.header.inputs.empty()) throw std::runtime_error(where() + ": the header names no input port");
    have_header_ = true;
    return;
  }
  if (v.contains("end")) {
    recording_.ended = true;
    return;
  }
  const std::string node = text_of(v, "node"), port_name = text_of(v, "port");
  if (node.empty() || port_name.empty() || !v.contains("batch") || !v["batch"].is_number_unsigned())
    throw std::runtime_error(where() + ": a record needs node, port and batch");
  const std::string port = node + "." + port_name;
  const std::uint64_t number = v["batch"].get<std::uint64_t>();
  const auto key = std::make_pair(port, number);
  auto found = open_index_.find(key);
  if (found == open_index_.end()) {
    // A new batch on this port: the one before it is complete, or rows were lost.
    auto last = last_number_.find(port);
    if (last != last_number_.end()) {
      if (number != last->second + 1) {
        if (recording_.gaps.size() < kMaxGapsListed)
          recording_.gaps.push_back(port + ": batches " + std::to_string(last->second + 1) + " to " + std::to_string(number - 1) +
                                    " missing (line " + std::to_string(line_) + ")");
        ++recording_.incomplete_batches;
      }
      auto previous = open_index_.find({port, last->second});
      if (previous != open_index_.end()) {
        Open& p = *open_[previous->second];
        if (p.rows.items.size() < p.expected_rows) {
          if (recording_.gaps.size() < kMaxGapsListed)
            recording_.gaps.push_back(port + ": batch " + std::to_string(p.number) + " has " + std::to_string(p.rows.items.size()) +
                                      " of its " + std::to_string(p.expected_rows) + " rows");
          ++recording_.incomplete_batches;
        }
        close_batch(p);
      }
    }
    last_number_[port] = number;
    auto open = std::make_unique<Open>();
    open->index = recording_.batches.size();
    open->port = port;
    open->number = number;
    open->mark = {name_, static_cast<int>(line_), 0};
    open->rows.kind = ConfigNode::Kind::Sequence;
    open->attributes.kind = ConfigNode::Kind::Map;
    recording_.batches.push_back({port, number, Batch()});
    found = open_index_.emplace(key, open_.size()).first;
    open_.push_back(std::move(open));
  }
  Open& open = *open_[found->second];
  if (open.closed) throw std::runtime_error(where() + ": a row of " + port + " batch " + std::to_string(number) + " after its batch ended");
  if (v.contains("failure")) {
    ++recording_.failures;
    return;
  }
  const SourceMark mark{name_, static_cast<int>(line_), 0};
  if (!v.contains("batch_rows") || !v["batch_rows"].is_number_unsigned())
    throw std::runtime_error(where() + ": a row record needs batch_rows");
  open.expected_rows = v["batch_rows"].get<std::size_t>();
  ConfigNode row;
  row.kind = ConfigNode::Kind::Map;
  row.mark = mark;
  const json& symbol = v.contains("symbol") ? v["symbol"] : json();
  if (!symbol.is_string()) throw std::runtime_error(where() + ": a row record needs a symbol");
  row.entries.push_back({"symbol", mark, to_config(symbol, mark, 1)});
  if (v.contains("correlation_id") && v["correlation_id"].is_string())
    row.entries.push_back({"correlation_id", mark, to_config(v["correlation_id"], mark, 1)});
  ConfigNode columns;
  columns.kind = ConfigNode::Kind::Map;
  columns.mark = mark;
  if (v.contains("columns")) {
    if (!v["columns"].is_object()) throw std::runtime_error(where() + ": columns must be an object");
    const bool first_row = open.rows.items.empty();
    const auto& outputs = recording_.header.outputs;
    const bool trimmed = !output_columns_.empty() && std::find(outputs.begin(), outputs.end(), port) != outputs.end();
    for (const auto& [name, value] : v["columns"].items()) {
      if (trimmed && !output_columns_.count(name)) continue;
      const auto* entry = ColumnRegistry::instance().find(name);
      if (entry == nullptr)
        throw std::runtime_error(where() + ": unknown column '" + name + "' (recorded by a predflow with other node types?)");
      if (value.is_null()) continue;  // the row has none
      if (entry->per_row) columns.entries.push_back({name, mark, to_config(value, mark, 2)});
      else if (first_row) open.attributes.entries.push_back({name, mark, to_config(value, mark, 2)});
    }
  }
  row.entries.push_back({"columns", mark, std::move(columns)});
  open.rows.items.push_back(std::move(row));
  if (max_rows_ > 0 && recording_.rows >= max_rows_)
    throw std::runtime_error(where() + ": the recording holds more than " + std::to_string(max_rows_) +
                             " rows, the most a replay keeps in memory: replay a shorter one (predflow record --duration), "
                             "or raise --max-rows");
  ++recording_.rows;
  if (open.rows.items.size() > open.expected_rows)
    throw std::runtime_error(where() + ": more rows for " + port + " batch " + std::to_string(number) + " than its batch_rows");
}

void RecordingReader::close_batch(Open& open) {
  if (open.closed) return;
  open.closed = true;
  if (open.rows.items.empty()) return;  // failures only: nothing to replay
  ConfigNode inject;
  inject.kind = ConfigNode::Kind::Map;
  inject.mark = open.mark;
  inject.entries.push_back({"rows", open.mark, std::move(open.rows)});
  inject.entries.push_back({"attributes", open.mark, std::move(open.attributes)});
  try {
    recording_.batches[open.index].batch = fixtures::fixture_batch(inject);
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string(e.what()) + " (" + open.port + " batch " + std::to_string(open.number) + ")");
  }
  open.rows = ConfigNode();
  open.attributes = ConfigNode();
}

void RecordingReader::cut_off(const std::string& why) {
  if (recording_.gaps.size() < kMaxGapsListed) recording_.gaps.push_back(why);
  ++recording_.incomplete_batches;
}

Recording RecordingReader::finish() {
  if (!have_header_) throw std::runtime_error(name_ + ": empty: not a predflow recording");
  // Batches still open are the last of their ports: cut by the end of the recording, not lost.
  for (auto& open : open_) close_batch(*open);
  std::erase_if(recording_.batches, [](const RecordedBatch& b) { return b.batch.size() == 0; });
  open_.clear();
  open_index_.clear();
  return std::move(recording_);
}

Recording read_recording(const std::string& path, std::uint64_t max_rows, const std::set<std::string>& output_columns) {
  gzFile gz = gzopen(path.c_str(), "rb");  // reads plain text too
  if (gz == nullptr) throw std::runtime_error("cannot read " + path);
  RecordingReader reader(path, max_rows);
  reader.trim_outputs(output_columns);
  std::string line;
  char buffer[1 << 16];
  try {
    for (;;) {
      const int n = gzread(gz, buffer, sizeof buffer);
      if (n < 0) {
        int code = 0;
        const char* why = gzerror(gz, &code);
        if (code != Z_BUF_ERROR) throw std::runtime_error(path + ": " + why);
        reader.cut_off("the file ends mid-stream (the recorder was killed?)");
        line.clear();
        break;
      }
      if (n == 0) break;
      std::string_view chunk(buffer, static_cast<std::size_t>(n));
      for (std::size_t nl; (nl = chunk.find('\n')) != std::string_view::npos;) {
        line.append(chunk.substr(0, nl));
        reader.add_line(line);
        line.clear();
        chunk.remove_prefix(nl + 1);
      }
      line.append(chunk);
      if (line.size() > kMaxRecordingLine) reader.add_line(line);  // throws: too long
    }
    if (!line.empty()) reader.cut_off("the last line is cut off (the recorder was killed mid-line?)");
  } catch (...) {
    gzclose(gz);
    throw;
  }
  gzclose(gz);
  return reader.finish();
}

}  // namespace predflow
