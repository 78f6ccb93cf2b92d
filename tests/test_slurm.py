"""Sweeps on a real single-node SLURM (scripts/local_slurm.sh up; .ci/run starts it)."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli import REPO, metrics, summary
from initlab.sweep.status import job_table


def _slurm_up() -> bool:
    return shutil.which("sinfo") is not None and subprocess.run(["sinfo", "-h"], capture_output=True).returncode == 0


pytestmark = pytest.mark.skipif(not _slurm_up(), reason="no SLURM: run scripts/local_slurm.sh up")
ENV = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}


def sweep_command(sweep_dir: Path, *args: str) -> list[str]:
    return [sys.executable, str(REPO / "scripts" / "sweep.py"), "experiment=smoke", "launcher=slurm",
            f"hydra.sweep.dir={sweep_dir}", "train.progress=false", *args]


def sacct(job_id: str, *extra: str) -> list[str]:
    out = subprocess.run(["sacct", "-n", "-P", "-X", "-j", job_id, "--format=JobID,State,ExitCode", *extra],
                         capture_output=True, text=True, check=True).stdout
    return out.splitlines()


def slurm_job_id(job_dir: Path) -> str:
    """submitit keeps each job's files in .submitit/<array id>_<task>/, or <job id>/ for a lone job."""
    folders = [p.name for p in (job_dir.parent / ".submitit").iterdir() if p.is_dir()]
    task = job_dir.name.split("_")[0]
    return folders[0] if len(folders) == 1 else next(f for f in folders if f.endswith(f"_{task}"))


def test_a_grid_of_four_jobs_on_slurm_is_accounted_and_recorded(tmp_path):
    proc = subprocess.run(sweep_command(tmp_path), cwd=REPO, capture_output=True, text=True, env=ENV, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    table = job_table(tmp_path)
    assert list(table["status"]) == ["completed"] * 4
    for job_dir in map(Path, table["dir"]):
        [line] = sacct(slurm_job_id(job_dir))
        assert line.split("|")[1:] == ["COMPLETED", "0:0"]
        assert summary(job_dir)["steps"] == 40 and len(metrics(job_dir)) > 0
        assert summary(job_dir)["slurm_job_id"] == slurm_job_id(job_dir)


def test_a_preempted_job_is_requeued_and_resumes_from_its_checkpoint(tmp_path):
    # Long enough to be running when SIGKILL follows SIGTERM (KillWait=3 in local_slurm.sh).
    args = ["train.steps=20000", "train.ckpt_every=200", "train.log_every=500", "init=kaiming", "seed=0"]
    clean = tmp_path / "clean"
    subprocess.run(sweep_command(clean, *args), cwd=REPO, capture_output=True, env=ENV, timeout=600, check=True)
    run = tmp_path / "preempted"
    proc = subprocess.Popen(sweep_command(run, *args), cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=ENV)
    deadline = time.time() + 300
    while time.time() < deadline and not list(run.glob("0_*/last.pt")):
        time.sleep(0.02)
    [job_dir] = list(run.glob("0_*"))
    job_id = slurm_job_id(job_dir)
    subprocess.run(["scontrol", "requeue", job_id], check=True)  # what preemption does
    assert proc.wait(timeout=600) == 0
    assert "REQUEUED" in " ".join(sacct(job_id, "-D"))  # SLURM's own record of the requeue
    assert "resuming from" in (job_dir / "train.log").read_text()
    [clean_dir] = list(clean.glob("0_*"))
    assert summary(job_dir)["status"] == "completed"
    assert metrics(job_dir) == metrics(clean_dir)
