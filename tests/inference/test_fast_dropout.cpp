// The predflow::dropout operator (nodes/inference/fast_dropout.cpp), through TorchScript
// modules that call it, run by McModel as the node runs them: mask rate, scaling, no
// dependence between the two elements of one 64-bit draw, between the samples of a row or
// between calls, reproducibility under a seed, and train=False / p = 0 / p = 1.
//
// Every statistical check is a two-sided z test at |z| <= 5 (false alarm 5.7e-7 each when
// the generator is right; about 30 checks here, so under 2e-5 for the file), with fixed
// seeds, so the outcome is deterministic.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "inference/inference_support.hpp"
#include "nodes/inference/mc_model.hpp"

using namespace predflow::inference;
using namespace predflow::test;

namespace {

// Two columns of ones go through one dropout call; the two outcomes of a row are coded
// as kept0 + 2·kept1 (0…3), so a row's draw shows both masks. Width 2 makes the two
// elements of a row the two halves of one 64-bit draw.
const char* kPairMasks = R"JIT(
def forward(self, x: Tensor) -> Tensor:
    d = ops.predflow.dropout(x, self.p, False)
    return d[:, 0] + 2.0 * d[:, 1]

def sample(self, x: Tensor) -> Tensor:
    d = ops.predflow.dropout(x, self.p, True) * (1.0 - self.p)
    return d[:, 0] + 2.0 * d[:, 1]
)JIT";

// The kept value itself: x0 / (1 - p) or 0.
const char* kScaled = R"JIT(
def forward(self, x: Tensor) -> Tensor:
    return ops.predflow.dropout(x, self.p, False)[:, 0]

def sample(self, x: Tensor) -> Tensor:
    return ops.predflow.dropout(x, self.p, True)[:, 0]
)JIT";

McModelOptions cpu(std::size_t batch_size, long long seed) {
  McModelOptions o;
  o.device = "cpu";
  o.batch_size = batch_size;
  o.warmup_samples = 2;
  o.warmup_iterations = 1;
  o.seed = seed;
  return o;
}

std::vector<float> draw(McModel& m, const std::vector<float>& x, std::size_t width, int S) {
  std::vector<float> out(x.size() / width * static_cast<std::size_t>(S));
  m.infer(x, width, S, out);
  return out;
}

double z_share(double hits, double n, double p) { return (hits / n - p) / std::sqrt(p * (1 - p) / n); }

}  // namespace

TEST_CASE("predflow::dropout: drop rate p, kept values scaled by 1/(1-p), exactly two values") {
  for (double p : {0.1, 0.5, 0.9}) {
    CAPTURE(p);
    TempDir dir;
    McModel m(load_model_card(write_model(dir, kScaled, 1, {{"p", p}})), cpu(64, 5));
    const std::vector<float> x(64, 3.0f);  // 64 rows of 3
    const int S = 2000;
    const auto y = draw(m, x, 1, S);
    double dropped = 0;
    const float kept = static_cast<float>(3.0 / (1.0 - p));
    for (float v : y) {
      dropped += v == 0.0f;
      if (v != 0.0f) REQUIRE(v == doctest::Approx(kept).epsilon(1e-6));
    }
    const double z = z_share(dropped, static_cast<double>(y.size()), p);
    CAPTURE(z);
    CHECK(std::abs(z) <= 5.0);
  }
}

TEST_CASE("predflow::dropout: the two halves of a draw, samples of a row and successive calls are independent") {
  const double p = 0.3;
  TempDir dir;
  McModel m(load_model_card(write_model(dir, kPairMasks, 2, {{"p", p}})), cpu(100, 9));
  const std::vector<float> x(200, 1.0f);  // 100 rows × 2 columns of ones
  const int S = 400;
  const auto a = draw(m, x, 2, S);
  const auto b = draw(m, x, 2, S);  // a second call: a new key
  const double n = static_cast<double>(a.size());
  auto code = [](float v) { return static_cast<int>(std::lround(v)); };  // kept0 + 2·kept1

  // Each cell of the 2×2 table of one draw's two masks has probability (1-p or p)².
  double cells[4] = {0, 0, 0, 0};
  for (float v : a) {
    const int c = code(v);
    REQUIRE((c >= 0 && c <= 3));
    cells[c] += 1;
  }
  const double expected[4] = {p * p, (1 - p) * p, p * (1 - p), (1 - p) * (1 - p)};
  for (int c = 0; c < 4; ++c) {
    CAPTURE(c);
    CHECK(std::abs(z_share(cells[c], n, expected[c])) <= 5.0);
  }

  // Consecutive samples of one row (copies s and s+1 of the row in the call), and the same
  // sample position in two calls: P(both drop column 0) = p².
  double both_samples = 0, pairs_samples = 0, both_calls = 0, same_calls = 0;
  for (std::size_t r = 0; r < 100; ++r)
    for (int s = 0; s < S; ++s) {
      const int here = code(a[r * S + s]);
      if (s + 1 < S) {
        both_samples += ((here & 1) == 0) && ((code(a[r * S + s + 1]) & 1) == 0);
        pairs_samples += 1;
      }
      const int other = code(b[r * S + s]);
      both_calls += ((here & 1) == 0) && ((other & 1) == 0);
      same_calls += here == other;
    }
  CHECK(std::abs(z_share(both_samples, pairs_samples, p * p)) <= 5.0);
  CHECK(std::abs(z_share(both_calls, n, p * p)) <= 5.0);
  // Two unrelated calls agree on both masks of a draw with probability Σ cell², not 1.
  const double agree = expected[0] * expected[0] + expected[1] * expected[1] + expected[2] * expected[2] +
                       expected[3] * expected[3];
  CHECK(std::abs(z_share(same_calls, n, agree)) <= 5.0);
}

TEST_CASE("predflow::dropout: the same seed gives the same masks, train=False, p = 0 and p = 1 are exact") {
  TempDir dir;
  const std::string folder = write_model(dir, kScaled, 1, {{"p", 0.4}});
  const std::vector<float> x = {1, 2, 3, 4, 5, 6, 7, 8};
  McModel first(load_model_card(folder), cpu(8, 77));
  const auto a = draw(first, x, 1, 50);
  McModel second(load_model_card(folder), cpu(8, 77));
  CHECK(draw(second, x, 1, 50) == a);           // reseeded: the very same masks
  CHECK(draw(second, x, 1, 50) != a);           // the next call: new masks
  CHECK(draw(second, x, 1, 1) == x);            // forward(): train=False returns the input

  TempDir none, all;
  McModel keep(load_model_card(write_model(none, kScaled, 1, {{"p", 0.0}})), cpu(8, 1));
  for (float v : draw(keep, x, 1, 20)) CHECK(v != 0.0f);
  CHECK(draw(keep, x, 1, 20)[0] == 1.0f);
  McModel drop(load_model_card(write_model(all, kPairMasks, 2, {{"p", 1.0}})), cpu(8, 1));
  // p = 1 drops everything (the module's (1-p) factor is 0 too: the output is 0 either way).
  for (float v : draw(drop, std::vector<float>(16, 1.0f), 2, 20)) CHECK(v == 0.0f);
}
