#include "lstm_regressor.hpp"

namespace predflow::train {

torch::Tensor stable_softplus(const torch::Tensor& x) {
  return torch::relu(x) + torch::log1p(torch::exp(-torch::abs(x)));
}

LstmRegressorImpl::LstmRegressorImpl(int64_t input_width, double dropout)
    : input_width_(input_width), dropout_(dropout) {
  lstm =
      register_module("lstm", torch::nn::LSTM(torch::nn::LSTMOptions(input_width, kHiddenWidth)));
  dense = register_module("dense", torch::nn::Linear(kHiddenWidth, kDenseWidth));
  mean_head = register_module("mean_head", torch::nn::Linear(kDenseWidth, 1));
  sigma_head = register_module("sigma_head", torch::nn::Linear(kDenseWidth, 1));
}

RegressorOutput LstmRegressorImpl::forward(const torch::Tensor& x) {
  // [N, F] -> a sequence of length 1: [1, N, F]; no state passed = zero h0 and c0.
  auto h = std::get<0>(lstm->forward(x.unsqueeze(0))).squeeze(0);
  h = torch::dropout(h, dropout_, is_training());
  auto z = torch::relu(dense->forward(h));
  z = torch::dropout(z, dropout_, is_training());
  return {mean_head->forward(z).squeeze(1),
          stable_softplus(sigma_head->forward(z)).squeeze(1) + kMinSigma};
}

}  // namespace predflow::train
