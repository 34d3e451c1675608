// `predflow dlq list|replay`: the dead letters kept in the PREDFLOW_DLQ stream (written by
// dead_letter_sink), shown and filtered, and replayed: a symbol that failed (feature fetch,
// inference…) is announced again on data.features.ready; a whole message that failed
// (not JSON, delivered too often) is published again as it was. Registered by this plugin,
// beside the sink that writes the records (docs/operations.md, "Dead letters").
#include <CLI/CLI.hpp>
#include <nats/nats.h>

#include <chrono>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "connectors/encoding.hpp"
#include "connectors/nats.hpp"
#include "engine/commands.hpp"
#include "engine/metrics.hpp"
#include "engine/timestamps.hpp"
#include "engine/units.hpp"

namespace predflow {
namespace {

using nlohmann::json;

constexpr int kExitUsage = 64;

struct DlqArgs {
  std::string nats_url = "nats://127.0.0.1:4222";
  std::string stream = "PREDFLOW_DLQ";
  std::string reason, stage, symbol, since;
  std::uint64_t limit = 0;  // 0: the command's default
  std::string format = "table";
  // replay
  std::string subject = "data.features.ready";
  bool remove = false, dry_run = false;
};

struct Record {
  std::uint64_t seq = 0;
  std::chrono::system_clock::time_point stored;
  json body;  // the record as stored; discarded when it is not JSON
  std::string raw;
};

// A JetStream view of one stream: messages by sequence, deleted on request.
class DlqStream {
 public:
  DlqStream(const DlqArgs& args, Metrics& metrics)
      : nats_("dlq", connectors::NatsOptions{.url = args.nats_url, .client_name = "predflow-dlq"}, metrics),
        stream_(args.stream) {}
  ~DlqStream() { nats_.stop(); }

