"""Reports put mean-field theory beside the measurement: per-layer overlay, the ratio column,
the trainability map with its fitted k, and figures a researcher can read."""

import itertools
import math
import os
import subprocess
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest

from cli import REPO
from initlab.report.aggregate import layer_profile
from initlab.report.load import Sweep, load_sweep
from initlab.report.markdown import write_report
from initlab.report.overlay import Overlay, TrainabilityMap, predictions, trainability
from initlab.report.plots import cell_styles, text_colour
from initlab.theory import critical_sigma_w2, mean_field

SIGMA_W2 = ("1.0", "1.761", "4.0")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Sweep:
    """The schoenholz2017 grid in miniature: tanh, sigma_b^2 = 0.05, three sigma_w^2 (ordered,
    critical, chaotic) x two depths, on synthetic data, through Hydra's multirun as a user runs it."""
    path = tmp_path_factory.mktemp("schoenholz")
    subprocess.run([sys.executable, str(REPO / "train.py"), "-m", "experiment=schoenholz2017", "dataset=synthetic",
                    "data.input_shape=[16]", "data.train_size=512", "data.test_size=256", "model.width=128",
                    "train.steps=10", "train.log_every=10", "train.eval_every=10", "train.ckpt_every=10",
                    f"init.scale={','.join(SIGMA_W2)}", "model.depth=3,12", "logger=none", "train.progress=false",
                    f"hydra.sweep.dir={path}"],
                   cwd=REPO, check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600)
    return load_sweep(path)


@pytest.fixture(scope="module")
def overlay(sweep) -> Overlay:
    return predictions(sweep)


@pytest.fixture(scope="module")
def report(sweep, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report")
    write_report(sweep, out)
    return out


def test_experiment_draws_what_the_paper_prescribes(sweep):
    """Weights N(0, sigma_w^2 / fan_in), biases N(0, 0.05), as the runs' init.json record them."""
    for job, weights in sweep.weights.items():
        scale = float(sweep.jobs.set_index("job").loc[job, "init.scale"])
        for record in weights:
            assert record["scheme"] == "variance_scaling" and record["mode"] == "fan_in" and record["gain"] == 1
            assert record["target_std"] ** 2 * record["fan_in"] == pytest.approx(scale)
    assert 1.761 == pytest.approx(critical_sigma_w2("tanh", 0.05), abs=5e-4)  # the grid holds the critical value


def test_overlay_predicts_every_layer_of_a_wide_net(sweep, overlay):
    """At width 128 the prediction follows the measured variances layer by layer (a wrong weight
    variance, bias or width would miss by far more over 12 layers)."""
    act, grad = layer_profile(sweep, "act_var"), layer_profile(sweep, "grad_var")
    assert set(overlay.act_var) == set(act) and len(act) == 6
    for cell, predicted in overlay.act_var.items():
        assert predicted[0] == pytest.approx(act[cell][0], rel=1e-6)  # anchored at the measured Var[y_1]
        assert overlay.grad_var[cell][-1] == pytest.approx(grad[cell][-1], rel=1e-6)  # ... and the output's gradient
        assert np.abs(np.log(act[cell][:-1] / predicted[:-1])).max() < math.log(1.3), cell
        assert np.abs(np.log(grad[cell] / overlay.grad_var[cell])).max() < math.log(2), cell


def test_report_has_ratio_column_and_trainability_map(sweep, overlay, report):
    text = (report / "report.md").read_text()
    header = next(line for line in text.splitlines() if line.startswith("| scale | depth"))
    assert header.rstrip(" |").endswith("theory vs measured")
    ratios = overlay.last_hidden_ratio(sweep)
    cells = pd.read_csv(report / "cells.csv")
    assert cells["theory vs measured"].to_numpy() == pytest.approx(
        [ratios[(s, d)] for s, d in zip(cells["init.scale"], cells["model.depth"])])
    assert "![trainability](trainability.png)" in text and (report / "trainability.png").stat().st_size > 20_000
    assert "about 6 xi_c" in text and "the best k is" in text and "deepest trained network per sigma_w^2" in text


def test_trainability_map_reads_the_runs(sweep):
    tmap = trainability(sweep)
    assert tmap.activation == "tanh" and tmap.sigma_b2 == pytest.approx(0.05)
    assert sorted(tmap.cells["sigma_w2"].unique()) == [1.0, 1.761, 4.0]
    assert sorted(tmap.cells["depth"].unique()) == [3, 12]
    critical = tmap.cells[tmap.cells["sigma_w2"] == 1.761]
    assert np.isinf(critical["xi_c"]).all()  # xi_c diverges at chi_1 = 1
    ordered = tmap.cells[tmap.cells["sigma_w2"] == 1.0]["xi_c"].iloc[0]
    assert ordered == pytest.approx(mean_field("tanh", 1.0, 0.05).xi_c)
    assert tmap.threshold == pytest.approx((0.1 + tmap.cells["acc"].max()) / 2)


def test_fitted_k_separates_trained_from_untrained():
    """Cells trained exactly where depth < 3 xi_c (but one): the fit finds k between the ratios
    that bracket 3, and 6 scores worse."""
    xi_c = {1.0: 4.0, 2.0: math.inf, 3.0: 10.0}
    rows = [(s, d, xi_c[s]) for s in xi_c for d in (5, 10, 20, 40, 80)]
    cells = pd.DataFrame(rows, columns=["sigma_w2", "depth", "xi_c"])
    cells["trained"] = cells["depth"] < 3 * cells["xi_c"]
    cells["acc"] = np.where(cells["trained"], 0.8, 0.1)
    tmap = TrainabilityMap("tanh", 0.05, cells, 0.1, 0.45, 2.0)
    k, (low, high) = tmap.best_k()
    assert low == pytest.approx(2.5) and high == pytest.approx(4.0) and low < k < high  # ratios 2.5 and 4 bracket 3
    assert tmap.agreement(k) == 1.0 and tmap.agreement(6.0) == pytest.approx(13 / 15)


def test_no_two_cells_in_a_panel_look_alike():
    """Colour by init, line style and marker by the other axes, one panel per depth."""
    jobs = pd.DataFrame(itertools.product(["xavier", "kaiming", "orthogonal"], ["fan_in", "fan_out"], [True, False],
                                          [5, 30]), columns=["init", "mode", "model.bias", "model.depth"])
    grid = Sweep(Path("."), jobs, list(jobs.columns), {}, {}, {}, {})
    styles = cell_styles(grid, "model.depth")
    assert styles.colour_axis == "init" and styles.style_axes == ["mode", "model.bias"]
    for _, panel in jobs.groupby("model.depth"):
        looks = [styles.of(tuple(cell)) for cell in panel.itertuples(index=False)]
        assert len({(str(look["color"]), str(look["linestyle"]), look["marker"]) for look in looks}) == len(panel)
        assert len({str(look["color"]) for look in looks}) == 3  # one colour per init


@pytest.mark.parametrize("value, expected", [(0.0, "w"), (0.3, "w"), (0.8, "k"), (1.0, "k")])
def test_heatmap_text_contrasts_with_its_cell(value, expected):
    assert text_colour(matplotlib.colormaps["viridis"](value)) == expected
