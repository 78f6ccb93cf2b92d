"""Sweeps through the real launchers: a job's folder is its identity; reruns of changed grids,
failures, parallel workers, kill and resume."""

import json
import os
import runpy
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from cli import REPO, metrics, summary
from initlab.config import register_configs
from initlab.sweep.plan import plan_sweep
from initlab.sweep.status import job_table
from initlab.track.identity import MAX_NAME, identity, identity_from_name, job_dir_name
from initlab.track.records import lock_holder
from sweeps import job_dirs, multirun

register_configs()
SWEEP = [sys.executable, str(REPO / "scripts" / "sweep.py")]
ENV = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
sweep_script = runpy.run_path(str(REPO / "scripts" / "sweep.py"))  # its main(), in this process


def sweep(sweep_dir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([*SWEEP, "experiment=smoke", f"hydra.sweep.dir={sweep_dir}", "train.progress=false", *args],
                          cwd=REPO, capture_output=True, text=True, env=ENV, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"sweep failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def test_a_job_folder_is_named_by_what_the_job_is_never_by_how_it_was_launched():
    name = job_dir_name(["seed=1", "init=xavier", "optim.lr=0.05"])
    assert name == "init=xavier,optim.lr=0.05,seed=1"
    # one job, one folder: any order, an equivalent spelling, any way of launching it
    assert job_dir_name(["optim.lr=5e-2", "logger=none", "init=xavier", "device=cpu", "data.root=/elsewhere",
                         "train.progress=false", "train.resume=true", "logger.mode=offline", "+logger.name=x",
                         "data.download=false", "seed=1"]) == name
    # two jobs, two folders, also where a value needs escaping or the name a hash
    jobs = [["x='a,b'"], ["x=a", "b=1"], ["x='a/b'"], ["x='a%2Fb'"], ["x='..'"], ["x='%2E.'"], ["x='a b'"],
            ["x=" + "a" * 300], ["x=" + "a" * 299 + "b"], ["x='/etc'"], ["+x=1"], ["x=1"], ["~x"], []]
    names = [job_dir_name(job) for job in jobs]
    assert len(set(names)) == len(jobs)
    for n in names:
        assert "/" not in n and "\\" not in n and ".." not in n and not n.startswith((".", "~")) and len(n) <= MAX_NAME
    # quotes Hydra reads the same without name no other job; quotes that change the value do
    assert job_dir_name(["gain='relu'", "init=\"kaiming\""]) == job_dir_name(["gain=relu", "init=kaiming"])
    assert job_dir_name(["seed='5'"]) != job_dir_name(["seed=5"]) and job_dir_name(["x='null'"]) != job_dir_name(["x=null"])
    # the name reads back as the job's overrides (a damaged .hydra/overrides.yaml), unless it is a hash
    for job, n in zip(jobs, names):
        read_back = identity_from_name(n)
        assert read_back is None if len(n) == MAX_NAME else identity(read_back) == identity(job)


def test_the_dry_run_shows_the_folders_the_launcher_creates_each_job_with_its_own_records_and_wandb_run(
        tmp_path, capfd, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    args = ["experiment=smoke", "seed=1", "train.steps=10"]
    assert sweep_script["main"]([*args, f"hydra.sweep.dir={tmp_path}", "train.progress=false", "--dry-run"]) == 0
    printed = capfd.readouterr().out
    assert "2 jobs" in printed and not any(tmp_path.iterdir())  # a dry run starts nothing
    planned = [Path(line.split("-> ", 1)[1]) for line in printed.splitlines() if "-> " in line]
    assert multirun(tmp_path, *args) == 0
    assert job_dirs(tmp_path) == sorted(planned)
    assert planned[0].name == "experiment=smoke,init=xavier,seed=1,train.steps=10"
    assert [summary(job)["status"] for job in planned] == ["completed"] * 2
    runs = [run for job in planned for run in (job / "wandb").glob("offline-run-*")]
    assert len(runs) == 2 and runs[0].name != runs[1].name
    state = json.loads(subprocess.run(["wandb", "leet", "inspect", "--summary", "--json", str(runs[1])],
                                      capture_output=True, text=True, check=True).stdout)
    assert state["state"] == "finished"


def test_a_grown_grid_rerun_with_another_launch_runs_only_its_new_jobs_and_renames_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert multirun(tmp_path, "experiment=smoke", "init=xavier", "seed=0", "train.steps=10", "logger=none") == 0
    before = {job.name: _records(job) for job in job_dirs(tmp_path)}
    assert list(before) == ["experiment=smoke,init=xavier,seed=0,train.steps=10"]
    # that job and a new one, typed in another order, launched another way (wandb, cpu, data root)
    assert multirun(tmp_path, "train.steps=10", "seed=0", "device=cpu", "init=kaiming,xavier", "experiment=smoke",
                    "logger=wandb", f"data.root={tmp_path / 'data'}") == 0
    after = job_dirs(tmp_path)
    assert [job.name for job in after] == ["experiment=smoke,init=kaiming,seed=0,train.steps=10", *before]
    for job in after:
        if job.name in before:
            assert _records(job) == before[job.name]  # skipped: not one byte rewritten
        else:
            assert summary(job)["status"] == "completed"
    table = job_table(tmp_path)
    assert sorted(table["job"]) == sorted(job.name for job in after)
    for row in table.itertuples():  # each row is the run its folder holds
        config = yaml.safe_load((Path(row.dir) / "config.yaml").read_text())
        assert sorted(row.overrides) == ["experiment=smoke", f"init={config['init']['scheme']}",
                                         f"seed={config['seed']}", f"train.steps={config['train']['steps']}"]


def _records(job_dir: Path) -> dict:
    return {name: ((job_dir / name).read_bytes(), (job_dir / name).stat().st_mtime_ns)
            for name in ("config.yaml", "init.json", "metrics.jsonl", "summary.json")}


def test_an_override_value_cannot_write_outside_the_sweep_dir(tmp_path):
    sweep_dir = tmp_path / "sweeps" / "s"
    assert multirun(sweep_dir, "experiment=smoke", "init=xavier", "seed=0", "train.steps=0", "logger=none",
                    "logger.name=../../../escaped", "data.root=../../x/..") == 0
    [job] = job_dirs(sweep_dir)
    assert summary(job)["status"] == "completed"
    outside = [p for p in tmp_path.rglob("*") if p not in (sweep_dir.parent, sweep_dir) and sweep_dir not in p.parents]
    assert outside == []


def test_a_bad_grid_is_rejected_before_any_job_starts(tmp_path, capfd):
    assert sweep_script["main"](["experiment=smoke", f"hydra.sweep.dir={tmp_path / 's'}", "gain=2,-1"]) == 2
    err = capfd.readouterr().err
    assert "'gain': '-1'" in err and "job #1" in err
    assert not (tmp_path / "s").exists()


def test_a_failing_job_never_stops_the_others_and_status_names_it_by_its_config(tmp_path, capsys):
    # MNIST is not on this machine and may not be downloaded: those jobs fail as they load it.
    assert multirun(tmp_path, "experiment=smoke", "dataset=mnist,synthetic", "init=xavier", "seed=0", "train.steps=10",
                    "logger=none", "data.download=false", f"data.root={tmp_path / 'nodata'}") == 1
    printed = capsys.readouterr().err
    assert "error: dataset 'mnist' not found" in printed and "Traceback" not in printed  # a mistake, one line
    table = job_table(tmp_path)
    assert list(table["status"]) == ["failed", "completed"]  # in grid order
    assert sweep_script["main"](["status", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "completed: 1  failed: 1" in printed
    assert "failed: dataset=mnist: DatasetNotFound: dataset 'mnist' not found" in printed
    (Path(table["dir"][1]) / ".hydra" / "overrides.yaml").write_text("- init=xavier\n- [dataset")  # cut short
    assert list(job_table(tmp_path)["status"]) == ["failed", "damaged"]


@pytest.mark.slow
def test_local_gpu_launcher_without_gpus_runs_cpu_workers_in_parallel(tmp_path):
    sweep(tmp_path, "launcher=local_gpu", "hydra.launcher.workers=2", "train.steps=400")
    plan = plan_sweep(["experiment=smoke", f"hydra.sweep.dir={tmp_path}", "train.steps=400"])
    assert job_dirs(tmp_path) == sorted(job.dir for job in plan.jobs)  # the workers name folders as the plan does
    spans = [_log_span(job / "train.log") for job in job_dirs(tmp_path)]
    assert len(spans) == 4 and all(summary(job)["status"] == "completed" for job in job_dirs(tmp_path))
    overlapping = sum(1 for i, a in enumerate(spans) for b in spans[i + 1:] if a[0] < b[1] and b[0] < a[1])
    # Two slots: jobs ran side by side (a serial launcher gives 0). Not >= 2: a log span starts after
    # the worker's imports, which under load can take longer than a short job's training.
    assert overlapping >= 1
    assert max(sum(1 for s in spans if s[0] <= t < s[1]) for t, _ in spans) <= 2  # never more than the slots


def _log_span(log: Path) -> tuple[float, float]:
    """(first, last) timestamp of a job's log lines, to the millisecond."""
    stamps = [datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f").timestamp()
              for line in log.read_text().splitlines() if line.startswith("[20")]
    return stamps[0], stamps[-1]


@pytest.mark.slow
def test_a_sweep_killed_part_way_and_rerun_ends_as_if_never_interrupted(tmp_path):
    args = ["train.steps=400", "train.ckpt_every=25"]
    sweep(tmp_path / "clean", *args)
    killed = tmp_path / "killed"
    proc = subprocess.Popen([*SWEEP, "experiment=smoke", f"hydra.sweep.dir={killed}", "train.progress=false", *args],
                            cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and not list(killed.glob("*init=xavier,seed=1*/last.pt")):  # the second job
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    _wait_until_gone(proc.pid)  # the group's other processes (train.py) die on their own schedule: until then a lock holds
    statuses = list(job_table(killed)["status"])
    assert statuses[0] == "completed" and "stopped" in statuses, statuses  # really interrupted (no summary, no lock)
    sweep(killed, *args)
    for clean_job, resumed_job in zip(job_dirs(tmp_path / "clean"), job_dirs(killed), strict=True):
        assert clean_job.name == resumed_job.name
        assert metrics(resumed_job) == metrics(clean_job)
        assert summary(resumed_job)["test/acc"] == summary(clean_job)["test/acc"]


def _wait_until_gone(group: int, timeout: float = 60) -> None:
    """Until no process of this process group is left (signal 0 probes without signalling)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.01)
    raise AssertionError(f"process group {group} still alive after {timeout} s")


@pytest.mark.slow
def test_a_sweep_py_killed_outright_stops_its_grid_rather_than_leaving_it_training(tmp_path):
    """SIGKILL cannot be forwarded: the grid's train.py is told of sweep.py's death by the kernel."""
    proc = subprocess.Popen([*SWEEP, "experiment=smoke", f"hydra.sweep.dir={tmp_path}", "train.progress=false",
                             "init=xavier", "seed=0", "train.steps=100000", "train.ckpt_every=1000000"],
                            cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list(tmp_path.glob("*/metrics.jsonl")):
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    [job_dir] = list(tmp_path.glob("*init=xavier*"))
    while time.time() < deadline and lock_holder(job_dir):
        time.sleep(0.05)
    s = summary(job_dir)
    assert s["status"] == "interrupted" and 0 < s["steps"] < 100_000 and "SIGTERM" in s["reason"]
