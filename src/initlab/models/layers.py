"""Building blocks shared by the model builders: norms, (lazy) weight layers, the residual shortcut."""

import torch.nn.functional as F
from torch import Tensor, nn

from initlab.config import Norm, Padding


def norm(kind: Norm, features: int, conv: bool) -> list[nn.Module]:
    """[] for none; LayerNorm on a conv map normalises over (C, H, W), i.e. GroupNorm(1, C)."""
    if kind is Norm.none:
        return []
    if kind is Norm.batch:
        return [nn.BatchNorm2d(features) if conv else nn.BatchNorm1d(features)]
    return [nn.GroupNorm(1, features) if conv else nn.LayerNorm(features)]


def linear(in_features: int, out_features: int, bias: bool, lazy: bool) -> nn.Module:
    return nn.LazyLinear(out_features, bias=bias) if lazy else nn.Linear(in_features, out_features, bias=bias)


def conv(in_ch: int, out_ch: int, kernel: int, stride: int, bias: bool, lazy: bool,
         padding: Padding = Padding.zeros) -> nn.Module:
    """A 'same'-padded conv (odd kernel): spatial size changes only through the stride."""
    if lazy:
        return nn.LazyConv2d(out_ch, kernel, stride, kernel // 2, bias=bias, padding_mode=padding.value)
    return nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, bias=bias, padding_mode=padding.value)


class ChannelPad(nn.Module):
    """He et al.'s parameter-free shortcut (option A): subsample by `stride`, then zero-pad
    `extra` new channels."""

    def __init__(self, stride: int, extra: int) -> None:
        super().__init__()
        self.stride, self.extra = stride, extra

    def forward(self, x: Tensor) -> Tensor:
        return F.pad(x[:, :, :: self.stride, :: self.stride], (0, 0, 0, 0, 0, self.extra))
