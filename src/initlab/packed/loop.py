"""The training loop of a pack: initlab.train.loop.train, step for step, for K runs at once.

Every run keeps what makes it itself: its own batches (its seed's Batches), learning rate and
schedule, optimiser hyperparameters, metrics, divergence step and last.pt (the lone format,
written through the lone model, optimizer and scheduler the run was built with). The loop
syncs with the host at the steps the lone loop does, so each run's records (and the step a
diverged run is found at) are the ones it would have written alone. A run that diverges
leaves the stack: from the next step on it costs nothing and touches no other run.
"""

import logging
import math
import signal
import sys
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim.lr_scheduler import LambdaLR
from tqdm import tqdm

from initlab.data import Data
from initlab.data.batches import Batches
from initlab.packed.optim import StackedOptimizer
from initlab.packed.stack import StackedMLP, Trace
from initlab.track.records import RunRecords
from initlab.train.checkpoint import load_checkpoint
from initlab.train.loop import SYNC_EVERY, Outcome, save_state, total_steps
from initlab.train.optim import build_optimizer, build_schedule
from initlab.train.preemption import StopRequest

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Member:
    """One run of a pack: its config, records, outcome and initialised lone model (whose
    optimizer and scheduler are built here for last.pt only: the stacked optimizer steps)."""

    cfg: object
    records: RunRecords
    outcome: Outcome
    model: nn.Module
    device: str
    start: int = 0  # the step it (re)starts from
    error: BaseException | None = None  # what failed it
    optimizer: torch.optim.Optimizer | None = None
    scheduler: LambdaLR | None = None
    batches: Batches | None = None


def train_pack(members: list[Member], data: Data, stop: StopRequest) -> None:
    """Train every member to its end, divergence, or the step boundary after `stop` is requested;
    each member's outcome is kept current as it goes. (Batches are gathered by index for all runs
    at once, so no augmentation: the pack key keeps augmented runs out.)"""
    cfg = members[0].cfg  # the pack key makes model, data and train the same for all
    for m in members:
        m.batches = Batches(data, m.cfg.data.batch_size, m.cfg.seed, m.cfg.data.augment)
        m.optimizer = build_optimizer(m.cfg.optim, m.model.parameters())
        total = total_steps(cfg.train, m.batches.steps_per_epoch)
        m.scheduler = build_schedule(m.cfg.optim, m.optimizer, total)
    starts = {}
    for m in members:
        checkpoint = m.records.dir / "last.pt"
        with m.records.train_log():
            m.start = load_checkpoint(checkpoint, m.model, m.optimizer, m.scheduler) if cfg.train.resume else 0
            if m.start:
                log.info("resuming from %s at step %d", checkpoint, m.start)
        starts.setdefault(m.start, []).append(m)
    for start, group in sorted(starts.items()):  # runs resumed from different steps: one pack each
        _train(group, data, start, total, stop)


