"""Schemes beyond torch.nn.init, checked against their defining formulas."""

import math

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from conftest import layer_for
from initlab.config import MLPConfig, ResNetConfig
from initlab.errors import ConfigError
from initlab.init.apply import initialize
from initlab.init.fan import FanMode, fan_for, fans
from initlab.init.gain import Gain, resolve_gain, variance_preserving_gain
from initlab.init.lsuv import lsuv_rescale
from initlab.init.schemes import TRUNCATED_NORMAL_STD, truncated_normal_std
from initlab.models import build_model

BIG = [(512, 384), (128, 64, 3, 3)]


def run(shape, scheme, mode=None, gain=None, **params):
    model = layer_for(shape)
    records = initialize(model, scheme, mode=mode, gain=gain, generator=torch.Generator().manual_seed(0), **params)
    return model[0].weight.detach(), records[0]


@pytest.mark.parametrize("shape", BIG)
@pytest.mark.parametrize("mode", list(FanMode))
@pytest.mark.parametrize("dist", ["normal", "uniform", "truncated_normal"])
@pytest.mark.parametrize("scheme", ["kaiming", "xavier", "variance_scaling"])
def test_variance_schemes_hit_gain_over_sqrt_fan(shape, mode, dist, scheme):
    gain = 1.7
    w, rec = run(shape, scheme, mode, Gain(gain, "number"), distribution=dist)
    expected = gain / math.sqrt(fan_for(mode, *fans(w)))
    assert rec.target_std == pytest.approx(expected, rel=1e-12)
    assert rec.std == pytest.approx(expected, rel=0.03)
    assert rec.mode == mode.value and rec.gain == gain
    if dist == "uniform":
        assert w.abs().max() <= math.sqrt(3) * expected
    if dist == "truncated_normal":  # cut at two uncorrected standard deviations
        assert w.abs().max() <= 2 * expected / TRUNCATED_NORMAL_STD + 1e-6


@pytest.mark.parametrize("shape", BIG)
@pytest.mark.parametrize("dist", ["normal", "uniform", "truncated_normal"])
def test_lecun_is_unit_variance_over_fan_in(shape, dist):
    w, rec = run(shape, "lecun", distribution=dist)
    assert rec.std == pytest.approx(1 / math.sqrt(fans(w)[0]), rel=0.03)


def test_variance_scaling_scale_multiplies_variance():
    w, rec = run((512, 256), "variance_scaling", FanMode.fan_avg, scale=2.0, distribution="normal")
    assert rec.std == pytest.approx(math.sqrt(2.0 / 384), rel=0.03)


def test_truncated_normal_std_formula_matches_samples():
    x = torch.empty(2_000_000)
    nn.init.trunc_normal_(x, 0.3, 1.2, -1.0, 2.0, generator=torch.Generator().manual_seed(0))
    assert truncated_normal_std(0.3, 1.2, -1.0, 2.0) == pytest.approx(x.std().item(), rel=3e-3)
    assert truncated_normal_std(0.0, 1.0, -2.0, 2.0) == pytest.approx(TRUNCATED_NORMAL_STD, rel=1e-12)


@pytest.mark.parametrize("shape", [(64, 32), (32, 64), (16, 8, 3, 3)])
def test_orthogonal_rows_or_columns_are_orthonormal_times_gain(shape):
    w, rec = run(shape, "orthogonal", gain=Gain(2.0, "number"))
    flat = w.reshape(shape[0], -1)
    small = flat @ flat.T if flat.shape[0] <= flat.shape[1] else flat.T @ flat
    assert torch.allclose(small, 4.0 * torch.eye(small.shape[0]), atol=1e-4)
    assert rec.std == pytest.approx(rec.target_std, rel=0.02)


