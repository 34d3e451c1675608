// What a tap costs: rows/s through src → p1 → p2 → sink (128-row batches carrying a price
// and 20 features per row) with nobody tapping, with `predflow tap`'s default (100 rows/s)
// on p1's output, and with a tap taking up to 10,000 rows/s — each tap read over real HTTP
// (GET /tap) by a client thread, as `predflow tap` reads it.
//
//   predflow_tap_bench [batches] [repeats]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <random>
#include <thread>

#include "engine/log.hpp"
#include "engine/registry.hpp"
#include "engine/runtime.hpp"
#include "engine/tap.hpp"
#include "nodes/schema/prediction_columns.hpp"
#include "support/servers.hpp"

using namespace predflow;

namespace {

constexpr std::size_t kRows = 128, kWidth = 20;

// tap_bench_source: `batches` batches of 128 rows with prices and features.
class TapBenchSource : public Source {
 public:
  explicit TapBenchSource(const NodeContext& ctx) : batches_(ctx.config.get_int("batches")) {}
  void run(SourceContext& ctx) override {
    std::mt19937 rng(7);
    std::normal_distribution<float> normal;
    for (std::int64_t i = 0; i < batches_; ++i) {
      AckPtr ack = ctx.begin_message(nullptr);
      if (!ack) return;
      auto b = make_batch();
      b->acks = {std::move(ack)};
      auto& features = (*b)[col::features];
      features.width = kWidth;
      features.values.resize(kRows * kWidth);
      for (auto& v : features.values) v = normal(rng);
      auto& prices = (*b)[col::prices];
      for (std::size_t r = 0; r < kRows; ++r) {
        b->symbols.push_back("SYM" + std::to_string(r));
        prices.push_back(100.0 + static_cast<double>(r));
      }
      (*b)[col::route] = "normal";
      ctx.emit(std::move(b));
    }
  }

 private:
  std::int64_t batches_;
};

class TapBenchSink : public Processor {
 public:
  void process(BatchPtr, Output&) override {}
};

PREDFLOW_REGISTER_NODE(NodeSpec("tap_bench_source", Category::Source)
                           .summarize("tap benchmark source")
                           .output("out", kind::any)
                           .field(field::integer("batches").default_value("10000").describe("batches")),
                       [](const NodeContext& ctx) { return std::make_unique<TapBenchSource>(ctx); });
PREDFLOW_REGISTER_NODE(NodeSpec("tap_bench_sink", Category::Sink).summarize("tap benchmark sink").input("in", kind::any).concurrency(0, 0),
                       [](const NodeContext&) { return std::make_unique<TapBenchSink>(); });

struct Result {
  double seconds = 0;
  std::uint64_t records = 0;  // tap records the client read
};

// One run; rate 0: nobody taps.
Result run_once(std::int64_t batches, double rate) {
  const int port = test::free_loopback_port();
  Plan plan = load_plan_text("settings: {http_port: " + std::to_string(port) +
                                 ", max_in_flight: 256}\nnodes:\n  src: {type: tap_bench_source, batches: " +
                                 std::to_string(batches) +
                                 "}\n  p1: {type: passthrough, from: [src]}\n  p2: {type: passthrough, from: [p1]}\n"
                                 "  sink: {type: tap_bench_sink, from: [p2]}\n",
                             "tap_bench.yaml");
  Metrics metrics;
  Runtime runtime(plan, metrics);
  runtime.start();
  std::atomic<std::uint64_t> records{0};
  std::atomic<bool> subscribed{false};
  int fd = -1;
  std::thread reader;
  if (rate > 0) {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) std::abort();
    std::string request = "GET /tap?node=p1&rate=" + std::to_string(static_cast<int>(rate)) + " HTTP/1.1\r\nHost: x\r\n\r\n";
    ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
    reader = std::thread([&] {
      char buffer[65536];
      std::string carry;
      for (ssize_t n; (n = ::recv(fd, buffer, sizeof buffer, 0)) > 0;) {
        carry.append(buffer, static_cast<std::size_t>(n));
        if (carry.find("event: status") != std::string::npos) subscribed = true;
        std::size_t at = 0, found;
        while ((found = carry.find("\ndata: {\"node\"", at)) != std::string::npos) ++records, at = found + 1;
        carry.erase(0, carry.size() > 64 ? carry.size() - 64 : 0);  // a split marker is not lost
      }
    });
    while (!subscribed) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  auto t0 = Clock::now();
  runtime.run();
  Result out{std::chrono::duration<double>(Clock::now() - t0).count(), 0};
  if (rate > 0) {
    reader.join();  // run() stopped the server, which closed the stream
    ::close(fd);
    out.records = records;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  const std::int64_t batches = argc > 1 ? std::atoll(argv[1]) : 20000;
  const int repeats = argc > 2 ? std::atoi(argv[2]) : 5;
  setup_logging("warn");
  std::printf("%lld batches of %zu rows per run, best of %d, interleaved; hardware threads %u\n\n",
              static_cast<long long>(batches), kRows, repeats, std::thread::hardware_concurrency());
  const double rates[] = {0, kDefaultTapRate, kMaxTapRate};
  double best[3] = {1e300, 1e300, 1e300};
  std::uint64_t records[3] = {0, 0, 0};
  // Interleaved, so that a slow moment of the machine does not land on one case only.
  for (int r = 0; r < repeats; ++r)
    for (int c = 0; c < 3; ++c) {
      Result res = run_once(batches, rates[c]);
      if (res.seconds < best[c]) best[c] = res.seconds, records[c] = res.records;
    }
  const double rows = static_cast<double>(batches) * kRows;
  std::printf("| tap on p1.out | rows/s through the pipeline | vs no tap | tap records read (best run) |\n|---|---|---|---|\n");
  for (int c = 0; c < 3; ++c)
    std::printf("| %s | %.0f | %.3f× | %llu |\n",
                c == 0 ? "none" : (c == 1 ? "rate 100 (the default)" : "rate 10,000 (the maximum)"), rows / best[c],
                best[0] / best[c], static_cast<unsigned long long>(records[c]));
  return 0;
}
