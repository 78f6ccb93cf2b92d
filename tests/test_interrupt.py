"""Stops, faults and failures: every one leaves a record, and a resumed run ends as if never stopped.

`python train.py` runs in a subprocess where the process is the point (a signal, its exit
code, a second process, a file size limit); the reference and resumed runs run in-process.
"""

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from cli import REPO, metrics, summary, train
from conftest import run_in_process
from initlab.errors import ConfigError
from initlab.track.records import lock_holder, read_config

# A small deterministic CPU run of 300 steps, records every 10 steps, and no periodic
# checkpoint (ckpt_every > steps): only a stop signal saves one before the end.
RUN = ["dataset=synthetic", "data.input_shape=[1,8,8]", "data.train_size=1024", "data.test_size=256",
       "model.depth=3", "model.width=16", "data.batch_size=32", "train.steps=300", "train.log_every=10",
       "train.eval_every=100", "train.ckpt_every=100000", "train.deterministic=true", "device=cpu"]
ENV = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}


def start(run_dir: Path, *overrides: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(REPO / "train.py"), f"hydra.run.dir={run_dir}",
                             "train.progress=false", *overrides], cwd=REPO, env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)


def wait_for(condition, seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.01)


def logged_steps(run_dir: Path) -> int:
    path = run_dir / "metrics.jsonl"
    return path.read_text().count("\n") if path.exists() else 0


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("uninterrupted")
    run_in_process(run_dir, *RUN)
    return run_dir


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory) -> Path:
    """A run (mirrored to wandb, offline) stopped by SIGTERM part-way."""
    run_dir = tmp_path_factory.mktemp("interrupted")
    proc = start(run_dir, *RUN, "logger=wandb")
    wait_for(lambda: logged_steps(run_dir) >= 5)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM and "Traceback" not in stderr, stderr
    return run_dir


def resume(source: Path, target: Path, *overrides: str):
    shutil.copytree(source, target)
    return run_in_process(target, *RUN, "train.resume=true", *overrides)


def test_sigterm_saves_at_the_next_step_and_resuming_ends_as_an_uninterrupted_run(interrupted, uninterrupted, tmp_path):
    s = summary(interrupted)
    assert s["status"] == "interrupted" and 0 < s["steps"] < 300 and "SIGTERM" in s["reason"]
    assert metrics(interrupted)[-1]["step"] < s["steps"]  # nothing logged past the checkpoint
    [first] = list((interrupted / "wandb").glob("offline-run-*"))
    run_dir = tmp_path / "resumed"
    resume(interrupted, run_dir, "logger=wandb")
    assert metrics(run_dir) == metrics(uninterrupted)
    assert summary(run_dir)["status"] == "completed"
    assert summary(run_dir)["train/loss"] == summary(uninterrupted)["train/loss"]
    # the resumed run continues the same wandb run: one id, kept in the run directory
    run_id = (run_dir / "wandb_id").read_text()
    assert sorted(p.name.rsplit("-", 1)[1] for p in (run_dir / "wandb").glob("offline-run-*")) == [run_id] * 2
    assert first.name.endswith(run_id)


def test_a_truncated_last_metrics_line_is_dropped_on_resume(interrupted, uninterrupted, tmp_path, caplog):
    damaged = tmp_path / "damaged"
    shutil.copytree(interrupted, damaged)
    step = summary(interrupted)["steps"]
    with (damaged / "metrics.jsonl").open("a") as f:  # killed mid-append, after the checkpoint
        f.write(json.dumps({"step": step, "train/loss": 1.0})[:12])
    run_dir = tmp_path / "resumed"
    resume(damaged, run_dir)
    assert "dropped its truncated last line" in caplog.text
    assert metrics(run_dir) == metrics(uninterrupted)


def test_an_unreadable_checkpoint_restarts_from_step_0_with_a_warning(interrupted, uninterrupted, tmp_path, caplog):
    damaged = tmp_path / "damaged"
    shutil.copytree(interrupted, damaged)
    (damaged / "last.pt").write_bytes((damaged / "last.pt").read_bytes()[:1000])
    run_dir = tmp_path / "resumed"
    resume(damaged, run_dir)
    assert "starting again from step 0" in caplog.text
    assert metrics(run_dir) == metrics(uninterrupted) and summary(run_dir)["status"] == "completed"


