"""Report parts on sweeps built in memory (no runs): which figures an experiment supports, how
panels are cut, fixed colour scales, the declared protocol and its shortfalls, and claims judged
with their tolerances."""

import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from initlab.report.claims.glorot2010 import glorot2010
from initlab.report.claims.schoenholz2017 import _gradients_follow_chi_1
from initlab.report.load import Sweep
from initlab.report.overlay import Overlay
from initlab.report.plots import figures
from initlab.report.plots.curves import _shown
from initlab.report.plots.heatmaps import _position, _scale, cell_text
from initlab.report.plots.layout import MAX_LINES, layout
from initlab.report.protocol import protocol_section, select
from initlab.report.stats import Estimate
from initlab.report.trainability import TrainabilityMap
from initlab.report.verdict import Verdict
from initlab.theory import mean_field

LAYERS = ["layers.0", "layers.2", "layers.4", "layers.6"]  # weight layers of a depth-4 MLP
PNG = b"\x89PNG\r\n\x1a\n"


def sweep_of(grid: dict[str, list], seeds=(0, 1, 2), steps: int = 40, protocol: dict | None = None,
             stats=lambda values, seed: {}, config: dict | None = None) -> Sweep:
    """One completed job per grid cell and seed; its metrics at step 0 hold act_var and grad_var per
    layer (plus `stats(cell values, seed)`), its train loss falls over `steps`; every config.yaml
    holds `config` besides, and its .hydra/hydra.yaml `protocol`."""
    rows, metrics, weights, configs, protocols = [], {}, {}, {}, {}
    for values in itertools.product(*grid.values()):
        cell = dict(zip(grid, values))
        for seed in seeds:
            job = ",".join(f"{k}={v}" for k, v in cell.items()) + f",seed={seed}"
            rows.append({"job": job, "dir": f"/nowhere/{job}", "status": "completed", "steps": steps, "seed": seed,
                         "train/loss": 1.0, "train/acc": 0.5, "test/loss": 1.0, "test/acc": 0.30 + 0.01 * seed, **cell})
            step0 = {f"{s}/{layer}": 0.5 ** i for s in ("act_var", "grad_var") for i, layer in enumerate(LAYERS)}
            metrics[job] = pd.DataFrame([{"step": 0, "train/loss": 2.3, **step0, **stats(cell, seed)},
                                         {"step": steps, "train/loss": 1.0}])
            weights[job] = [{"layer": layer, "param": "weight", "fan_in": 16} for layer in LAYERS]
            configs[job] = {"train": {"steps": steps, "epochs": None}, "data": {"name": "synthetic", "num_classes": 10},
                            "model": {"width": 16}, "seed": seed, **(config or {})}
            protocols[job] = protocol or {}
    jobs = pd.DataFrame(rows)
    return Sweep(Path("/nowhere"), jobs, list(grid), metrics, weights, {j: [] for j in metrics}, {}, configs, protocols)


def test_an_init_only_study_draws_no_training_curves_and_no_accuracy_map(tmp_path):
    grid = {"model.activation": ["tanh", "relu"], "init": ["default", "xavier"]}
    none = Overlay({}, {})
    assert {p.name for p in figures(sweep_of(grid, steps=1), tmp_path, none, None, None)} == {"signal.png"}
    assert {p.name for p in figures(sweep_of(grid, steps=40), tmp_path, none, None, None)} == {
        "curves.png", "signal.png", "heatmap.png"}
    figures(sweep_of(grid, steps=1), tmp_path, none, None, None)  # a report of other runs into the same folder
    assert [p.name for p in tmp_path.iterdir()] == ["signal.png"]  # leaves no figure of the earlier runs


def test_post_activation_values_are_drawn_where_the_runs_recorded_them(tmp_path):
    """Glorot & Bengio plot activation values after the nonlinearity, per hidden layer."""
    def post(cell, seed):
        return {f"{s}/{layer}": v for layer in LAYERS[:-1]
                for s, v in (("post_mean", 0.0), ("post_std", 0.5), ("post_p02", -0.9), ("post_p98", 0.9))} | {
            f"act_mean/{layer}": 0.0 for layer in LAYERS}

    grid = {"model.activation": ["tanh", "sigmoid"], "init": ["default", "xavier"]}
    drawn = figures(sweep_of(grid, steps=1, stats=post), tmp_path, Overlay({}, {}), None, None)
    assert [p.name for p in drawn] == ["signal.png", "activations.png"]
    assert (tmp_path / "activations.png").read_bytes().startswith(PNG)


