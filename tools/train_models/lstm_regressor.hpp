// The network that is trained here and then re-expressed as TorchScript.
//
// LSTM(F -> 32), one layer, fed the scaled feature vector as a single time step with a
// zero initial state, then dropout -> Linear(32 -> 16) -> ReLU -> dropout -> two heads:
// the expected return and the spread of the noise around it (Gaussian NLL training).
// Dropout alone only expresses the model's doubt about its own weights, a small fraction
// of the day-to-day randomness of returns, so a band built from dropout samples alone
// would cover far fewer than 80 % of outcomes; the noise head supplies the rest.
#pragma once

#include <torch/torch.h>

namespace predflow::train {

inline constexpr int64_t kHiddenWidth = 32;
inline constexpr int64_t kDenseWidth = 16;
// The network works in percent (returns / 0.01) so that its outputs and losses are of
// order one; the exported module multiplies back.
inline constexpr double kTargetScale = 0.01;
// Floor of the noise head, in percent: keeps the NLL finite on a saturated softplus.
inline constexpr double kMinSigma = 1e-3;

struct RegressorOutput {
  torch::Tensor mean;   // [N], percent
  torch::Tensor sigma;  // [N], percent, > 0
};

// softplus written out with elementwise builtins, so that the TorchScript copy can use
// the very same formula and match to float rounding.
torch::Tensor stable_softplus(const torch::Tensor& x);

class LstmRegressorImpl : public torch::nn::Module {
 public:
  LstmRegressorImpl(int64_t input_width, double dropout);

  // x: [N, F] scaled features. Dropout follows is_training(), like any torch::nn module.
  RegressorOutput forward(const torch::Tensor& x);

  int64_t input_width() const { return input_width_; }
  double dropout() const { return dropout_; }

  torch::nn::LSTM lstm{nullptr};
  torch::nn::Linear dense{nullptr};
  torch::nn::Linear mean_head{nullptr};
  torch::nn::Linear sigma_head{nullptr};

 private:
  int64_t input_width_;
  double dropout_;
};

TORCH_MODULE(LstmRegressor);

}  // namespace predflow::train
