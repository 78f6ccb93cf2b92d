"""Run `python train.py ...` as a user would, in a subprocess, and read its records."""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def train(run_dir: Path, *overrides: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """One run into `run_dir`; wandb off unless an override turns it on."""
    args = [sys.executable, str(REPO / "train.py"), f"hydra.run.dir={run_dir}", "train.progress=false", *overrides]
    if not any(o.startswith("logger") for o in overrides):
        args.append("logger=none")
    full_env = {**os.environ, "WANDB_SILENT": "true", **(env or {})}
    proc = subprocess.run(args, cwd=REPO, capture_output=True, text=True, env=full_env, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"train.py failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())
