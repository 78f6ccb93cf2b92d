"""Where torch.nn.init defines a scheme, initlab's tensors are bit-identical to torch's."""

import math

import pytest
import torch
from torch import nn

from conftest import layer_for
from initlab.init.apply import initialize
from initlab.init.fan import FanMode, fans
from initlab.init.gain import Gain, resolve_gain

SHAPES = [(64, 32), (16, 8, 3, 3), (8, 4, 5), (6, 3, 3, 3, 3), (3, 48, 11, 11)]
GAIN_NAMES = ["relu", "tanh", "linear", "sigmoid", "selu", "leaky_relu"]


def ours(shape, scheme, seed=7, mode=None, gain=None, **params):
    model = layer_for(shape)
    initialize(model, scheme, mode=mode, gain=gain, generator=torch.Generator().manual_seed(seed), **params)
    return model[0].weight.detach()


def theirs(shape, fill, seed=7):
    w = torch.empty(shape)
    fill(w, torch.Generator().manual_seed(seed))
    return w


def test_fan_of_a_conv_weight_multiplies_the_receptive_field():
    assert fans(torch.empty(3, 48, 11, 11)) == (5808, 363)
    assert fans(torch.empty(10, 20)) == (20, 10)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
@pytest.mark.parametrize("nonlinearity", GAIN_NAMES)
@pytest.mark.parametrize("dist", ["normal", "uniform"])
def test_kaiming_matches_torch_bit_for_bit(shape, mode, nonlinearity, dist):
    slope = 0.2
    gain = resolve_gain(nonlinearity, "relu", negative_slope=slope)
    fill = getattr(nn.init, f"kaiming_{dist}_")
    expected = theirs(shape, lambda w, g: fill(w, a=slope, mode=mode, nonlinearity=nonlinearity, generator=g))
    got = ours(shape, "kaiming", mode=FanMode(mode), gain=gain, distribution=dist)
    assert torch.equal(got, expected)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dist", ["normal", "uniform"])
@pytest.mark.parametrize("a", [0.0, 0.1, math.sqrt(5)])
def test_kaiming_default_gain_is_torch_default_leaky_relu_with_slope_a(shape, dist, a):
    fill = getattr(nn.init, f"kaiming_{dist}_")
    expected = theirs(shape, lambda w, g: fill(w, a=a, generator=g))
    assert torch.equal(ours(shape, "kaiming", distribution=dist, a=a), expected)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("gain", [1.0, 0.5, math.sqrt(2.0), 5.0 / 3])
@pytest.mark.parametrize("dist", ["normal", "uniform"])
def test_xavier_matches_torch_bit_for_bit(shape, gain, dist):
    fill = getattr(nn.init, f"xavier_{dist}_")
    expected = theirs(shape, lambda w, g: fill(w, gain=gain, generator=g))
    got = ours(shape, "xavier", gain=Gain(gain, "number"), distribution=dist)
    assert torch.equal(got, expected)
    assert torch.equal(ours(shape, "xavier", mode=FanMode.fan_avg, gain=Gain(gain, "number"), distribution=dist), expected)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("gain", [1.0, 0.7, math.sqrt(2.0)])
def test_orthogonal_matches_torch_bit_for_bit(shape, gain):
    expected = theirs(shape, lambda w, g: nn.init.orthogonal_(w, gain, generator=g))
    assert torch.equal(ours(shape, "orthogonal", gain=Gain(gain, "number")), expected)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(
    "scheme, params, fill",
    [
        ("uniform", {"a": -0.3, "b": 0.5}, lambda w, g: nn.init.uniform_(w, -0.3, 0.5, generator=g)),
        ("normal", {"mean": 0.1, "std": 0.02}, lambda w, g: nn.init.normal_(w, 0.1, 0.02, generator=g)),
        ("trunc_normal", {"mean": 0.0, "std": 0.5, "a": -0.6, "b": 0.8},
         lambda w, g: nn.init.trunc_normal_(w, 0.0, 0.5, -0.6, 0.8, generator=g)),
        ("constant", {"val": 0.25}, lambda w, g: nn.init.constant_(w, 0.25)),
        ("ones", {}, lambda w, g: nn.init.ones_(w)),
        ("zeros", {}, lambda w, g: nn.init.zeros_(w)),
    ],
)
def test_elementwise_schemes_match_torch(shape, scheme, params, fill):
    assert torch.equal(ours(shape, scheme, **params), theirs(shape, fill))


def test_eye_and_sparse_match_torch_on_linear_weights():
    shape = (40, 30)
    assert torch.equal(ours(shape, "eye"), theirs(shape, lambda w, g: nn.init.eye_(w)))
    # sparse_ draws its zero positions from the global RNG, so seed that too, after the
    # layer is built (its own default init consumes that RNG).
    model = layer_for(shape)
    torch.manual_seed(3)
    initialize(model, "sparse", sparsity=0.3, std=0.05, generator=torch.Generator().manual_seed(7))
    got = model[0].weight.detach()
    torch.manual_seed(3)
    expected = theirs(shape, lambda w, g: nn.init.sparse_(w, 0.3, 0.05, generator=g))
    assert torch.equal(got, expected)


@pytest.mark.parametrize("shape", [(16, 8, 3, 3), (8, 8, 5), (4, 2, 3, 3, 3)])
@pytest.mark.parametrize("groups", [1, 2])
def test_dirac_matches_torch(shape, groups):
    assert torch.equal(ours(shape, "dirac", groups=groups), theirs(shape, lambda w, g: nn.init.dirac_(w, groups)))


def user_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(inplace=True), nn.Flatten(),
                         nn.Linear(8 * 6 * 6, 10), nn.LayerNorm(10))


def test_default_leaves_every_parameter_as_torch_drew_it_unless_zero_biases_are_asked():
    model, fresh = user_model(0), user_model(0)
    records = initialize(model, "default")
    assert {r.scheme for r in records if r.param == "bias" and r.fan_in} == {"bias:default"}
    for (name, got), expected in zip(model.state_dict().items(), fresh.state_dict().values(), strict=True):
        assert torch.equal(got, expected), name
    initialize(model, "default", bias="zeros")
    assert (model[0].bias == 0).all() and (model[4].bias == 0).all()
    assert torch.equal(model[0].weight, fresh[0].weight) and torch.equal(model[4].weight, fresh[4].weight)
