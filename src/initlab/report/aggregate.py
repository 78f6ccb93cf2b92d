"""Per-cell numbers: final metrics as mean with a 95% interval over seeds and n, run counts by
status, and per-layer statistics at init, one row per run."""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from initlab.report.load import Sweep
from initlab.report.stats import Estimate
from initlab.track.records import FINAL_METRICS

STATUSES = ("completed", "diverged", "failed")  # always counted; any other status only where a run has it
BOUNDS = ("low", "high", "n")  # the columns beside a statistic's mean in the cell table: `<key> low`, ...


def statuses(sweep: Sweep) -> list[str]:
    """The status columns of the cell table: STATUSES, then interrupted, stopped, running or
    damaged where some run is, so that every run is counted in one of them."""
    return [*STATUSES, *sorted(set(sweep.jobs["status"]) - set(STATUSES))]


def cell_table(sweep: Sweep) -> pd.DataFrame:
    """One row per grid cell. Final metrics estimate over the cell's completed runs only: a
    diverged run's last numbers are not a final result (the counts say how many there were)."""
    rows = []
    for values, group in sweep.cells():
        values = values if isinstance(values, tuple) else (values,)
        done = group[group["status"] == "completed"]
        row = dict(zip(sweep.axes, values)) | {"runs": len(group)}
        row |= {status: int((group["status"] == status).sum()) for status in statuses(sweep)}
        row["steps"] = group["steps"].mean()
        for key in FINAL_METRICS:
            row |= columns(key, Estimate.of(done[key]))
        rows.append(row)
    return pd.DataFrame(rows)


def columns(key: str, estimate: Estimate) -> dict:
    """An estimate as cell-table columns: `key` (the mean), `key low`, `key high`, `key n`."""
    return {key: estimate.mean, f"{key} low": estimate.low, f"{key} high": estimate.high, f"{key} n": estimate.n}


def estimate(row, key: str, symmetric: bool = True) -> Estimate:
    """The estimate a cell-table row holds in `columns`' form."""
    return Estimate(row[key], row[f"{key} low"], row[f"{key} high"], int(row[f"{key} n"]), symmetric)


@dataclass(frozen=True)
class Profile:
    """A statistic along a cell's layers: one row per run (its job in `jobs`), one column per layer."""

    jobs: tuple[str, ...]
    runs: np.ndarray

    def layers(self, geometric: bool = True) -> list[Estimate]:
        """Per layer, the estimate over runs (geometric: statistics that span decades)."""
        of = Estimate.geometric_of if geometric else Estimate.of
        return [of(column) for column in self.runs.T]

    def centre(self, geometric: bool = True) -> np.ndarray:
        return np.array([e.mean for e in self.layers(geometric)])

    def per_run(self, job: str) -> np.ndarray:
        return self.runs[self.jobs.index(job)]


def layer_profile(sweep: Sweep, prefix: str, step: int = 0, hidden: bool = False) -> dict[tuple, Profile]:
    """Per cell, `prefix/<layer>` at `step` along the weight layers (`hidden`: all but the output
    layer, for statistics of the nonlinearity's output), one row per run that logged that step;
    a cell whose runs differ in depth, or that leaves a layer unmeasured, has none."""
    profiles = {}
    for values, group in sweep.cells():
        runs = {job: row for job in group["job"] if (row := _layer_row(sweep, job, prefix, step, hidden)) is not None}
        matrix = np.array(list(runs.values()), dtype=float) if len({len(r) for r in runs.values()}) == 1 else None
        if matrix is not None and not np.isnan(matrix).all(axis=0).any():
            profiles[values if isinstance(values, tuple) else (values,)] = Profile(tuple(runs), matrix)
    return profiles


def _layer_row(sweep: Sweep, job: str, prefix: str, step: int, hidden: bool) -> list[float] | None:
    frame = sweep.metrics[job]
    if frame.empty or "step" not in frame or not (frame["step"] == step).any():
        return None
    row = frame[frame["step"] == step].iloc[0]
    layers = sweep.weight_layers(job)[:-1] if hidden else sweep.weight_layers(job)
    return [row.get(f"{prefix}/{layer}", np.nan) for layer in layers] or None
