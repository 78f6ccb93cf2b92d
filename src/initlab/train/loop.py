"""The training loop: one function, read top to bottom (in the spirit of nanoGPT's train.py), for
every run: a pack of K runs trains as one Stack, and a lone run is a pack of one.

Step s means "after s updates". Logging steps (s % log_every == 0, and the last step) run
the forward pass under the probe's hooks and record per-layer statistics for the weights
as they are at s, then the update s -> s + 1 and its size. Every run keeps what makes it
itself: its own batches (its seed's), optimiser settings and schedule, metrics, divergence
step and last.pt. The losses of every step stay on the device and are checked for divergence
at each sync point, so ordinary steps never wait for the host; a run found diverged there
leaves the stack and costs nothing more.
"""

import logging
import math
import signal
import sys
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from initlab.data import Data
from initlab.data.batches import Batches, stacked_batch
from initlab.diagnostics.probe import Probe
from initlab.models.stack import Stack
from initlab.train.pack import Member, Outcome, Pack
from initlab.train.preemption import StopRequest

log = logging.getLogger(__name__)
SYNC_EVERY = 25  # steps between host syncs outside logging steps (progress bar, divergence check)
__all__ = ["Member", "Outcome", "train"]


def total_steps(cfg, steps_per_epoch: int) -> int:
    return math.ceil(cfg.epochs * steps_per_epoch) if cfg.epochs is not None else cfg.steps


def train(members: list[Member], data: Data, stop: StopRequest) -> None:
    """Train every member (one pack_key: model, data and train.* are the same) to its end, to
    divergence, or to the step boundary after `stop` is requested (last.pt saved there). Each
    member's outcome is kept current as it goes (steps reached, latest metrics), so a caller
    knows how far a run got even when it fails."""
    cfg = members[0].cfg
    for m in members:
        m.batches = Batches(data, m.cfg.data.batch_size, m.cfg.seed, m.cfg.data.augment)
    total = total_steps(cfg.train, members[0].batches.steps_per_epoch)
    for m in members:
        with m.records.train_log(console=not m.packed):
            if cfg.train.resume and m.resume(total):
                log.info("resuming from %s at step %d", m.checkpoint, m.start)
        m.records.truncate_metrics(m.start)
    for start in sorted({m.start for m in members}):  # runs resumed from different steps: one pack each
        group = [m for m in members if m.start == start]
        if stop.requested:  # stopped while an earlier pack trained: these have not moved
            for m in group:
                m.outcome.end("interrupted", start, f"{signal.Signals(stop.signum).name} before resuming; "
                              "train.resume=true continues from there")
            continue
        _train(Pack(group, total, start), data, start, stop)


def _train(pack: Pack, data: Data, start: int, stop: StopRequest) -> None:
    tc, total = pack.members[0].cfg.train, pack.total
    probe = Probe(pack.stack)
    pending: list[Tensor] = []  # [K] losses per step, not yet checked on the host
    bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True,
               desc=f"pack of {len(pack)}" if len(pack) > 1 else None, disable=not (tc.progress and sys.stderr.isatty()))
    pack.stack.train()
    for step in range(start, total + 1):
        for m in pack.members:
            m.outcome.steps = step
        x, y = stacked_batch([m.batches for m in pack.members], step)  # [K, B, ...], run k's own at k
        log_now = step % tc.log_every == 0 or step == total
        with probe.capture() if log_now else nullcontext():
            logits = pack.stack(x)
            losses = _losses(logits, y)
            pack.zero_grad()
            losses.sum().backward()  # each run's gradient is its own loss's: the runs share no parameter
        pending.append(losses.detach())

        record = {}
        if log_now:
            acc = (logits.argmax(2) == y).float().mean(1)
            record = {"train/loss": losses.detach(), "train/acc": acc, **probe.stats}
        if step % tc.eval_every == 0 or step == total:
            record |= evaluate(pack.stack, data, pack.members[0].cfg.data.eval_batch_size)
        if step < total:
            with probe.update() if log_now else nullcontext():
                pack.step()
            if log_now:
                record |= probe.stats  # now with the update ratios

        stopping = stop.requested and step < total  # read once: a signal may come at any moment
        if record or stopping or len(pending) >= SYNC_EVERY or step == total:
            diverged = _sync(pack.members, step, torch.stack(pending, 1).tolist(), record)
            pending = []
            bar.update(step - bar.n)
            _show(bar, pack)
            if diverged:
                pack = pack.without(diverged, step + 1)
                if pack is None:
                    break
                probe = Probe(pack.stack)
        if stopping or (step < total and (step + 1) % tc.ckpt_every == 0):
            pack.save(step + 1)
        if stopping:
            for m in pack.members:
                m.outcome.end("interrupted", step + 1, f"{signal.Signals(stop.signum).name} at step {step + 1}; "
                              "train.resume=true continues from there")
            break
    else:
        pack.save(total)
        for m in pack.members:
            m.outcome.end("completed", total)
    bar.close()


