"""Read a sweep back from its run records alone (no wandb): jobs, grid axes, cells, metrics."""

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from initlab.sweep.status import job_table
from initlab.track.records import FINAL_METRICS, read_summary

# Overrides that say how a sweep ran, not what it measured.
NOT_AXES = ("experiment", "train.resume", "train.progress", "logger.mode", "device", "data.root")


@dataclass
class Sweep:
    dir: Path
    jobs: pd.DataFrame  # one row per job: job, dir, status, steps, FINAL_METRICS, seed, one column per axis
    axes: list[str]  # override keys that vary between jobs, seed excluded, in Hydra's order
    metrics: dict[int, pd.DataFrame]  # job -> its metrics.jsonl
    weights: dict[int, list[dict]]  # job -> init.json records of its Linear/Conv weights, in order
    overrides: dict[int, list[str]]  # job -> its overrides as Hydra recorded them
    summaries: dict[int, dict]  # job -> its summary.json ({} while it has none)

    def weight_layers(self, job: int) -> list[str]:
        return [r["layer"] for r in self.weights[job]]

    def cells(self) -> pd.core.groupby.DataFrameGroupBy:
        return self.jobs.groupby(self.axes, sort=False, dropna=False) if self.axes else self.jobs.groupby(lambda _: "all")

    def cell_label(self, values, skip: str | None = None) -> str:
        """'init=xavier, depth=30' for a cell (the `skip` axis left out: a figure panel shows it)."""
        values = values if isinstance(values, tuple) else (values,)
        return ", ".join(f"{_short(a)}={v}" for a, v in zip(self.axes, values) if a != skip) or "all runs"


def load_sweep(sweep_dir: Path) -> Sweep:
    table = job_table(Path(sweep_dir))
    if table.empty:
        raise FileNotFoundError(f"no jobs (folders with .hydra/overrides.yaml) in {sweep_dir}")
    overrides = {row.job: row.overrides.split() for row in table.itertuples()}
    settings = {job: dict(o.split("=", 1) for o in ovr) for job, ovr in overrides.items()}
    keys = list(dict.fromkeys(k for s in settings.values() for k in s))
    axes = [k for k in keys if k not in NOT_AXES and k != "seed"
            and len({s.get(k) for s in settings.values()}) > 1]
    jobs = table.drop(columns=["overrides"]).copy()
    for key in axes + ["seed"]:
        jobs[key] = [_typed(settings[j].get(key)) for j in jobs["job"]]
    summaries = {j: read_summary(Path(d)) or {} for j, d in zip(jobs["job"], jobs["dir"])}
    for key in FINAL_METRICS:  # null (a non-finite value, or never measured) becomes NaN
        jobs[key] = pd.to_numeric(pd.Series([summaries[j].get(key) for j in jobs["job"]], index=jobs.index),
                                  errors="coerce")
    metrics = {j: _metrics(Path(d)) for j, d in zip(jobs["job"], jobs["dir"])}
    weights = {j: _weight_records(Path(d)) for j, d in zip(jobs["job"], jobs["dir"])}
    return Sweep(Path(sweep_dir), jobs, axes, metrics, weights, overrides, summaries)


def _metrics(job_dir: Path) -> pd.DataFrame:
    path = job_dir / "metrics.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return pd.DataFrame(rows)


def _weight_records(job_dir: Path) -> list[dict]:
    path = job_dir / "init.json"
    records = json.loads(path.read_text()) if path.exists() else []
    return [r for r in records if r["param"] == "weight" and r["fan_in"] is not None]


def _typed(value: str | None):
    """'30' -> 30, '0.5' -> 0.5, 'true' -> True: axis values sort and plot as what they are."""
    if value is None:
        return None
    loaded = yaml.safe_load(value)
    return loaded if isinstance(loaded, (int, float, bool)) else value


def _short(axis: str) -> str:
    return axis.split(".")[-1]


def read_config(job_dir: Path) -> dict:
    return yaml.safe_load((Path(job_dir) / "config.yaml").read_text())
