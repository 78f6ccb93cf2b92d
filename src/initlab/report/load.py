"""Read a sweep back from its run records alone (no wandb): jobs, grid axes, cells, metrics."""

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import pandas as pd
import yaml
from tqdm import tqdm

from initlab.data import DATASETS
from initlab.report.labels import Meaning, meaning
from initlab.sweep.status import job_table
from initlab.track.identity import identity
from initlab.track.records import FINAL_METRICS, DamagedRecord, read_metrics, read_summary
from initlab.track.records import read_config as read_run_config

MIN_TRAINING_STEPS = 10  # runs shorter than this measure their init: no curves, no final accuracy


@dataclass
class Sweep:
    dir: Path
    # one row per job: job (its folder's name, the job's identity), dir, status, steps,
    # FINAL_METRICS, seed, one column per axis
    jobs: pd.DataFrame
    axes: list[str]  # override keys that vary between jobs, seed and operational keys excluded, in Hydra's order
    metrics: dict[str, pd.DataFrame]  # job -> its metrics.jsonl
    weights: dict[str, list[dict]]  # job -> init.json records of its Linear/Conv weights, in order
    overrides: dict[str, list[str]]  # job -> what it measures: its overrides without the operational ones
    summaries: dict[str, dict]  # job -> its summary.json ({} while it has none)
    configs: dict[str, dict] = field(default_factory=dict)  # job -> its config.yaml ({} while it has none)
    protocols: dict[str, dict] = field(default_factory=dict)  # job -> the protocol its grid declared ({}: none)

    def weight_layers(self, job: str) -> list[str]:
        return [r["layer"] for r in self.weights[job]]

    @cached_property
    def shared(self) -> dict:
        """The settings every run with a config.yaml shares, as flat `section.key` -> value."""
        flat = [pd.json_normalize(c, sep=".").iloc[0].to_dict() for c in self.configs.values() if c]
        if not flat:
            return {}
        return {k: v for k, v in flat[0].items() if all(k in f and f[k] == v for f in flat[1:])}

    def meaning(self, axis: str) -> Meaning:
        return meaning(axis, self.shared)

    def init_only(self) -> bool:
        """Whether the runs only measure their init: fewer than MIN_TRAINING_STEPS steps each, too
        few for a training curve or a final accuracy to mean anything."""
        train = [c.get("train", {}) for c in self.configs.values() if c]
        return bool(train) and all(t.get("epochs") is None and t.get("steps", 0) < MIN_TRAINING_STEPS for t in train)

    def cells(self) -> pd.core.groupby.DataFrameGroupBy:
        return self.jobs.groupby(self.axes, sort=False, dropna=False) if self.axes else self.jobs.groupby(lambda _: "all")

    def cell_label(self, values, skip: tuple[str, ...] = ()) -> str:
        """'init=xavier, depth L=30' for a cell, each axis named by its meaning (the `skip` axes left out)."""
        values = values if isinstance(values, tuple) else (values,)
        return ", ".join(f"{self.meaning(a).text}={v}" for a, v in zip(self.axes, values) if a not in skip) or "all runs"


def load_sweep(sweep_dir: Path) -> Sweep:
    table = job_table(Path(sweep_dir))
    if table.empty:
        raise FileNotFoundError(f"no jobs (folders with .hydra/overrides.yaml) in {sweep_dir}")
    overrides = {job: ovr or [] for job, ovr in zip(table["job"], table["overrides"])}
    settings = {job: identity(ovr) for job, ovr in overrides.items()}
    known = [settings[job] for job, ovr in zip(table["job"], table["overrides"]) if ovr is not None]
    keys = list(dict.fromkeys(k for s in known for k in s))
    axes = [k for k in keys if k != "seed" and len({s.get(k) for s in known}) > 1]
    jobs = table.drop(columns=["overrides"]).copy()
    configs, summaries, metrics, weights, protocols = {}, {}, {}, {}, {}
    # thousands of runs take a minute or more to read (~40 ms each): a bar on a terminal says how far it is
    for j, d in tqdm(list(zip(jobs["job"], jobs["dir"])), desc="reading runs", unit="run", disable=None, leave=False):
        configs[j], summaries[j], metrics[j] = read_config(Path(d)), read_summary(Path(d)) or {}, _metrics(Path(d))
        weights[j], protocols[j] = _weight_records(Path(d)), read_protocol(Path(d))
    for key in axes:
        jobs[key] = [_typed(settings[j].get(key)) for j in jobs["job"]]
    # The seed as typed, else as the run's config says (a grid need not sweep it).
    jobs["seed"] = [_typed(settings[j]["seed"]) if "seed" in settings[j] else configs[j].get("seed") for j in jobs["job"]]
    for key in FINAL_METRICS:  # null (a non-finite value, or never measured) becomes NaN
        jobs[key] = pd.to_numeric(pd.Series([summaries[j].get(key) for j in jobs["job"]], index=jobs.index),
                                  errors="coerce")
    return Sweep(Path(sweep_dir), jobs, axes, metrics, weights, overrides, summaries, configs, protocols)


def read_protocol(job_dir: Path) -> dict:
    """The protocol the job's grid declared (hydra.sweeper.protocol, as its .hydra/hydra.yaml
    recorded it); {} where it declared none, or the file is missing or damaged."""
    try:
        # libyaml's loader: hydra.yaml is long, and a report reads one per job
        hydra = yaml.load((job_dir / ".hydra" / "hydra.yaml").read_text(), Loader=yaml.CSafeLoader)
        return hydra["hydra"]["sweeper"].get("protocol") or {}
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError):
        return {}


def _metrics(job_dir: Path) -> pd.DataFrame:
    """The job's metrics.jsonl (a truncated last line dropped); empty when damaged: the job
    table says `damaged`."""
    try:
        return pd.DataFrame(read_metrics(job_dir))
    except DamagedRecord:
        return pd.DataFrame()


def _weight_records(job_dir: Path) -> list[dict]:
    return [r for r in read_init(job_dir) if r.get("param") == "weight" and r.get("fan_in") is not None]


INIT_NUMBERS = ("fan_in", "std", "target_std")  # what the report computes with, beside layer and param


def read_init(job_dir: Path) -> list[dict]:
    """The job's init.json records; none when it is missing or damaged (its figures then show
    the measurements without a theory line)."""
    try:
        records = json.loads((Path(job_dir) / "init.json").read_text())
    except (OSError, ValueError):
        return []
    return records if isinstance(records, list) and all(map(_init_record, records)) else []


def _init_record(record) -> bool:
    """Whether an init.json record holds what the report reads, as numbers where it computes."""
    return (isinstance(record, dict) and isinstance(record.get("layer"), str) and isinstance(record.get("param"), str)
            and all(k in record and (record[k] is None or _number(record[k])) for k in INIT_NUMBERS))


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _typed(value: str | None):
    """'30' -> 30, '0.5' -> 0.5, 'true' -> True: axis values sort and plot as what they are."""
    if value is None:
        return None
    loaded = yaml.safe_load(value)
    return loaded if isinstance(loaded, (int, float, bool)) else value


def num_classes(config: dict) -> int:
    """The run's classes: its dataset's (records before data.num_classes was null for a real
    dataset hold the synthetic default there), or synthetic's own."""
    spec = DATASETS.get(config["data"]["name"])
    return spec.num_classes if spec is not None else config["data"]["num_classes"]


def read_config(job_dir: Path) -> dict:
    """The job's config.yaml; {} when it has none or it is damaged (its status says `damaged`)."""
    try:
        return read_run_config(job_dir) or {}
    except DamagedRecord:
        return {}
