"""Fan computation: torch's own definition, plus fan_avg."""

from enum import Enum

import torch
from torch import Tensor


class FanMode(str, Enum):
    """Which fan scales the variance: fan_in keeps the forward pass, fan_out the backward pass."""

    fan_in = "fan_in"
    fan_out = "fan_out"
    fan_avg = "fan_avg"


def fans(weight: Tensor) -> tuple[int, int]:
    """(fan_in, fan_out) exactly as torch.nn.init computes them.

    For a conv weight ``[out, in, *k]`` the receptive field ``prod(k)`` multiplies both.
    We call torch's private helper on purpose: it *is* the definition we must match.
    """
    return torch.nn.init._calculate_fan_in_and_fan_out(weight)


def fan_for(mode: FanMode, fan_in: int, fan_out: int) -> float:
    """The fan a scheme divides by; fan_avg = (fan_in + fan_out) / 2 (Glorot's average)."""
    if mode is FanMode.fan_in:
        return fan_in
    if mode is FanMode.fan_out:
        return fan_out
    return (fan_in + fan_out) / 2