def _losses(logits: Tensor, y: Tensor, reduction: str = "mean") -> Tensor:
    """Each run's cross-entropy [K] (its mean or sum over the batch) of logits [K, B, C], labels
    [K, B]. Its gradients are bit for bit those of K separate F.cross_entropy calls; its values may
    differ from theirs in the last bit (the sum runs in another order), so a lone run keeps
    torch's own call and equals a plain torch loop."""
    if len(logits) == 1:
        return F.cross_entropy(logits[0], y[0], reduction=reduction).unsqueeze(0)
    per_example = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(y.shape)
    return per_example.mean(1) if reduction == "mean" else per_example.sum(1)


def _sync(members: list[Member], step: int, losses: list[list[float]], record: dict[str, Tensor]) -> list[Member]:
    """Write each run's record of this step (one host copy for all) and check its losses since
    the last sync; end the runs that diverged, at the step of their first bad loss, and return them."""
    keys = list(record)
    values = torch.stack([record[k].float() for k in keys], 1).tolist() if keys else [[] for _ in members]
    first = step - len(losses[0]) + 1
    diverged = []
    for m, seen, row in zip(members, losses, values):
        if keys:
            run_record = {"step": step, **dict(zip(keys, row))}
            m.records.append_metrics(run_record)
            m.mirror.log(run_record)
            m.outcome.metrics |= run_record
        m.outcome.metrics["train/loss"] = seen[-1]
        limit = m.cfg.train.diverge_loss
        bad = next((i for i, v in enumerate(seen) if not math.isfinite(v) or v > limit), None)
        if bad is not None:
            m.outcome.metrics["train/loss"] = seen[bad]
            m.outcome.end("diverged", first + bad,
                          f"loss {seen[bad]} at step {first + bad} (non-finite or > train.diverge_loss={limit})")
            diverged.append(m)
    return diverged


def _show(bar: tqdm, pack: Pack) -> None:
    """A lone run's latest loss and accuracy; a pack's runs still training."""
    if len(pack) > 1:
        bar.set_postfix(runs=len(pack))
    else:
        metrics = pack.members[0].outcome.metrics
        bar.set_postfix(loss=f"{metrics['train/loss']:.4g}", acc=f"{metrics.get('train/acc', math.nan):.3f}")


@torch.no_grad()
def evaluate(stack: Stack, data: Data, batch_size: int) -> dict[str, Tensor]:
    """Per run [K], mean loss and accuracy on the whole test split (summed on the device)."""
    stack.eval()
    loss_sum = torch.zeros(len(stack), device=data.x_test.device)
    correct = torch.zeros(len(stack), device=data.x_test.device)
    for i in range(0, len(data.y_test), batch_size):
        x, y = data.x_test[i : i + batch_size], data.y_test[i : i + batch_size]
        logits = stack(x, shared=True)
        loss_sum += _losses(logits, y.expand(len(stack), -1), reduction="sum")
        correct += (logits.argmax(2) == y).sum(1)
    stack.train()
    n = len(data.y_test)
    return {"test/loss": loss_sum / n, "test/acc": correct / n}