@pytest.mark.parametrize("shape", [(16, 8, 3, 3), (8, 8, 5), (12, 4, 3, 3, 3)])
def test_delta_orthogonal_is_orthogonal_at_the_centre_and_zero_elsewhere(shape):
    w, rec = run(shape, "delta_orthogonal", gain=Gain(1.5, "number"))
    centre = tuple(k // 2 for k in shape[2:])
    c = w[(slice(None), slice(None), *centre)]
    assert torch.allclose(c.T @ c, 2.25 * torch.eye(shape[1]), atol=1e-4)
    rest = w.clone()
    rest[(slice(None), slice(None), *centre)] = 0
    assert rest.abs().max() == 0
    assert rec.std == pytest.approx(rec.target_std, rel=0.05)


def test_delta_orthogonal_rejects_fewer_outputs_than_inputs():
    with pytest.raises(ConfigError, match="out_channels >= in_channels"):
        run((4, 8, 3, 3), "delta_orthogonal")


@pytest.mark.parametrize("sparsity", [0.1, 0.5, 0.9])
def test_sparse_zeroes_the_stated_fraction_of_each_column(sparsity):
    w, rec = run((500, 400), "sparse", sparsity=sparsity, std=0.02)
    assert ((w == 0).sum(0) == math.ceil(sparsity * 500)).all()
    assert rec.std == pytest.approx(rec.target_std, rel=0.1)


@pytest.mark.parametrize("scheme", ["eye", "sparse"])
def test_two_d_only_schemes_reject_conv_weights(scheme):
    with pytest.raises(ConfigError, match="2-D"):
        run((8, 4, 3, 3), scheme)


def test_gain_resolution_names_numbers_and_auto():
    assert resolve_gain("relu", "tanh", 0.01).value == math.sqrt(2)
    assert resolve_gain("tanh", "relu", 0.01).value == 5 / 3
    assert resolve_gain("leaky_relu", "relu", 0.2).value == nn.init.calculate_gain("leaky_relu", 0.2)
    assert resolve_gain(2.5, "relu", 0.01).value == 2.5
    assert resolve_gain("auto", "selu", 0.01).value == 0.75
    assert resolve_gain(None, "relu", 0.01) is None
    for bad in ("-1", "banana", "nan", "inf"):
        with pytest.raises(ConfigError, match="gain"):
            resolve_gain(bad, "relu", 0.01)


def test_numeric_gain_equals_torch_where_torch_has_the_exact_value():
    # For ReLU the variance-preserving gain is exactly torch's sqrt(2).
    assert variance_preserving_gain("relu") == pytest.approx(math.sqrt(2), rel=1e-10)


def test_auto_gain_for_gelu_is_computed_and_says_so():
    g = resolve_gain("auto", "gelu", 0.01)
    z = torch.randn(4_000_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    monte_carlo = 1 / torch.nn.functional.gelu(z).pow(2).mean().sqrt().item()
    assert g.value == pytest.approx(monte_carlo, rel=2e-3)
    assert "numeric" in g.source


def test_mode_and_gain_are_rejected_by_schemes_that_take_none():
    with pytest.raises(ConfigError, match="takes no fan mode"):
        run((8, 8), "normal", mode=FanMode.fan_out)
    with pytest.raises(ConfigError, match="takes no gain"):
        run((8, 8), "lecun", gain=Gain(1.0, "number"))


def test_conv_only_schemes_reject_models_without_convolutions():
    for scheme in ("dirac", "delta_orthogonal"):
        with pytest.raises(ConfigError, match="convolutions"):
            run((8, 8), scheme)


def mlp(depth=6, width=64, **kw):
    cfg = OmegaConf.structured(MLPConfig(depth=depth, width=width, **kw))
    return build_model(cfg, [1, 8, 8], 10)


def test_biases_and_norm_layers_follow_the_config():
    model = mlp(norm="batch")
    initialize(model, "kaiming", bias="constant", bias_val=0.3, norm_weight=0.5)
    assert all((m.weight == 0.5).all() and (m.bias == 0).all() for m in model.modules() if isinstance(m, nn.BatchNorm1d))
    assert (model.layers[-1].bias == 0.3).all()
    model = mlp()
    initialize(model, "kaiming")
    assert all((m.bias == 0).all() for m in model.modules() if isinstance(m, nn.Linear))


def test_lsuv_brings_every_layer_to_unit_output_variance():
    model = mlp(depth=8, activation="tanh")
    records = initialize(model, "lsuv", tol=0.02, max_iter=20)
    batch = torch.randn(256, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    lsuv_rescale(model, batch, records, tol=0.02, max_iter=20)
    weights = [r for r in records if r.param == "weight"]
    assert len(weights) == 8
    for r in weights:
        assert abs(r.lsuv_out_var - 1) < 0.02
    # the recorded variance is the real one
    out = {}
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: out.__setitem__(n, o.var().item()))
             for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    model.eval()
    with torch.no_grad():
        model(batch)
    for h in hooks:
        h.remove()
    for r in weights:
        assert out[r.layer] == pytest.approx(r.lsuv_out_var, rel=1e-5)


def test_zero_residual_makes_every_block_start_as_identity():
    cfg = OmegaConf.structured(ResNetConfig(depth=8, width=4, norm="none"))
    model = build_model(cfg, [3, 8, 8], 10)
    initialize(model, "kaiming", zero_residual=True)
    x = torch.randn(2, 4, 8, 8)
    block = model.stages[0][0]
    assert torch.equal(block(x), block.act(x))


def test_lazy_model_is_initialised_after_materialisation():
    model = mlp(lazy=True, depth=3, width=32)
    records = initialize(model, "xavier")
    assert records[0].shape == [32, 64] and records[0].fan_in == 64
    assert isinstance(model.layers[0], nn.Linear)
