"""Building blocks shared by the model builders: norms, (lazy) weight layers."""

from enum import Enum

from torch import nn


class Norm(str, Enum):
    none = "none"
    batch = "batch"
    layer = "layer"


def norm(kind: Norm, features: int, conv: bool) -> list[nn.Module]:
    """[] for none; LayerNorm on a conv map normalises over (C, H, W), i.e. GroupNorm(1, C)."""
    if kind is Norm.none:
        return []
    if kind is Norm.batch:
        return [nn.BatchNorm2d(features) if conv else nn.BatchNorm1d(features)]
    return [nn.GroupNorm(1, features) if conv else nn.LayerNorm(features)]


def linear(in_features: int, out_features: int, bias: bool, lazy: bool) -> nn.Module:
    return nn.LazyLinear(out_features, bias=bias) if lazy else nn.Linear(in_features, out_features, bias=bias)


def conv(in_ch: int, out_ch: int, kernel: int, stride: int, bias: bool, lazy: bool) -> nn.Module:
    """A 'same'-padded conv (odd kernel): spatial size changes only through the stride."""
    if lazy:
        return nn.LazyConv2d(out_ch, kernel, stride, kernel // 2, bias=bias)
    return nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, bias=bias)
