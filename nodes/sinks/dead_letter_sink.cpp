// dead_letter_sink: failures from every `dead` port to NATS `dlq.predflow` (docs/interface.md §4),
// with a bounded local spool file while NATS is down.
#include <spdlog/spdlog.h>

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include <fcntl.h>
#include <unistd.h>

#include "connectors/dead_letter.hpp"
#include "engine/thread_name.hpp"
#include "connectors/errors.hpp"
#include "connectors/nats.hpp"
#include "connectors/nats_stream_publisher.hpp"
#include "engine/metrics.hpp"
#include "engine/registry.hpp"
#include "nodes/codecs/input_limits.hpp"

namespace predflow {
namespace {

namespace fs = std::filesystem;

NodeSpec dead_letter_sink_spec() {
  return NodeSpec("dead_letter_sink", Category::Sink)
      .summarize("Publishes failures to the dead-letter subject (dlq.predflow), spooling to a local file while NATS is down")
      .describe(
          "Takes the failures of any number of `dead` ports and publishes one contract record per failure (stage, "
          "symbol, reason, error, correlation_id, attempts, ts, payload; payload_encoding base64 for input that is "
          "not UTF-8). A payload longer than `max_payload` (at most 4 KiB) is cut there and the record says "
          "\"payload_truncated\": true and \"payload_bytes\": the input's size, so that a 1 MiB junk message still makes "
          "a small record. Records go into the JetStream stream PREDFLOW_DLQ (created when missing, so that dead letters "
          "are kept even when nobody listens), and the failed rows' acknowledgement completes only once the stream "
          "acknowledged storing them. While NATS is down the records are appended to `spool_file` "
          "(fsync'd; at most `spool_max` bytes) and the rows count as handled; a background thread republishes the "
          "spool when NATS is back, then empties it. When neither works (spool full) the rows are negatively "
          "acknowledged so that their source redelivers them — never dropped. Counted in "
          "predflow_dead_letters_total{stage,reason}.")
      .input("in", kind::dead_letters)
      .field(field::resource("nats", "nats").require().describe("the NATS connection"))
      .field(field::string("subject").default_value("dlq.predflow").describe("dead-letter subject"))
      .field(field::string("stream").default_value("auto").describe(
          "JetStream stream that stores the records: auto = PREDFLOW_DLQ for dlq.predflow (none for another "
          "subject); none = a plain publish, flushed; any other name = that stream over `subject`, created when missing"))
      .field(field::duration("stream_max_age").default_value("168h").at_least(0).describe(
          "when the sink creates its stream: how long it keeps a record (0 = forever); a week, for replay"))
      .field(field::size("stream_max_bytes").default_value("1GiB").at_least(0).describe(
          "when the sink creates its stream: the most it stores; beyond it the oldest records are dropped (0 = no bound)"))
      .field(field::string("spool_file").default_value("${PREDFLOW_DATA_DIR:-/tmp/predflow}/dead_letters.jsonl")
                 .describe("where records wait while NATS is down (one JSON record per line)"))
      .field(field::size("spool_max").default_value("256MiB").at_least(1024).describe("largest the spool file may grow"))
      .field(field::size("max_payload").default_value("4KiB").at_least(64).at_most(4096).describe(
          "longest payload kept in a record (at most 4 KiB); longer ones are cut at a UTF-8 character boundary and "
          "marked payload_truncated, with payload_bytes the input's whole size"))
      .field(field::duration("replay_every").default_value("1s").at_least(0.001).describe(
          "how often the spool is checked for republishing"))
      .concurrency(1, 1)
      .blocking_io()
      .show_in_label({"subject"})
      .with_example("type: dead_letter_sink\nfrom: [nats_in.dead, fetch.dead, infer.dead]\nnats: bus\n");
}

// The node's stream, with the limits its fields give when the node has to create it.
connectors::StreamTarget stream_target(const NodeContext& ctx, const std::string& subject) {
  auto target = connectors::stream_target(ctx.config.get_string("stream"), subject);
  target.max_age = ctx.config.get_duration("stream_max_age");
  target.max_bytes = static_cast<std::int64_t>(ctx.config.get_size("stream_max_bytes"));
  return target;
}

class DeadLetterSink : public Processor {
 public:
  explicit DeadLetterSink(const NodeContext& ctx)
      : id_(ctx.id),
        subject_(ctx.config.get_string("subject")),
        spool_path_(ctx.config.get_string("spool_file")),
        spool_max_(ctx.config.get_size("spool_max")),
        max_payload_(ctx.config.get_size("max_payload")),
        replay_every_(ctx.config.get_duration("replay_every")),
        nats_(ctx.resource<connectors::NatsResource>("nats")),
        stream_(nats_, stream_target(ctx, subject_)),
        metrics_(ctx.metrics),
        spooled_(ctx.metrics.counter("predflow_dead_letters_spooled_total",
                                     "Dead-letter records written to the local spool while NATS was down", {{"node", id_}})),
        replayed_(ctx.metrics.counter("predflow_dead_letters_replayed_total",
                                      "Spooled dead-letter records published once NATS was back", {{"node", id_}})),
        failed_(ctx.metrics.counter("predflow_dead_letters_failed_total",
                                    "Dead letters neither published nor spooled (their source messages are redelivered)",
                                    {{"node", id_}})),
        spool_bytes_(ctx.metrics.gauge("predflow_dead_letters_spool_bytes", "Bytes waiting in the dead-letter spool",
                                       {{"node", id_}})) {
    // In every scrape, so that a dashboard shows "none" rather than "no data" before the first.
    ctx.metrics.declare("predflow_dead_letters_total", "Dead-letter records, by stage and reason",
                        prometheus::MetricType::Counter);
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
    replayer_ = std::thread([this] {
      name_this_thread(id_, ":spool");
      replay_loop();
    });
  }

