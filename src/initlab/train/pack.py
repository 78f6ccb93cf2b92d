"""A pack: the runs that train together as one Stack, with one torch optimizer and schedule, and
each run's last.pt in the lone format (its own model, torch optimizer and scheduler), read into
the pack and written from it. A lone run is a pack of one.

Runs whose optimiser settings (optim.*) are equal form one part and one param group of torch's
optimizer. With one part the optimizer steps the stack's leaves; with several, a part's
parameters are views of its rows of the leaves (storage shared, so the optimizer's in-place
update is the stack's; their gradients are views of the leaves'):
torch's optimizers update elementwise, so each run gets exactly the arithmetic its own
optimizer would give it, and the forward pass never gathers the parts.
"""

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch import Tensor, nn

from initlab.data.batches import Batches
from initlab.models.stack import Stack
from initlab.track.records import RunRecords, durable_together
from initlab.track.wandb_mirror import NoMirror
from initlab.train.checkpoint import load_checkpoint, save_checkpoint
from initlab.train.optim import build_optimizer, build_schedule

OptimizerState = dict[int, dict]  # a lone torch optimizer's state, by parameter index


@dataclass
class Outcome:
    status: str  # completed | diverged | interrupted | failed (running while the loop fills it in)
    steps: int  # steps reached
    metrics: dict = field(default_factory=dict)  # latest value of every logged metric
    reason: str | None = None

    def end(self, status: str, steps: int, reason: str | None = None) -> "Outcome":
        """The run ended `status` at `steps`; the loop returns the outcome it filled in."""
        self.status, self.steps, self.reason = status, steps, reason
        return self


@dataclass(eq=False)
class Member:
    """One run of a pack: its config, records, outcome, initialised model (and what its init
    recorded, for init.json), device and wandb mirror."""

    cfg: object
    records: RunRecords
    outcome: Outcome
    model: nn.Module
    device: str
    init_records: list = field(default_factory=list)
    packed: bool = False  # one of a pack of several: its log lines go to its train.log only
    mirror: object = field(default_factory=NoMirror)
    experiment: str | None = None  # the named experiment (conf/experiment) it is a job of: a wandb tag
    error: BaseException | None = None  # what failed it
    batches: Batches | None = None  # set when training starts
    start: int = 0  # the step it (re)starts from
    state: OptimizerState = field(default_factory=dict)  # its optimizer's, as last.pt had it

    @property
    def checkpoint(self) -> Path:
        return self.records.dir / "last.pt"

    def resume(self, total: int) -> int:
        """Restore model, optimizer state and step from last.pt (0 and nothing without one)."""
        optimizer = build_optimizer([(self.cfg.optim, self.model.parameters())])
        self.start = load_checkpoint(self.checkpoint, self.model, optimizer,
                                     build_schedule([self.cfg.optim], optimizer, total))
        self.state = _indexed(optimizer)
        return self.start


class Pack:
    """`members` (one pack_key, one start step) as a Stack, in stack order: runs with equal
    optim.* settings side by side, one part each."""

    def __init__(self, members: list[Member], total: int, start: int) -> None:
        parts: dict[str, list[Member]] = {}
        for m in members:
            parts.setdefault(json.dumps(OmegaConf.to_container(m.cfg.optim, enum_to_str=True)), []).append(m)
        self.members = [m for part in parts.values() for m in part]
        self.total = total
        self.stack = Stack([m.model for m in self.members])
        bounds = list(itertools.accumulate((len(part) for part in parts.values()), initial=0))
        self.rows = list(zip(bounds, bounds[1:]))  # each part's rows of the stack
        self.leaves = list(self.stack.parameters())
        self.views = [self.leaves] if len(self.rows) == 1 else [[p.detach()[a:b] for p in self.leaves] for a, b in self.rows]
        optims = [part[0].cfg.optim for part in parts.values()]
        self.optimizer = build_optimizer(list(zip(optims, self.views)))
        self.scheduler = build_schedule(optims, self.optimizer, total, start)
        self._load_states()

    def __len__(self) -> int:
        return len(self.members)

    def zero_grad(self) -> None:
        self.stack.zero_grad(set_to_none=True)

    def step(self) -> None:
        """One update of every run (its gradients from the backward pass just run)."""
        parted = len(self.views) > 1
        if parted:  # each part's gradients: views of the leaves' rows
            for views, (a, b) in zip(self.views, self.rows):
                for view, leaf in zip(views, self.leaves):
                    view.grad = None if leaf.grad is None else leaf.grad[a:b]
        self.optimizer.step()
        self.scheduler.step()
        if parted:  # the views must not keep this step's gradients alive into the next backward
            for views in self.views:
                for view in views:
                    view.grad = None

    def without(self, gone: list[Member], step: int) -> "Pack | None":
        """The pack of the members not in `gone`, continuing from `step` (None if none is left)."""
        kept = [m for m in self.members if m not in gone]
        self._store_states()
        return Pack(kept, self.total, step) if kept else None

    def save(self, step: int) -> None:
        """Each member's last.pt at `step`, in the lone format, after its metrics are on disk."""
        self._store_states()
        with durable_together():  # one flush for the pack's checkpoints and the metrics before them
            for m in self.members:
                params = list(m.model.parameters())
                optimizer = build_optimizer([(m.cfg.optim, params)])
                for i, state in m.state.items():
                    optimizer.state[params[i]] = state
                m.records.sync_metrics()  # a checkpoint is never ahead of the metrics it continues
                save_checkpoint(m.checkpoint, step, m.model, optimizer,
                                build_schedule([m.cfg.optim], optimizer, self.total, step))

    def _runs(self):
        """(member, its part's views, its row in them), in stack order."""
        for views, (a, b) in zip(self.views, self.rows):
            for row, m in enumerate(self.members[a:b]):
                yield m, views, row

    def _store_states(self) -> None:
        """The stack's parameters, running statistics and optimizer state into each member's own."""
        self.stack.sync()
        for m, views, row in self._runs():
            m.state = {i: _unstacked(self.optimizer.state[v], row, self.stack.alone)
                       for i, v in enumerate(views) if v in self.optimizer.state}

    def _load_states(self) -> None:
        for views, (a, b) in zip(self.views, self.rows):
            for i, view in enumerate(views):
                states = [m.state.get(i) for m in self.members[a:b]]
                if states[0] is not None:  # torch makes its state at the first step
                    self.optimizer.state[view] = {key: _stacked([s[key] for s in states], self.stack.alone)
                                                  for key in states[0]}


def _stacked(values: list, alone: bool):
    """Run values of one state entry as the stack holds it: parameter-shaped tensors stacked, a
    shared scalar (Adam's step count) or None once."""
    if alone or not (isinstance(values[0], Tensor) and values[0].dim()):
        return values[0]
    return torch.stack(values)


def _unstacked(state: dict, row: int, alone: bool) -> dict:
    """Run `row`'s own state entries, from the stack's (the inverse of _stacked)."""
    def value(v):
        if not isinstance(v, Tensor):
            return v
        return v.clone() if alone or not v.dim() else v[row].clone()

    return {key: value(v) for key, v in state.items()}


def _indexed(optimizer: torch.optim.Optimizer) -> OptimizerState:
    """A lone optimizer's state by parameter index (the order of model.parameters())."""
    params = optimizer.param_groups[0]["params"]
    return {i: dict(optimizer.state[p]) for i, p in enumerate(params) if p in optimizer.state}
