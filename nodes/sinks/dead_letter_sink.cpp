// dead_letter_sink: failures from every `dead` port to NATS `dlq.predflow` (docs/interface.md §4),
// into the PREDFLOW_DLQ stream through a RetryingWriter (connectors/retrying_writer.hpp),
// with a bounded local spool file while NATS is down.
#include <spdlog/spdlog.h>

#include <filesystem>
#include <fstream>
#include <numeric>

#include <fcntl.h>
#include <unistd.h>

#include "connectors/dead_letter.hpp"
#include "connectors/errors.hpp"
#include "connectors/nats.hpp"
#include "connectors/nats_stream_publisher.hpp"
#include "connectors/retrying_writer.hpp"
#include "engine/metrics.hpp"
#include "engine/registry.hpp"
#include "nodes/codecs/input_limits.hpp"

namespace predflow {
namespace {

namespace fs = std::filesystem;

NodeSpec dead_letter_sink_spec() {
  NodeSpec spec = NodeSpec("dead_letter_sink", Category::Sink)
      .summarize("Publishes failures to the dead-letter subject (dlq.predflow), spooling to a local file while NATS is down")
      .describe(
          "Takes the failures of any number of `dead` ports and publishes one contract record per failure (stage, "
          "symbol, reason, error, correlation_id, attempts, ts, payload; payload_encoding base64 for input that is "
          "not UTF-8). A payload longer than `max_payload` (at most 4 KiB) is cut there and the record says "
          "\"payload_truncated\": true and \"payload_bytes\": the input's size, so that a 1 MiB junk message still makes "
          "a small record. The node's writer (connectors/retrying_writer.hpp) publishes the records into the JetStream "
          "stream PREDFLOW_DLQ (created when missing, so that dead letters are kept even when nobody listens), and the "
          "failed rows' acknowledgement completes only once the stream acknowledged storing them. While NATS is down "
          "the records are appended to `spool_file` (fsync'd; at most `spool_max` bytes) and the rows count as "
          "handled; every `replay_every` the writer republishes the spool when NATS is back, then empties it (new "
          "records queue behind the spool, in order). When neither works (spool full) the records wait in memory, up "
          "to `max_pending`, retried with backoff; beyond that, and at shutdown, their rows are negatively "
          "acknowledged so that their source redelivers them — never dropped. A record NATS refuses for good is "
          "logged whole instead. Counted in predflow_dead_letters_total{stage,reason}.")
      .input("in", kind::dead_letters)
      .field(field::resource("nats", "nats").require().describe("the NATS connection"))
      .field(field::string("subject").default_value("dlq.predflow").describe("dead-letter subject"))
      .field(field::string("stream").default_value("auto").describe(
          "JetStream stream that stores the records: auto = PREDFLOW_DLQ for dlq.predflow (none for another "
          "subject); none = a plain publish, flushed; any other name = that stream over `subject`, created when missing"))
      .field(field::string("spool_file").default_value("${PREDFLOW_DATA_DIR:-/tmp/predflow}/dead_letters.jsonl")
                 .describe("where records wait while NATS is down (one JSON record per line)"))
      .field(field::size("spool_max").default_value("256MiB").at_least(1024).describe("largest the spool file may grow"))
      .field(field::size("max_payload").default_value("4KiB").at_least(64).at_most(4096).describe(
          "longest payload kept in a record (at most 4 KiB); longer ones are cut at a UTF-8 character boundary and "
          "marked payload_truncated, with payload_bytes the input's whole size"))
      .field(field::duration("replay_every").default_value("1s").at_least(0.001).describe(
          "how often the spool is checked for republishing"))
      .field(field::integer("max_pending").default_value("100000").at_least(1).in_unit("records").describe(
          "records held in memory while neither NATS nor the spool takes them; beyond it, their rows are "
          "negatively acknowledged (redelivered)"))
      .concurrency(1, 1)
      .show_in_label({"subject"})
      .with_example("type: dead_letter_sink\nfrom: [nats_in.dead, fetch.dead, infer.dead]\nnats: bus\n");
  for (auto& f : connectors::stream_limit_fields("168h", "1GiB")) spec.fields.push_back(std::move(f));
  for (auto& f : connectors::writer_fields({"100ms", "5s", "10s"})) spec.fields.push_back(std::move(f));
  return spec;
}

// One input batch's failures, as contract records (JSON text, one per failure).
using Writer = connectors::RetryingWriter<std::vector<std::string>>;

class DeadLetterSink : public Processor {
 public:
  explicit DeadLetterSink(const NodeContext& ctx)
      : id_(ctx.id),
        subject_(ctx.config.get_string("subject")),
        spool_path_(ctx.config.get_string("spool_file")),
        spool_max_(ctx.config.get_size("spool_max")),
        max_payload_(ctx.config.get_size("max_payload")),
        nats_(ctx.resource<connectors::NatsResource>("nats")),
        stream_(nats_, connectors::stream_target(ctx.config, subject_)),
        metrics_(ctx.metrics),
        spooled_(ctx.metrics.counter("predflow_dead_letters_spooled_total",
                                     "Dead-letter records written to the local spool while NATS was down", {{"node", id_}})),
        replayed_(ctx.metrics.counter("predflow_dead_letters_replayed_total",
                                      "Spooled dead-letter records published once NATS was back", {{"node", id_}})),
        spool_bytes_(ctx.metrics.gauge("predflow_dead_letters_spool_bytes", "Bytes waiting in the dead-letter spool",
                                       {{"node", id_}})) {
    // In every scrape, so that a dashboard shows "none" rather than "no data" before the first.
    ctx.metrics.declare("predflow_dead_letters_total", "Dead-letter records, by stage and reason",
                        prometheus::MetricType::Counter);
    auto o = connectors::sink_writer_options(id_, ctx.config, "NATS", "nats_unavailable", "nats_rejected");
    o.max_group = 10000;
    o.dead_port = false;  // the end of the line: refused records are logged, the rest redelivered
    o.tick_every = ctx.config.get_duration("replay_every");
    o.metrics = {"predflow_dead_letters_published_total", "predflow_dead_letters_publish_retries_total",
                 "predflow_dead_letters_failed_total", "predflow_dead_letters_pending_records",
                 "predflow_dead_letters_unpublished_total", "", "records"};
    writer_ = std::make_unique<Writer>(
        o, ctx.metrics,
        Writer::Hooks{.write = [this](Writer::Group& g) { return publish(g); },
                      .dead_payload = [](const Writer::Entry& e, std::size_t i) { return e.payload[i]; },
                      .written = {},
                      .fallback = [this](Writer::Group& g) { return append_to_spool(g); },
                      .truncate = {},
                      .tick = [this] { return replay(); }});
  }

