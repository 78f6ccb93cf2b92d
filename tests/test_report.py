"""A report built from a small real sweep, grown by a rerun: numbers traced to the records,
each run in its own cell, figures written."""

import json
import math
import re
import statistics
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from cli import metrics
from initlab.report.load import load_sweep
from initlab.report.markdown import write_report
from initlab.sweep.status import job_table
from sweeps import job_dirs, multirun

PNG = b"\x89PNG\r\n\x1a\n"
GRID = ["experiment=smoke", "dataset=synthetic", "init=xavier,kaiming", "optim.lr=0.05,1e4", "seed=0"]


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory) -> Path:
    """xavier/kaiming x a sane and an absurd learning rate on synthetic data, grown from a first
    run of one cell (two seeds) and launched another way (device=cpu); plus MNIST, which is not
    on this machine, so that cell fails."""
    path = tmp_path_factory.mktemp("sweep")
    multirun(path, "experiment=smoke", "dataset=synthetic", "init=xavier", "optim.lr=0.05", "seed=0,1", "logger=none")
    multirun(path, "experiment=smoke", "dataset=mnist", "init=xavier", "optim.lr=0.05", "seed=0", "logger=none",
             "data.download=false", f"data.root={path / 'nodata'}")
    multirun(path, *GRID, "logger=none", "device=cpu")
    return path


@pytest.fixture(scope="module")
def report(sweep_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report")
    write_report(load_sweep(sweep_dir), out)
    return out


def records(sweep_dir: Path) -> list[dict]:
    """Every run's summary, with its cell read from the config Hydra composed for it."""
    runs = []
    for job in job_dirs(sweep_dir):
        config = yaml.safe_load((job / ".hydra" / "config.yaml").read_text())
        runs.append({**json.loads((job / "summary.json").read_text()), "init": config["init"]["scheme"],
                     "lr": config["optim"]["lr"], "dataset": config["data"]["name"]})
    return runs


def table_rows(report: Path) -> list[list[str]]:
    text = (report / "report.md").read_text()
    section = text.split("## Final metrics per cell")[1].split("##")[0]
    lines = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines]


def test_table_numbers_come_from_the_records_of_each_cells_own_runs(sweep_dir, report):
    header, *rows = table_rows(report)
    assert set(header[:3]) == {"init", "learning rate", "dataset"} and "test acc" in header and "diverged" in header
    runs = records(sweep_dir)
    assert len(runs) == 6 and len(rows) == 5
    for row in rows:
        cell = dict(zip(header, row))
        mine = [r for r in runs
                if (r["init"], r["lr"], r["dataset"]) == (cell["init"], float(cell["learning rate"]), cell["dataset"])]
        assert int(cell["runs"]) == len(mine) > 0
        for status in ("completed", "diverged", "failed"):
            assert int(cell[status]) == sum(r["status"] == status for r in mine)
        done = [r["test/acc"] for r in mine if r["status"] == "completed"]
        if done:
            assert_estimate(cell["test acc"], done)
        else:
            assert cell["test acc"] == "–"


def assert_estimate(text: str, values: list[float]) -> None:
    """'0.29 ± 0.10 (n=2)' is the mean of `values` ± half its 95% t interval, to the digits printed;
    '0.293 (n=1)' for one value."""
    parts = re.fullmatch(r"([\d.]+)(?: ± ([\d.]+))? \(n=(\d+)\)", text)
    assert parts, text
    mean, half, n = parts.groups()
    assert int(n) == len(values)
    unit = 10 ** -len(mean.split(".")[1]) if "." in mean else 1
    assert float(mean) == pytest.approx(statistics.mean(values), abs=unit / 2 + 1e-12)
    if len(values) == 1:
        assert half is None
    else:
        t = {1: 12.706, 2: 4.303}[len(values) - 1]  # the 0.975 quantile of Student's t, from a printed table
        assert float(half) == pytest.approx(t * statistics.stdev(values) / math.sqrt(len(values)),
                                            abs=unit / 2 + 1e-12)


