"""K models of one architecture trained as one network.

    stack = Stack([m0, m1, m2])   # K models built alike
    logits = stack(x)             # x [K, B, ...], run k's batch x[k] -> [K, B, classes]
    stack.sync()                  # the members' own parameters and buffers := the stack's

A stack of one is its model itself: a lone run trains its own parameters, as a plain torch loop
does. Otherwise each parameter of the lone model becomes one leaf [K, ...] of the stack, under
the same qualified name (stack.net.named_parameters() reads as a lone model's), run k's at row k.

Layout: the stacked network sees the K batches as one of K*B examples, run k's the k-th block
of B rows (x.flatten(0, 1): no copy). Whatever acts per example (activations, flatten(1), means
over space, the residual shortcut, GroupNorm's and LayerNorm's normalisation) is then the lone
layer itself, so the lone model's own forward() runs unchanged over the stacked layers, and
- a Linear layer multiplies [K, B, F] by its [K, O, F] weights in one bmm;
- a convolution runs on the CPU once per run, on its (contiguous) block of rows: oneDNN's
  grouped convolution took ~30% longer than the K convolutions it replaces; on a GPU it is
  one grouped convolution (groups times K) over the [B, K*C, ...] layout;
- BatchNorm normalises each run's block of rows over its own B examples: on the CPU one
  batch_norm per run (running statistics as views of the stack's), on a GPU one over the K*C
  channels of the [B, K*C, ...] layout.

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
        if not shared:
            return self.net(x.flatten(0, 1)).unflatten(0, (len(self), -1))
        layers = [m for m in self.net.modules() if isinstance(m, StackedLayer)]
        for layer in layers:
            layer.shared_rows = len(x)
        try:
            return self.net(x).unflatten(0, (len(self), -1))
        finally:
            for layer in layers:
                layer.shared_rows = None

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
            if next(module.parameters(recurse=False), None) is not None or next(module.buffers(recurse=False), None) is not None:
                raise TypeError(f"cannot stack {name or 'the model'} ({type(module).__name__}): a module with "
                                "children holds parameters or buffers of its own")
            continue  # a container: its forward composes its children
        stacked = STACKED.get(type(module))
        layers = [modules[name] for modules in per_member]
        if stacked is not None:
            net.set_submodule(name, stacked(layers))
        elif not isinstance(module, PER_EXAMPLE):
            raise TypeError(f"cannot stack {name or 'the model'} ({type(module).__name__}): "
                            "initlab.models.stack knows no version of it that keeps the runs apart")
    return net


class StackedLayer(nn.Module):
    """A layer of K runs: each parameter of the lone layer, under its name, as one leaf [K, ...].

    Stack.forward(shared=True) feeds one batch [B, ...] to every run (an evaluation): the first
    stacked layer receives B rows, not K*B, and `shared_rows` = B says so. Linear and
    convolutions compute every run from it directly; other layers take it repeated K times.
    """

    shared_rows: int | None = None

    def __init__(self, layers: list[nn.Module]) -> None:
        super().__init__()
        self.runs = len(layers)
        for name, p in layers[0]._parameters.items():  # None entries too (a Linear without bias), as torch keeps them
            self.register_parameter(name, None if p is None else nn.Parameter(torch.stack([getattr(m, name).detach()
                                                                                            for m in layers])))

    def is_shared(self, x: Tensor) -> bool:
        """Whether `x` is the one batch every run sees (B rows, not K*B)."""
        return x.shape[0] == self.shared_rows

    def per_run_rows(self, x: Tensor) -> Tensor:
        """`x` as K*B rows, run k's the k-th block: a shared batch repeated for every run (a copy)."""
        return x.repeat(self.runs, *[1] * (x.dim() - 1)) if self.is_shared(x) else x

    def unstack(self, layers: list[nn.Module]) -> None:
        for name, stacked in self.named_parameters(recurse=False):
            for layer, value in zip(layers, stacked):
                getattr(layer, name).copy_(value)


class StackedLinear(StackedLayer):
    def forward(self, x: Tensor) -> Tensor:
        w, b = self.weight, self.bias  # [K, O, F], [K, O]
        if self.is_shared(x):  # [K, O, F] @ [F, B]: one matrix product over K*O rows, no copy of x
            y = torch.matmul(w, x.mT)
            return (y if b is None else y + b.unsqueeze(2)).mT.flatten(0, 1)
        h = x.unflatten(0, (self.runs, -1)).mT  # [K, F, B]
        # y^T = W h^T reads the weights as stored; y = h W^T would make bmm copy W^T at every call
        y = torch.bmm(w, h) if b is None else torch.baddbmm(b.unsqueeze(2), w, h)  # [K, O, B]
        return y.mT.flatten(0, 1)  # [K*B, O]


