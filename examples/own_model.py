"""initlab as a library: initialise your own model with a registry scheme and watch its
per-layer signal in your own training loop. CPU, synthetic data, a few seconds:

    python examples/own_model.py

What it shows: at step 0 the residual sums grow the signal to act_var/head in the hundreds
(kaiming keeps each branch's variance, not the sum's), and later half the units of a block's
ReLU are dead; both read straight off the probe.
"""

import torch
import torch.nn.functional as F
from torch import nn

import initlab


class ResidualMLP(nn.Module):
    """A model initlab does not build: an input layer, residual ReLU blocks, a classifier."""

    def __init__(self, features: int, width: int, blocks: int, classes: int) -> None:
        super().__init__()
        self.stem = nn.Linear(features, width)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(width, width), nn.ReLU(inplace=True), nn.Linear(width, width))
            for _ in range(blocks)
        )
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.stem(x))
        for block in self.blocks:
            h = torch.relu(h + block(h))
        return self.head(h)


def teacher_data(n: int, features: int, classes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian inputs labelled by a fixed random linear teacher: learnable, no download."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=g)
    teacher = torch.randn(features, classes, generator=torch.Generator().manual_seed(0))
    return x, (x @ teacher).argmax(1)


def main(steps: int = 300, log_every: int = 100) -> dict[str, float]:
    torch.manual_seed(0)
    model = ResidualMLP(features=32, width=128, blocks=4, classes=5)
    records = initlab.initialize(model, "kaiming", mode="fan_out", gain="relu", distribution="uniform")
    print(initlab.format_table(records))

    x, y = teacher_data(4096, 32, 5, seed=1)
    x_test, y_test = teacher_data(1024, 32, 5, seed=2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    probe = initlab.Probe(model)
    for step in range(steps + 1):
        batch = torch.randint(0, len(x), (128,), generator=torch.Generator().manual_seed(step))
        with probe.capture():  # cheap enough for every step: statistics stay on the device
            loss = F.cross_entropy(model(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
        if step % log_every == 0:
            stats = probe.floats()  # one host sync for all layers
            shown = ("act_var/stem", "act_var/head", "grad_var/stem", "grad_var/head", "dead_frac/blocks.0.0")
            print(f"step {step:4d}  loss {loss.item():.3f}  " + "  ".join(f"{k}={stats[k]:.3g}" for k in shown))
        optimizer.step()

    with torch.no_grad():
        accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
    print(f"test accuracy {accuracy:.3f} (chance 0.2)")
    return {"loss": loss.item(), "test_acc": accuracy, **stats}


if __name__ == "__main__":
    # One thread: the matrices here (128 x 128) are too small to split, and torch's threads, waiting
    # on each other at each of the loop's thousands of tiny operations, took minutes on a busy 2-core
    # machine where one thread takes 5 s.
    torch.set_num_threads(1)
    main()
