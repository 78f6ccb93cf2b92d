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

from initlab.activations import ACTIVATION_MODULES, RECTIFIER_MODULES
from initlab.init.apply import WEIGHT_LAYERS
from initlab.models.stack import Stack


class Probe:
    """Statistics, keyed `<statistic>/<layer>`, for every module that owns parameters (Linear,
    Conv, norm layers; `<layer>` is its qualified name in the model):

    - act_mean, act_var: of the layer's output (the pre-activation), over batch and units;
    - post_mean, post_std, post_p02, post_p98: of the activation's output phi(y) after the layer
      (mean, std, 2nd and 98th percentiles over batch and units: the spread of Glorot & Bengio's
      Figs. 6-7 histograms), keyed by the weight layer feeding it;
    - grad_var: of the gradient back-propagated into that output, dL/dy (Glorot & Bengio's);
    - dead_frac: units <= 0 for the whole batch after a ReLU-family activation;
    - grad_norm, weight_norm: of the layer's own parameters (grad_norm: if a backward reached it);
    - update_ratio: |W_after - W_before| / |W_before| across `update()`.

    Given a Stack (initlab.models.stack) of K runs, each statistic is a [K] tensor, run k's
    value at k, by the same code: a lone model is measured as a stack of one.
    """

    def __init__(self, model: nn.Module) -> None:
        self.stack = model if isinstance(model, Stack) else Stack([model])
        self.squeeze = not isinstance(model, Stack)  # a plain model's statistics are 0-dim
        lone, net = self.stack.members[0], self.stack.net
        self.layers = {name: net.get_submodule(name) for name, m in lone.named_modules()
                       if next(m.parameters(False), None) is not None}
        self.activations = [(net.get_submodule(name), owner) for name, owner in _activation_owners(lone)]
        self.stats: dict[str, Tensor] = {}

    @contextmanager
    def capture(self) -> Iterator[None]:
        """Record the statistics of the forward and backward passes run inside (stats start afresh)."""
        self.stats = {}
        handles = [m.register_forward_hook(self._output_hook(name)) for name, m in self.layers.items()]
        handles += [m.register_forward_hook(self._activation_hook(owner)) for m, owner in self.activations]
        try:
            yield
        finally:
            for h in handles:
                h.remove()
        self._add("weight_norm", _layer_norms(self._tensors()))
        # grad_norm only where a backward ran through the layer during the capture: fresh grads
        fresh = {n: g for n, g in self._tensors(grad=True).items() if g and f"grad_var/{n}" in self.stats}
        self._add("grad_norm", _layer_norms(fresh))

    @contextmanager
    def update(self) -> Iterator[None]:
        """Add update_ratio for the parameter update made inside (wrap `optimizer.step()`)."""
        before = {n: [t.clone() for t in ts] for n, ts in self._tensors().items()}
        yield
        old = _layer_norms(before)
        delta = _layer_norms({n: [t - b for t, b in zip(ts, before[n])] for n, ts in self._tensors().items()})
        self._add("update_ratio", {n: delta[n] / old[n].clamp_min(1e-12) for n in delta})

    def floats(self) -> dict[str, float]:
        """`stats` as Python floats, with one device-to-host copy (a plain model's)."""
        return to_floats(self.stats)

    def _tensors(self, grad: bool = False) -> dict[str, list[Tensor]]:
        return {name: self.stack.layer_tensors(name, grad) for name in self.layers}

    def _add(self, statistic: str, values: dict[str, Tensor]) -> None:
        self.stats |= {f"{statistic}/{name}": v[0] if self.squeeze else v for name, v in values.items()}

    def _output_hook(self, name: str):
        def hook(module: nn.Module, inputs, out) -> None:
            if not isinstance(out, Tensor):
                return
            mean, var = _mean_var(out, len(self.stack))  # as Glorot/He
            self._add("act_mean", {name: mean})
            self._add("act_var", {name: var})
            if out.requires_grad:
                out.register_hook(lambda g: self._add("grad_var", {name: _mean_var(g, len(self.stack))[1]}))

        return hook

    def _activation_hook(self, owner: str):
        def hook(module: nn.Module, inputs, out: Tensor) -> None:
            runs = len(self.stack)
            values = out.detach().float().reshape(runs, -1)
            mean, var = _mean_var(values, runs)
            low, high = _percentiles(values, (0.02, 0.98))
            self._add("post_mean", {owner: mean})
            self._add("post_std", {owner: var.sqrt()})
            self._add("post_p02", {owner: low})
            self._add("post_p98", {owner: high})
            if isinstance(module, RECTIFIER_MODULES):
                # A unit (feature or channel) is dead when it is <= 0 for every example (and position).
                alive = (out.detach() > 0).reshape(runs, out.shape[0] // runs, out.shape[1], -1).any(3).any(1)
                self._add("dead_frac", {owner: 1.0 - alive.float().mean(1)})

        return hook


def _mean_var(t: Tensor, runs: int) -> tuple[Tensor, Tensor]:
    """Per run, mean and (population) variance over all its entries, two-pass: as exact as
    torch.var_mean and ~10x faster on CPU, which is what makes the probe cheap enough to leave on.
    `t` is [runs*B, ...], run k's entries the k-th block of B rows (initlab.models.stack)."""
    t = t.detach().float().reshape(runs, -1)
    mean = t.mean(1)
    return mean, (t - mean[:, None]).square().mean(1)


def _layer_norms(tensors: dict[str, list[Tensor]]) -> dict[str, Tensor]:
    """{layer: per run [K], the L2 norm of all the layer's tensors (each [K, ...])}."""
    return {name: torch.stack([torch.linalg.vector_norm(t.float().flatten(1), dim=1) for t in ts]).square().sum(0).sqrt()
            for name, ts in tensors.items() if ts}


PERCENTILE_ENTRIES = 2**14  # per run: a quantile's standard error is then ~0.1 percentile points


def _percentiles(values: Tensor, qs: tuple[float, ...]) -> list[Tensor]:
    """Per run (row of `values`), the lower q-quantile of its entries for each q, from at most
    PERCENTILE_ENTRIES of them drawn at random (the same draw for every run and call of a size:
    evenly spaced entries of a conv map can all be one pixel column); a conv layer's activations
    hold millions a run, and selecting among them all took a fifth of a CNN's step time. kthvalue
    selects in linear time, where torch.quantile sorts, and takes a pack's activations of any size."""
    if values.shape[1] > PERCENTILE_ENTRIES:
        draw = torch.Generator(values.device).manual_seed(0)
        values = values[:, torch.randint(values.shape[1], (PERCENTILE_ENTRIES,), generator=draw, device=values.device)]
    n = values.shape[1]
    return [values.kthvalue(max(1, min(n, round(q * n))), dim=1).values for q in qs]


def _activation_owners(model: nn.Module) -> list[tuple[str, str]]:
    """Each nonlinear activation module's name, paired with the weight layer that feeds it (the
    nearest one before it in module order, which is data-flow order for Sequential-built models).
    nn.Identity is left out: `linear`'s phi(y) is y (act_mean, act_var), and ResNet's shortcuts are Identity too."""
    owners, last = [], None
    for name, m in model.named_modules():
        if isinstance(m, WEIGHT_LAYERS):
            last = name
        elif isinstance(m, NONLINEAR) and last is not None:
            owners.append((name, last))
    return owners


NONLINEAR = tuple(t for t in ACTIVATION_MODULES if t is not nn.Identity)


def to_floats(record: dict) -> dict:
    """Turn every tensor in a record into a Python float (a 0-dim one) or a list of floats (a
    stack's [K] statistic), with one device-to-host copy."""
    keys = [k for k, v in record.items() if isinstance(v, Tensor)]
    if keys:
        flat = torch.cat([record[k].detach().float().reshape(-1) for k in keys]).tolist()
        sizes = [record[k].numel() for k in keys]
        starts = [sum(sizes[:i]) for i in range(len(sizes))]
        values = [flat[s] if record[k].dim() == 0 else flat[s : s + n] for k, s, n in zip(keys, starts, sizes)]
        record = {**record, **dict(zip(keys, values))}
    return record
