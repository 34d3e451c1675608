// collector (demo/test): a sink that counts what reaches it and can write it as JSON lines.
#include <nlohmann/json.hpp>

#include <fstream>
#include <thread>

#include "engine/log.hpp"
#include "engine/registry.hpp"
#include "nodes/schema/prediction_columns.hpp"

namespace predflow {
namespace {

NodeSpec collector_spec() {
  return NodeSpec("collector", Category::Sink)
      .summarize("Demo/test sink: counts rows and optionally writes each row to a JSON-lines file")
      .describe(
          "Runs on its own thread (file I/O). `delay` makes it a deliberately slow sink, to watch "
          "back-pressure: sources wait instead of memory growing. Logs a summary at shutdown.")
      .input("in", kind::any)
      .field(field::string("path").default_value("").describe("JSON-lines file to append rows to; empty = count only"))
      .field(field::duration("delay").default_value("0s").describe("pause per batch, to simulate a slow sink"))
      .blocking_io()
      .show_in_label({"path"})
      .with_example("type: collector\nfrom: [infer]\npath: /tmp/rows.jsonl\n")
      .mark_demo();
}

class Collector : public Processor {
 public:
  explicit Collector(const NodeContext& ctx)
      : id_(ctx.id), path_(ctx.config.get_string("path")), delay_(ctx.config.get_duration("delay")) {}

  void start() override {
    if (path_.empty()) return;
    file_.open(path_, std::ios::app);
    if (!file_) throw std::runtime_error("cannot open " + path_ + " for writing");
  }

  void process(BatchPtr in, Output&) override {
    if (delay_.count() > 0) std::this_thread::sleep_for(delay_);
    ++batches_;
    rows_ += in->size();
    if (!file_.is_open()) return;
    for (std::size_t r = 0; r < in->size(); ++r) {
      nlohmann::json row = {{"symbol", in->symbols[r]}};
      if (!in->correlation_ids.empty()) row["correlation_id"] = in->correlation_ids[r];
      if (!(*in)[col::prices].empty()) row["price"] = (*in)[col::prices][r];
      if (!(*in)[col::route].empty()) row["route"] = (*in)[col::route];
      if (!(*in)[col::stats].empty()) row["predicted_return"] = (*in)[col::stats][r].mean;
      file_ << row.dump() << '\n';
    }
    file_.flush();  // durable before the batch (and its acknowledgement) is released
  }

  void stop() override {
    spdlog::info("msg=\"collector summary\" node={} batches={} rows={}", id_, batches_, rows_);
  }

 private:
  const std::string id_;
  const std::string path_;
  const Duration delay_;
  std::ofstream file_;
  std::size_t batches_ = 0, rows_ = 0;
};

PREDFLOW_REGISTER_NODE(collector_spec(), [](const NodeContext& ctx) { return std::make_unique<Collector>(ctx); });

}  // namespace
}  // namespace predflow
