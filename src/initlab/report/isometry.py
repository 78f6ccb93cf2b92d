"""Per-run numbers of dynamical-isometry studies (Pennington et al. 2017; Xiao et al. 2018): the
Jacobian's spectrum at init as the run's jacobian.json measured and predicted it, and how far the
run trained in its budget; and these gathered per cell or per seed, for claims and figures.

The spectrum's width is its spread Var[s^2] / E[s^2]^2 (s a singular value of J): scale-free, so a
net whose mean s^2 shrinks through a tanh transient is compared with one that keeps it at 1; an
isometry has spread 0, and free probability predicts it grows linearly with depth except for
orthogonal weights on a nearly linear nonlinearity.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd

from initlab.report.load import Sweep
from initlab.report.stats import Estimate

LATE = 0.2  # a run's loss after its budget: the mean over its logged steps in the last fifth (one batch is noisy)
LATE_TEXT = f"train loss, mean over the logged steps of the last {LATE:.0%} of the budget"
SPECTRUM = {  # column -> (jacobian.json key of the mean, of the variance)
    "spread": ("sv2_mean", "sv2_var"),
    "predicted_spread": ("predicted_sv2_mean", "predicted_sv2_var"),
}


def read_jacobian(job_dir: Path) -> dict:
    """The run's jacobian.json; {} where it has none or it is damaged."""
    try:
        record = json.loads((Path(job_dir) / "jacobian.json").read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def spectra(sweep: Sweep) -> pd.DataFrame:
    """One row per job (index: job): sv2_mean, predicted_sv2_mean, spread and predicted_spread;
    NaN where the run did not measure or predict it, or the spectrum underflowed to zero."""
    rows = {job: _spectrum_row(read_jacobian(Path(d))) for job, d in zip(sweep.jobs["job"], sweep.jobs["dir"])}
    return pd.DataFrame.from_dict(rows, orient="index", columns=["sv2_mean", "predicted_sv2_mean", *SPECTRUM])


def _spectrum_row(record: dict) -> dict:
    row = {key: _number(record.get(key)) for key in ("sv2_mean", "predicted_sv2_mean")}
    for column, (mean, var) in SPECTRUM.items():
        m, v = _number(record.get(mean)), _number(record.get(var))
        row[column] = v / m**2 if m > 0 else np.nan
    return row


def _number(value) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else np.nan


def late_loss(sweep: Sweep) -> pd.Series:
    """Per completed job: its training loss after the budget (LATE). A diverged run has none."""
    values = {}
    for job, status in zip(sweep.jobs["job"], sweep.jobs["status"]):
        frame = sweep.metrics[job]
        if status != "completed" or "train/loss" not in frame or frame.empty:
            values[job] = np.nan
            continue
        logged = frame.dropna(subset="train/loss")
        values[job] = float(logged[logged["step"] >= (1 - LATE) * logged["step"].max()]["train/loss"].mean())
    return pd.Series(values, dtype=float)


def per_seed(sweep: Sweep, values: pd.Series, **where) -> dict:
    """{seed: value} of the jobs whose axes hold these values (one job per seed in a cell)."""
    jobs = sweep.jobs
    for key, value in where.items():
        jobs = jobs[jobs[key] == value] if key in jobs else jobs.iloc[0:0]
    return {seed: values.get(job, np.nan) for seed, job in zip(jobs["seed"], jobs["job"])}


def paired(a: dict, b: dict, how) -> dict:
    """{seed: how(a[seed], b[seed])} for each seed both have: runs of one seed see the same batches."""
    return {s: how(a[s], b[s]) for s in sorted(a.keys() & b.keys())}


def ratio(sweep: Sweep, values: pd.Series, over: dict, under: dict, **at) -> dict:
    """{seed: value of the `over` job / value of the `under` job}, both also at `at`, paired by seed."""
    return paired(per_seed(sweep, values, **over, **at), per_seed(sweep, values, **under, **at), lambda a, b: a / b)


def by_cell(sweep: Sweep, values: pd.Series, geometric: bool = False) -> dict[tuple, Estimate]:
    """Per cell, the estimate over its jobs' values (geometric: for quantities that span decades)."""
    of = Estimate.geometric_of if geometric else Estimate.of
    return {(cell if isinstance(cell, tuple) else (cell,)): of(values.reindex(group["job"]).to_numpy())
            for cell, group in sweep.cells()}
