#include "torchscript_export.hpp"

#include "nodes/inference/ops_resolver.hpp"

#include <cstdio>
#include <stdexcept>

namespace predflow::train {

namespace {

// The LSTM is written out for one step from a zero state: with h0 = c0 = 0 the recurrent
// product W_hh h0 and the forget gate's f * c0 vanish, leaving c = i * g and h = o * tanh(c)
// (gate order i, f, g, o as in torch.nn.LSTM). W_hh is still stored so the file maps onto
// an nn.LSTM state dict one to one. sample() draws dropout masks and a standard normal per
// row; its mean over many draws is forward() up to dropout's small nonlinearity bias.
//
// trunk() and sample_head() split sample() for Monte-Carlo inference (docs/models.md):
// trunk(x) is the deterministic LSTM step, sample_head(h) everything stochastic after it,
// so sample(x) and sample_head(trunk(x)) draw from the same distribution and the runtime
// computes the trunk once per row instead of once per sample. The masks come from
// predflow's operator ops.predflow.dropout (nodes/inference/fast_dropout.cpp: the
// same Bernoulli(1 - p) masks and 1/(1-p) scaling as torch.dropout, from a generator ten
// times faster); training itself uses torch::dropout.
//
// sample_head_mc(h, S) is the whole Monte-Carlo step of one batch (docs/models.md,
// "Published mean and bands"): h [N, H] (not repeated) -> (draws [S*N] in the node's
// layout of S blocks of N rows, mean [N]). Each draw is marginally what sample_head
// draws, but a row's S noise values are stratified: one standard normal from each of the
// S equal-probability slices (Latin hypercube sampling in the noise), so the band of 20
// draws no longer comes out narrow or wide by chance. Pass s of a row takes slice
// (s + shift) mod S, shift uniform on 0..S-1 per row: each pass's slice is uniform, so
// each draw is exactly N(0, 1) marginally, and since the dropout masks of the passes are
// independent and identically distributed, pairing them with the slices by a shift is as
// good as by a random permutation for every statistic of the row's draws (and ~7x cheaper
// than argsort; ndtri ~4x cheaper than erfinv on this CPU). `mean` is the mean
// head averaged over the same S dropout passes without the noise, a Rao-Blackwellised
// estimate of the draws' expected value (the noise has mean 0). The noise standard
// deviation is noise_scale * sigma * (sigma / noise_sigma_ref)^(noise_power - 1): a power
// map fitted on held-apart symbols (evaluate.cpp, calibrate_noise_map).
constexpr const char* kSource = R"JIT(
def trunk(self, x: Tensor) -> Tensor:
    assert x.dim() == 2 and x.size(1) == self.input_width, (
        "LstmRegressor: expected x of shape [N, " + str(self.input_width) + "]")
    gates = torch.matmul(x, self.lstm_weight_ih.t()) + self.lstm_bias_ih + self.lstm_bias_hh
    i, f, g, o = gates.chunk(4, 1)
    c = torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c)

def _head(self, h: Tensor, active: bool) -> Tuple[Tensor, Tensor]:
    h = ops.predflow.dropout(h, self.dropout_p, active)
    z = torch.relu(torch.matmul(h, self.dense_weight.t()) + self.dense_bias)
    z = ops.predflow.dropout(z, self.dropout_p, active)
    mean = (torch.matmul(z, self.mean_weight.t()) + self.mean_bias).squeeze(1)
    s = torch.matmul(z, self.sigma_weight.t()) + self.sigma_bias
    sigma = (torch.relu(s) + torch.log1p(torch.exp(-torch.abs(s)))).squeeze(1) + self.min_sigma
    return mean, sigma

def forward(self, x: Tensor) -> Tensor:
    mean, sigma = self._head(self.trunk(x), False)
    return mean * self.target_scale

def _noise_sd(self, sigma: Tensor) -> Tensor:
    return self.noise_scale * sigma * torch.pow(sigma / self.noise_sigma_ref, self.noise_power - 1.0)

def sample_head(self, h: Tensor) -> Tensor:
    mean, sigma = self._head(h, True)
    noise = torch.randn_like(mean)
    return (mean + self._noise_sd(sigma) * noise) * self.target_scale

def sample(self, x: Tensor) -> Tensor:
    return self.sample_head(self.trunk(x))

def _mc_parts(self, h: Tensor, samples: int) -> Tuple[Tensor, Tensor, Tensor]:
    n = h.size(0)
    mean, sigma = self._head(h.repeat(samples, 1), True)
    shift = torch.floor(torch.rand(n, dtype=mean.dtype, device=mean.device) * samples)
    passes = torch.arange(samples, dtype=mean.dtype, device=mean.device).unsqueeze(1)
    slot = torch.remainder(passes + shift, samples)
    u = torch.rand(samples, n, dtype=mean.dtype, device=mean.device)
    eps = torch.special_ndtri(torch.clamp((slot + u) / samples, 1e-6, 1.0 - 1e-6))
    return mean.view(samples, n), sigma.view(samples, n), eps

def sample_head_mc(self, h: Tensor, samples: int) -> Tuple[Tensor, Tensor]:
    mean, sigma, eps = self._mc_parts(h, samples)
    draws = (mean + self._noise_sd(sigma) * eps) * self.target_scale
    return draws.reshape(-1), mean.mean(0) * self.target_scale
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
  // noise_power 1 and any reference: the plain noise_scale * sigma of earlier models.
  m.register_attribute("noise_power", c10::FloatType::get(), 1.0);
  m.register_attribute("noise_sigma_ref", c10::FloatType::get(), 1.0);
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
  m.define(kSource, predflow::inference::ops_resolver());
  m.eval();
  return m;
}

