"""Theory beside measurement: each run's mean-field predictions, and the trainability map.

Per run, the prediction is for the network actually drawn: per-layer sigma_w^2 = fan_in E[W^2]
and sigma_b^2 = E[b^2] of the tensors in its init.json, anchored at the first layer's measured
Var[y_1] (the records do not keep the input's second moment, so it is read back from
Var[y_1] = sigma_w1^2 E[x^2] + sigma_b1^2). Gradients are predicted relative to the output
layer's, which the loss sets, and scaled to its measured value there.
"""

import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from initlab.data import DATASETS
from initlab.report.aggregate import layer_profile
from initlab.report.load import Sweep, read_config, read_init
from initlab.theory import MeanField, critical_sigma_w2, mean_field, predict_layers

SIGNIFICANT = 4  # digits of sigma_w^2 that name a grid column (target stds carry float noise)


@dataclass(frozen=True)
class Overlay:
    """Per predicted cell, act_var and grad_var per weight layer (geometric mean over seeds)."""

    act_var: dict[tuple, np.ndarray]
    grad_var: dict[tuple, np.ndarray]

    def last_hidden_ratio(self, sweep: Sweep) -> dict[tuple, float]:
        """Per predicted cell, measured / predicted Var[y] at the last hidden layer, at init."""
        measured = layer_profile(sweep, "act_var")
        return {cell: float(measured[cell][-2] / act[-2]) for cell, act in self.act_var.items()
                if cell in measured and len(act) >= 2 and len(measured[cell]) == len(act)}


def predictions(sweep: Sweep) -> Overlay:
    """The cells whose runs the theory describes (MLPs without norm layers), with their profiles."""
    act, grad = {}, {}
    for cell, group in sweep.cells():
        runs = [p for p in (_job_prediction(sweep, job, Path(d)) for job, d in zip(group["job"], group["dir"]))
                if p is not None]
        if runs and len({len(a) for a, _ in runs}) == 1:
            key = cell if isinstance(cell, tuple) else (cell,)
            act[key], grad[key] = (np.exp(np.mean(np.log(np.array(p)), axis=0)) for p in zip(*runs))
    return Overlay(act, grad)


