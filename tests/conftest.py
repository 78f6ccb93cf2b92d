"""Shared fixtures: scheme configs as the trainer sees them, and one-layer models."""

import os

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from initlab.init.schemes import SCHEMES

os.environ.setdefault("WANDB_SILENT", "true")


def init_cfg(scheme: str, **params):
    """The `init` config node for a scheme, typed exactly as Hydra composes it."""
    return OmegaConf.structured(SCHEMES[scheme].params(**params))


def layer_for(shape: tuple[int, ...]) -> nn.Module:
    """A bias-free Linear or Conv layer whose weight has `shape`, inside a Sequential."""
    if len(shape) == 2:
        layer = nn.Linear(shape[1], shape[0], bias=False)
    else:
        conv = {3: nn.Conv1d, 4: nn.Conv2d, 5: nn.Conv3d}[len(shape)]
        layer = conv(shape[1], shape[0], shape[2:], bias=False)
    return nn.Sequential(layer)


@pytest.fixture
def generator():
    return torch.Generator().manual_seed(1234)
