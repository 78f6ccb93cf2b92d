"""scripts/report.py as typed: by default the report goes beside the sweep, not among its jobs."""

import runpy

from cli import REPO
from sweeps import job_dirs, multirun

report_script = runpy.run_path(str(REPO / "scripts" / "report.py"))


def test_the_report_goes_to_a_sibling_folder_by_default(tmp_path, capsys, monkeypatch):
    sweep = tmp_path / "smoke"
    assert multirun(sweep, "experiment=smoke", "init=xavier", "seed=0,1", "train.steps=2", "logger=none") == 0
    before = sorted(p.name for p in sweep.iterdir())
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert report_script["main"](["smoke"]) == 0
    assert capsys.readouterr().out == "wrote smoke-report/report.md\n"
    assert (tmp_path / "smoke-report" / "cells.csv").is_file()
    assert sorted(p.name for p in sweep.iterdir()) == before and len(job_dirs(sweep)) == 2
