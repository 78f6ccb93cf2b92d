"""CIFAR ResNets (He et al. 2016, section 4.2): depth 6n + 2, three stages of n basic blocks."""

from torch import Tensor, nn

from initlab.activations import activation_module
from initlab.models.layers import ChannelPad, Norm, conv, linear, norm


class BasicBlock(nn.Module):
    """out = act(branch(x) + shortcut(x)). The branch is exposed as `.branch` for init; the shortcut
    is the identity, or option A (ChannelPad) where the block downsamples."""

    def __init__(self, cfg, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        bias = cfg.bias and cfg.norm is Norm.none
        act = lambda: activation_module(cfg.activation.value, cfg.negative_slope)  # noqa: E731
        self.branch = nn.Sequential(
            conv(in_ch, out_ch, 3, stride, bias, cfg.lazy), *norm(cfg.norm, out_ch, conv=True), act(),
            conv(out_ch, out_ch, 3, 1, bias, cfg.lazy), *norm(cfg.norm, out_ch, conv=True),
        )
        extra = out_ch - in_ch
        self.shortcut = ChannelPad(stride, extra) if stride != 1 or extra else nn.Identity()
        self.act = act()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.branch(x) + self.shortcut(x))


class ResNet(nn.Module):
    """6n + 2 weight layers: a stem conv, 3 stages of n blocks (2 convs each), a Linear head."""

    MIN_DEPTH = 8
    DEPTHS = "6n + 2: 8, 14, 20, 32, 44, 56, 110"  # the only place ResNet depths are listed

    @staticmethod
    def depth_ok(depth: int) -> bool:
        return depth >= ResNet.MIN_DEPTH and (depth - 2) % 6 == 0

    def __init__(self, cfg, input_shape: list[int], num_classes: int) -> None:
        super().__init__()
        blocks_per_stage = (cfg.depth - 2) // 6
        bias = cfg.bias and cfg.norm is Norm.none
        self.stem = nn.Sequential(
            conv(input_shape[0], cfg.width, 3, 1, bias, cfg.lazy), *norm(cfg.norm, cfg.width, conv=True),
            activation_module(cfg.activation.value, cfg.negative_slope),
        )
        stages, channels = [], cfg.width
        for stage in range(3):
            out_ch = cfg.width * 2**stage
            blocks = [BasicBlock(cfg, channels if i == 0 else out_ch, out_ch, 2 if stage and i == 0 else 1)
                      for i in range(blocks_per_stage)]
            stages.append(nn.Sequential(*blocks))
            channels = out_ch
        self.stages = nn.Sequential(*stages)
        self.head = linear(channels, num_classes, cfg.bias, cfg.lazy)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.stages(self.stem(x)).mean(dim=(2, 3)))
