"""Sweeps through the real launchers: folders, failures, parallel workers, kill and resume."""

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from cli import REPO, metrics, summary
from initlab.config import register_configs
from initlab.errors import ConfigError
from initlab.sweep.plan import plan_sweep
from initlab.sweep.status import job_table

register_configs()
SWEEP = [sys.executable, str(REPO / "scripts" / "sweep.py")]
ENV = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}


def sweep(sweep_dir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([*SWEEP, "experiment=smoke", f"hydra.sweep.dir={sweep_dir}", "train.progress=false", *args],
                          cwd=REPO, capture_output=True, text=True, env=ENV, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"sweep failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def job_dirs(sweep_dir: Path) -> list[Path]:
    return sorted((p for p in sweep_dir.iterdir() if (p / ".hydra").is_dir()), key=lambda p: int(p.name.split("_")[0]))


def test_plan_lists_the_folders_hydra_creates_and_each_job_has_its_own_records_and_wandb_run(tmp_path):
    plan = plan_sweep(["experiment=smoke", f"hydra.sweep.dir={tmp_path}", "train.resume=true", "train.progress=false"])
    assert [j.num for j in plan.jobs] == [0, 1, 2, 3]
    dry = sweep(tmp_path, "--dry-run")
    assert "4 jobs" in dry.stdout and not any(tmp_path.iterdir())  # a dry run starts nothing
    proc = sweep(tmp_path)
    assert [p.name for p in job_dirs(tmp_path)] == [j.dir.name for j in plan.jobs]
    assert plan.jobs[1].dir.name == "1_init=xavier,seed=1"
    runs = set()
    for job in plan.jobs:
        assert summary(job.dir)["status"] == "completed"
        [run] = list((job.dir / "wandb").glob("offline-run-*"))
        runs.add(run.name)
        state = json.loads(subprocess.run(["wandb", "leet", "inspect", "--summary", "--json", str(run)],
                                          capture_output=True, text=True, check=True).stdout)
        assert state["state"] == "finished"
    assert len(runs) == 4
    assert "completed: 4" in proc.stdout and "init=kaiming seed=1" in proc.stdout


def test_a_bad_grid_is_rejected_before_any_job_starts(tmp_path):
    proc = sweep(tmp_path / "s", "gain=2,-1", check=False)
    assert proc.returncode == 2 and "'gain': '-1'" in proc.stderr and "job #1" in proc.stderr
    assert not (tmp_path / "s").exists()
    with pytest.raises(ConfigError):
        plan_sweep(["experiment=smoke", "model.depth=0,3"])


def test_a_failing_job_never_stops_the_others(tmp_path):
    # dirac needs convolutions: those jobs fail when they build their model; the others run.
    proc = sweep(tmp_path, "init=kaiming,dirac", check=False)
    assert proc.returncode == 1
    table = job_table(tmp_path)
    assert list(table["status"]) == ["completed", "completed", "failed", "failed"]
    assert "job 2 failed" in proc.stdout and "needs a model with convolutions" in proc.stdout


def test_local_gpu_launcher_without_gpus_runs_cpu_workers_in_parallel(tmp_path):
    sweep(tmp_path, "launcher=local_gpu", "hydra.launcher.workers=2", "train.steps=400")
    spans = [_log_span(job / "train.log") for job in job_dirs(tmp_path)]
    assert len(spans) == 4 and all(summary(job)["status"] == "completed" for job in job_dirs(tmp_path))
    overlapping = sum(1 for i, a in enumerate(spans) for b in spans[i + 1:] if a[0] < b[1] and b[0] < a[1])
    assert overlapping >= 2  # two slots: jobs ran side by side
    assert max(sum(1 for s in spans if s[0] <= t < s[1]) for t, _ in spans) <= 2  # never more than the slots


def _log_span(log: Path) -> tuple[float, float]:
    """(first, last) timestamp of a job's log lines, to the millisecond."""
    stamps = [datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f").timestamp()
              for line in log.read_text().splitlines() if line.startswith("[20")]
    return stamps[0], stamps[-1]


def test_a_sweep_killed_part_way_and_rerun_ends_as_if_never_interrupted(tmp_path):
    args = ["train.steps=400", "train.ckpt_every=25"]
    sweep(tmp_path / "clean", *args)
    killed = tmp_path / "killed"
    proc = subprocess.Popen([*SWEEP, "experiment=smoke", f"hydra.sweep.dir={killed}", "train.progress=false", *args],
                            cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and not list(killed.glob("1_*/last.pt")):
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    statuses = list(job_table(killed)["status"])
    assert statuses[0] == "completed" and "running" in statuses, statuses  # really interrupted
    sweep(killed, *args)
    for clean_job, resumed_job in zip(job_dirs(tmp_path / "clean"), job_dirs(killed), strict=True):
        assert clean_job.name == resumed_job.name
        assert metrics(resumed_job) == metrics(clean_job)
        assert summary(resumed_job)["test/acc"] == summary(clean_job)["test/acc"]
