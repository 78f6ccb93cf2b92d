"""Datasets as tensors on the training device; batches are index slices, never per-sample Python."""

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor



class DatasetSpec(NamedTuple):
    input_shape: list[int]
    num_classes: int
    train_size: int  # examples in the training split
    test_size: int


# The datasets initlab offers, None for synthetic (its config says). Known before any data is
# loaded, so models and init are built and every value validated first.
DATASETS: dict[str, DatasetSpec | None] = {
    "mnist": DatasetSpec([1, 28, 28], 10, 60_000, 10_000),
    "fashion_mnist": DatasetSpec([1, 28, 28], 10, 60_000, 10_000),
    "cifar10": DatasetSpec([3, 32, 32], 10, 50_000, 10_000),
    "cifar100": DatasetSpec([3, 32, 32], 100, 50_000, 10_000),
    "synthetic": None,
}


def spec_of(cfg) -> DatasetSpec:
    """The `data` config's dataset: shape (images at data.resize), classes and split sizes,
    without loading it."""
    spec = DATASETS[cfg.name.value] or DatasetSpec(list(cfg.input_shape), cfg.num_classes, cfg.train_size,
                                                    cfg.test_size)
    if cfg.resize is None:
        return spec
    return spec._replace(input_shape=[spec.input_shape[0], cfg.resize, cfg.resize])


@dataclass
class Data:
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor

    @property
    def num_train(self) -> int:
        return len(self.y_train)


def load_data(cfg, device: torch.device) -> Data:
    """Load both splits once, normalise with the training split's per-channel mean/std."""
    if cfg.name.value == "synthetic":
        x_train, y_train, x_test, y_test = _synthetic(cfg)
    else:
        # Imported here: torchvision takes seconds to import, which a typo's one-line error or an
        # init-only run should not wait for.
        from initlab.data.sources import open_split

        x_train, y_train = _split_tensors(open_split(cfg.name.value, cfg.root, True, cfg.download))
        x_test, y_test = _split_tensors(open_split(cfg.name.value, cfg.root, False, cfg.download))
    if cfg.subset is not None:
        x_train, y_train = x_train[: cfg.subset], y_train[: cfg.subset]
    if cfg.resize is not None:  # each output pixel the mean of the input pixels it covers
        x_train, x_test = (F.interpolate(x, size=(cfg.resize, cfg.resize), mode="area") for x in (x_train, x_test))
    dims = [0, *range(2, x_train.dim())]  # all but the channel axis
    mean, std = x_train.mean(dims, keepdim=True), x_train.std(dims, keepdim=True).clamp_min(1e-8)
    normalise = lambda x: ((x - mean) / std).to(device)  # noqa: E731
    return Data(normalise(x_train), y_train.to(device), normalise(x_test), y_test.to(device))


def check_available(cfg) -> None:
    """Raise DatasetNotFound (one line) unless the `data` config's dataset can be read here,
    downloading it where allowed: train.py checks this before a run makes its folder, so a run
    that cannot start leaves nothing behind. Reads the smaller split, the test split: every
    source holds both (data.root and the system folder hold the dataset's files; torchvision
    downloads all of them at once)."""
    if cfg.name.value != "synthetic":
        from initlab.data.sources import open_split  # torchvision: seconds to import

        open_split(cfg.name.value, cfg.root, train=False, download=cfg.download)


def _split_tensors(dataset) -> tuple[Tensor, Tensor]:
    """uint8 images as float [N, C, H, W] in [0, 1], labels as int64."""
    images = torch.as_tensor(np.asarray(dataset.data))
    images = images.unsqueeze(1) if images.dim() == 3 else images.permute(0, 3, 1, 2)  # MNIST | CIFAR
    return images.float().div_(255), torch.as_tensor(dataset.targets, dtype=torch.long)


def _synthetic(cfg) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Gaussian inputs labelled by a fixed random teacher (seed 0, whatever the run's seed)."""
    g = torch.Generator().manual_seed(0)
    features = int(np.prod(cfg.input_shape))
    w1 = torch.randn(features, 64, generator=g) / features**0.5
    w2 = torch.randn(64, cfg.num_classes, generator=g) / 8.0
    x = torch.randn(cfg.train_size + cfg.test_size, *cfg.input_shape, generator=g)
    y = (torch.tanh(x.flatten(1) @ w1) @ w2).argmax(1)
    n = cfg.train_size
    return x[:n], y[:n], x[n:], y[n:]
