#include "trainer.hpp"

#include <chrono>
#include <cstdio>

namespace predflow::train {

namespace {

torch::Tensor gaussian_nll(const RegressorOutput& out, const torch::Tensor& y) {
  const auto z = (y - out.mean) / out.sigma;
  return (torch::log(out.sigma) + 0.5 * z * z).mean();
}

}  // namespace

void train_regressor(LstmRegressor& model, const torch::Tensor& x, const torch::Tensor& y,
                     const TrainConfig& config) {
  const auto y_pct = y / kTargetScale;
  const int64_t n = x.size(0);
  torch::optim::Adam optimizer(
      model->parameters(),
      torch::optim::AdamOptions(config.learning_rate).weight_decay(config.weight_decay));
  const auto start = std::chrono::steady_clock::now();
  model->train();
  for (int epoch = 1; epoch <= config.epochs; ++epoch) {
    // Drawn from the global generator, which main() seeds: same seed, same run.
    const auto order = torch::randperm(n, torch::kLong);
    double loss_sum = 0.0;
    int64_t batches = 0;
    for (int64_t begin = 0; begin < n; begin += config.batch_size) {
      const auto idx = order.slice(0, begin, std::min(begin + config.batch_size, n));
      optimizer.zero_grad();
      const auto loss =
          gaussian_nll(model->forward(x.index_select(0, idx)), y_pct.index_select(0, idx));
      loss.backward();
      optimizer.step();
      loss_sum += loss.item<double>();
      ++batches;
    }
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("  epoch %3d/%d  nll %.5f  (%.1f s)\n", epoch, config.epochs, loss_sum / batches,
                secs);
    std::fflush(stdout);
  }
  model->eval();
}

}  // namespace predflow::train
