// log_sink (demo/test): logs a line per batch (or per row).
#include "engine/log.hpp"
#include "engine/registry.hpp"
#include "nodes/schema/prediction_columns.hpp"

namespace predflow {
namespace {

NodeSpec log_sink_spec() {
  return NodeSpec("log_sink", Category::Sink)
      .summarize("Demo/test sink: logs a summary line per batch, or one line per row")
      .input("in", kind::any)
      .field(field::one_of("format", {"summary", "rows"}).default_value("summary")
                 .describe("summary = one line per batch; rows = one line per symbol"))
      .field(field::integer("every").default_value("1").at_least(1).in_unit("batches")
                 .describe("log only every Nth batch"))
      .show_in_label({"format"})
      .with_example("type: log_sink\nfrom: [batches]\nformat: summary\n")
      .mark_demo();
}

class LogSink : public Processor {
 public:
  explicit LogSink(const NodeContext& ctx)
      : id_(ctx.id), rows_(ctx.config.get_string("format") == "rows"), every_(ctx.config.get_int("every")) {}

  void process(BatchPtr in, Output&) override {
    if (count_.fetch_add(1) % every_ != 0) return;
    const std::string first = in->symbols.empty() ? "" : in->symbols.front();
    if (!rows_) {
      spdlog::info("msg=\"batch\" node={} rows={} route={} first_symbol={} failures={}", id_, in->size(),
                   (*in)[col::route].empty() ? "-" : (*in)[col::route], first.empty() ? "-" : first, in->failures.size());
      return;
    }
    for (std::size_t r = 0; r < in->size(); ++r)
      spdlog::info("msg=\"row\" node={} symbol={} correlation_id={} price={}", id_, in->symbols[r],
                   in->correlation_ids.empty() ? "-" : in->correlation_ids[r],
                   (*in)[col::prices].empty() ? 0.0 : (*in)[col::prices][r]);
  }

 private:
  const std::string id_;
  const bool rows_;
  const std::int64_t every_;
  std::atomic<std::int64_t> count_{0};
};

PREDFLOW_REGISTER_NODE(log_sink_spec(), [](const NodeContext& ctx) { return std::make_unique<LogSink>(ctx); });

}  // namespace
}  // namespace predflow
