"""The training loop: one function, read top to bottom (in the spirit of nanoGPT's train.py).

Step s means "after s updates". Logging steps (s % log_every == 0, and the last step) run
the forward pass under the probe's hooks and record per-layer statistics for the weights
as they are at s, then the update s -> s + 1 and its size. The loss of every step is kept
on the device and checked for divergence at each sync point, so ordinary steps never wait
for the host.
"""

import logging
import math
import signal
import sys
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from initlab.data import Data
from initlab.data.batches import Batches
from initlab.diagnostics.probe import Probe, to_floats
from initlab.track.records import RunRecords
from initlab.train.checkpoint import load_checkpoint, save_checkpoint
from initlab.train.optim import build_optimizer, build_schedule
from initlab.train.preemption import StopRequest

log = logging.getLogger(__name__)
SYNC_EVERY = 25  # steps between host syncs outside logging steps (progress bar, divergence check)


@dataclass
class Outcome:
    status: str  # completed | diverged | interrupted (running while the loop fills it in)
    steps: int  # steps reached
    metrics: dict = field(default_factory=dict)  # latest value of every logged metric
    reason: str | None = None

    def end(self, status: str, steps: int, reason: str | None = None) -> "Outcome":
        """The run ended `status` at `steps`; the loop returns the outcome it filled in."""
        self.status, self.steps, self.reason = status, steps, reason
        return self


def total_steps(cfg, steps_per_epoch: int) -> int:
    return math.ceil(cfg.epochs * steps_per_epoch) if cfg.epochs is not None else cfg.steps


def train(cfg, model: nn.Module, data: Data, records: RunRecords, mirror, outcome: Outcome | None = None,
          stop: StopRequest | None = None) -> Outcome:
    """Train to the end, to divergence, or to the step boundary after `stop` is requested
    (last.pt saved there). `outcome` is kept current as it goes (steps reached, latest
    metrics), so a caller knows how far a run got even when it fails."""
    outcome = outcome or Outcome("running", 0)
    stop = stop or StopRequest()
    tc = cfg.train
    batches = Batches(data, cfg.data.batch_size, cfg.seed, cfg.data.augment)
    total = total_steps(tc, batches.steps_per_epoch)
    optimizer = build_optimizer(cfg.optim, model.parameters())
    scheduler = build_schedule(cfg.optim, optimizer, total)
    checkpoint = records.dir / "last.pt"
    start = load_checkpoint(checkpoint, model, optimizer, scheduler) if tc.resume else 0
    if start:
        log.info("resuming from %s at step %d", checkpoint, start)
    records.truncate_metrics(start)
    probe = Probe(model)
    pending: list[Tensor] = []  # losses not yet checked on the host
    bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True,
               disable=not (tc.progress and sys.stderr.isatty()))
    model.train()
    for step in range(start, total + 1):
        outcome.steps = step
        x, y = batches(step)
        log_now = step % tc.log_every == 0 or step == total
        with probe.capture() if log_now else nullcontext():
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
        pending.append(loss.detach())

        record = {}
        if log_now:
            acc = (logits.argmax(1) == y).float().mean()
            record = {"train/loss": loss, "train/acc": acc, **probe.stats}
        if step % tc.eval_every == 0 or step == total:
            record |= evaluate(model, data, cfg.data.eval_batch_size)
        if step < total:
            with probe.update() if log_now else nullcontext():
                optimizer.step()
            scheduler.step()
            if log_now:
                record |= probe.stats  # now with the update ratios

        stopping = stop.requested and step < total  # read once: a signal may come at any moment
        if record or stopping or len(pending) >= SYNC_EVERY or step == total:
            losses, first = torch.stack(pending).tolist(), step - len(pending) + 1
            pending = []
            if record:
                record = to_floats({"step": step, **record})
                records.append_metrics(record)
                mirror.log(record)
                outcome.metrics |= record
            outcome.metrics["train/loss"] = losses[-1]
            bar.update(step - bar.n)
            bar.set_postfix(loss=f"{losses[-1]:.4g}", acc=f"{outcome.metrics.get('train/acc', math.nan):.3f}")
            bad = next((i for i, v in enumerate(losses) if not math.isfinite(v) or v > tc.diverge_loss), None)
            if bad is not None:
                bar.close()
                value = losses[bad]
                outcome.metrics["train/loss"] = value
                return outcome.end("diverged", first + bad,
                              f"loss {value} at step {first + bad} (non-finite or > train.diverge_loss={tc.diverge_loss})")
        if stopping or (step < total and (step + 1) % tc.ckpt_every == 0):
            save_state(records, step + 1, model, optimizer, scheduler)
        if stopping:
            bar.close()
            return outcome.end("interrupted", step + 1, f"{signal.Signals(stop.signum).name} at step {step + 1}; "
                          "train.resume=true continues from there")
    save_state(records, total, model, optimizer, scheduler)
    bar.close()
    return outcome.end("completed", total)


def save_state(records: RunRecords, step: int, model: nn.Module, optimizer, scheduler) -> None:
    """last.pt at `step`, after the metrics up to it are on disk (a checkpoint is never ahead
    of the metrics it resumes)."""
    records.sync_metrics()
    save_checkpoint(records.dir / "last.pt", step, model, optimizer, scheduler)


@torch.no_grad()
def evaluate(model: nn.Module, data: Data, batch_size: int) -> dict[str, Tensor]:
    """Mean loss and accuracy on the whole test split (summed on the device)."""
    model.eval()
    loss_sum = torch.zeros((), device=data.x_test.device)
    correct = torch.zeros((), device=data.x_test.device)
    for i in range(0, len(data.y_test), batch_size):
        logits = model(data.x_test[i : i + batch_size])
        y = data.y_test[i : i + batch_size]
        loss_sum += F.cross_entropy(logits, y, reduction="sum")
        correct += (logits.argmax(1) == y).sum()
    model.train()
    n = len(data.y_test)
    return {"test/loss": loss_sum / n, "test/acc": correct / n}
