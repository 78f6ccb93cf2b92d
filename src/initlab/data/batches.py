"""Training batches by step number: an on-device permutation per epoch, sliced.

Every random choice is derived from (seed, epoch) or (seed, step), so a run resumed from
a checkpoint at step s draws exactly the batches the uninterrupted run would have.
"""

import torch
import torch.nn.functional as F
from torch import Tensor

from initlab.data import Data


class Batches:
    def __init__(self, data: Data, batch_size: int, seed: int, augment: bool) -> None:
        self.data, self.batch_size, self.seed, self.augment = data, batch_size, seed, augment
        self.steps_per_epoch = max(1, data.num_train // batch_size)  # the last partial batch is dropped
        self._epoch, self._perm = -1, None
        self._generator = torch.Generator(data.x_train.device)

    def __call__(self, step: int) -> tuple[Tensor, Tensor]:
        idx = self.indices(step)
        x = self.data.x_train[idx]
        if self.augment:
            self._generator.manual_seed((self.seed * 1_000_003 + 7_919 * step + 1) % 2**64)
            x = crop_and_flip(x, self._generator)
        return x, self.data.y_train[idx]

    def indices(self, step: int) -> Tensor:
        """The training examples of batch `step` (before augmentation)."""
        epoch, index = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            self._generator.manual_seed((self.seed * 1_000_003 + epoch) % 2**64)  # any seed torch takes
            self._perm = torch.randperm(self.data.num_train, device=self.data.x_train.device, generator=self._generator)
            self._epoch = epoch
        return self._perm[index * self.batch_size : (index + 1) * self.batch_size]


def stacked_batch(batches: list[Batches], step: int) -> tuple[Tensor, Tensor]:
    """Batch `step` of K runs: inputs [K, B, ...] and labels [K, B], run k's own at k (each its
    own crop and flip where augmented); unaugmented, one gather for all runs."""
    if batches[0].augment:
        xs, ys = zip(*(b(step) for b in batches))
        return torch.stack(xs), torch.stack(ys)
    idx = torch.stack([b.indices(step) for b in batches])  # [K, B]
    x = batches[0].data.x_train
    return x.index_select(0, idx.flatten()).unflatten(0, idx.shape), batches[0].data.y_train[idx]


def crop_and_flip(x: Tensor, g: torch.Generator, pad: int = 4) -> Tensor:
    """The standard CIFAR augmentation, batched on the device: random crop after zero
    padding by `pad`, then a horizontal flip with probability 1/2."""
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy, dx = (torch.randint(0, 2 * pad + 1, (2, n), device=x.device, generator=g))
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    crops = padded[torch.arange(n, device=x.device)[:, None, None, None], torch.arange(x.shape[1], device=x.device)[None, :, None, None], rows, cols]
    flip = torch.rand(n, device=x.device, generator=g) < 0.5
    return torch.where(flip[:, None, None, None], crops.flip(3), crops)
