#!/usr/bin/python3
"""Makes models/testdata/python_tiny/: a tiny TorchScript model saved by Python's
torch.jit.save, so that the inference tests prove that models trained elsewhere load the
same way as the ones predflow_train_models writes from C++ (design.md section 7).

Run with Debian's python3-torch (1.13.1) from the repository root:
    /usr/bin/python3 models/testdata/make_python_model.py

Writes python_tiny_v0.pt, model.yaml (identity scaler, so tests can feed raw numbers)
and expected.json (a fixed input and the forward() output the tests can compare against).
"""
import json
import os

import torch

WIDTH = 20
DROPOUT = 0.1
NAME = "python_tiny_v0"
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "python_tiny")


class TinyMcRegressor(torch.nn.Module):
    """Linear(20 -> 8) -> ReLU -> dropout -> Linear(8 -> 1); same interface as the
    shipped models: forward(x [N, 20]) -> [N] with dropout off, sample(x) with it on."""

    input_width: int

    def __init__(self):
        super().__init__()
        self.input_width = WIDTH
        self.hidden = torch.nn.Linear(WIDTH, 8)
        self.out = torch.nn.Linear(8, 1)
        self.p = DROPOUT

    def _net(self, x: torch.Tensor, active: bool) -> torch.Tensor:
        h = torch.relu(self.hidden(x))
        h = torch.nn.functional.dropout(h, self.p, active)
        return self.out(h).squeeze(1) * 0.01  # returns of order 1e-2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._net(x, False)

    @torch.jit.export
    def sample(self, x: torch.Tensor) -> torch.Tensor:
        return self._net(x, True)


def main():
    torch.manual_seed(20261126)
    module = torch.jit.script(TinyMcRegressor().eval())
    os.makedirs(OUT, exist_ok=True)
    torch.jit.save(module, os.path.join(OUT, NAME + ".pt"))

    x = torch.linspace(-2.0, 2.0, 3 * WIDTH).reshape(3, WIDTH)
    with torch.no_grad():
        y = module(x)
        draws = module.sample(x.repeat(200, 1)).view(200, 3)
    assert y.shape == (3,) and y.dtype == torch.float32
    assert draws.std(0).min() > 0, "sample() must be stochastic"
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        rows = ",\n  ".join(json.dumps(r) for r in x.tolist())
        f.write('{"input": [\n  %s],\n "forward": %s,\n "tolerance": 1e-6}\n'
                % (rows, json.dumps(y.tolist())))

    names = ", ".join("f%02d_in%02d" % (i, i) for i in range(WIDTH))
    zeros = ", ".join("0" for _ in range(WIDTH))
    ones = ", ".join("1" for _ in range(WIDTH))
    with open(os.path.join(OUT, "model.yaml"), "w") as f:
        f.write(
            "# Test model written by models/testdata/make_python_model.py (torch.jit.save, "
            "torch %s); not for production.\n"
            "name: %s\n"
            "model_type: normal_day\n"
            "file: %s.pt\n"
            "input_width: %d\n"
            "features: [%s]\n"
            "scaler: {mean: [%s], scale: [%s]}\n"
            "dropout: %g\n"
            "mc_samples_default: 20\n"
            "training: {data_seed: 20261126, train_rows: 0, val_rows: 0, epochs: 0, "
            "optimizer: none, lr: 0}\n"
            "# not trained: random weights, so there are no validation figures (zeros)\n"
            "validation: {rmse: 0, rmse_zero_predictor: 0, directional_accuracy: 0, "
            "p10_p90_coverage: 0, mc_samples: 20}\n"
            % (torch.__version__, NAME, NAME, WIDTH, names, zeros, ones, DROPOUT))
    print("wrote", OUT, "forward:", y.tolist())


if __name__ == "__main__":
    main()
