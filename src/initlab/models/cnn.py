"""A plain convolutional stack at constant resolution, with a global-average-pooled head."""

from torch import Tensor, nn

from initlab.activations import activation_module
from initlab.models.layers import Norm, conv, linear, norm


class CNN(nn.Module):
    """(depth - 1) x [Conv, norm, activation], global average pool, then a Linear head.

    Stride 1 and 'same' padding throughout (model.padding: zeros, or circular as in convolutional
    mean field), so dirac and delta-orthogonal kernels make each conv an exact (orthogonal) map
    of the centre pixel at init.
    """

    MIN_DEPTH = 2

    def __init__(self, cfg, input_shape: list[int], num_classes: int) -> None:
        super().__init__()
        hidden_bias = cfg.bias and cfg.norm is Norm.none
        layers: list[nn.Module] = []
        channels = input_shape[0]
        for _ in range(cfg.depth - 1):
            layers.append(conv(channels, cfg.channels, cfg.kernel, 1, hidden_bias, cfg.lazy, cfg.padding))
            layers += [*norm(cfg.norm, cfg.channels, conv=True), activation_module(cfg.activation.value, cfg.negative_slope)]
            channels = cfg.channels
        self.layers = nn.Sequential(*layers)
        self.head = linear(channels, num_classes, cfg.bias, cfg.lazy)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.layers(x).mean(dim=(2, 3)))