def _train(members: list[Member], data: Data, start: int, total: int, stop: StopRequest) -> None:
    tc, mc = members[0].cfg.train, members[0].cfg.model
    model = StackedMLP([m.model for m in members], mc.activation.value, mc.negative_slope)
    optimizer = StackedOptimizer(model.params, [m.cfg.optim for m in members])
    for k, m in enumerate(members):
        optimizer.load_run_state(k, m.optimizer, start)
        m.records.truncate_metrics(start)
    alive = list(members)  # the runs in the stack, in stack order
    pending: list[Tensor] = []  # [K] losses per step, not yet checked on the host
    bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True, desc=f"pack of {len(members)}",
               disable=not (tc.progress and sys.stderr.isatty()))
    for step in range(start, total + 1):
        for m in alive:
            m.outcome.steps = step
        idx = torch.stack([m.batches.indices(step) for m in alive])  # [K, batch]: one gather for all runs
        x, y = data.x_train[idx], data.y_train[idx]
        log_now = step % tc.log_every == 0 or step == total
        trace = Trace([], []) if log_now else None
        logits = model(x, trace=trace)
        losses = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(y.shape).mean(1)
        for p in model.params:
            p.grad = None
        losses.sum().backward()  # each run's gradient is its own loss's: the runs share no parameter
        pending.append(losses.detach())

        record = {}
        if log_now:
            acc = (logits.argmax(2) == y).float().mean(1)
            record = {"train/loss": losses.detach(), "train/acc": acc, **model.stats(trace)}
        if step % tc.eval_every == 0 or step == total:
            record |= evaluate(model, data, members[0].cfg.data.eval_batch_size)
        if step < total:
            before = model.snapshot() if log_now else None
            optimizer.step([m.scheduler.base_lrs[0] * m.scheduler.lr_lambdas[0](step) for m in alive])
            if log_now:
                record |= model.update_ratios(before)

        stopping = stop.requested and step < total  # read once: a signal may come at any moment
        if record or stopping or len(pending) >= SYNC_EVERY or step == total:
            diverged = _sync(alive, step, torch.stack(pending, 1).tolist(), record)
            pending = []
            bar.update(step - bar.n)
            if diverged:
                keep = [k for k, m in enumerate(alive) if m.outcome.status != "diverged"]
                model.keep(torch.tensor(keep))
                optimizer.keep(torch.tensor(keep), model.params)
                alive = [alive[k] for k in keep]
                if not alive:
                    break
        if stopping or (step < total and (step + 1) % tc.ckpt_every == 0):
            _save_all(alive, step + 1, model, optimizer)
        if stopping:
            for m in alive:
                m.outcome.end("interrupted", step + 1, f"{signal.Signals(stop.signum).name} at step {step + 1}; "
                       "train.resume=true continues from there")
            break
    else:
        _save_all(alive, total, model, optimizer)
        for m in alive:
            m.outcome.end("completed", total)
    bar.close()


def _sync(alive: list[Member], step: int, losses: list[list[float]], record: dict[str, Tensor]) -> bool:
    """Write each run's record of this step and check its losses since the last sync; end the
    runs that diverged (at the step of their first bad loss) and say whether any did."""
    keys = list(record)
    values = torch.stack([record[k].float() for k in keys], 1).tolist() if keys else [[] for _ in alive]
    first = step - len(losses[0]) + 1
    diverged = False
    for m, seen, row in zip(alive, losses, values):
        if keys:
            run_record = {"step": step, **dict(zip(keys, row))}
            m.records.append_metrics(run_record)
            m.outcome.metrics |= run_record
        m.outcome.metrics["train/loss"] = seen[-1]
        limit = m.cfg.train.diverge_loss
        bad = next((i for i, v in enumerate(seen) if not math.isfinite(v) or v > limit), None)
        if bad is not None:
            m.outcome.metrics["train/loss"] = seen[bad]
            m.outcome.end("diverged", first + bad,
                   f"loss {seen[bad]} at step {first + bad} (non-finite or > train.diverge_loss={limit})")
            diverged = True
    return diverged


def _save_all(alive: list[Member], step: int, model: StackedMLP, optimizer: StackedOptimizer) -> None:
    """Each run's last.pt, as the lone loop writes it: its model, torch optimizer and scheduler."""
    for k, m in enumerate(alive):
        with torch.no_grad():
            for p, stacked in zip(m.model.parameters(), model.params):
                p.copy_(stacked[k])
        optimizer.run_state(k, m.optimizer)
        with warnings.catch_warnings():  # the lone optimizer never steps itself; the stacked one did
            warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step")
            m.scheduler.last_epoch = step - 1
            m.scheduler.step()  # -> last_epoch = step, and the optimizer's lr as the lone run has it
        save_state(m.records, step, m.model, m.optimizer, m.scheduler)


@torch.no_grad()
def evaluate(model: StackedMLP, data: Data, batch_size: int) -> dict[str, Tensor]:
    """Per run, mean loss and accuracy on the whole test split (initlab.train.loop.evaluate)."""
    loss_sum = torch.zeros(model.runs, device=data.x_test.device)
    correct = torch.zeros(model.runs, device=data.x_test.device)
    for i in range(0, len(data.y_test), batch_size):
        logits = model(data.x_test[i : i + batch_size], shared=True)
        y = data.y_test[i : i + batch_size]
        loss_sum += F.cross_entropy(logits.flatten(0, 1), y.repeat(model.runs), reduction="none").view(model.runs, -1).sum(1)
        correct += (logits.argmax(2) == y).sum(1)
    n = len(data.y_test)
    return {"test/loss": loss_sum / n, "test/acc": correct / n}