class StackedConv(StackedLayer):
    """The lone layer's own _conv_forward (torch's, private but stable since 1.8) does the
    arithmetic, so every padding mode (zeros, circular, ...) and stride is the lone layer's."""

    def __init__(self, convs: list[nn.Module]) -> None:
        super().__init__(convs)
        # the lone layer's settings, once as they are and once grouped K times (a tuple: no submodules)
        self.settings = (_conv_settings(convs[0], 1), _conv_settings(convs[0], len(convs)))

    def forward(self, x: Tensor) -> Tensor:
        return self.grouped(self.per_run_rows(x)) if x.is_cuda else self.per_run(x)

    def grouped(self, x: Tensor) -> Tensor:
        y = self.settings[1]._conv_forward(_channels(x, self.runs), self.weight.flatten(0, 1), _flat(self.bias))
        return _runs(y, self.runs)

    def per_run(self, x: Tensor) -> Tensor:
        biases = [None] * self.runs if self.bias is None else self.bias
        inputs = [x] * self.runs if self.is_shared(x) else x.chunk(self.runs)
        return torch.cat([self.settings[0]._conv_forward(xk, w, b) for xk, w, b in zip(inputs, self.weight, biases)])


def _conv_settings(conv: nn.Module, runs: int) -> nn.Module:
    """A shallow copy of `conv` without its parameters, with `runs` times its groups."""
    settings = copy.copy(conv)
    settings._parameters = {}
    settings.groups = conv.groups * runs
    return settings


def _channels(x: Tensor, runs: int) -> Tensor:
    """[K*B, C, ...] -> [B, K*C, ...]: run k's channels the k-th block of each example."""
    return x.unflatten(0, (runs, -1)).transpose(0, 1).flatten(1, 2)


def _runs(x: Tensor, runs: int) -> Tensor:
    """[B, K*C, ...] -> [K*B, C, ...], the inverse of _channels."""
    return x.unflatten(1, (runs, -1)).transpose(0, 1).flatten(0, 1)


class StackedBatchNorm(StackedLayer):
    """K BatchNorms, with torch's _BatchNorm.forward arithmetic and K*C running statistics."""

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
        return (self.grouped if x.is_cuda else self.per_run)(self.per_run_rows(x), self.training or not self.tracked, factor)

    def _stats(self) -> list[Tensor | None]:
        return [self.running_mean, self.running_var] if self.tracked else [None, None]

    def grouped(self, x: Tensor, training: bool, factor: float) -> Tensor:
        """One call over the [B, K*C, ...] layout (on a GPU)."""
        y = F.batch_norm(_channels(x, self.runs), *self._stats(), _flat(self.weight), _flat(self.bias), training,
                         factor, self.eps)
        return _runs(y, self.runs)

    def per_run(self, x: Tensor, training: bool, factor: float) -> Tensor:
        """One call per run's block of rows (on the CPU: no transposed copies of the activations);
        the running statistics' chunks are views, updated in place."""
        per_run = [[None] * self.runs if t is None else t.chunk(self.runs) if t.dim() == 1 else t.unbind()
                   for t in (*self._stats(), self.weight, self.bias)]  # [K*C] statistics, [K, C] affine
        return torch.cat([F.batch_norm(xk, *tensors, training, factor, self.eps)
                          for xk, *tensors in zip(x.chunk(self.runs), *per_run)])

    def unstack(self, layers: list[nn.Module]) -> None:
        super().unstack(layers)
        if self.tracked:
            for layer, mean, var in zip(layers, self.running_mean.chunk(len(layers)), self.running_var.chunk(len(layers))):
                layer.running_mean.copy_(mean)
                layer.running_var.copy_(var)
                layer.num_batches_tracked.copy_(self.num_batches_tracked)


class StackedAffineNorm(StackedLayer):
    """GroupNorm or LayerNorm: the lone layer's normalisation, per example, then each run's own
    elementwise affine."""

    def __init__(self, norms: list[nn.Module]) -> None:
        super().__init__(norms)
        self.norm = copy.copy(norms[0])  # the settings; the affine is the stack's
        self.norm._parameters = {name: None for name in self.norm._parameters}
        self.channel_first = isinstance(norms[0], nn.GroupNorm)  # GroupNorm's affine is per channel (dim 1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.per_run_rows(x)
        y = self.norm(x)
        if self.weight is None:
            return y
        runs = self.runs
        shape = (runs, 1, -1, *[1] * (x.dim() - 2)) if self.channel_first else (runs, *[1] * (x.dim() - 1), -1)
        y = y.unflatten(0, (runs, -1))
        y = torch.addcmul(self.bias.view(shape), y, self.weight.view(shape)) if self.bias is not None else y * self.weight.view(shape)
        return y.flatten(0, 1)


def _flat(t: Tensor | None) -> Tensor | None:
    """A stacked [K, ...] parameter as the K-times-larger tensor of one layer."""
    return None if t is None else t.flatten(0, 1)


# The layers initlab's models are built of, each with its stacked version; a parameterless leaf
# not here must act on each example alone (an activation, the residual shortcut), as it is.
STACKED = {nn.Linear: StackedLinear, nn.Conv1d: StackedConv, nn.Conv2d: StackedConv, nn.Conv3d: StackedConv,
           nn.BatchNorm1d: StackedBatchNorm, nn.BatchNorm2d: StackedBatchNorm, nn.GroupNorm: StackedAffineNorm,
           nn.LayerNorm: StackedAffineNorm}
PER_EXAMPLE = (*ACTIVATION_MODULES, ChannelPad)
