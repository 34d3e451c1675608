#include "torchscript_export.hpp"

#include <cstdio>
#include <stdexcept>

namespace predflow::train {

namespace {

// The LSTM is written out for one step from a zero state: with h0 = c0 = 0 the recurrent
// product W_hh h0 and the forget gate's f * c0 vanish, leaving c = i * g and h = o * tanh(c)
// (gate order i, f, g, o as in torch.nn.LSTM). W_hh is still stored so the file maps onto
// an nn.LSTM state dict one to one. sample() draws dropout masks and a standard normal per
// row; its mean over many draws is forward() up to dropout's small nonlinearity bias.
constexpr const char* kSource = R"JIT(
def _net(self, x: Tensor, active: bool) -> Tuple[Tensor, Tensor]:
    assert x.dim() == 2 and x.size(1) == self.input_width, (
        "LstmRegressor: expected x of shape [N, " + str(self.input_width) + "]")
    gates = torch.matmul(x, self.lstm_weight_ih.t()) + self.lstm_bias_ih + self.lstm_bias_hh
    i, f, g, o = gates.chunk(4, 1)
    c = torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(c)
    h = torch.dropout(h, self.dropout_p, active)
    z = torch.relu(torch.matmul(h, self.dense_weight.t()) + self.dense_bias)
    z = torch.dropout(z, self.dropout_p, active)
    mean = (torch.matmul(z, self.mean_weight.t()) + self.mean_bias).squeeze(1)
    s = torch.matmul(z, self.sigma_weight.t()) + self.sigma_bias
    sigma = (torch.relu(s) + torch.log1p(torch.exp(-torch.abs(s)))).squeeze(1) + self.min_sigma
    return mean, sigma

def forward(self, x: Tensor) -> Tensor:
    mean, sigma = self._net(x, False)
    return mean * self.target_scale

def sample(self, x: Tensor) -> Tensor:
    mean, sigma = self._net(x, True)
    noise = torch.randn_like(mean)
    return (mean + self.noise_scale * sigma * noise) * self.target_scale
)JIT";

void add_tensor(torch::jit::Module& m, const std::string& name, const torch::Tensor& t) {
  m.register_parameter(name, t.detach().clone().contiguous(), /*is_buffer=*/false);
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

void require(bool ok, const std::string& what) {
  if (!ok) throw std::runtime_error("export check failed: " + what);
}

}  // namespace

torch::jit::Module build_torchscript(LstmRegressor& model, const std::string& version,
                                     double noise_scale) {
  torch::jit::Module m("LstmRegressor");
  // Module::eval()/train() assert that this attribute exists; scripted Python modules
  // always have it, so loaders call eval() without a second thought.
  m.register_attribute("training", c10::BoolType::get(), false);
  m.register_attribute("input_width", c10::IntType::get(), model->input_width());
  m.register_attribute("dropout_p", c10::FloatType::get(), model->dropout());
  m.register_attribute("noise_scale", c10::FloatType::get(), noise_scale);
  m.register_attribute("min_sigma", c10::FloatType::get(), kMinSigma);
  m.register_attribute("target_scale", c10::FloatType::get(), kTargetScale);
  m.register_attribute("version", c10::StringType::get(), version);
  const auto lstm = model->lstm->named_parameters();
  add_tensor(m, "lstm_weight_ih", lstm["weight_ih_l0"]);
  add_tensor(m, "lstm_weight_hh", lstm["weight_hh_l0"]);
  add_tensor(m, "lstm_bias_ih", lstm["bias_ih_l0"]);
  add_tensor(m, "lstm_bias_hh", lstm["bias_hh_l0"]);
  add_tensor(m, "dense_weight", model->dense->weight);
  add_tensor(m, "dense_bias", model->dense->bias);
  add_tensor(m, "mean_weight", model->mean_head->weight);
  add_tensor(m, "mean_bias", model->mean_head->bias);
  add_tensor(m, "sigma_weight", model->sigma_head->weight);
  add_tensor(m, "sigma_bias", model->sigma_head->bias);
  m.define(kSource);
  m.eval();
  return m;
}

void verify_saved_module(const std::string& path, LstmRegressor& model, const torch::Tensor& x) {
  auto loaded = torch::jit::load(path);
  loaded.eval();
  torch::NoGradGuard no_grad;
  model->eval();
  const auto reference = model->forward(x).mean * kTargetScale;
  const auto forward = loaded.forward({x}).toTensor();
  require(forward.dim() == 1 && forward.size(0) == x.size(0), "forward() shape is not [N]");
  require(forward.scalar_type() == torch::kFloat32, "forward() is not float32");
  const double diff = max_abs_diff(forward, reference);
  require(diff < 1e-5, "forward() differs from the training model by " + std::to_string(diff));
  require(max_abs_diff(loaded.forward({x}).toTensor(), forward) == 0.0,
          "forward() is not deterministic");

  auto sample = loaded.get_method("sample");
  const auto a = sample({x}).toTensor();
  const auto b = sample({x}).toTensor();
  require(a.dim() == 1 && a.size(0) == x.size(0), "sample() shape is not [N]");
  require(max_abs_diff(a, b) > 0.0, "sample() is not stochastic");
  std::printf(
      "  export check: forward max |diff| vs training model %.3g, sample() stochastic "
      "(two draws differ by up to %.3g)\n",
      diff, max_abs_diff(a, b));
}

}  // namespace predflow::train
