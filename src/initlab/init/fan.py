"""Fan computation: torch's own definition, plus fan_avg."""

import torch
from torch import Tensor

from initlab.init.params import FanMode


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