def test_diverged_and_failed_runs_are_shown_as_such(report):
    header, *rows = table_rows(report)
    by_cell = {(c["init"], c["learning rate"], c["dataset"]): c for c in (dict(zip(header, r)) for r in rows)}
    assert by_cell[("xavier", "0.05", "synthetic")]["completed"] == "2"
    assert by_cell[("kaiming", "10000.0", "synthetic")]["diverged"] == "1"
    assert by_cell[("xavier", "0.05", "mnist")]["failed"] == "1"
    text = (report / "report.md").read_text()
    assert "(diverged)" in text and "(failed)" in text


def test_runs_are_keyed_by_their_config_even_where_job_numbers_collide(sweep_dir, tmp_path):
    # Folders as a job-numbered layout leaves them after a changed grid: a second `0_` and `1_`.
    for name, number in [("init=xavier,optim.lr=0.05,seed=0", 0), ("init=kaiming,optim.lr=0.05,seed=0", 0),
                         ("init=xavier,optim.lr=0.05,seed=1", 1), ("init=kaiming,optim.lr=10000.0,seed=0", 1)]:
        [job] = [j for j in job_dirs(sweep_dir) if j.name == f"dataset=synthetic,experiment=smoke,{name}"]
        shutil.copytree(job, tmp_path / f"{number}_{name}")
    assert len(set(job_table(tmp_path)["job"])) == 4
    sweep = load_sweep(tmp_path)
    assert sweep.axes == ["init", "optim.lr"] and len(sweep.jobs) == 4
    for row in sweep.jobs.to_dict("records"):
        job_dir, job = Path(row["dir"]), row["job"]
        config = yaml.safe_load((job_dir / "config.yaml").read_text())
        assert (row["init"], row["optim.lr"], row["seed"]) == (
            config["init"]["scheme"], config["optim"]["lr"], config["seed"])
        assert sweep.summaries[job] == json.loads((job_dir / "summary.json").read_text())
        assert {r["scheme"] for r in sweep.weights[job]} == {config["init"]["scheme"]}
        assert sweep.metrics[job].equals(pd.DataFrame(metrics(job_dir)))


def test_every_figure_is_written_and_linked(report):
    text = (report / "report.md").read_text()
    for name in ("curves.png", "signal.png", "heatmap.png"):
        data = (report / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 10_000
        assert f"]({name})" in text
    header = (report / "cells.csv").read_text().split("\n")[0].split(",")
    assert set(header[:4]) == {"init", "optim.lr", "dataset", "runs"}


def test_provenance_names_the_command_that_grew_the_grid_and_the_code(sweep_dir, report):
    text = (report / "report.md").read_text()
    assert f"python scripts/sweep.py {' '.join(GRID)} hydra.sweep.dir=" in text  # how it ran (device=cpu) left out
    sha = json.loads(next(sweep_dir.glob("*/summary.json")).read_text())["git_sha"]
    assert f"git SHA: {sha}" in text and "torch 2." in text
    seconds = sum(r["wall_s"] for r in records(sweep_dir))
    assert f"total run time: {seconds / 60:.1f} min" in text


def test_setup_lists_what_every_run_shares_and_nothing_that_varies_or_says_how_it_ran(report):
    text = (report / "report.md").read_text()
    axes, shared = text.split("## Setup")[1].split("\n## ")[0].split("Settings every run shares")
    assert "| `optim.lr` | learning rate |" in axes  # the grid's axes, named by meaning
    rows = dict(re.findall(r"^\| `([^`]+)` \| (.*) \|$", shared, flags=re.M))
    assert rows["model.width"] == "32" and rows["train.steps"] == "40" and rows["optim.name"] == "sgd"
    assert not {"optim.lr", "init.scheme", "data.name", "seed", "device", "logger.backend"} & rows.keys()
    assert "data.train_size" not in rows  # data.name varies: synthetic-only sizes are not shared settings