def _job_prediction(sweep: Sweep, job, job_dir: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """(act_var, grad_var) predicted for one run, or None where the theory does not describe it."""
    model, frame = read_config(job_dir).get("model", {}), sweep.metrics[job]  # {}: config.yaml damaged
    if model.get("name") != "mlp" or model.get("norm") != "none" or not _has_step0(frame):
        return None
    step0, weights, layers = frame[frame["step"] == 0].iloc[0], sweep.weights[job], sweep.weight_layers(job)
    if len(weights) < 2:
        return None
    first_act, last_grad = (step0.get(key, np.nan) for key in (f"act_var/{layers[0]}", f"grad_var/{layers[-1]}"))
    if not np.isfinite([first_act, last_grad]).all():
        return None
    biases = {r["layer"]: r for r in read_init(job_dir) if r["param"] == "bias"}
    weight_vars = [r["fan_in"] * _second_moment(r) for r in weights]
    bias_vars = [_second_moment(biases[layer]) if layer in biases else 0.0 for layer in layers]
    input_var = max(first_act - bias_vars[0], 0.0) / weight_vars[0]
    theory = predict_layers(model["activation"], weight_vars, bias_vars, input_var,
                            [r["shape"][0] for r in weights], model["negative_slope"])
    return np.array(theory.act_var), np.array(theory.grad_var) * last_grad


def _has_step0(metrics: pd.DataFrame) -> bool:
    return "step" in metrics and bool((metrics["step"] == 0).any())


def _second_moment(record: dict) -> float:
    """E[x^2] of the tensor as drawn: what the next layer's variance depends on."""
    return record["std"] ** 2 + record["mean"] ** 2


@dataclass(frozen=True)
class TrainabilityMap:
    """Accuracy over (sigma_w^2, depth) for MLPs sharing one activation and sigma_b^2, with each
    column's correlation depth scale xi_c (inf at the critical point, where it diverges)."""

    activation: str
    sigma_b2: float
    cells: pd.DataFrame  # sigma_w2, depth, acc, runs, grad_growth (measured), xi_c, chi_1, trained
    chance: float
    threshold: float  # trained: accuracy above this, halfway from chance to the best cell
    critical: float | None  # the sigma_w^2 where chi_1 = 1

    def agreement(self, k: float) -> float:
        """The fraction of cells with a xi_c where "depth < k xi_c" says what the runs did."""
        cells = self.cells.dropna(subset="xi_c")
        return float(((cells["depth"] < k * cells["xi_c"]) == cells["trained"]).mean())

    def best_k(self) -> tuple[float, tuple[float, float]] | None:
        """The k that best separates trained from untrained cells, and the range of k that does
        equally well: agreement only changes where k crosses a cell's depth / xi_c, so each
        interval between those ratios is tried; k is the geometric middle of the best range."""
        ratios = np.unique((self.cells["depth"] / self.cells["xi_c"])[lambda r: r > 0])
        if not len(ratios):
            return None
        edges = np.concatenate([[ratios[0] / 2], ratios, [ratios[-1] * 2]])
        middles = np.sqrt(edges[:-1] * edges[1:])
        scores = [self.agreement(k) for k in middles]
        low = high = int(np.argmax(scores))  # widened to the neighbouring intervals that score as well
        while low > 0 and scores[low - 1] == scores[high]:
            low -= 1
        while high < len(scores) - 1 and scores[high + 1] == scores[low]:
            high += 1
        return float(np.sqrt(edges[low] * edges[high + 1])), (float(edges[low]), float(edges[high + 1]))

    def xi_c_curve(self, sigma_w2: np.ndarray) -> np.ndarray:
        """xi_c along a sigma_w^2 axis: inf at the critical point (it diverges), NaN where undefined."""
        return np.array([_xi_c(self.activation, float(s), self.sigma_b2) for s in sigma_w2])


def trainability(sweep: Sweep) -> TrainabilityMap | None:
    """The map, where the sweep's cells are MLPs with one activation and sigma_b^2 whose hidden
    layers share a sigma_w^2, told apart by sigma_w^2 and depth alone, and the theory gives
    xi_c somewhere on the grid; else None."""
    rows = [_job_point(job_dir, status, acc, sweep.metrics[job])
            for job, job_dir, status, acc in sweep.jobs[["job", "dir", "status", "test/acc"]].itertuples(index=False)]
    mapped = [r is not None for r in rows]
    runs = pd.DataFrame([r for r in rows if r is not None],
                        columns=["activation", "sigma_b2", "sigma_w2", "depth", "acc", "chance", "grad_growth"])
    if runs.empty or runs[["activation", "sigma_b2", "chance"]].nunique().max() > 1 \
            or runs["sigma_w2"].nunique() < 2 or runs["depth"].nunique() < 2:
        return None
    activation, sigma_b2, chance = runs.iloc[0][["activation", "sigma_b2", "chance"]]
    cells = runs.groupby(["sigma_w2", "depth"], as_index=False).agg(
        acc=("acc", "mean"), runs=("acc", "size"), grad_growth=("grad_growth", lambda g: np.exp(np.log(g).mean())))
    cells["xi_c"] = [_xi_c(activation, s, sigma_b2) for s in cells["sigma_w2"]]
    cells["chi_1"] = [_mean_field(activation, s, sigma_b2).chi_1 for s in cells["sigma_w2"]]
    if len(cells) != len(sweep.jobs.loc[mapped, sweep.axes].drop_duplicates()) or not np.isfinite(cells["xi_c"]).any():
        return None  # another axis varies too (its cells would be averaged together), or no xi_c to draw
    threshold = (chance + cells["acc"].max()) / 2
    cells["trained"] = cells["acc"] > threshold
    return TrainabilityMap(activation, sigma_b2, cells, chance, threshold, critical_sigma_w2(activation, sigma_b2))


def _job_point(job_dir, status: str, acc: float, metrics: pd.DataFrame) -> tuple | None:
    """(activation, sigma_b^2, sigma_w^2, depth, accuracy, chance, gradient growth) of one finished
    run: a diverged run scores chance; a failed or unfinished one, or one the theory does not map,
    is left out. The growth is the per-layer factor of Var[dL/dy] at init from the last hidden
    layer down to the first, the measured counterpart of chi_1."""
    job_dir = Path(job_dir)
    records = read_init(job_dir)
    if status not in ("completed", "diverged") or not records:
        return None
    config = read_config(job_dir)
    model, chance = config["model"], 1 / _num_classes(config["data"])
    weights = [r for r in records if r["param"] == "weight" and r["fan_in"] is not None]
    hidden = weights[1:-1]
    sigma_w2 = {_round(r["fan_in"] * _drawn_from(r) ** 2) for r in hidden}
    sigma_b2 = {_round(_drawn_from(r) ** 2) for r in records if r["param"] == "bias"}
    if model["name"] != "mlp" or model["norm"] != "none" or len(sigma_w2) != 1 or len(sigma_b2) > 1 or not hidden:
        return None
    accuracy = acc if status == "completed" else chance
    step0 = metrics[metrics["step"] == 0].iloc[0] if _has_step0(metrics) else {}
    first, last = (step0.get(f"grad_var/{r['layer']}", np.nan) for r in (hidden[0], hidden[-1]))
    growth = (first / last) ** (1 / (len(hidden) - 1)) if len(hidden) > 1 else np.nan
    return (model["activation"], sigma_b2.pop() if sigma_b2 else 0.0, sigma_w2.pop(), len(weights), accuracy, chance,
            growth)


def _num_classes(data: dict) -> int:
    """The run's classes: its dataset's (records before data.num_classes was null for a real
    dataset hold the synthetic default there), or synthetic's own."""
    spec = DATASETS.get(data["name"])
    return spec.num_classes if spec is not None else data["num_classes"]


def _drawn_from(record: dict) -> float:
    """The std of the distribution a tensor was drawn from (the measured one where no target)."""
    return record["std"] if record["target_std"] is None else record["target_std"]


def _round(value: float) -> float:
    return float(f"{value:.{SIGNIFICANT}g}")


@cache
def _mean_field(activation: str, sigma_w2: float, sigma_b2: float) -> MeanField:
    return mean_field(activation, sigma_w2, sigma_b2)


def _xi_c(activation: str, sigma_w2: float, sigma_b2: float) -> float:
    """xi_c; inf at the critical point, where it diverges; NaN where the theory has none."""
    theory = _mean_field(activation, sigma_w2, sigma_b2)
    return math.inf if theory.phase == "critical" else math.nan if theory.xi_c is None else theory.xi_c
