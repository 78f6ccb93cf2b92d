"""last.pt: everything needed to continue a run to the same result."""

import logging
from pathlib import Path

import torch

from initlab.track.records import atomic_file

log = logging.getLogger(__name__)
STATE_KEYS = {"step", "model", "optimizer", "scheduler"}


def save_checkpoint(path: Path, step: int, model, optimizer, scheduler) -> None:
    state = {"step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict()}
    with atomic_file(path) as f:  # a crash or a full disk mid-save keeps the previous checkpoint
        torch.save(state, f)


def load_checkpoint(path: Path, model, optimizer, scheduler) -> int:
    """Restore the states in place; return the step to continue from.

    No last.pt: 0. An unreadable one (damaged on disk; our own writes are atomic) is not
    worth a stopped sweep: the run starts again from step 0, with a warning, and its
    records end the same as if it had never been interrupted.
    """
    if not path.exists():
        return 0
    try:
        state = torch.load(path, map_location=next(model.parameters()).device, weights_only=True)
        if not (isinstance(state, dict) and STATE_KEYS <= state.keys()):
            raise ValueError(f"not a checkpoint: it lacks {sorted(STATE_KEYS)}")
    except Exception as err:  # torch.load raises many types for a damaged file; all mean "unusable"
        log.warning("%s is unreadable (%s): starting again from step 0", path, " ".join(str(err).split())[:200])
        return 0
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    return state["step"]
