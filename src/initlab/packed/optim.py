"""SGD and Adam(W) over stacked parameters ([K, ...], one slice per run), each run with its own
hyperparameters. torch.optim takes one value per parameter group, so K runs would need K
optimizers and K times the calls per step; this is the arithmetic of torch.optim's
single-tensor SGD and Adam (the CPU default) with per-run values broadcast over the run
dimension. `run_state`/`load_run_state` convert run k's state to and from a lone torch
optimizer, so last.pt keeps the lone format.
"""

import torch
from torch import Tensor

EPS = 1e-8  # torch.optim.Adam's default; initlab's config does not set it


class StackedOptimizer:
    """optim.name (one per pack) over stacked parameters; `optims` are the runs' optim configs."""

    def __init__(self, params: list[Tensor], optims: list) -> None:
        self.params = params
        self.name = optims[0].name.value  # sgd | adam | adamw
        self.hyper = {"weight_decay": [float(o.weight_decay) for o in optims]}  # per run, in stack order
        if self.name == "sgd":
            self.hyper |= {"momentum": [float(o.momentum) for o in optims],
                           "nesterov": [float(o.nesterov) for o in optims]}
            self.state = {"momentum_buffer": [torch.zeros_like(p) for p in params]}
        else:
            self.hyper |= {"beta1": [float(o.betas[0]) for o in optims], "beta2": [float(o.betas[1]) for o in optims]}
            self.state = {"exp_avg": [torch.zeros_like(p) for p in params],
                          "exp_avg_sq": [torch.zeros_like(p) for p in params]}
        self.steps = 0  # updates made (Adam's bias correction; the same for every run of a pack)

    def _vector(self, values: list[float], like: Tensor) -> Tensor:
        """Per-run values shaped to broadcast over a [K, ...] parameter."""
        return torch.tensor(values, dtype=like.dtype, device=like.device).view(-1, *[1] * (like.dim() - 1))

    @torch.no_grad()
    def step(self, lr: list[float]) -> None:
        """One update with run k's learning rate lr[k]."""
        self.steps += 1
        if self.name == "sgd":
            self._sgd(lr)
        else:
            self._adam(lr)

    def _sgd(self, lr: list[float]) -> None:
        h = self.hyper
        for p, buf in zip(self.params, self.state["momentum_buffer"]):
            v = lambda values: self._vector(values, p)  # noqa: E731
            grad = p.grad + v(h["weight_decay"]) * p if any(h["weight_decay"]) else p.grad
            # torch starts the buffer as a copy of the first gradient (0 * momentum + grad), and with
            # momentum 0 keeps none: the buffer is then the gradient itself
            momentum = v(h["momentum"])
            torch.addcmul(grad, buf, momentum, out=buf)  # buf * momentum + grad, in one pass
            direction = torch.where(v(h["nesterov"]).bool(), grad + momentum * buf, buf) if any(h["nesterov"]) else buf
            p.addcmul_(direction, v([-rate for rate in lr]))

    def _adam(self, lr: list[float]) -> None:
        h, t = self.hyper, self.steps
        bias1 = [1 - b**t for b in h["beta1"]]
        bias2_sqrt = [(1 - b**t) ** 0.5 for b in h["beta2"]]
        step_size = [rate / b for rate, b in zip(lr, bias1)]
        for p, m, s in zip(self.params, self.state["exp_avg"], self.state["exp_avg_sq"]):
            v = lambda values: self._vector(values, p)  # noqa: E731
            grad = p.grad
            if any(h["weight_decay"]):
                if self.name == "adamw":  # decoupled: shrink the weights, not the gradient
                    p.mul_(v([1 - rate * wd for rate, wd in zip(lr, h["weight_decay"])]))
                else:
                    grad = grad + v(h["weight_decay"]) * p
            m.lerp_(grad, v([1 - b for b in h["beta1"]]))
            s.mul_(v(h["beta2"])).addcmul_(grad, grad * v([1 - b for b in h["beta2"]]))
            denom = (s.sqrt() / v(bias2_sqrt)).add_(EPS)
            p.sub_(v(step_size) * m / denom)

    def keep(self, runs: Tensor, params: list[Tensor]) -> None:
        """Follow the model's stack down to `runs` (indices); `params` are its new leaves."""
        self.params = params
        self.state = {key: [b[runs] for b in bufs] for key, bufs in self.state.items()}
        self.hyper = {key: [values[i] for i in runs.tolist()] for key, values in self.hyper.items()}

    def run_state(self, k: int, optimizer: torch.optim.Optimizer) -> None:
        """Put run k's state into `optimizer`, a lone run's torch optimizer over its own model."""
        if not self.steps:
            return  # torch creates state at the first step
        for i, p in enumerate(optimizer.param_groups[0]["params"]):
            if self.name == "sgd":
                if self.hyper["momentum"][k]:
                    optimizer.state[p] = {"momentum_buffer": self.state["momentum_buffer"][i][k].clone()}
            else:
                optimizer.state[p] = {"step": torch.tensor(float(self.steps)),
                                      **{key: bufs[i][k].clone() for key, bufs in self.state.items()}}

    def load_run_state(self, k: int, optimizer: torch.optim.Optimizer, steps: int) -> None:
        """Take run k's state from a lone torch optimizer restored from last.pt at `steps`."""
        self.steps = steps
        with torch.no_grad():
            for i, p in enumerate(optimizer.param_groups[0]["params"]):
                for key, bufs in self.state.items():
                    if key in optimizer.state.get(p, {}):
                        bufs[i][k].copy_(optimizer.state[p][key])
