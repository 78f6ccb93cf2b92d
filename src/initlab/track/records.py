"""The run's own files: the durable record (wandb only mirrors it).

config.yaml, init.json and summary.json are replaced atomically; metrics.jsonl is
appended and flushed line by line, so a killed run keeps everything logged before it.
"""

import json
import math
import os
import platform
import subprocess
import tempfile
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from omegaconf import OmegaConf

# The final metrics every summary.json carries (null where not measured).
FINAL_METRICS = ("train/loss", "train/acc", "test/loss", "test/acc")
PACKAGES = ("initlab", "torch", "torchvision", "hydra-core", "omegaconf", "wandb", "numpy")


def atomic_write(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, then rename: readers never see half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _finite(value):
    """JSON has no NaN/inf: a non-finite number is written as null (the status says why)."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def to_json(obj) -> str:
    if isinstance(obj, dict):
        obj = {k: _finite(v) for k, v in obj.items()}
    return json.dumps(obj, indent=None if isinstance(obj, dict) else 1, default=str)


class RunRecords:
    def __init__(self, run_dir: Path) -> None:
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.dir / "metrics.jsonl"

    def write_config(self, cfg) -> None:
        atomic_write(self.dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))

    def write_init(self, records: list[dict]) -> None:
        atomic_write(self.dir / "init.json", json.dumps(records, indent=1))

    def write_summary(self, summary: dict) -> None:
        atomic_write(self.dir / "summary.json", json.dumps({k: _finite(v) for k, v in summary.items()}, indent=1))

    def read_summary(self) -> dict | None:
        return read_summary(self.dir)

    def append_metrics(self, record: dict) -> None:
        with self.metrics_path.open("a") as f:
            f.write(to_json(record) + "\n")

    def truncate_metrics(self, from_step: int) -> None:
        """Drop records at or after `from_step`: a resumed run logs them again."""
        if not self.metrics_path.exists():
            self.metrics_path.touch()
            return
        kept = [line for line in self.metrics_path.read_text().splitlines()
                if line.strip() and json.loads(line)["step"] < from_step]
        atomic_write(self.metrics_path, "".join(line + "\n" for line in kept))


def read_summary(run_dir: Path) -> dict | None:
    """A run's summary.json, or None while it has none (still running, or killed)."""
    path = Path(run_dir) / "summary.json"
    return json.loads(path.read_text()) if path.exists() else None


def provenance(device: str) -> dict:
    """Enough to rerun: code version, package versions, machine and time."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "git_sha": git_sha(),
        "versions": {"python": platform.python_version(), **versions},
        "device": device,
        "host": platform.node(),
        "slurm_job_id": _slurm_job_id(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _slurm_job_id() -> str | None:
    """<array id>_<task> for an array task, else the job id; None outside SLURM."""
    env = os.environ
    if env.get("SLURM_ARRAY_JOB_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    return env.get("SLURM_JOB_ID")


def git_sha() -> str | None:
    """The commit of the initlab checkout that runs (suffix -dirty when it has local changes)."""
    repo = Path(__file__).resolve().parents[3]
    try:
        sha = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return sha + ("-dirty" if dirty else "")
