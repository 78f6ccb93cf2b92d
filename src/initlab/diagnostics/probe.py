"""Per-layer signal statistics in any training loop: the forward signal, the backward gradient,
the weights and the size of each update.

    probe = Probe(model)
    with probe.capture():        # hooks exist only inside
        loss = loss_fn(model(x), y)
        loss.backward()
    with probe.update():         # optional: how far the step moved each layer
        optimizer.step()
    probe.stats                  # {"act_var/fc1": tensor(0.97), ...}: 0-dim tensors, on the model's device
    probe.floats()               # the same as Python floats, with one device-to-host copy

Statistics stay device tensors, so a step under the probe never waits for the host; hooks are
tensor hooks on each layer's output (not full backward hooks), so in-place activations work.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from initlab.activations import RECTIFIER_MODULES
from initlab.init.apply import WEIGHT_LAYERS


class Probe:
    """Statistics, keyed `<statistic>/<layer>`, for every module that owns parameters (Linear,
    Conv, norm layers; `<layer>` is its qualified name in the model):

    - act_mean, act_var: of the layer's output (the pre-activation), over batch and units;
    - grad_var: of the gradient back-propagated into that output, dL/dy (Glorot & Bengio's);
    - dead_frac: units <= 0 for the whole batch after a ReLU-family activation;
    - grad_norm, weight_norm: of the layer's own parameters (grad_norm: if a backward reached it);
    - update_ratio: |W_after - W_before| / |W_before| across `update()`.
    """

    def __init__(self, model: nn.Module) -> None:
        self.layers = {name: m for name, m in model.named_modules() if next(m.parameters(False), None) is not None}
        self.params = {name: list(m.parameters(False)) for name, m in self.layers.items()}
        self.rectifiers = _rectifier_owners(model)
        self.stats: dict[str, Tensor] = {}

    @contextmanager
    def capture(self) -> Iterator[None]:
        """Record the statistics of the forward and backward passes run inside (stats start afresh)."""
        self.stats = {}
        handles = [m.register_forward_hook(self._output_hook(name)) for name, m in self.layers.items()]
        handles += [m.register_forward_hook(self._dead_hook(owner)) for m, owner in self.rectifiers]
        try:
            yield
        finally:
            for h in handles:
                h.remove()
        self.stats |= {f"weight_norm/{n}": norm for n, norm in _layer_norms(self.params).items()}
        # grad_norm only where a backward ran through the layer during the capture: fresh grads
        fresh = {n: [p.grad for p in ps if p.grad is not None] for n, ps in self.params.items()
                 if f"grad_var/{n}" in self.stats}
        self.stats |= {f"grad_norm/{n}": norm for n, norm in _layer_norms({n: g for n, g in fresh.items() if g}).items()}

    @contextmanager
    def update(self) -> Iterator[None]:
        """Add update_ratio for the parameter update made inside (wrap `optimizer.step()`)."""
        before = {n: [p.detach().clone() for p in ps] for n, ps in self.params.items()}
        yield
        old = _layer_norms(before)
        delta = _layer_norms({n: [p.detach() - b for p, b in zip(ps, before[n])] for n, ps in self.params.items()})
        self.stats |= {f"update_ratio/{n}": delta[n] / old[n].clamp_min(1e-12) for n in delta}

    def floats(self) -> dict[str, float]:
        """`stats` as Python floats, with one device-to-host copy."""
        return to_floats(self.stats)

    def _output_hook(self, name: str):
        def hook(module: nn.Module, inputs, out) -> None:
            if not isinstance(out, Tensor):
                return
            self.stats[f"act_mean/{name}"], self.stats[f"act_var/{name}"] = _mean_var(out)  # as Glorot/He
            if out.requires_grad:
                out.register_hook(lambda g: self.stats.__setitem__(f"grad_var/{name}", _mean_var(g)[1]))

        return hook

    def _dead_hook(self, owner: str):
        def hook(module: nn.Module, inputs, out: Tensor) -> None:
            # A unit (feature or channel) is dead when it is <= 0 for every example (and position).
            alive = (out.detach() > 0).transpose(0, 1).flatten(1).any(1)
            self.stats[f"dead_frac/{owner}"] = 1.0 - alive.float().mean()

        return hook


def _mean_var(t: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and (population) variance over all entries, two-pass: as exact as torch.var_mean
    and ~10x faster on CPU, which is what makes the probe cheap enough to leave on."""
    t = t.detach().float()
    mean = t.mean()
    return mean, (t - mean).square().mean()


def _layer_norms(tensors: dict[str, list[Tensor]]) -> dict[str, Tensor]:
    """{layer: L2 norm of all the layer's tensors}, in a handful of kernels for all layers
    together (torch's foreach norm, as clip_grad_norm_ uses it), not a few per layer."""
    flat = [t.detach() for ts in tensors.values() for t in ts]
    if not flat:
        return {}
    squares = torch.stack(torch._foreach_norm(flat)).float().square()
    owner = torch.tensor([i for i, ts in enumerate(tensors.values()) for _ in ts], device=squares.device)
    norms = torch.zeros(len(tensors), device=squares.device).index_add_(0, owner, squares).sqrt()
    return dict(zip(tensors, norms.unbind()))


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
