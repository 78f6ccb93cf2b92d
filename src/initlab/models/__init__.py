"""Model builders: `build_model(cfg.model, input_shape, num_classes)`."""

import torch
from torch import nn

from initlab.models.cnn import CNN
from initlab.models.mlp import MLP
from initlab.models.resnet import ResNet

# The model names initlab offers: `model=<name>` builds with this class.
BUILDERS = {"mlp": MLP, "cnn": CNN, "resnet": ResNet}
__all__ = ["BUILDERS", "CNN", "MLP", "ResNet", "build_model"]


def build_model(cfg, input_shape: list[int], num_classes: int) -> nn.Module:
    """Build on the CPU; lazy modules are materialised by one forward pass of zeros."""
    model = BUILDERS[cfg.name](cfg, list(input_shape), num_classes)
    if cfg.lazy:
        model.eval()  # keep BatchNorm's running statistics untouched by the dummy batch
        with torch.no_grad():
            model(torch.zeros(2, *input_shape))
        model.train()
    return model
