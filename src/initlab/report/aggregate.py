"""Per-cell numbers: final metrics as mean ± std over seeds, run counts by status."""

import numpy as np
import pandas as pd

from initlab.report.load import Sweep
from initlab.track.records import FINAL_METRICS

STATUSES = ("completed", "diverged", "failed")  # always counted; any other status only where a run has it


def statuses(sweep: Sweep) -> list[str]:
    """The status columns of the cell table: STATUSES, then interrupted, stopped, running or
    damaged where some run is, so that every run is counted in one of them."""
    return [*STATUSES, *sorted(set(sweep.jobs["status"]) - set(STATUSES))]


def cell_table(sweep: Sweep) -> pd.DataFrame:
    """One row per grid cell. Final metrics average the cell's completed runs only: a
    diverged run's last numbers are not a final result (the counts say how many there were)."""
    rows = []
    for values, group in sweep.cells():
        values = values if isinstance(values, tuple) else (values,)
        done = group[group["status"] == "completed"]
        row = dict(zip(sweep.axes, values)) | {"runs": len(group)}
        row |= {status: int((group["status"] == status).sum()) for status in statuses(sweep)}
        row["steps"] = group["steps"].mean()
        for key in FINAL_METRICS:
            finite = done[key].dropna()
            row[key] = finite.mean() if len(finite) else np.nan
            row[f"{key} std"] = finite.std(ddof=1) if len(finite) > 1 else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def mean_pm_std(mean: float, std: float) -> str:
    if np.isnan(mean):
        return "–"
    return f"{mean:.4g}" if np.isnan(std) else f"{mean:.4g} ± {std:.2g}"


def layer_profile(sweep: Sweep, prefix: str, step: int = 0) -> dict[tuple, np.ndarray]:
    """Per cell, `prefix/<layer>` at `step` along the weight layers, averaged over seeds
    (geometric mean: these statistics span decades)."""
    profiles = {}
    for values, group in sweep.cells():
        runs = []
        for job in group["job"]:
            frame = sweep.metrics[job]
            if frame.empty or "step" not in frame or not (frame["step"] == step).any():
                continue
            row = frame[frame["step"] == step].iloc[0]
            runs.append([row.get(f"{prefix}/{layer}", np.nan) for layer in sweep.weight_layers(job)])
        runs = np.array(runs, dtype=float) if runs and len({len(r) for r in runs}) == 1 else np.empty((0, 0))
        if runs.size and not np.isnan(runs).all(axis=0).any():  # every layer measured at least once
            with np.errstate(divide="ignore"):
                profiles[values if isinstance(values, tuple) else (values,)] = np.exp(np.nanmean(np.log(runs), axis=0))
    return profiles