void verify_saved_module(const std::string& path, LstmRegressor& model, const torch::Tensor& x,
                         int samples) {
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

  // The Monte-Carlo split: trunk() is the training model's LSTM output, deterministic, and
  // sample_head(trunk(x)) is sample(x) draw for draw (the same generator calls in the same
  // order), so the runtime's trunk-once path samples the very same distribution.
  auto trunk = loaded.get_method("trunk");
  auto head = loaded.get_method("sample_head");
  const auto h = trunk({x}).toTensor();
  const auto lstm_h = std::get<0>(model->lstm->forward(x.unsqueeze(0))).squeeze(0);
  const double trunk_diff = max_abs_diff(h, lstm_h);
  require(h.dim() == 2 && h.size(0) == x.size(0), "trunk() shape is not [N, H]");
  require(trunk_diff < 1e-5, "trunk() differs from the LSTM output by " + std::to_string(trunk_diff));
  require(max_abs_diff(trunk({x}).toTensor(), h) == 0.0, "trunk() is not deterministic");
  constexpr std::uint64_t kCheckSeed = 20261204;
  torch::manual_seed(kCheckSeed);
  const auto whole = sample({x}).toTensor();
  torch::manual_seed(kCheckSeed);
  const auto split = head({trunk({x}).toTensor()}).toTensor();
  require(max_abs_diff(whole, split) == 0.0,
          "sample_head(trunk(x)) differs from sample(x) under the same seed by " +
              std::to_string(max_abs_diff(whole, split)));
  // sample_head_mc: the node's one call for all S samples of the rows.
  auto mc = loaded.get_method("sample_head_mc");
  auto parts = loaded.get_method("_mc_parts");
  const auto S = static_cast<int64_t>(samples);
  torch::manual_seed(kCheckSeed);
  const auto out = mc({h, S}).toTuple();
  const auto draws = out->elements()[0].toTensor(), rb = out->elements()[1].toTensor();
  require(draws.dim() == 1 && draws.size(0) == S * x.size(0), "sample_head_mc() draws are not [S*N]");
  require(rb.dim() == 1 && rb.size(0) == x.size(0), "sample_head_mc() mean is not [N]");
  torch::manual_seed(kCheckSeed);
  const auto again = mc({h, S}).toTuple();
  require(max_abs_diff(again->elements()[0].toTensor(), draws) == 0.0 &&
              max_abs_diff(again->elements()[1].toTensor(), rb) == 0.0,
          "sample_head_mc() differs from itself under the same seed");
  torch::manual_seed(kCheckSeed);
  const auto p = parts({h, S}).toTuple();
  const auto pass_means = p->elements()[0].toTensor(), eps = p->elements()[2].toTensor();
  const double scale = loaded.attr("target_scale").toDouble();
  const double rb_diff = max_abs_diff(rb, pass_means.mean(0) * scale);
  require(rb_diff < 1e-7, "sample_head_mc() mean is not the passes' mean head averaged: " +
                              std::to_string(rb_diff));
  // Stratified: a row's k-th smallest noise value lies in the k-th of S equal-probability
  // slices of the standard normal, Phi(eps) in [k/S, (k+1)/S] (float rounding allowed).
  const auto u = 0.5 * (1.0 + torch::erf(std::get<0>(eps.to(torch::kDouble).sort(0)) / std::sqrt(2.0)));
  const auto k = torch::arange(S, torch::kDouble).unsqueeze(1);
  const bool stratified = ((u >= k / S - 1e-6) & (u <= (k + 1) / S + 1e-6)).all().item<bool>();
  require(stratified, "sample_head_mc() noise is not one draw per slice of the normal");
  std::printf(
      "  export check: forward max |diff| vs training model %.3g, sample() stochastic "
      "(two draws differ by up to %.3g), trunk() vs LSTM %.3g, sample_head(trunk(x)) == "
      "sample(x) under one seed, sample_head_mc: shapes, seeded, mean = passes' mean head "
      "(%.3g), noise stratified\n",
      diff, max_abs_diff(a, b), trunk_diff, rb_diff);
}

}  // namespace predflow::train
