"""A plain fully connected network: the classic setting of the initialization literature."""

import math

from torch import Tensor, nn

from initlab.activations import activation_module
from initlab.models.layers import Norm, linear, norm


class MLP(nn.Module):
    """depth weight layers: (depth - 1) x [Linear, norm, activation], then the output Linear.

    Layers before a norm layer carry no bias (the norm's shift replaces it).
    """

    MIN_DEPTH = 1

    def __init__(self, cfg, input_shape: list[int], num_classes: int) -> None:
        super().__init__()
        hidden_bias = cfg.bias and cfg.norm is Norm.none
        layers: list[nn.Module] = []
        features = math.prod(input_shape)
        for _ in range(cfg.depth - 1):
            layers += [linear(features, cfg.width, hidden_bias, cfg.lazy), *norm(cfg.norm, cfg.width, conv=False)]
            layers.append(activation_module(cfg.activation.value, cfg.negative_slope))
            features = cfg.width
        layers.append(linear(features, num_classes, cfg.bias, cfg.lazy))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x.flatten(1))
