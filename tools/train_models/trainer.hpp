// Mini-batch training of the LstmRegressor with Adam on the Gaussian negative
// log-likelihood, so that the mean head learns the expected return and the sigma head
// the size of what it cannot predict.
#pragma once

#include <torch/torch.h>

#include "lstm_regressor.hpp"

namespace predflow::train {

struct TrainConfig {
  int epochs = 10;
  int64_t batch_size = 512;
  double learning_rate = 2e-3;
  double weight_decay = 1e-5;
};

// x: [N, F] scaled features; y: [N] returns. Leaves the model in eval mode.
void train_regressor(LstmRegressor& model, const torch::Tensor& x, const torch::Tensor& y,
                     const TrainConfig& config);

}  // namespace predflow::train
