"""Dynamical-isometry reports (Pennington et al. 2017, Xiao et al. 2018): per-run spectra and losses
read from the records, the claims judged on sweeps built with known answers, spectrum.png, and
the mean-field overlay of circular CNNs on real runs."""

import itertools
import json
import math
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import initlab
from initlab.init.apply import records_as_dicts
from initlab.report.aggregate import layer_profile
from initlab.report.claims import claims_for
from initlab.report.isometry import late_loss, paired, per_seed, spectra
from initlab.report.load import Sweep, load_sweep
from initlab.report.overlay import predictions
from initlab.report.plots.spectrum import spectrum_figure
from initlab.report.verdict import Verdict
from initlab.theory import run_theory
from sweeps import multirun

STEPS = 100


def isometry_sweep(root: Path, grid: dict[str, list], outcome, seeds=(0, 1, 2), steps: int = STEPS,
                   experiment: str = "pennington2017") -> Sweep:
    """One job per cell and seed, its folder under `root` holding a jacobian.json; `outcome(cell,
    seed)` gives the run's dict: loss (its train loss from step steps/2 on; 2.3 before), spread and
    predicted (Var[s^2] / E[s^2]^2 measured and predicted, E[s^2] = 0.5), acc, status."""
    rows, metrics, configs = [], {}, {}
    for values in itertools.product(*grid.values()):
        cell = dict(zip(grid, values))
        for seed in seeds:
            job = ",".join(f"{k}={v}" for k, v in cell.items()) + f",seed={seed}"
            run = {"loss": 1.0, "spread": 1.0, "predicted": 1.0, "acc": 0.5, "status": "completed"}
            run |= outcome(cell, seed)
            folder = root / job
            folder.mkdir(parents=True)
            (folder / "jacobian.json").write_text(json.dumps({
                "sv2_mean": 0.5, "sv2_var": run["spread"] * 0.25, "predicted_sv2_mean": 0.5,
                "predicted_sv2_var": run["predicted"] * 0.25}))
            rows.append({"job": job, "dir": str(folder), "status": run["status"], "steps": steps, "seed": seed,
                         "train/loss": run["loss"], "train/acc": 0.5, "test/loss": 1.0, "test/acc": run["acc"], **cell})
            logged = range(0, steps + 1, max(1, steps // 10))
            metrics[job] = pd.DataFrame({"step": list(logged),
                                         "train/loss": [2.3 if s < steps / 2 else run["loss"] for s in logged]})
            configs[job] = {"train": {"steps": steps, "epochs": None}, "data": {"name": "synthetic", "num_classes": 10},
                            "model": {"depth": 128}, "seed": seed}
    jobs = pd.DataFrame(rows)
    overrides = {j: [f"experiment={experiment}"] for j in metrics}
    return Sweep(root, jobs, list(grid), metrics, {j: [] for j in metrics}, overrides, {}, configs, {})


PENNINGTON = {"phase": ["tanh_critical", "relu_critical"], "init": ["orthogonal", "kaiming"],
              "model.depth": [10, 200]}


def pennington_outcome(tanh_gain_per_layer: float, relu_gain: float):
    """tanh: Gaussian weights' loss grows with depth by `tanh_gain_per_layer`, orthogonal's stays;
    ReLU: orthogonal ahead by `relu_gain` everywhere (and behind orthogonal tanh). Spreads as free
    probability has them: tanh orthogonal 2, Gaussian ~ depth; ReLU ~ depth and ~ 2 depth."""
    def outcome(cell, seed):
        depth, noise = cell["model.depth"], 0.01 * seed
        if cell["phase"] == "tanh_critical":
            gaussian = cell["init"] == "kaiming"
            loss = 0.5 + (tanh_gain_per_layer * depth if gaussian else 0.0)
            spread = depth * (1 + noise) if gaussian else 2.0 * (1 + noise)
        else:
            loss = 1.5 - (relu_gain if cell["init"] == "orthogonal" else 0.0)
            spread = depth * (1 + noise) * (1 if cell["init"] == "orthogonal" else 2)
        return {"loss": loss + noise, "spread": spread, "predicted": spread}
    return outcome


def verdicts(sweep: Sweep, experiment: str) -> list[Verdict]:
    return [c.verdict for c in claims_for(experiment, sweep)]


def test_spectra_give_each_runs_spread_and_say_nan_where_none_was_measured(tmp_path):
    sweep = isometry_sweep(tmp_path, {"init": ["orthogonal", "kaiming"]}, lambda cell, seed: {"spread": 3.0 + seed},
                           seeds=(0, 1))
    jobs = list(sweep.jobs["job"])
    (tmp_path / jobs[1] / "jacobian.json").write_text("{not json")
    (tmp_path / jobs[2] / "jacobian.json").unlink()
    (tmp_path / jobs[3] / "jacobian.json").write_text(json.dumps({"sv2_mean": 0.0, "sv2_var": 0.0}))  # underflowed
    table = spectra(sweep)
    assert table.loc[jobs[0], "spread"] == pytest.approx(3.0) and table.loc[jobs[0], "sv2_mean"] == 0.5
    assert table.loc[jobs[1:], "spread"].isna().all() and table.loc[jobs[3], "predicted_spread"] != 0


def test_late_loss_is_the_mean_of_the_last_fifth_of_the_budget_and_none_for_a_diverged_run(tmp_path):
    sweep = isometry_sweep(tmp_path, {"init": ["orthogonal"]}, lambda cell, seed: {"loss": 0.7}, seeds=(0, 1))
    job = sweep.jobs["job"].iloc[0]
    sweep.metrics[job].loc[sweep.metrics[job]["step"] == 70, "train/loss"] = 100.0  # before the last fifth
    sweep.metrics[job].loc[sweep.metrics[job]["step"] == 90, "train/loss"] = 1.0  # inside: steps 80, 90, 100
    sweep.jobs.loc[1, "status"] = "diverged"
    loss = late_loss(sweep)
    assert loss[job] == pytest.approx((0.7 + 1.0 + 0.7) / 3) and math.isnan(loss[sweep.jobs["job"].iloc[1]])


def test_runs_are_paired_by_seed():
    assert paired({0: 1.0, 1: 2.0, 2: 3.0}, {1: 0.5, 2: 1.0, 3: 9.0}, lambda a, b: a - b) == {1: 1.5, 2: 2.0}


def test_pennington_claims_agree_where_orthogonal_tanh_pulls_ahead_with_depth_and_relu_gains_nothing(tmp_path):
    sweep = isometry_sweep(tmp_path, PENNINGTON, pennington_outcome(tanh_gain_per_layer=0.005, relu_gain=0.0))
    assert per_seed(sweep, late_loss(sweep), phase="tanh_critical", init="kaiming", **{"model.depth": 200}) == \
        pytest.approx({0: 1.5, 1: 1.51, 2: 1.52})
    assert verdicts(sweep, "pennington2017") == [Verdict.agrees] * 6


def test_pennington_claims_disagree_where_orthogonal_weights_lose_for_tanh_and_win_for_relu(tmp_path):
    sweep = isometry_sweep(tmp_path, PENNINGTON, pennington_outcome(tanh_gain_per_layer=-0.001, relu_gain=0.5))
    tanh_gain, grows, relu_no_gain, tanh_beats_relu, *spectrum = verdicts(sweep, "pennington2017")
    assert (tanh_gain, grows, relu_no_gain) == (Verdict.disagrees,) * 3
    assert tanh_beats_relu == Verdict.agrees and spectrum == [Verdict.agrees] * 2  # 0.5 vs 1.0: still ahead


def test_pennington_claims_are_untested_without_their_grid(tmp_path):
    sweep = isometry_sweep(tmp_path, {"init": ["orthogonal", "kaiming"]}, lambda cell, seed: {})
    assert verdicts(sweep, "pennington2017") == [Verdict.untested]


XIAO = {"init": ["delta_orthogonal", "kaiming"], "phase": ["tanh_ordered", "tanh_critical", "tanh_chaotic"]}


def xiao_outcome(gaussian_critical_acc: float):
    """Delta-orthogonal at the critical point trains (0.8) and is isometric; every other cell stays
    at chance (Gaussian at the critical point: `gaussian_critical_acc`); the chaotic Gaussian runs diverge."""
    def outcome(cell, seed):
        trains = cell == {"init": "delta_orthogonal", "phase": "tanh_critical"}
        acc = 0.8 if trains else gaussian_critical_acc if cell["phase"] == "tanh_critical" else 0.1
        status = "diverged" if cell == {"init": "kaiming", "phase": "tanh_chaotic"} else "completed"
        return {"acc": acc + 0.005 * seed, "spread": 0.5 if trains else 50.0 + seed, "status": status}
    return outcome


@pytest.mark.parametrize("gaussian_critical_acc, expected", [(0.1, Verdict.agrees), (0.7, Verdict.disagrees)])
def test_xiao_claims_judge_each_cell_and_count_an_all_diverged_cell_as_failed(tmp_path, gaussian_critical_acc,
                                                                                expected):
    sweep = isometry_sweep(tmp_path, XIAO, xiao_outcome(gaussian_critical_acc), experiment="xiao2018")
    sweep.jobs.loc[sweep.jobs["status"] == "diverged", "test/acc"] = np.nan
    trains, gaussian_fails, off_critical_fails, isometric = claims_for("xiao2018", sweep)
    assert (trains.verdict, gaussian_fails.verdict, off_critical_fails.verdict, isometric.verdict) == (
        Verdict.agrees, expected, Verdict.agrees, Verdict.agrees)
    assert "init=kaiming, phase=tanh_chaotic: – (3 diverged)" in off_critical_fails.evidence


def test_spectrum_figure_puts_a_tick_at_every_depth_and_two_lines_a_panel(tmp_path):
    sweep = isometry_sweep(tmp_path / "runs", PENNINGTON, pennington_outcome(0.005, 0.0))
    path = spectrum_figure(sweep, tmp_path)
    assert path == tmp_path / "spectrum.png" and matplotlib.image.imread(path).shape[1] > 800
    init_only = isometry_sweep(tmp_path / "init_only", PENNINGTON, pennington_outcome(0.005, 0.0), steps=1)
    assert spectrum_figure(init_only, tmp_path) is not None  # the spectrum rows alone
    no_init_axis = isometry_sweep(tmp_path / "depths", {"model.depth": [10, 200]}, lambda cell, seed: {})
    assert spectrum_figure(no_init_axis, tmp_path) is None
    for folder in (tmp_path / "runs").iterdir():
        (folder / "jacobian.json").unlink()
    assert spectrum_figure(sweep, tmp_path) is None  # nothing measured: nothing to draw


def test_spectrum_figure_layout(tmp_path, monkeypatch):
    """Columns: loss, spread, mean; one row per phase; per panel the two inits (and their
    predictions as markers), the x ticks at the grid's depths."""
    import initlab.report.plots.spectrum as spectrum

    drawn = []
    monkeypatch.setattr(spectrum, "save", lambda fig, path: drawn.append(fig) or path)
    spectrum_figure(isometry_sweep(tmp_path, PENNINGTON, pennington_outcome(0.005, 0.0)), tmp_path)
    drawn[0].canvas.draw()
    axes = [ax for ax in drawn[0].axes if ax.get_visible()]
    assert len(axes) == 3 * 2
    for ax in axes:
        assert list(ax.get_xticks()) == [0, 1]
        assert len([line for line in ax.get_lines() if line.get_linestyle() != "None"]) <= 2
    assert [t.get_text() for t in axes[-1].get_xticklabels()] == ["10", "200"]  # labelled on the bottom row
    assert [ax.get_yscale() for ax in axes[:3]] == ["linear", "log", "log"]  # the first row, left to right


@pytest.fixture(scope="module")
def cnn_sweep(tmp_path_factory) -> Sweep:
    """xiao2018's tanh CNNs at init, circular and zero padding, delta-orthogonal and Gaussian kernels
    at the critical point, 16 channels, 12 layers, through Hydra as a user runs it; on synthetic 8x8
    images of 16 channels, so that a delta-orthogonal first layer gives every channel the same
    variance (one input channel would give each its own, which the mean-field map does not track)."""
    path = tmp_path_factory.mktemp("cnn")
    assert multirun(path, "experiment=xiao2018", "phase=tanh_critical", "model.depth=12", "model.channels=16",
                    "model.padding=circular,zeros", "init=delta_orthogonal,kaiming", "dataset=synthetic",
                    "data.resize=null", "data.input_shape=[16,8,8]", "data.train_size=256", "data.test_size=64",
                    "data.batch_size=128", "train.steps=1", "train.log_every=1", "logger=none", "seed=0,1") == 0
    return load_sweep(path)


def test_overlay_predicts_a_circular_cnns_conv_layers_not_its_head_nor_a_zero_padded_one(cnn_sweep):
    overlay = predictions(cnn_sweep)
    assert {cell[cnn_sweep.axes.index("model.padding")] for cell in overlay.act_var} == {"circular"}
    act, grad = layer_profile(cnn_sweep, "act_var"), layer_profile(cnn_sweep, "grad_var")
    for cell, predicted in overlay.act_var.items():
        centre, measured = predicted.centre(), act[cell].centre()
        assert np.isnan(centre[-1]) and np.isfinite(centre[:-1]).all()  # the pooled head: not predicted
        assert centre[0] == pytest.approx(measured[0], rel=1e-6)
        assert np.abs(np.log(measured[:-1] / centre[:-1])).max() < math.log(1.2), cell
        gradient = overlay.grad_var[cell].centre()
        assert gradient[-2] == pytest.approx(grad[cell].centre()[-2], rel=1e-6)  # anchored at the last conv layer
        assert np.abs(np.log(grad[cell].centre()[:-1] / gradient[:-1])).max() < math.log(3), cell  # 16 channels
    ratios = overlay.last_hidden_ratio(cnn_sweep)
    assert len(ratios) == 2 and all(abs(math.log(r.mean)) < math.log(1.2) for r in ratios.values())


def test_theory_predicts_every_draw_of_a_deep_narrow_cnn_whose_tiny_biases_average_off_zero_by_chance():
    """xiao2018's nets: 128 layers of 8 channels, biases N(0, 1e-5). Each layer's 8 biases have a
    sample mean that is, now and then, 4 of their own (noisy) standard errors from 0: judged that way,
    half the draws lost their prediction as 'not zero-mean'."""
    layers = [m for _ in range(127) for m in (nn.Conv2d(8, 8, 3, padding=1, padding_mode="circular"), nn.Tanh())]
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, padding_mode="circular"), nn.Tanh(), *layers[2:],
                          nn.Flatten(), nn.Linear(8 * 49, 10))
    for seed in range(8):
        records = initlab.initialize(model, "delta_orthogonal", gain=1.0195685, bias="normal",
                                     bias_std=math.sqrt(1e-5), generator=torch.Generator().manual_seed(seed))
        theory = run_theory("cnn", "tanh", 0.01, records_as_dicts(records), padding="circular")
        assert theory["predicted"], theory["reason"]
        assert theory["sigma_w2"] == pytest.approx(1.03952, rel=1e-6)