def test_a_colour_axis_of_twelve_values_is_cut_into_panels_of_six_with_colours_of_their_own():
    sigmas = [1.0, 1.25, 1.5, 1.761, 2.0, 2.25, 2.5, 2.75, 3.0, 3.25, 3.5, 4.0]
    sweep = sweep_of({"init.scale": sigmas, "model.depth": [10, 20]}, seeds=(0,))
    plan = layout(sweep, [c for c, _ in sweep.cells()], ["model.depth"])
    assert len(plan.panels) == 4 and all(len(p.cells) == MAX_LINES for p in plan.panels)
    assert all(p.own_colours and len(set(map(str, p.colours.values()))) == MAX_LINES for p in plan.panels)
    assert [p.title for p in plan.panels] == [r"depth $L$ = 10"] * 2 + [r"depth $L$ = 20"] * 2
    assert plan.shape(4) == (1, 4)  # a depth's two panels side by side


def test_curves_of_a_dense_grid_draw_evenly_spread_cells_with_each_axis_ends_kept():
    sigmas, depths = [1 + 0.15 * i for i in range(21)], [10, 13, 17, 22, 28, 36, 46, 60, 77, 100]
    sweep = sweep_of({"init.scale": sigmas, "model.depth": depths}, seeds=(0,))
    shown = _shown(sweep, [c for c, _ in sweep.cells()], "model.depth")
    assert {d for _, d in shown} == {10, 22, 46, 100} and len({s for s, _ in shown}) == MAX_LINES
    assert {sigmas[0], sigmas[-1]} <= {s for s, _ in shown} and len(shown) == 4 * MAX_LINES
    small = sweep_of({"init.scale": sigmas[:6], "model.depth": depths[:2]}, seeds=(0,))
    assert len(_shown(small, [c for c, _ in small.cells()], "model.depth")) == 12  # few panels: every cell


def test_panel_and_axis_names_say_what_the_key_means():
    grid = {"init.scale": [1.0, 2.0], "optim.lr": [0.1, 0.01]}
    scaling = {"init": {"scheme": "variance_scaling"}, "mode": "fan_in"}
    assert sweep_of(grid, seeds=(0,), config=scaling | {"gain": "2"}).meaning("init.scale").text == "variance scale s"
    sweep = sweep_of(grid, seeds=(0,), config=scaling | {"gain": "1"})
    assert sweep.meaning("init.scale").text == "sigma_w^2" and sweep.meaning("optim.lr").text == "learning rate"


def test_heatmap_scales_are_fixed_by_the_metric_and_cells_print_their_interval_or_n():
    sweep = sweep_of({"init": ["xavier", "kaiming"]}, seeds=(0,))
    assert _scale(sweep, "test/acc") == (0.1, 1.0)  # chance to 1, however close the cells' values lie
    assert _scale(sweep, "train/loss") == pytest.approx((0.0, math.log(10)))
    assert cell_text(Estimate.of([0.30, 0.32, 0.31])) == "0.31\n±0.02"
    assert cell_text(Estimate.of([0.30])) == "0.30\nn=1"


def test_curves_on_a_categorical_axis_fall_between_the_grid_values_they_lie_between():
    depths = [10, 15, 20, 30, 40]
    assert _position(np.array([15, 25, 40, 50, 5]), depths) == pytest.approx([1, 2.5, 4, 5, -1])
    assert _position(np.array([math.inf]), depths)[0] > len(depths)  # xi_c at the critical point: off the top


def test_protocol_prints_what_the_runs_had_and_where_it_falls_short():
    protocol = {"paper": "A & B 2020", "takes": [{"what": "width", "value": "16", "source": "Sec. 2",
                                                  "keys": ["model.width"]}],
                "changes": [], "fits": [{"quantity": "k", "fit_seeds": [0, 1], "score_seeds": [2, 3]}],
                "chooses": [{"key": "optim.lr", "rule": "tuned on the grid", "criterion": "best", "seeds": [0],
                             "before_grid": False},
                            {"key": "data.batch_size", "rule": "pre-sweep", "criterion": "fastest", "seeds": [1],
                             "before_grid": True}]}
    optim = {"optim": {"name": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 0.0, "schedule": "constant"}}
    text = "\n".join(protocol_section(sweep_of({"init": ["xavier", "kaiming"]}, seeds=(0, 1), protocol=protocol,
                                                config=optim)))
    assert "| width | 16 | Sec. 2 | `model.width` = 16 |" in text
    assert "`optim.lr` was chosen after the main grid's results were seen" in text
    assert "the rule for `data.batch_size` ran on seeds [1], which the main grid uses too" in text
    assert "no entry says where these settings come from: `optim.name`, `optim.momentum`" in text
    assert "model.channels" not in text  # an MLP has no channels to declare
    assert "k is declared to be fitted on seeds [0, 1] and scored on [2, 3], but this sweep ran seeds [0, 1]" in text
    partial = {"takes": protocol["takes"]}  # as a yaml that leaves out what it does not use records it
    assert "| width | 16 | Sec. 2 |" in "\n".join(protocol_section(sweep_of({"init": ["xavier"]}, protocol=partial)))
    empty = "\n".join(protocol_section(sweep_of({"init": ["xavier", "kaiming"]}, seeds=(0,))))
    assert "These runs declare no protocol" in empty


