"""last.pt: everything needed to continue a run to the same result."""

import os
from pathlib import Path

import torch


def save_checkpoint(path: Path, step: int, model, optimizer, scheduler) -> None:
    state = {"step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict()}
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # atomic: a crash mid-save keeps the previous checkpoint


def load_checkpoint(path: Path, model, optimizer, scheduler) -> int:
    """Restore the states in place; return the step to continue from."""
    state = torch.load(path, map_location=next(model.parameters()).device, weights_only=True)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    return state["step"]
