// predflow_train_models: generates the synthetic market and trains, exports, checks and
// documents the two shipped models (normal_day, earnings_day). docs/models.md explains it.
//
//   predflow_train_models --out models --seed 42 [--epochs N] [--only normal|earnings]
//                         [--threads N] [--symbols N]

#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>

#include "build_model.hpp"
#include "synthetic_market.hpp"

namespace {

using predflow::train::MarketConfig;
using predflow::train::RunOptions;

struct Cli {
  RunOptions run;
  MarketConfig market;
  std::string only;  // empty: both
  int threads = 1;
};

[[noreturn]] void usage(int code) {
  std::fprintf(code == 0 ? stdout : stderr,
               "usage: predflow_train_models [--out DIR] [--seed N] [--epochs N]\n"
               "                             [--only normal|earnings] [--threads N] [--symbols N]\n"
               "  --out      models folder to write into (default: models)\n"
               "  --seed     data, weight and sampling seed (default: 42)\n"
               "  --epochs   epochs for every model (default: per model, see docs/models.md)\n"
               "  --only     train just one of the two models\n"
               "  --threads  libtorch CPU threads (default 1: bit-for-bit reproducible)\n"
               "  --symbols  simulated symbols (default 1500; fewer for a quick smoke run)\n");
  std::exit(code);
}

long long to_number(std::string_view flag, const char* text) {
  char* end = nullptr;
  const long long v = std::strtoll(text, &end, 10);
  if (end == text || *end != '\0' || v < 0) {
    std::fprintf(stderr, "%.*s: expected a non-negative integer, got \"%s\"\n",
                 static_cast<int>(flag.size()), flag.data(), text);
    usage(2);
  }
  return v;
}

Cli parse(int argc, char** argv) {
  Cli cli;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (flag == "--help" || flag == "-h") usage(0);
    if (i + 1 >= argc) {
      std::fprintf(stderr, "%s: missing value\n", argv[i]);
      usage(2);
    }
    const char* value = argv[++i];
    if (flag == "--out")
      cli.run.out_dir = value;
    else if (flag == "--seed")
      cli.run.seed = static_cast<std::uint64_t>(to_number(flag, value));
    else if (flag == "--epochs")
      cli.run.epochs = static_cast<int>(to_number(flag, value));
    else if (flag == "--threads")
      cli.threads = static_cast<int>(to_number(flag, value));
    else if (flag == "--symbols")
      cli.market.symbols = static_cast<int>(to_number(flag, value));
    else if (flag == "--only")
      cli.only = value;
    else {
      std::fprintf(stderr, "unknown option %s\n", argv[i - 1]);
      usage(2);
    }
  }
  if (!cli.only.empty() && cli.only != "normal" && cli.only != "earnings") {
    std::fprintf(stderr, "--only: expected normal or earnings, got \"%s\"\n", cli.only.c_str());
    usage(2);
  }
  if (cli.threads < 1 || cli.market.symbols < 10) {
    std::fprintf(stderr, "--threads must be >= 1 and --symbols >= 10\n");
    usage(2);
  }
  cli.market.seed = cli.run.seed;
  return cli;
}

}  // namespace

int main(int argc, char** argv) {
  const Cli cli = parse(argc, argv);
  torch::set_num_threads(cli.threads);
  try {
    const auto start = std::chrono::steady_clock::now();
    const auto market = predflow::train::generate_market(cli.market);
    std::printf(
        "synthetic market: seed %ju, %d symbols x %d days -> %zu normal rows, %zu earnings rows\n",
        static_cast<std::uintmax_t>(cli.market.seed), cli.market.symbols, cli.market.days,
        market.normal.rows(), market.earnings.rows());
    if (cli.only.empty() || cli.only == "normal")
      predflow::train::build_model({"normal_day", "lstm_normal_v2.2", "2.2", 8}, market.normal, cli.run);
    if (cli.only.empty() || cli.only == "earnings")
      predflow::train::build_model({"earnings_day", "lstm_earnings_v2.2", "2.2", 60}, market.earnings,
                                   cli.run);
    std::printf("done in %.1f s\n",
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "predflow_train_models: %s\n", e.what());
    return 1;
  }
  return 0;
}