  // "" once connected and the stream found, else why not.
  std::string open() {
    nats_.start();
    for (int i = 0; i < 100 && !nats_.connected(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (!nats_.connected()) return "cannot reach NATS within 5s";
    jsStreamInfo* info = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    natsStatus s = js_GetStreamInfo(&info, nats_.jetstream(), stream_.c_str(), nullptr, &code);
    if (s != NATS_OK) {
      return s == NATS_NOT_FOUND ? "no stream " + stream_ + " (nothing has been dead-lettered into it yet)"
                                 : "stream " + stream_ + ": " + natsStatus_GetText(s);
    }
    first_ = info->State.FirstSeq;
    last_ = info->State.LastSeq;
    count_ = info->State.Msgs;
    jsStreamInfo_Destroy(info);
    return "";
  }

  std::uint64_t first() const { return first_; }
  std::uint64_t last() const { return last_; }
  std::uint64_t count() const { return count_; }

  // The record at `seq`; nullopt when it was deleted.
  std::optional<Record> get(std::uint64_t seq) {
    natsMsg* msg = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    if (js_GetMsg(&msg, nats_.jetstream(), stream_.c_str(), seq, nullptr, &code) != NATS_OK) return std::nullopt;
    Record r;
    r.seq = seq;
    r.stored = std::chrono::system_clock::time_point(std::chrono::duration_cast<std::chrono::system_clock::duration>(
        std::chrono::nanoseconds(natsMsg_GetTime(msg))));
    r.raw.assign(natsMsg_GetData(msg), static_cast<std::size_t>(natsMsg_GetDataLength(msg)));
    natsMsg_Destroy(msg);
    r.body = json::parse(r.raw, nullptr, false);
    return r;
  }

  bool remove(std::uint64_t seq) {
    jsErrCode code = static_cast<jsErrCode>(0);
    return js_DeleteMsg(nats_.jetstream(), stream_.c_str(), seq, nullptr, &code) == NATS_OK;
  }

  connectors::NatsResource& nats() { return nats_; }

 private:
  connectors::NatsResource nats_;
  std::string stream_;
  std::uint64_t first_ = 0, last_ = 0, count_ = 0;
};

bool open_or_report(DlqStream& stream, const DlqArgs& args) {
  const std::string why = stream.open();
  if (!why.empty()) std::cerr << "predflow dlq: " << args.nats_url << ": " << why << "\n";
  return why.empty();
}

std::string text_of(const json& v) { return v.is_string() ? v.get<std::string>() : v.is_null() ? "-" : v.dump(); }

struct Filter {
  std::string reason, stage, symbol;
  std::optional<std::chrono::system_clock::time_point> since;

  bool matches(const Record& r) const {
    if (since && r.stored < *since) return false;
    if (r.body.is_discarded() || !r.body.is_object()) return reason.empty() && stage.empty() && symbol.empty();
    auto field = [&](const char* key) { return r.body.contains(key) ? text_of(r.body[key]) : std::string("-"); };
    return (reason.empty() || field("reason") == reason) && (stage.empty() || field("stage") == stage) &&
           (symbol.empty() || field("symbol") == symbol);
  }
};

// --since: a duration back from now (1h, 30m) or an RFC 3339 time.
std::optional<std::chrono::system_clock::time_point> parse_since(const std::string& text, std::string& error) {
  if (text.empty()) return std::nullopt;
  if (auto d = parse_duration(text)) return std::chrono::system_clock::now() - std::chrono::duration_cast<std::chrono::system_clock::duration>(*d);
  if (auto t = parse_rfc3339(text)) return *t;
  error = "--since takes a duration back from now (e.g. 1h) or an RFC 3339 time, got '" + text + "'";
  return std::nullopt;
}

// Matching records: newest first for list, oldest first for replay; at most `limit`.
std::vector<Record> find(DlqStream& stream, const Filter& filter, std::uint64_t limit, bool newest_first) {
  std::vector<Record> out;
  if (stream.count() == 0) return out;
  for (std::uint64_t i = 0, n = stream.last() - stream.first() + 1; i < n && out.size() < limit; ++i) {
    const std::uint64_t seq = newest_first ? stream.last() - i : stream.first() + i;
    auto r = stream.get(seq);
    if (r && filter.matches(*r)) out.push_back(std::move(*r));
  }
  return out;
}

int list(const DlqArgs& args, const Filter& filter) {
  Metrics metrics;
  DlqStream stream(args, metrics);
  if (!open_or_report(stream, args)) return 1;
  auto records = find(stream, filter, args.limit == 0 ? 100 : args.limit, true);
  if (args.format == "json") {
    for (const auto& r : records) {
      json line = r.body.is_discarded() ? json{{"unreadable", connectors::sanitize_utf8(r.raw.substr(0, 256))}} : r.body;
      line["seq"] = r.seq;
      line["stored_at"] = format_rfc3339_millis(r.stored);
      std::cout << line.dump() << "\n";
    }
    return 0;
  }
  std::cout << stream.count() << " record(s) in " << args.stream << "; " << records.size() << " shown, newest first\n";
  std::printf("%-8s %-24s %-16s %-18s %-10s %s\n", "SEQ", "STORED", "STAGE", "REASON", "SYMBOL", "ERROR");
  for (const auto& r : records) {
    auto field = [&](const char* key) {
      return r.body.is_object() && r.body.contains(key) ? text_of(r.body[key]) : std::string("-");
    };
    std::string error = r.body.is_discarded() ? "(not a JSON record)" : field("error");
    if (error.size() > 70) error = error.substr(0, 67) + "...";
    std::printf("%-8llu %-24s %-16s %-18s %-10s %s\n", static_cast<unsigned long long>(r.seq),
                format_rfc3339_millis(r.stored).c_str(), field("stage").c_str(), field("reason").c_str(),
                field("symbol").c_str(), error.c_str());
  }
  return 0;
}

int replay(const DlqArgs& args, const Filter& filter) {
  Metrics metrics;
  DlqStream stream(args, metrics);
  if (!open_or_report(stream, args)) return 1;
  auto records = find(stream, filter, args.limit == 0 ? 10000 : args.limit, false);
  // Symbols again as announcements, one per correlation id (in the order first seen); whole
  // messages again as they were.
  std::vector<std::string> order;
  std::map<std::string, std::vector<std::string>> symbols_by_id;
  std::map<std::string, std::vector<std::uint64_t>> seqs_by_id;
  std::vector<std::pair<std::uint64_t, std::string>> messages;
  std::map<std::string, int> skipped;
  for (const auto& r : records) {
    if (!r.body.is_object()) {
      ++skipped["not a JSON record"];
      continue;
    }
    const json& symbol = r.body.value("symbol", json());
    if (symbol.is_string()) {
      const std::string id = r.body.value("correlation_id", json()).is_string() ? r.body["correlation_id"].get<std::string>() : "";
      if (!symbols_by_id.count(id)) order.push_back(id);
      symbols_by_id[id].push_back(symbol.get<std::string>());
      seqs_by_id[id].push_back(r.seq);
      continue;
    }
    if (r.body.value("payload_truncated", false)) {
      ++skipped["payload cut at the record's limit: not the whole message"];
      continue;
    }
    std::string payload = r.body.value("payload", json()).is_string() ? r.body["payload"].get<std::string>() : "";
    if (r.body.value("payload_encoding", "") == "base64") {
      auto decoded = connectors::base64_decode(payload);
      if (!decoded) {
        ++skipped["payload_encoding base64 but not base64"];
        continue;
      }
      payload = std::move(*decoded);
    }
    if (payload.empty()) {
      ++skipped["no payload"];
      continue;
    }
    messages.emplace_back(r.seq, std::move(payload));
  }
  std::vector<std::pair<std::vector<std::uint64_t>, std::string>> out;  // records it replays, message
  const std::string now = format_rfc3339_millis(std::chrono::system_clock::now());
  for (const auto& id : order) {
    json announcement = {{"symbols", symbols_by_id[id]}, {"ts", now}};
    if (!id.empty()) announcement["correlation_id"] = id;
    out.push_back({seqs_by_id[id], announcement.dump()});
  }
  for (auto& [seq, payload] : messages) out.push_back({{seq}, std::move(payload)});

  std::size_t published = 0, deleted = 0, replayed_records = 0;
  for (const auto& [seqs, message] : out) {
    if (args.dry_run) {
      std::cout << args.subject << " " << message << "\n";
      continue;
    }
    try {
      stream.nats().publish(args.subject, message);
      stream.nats().flush();  // stored upstream before its record goes
    } catch (const std::exception& e) {
      std::cerr << "predflow dlq: publishing to " << args.subject << " failed: " << e.what() << " (" << published
                << " message(s) published before)\n";
      return 1;
    }
    ++published;
    replayed_records += seqs.size();
    if (args.remove)
      for (auto seq : seqs) deleted += stream.remove(seq);
  }
  std::cout << (args.dry_run ? "would replay " : "replayed ") << (args.dry_run ? records.size() : replayed_records)
            << " record(s) as " << out.size() << " message(s) to " << args.subject;
  if (args.remove && !args.dry_run) std::cout << "; deleted " << deleted << " from " << args.stream;
  std::cout << "\n";
  for (const auto& [why, n] : skipped) std::cout << "skipped " << n << ": " << why << "\n";
  return 0;
}

void add_common(CLI::App& sub, DlqArgs& args) {
  sub.add_option("--nats", args.nats_url, "NATS URL")->envname("NATS_URL")->capture_default_str();
  sub.add_option("--stream", args.stream, "the stream holding the records")->capture_default_str();
  sub.add_option("--reason", args.reason, "only records with this reason (e.g. missing_features, max_deliveries)");
  sub.add_option("--stage", args.stage, "only records from this stage (a node id, feature_fetch, inference)");
  sub.add_option("--symbol", args.symbol, "only records of this symbol");
  sub.add_option("--since", args.since, "only records stored since: a duration back from now (1h) or an RFC 3339 time");
}

PREDFLOW_REGISTER_COMMAND(
    "dlq",
    "Dead letters in the PREDFLOW_DLQ stream: `dlq list` shows them, `dlq replay` announces their symbols again (or "
    "republishes their whole message) (exit 1: NATS or the stream not reachable)",
    [](CLI::App& dlq) -> std::function<int()> {
      auto args = std::make_shared<DlqArgs>();
      dlq.require_subcommand(1);
      auto* list_cmd = dlq.add_subcommand("list", "Show the records, newest first");
      add_common(*list_cmd, *args);
      list_cmd->add_option("--limit", args->limit, "records to show (default 100)");
      list_cmd->add_option("--format", args->format, "table or json (one record per line, with seq and stored_at)")
          ->check(CLI::IsMember({"table", "json"}))
          ->capture_default_str();
      auto* replay_cmd = dlq.add_subcommand("replay", "Announce the records' symbols again, oldest first; whole messages are republished as they were");
      add_common(*replay_cmd, *args);
      replay_cmd->add_option("--limit", args->limit, "records to replay (default 10000)");
      replay_cmd->add_option("--subject", args->subject, "where to publish")->capture_default_str();
      replay_cmd->add_flag("--delete", args->remove, "delete each record once what replays it is published");
      replay_cmd->add_flag("--dry-run", args->dry_run, "print what would be published, publish nothing");
      return [args, list_cmd, replay_cmd] {
        std::string error;
        Filter filter{args->reason, args->stage, args->symbol, parse_since(args->since, error)};
        if (!error.empty()) {
          std::cerr << "predflow dlq: " << error << "\n";
          return kExitUsage;
        }
        if (list_cmd->parsed()) return list(*args, filter);
        if (replay_cmd->parsed()) return replay(*args, filter);
        return kExitUsage;
      };
    });

}  // namespace
}  // namespace predflow
