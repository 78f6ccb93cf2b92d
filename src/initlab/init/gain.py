"""Gain: a number, a nonlinearity's recommended gain, or `auto` from the model's activation."""

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from initlab.errors import ConfigError, choices

# Nonlinearities torch.nn.init.calculate_gain knows.
TORCH_GAINS = ("linear", "conv1d", "conv2d", "conv3d", "sigmoid", "tanh", "relu", "leaky_relu", "selu")

# Activations without a torch gain; `auto` computes theirs numerically.
_ELEMENTWISE = {
    "gelu": F.gelu,
    "silu": F.silu,
    "elu": F.elu,
    "softplus": F.softplus,
    "mish": F.mish,
}


@dataclass(frozen=True)
class Gain:
    value: float
    source: str  # how it was obtained, for init.json and the init table


def variance_preserving_gain(activation: str, points: int = 200) -> float:
    """1 / sqrt(E[phi(z)^2]) for z ~ N(0, 1), by Gauss-Hermite quadrature.

    This is the gain that keeps the second moment of pre-activations fixed from layer to
    layer in a wide network (the mean-field q* = 1 condition); for ReLU it gives sqrt(2).
    """
    z, w = np.polynomial.hermite_e.hermegauss(points)
    phi = _ELEMENTWISE[activation](torch.from_numpy(z)).numpy()
    second_moment = float(np.sum(w * phi**2) / math.sqrt(2 * math.pi))
    return 1.0 / math.sqrt(second_moment)


def resolve_gain(value: str | float | None, activation: str, negative_slope: float) -> Gain | None:
    """Turn the top-level `gain` value into a number; None means 'the scheme's default'."""
    if value is None:
        return None
    text = str(value).strip()
    if text == "auto":
        return _activation_gain(activation, negative_slope)
    if text in TORCH_GAINS:
        param = negative_slope if text == "leaky_relu" else None
        return Gain(float(torch.nn.init.calculate_gain(text, param)), f"calculate_gain({text})")
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number < 0:
        raise ConfigError("gain", value, "a non-negative number, auto, or a nonlinearity; " + choices(TORCH_GAINS))
    return Gain(number, "number")


def _activation_gain(activation: str, negative_slope: float) -> Gain:
    if activation in TORCH_GAINS:
        param = negative_slope if activation == "leaky_relu" else None
        return Gain(float(torch.nn.init.calculate_gain(activation, param)), f"auto: calculate_gain({activation})")
    if activation in _ELEMENTWISE:
        return Gain(variance_preserving_gain(activation), f"auto: numeric 1/sqrt(E[{activation}(z)^2])")
    raise ConfigError("model.activation", activation, choices([*TORCH_GAINS, *_ELEMENTWISE]))