  void stop() override {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (replayer_.joinable()) replayer_.join();
  }

  void process(BatchPtr in, Output&) override {
    if (in->failures.empty()) return;
    const auto now = std::chrono::system_clock::now();
    std::vector<std::string> records;
    records.reserve(in->failures.size());
    for (const auto& f : in->failures) {
      records.push_back(record_of(f, now));
      metrics_.counter("predflow_dead_letters_total", "Dead-letter records, by stage and reason",
                       {{"stage", f.stage}, {"reason", f.reason}})
          .Increment();
    }
    std::lock_guard lock(mutex_);
    // Order: while anything is spooled, new records queue behind it in the spool.
    if (spool_size_ == 0) {
      try {
        publish_all(records);
        return;
      } catch (const std::exception& e) {
        spdlog::warn("msg=\"dead letters cannot reach NATS; spooling them locally\" node={} records={} error=\"{}\"", id_,
                     records.size(), e.what());
      }
    }
    if (append_to_spool(records)) return;
    failed_.Increment(static_cast<double>(records.size()));
    spdlog::error("msg=\"dead letters neither published nor spooled; failing their source messages for redelivery\" "
                  "node={} records={} spool_bytes={} spool_max={}",
                  id_, records.size(), spool_size_, spool_max_);
    for (const auto& ack : in->acks)
      if (ack) ack->fail();
    for (const auto& ack : in->shared_acks)
      if (ack) ack->fail();
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

  // With mutex_ held. Throws ConnectorError when NATS is down or the stream did not store
  // the records. A record NATS refuses for good (CommandError) is logged and counted, not
  // retried: it must not block the rest.
  void publish_all(const std::vector<std::string>& records) {
    std::vector<connectors::StreamPublisher::Message> messages;
    messages.reserve(records.size());
    for (const auto& r : records) messages.push_back({subject_, r, ""});
    try {
      stream_.publish(messages);
    } catch (const connectors::CommandError&) {
      for (const auto& m : messages) {
        try {
          stream_.publish({&m, 1});
        } catch (const connectors::CommandError& e) {
          failed_.Increment();
          spdlog::error("msg=\"NATS refused a dead-letter record; logged here instead\" node={} error=\"{}\" record=\"{}\"",
                        id_, e.what(), std::string(m.data.substr(0, 512)));
        }
      }
    }
  }

  // With mutex_ held: appends one line per record and fsyncs; false when it would pass
  // spool_max or the write failed.
  bool append_to_spool(const std::vector<std::string>& records) {
    std::string text;
    for (const auto& r : records) text += r + "\n";
    if (spool_size_ + text.size() > spool_max_) return false;
    int fd = ::open(spool_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) {
      spdlog::error("msg=\"cannot open the dead-letter spool\" node={} file={} error=\"{}\"", id_, spool_path_.string(),
                    std::strerror(errno));
      return false;
    }
    bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
    ::close(fd);
    if (!ok) return false;
    spool_size_ += text.size();
    spool_bytes_.Set(static_cast<double>(spool_size_));
    spooled_.Increment(static_cast<double>(records.size()));
    return true;
  }

  // Republishes the spool when NATS is up; empties it once the server has every record.
  void replay_loop() {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
      cv_.wait_for(lock, replay_every_, [this] { return stopping_; });
      if (stopping_ || spool_size_ == 0 || !nats_->connected()) continue;
      std::vector<std::string> records;
      {
        std::ifstream in(spool_path_);
        for (std::string line; std::getline(in, line);)
          if (!line.empty()) records.push_back(std::move(line));
      }
      try {
        publish_all(records);
      } catch (const std::exception& e) {
        continue;  // still down; next round
      }
      replayed_.Increment(static_cast<double>(records.size()));  // before the file goes: what watches it sees both
      std::error_code ec;
      fs::remove(spool_path_, ec);
      spool_size_ = 0;
      spool_bytes_.Set(0);
      spdlog::info("msg=\"republished spooled dead letters\" node={} records={}", id_, records.size());
    }
  }

  const std::string id_, subject_;
  const fs::path spool_path_;
  const std::uint64_t spool_max_, max_payload_;
  const Duration replay_every_;
  std::shared_ptr<connectors::NatsResource> nats_;
  connectors::StreamPublisher stream_;  // with mutex_ held
  Metrics& metrics_;
  prometheus::Counter &spooled_, &replayed_, &failed_;
  prometheus::Gauge& spool_bytes_;

  std::mutex mutex_;
  std::condition_variable cv_;
  std::uint64_t spool_size_ = 0;
  bool stopping_ = false;
  std::thread replayer_;
};

PREDFLOW_REGISTER_NODE(dead_letter_sink_spec(),
                       [](const NodeContext& ctx) { return std::make_unique<DeadLetterSink>(ctx); });

}  // namespace
}  // namespace predflow
