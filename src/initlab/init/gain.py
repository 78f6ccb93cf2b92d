"""Gain: a number, a nonlinearity's recommended gain, or `auto` from the model's activation."""

import math
from dataclasses import dataclass

import torch

from initlab.activations import ACTIVATIONS
from initlab.theory import second_moment
from initlab.errors import ConfigError, choices, did_you_mean

# Nonlinearities torch.nn.init.calculate_gain knows: the activations' torch names, plus conv.
TORCH_GAINS = tuple(dict.fromkeys([*(a.torch_gain for a in ACTIVATIONS.values() if a.torch_gain),
                                   "conv1d", "conv2d", "conv3d"]))


@dataclass(frozen=True)
class Gain:
    value: float
    source: str  # how it was obtained, for init.json and the init table


def variance_preserving_gain(activation: str) -> float:
    """1 / sqrt(E[phi(z)^2]) for z ~ N(0, 1): the gain that keeps the second moment of
    pre-activations fixed from layer to layer in a wide network (the mean-field q* = 1
    condition); for ReLU it gives sqrt(2)."""
    return 1.0 / math.sqrt(second_moment(activation, 1.0))


def resolve_gain(value: str | float | None, activation: str, negative_slope: float) -> Gain | None:
    """Turn the top-level `gain` value into a number; None means 'the scheme's default'."""
    if value is None:
        return None
    text = str(value).strip()
    if text == "auto":
        return _activation_gain(activation, negative_slope)
    if text in TORCH_GAINS:
        return _torch_gain(text, negative_slope, "")
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number < 0:
        raise ConfigError("gain", value, did_you_mean(text, TORCH_GAINS) + "a finite number >= 0, auto, or a "
                          "nonlinearity; " + choices(TORCH_GAINS))
    return Gain(number, "number")


def _activation_gain(activation: str, negative_slope: float) -> Gain:
    """torch's gain where it recommends one; else the variance-preserving gain by quadrature."""
    if activation not in ACTIVATIONS:
        raise ConfigError("model.activation", activation, choices(ACTIVATIONS))
    torch_name = ACTIVATIONS[activation].torch_gain
    if torch_name:
        return _torch_gain(torch_name, negative_slope, "auto: ")
    return Gain(variance_preserving_gain(activation), f"auto: numeric 1/sqrt(E[{activation}(z)^2])")


def _torch_gain(name: str, negative_slope: float, source_prefix: str) -> Gain:
    """torch's calculate_gain; leaky_relu's gain uses the model's slope."""
    param = negative_slope if name == "leaky_relu" else None
    return Gain(float(torch.nn.init.calculate_gain(name, param)), f"{source_prefix}calculate_gain({name})")