  void start() override {
    std::error_code ec;
    fs::create_directories(spool_path_.parent_path(), ec);
    if (ec) throw std::runtime_error("dead_letter_sink " + id_ + ": cannot create the spool folder " +
                                     spool_path_.parent_path().string() + ": " + ec.message());
    spool_size_ = fs::exists(spool_path_) ? fs::file_size(spool_path_) : 0;
    spool_bytes_.Set(static_cast<double>(spool_size_));
    if (spool_size_ > 0)
      spdlog::warn("msg=\"dead-letter spool holds records from an earlier run; republishing when NATS is up\" node={} "
                   "file={} bytes={}",
                   id_, spool_path_.string(), spool_size_);
    writer_->start();
  }

  void stop() override { writer_->stop(); }
  void flush(Output&) override { writer_->flush(); }

  void process(BatchPtr in, Output& out) override {
    if (in->failures.empty()) return;
    const auto now = std::chrono::system_clock::now();
    Writer::Entry entry;
    entry.payload.reserve(in->failures.size());
    for (const auto& f : in->failures) {
      entry.payload.push_back(record_of(f, now));
      metrics_.counter("predflow_dead_letters_total", "Dead-letter records, by stage and reason",
                       {{"stage", f.stage}, {"reason", f.reason}})
          .Increment();
    }
    // A batch of failures has no rows of its own: the writer's rows are the records.
    entry.rows.resize(entry.payload.size());
    std::iota(entry.rows.begin(), entry.rows.end(), 0u);
    entry.batch = std::move(in);
    writer_->offer(std::move(entry), out);
  }

 private:
  std::string record_of(const RowFailure& f, std::chrono::system_clock::time_point now) const {
    // Every field comes from input that may be huge (a 1 MiB "symbol"): cut them all, so
    // that a record always fits a NATS message.
    constexpr std::size_t kMaxField = 1024;
    auto cut_field = [](std::string& s) {
      if (s.size() > kMaxField) s.resize(kMaxField);
    };
    RowFailure cut;
    cut.stage = f.stage, cut.reason = f.reason, cut.error = f.error, cut.attempts = f.attempts;
    cut.symbol = f.symbol, cut.correlation_id = f.correlation_id;
    if (cut.symbol) cut_field(*cut.symbol);
    if (cut.correlation_id) cut_field(*cut.correlation_id);
    cut_field(cut.stage), cut_field(cut.reason);
    if (cut.error.size() > 4 * kMaxField) cut.error.resize(4 * kMaxField);
    cut.payload = std::string(limits::utf8_prefix(f.payload, max_payload_));
    const std::size_t whole = std::max(f.payload.size(), f.payload_bytes);
    auto record = connectors::dead_letter_record(cut, now);
    if (cut.payload.size() < whole) {
      record["payload_truncated"] = true;
      record["payload_bytes"] = whole;
    }
    return record.dump();
  }

