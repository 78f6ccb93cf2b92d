"""Sweeps on a real single-node SLURM (scripts/local_slurm.sh up; .ci/run starts it).

One torch thread per job (OMP_NUM_THREADS=1): jobs share the node's cores.
"""

import math
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from cli import REPO, metrics, summary
from initlab.sweep.status import job_table
from initlab.track.records import FINAL_METRICS
from sweeps import multirun


def _slurm_up() -> bool:
    return shutil.which("sinfo") is not None and subprocess.run(["sinfo", "-h"], capture_output=True).returncode == 0


pytestmark = pytest.mark.skipif(not _slurm_up(), reason="no SLURM: run scripts/local_slurm.sh up")
ENV = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "OMP_NUM_THREADS": "1"}


def sweep_command(sweep_dir: Path, *args: str) -> list[str]:
    return [sys.executable, str(REPO / "scripts" / "sweep.py"), "experiment=smoke", "launcher=slurm",
            f"hydra.sweep.dir={sweep_dir}", "train.progress=false", *args]


def sacct(job_id: str, *extra: str) -> list[str]:
    out = subprocess.run(["sacct", "-n", "-P", "-X", "-j", job_id, "--format=JobID,State,ExitCode", *extra],
                         capture_output=True, text=True, check=True).stdout
    return out.splitlines()


def lone_job(sweep_dir: Path) -> str:
    """The SLURM job id of a sweep of one task (one pack): submitit's .submitit/<job id>/ folder (no array)."""
    [job] = [p.name for p in (sweep_dir / ".submitit").iterdir() if p.is_dir()]
    return job


