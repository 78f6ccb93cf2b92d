"""What a sweep submitted to SLURM and what of it is still queued: the sweep folder's manifest
(`slurm_jobs.json`: each SLURM task's id and jobs) read against `squeue`. Light on purpose:
`sweep.py status` reads it without torch."""

import json
import subprocess
from pathlib import Path

from initlab.errors import ConfigError
from initlab.track.records import atomic_write

MANIFEST = "slurm_jobs.json"
RUNNING = ("RUNNING", "COMPLETING")  # squeue's states of a task on a node; the others wait in the queue


def record_submission(sweep_dir: Path, tasks: list[dict]) -> None:
    """Add submitted tasks ({"slurm_id", "jobs": [{"dir", "num", "overrides"}]}) to the manifest."""
    atomic_write(Path(sweep_dir) / MANIFEST, json.dumps(submitted(sweep_dir) + tasks, indent=1))


def submitted(sweep_dir: Path) -> list[dict]:
    """The manifest: every task submitted for this sweep folder, oldest first."""
    try:
        return json.loads((Path(sweep_dir) / MANIFEST).read_text())
    except FileNotFoundError:
        return []


def in_queue(entries: list[dict]) -> dict[str, str]:
    """Job folder name -> `pending` or `running`, for the jobs of the manifest `entries` whose
    SLURM task is still queued or running (the latest submission of a job wins)."""
    states = queue_states({entry["slurm_id"] for entry in entries})
    return {job["dir"]: "running" if states[e["slurm_id"]] in RUNNING else "pending"
            for e in entries if e["slurm_id"] in states for job in e["jobs"]}


def submitted_jobs(entries: list[dict]) -> dict[str, dict]:
    """Job folder name -> its manifest entry ({"dir", "num", "overrides"}), for every job submitted."""
    return {job["dir"]: job for entry in entries for job in entry["jobs"]}


class QueueUnreadable(ConfigError):
    """squeue failed: which submitted jobs are still queued cannot be known."""


def queue_states(ids: set[str]) -> dict[str, str]:
    """SLURM id (`<array>_<task>`) -> squeue's state, for the tasks of `ids` still in the queue."""
    if not ids:
        return {}
    # all of this user's tasks, one per line: `-j <ids>` fails whole when one of them left the queue
    try:
        out = subprocess.run(["squeue", "--me", "-h", "-r", "-o", "%i %T"], capture_output=True, text=True)
    except FileNotFoundError:
        raise QueueUnreadable("squeue", None, "not found: this machine has no SLURM client to read the queue the "
                              "sweep's slurm_jobs.json was submitted to") from None
    if out.returncode:
        raise QueueUnreadable("squeue", out.returncode, " ".join(out.stderr.split()) or "failed") from None
    states = dict(line.split() for line in out.stdout.splitlines() if line.strip())
    return {i: state for i, state in states.items() if i in ids}
