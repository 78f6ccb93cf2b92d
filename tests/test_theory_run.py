"""Theory beside every run: theory.json and the init table's phase line, checked against
mean_field and against a real wide initlab MLP drawn by the same init."""

import json
import logging
import math

import pytest
import torch

import initlab
from conftest import compose_config, run_in_process
from initlab.init.apply import records_as_dicts
from initlab.models import build_model
from initlab.theory import mean_field, run_theory

SIGMA_W2, SIGMA_B2 = 2.5, 0.05  # tanh, chaotic
WIDTH = 256


def _tanh_overrides(depth: int, width: int = WIDTH) -> list[str]:
    return ["model.activation=tanh", f"model.depth={depth}", f"model.width={width}", "init=normal",
            f"init.std={math.sqrt(SIGMA_W2 / width)}", "init.bias=normal", f"init.bias_std={math.sqrt(SIGMA_B2)}"]


def test_run_writes_theory_json_and_the_init_table_names_the_phase(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="initlab"):
        run_in_process(tmp_path, "train.steps=0", *_tanh_overrides(depth=12))
    theory = json.loads((tmp_path / "theory.json").read_text())
    expected = mean_field("tanh", SIGMA_W2, SIGMA_B2)
    assert theory["predicted"] and theory["depth"] == 12 and len(theory["layers"]) == 10
    assert (theory["sigma_w2"], theory["sigma_b2"]) == pytest.approx((SIGMA_W2, SIGMA_B2), rel=1e-9)
    for key in ("q_star", "c_star", "chi_1", "chi_c", "xi_q", "xi_c", "depth_bound"):
        assert theory[key] == pytest.approx(getattr(expected, key) if key != "depth_bound" else expected.depth_bound(),
                                            rel=1e-6), key
    assert theory["phase"] == "chaotic" and theory["within_depth_bound"] is (12 <= 6 * expected.xi_c)
    assert theory["critical_sigma_w2"] == pytest.approx(1.76, abs=0.01)
    line = next(line for m in caplog.messages for line in m.splitlines() if line.startswith("theory:"))
    assert line.startswith(f"theory: chaotic (chi_1={expected.chi_1:.4g} at sigma_w^2=2.5, sigma_b^2=0.05")
    assert f"depth 12 within 6 xi_c = {6 * expected.xi_c:.3g}" in line


@pytest.mark.parametrize("overrides, reason", [
    (["model=cnn"], "model=cnn with"),  # zero padding by default (or none passed): boundary effects
    (["model.norm=layer", "model.depth=4"], "norm layers rescale"),
    (["init=eye", "model.depth=4"], "layers.2.weight is not zero-mean"),
    (["init.bias=constant", "init.bias_val=0.1", "model.depth=4"], "layers.2.bias is not zero-mean"),
    (["model.depth=2"], "2 weight layers: no hidden-to-hidden layer"),
])
def test_what_the_theory_does_not_describe_is_said_not_predicted(tmp_path, overrides, reason):
    run_in_process(tmp_path, "train.steps=0", "dataset=synthetic", *overrides)
    theory = json.loads((tmp_path / "theory.json").read_text())
    assert not theory["predicted"] and reason in theory["reason"]


def test_hidden_layers_with_different_variances_are_not_predicted(tmp_path):
    run_in_process(tmp_path, "train.steps=0", *_tanh_overrides(depth=5))
    records = json.loads((tmp_path / "init.json").read_text())
    next(r for r in records if r["layer"] == "layers.4" and r["param"] == "weight")["target_std"] *= 1.2
    theory = run_theory("mlp", "tanh", 0.01, records)
    assert not theory["predicted"] and "hidden layers' sigma_w^2 differ (2.5 to 3.6)" in theory["reason"]


def test_a_wide_initlab_mlp_settles_at_the_predicted_fixed_point():
    """A depth-40, width-512 tanh MLP built and initialised by initlab, deep in the chaotic phase
    (xi_c = 7 layers, so 30 layers in correlations have settled): its deep hidden layers hold
    Var[y] = q*, pairs of inputs sit at correlation c*, and the back-propagated gradient grows by
    chi_1 per layer, as the run's theory says. Finite width: a few % per layer, averaged over layers."""
    width, depth, sigma_w2 = 512, 40, 4.0
    cfg = compose_config(*_tanh_overrides(depth, width))
    model = build_model(cfg.model, [784], 10).double()
    records = initlab.initialize(model, "normal", std=math.sqrt(sigma_w2 / width), bias="normal",
                                 bias_std=math.sqrt(SIGMA_B2), generator=torch.Generator().manual_seed(0))
    theory = run_theory("mlp", "tanh", 0.01, records_as_dicts(records))
    assert theory["phase"] == "chaotic" and theory["xi_c"] == pytest.approx(6.98, abs=0.01)
    g = torch.Generator().manual_seed(1)
    outputs, h = [], torch.randn(32, 784, generator=g, dtype=torch.float64)
    for module in model.layers:
        h = module(h)
        if isinstance(module, torch.nn.Linear):
            h.retain_grad()
            outputs.append(h)
    (h * torch.randn(h.shape, generator=g, dtype=torch.float64)).sum().backward()
    deep = outputs[30:-1]  # hidden layers 31..39
    assert sum(y.var().item() for y in deep) / len(deep) == pytest.approx(theory["q_star"], rel=0.05)
    unit = torch.nn.functional.normalize(deep[-1].detach(), dim=1)
    pairs = (unit @ unit.T)[~torch.eye(len(unit), dtype=torch.bool)]
    assert pairs.mean().item() == pytest.approx(theory["c_star"], abs=0.03)
    grads = [y.grad.var().item() for y in deep]
    per_layer = (grads[0] / grads[-1]) ** (1 / (len(grads) - 1))
    assert per_layer == pytest.approx(theory["chi_1"], rel=0.03)
