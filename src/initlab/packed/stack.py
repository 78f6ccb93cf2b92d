"""K MLPs of one shape as one stacked computation: each weight is a [K, out, in] tensor.

Why batched matmuls and not torch.func (stack_module_state + functional_call + vmap): the
probe's statistics need every layer's pre-activation and the gradient back-propagated into
it, and under vmap neither module hooks nor tensor hooks fire. Here each pre-activation is an
ordinary [K, batch, units] tensor (its gradient kept with retain_grad), so every statistic is
one reduction over the run dimension's slices, and vmap would lower Linear to the same bmm.
"""

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from initlab.activations import ACTIVATIONS, activation_module
from initlab.diagnostics.probe import Probe


@dataclass
class Trace:
    """What a logging step keeps of the forward pass: pre-activations (with their gradients
    after backward) and the rectifiers' outputs."""

    outputs: list[Tensor]
    rectified: list[Tensor]


class StackedMLP:
    """The Linear layers of K identically shaped MLPs (initlab.models.MLP, norm=none), stacked.

    Parameters are leaf tensors with the run as their first dimension, in the order of the lone
    model's parameters(), so run k's state_dict and optimizer state map one to one.
    """

    def __init__(self, models: list[nn.Module], activation: str, negative_slope: float) -> None:
        probe = Probe(models[0])  # the probe's own layer names, so the metric keys are the lone run's
        self.names = list(probe.layers)
        self.dead_owners = [owner for _, owner in probe.rectifiers]
        per_model = [[p.detach() for p in m.parameters()] for m in models]
        self.params = [torch.stack(ps).requires_grad_() for ps in zip(*per_model)]
        self.activation = activation_module(activation, negative_slope)
        self.rectifier = ACTIVATIONS[activation].rectifier
        self.bias = len(self.params) == 2 * len(self.names)

    @property
    def runs(self) -> int:
        return len(self.params[0])

    def layers(self) -> list[tuple[Tensor, Tensor | None]]:
        return [(ps[0], ps[1] if self.bias else None) for ps in self._by_layer(self.params)]

    def __call__(self, x: Tensor, shared: bool = False, trace: Trace | None = None) -> Tensor:
        """Logits [K, batch, classes] of x: [K, batch, ...], each run its own batch, or with
        `shared` [batch, ...], one batch for all. With `trace`, keep what the statistics need."""
        h = x.flatten(1).expand(self.runs, -1, -1) if shared else x.flatten(2)
        layers = self.layers()
        for i, (w, b) in enumerate(layers):
            y = torch.bmm(h, w.mT) if b is None else torch.baddbmm(b.unsqueeze(1), h, w.mT)
            if trace is not None:
                y.retain_grad()
                trace.outputs.append(y)
            if i == len(layers) - 1:
                return y
            h = self.activation(y)
            if trace is not None and self.rectifier:
                trace.rectified.append(h.detach())

    def stats(self, trace: Trace) -> dict[str, Tensor]:
        """The probe's statistics (initlab.diagnostics.probe.Probe, same names and definitions),
        each a [K] tensor, from a traced forward pass and its backward pass."""
        stats = {}
        for name, y in zip(self.names, trace.outputs):
            stats[f"act_mean/{name}"] = y.detach().flatten(1).mean(1)
            stats[f"act_var/{name}"] = y.detach().flatten(1).var(1, correction=0)
            stats[f"grad_var/{name}"] = y.grad.flatten(1).var(1, correction=0)
        for owner, h in zip(self.dead_owners, trace.rectified):
            stats[f"dead_frac/{owner}"] = 1.0 - (h > 0).any(1).float().mean(1)
        for name, ps in zip(self.names, self._by_layer(self.params)):
            stats[f"weight_norm/{name}"] = _norm(ps)
            stats[f"grad_norm/{name}"] = _norm([p.grad for p in ps])
        return stats

    def snapshot(self) -> list[Tensor]:
        return [p.detach().clone() for p in self.params]

    def update_ratios(self, before: list[Tensor]) -> dict[str, Tensor]:
        """|W_after - W_before| / |W_before| per layer and run, as the probe's update()."""
        after = self._by_layer([p.detach() for p in self.params])
        return {f"update_ratio/{name}": _norm([a - b for a, b in zip(new, old)]) / _norm(old).clamp_min(1e-12)
                for name, new, old in zip(self.names, after, self._by_layer(before))}

    def _by_layer(self, tensors: list[Tensor]) -> list[list[Tensor]]:
        step = 2 if self.bias else 1
        return [tensors[i : i + step] for i in range(0, len(tensors), step)]

    def keep(self, runs: Tensor) -> None:
        """Drop every run but `runs` (indices) from the stack."""
        self.params = [p.detach()[runs].requires_grad_() for p in self.params]


def _norm(tensors: list[Tensor]) -> Tensor:
    """Per run, the norm of all of `tensors` together (the probe's _norm, batched)."""
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t.detach().float().flatten(1), dim=1)
                                                 for t in tensors]), dim=0)