  // One publish of the group's records. While a spool waits, it goes first (order). A record
  // NATS refuses for good does not block the rest: the records are then published one by
  // one and the refused ones returned (the writer logs them whole).
  connectors::Refusals publish(Writer::Group& group) {
    if (spool_size_ > 0) replay_spool();  // throws while NATS is down: the group joins the spool
    std::vector<connectors::StreamPublisher::Message> messages;
    for (const auto& e : group)
      for (const auto& r : e.payload) messages.push_back({subject_, r, ""});
    connectors::Refusals refused;
    try {
      stream_.publish(messages);
    } catch (const connectors::CommandError&) {
      for (std::size_t e = 0; e < group.size(); ++e)
        for (std::size_t i = 0; i < group[e].payload.size(); ++i) {
          const connectors::StreamPublisher::Message m{subject_, group[e].payload[i], ""};
          try {
            stream_.publish({&m, 1});
          } catch (const connectors::CommandError& error) {
            if (refused.rows.empty()) refused.error = error.what();
            refused.rows.emplace_back(e, i);
          }
        }
    }
    return refused;
  }

  // While NATS is down: one line per record, fsync'd. False (the records stay in memory)
  // when it would pass spool_max or the write failed.
  bool append_to_spool(const Writer::Group& group) {
    std::string text;
    std::size_t records = 0;
    for (const auto& e : group)
      for (const auto& r : e.payload) text += r, text += '\n', ++records;
    if (spool_size_ + text.size() > spool_max_) {
      spdlog::error("msg=\"dead-letter spool full; records held in memory\" node={} records={} spool_bytes={} "
                    "spool_max={}",
                    id_, records, spool_size_, spool_max_);
      return false;
    }
    int fd = ::open(spool_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) {
      spdlog::error("msg=\"cannot open the dead-letter spool\" node={} file={} error=\"{}\"", id_, spool_path_.string(),
                    std::strerror(errno));
      return false;
    }
    bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
    ::close(fd);
    if (!ok) return false;
    if (spool_size_ == 0)
      spdlog::warn("msg=\"dead letters cannot reach NATS; spooling them locally\" node={} records={}", id_, records);
    spool_size_ += text.size();
    spool_bytes_.Set(static_cast<double>(spool_size_));
    spooled_.Increment(static_cast<double>(records));
    return true;
  }

  // In the writer's task: the spool, once NATS is back. Every replay_every (the writer's
  // least tick interval) while a spool is left to replay; never while there is none.
  Clock::time_point replay() {
    const auto again = Clock::now();
    if (spool_size_ == 0) return Clock::time_point::max();
    if (!nats_->connected()) return again;
    try {
      replay_spool();
    } catch (const std::exception&) {
      // Still down; the next round.
    }
    return spool_size_ > 0 ? again : Clock::time_point::max();
  }

  // Publishes the spool and empties it once the stream has every record; throws otherwise.
  void replay_spool() {
    std::vector<std::string> records;
    {
      std::ifstream in(spool_path_);
      for (std::string line; std::getline(in, line);)
        if (!line.empty()) records.push_back(std::move(line));
    }
    std::vector<connectors::StreamPublisher::Message> messages;
    messages.reserve(records.size());
    for (const auto& r : records) messages.push_back({subject_, r, ""});
    try {
      stream_.publish(messages);
    } catch (const connectors::CommandError&) {
      for (const auto& m : messages) {  // one by one: a refused record is logged, not retried for ever
        try {
          stream_.publish({&m, 1});
        } catch (const connectors::CommandError& e) {
          spdlog::error("msg=\"NATS refused a spooled dead-letter record; logged here instead\" node={} error=\"{}\" "
                        "record=\"{}\"",
                        id_, e.what(), std::string(m.data.substr(0, 512)));
        }
      }
    }
    replayed_.Increment(static_cast<double>(records.size()));  // before the file goes: what watches it sees both
    std::error_code ec;
    fs::remove(spool_path_, ec);
    spool_size_ = 0;
    spool_bytes_.Set(0);
    spdlog::info("msg=\"republished spooled dead letters\" node={} records={}", id_, records.size());
  }

  const std::string id_, subject_;
  const fs::path spool_path_;
  const std::uint64_t spool_max_, max_payload_;
  std::shared_ptr<connectors::NatsResource> nats_;
  connectors::StreamPublisher stream_;  // the writer's task only
  Metrics& metrics_;
  prometheus::Counter &spooled_, &replayed_;
  prometheus::Gauge& spool_bytes_;
  std::uint64_t spool_size_ = 0;    // the writer's task only (and start(), before it runs)
  std::unique_ptr<Writer> writer_;  // last: stopped before the members its hooks use go
};

PREDFLOW_REGISTER_NODE(dead_letter_sink_spec(),
                       [](const NodeContext& ctx) { return std::make_unique<DeadLetterSink>(ctx); });

}  // namespace
}  // namespace predflow
