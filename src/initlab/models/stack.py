"""K models of one architecture as one network, every layer computing all K runs in one call.

    stack = Stack([m0, m1, m2])   # K models built alike
    logits = stack(x)             # x [K, B, ...], run k's batch x[k] -> [K, B, classes]
    stack.sync()                  # the members' own parameters and buffers := the stack's

A stack of one is its model itself: a lone run trains its own parameters, as a plain torch loop
does. Otherwise each parameter of the lone model becomes one leaf [K, ...] of the stack, under
the same qualified name (stack.net.named_parameters() reads as a lone model's), run k's at row k.

Layout: the stacked network sees a batch as [B, K*C, ...], run k's channels (or features) the
k-th contiguous block of dimension 1. In that layout
- K convolutions are one grouped convolution (groups times K; on the CPU, K convolutions);
- BatchNorm over K*C channels is each run's own BatchNorm; GroupNorm(g, C) is GroupNorm(K*g, K*C),
  and LayerNorm(F) is GroupNorm(K, K*F);
- activations, flatten(1) and means over space keep the layout,
so the lone model's own forward() runs unchanged over the stacked layers; a Linear layer views
its input as [K, B, F] and multiplies in one bmm.

Why not torch.func (stack_module_state + functional_call + vmap): under vmap, module and tensor
hooks see batched tensors, so the probe's per-layer statistics could not come from the same
code as a lone run's, and BatchNorm cannot update its running statistics in place (functorch's
replace_all_batch_norm_modules_ stops tracking them), while last.pt must hold them.
"""

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from initlab.activations import ACTIVATION_MODULES
from initlab.models.layers import ChannelPad


class Stack(nn.Module):
    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = list(members)  # a plain list: the members are not submodules
        self.net = self.members[0] if len(self.members) == 1 else _stacked(self.members)

    def __len__(self) -> int:
        return len(self.members)

    @property
    def alone(self) -> bool:
        return len(self.members) == 1

    def forward(self, x: Tensor, shared: bool = False) -> Tensor:
        """Logits [K, B, classes] of x [K, B, ...], run k's batch x[k]; with `shared`, of one
        batch x [B, ...] for every run (an evaluation)."""
        if self.alone:
            return self.net(x if shared else x[0]).unsqueeze(0)
        if shared:
            x = x.repeat(1, len(self), *[1] * (x.dim() - 2))  # [B, K*C, ...]
        else:
            x = x.transpose(0, 1).flatten(1, 2)  # [B, K*C, ...]: run-major channels (a view, if x is one of [B, K, ...])
        out = self.net(x)
        return out.view(out.shape[0], len(self), -1).transpose(0, 1)

    def layer_tensors(self, layer: str, grad: bool = False) -> list[Tensor]:
        """The parameters (or their gradients) of `layer`, each [K, ...]; [] if a gradient is missing."""
        tensors = [p.grad if grad else p for p in self.net.get_submodule(layer).parameters(False)]
        if None in tensors:
            return []
        return [t.detach().unsqueeze(0) if self.alone else t.detach() for t in tensors]

    @torch.no_grad()
    def sync(self) -> None:
        """Copy the stack's parameters and running statistics into the members' own tensors."""
        if self.alone:
            return
        per_member = [dict(m.named_modules()) for m in self.members]
        for name, layer in self.net.named_modules():
            if isinstance(layer, StackedLayer):
                layer.unstack([modules[name] for modules in per_member])


def _stacked(members: list[nn.Module]) -> nn.Module:
    """A copy of the first member's structure whose leaf layers compute every member at once."""
    net = copy.deepcopy(members[0])
    per_member = [dict(m.named_modules()) for m in members]
    for name, module in list(net.named_modules()):
        if next(module.children(), None) is not None:
            continue  # a container: its forward composes its children
        stacked = STACKED.get(type(module))
        layers = [modules[name] for modules in per_member]
        if stacked is not None:
            net.set_submodule(name, stacked(layers))
        elif isinstance(module, ChannelPad):
            net.set_submodule(name, ChannelPad(module.stride, module.extra, runs=len(members)))
        elif not isinstance(module, ACTIVATION_MODULES):
            raise TypeError(f"cannot stack {name or 'the model'} ({type(module).__name__}): "
                            "initlab.models.stack knows no layout-preserving version of it")
    return net


class StackedLayer(nn.Module):
    """A layer of K runs: each parameter of the lone layer, under its name, as one leaf [K, ...]."""

    def __init__(self, layers: list[nn.Module]) -> None:
        super().__init__()
        for name, p in layers[0]._parameters.items():  # None entries too (a Linear without bias), as torch keeps them
            self.register_parameter(name, None if p is None else nn.Parameter(torch.stack([getattr(m, name).detach()
                                                                                            for m in layers])))

    def unstack(self, layers: list[nn.Module]) -> None:
        for name, stacked in self.named_parameters(recurse=False):
            for layer, value in zip(layers, stacked):
                getattr(layer, name).copy_(value)