def test_a_stop_signal_is_passed_on_to_the_handler_it_chained(tmp_path):
    """As under submitit: its SIGUSR2 handler (checkpoint + requeue) runs once the run has saved
    last.pt and its summary, and stays installed afterwards."""
    calls = []

    def requeue(signum, frame):  # stands in for submitit's checkpoint_and_try_requeue
        calls.append((signum, summary(tmp_path)["status"], (tmp_path / "last.pt").exists()))

    previous = signal.signal(signal.SIGUSR2, requeue)
    try:
        threading.Thread(target=lambda: (wait_for(lambda: logged_steps(tmp_path) >= 3),
                                         os.kill(os.getpid(), signal.SIGUSR2)), daemon=True).start()
        with pytest.raises(SystemExit) as exit_:
            run_in_process(tmp_path, *RUN)
        assert signal.getsignal(signal.SIGUSR2) is requeue
    finally:
        signal.signal(signal.SIGUSR2, previous)
    assert exit_.value.code == 128 + signal.SIGUSR2
    assert calls == [(signal.SIGUSR2, "interrupted", True)]


@pytest.mark.slow  # two train.py processes
def test_a_second_run_into_a_busy_directory_stops_and_touches_nothing(tmp_path):
    first = start(tmp_path, *RUN, "train.steps=1000000", "logger=none")
    try:
        wait_for(lambda: lock_holder(tmp_path) and logged_steps(tmp_path) >= 1)
        before = {name: (tmp_path / name).read_bytes() for name in ("config.yaml", "init.json")}
        second = train(tmp_path, *RUN, "seed=1", check=False)
        assert second.returncode == 2, second.stderr
        [line] = second.stderr.strip().splitlines()
        assert "another run (pid" in line and str(tmp_path) in line
        assert {name: (tmp_path / name).read_bytes() for name in before} == before
        assert not (tmp_path / "summary.json").exists()
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=120)
    assert summary(tmp_path)["status"] == "interrupted" and read_config(tmp_path)["seed"] == 0


def test_a_failure_in_the_loop_records_the_step_it_reached_and_no_half_line(tmp_path):
    """A file size limit (RLIMIT_FSIZE; Python ignores SIGXFSZ) makes a metrics append fail part-way."""
    limit = 40_000
    proc = start(tmp_path, *RUN, "logger=none", "train.log_every=1",
                 preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)))
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1, stderr
    s = summary(tmp_path)
    assert s["status"] == "failed" and "File too large" in s["error"] and "\n" not in s["error"]
    rows = metrics(tmp_path)  # every line whole
    assert s["steps"] == rows[-1]["step"] + 1 > 0
    if not torch.cuda.is_available():  # resumed, it fails again before its loop: it still got as far
        with pytest.raises(ConfigError, match="cuda"):
            run_in_process(tmp_path, *RUN, "logger=none", "train.log_every=1", "train.resume=true", "device=cuda")
        assert summary(tmp_path)["status"] == "failed" and summary(tmp_path)["steps"] == s["steps"]


def test_errors_before_training_leave_a_failed_summary(tmp_path):
    with pytest.raises(ConfigError):
        run_in_process(tmp_path / "invalid", *RUN, "train.steps=-1")
    with pytest.raises(Exception, match="nope"):
        run_in_process(tmp_path / "interpolation", *RUN, "train.diverge_loss=${nope}")
    with pytest.raises(Exception, match="not found"):
        run_in_process(tmp_path / "data", "dataset=mnist", f"data.root={tmp_path / 'empty'}", "data.download=false")
    for name in ("invalid", "interpolation", "data"):
        s = summary(tmp_path / name)
        assert s["status"] == "failed" and s["steps"] == 0 and "\n" not in s["error"], name


def test_a_refused_resume_records_the_failure_and_keeps_the_earlier_outcome(tmp_path):
    run_in_process(tmp_path, *RUN, "train.steps=0")
    config = (tmp_path / "config.yaml").read_text()
    with pytest.raises(ConfigError, match="different config"):
        run_in_process(tmp_path, *RUN, "train.steps=0", "seed=1", "train.resume=true")
    s = summary(tmp_path)
    assert s["status"] == "failed" and "different config" in s["error"]
    assert s["previous"]["status"] == "completed" and (tmp_path / "config.yaml").read_text() == config
