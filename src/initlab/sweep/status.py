"""A sweep's job table, read from the run records alone."""

import json
from pathlib import Path

import pandas as pd
import yaml

from initlab.track.records import read_summary

COLUMNS = ["job", "overrides", "status", "steps", "train/loss", "test/acc"]


def job_table(sweep_dir: Path) -> pd.DataFrame:
    """One row per job folder (those with .hydra/overrides.yaml), in job-number order.

    A job with no summary.json yet is `running` (or was interrupted); its steps come from
    the last line of metrics.jsonl.
    """
    rows = []
    job_dirs = [p.parents[1] for p in Path(sweep_dir).glob("*/.hydra/overrides.yaml")]
    for job_dir in sorted(job_dirs, key=_job_number):
        overrides = yaml.safe_load((job_dir / ".hydra" / "overrides.yaml").read_text()) or []
        summary = read_summary(job_dir) or {"status": "running", "steps": _last_step(job_dir)}
        rows.append({"job": _job_number(job_dir), "overrides": " ".join(overrides),
                     **{k: summary.get(k) for k in COLUMNS[2:]}, "dir": str(job_dir),
                     "error": summary.get("error") or summary.get("reason")})
    return pd.DataFrame(rows, columns=[*COLUMNS, "dir", "error"])


def format_table(table: pd.DataFrame) -> str:
    """The table with only the overrides that vary between jobs; the shared ones head it."""
    if table.empty:
        return "no jobs found"
    split = [o.split() for o in table["overrides"]]
    common = [o for o in split[0] if all(o in s for s in split)]
    shown = table[COLUMNS].assign(overrides=[" ".join(o for o in s if o not in common) for s in split])
    counts = table["status"].value_counts().to_dict()
    failed = table[table["status"] == "failed"]
    lines = [f"all jobs: {' '.join(common)}", shown.to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.4g}"),
             "", "  ".join(f"{k}: {v}" for k, v in sorted(counts.items()))]
    lines += [f"job {r.job} failed: {r.error}  ({r.dir})" for r in failed.itertuples()]
    return "\n".join(lines)


def _job_number(job_dir: Path) -> int:
    """Job folders are named <job number>_<overrides> (hydra.sweep.subdir in conf/train.yaml)."""
    head = job_dir.name.split("_", 1)[0]
    return int(head) if head.isdigit() else -1


def _last_step(job_dir: Path) -> int | None:
    path = job_dir / "metrics.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return json.loads(lines[-1])["step"] if lines else None
