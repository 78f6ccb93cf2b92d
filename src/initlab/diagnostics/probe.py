"""Per-layer signal statistics: the forward signal, the backward gradient, the weights.

Hooks exist only while `capture()` is open (logging steps); every statistic stays a device
tensor until `to_floats` turns a whole record into numbers with one host sync.
"""

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from initlab.activations import RECTIFIER_MODULES
from initlab.init.apply import WEIGHT_LAYERS


class LayerProbe:
    """Statistics for every module that owns parameters (Linear, Conv, norm layers)."""

    def __init__(self, model: nn.Module) -> None:
        self.layers = {name: m for name, m in model.named_modules() if next(m.parameters(False), None) is not None}
        self.rectifiers = _rectifier_owners(model)
        self.stats: dict[str, Tensor] = {}

    @contextmanager
    def capture(self) -> Iterator[None]:
        """Record act_mean/act_var of each layer's output, grad_var of the gradient flowing back
        into that output (Glorot & Bengio's back-propagated gradient), and dead_frac."""
        self.stats = {}
        handles = [m.register_forward_hook(self._output_hook(name)) for name, m in self.layers.items()]
        handles += [m.register_full_backward_hook(self._grad_hook(name)) for name, m in self.layers.items()]
        handles += [m.register_forward_hook(self._dead_hook(owner)) for m, owner in self.rectifiers]
        try:
            with warnings.catch_warnings():
                # The first layer's input is data, which needs no gradient: torch warns that its
                # hook sees only the output gradient, which is exactly what grad_var wants.
                warnings.filterwarnings("ignore", message="Full backward hook is firing when gradients")
                yield
        finally:
            for h in handles:
                h.remove()

    def _output_hook(self, name: str):
        def hook(module: nn.Module, inputs, out: Tensor) -> None:
            out = out.detach().float()
            self.stats[f"act_mean/{name}"] = out.mean()
            self.stats[f"act_var/{name}"] = out.var(correction=0)  # over batch and units, as Glorot/He

        return hook

    def _grad_hook(self, name: str):
        def hook(module: nn.Module, grad_input, grad_output) -> None:
            self.stats[f"grad_var/{name}"] = grad_output[0].detach().float().var(correction=0)

        return hook

    def _dead_hook(self, owner: str):
        def hook(module: nn.Module, inputs, out: Tensor) -> None:
            # A unit (feature or channel) is dead when it is <= 0 for every example (and position).
            alive = (out.detach() > 0).transpose(0, 1).flatten(1).any(1)
            self.stats[f"dead_frac/{owner}"] = 1.0 - alive.float().mean()

        return hook

    def grad_norms(self) -> dict[str, Tensor]:
        grads = {n: [p.grad for p in m.parameters(False) if p.grad is not None] for n, m in self.layers.items()}
        return {f"grad_norm/{n}": _norm(g) for n, g in grads.items() if g}

    def weight_norms(self) -> dict[str, Tensor]:
        return {f"weight_norm/{n}": _norm(list(m.parameters(False))) for n, m in self.layers.items()}

    def snapshot(self) -> dict[str, list[Tensor]]:
        return {n: [p.detach().clone() for p in m.parameters(False)] for n, m in self.layers.items()}

    def update_ratios(self, before: dict[str, list[Tensor]]) -> dict[str, Tensor]:
        """|W_after - W_before| / |W_before| for the update just applied."""
        ratios = {}
        for n, m in self.layers.items():
            delta = _norm([p.detach() - b for p, b in zip(m.parameters(False), before[n])])
            ratios[f"update_ratio/{n}"] = delta / _norm(before[n]).clamp_min(1e-12)
        return ratios


def _norm(tensors: list[Tensor]) -> Tensor:
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t.float()) for t in tensors]))


def _rectifier_owners(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """Each ReLU-family module, paired with the weight layer that feeds it (the nearest one
    before it in module order, which is data-flow order for Sequential-built models)."""
    owners, last = [], None
    for name, m in model.named_modules():
        if isinstance(m, WEIGHT_LAYERS):
            last = name
        elif isinstance(m, RECTIFIER_MODULES) and last is not None:
            owners.append((m, last))
    return owners


def to_floats(record: dict) -> dict:
    """Turn every tensor in a record into a Python float with one device-to-host copy."""
    keys = [k for k, v in record.items() if isinstance(v, Tensor)]
    if keys:
        values = torch.stack([record[k].detach().float().reshape(()) for k in keys]).tolist()
        record = {**record, **dict(zip(keys, values))}
    return record
