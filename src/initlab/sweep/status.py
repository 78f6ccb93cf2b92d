"""A sweep's job table, read from the run records alone."""

from pathlib import Path

import pandas as pd
import yaml
from hydra.core.utils import JobReturn
from hydra.errors import OverrideParseException

from initlab.sweep.queue import in_queue, submitted, submitted_jobs
from initlab.track.identity import as_overrides, identity, identity_from_name
from initlab.track.records import run_status

COLUMNS = ["overrides", "status", "steps", "train/loss", "test/acc"]
PROBLEMS = ("failed", "damaged", "stopped")  # listed with their error under the table
ENDED = ("completed", "diverged", "failed", "damaged")  # a run's status no queue can change


def job_table(sweep_dir: Path) -> pd.DataFrame:
    """One row per job folder (those with .hydra/overrides.yaml), keyed by `job`, the folder's name.

    A folder is named by its job's identity, never by the job's place in a grid, so a rerun with
    a changed grid cannot hand one run's records to another. `overrides` lists that identity
    (what the job measures, initlab.track.identity; how it was launched left out), read back
    from the folder's name when overrides.yaml is damaged (None if that name is a hash). Rows follow
    the latest grid that ran them. Status and error come from initlab.track.records.run_status:
    a job with no summary.json yet is `running` while a process writes into it, else `stopped`
    (its steps: the last line of metrics.jsonl); `damaged` when a record cannot be read.
    Jobs submitted to SLURM (initlab.sweep.queue) that have not ended are `pending` or `running`
    as the queue says (a requeued run waiting to resume too), with a row before their folder exists.
    """
    sweep_dir = Path(sweep_dir)
    entries = submitted(sweep_dir)
    queued, states = submitted_jobs(entries), in_queue(entries)
    rows = []
    folders = sorted((p.parents[1] for p in sweep_dir.glob("*/.hydra/overrides.yaml")), key=_grid_order)
    for job_dir in folders:
        overrides = _identity(job_dir)
        summary = run_status(job_dir) if overrides is not None else {
            "status": "damaged", "error": f"{job_dir / '.hydra' / 'overrides.yaml'} cannot be read"}
        if overrides is None:  # its identity is also its folder's name
            overrides = identity_from_name(job_dir.name)
        if job_dir.name in states and summary["status"] not in ENDED:
            summary = {**summary, "status": states[job_dir.name]}
        rows.append(_row(job_dir, overrides, summary))
    unstarted = sorted((job for name, job in queued.items() if not (sweep_dir / name).is_dir()), key=lambda j: j["num"])
    rows += [_row(sweep_dir / job["dir"], as_overrides(identity(job["overrides"])),
                  {"status": states.get(job["dir"], "not started")}) for job in unstarted]
    return pd.DataFrame(rows, columns=["job", *COLUMNS, "dir", "error"])


def _row(job_dir: Path, overrides: list[str] | None, summary: dict) -> dict:
    return {"job": job_dir.name, "overrides": overrides, **{k: summary.get(k) for k in COLUMNS[1:]}, "dir": str(job_dir),
            "error": summary.get("error") or summary.get("reason")}


def outcome_table(jobs: list, results: dict[int, JobReturn], done: dict[int, object],
                  in_flight: dict[Path, str]) -> pd.DataFrame:
    """job_table's rows for the jobs of a grid just launched (initlab.sweep.compose.Job): from
    the outcomes their launcher returned or that `done` holds (both by job number), without a
    file read per job (a grid may hold thousands); the SLURM state of the folders `in_flight`
    (`pending`, `running`); else from their records (jobs that ran elsewhere or in a worker, or
    were stopped), else `not started`."""
    from initlab.train.pack import Outcome  # here: `sweep.py status` needs no torch

    outcomes = {num: r._return_value for num, r in results.items() if isinstance(r._return_value, Outcome)}
    rows = []
    for job in jobs:
        folder = job.dir.absolute()
        outcome = outcomes.get(job.num) or done.get(job.num)
        summary = ({"status": outcome.status, "steps": outcome.steps, "reason": outcome.reason, **outcome.metrics}
                   if outcome is not None else {"status": in_flight[folder]} if folder in in_flight
                   else run_status(folder) if folder.is_dir() else {"status": "not started"})
        rows.append(_row(folder, as_overrides(identity(job.hydra["overrides"]["task"])), summary))
    return pd.DataFrame(rows, columns=["job", *COLUMNS, "dir", "error"])


def format_table(table: pd.DataFrame, most: int | None = None) -> str:
    """The table with only the overrides that vary between jobs; the shared ones head it, the
    count per status and each job with a problem follow. With more than `most` jobs, the rows are
    left out (the counts and problems stay)."""
    if table.empty:
        return "no jobs found"
    lists = [s or [] for s in table["overrides"]]  # None: a damaged job whose name is a hash
    common = [o for o in lists[0] if all(o in s for s in lists)]
    shown = table[COLUMNS].assign(overrides=[" ".join(o for o in s if o not in common) or "-" for s in lists])
    counts = table["status"].value_counts().to_dict()
    rows = (shown.to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.4g}") if most is None or len(table) <= most
            else f"({len(table)} jobs: `python scripts/sweep.py status {Path(table['dir'][0]).parent}` lists them all)")
    lines = [f"all jobs: {' '.join(common)}", rows, "", "  ".join(f"{k}: {v}" for k, v in sorted(counts.items()))]
    lines += [f"{status}: {job}: {error}  ({job_dir})" for job, status, error, job_dir
              in zip(shown["overrides"], table["status"], table["error"], table["dir"]) if status in PROBLEMS]
    return "\n".join(lines)


def _identity(job_dir: Path) -> list[str] | None:
    """The job's identity, from the overrides Hydra recorded for it; None when that file is damaged."""
    try:
        overrides = yaml.safe_load((job_dir / ".hydra" / "overrides.yaml").read_text())
        return as_overrides(identity(overrides)) if isinstance(overrides, list) else None
    except (OSError, yaml.YAMLError, OverrideParseException, TypeError):
        return None


def _grid_order(job_dir: Path) -> tuple[float, str]:
    """(the job's number in the latest grid that ran it, its name): the order it was typed in."""
    try:
        # libyaml's loader: hydra.yaml is long, and a report reads one per job
        hydra = yaml.load((job_dir / ".hydra" / "hydra.yaml").read_text(), Loader=yaml.CSafeLoader)
        return float(hydra["hydra"]["job"]["num"]), job_dir.name
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError):
        return float("inf"), job_dir.name
