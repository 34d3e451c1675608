#!/usr/bin/python3
"""Checks from Python that model folders written by predflow_train_models (or by
torch.jit.save) load with torch.jit.load and honour the interface of docs/models.md.

    /usr/bin/python3 tools/train_models/check_models.py [--device cuda:0] [--ops LIB.so] [MODEL_DIR ...]

Defaults to models/normal_day/2.2 models/earnings_day/2.2 models/testdata/python_tiny.
Models that call predflow's operator (ops.predflow.dropout) need its shared library:
--ops PATH, or $PREDFLOW_TORCH_OPS, or build/nodes/inference/libpredflow_torch_ops.so
(target predflow_torch_ops), loaded with torch.ops.load_library.
Needs Debian's python3-torch and python3-yaml (or any torch >= 1.13 with PyYAML). With
--device the module is moved there and forward() is compared with the CPU result.
Exits 1 on the first failure.
"""
import os
import sys

import torch
import yaml

DEFAULT_DIRS = ["models/normal_day/2.2", "models/earnings_day/2.2", "models/testdata/python_tiny"]


def check(folder, device):
    with open(os.path.join(folder, "model.yaml")) as f:
        card = yaml.safe_load(f)
    width = card["input_width"]
    assert len(card["features"]) == width, "features vs input_width"
    assert len(card["scaler"]["mean"]) == width and len(card["scaler"]["scale"]) == width
    assert all(s > 0 for s in card["scaler"]["scale"]), "scaler.scale must be positive"
    path = os.path.join(folder, card["file"])
    assert os.path.getsize(path) < 1 << 20, "model over 1 MB"

    module = torch.jit.load(path)
    module.eval()
    x = torch.randn(64, width)
    with torch.inference_mode():
        y = module(x)
        assert y.shape == (64,) and y.dtype == torch.float32, "forward() must return [N] float32"
        assert torch.equal(y, module(x)), "forward() must be deterministic"
        draws = module.sample(x.repeat(card["mc_samples_default"], 1))
        assert draws.shape == (64 * card["mc_samples_default"],), "sample() must return [S*N]"
        assert not torch.equal(draws[:64], draws[64:128]), "sample() must be stochastic"
        split = card.get("monte_carlo")
        if split:  # sample(x) == head(trunk(x)) draw for draw, trunk deterministic
            trunk, head = getattr(module, split["trunk"]), getattr(module, split["head"])
            h = trunk(x)
            assert torch.equal(h, trunk(x)), "monte_carlo trunk must be deterministic"
            torch.manual_seed(7)
            whole = module.sample(x)
            torch.manual_seed(7)
            assert torch.equal(whole, head(h)), "head(trunk(x)) must equal sample(x) under one seed"
            if split.get("head_mc"):  # all S draws of a row at once, with the Rao-Blackwellised mean
                S = card["mc_samples_default"]
                head_mc = getattr(module, split["head_mc"])
                torch.manual_seed(7)
                draws, mean = head_mc(h, S)
                assert draws.shape == (S * 64,) and mean.shape == (64,), "head_mc must return ([S*N], [N])"
                torch.manual_seed(7)
                again = head_mc(h, S)
                assert torch.equal(draws, again[0]) and torch.equal(mean, again[1]), "head_mc must be seeded"
                assert split.get("mean", "samples") in ("samples", "rao_blackwell"), "monte_carlo.mean"
        if device != "cpu":
            moved = torch.jit.load(path, map_location=device)
            moved.eval()
            diff = (moved(x.to(device)).cpu() - y).abs().max().item()
            assert diff < 1e-5, "forward() on %s differs from cpu by %g" % (device, diff)
            draws = moved.sample(x.to(device).repeat(2, 1))
            assert draws.device.type == torch.device(device).type, "sample() left the device"
    print("ok %-32s %-20s width %d, forward(zeros)[0] = %.6f%s%s"
          % (folder, card["name"], width, module(torch.zeros(1, width))[0].item(),
             (", monte_carlo split%s checked" % (" and head_mc" if card["monte_carlo"].get("head_mc") else ""))
             if card.get("monte_carlo") else "",
             "" if device == "cpu" else ", same on " + device))


def load_ops(path):
    path = path or os.environ.get("PREDFLOW_TORCH_OPS") or "build/nodes/inference/libpredflow_torch_ops.so"
    if os.path.exists(path):
        torch.ops.load_library(path)
        print("loaded predflow's operators from %s" % path)
    else:
        print("no %s: models calling ops.predflow.* will not load (build target predflow_torch_ops)" % path)


def main():
    args = sys.argv[1:]
    device = "cpu"
    ops = None
    while args[:1] in (["--device"], ["--ops"]):
        if args[0] == "--device":
            device = args[1]
        else:
            ops = args[1]
        args = args[2:]
    load_ops(ops)
    for folder in args or DEFAULT_DIRS:
        try:
            check(folder, device)
        except Exception as e:  # report which folder failed, then stop
            print("FAIL %s: %s" % (folder, e))
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
