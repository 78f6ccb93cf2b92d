"""What a user sees on a terminal: a bar for long work (a phase diagram's grid, reading a sweep's
runs for its report, planning a large grid), none where the output is not a terminal; and the
closing job table of `train.py -m`, the same as `sweep.py status` prints."""

import io
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from initlab.report.load import load_sweep
from initlab.sweep.plan import BAR_FROM, plan_sweep
from initlab.sweep.status import format_table, job_table
from initlab.theory.phase import phase_grid
from sweeps import multirun


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@contextmanager
def on_a_terminal() -> Iterator[Terminal]:
    """stderr as an interactive terminal, where tqdm draws its bars (set inside a test's body:
    pytest sets its own stderr again between a fixture and the test)."""
    saved, sys.stderr = sys.stderr, Terminal()
    try:
        yield sys.stderr
    finally:
        sys.stderr = saved


def test_a_phase_diagrams_grid_counts_its_points_on_a_terminal_only(capsys):
    w, b = np.array([1.0, 1.5, 2.0]), np.array([0.0, 0.1])
    with on_a_terminal() as screen:
        phase_grid("tanh", w, b)
    assert "phase diagram:" in screen.getvalue() and "/6 [" in screen.getvalue()
    phase_grid("tanh", w, b)  # pytest's capture is no terminal
    assert capsys.readouterr().err == ""


def test_train_py_m_ends_with_sweep_py_status_table_and_reading_the_runs_shows_a_bar(tmp_path, capsys):
    assert multirun(tmp_path, "experiment=smoke", "init=xavier,kaiming", "seed=0", "train.steps=2", "logger=none") == 0
    assert capsys.readouterr().out.endswith(format_table(job_table(tmp_path)) + "\n")
    with on_a_terminal() as screen:
        assert len(load_sweep(tmp_path).jobs) == 2
    assert "reading runs:" in screen.getvalue() and "/2 [" in screen.getvalue()


def test_planning_a_large_grid_shows_a_bar_on_a_terminal(tmp_path):
    with on_a_terminal() as screen:
        plan_sweep(["experiment=smoke", "init=xavier", f"seed=range({BAR_FROM})", f"hydra.sweep.dir={tmp_path}"])
    assert "planning:" in screen.getvalue() and f"{BAR_FROM}/{BAR_FROM}" in screen.getvalue()
