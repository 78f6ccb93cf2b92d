"""Mean field for convolutions (Xiao et al. 2018): initlab's CNN with circular padding is predicted
as an MLP with sigma_w^2 = fan_in Var[W], and its measured per-layer variances follow."""

import math

import pytest
import torch
from omegaconf import OmegaConf

import initlab
from initlab.config import CNNConfig, ResNetConfig
from initlab.init.apply import records_as_dicts
from initlab.models import build_model
from initlab.models.layers import Norm, Padding
from initlab.theory import mean_field, predict_layers, run_theory

SIGMA_W2, SIGMA_B2 = 2.5, 0.05  # tanh, chaotic


def _cnn(padding: str, channels: int = 16, depth: int = 5, in_channels: int = 3, size: int = 8) -> torch.nn.Module:
    cfg = OmegaConf.structured(CNNConfig(depth=depth, channels=channels))
    cfg.activation, cfg.padding = "tanh", Padding(padding)
    return build_model(cfg, [in_channels, size, size], 10).double()


def _kaiming(model: torch.nn.Module, seed: int = 0) -> list[dict]:
    """sigma_w^2 = SIGMA_W2 in every weight layer (std = gain / sqrt(fan_in)), biases N(0, SIGMA_B2)."""
    return records_as_dicts(initlab.initialize(model, "kaiming", gain=math.sqrt(SIGMA_W2), bias="normal",
                                               bias_std=math.sqrt(SIGMA_B2),
                                               generator=torch.Generator().manual_seed(seed)))


def test_a_circular_cnn_is_predicted_as_an_mlp_of_its_fan_in():
    records = _kaiming(_cnn("circular"))
    theory = run_theory("cnn", "tanh", 0.01, records, padding="circular")
    expected = mean_field("tanh", SIGMA_W2, SIGMA_B2, q_start=SIGMA_W2 * 1.0 + SIGMA_B2)
    assert theory["predicted"] and theory["padding"] == "circular" and theory["depth"] == 5
    assert theory["layers"] == ["layers.2", "layers.4", "layers.6"]  # convs 2..L-1, not the head after pooling
    for key in ("sigma_w2", "sigma_b2", "q_start", "q_star", "c_star", "chi_1", "xi_c"):
        assert theory[key] == pytest.approx(getattr(expected, key), rel=1e-9), key


@pytest.mark.parametrize("model, padding, reason", [
    ("cnn", "zeros", "with zeros padding: at layer l the pixels within l (kernel // 2) of the border"),
    ("cnn", "reflect", "with reflect padding"),
    ("cnn", None, "model=cnn without its padding"),
])
def test_other_paddings_are_not_predicted(model, padding, reason):
    theory = run_theory(model, "tanh", 0.01, _kaiming(_cnn(padding or "zeros")), padding=padding)
    assert not theory["predicted"] and reason in theory["reason"] and "model.padding=circular" in theory["reason"]


def test_residual_networks_are_not_predicted():
    cfg = OmegaConf.structured(ResNetConfig(depth=8, width=4))
    cfg.norm = Norm.none
    records = _kaiming(build_model(cfg, [3, 8, 8], 10))
    theory = run_theory("resnet", "tanh", 0.01, records)
    assert not theory["predicted"] and "residual connections" in theory["reason"]


def test_a_wide_circular_cnn_follows_the_predicted_variances_layer_by_layer():
    """128 channels on 8 x 8 images, 6 weight layers, tanh at sigma_w^2 = 2.5 (q_1 = 2.55 relaxes
    towards q* = 1.06, xi_q = 1.2 layers): Var[y_l] of each hidden conv layer (over batch, channels,
    pixels) against predict_layers with widths = channels, and the per-layer growth of the
    back-propagated Var[dL/dy_l] (geometric mean over the 4 hidden steps). The channels are the
    independent draws (the pixels share them): over 10 seeds the variances were off by at most 8%
    and the per-layer growth by 5%, hence 15% and 8%. The head, after global average pooling, is
    not compared: pooling averages correlated pixels, which the per-unit maps do not model."""
    model = _cnn("circular", channels=128, depth=6)
    records = _kaiming(model, seed=1)
    weights = [r for r in records if r["param"] == "weight"]
    predicted = predict_layers("tanh", [r["fan_in"] * r["target_std"] ** 2 for r in weights], [SIGMA_B2] * 6, 1.0,
                               widths=[r["shape"][0] for r in weights])
    outputs: list[torch.Tensor] = []
    keep = lambda module, args, y: y.retain_grad() or outputs.append(y)  # noqa: E731
    for module in model.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            module.register_forward_hook(keep)
    g = torch.Generator().manual_seed(2)
    logits = model(torch.randn(8, 3, 8, 8, dtype=torch.float64, generator=g))
    (logits * torch.randn(logits.shape, dtype=torch.float64, generator=g)).sum().backward()
    hidden = outputs[:-1]
    assert [y.var().item() for y in hidden] == pytest.approx(predicted.act_var[:-1], rel=0.15)
    assert predicted.act_var[-2] == pytest.approx(mean_field("tanh", SIGMA_W2, SIGMA_B2).q_star, rel=0.03)
    growth = lambda grads: (grads[0] / grads[-1]) ** (1 / (len(grads) - 1))  # noqa: E731
    assert growth([y.grad.var().item() for y in hidden]) == pytest.approx(growth(predicted.grad_var[:-1]), rel=0.08)