class StackedLinear(StackedLayer):
    def forward(self, x: Tensor) -> Tensor:
        w, b = self.weight, self.bias  # [K, O, F], [K, O]
        h = x.view(x.shape[0], len(w), -1).permute(1, 2, 0)  # [K, F, B]
        # y^T = W h^T reads the weights as stored; y = h W^T would make bmm copy W^T at every call
        y = torch.bmm(w, h) if b is None else torch.baddbmm(b.unsqueeze(2), w, h)  # [K, O, B]
        return y.permute(2, 0, 1).flatten(1)  # [B, K*O]


class StackedConv(StackedLayer):
    """K convolutions as one with K times the groups (on a GPU), or as K convolutions, one per
    run's channel block (on the CPU, where oneDNN's grouped convolution takes ~30% longer than
    the K it replaces: scripts/bench_grid.py). The lone layer's own _conv_forward (torch's,
    private but stable since 1.8) does the arithmetic, so every padding mode (zeros, circular,
    ...) and stride is the lone layer's."""

    def __init__(self, convs: list[nn.Module]) -> None:
        super().__init__(convs)
        # the lone layer's settings, once as they are and once grouped K times (a tuple: no submodules)
        self.settings = (_conv_settings(convs[0], 1), _conv_settings(convs[0], len(convs)))

    def forward(self, x: Tensor) -> Tensor:
        lone, grouped = self.settings
        if x.is_cuda:
            return grouped._conv_forward(x, self.weight.flatten(0, 1), _flat(self.bias))
        biases = [None] * len(self.weight) if self.bias is None else self.bias
        return torch.cat([lone._conv_forward(xk, w, b) for xk, w, b in zip(x.chunk(len(self.weight), 1), self.weight, biases)], 1)


def _conv_settings(conv: nn.Module, runs: int) -> nn.Module:
    """A shallow copy of `conv` without its parameters, with `runs` times its groups."""
    settings = copy.copy(conv)
    settings._parameters = {}
    settings.groups = conv.groups * runs
    return settings


class StackedBatchNorm(StackedLayer):
    """K BatchNorms over C channels as one over K*C, with torch's _BatchNorm.forward arithmetic."""

    def __init__(self, norms: list[_BatchNorm]) -> None:
        super().__init__(norms)
        first = norms[0]
        self.momentum, self.eps, self.tracked = first.momentum, first.eps, first.track_running_stats
        if self.tracked:
            self.register_buffer("running_mean", torch.cat([n.running_mean for n in norms]))
            self.register_buffer("running_var", torch.cat([n.running_var for n in norms]))
            self.register_buffer("num_batches_tracked", first.num_batches_tracked.clone())  # the runs step together

    def forward(self, x: Tensor) -> Tensor:
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.tracked:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # a cumulative average
                factor = 1.0 / float(self.num_batches_tracked)
        return F.batch_norm(x, self.running_mean if self.tracked else None, self.running_var if self.tracked else None,
                            _flat(self.weight), _flat(self.bias), self.training or not self.tracked, factor, self.eps)

    def unstack(self, layers: list[nn.Module]) -> None:
        super().unstack(layers)
        if self.tracked:
            for layer, mean, var in zip(layers, self.running_mean.chunk(len(layers)), self.running_var.chunk(len(layers))):
                layer.running_mean.copy_(mean)
                layer.running_var.copy_(var)
                layer.num_batches_tracked.copy_(self.num_batches_tracked)


class StackedGroupNorm(StackedLayer):
    """GroupNorm(g, C) of K runs as GroupNorm(K*g, K*C); LayerNorm(F) over features as GroupNorm(K, K*F)."""

    def __init__(self, norms: list[nn.Module]) -> None:
        super().__init__(norms)
        first = norms[0]
        if isinstance(first, nn.LayerNorm) and len(first.normalized_shape) != 1:
            raise TypeError("cannot stack a LayerNorm over more than the last dimension")
        self.groups = len(norms) * (first.num_groups if isinstance(first, nn.GroupNorm) else 1)
        self.eps = first.eps

    def forward(self, x: Tensor) -> Tensor:
        return F.group_norm(x, self.groups, _flat(self.weight), _flat(self.bias), self.eps)


def _flat(t: Tensor | None) -> Tensor | None:
    """A stacked [K, ...] parameter as the K-times-larger tensor of one layer."""
    return None if t is None else t.flatten(0, 1)


# The layers initlab's models are built of, each with its stacked version. ChannelPad stacks as
# itself (with `runs`); any other parameterless leaf must be an activation (elementwise).
STACKED = {nn.Linear: StackedLinear, nn.Conv1d: StackedConv, nn.Conv2d: StackedConv, nn.Conv3d: StackedConv,
           nn.BatchNorm1d: StackedBatchNorm, nn.BatchNorm2d: StackedBatchNorm, nn.GroupNorm: StackedGroupNorm,
           nn.LayerNorm: StackedGroupNorm}