@pytest.mark.slow  # each test here takes minutes of real SLURM
def test_a_grid_runs_as_an_array_of_packs_recorded_as_the_same_grid_packed_locally(tmp_path):
    """6 jobs, up to 3 a pack: ceil(6 / 3) = 2 SLURM tasks, the records of each run as the same
    packs trained here (one thread both ways, train.deterministic=true)."""
    args = ["launcher.max_pack=3", "seed=0,1,2"]  # 6 jobs: 2 packs of 3
    proc = subprocess.run(sweep_command(tmp_path / "slurm", *args), cwd=REPO, capture_output=True, text=True, env=ENV,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    local = tmp_path / "local"
    assert multirun(local, "experiment=smoke", "hydra/launcher=packed", "hydra.launcher.max_pack=3", "seed=0,1,2") == 0
    table = job_table(tmp_path / "slurm")
    assert list(table["status"]) == ["completed"] * 6
    tasks = {summary(job_dir)["slurm_job_id"] for job_dir in map(Path, table["dir"])}
    assert len(tasks) == 2 and all(summary(Path(d))["pack_size"] == 3 for d in table["dir"])
    for task in tasks:
        [line] = sacct(task)
        assert line.split("|")[1:] == ["COMPLETED", "0:0"]
    for job_dir in map(Path, table["dir"]):
        assert metrics(job_dir) == metrics(local / job_dir.name)
        assert {k: v for k, v in summary(job_dir).items() if k in FINAL_METRICS} == {
            k: v for k, v in summary(local / job_dir.name).items() if k in FINAL_METRICS}


@pytest.mark.slow
def test_a_preempted_pack_is_requeued_and_each_run_resumes_from_its_own_checkpoint(tmp_path):
    # Long enough to be running when SIGKILL follows SIGTERM (KillWait=3 in local_slurm.sh).
    args = ["train.steps=20000", "train.ckpt_every=200", "train.log_every=500", "seed=0"]  # xavier and kaiming: one pack
    clean = tmp_path / "clean"
    subprocess.run(sweep_command(clean, *args), cwd=REPO, capture_output=True, env=ENV, timeout=600, check=True)
    run = tmp_path / "preempted"
    proc = subprocess.Popen(sweep_command(run, *args), cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=ENV)
    deadline = time.time() + 300
    while time.time() < deadline and len(list(run.glob("*/last.pt"))) < 2:
        time.sleep(0.02)
    job_id = lone_job(run)  # one pack: one task
    subprocess.run(["scontrol", "requeue", job_id], check=True)  # what preemption does
    assert proc.wait(timeout=600) == 0
    assert "REQUEUED" in " ".join(sacct(job_id, "-D"))  # SLURM's own record of the requeue
    for job_dir in sorted(run.glob("*init=*")):
        assert "resuming from" in (job_dir / "train.log").read_text()
        assert summary(job_dir)["status"] == "completed" and summary(job_dir)["pack_size"] == 2
        assert metrics(job_dir) == metrics(clean / job_dir.name)


def steps_per_second(run_dir: Path, *args: str) -> float:
    """This machine's training speed now, for this config: from train.log's first and last timestamps
    of a local run (start-up excluded), so a test can size a run in seconds rather than steps."""
    steps = 10_000
    subprocess.run([sys.executable, str(REPO / "train.py"), "experiment=smoke", "logger=none", "train.progress=false",
                    f"hydra.run.dir={run_dir}", *args, f"train.steps={steps}", f"train.eval_every={steps}"],
                   cwd=REPO, capture_output=True, env=ENV, timeout=600, check=True)
    stamps = [datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f")
              for line in (run_dir / "train.log").read_text().splitlines() if line.startswith("[20")]
    return steps / (stamps[-1] - stamps[0]).total_seconds()


@pytest.mark.slow
def test_a_job_at_its_time_limit_saves_and_submitit_requeues_it_to_resume(tmp_path):
    """SLURM warns with SIGUSR2 (signal_delay_s before timeout_min, up to 30 s earlier); the run
    saves last.pt at the next step and records `interrupted`, then submitit's own handler
    (chained, not replaced) requeues the job, which resumes there. No periodic checkpoint:
    only the signal saves one."""
    # SLURM checks limits every 30 s and warns up to 30 s early: with 2 min and a 60 s delay an
    # attempt trains 25-55 s (after start-up) before the warning. Sized in seconds, not steps (a
    # quiet machine trains twice as fast as a loaded one), 110 s of training needs two attempts or more.
    log_every = 2000  # the calibration logs as rarely: a logging step costs many ordinary ones
    config = ["init=kaiming", "seed=0", "train.ckpt_every=1000000", f"train.log_every={log_every}"]
    total = log_every * math.ceil(110 * steps_per_second(tmp_path / "calibration", *config) / log_every)
    args = [*config, f"train.steps={total}", f"train.eval_every={total}",
            "hydra.launcher.timeout_min=2", "hydra.launcher.signal_delay_s=60", "hydra.launcher.max_num_timeout=10"]
    sweep_dir = tmp_path / "sweep"
    proc = subprocess.run(sweep_command(sweep_dir, *args), cwd=REPO, capture_output=True, text=True, env=ENV,
                          timeout=1800)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [job_dir] = list(sweep_dir.glob("*init=kaiming*"))
    job_id = lone_job(sweep_dir)
    assert "REQUEUED" in " ".join(sacct(job_id, "-D"))
    log = (job_dir / "train.log").read_text()
    assert "interrupted after" in log and "(SIGUSR2 at step" in log and "resuming from" in log
    submitit_log = "".join(p.read_text() for p in (sweep_dir / ".submitit" / job_id).glob("*_log.*"))
    assert "this job is timed-out" in submitit_log and "Requeued job" in submitit_log
    s = summary(job_dir)
    assert s["status"] == "completed" and s["steps"] == total
    assert [r["step"] for r in metrics(job_dir)] == list(range(0, total + 1, log_every))  # none lost, none twice


@pytest.mark.slow
def test_fail_fast_cancels_the_grid_and_no_wait_returns_at_once_then_status_and_rerun_follow_it(tmp_path):
    # MNIST is not on this machine and may not be downloaded: those jobs fail as they load it.
    nodata = ["dataset=mnist,synthetic", "data.download=false", f"data.root={tmp_path / 'nodata'}",
              "launcher.max_pack=1", "init=xavier", "seed=0"]
    failing = tmp_path / "failing"
    proc = subprocess.run(sweep_command(failing, *nodata, "launcher.fail_fast=true", "train.steps=100000"), cwd=REPO,
                          capture_output=True, text=True, env=ENV, timeout=600)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    table = job_table(failing)
    statuses = {job.split(",")[0]: status for job, status in zip(table["job"], table["status"])}
    assert statuses["dataset=mnist"] == "failed"  # the synthetic job was cancelled running, or never started
    assert statuses["dataset=synthetic"] in ("interrupted", "not started") and len(statuses) == 2

    queued = tmp_path / "queued"
    args = ["train.steps=3000", "launcher.max_pack=1"]
    started = time.time()
    proc = subprocess.run([*sweep_command(queued, *args), "--no-wait"], cwd=REPO, capture_output=True, text=True,
                          env=ENV, timeout=120)
    assert proc.returncode == 0 and time.time() - started < 60, proc.stdout + proc.stderr
    status = subprocess.run([sys.executable, str(REPO / "scripts" / "sweep.py"), "status", str(queued)], cwd=REPO,
                            capture_output=True, text=True, env=ENV, check=True).stdout
    assert len(job_table(queued)) == 4 and ("pending" in status or "running" in status)
    rerun = subprocess.run([*sweep_command(queued, *args), "--no-wait"], cwd=REPO, capture_output=True, text=True,
                           env=ENV, timeout=120).stdout
    assert "launching 0" in rerun  # everything is finished, queued or running: nothing is submitted twice
    follow = subprocess.run([sys.executable, str(REPO / "scripts" / "sweep.py"), "status", str(queued), "--follow"],
                            cwd=REPO, capture_output=True, text=True, env=ENV, timeout=900, check=True).stdout
    assert follow.rstrip().endswith("completed: 4")
