"""A report built from a small real sweep: numbers traced to the records, figures written."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cli import REPO

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory) -> Path:
    """xavier/kaiming x a sane and an absurd learning rate x 2 seeds, plus dirac, which fails."""
    path = tmp_path_factory.mktemp("sweep")
    subprocess.run([sys.executable, str(REPO / "scripts" / "sweep.py"), "experiment=smoke", f"hydra.sweep.dir={path}",
                    "init=xavier,kaiming,dirac", "optim.lr=0.05,1e4", "logger=none", "train.progress=false"],
                   cwd=REPO, capture_output=True, env={**os.environ, "WANDB_MODE": "disabled"}, timeout=900)
    return path


@pytest.fixture(scope="module")
def report(sweep_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report")
    subprocess.run([sys.executable, str(REPO / "scripts" / "report.py"), str(sweep_dir), "--out", str(out)],
                   cwd=REPO, check=True, capture_output=True)
    return out


def records(sweep_dir: Path) -> list[dict]:
    runs = []
    for job in sweep_dir.iterdir():
        if (job / "summary.json").exists():
            summary = json.loads((job / "summary.json").read_text())
            overrides = dict(o.split("=", 1) for o in yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text()))
            runs.append({**summary, "init": overrides["init"], "lr": float(overrides["optim.lr"])})
    return runs


def table_rows(report: Path) -> list[list[str]]:
    text = (report / "report.md").read_text()
    section = text.split("## Final metrics per cell")[1].split("##")[0]
    lines = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines]


def test_table_numbers_come_from_the_records(sweep_dir, report):
    header, *rows = table_rows(report)
    assert header[:2] == ["init", "lr"] and "test acc" in header and "diverged" in header
    runs = records(sweep_dir)
    assert len(rows) == 6
    for row in rows:
        cell = dict(zip(header, row))
        mine = [r for r in runs if r["init"] == cell["init"] and r["lr"] == float(cell["lr"])]
        for status in ("completed", "diverged", "failed"):
            assert int(cell[status]) == sum(r["status"] == status for r in mine)
        done = [r["test/acc"] for r in mine if r["status"] == "completed"]
        if done:
            mean = float(re.match(r"[\d.e+-]+", cell["test acc"]).group())
            assert mean == pytest.approx(sum(done) / len(done), rel=1e-3)
        else:
            assert cell["test acc"] == "–"


def test_diverged_and_failed_runs_are_shown_as_such(sweep_dir, report):
    header, *rows = table_rows(report)
    by_cell = {(r[0], r[1]): dict(zip(header, r)) for r in rows}
    assert by_cell[("kaiming", "10000.0")]["diverged"] == "2"
    assert by_cell[("dirac", "0.05")]["failed"] == "2"
    text = (report / "report.md").read_text()
    assert "(diverged)" in text and "(failed)" in text


def test_every_figure_is_written_and_linked(report):
    text = (report / "report.md").read_text()
    for name in ("curves.png", "signal.png", "heatmap.png"):
        data = (report / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 10_000
        assert f"]({name})" in text
    assert (report / "cells.csv").read_text().startswith("init,optim.lr,runs")


def test_provenance_names_the_command_and_the_code(sweep_dir, report):
    text = (report / "report.md").read_text()
    assert "python scripts/sweep.py experiment=smoke init=xavier,kaiming,dirac optim.lr=0.05,1e4" in text
    sha = json.loads(next(sweep_dir.glob("0_*/summary.json")).read_text())["git_sha"]
    assert f"git SHA: {sha}" in text and "torch 2." in text