def test_a_presweep_chooses_by_its_declared_rule_and_a_rate_with_a_diverged_run_is_not_eligible():
    protocol = {"takes": [], "changes": [], "chooses": [], "fits": [],
                "selects": [{"key": "optim.lr", "metric": "train/loss", "goal": "min", "used_by": "main"}]}
    sweep = sweep_of({"optim.lr": [0.001, 0.01, 0.1]}, seeds=(100, 101), protocol=protocol)
    loss = {0.001: 1.5, 0.01: 0.9, 0.1: 0.2}
    sweep.jobs["train/loss"] = [loss[lr] + 0.01 * seed for lr, seed in zip(sweep.jobs["optim.lr"], sweep.jobs["seed"])]
    assert select(sweep, protocol["selects"][0])[0] == 0.1
    sweep.jobs.loc[(sweep.jobs["optim.lr"] == 0.1) & (sweep.jobs["seed"] == 101), "status"] = "diverged"
    chosen, scores = select(sweep, protocol["selects"][0])
    assert chosen == 0.01 and scores[0.1][1] == 1 and scores[0.01][0].n == 2
    text = "\n".join(protocol_section(sweep))
    assert "**Pre-sweep for `main`**" in text and "Chosen: `optim.lr` = 0.01." in text
    assert "| `0.01` | 1.9" in text and "| 0 | **chosen** |" in text and "| `0.1` | 1.2" in text


def test_glorot_claims_use_the_values_after_the_nonlinearity_where_recorded():
    grid = {"model.activation": ["tanh"], "init": ["default", "xavier"]}

    def post(cell, seed):  # the std after phi halves per layer under the standard init, holds under xavier
        shrink = 0.5 if cell["init"] == "default" else 1.0
        return {f"post_std/{layer}": shrink ** i for i, layer in enumerate(LAYERS[:-1])}

    before = glorot2010(sweep_of(grid, steps=1))
    after = glorot2010(sweep_of(grid, steps=1, stats=post))
    assert "before the nonlinearity" in before[0].evidence and "after the nonlinearity" in after[0].evidence
    assert [c.verdict for c in after[:2]] == [Verdict.agrees, Verdict.agrees]  # factors 0.25 and 1 per layer


def chi_1_map(off: float) -> TrainabilityMap:
    """Depth-100 tanh nets, width 64, 3 seeds per sigma_w^2, whose measured per-layer gradient factor
    is chi_1 times `off` (seed noise 0.2%)."""
    sigmas = [1.0, 1.761, 3.0]
    rows = [(s, 100, seed, 0.5, mean_field("tanh", s, 0.05).chi_1 * off * (1 + 0.002 * (seed - 1)))
            for s in sigmas for seed in range(3)]
    runs = pd.DataFrame(rows, columns=["sigma_w2", "depth", "seed", "acc", "grad_growth"])
    return TrainabilityMap("tanh", 0.05, 64, runs.assign(cell=runs.groupby(["sigma_w2", "depth"]).ngroup()), 0.1,
                           1.761)


@pytest.mark.parametrize("off, verdict", [(math.exp(-1 / 64), Verdict.agrees),  # finite width's expected offset
                                          (0.97, Verdict.agrees), (1.1, Verdict.disagrees),
                                          (0.9, Verdict.disagrees)])  # signs right, factor off: not chi_1
def test_gradient_factor_is_compared_with_chi_1_within_finite_width_not_by_sign(off, verdict):
    """Tolerance at depth 100, width 64: 1/64 + 2 sqrt(2 / (97 * 64)) = 0.052 in log per layer."""
    claim = _gradients_follow_chi_1(chi_1_map(off))
    assert claim.verdict == verdict and claim.n == 3 and "0.0515" in claim.test
