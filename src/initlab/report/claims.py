"""What a paper claims, checked in numbers from a reproduction's records.

Each experiment with a published result has a function here: it states the claim, finds
the evidence in the sweep (cell means, per-layer statistics at init) and says whether the
reproduction agrees. A grid that lacks the cells a claim needs says so instead of guessing.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from initlab.diagnostics.theory import predicted_variances
from initlab.report.aggregate import cell_table, layer_profile
from initlab.report.load import Sweep

CHANCE_LOSS = math.log(10)  # cross-entropy of a uniform guess over 10 classes


@dataclass
class Claim:
    claim: str
    evidence: str
    agrees: bool | None  # None: this sweep cannot test it


CLAIMS: dict[str, Callable[[Sweep], list[Claim]]] = {}


def claims_for(experiment: str | None, sweep: Sweep) -> list[Claim]:
    return CLAIMS[experiment](sweep) if experiment in CLAIMS else []


def _claims(name: str):
    def register(fn):
        CLAIMS[name] = fn
        return fn

    return register


def _cells(table: pd.DataFrame, **where) -> pd.DataFrame:
    """The rows (cells or jobs) whose columns hold these values; none if a column is missing."""
    for key, value in where.items():
        if key not in table:
            return table.iloc[0:0]
        table = table[table[key] == value]
    return table


def _escape_step(sweep: Sweep, jobs, below: float) -> list[int | None]:
    """Per run, the first logged step whose train loss fell below `below` (None: never)."""
    steps = []
    for job in jobs:
        frame = sweep.metrics[job]
        hit = frame[frame["train/loss"] < below]["step"] if "train/loss" in frame else []
        steps.append(int(hit.iloc[0]) if len(hit) else None)
    return steps


@_claims("he2015")
def he2015(sweep: Sweep) -> list[Claim]:
    table = cell_table(sweep)
    claims = []
    deep, shallow = _cells(table, **{"model.depth": 30}), _cells(table, **{"model.depth": 5})
    kaiming = _cells(deep, init="kaiming")
    if len(kaiming):
        worst = kaiming["test/acc"].min()
        claims.append(Claim(
            "A 30-layer ReLU net trains with kaiming init, fan_in and fan_out alike.",
            "final test accuracy of every depth-30 kaiming cell: "
            + "; ".join(f"{_describe(r, sweep.axes, 'model.depth')}: {r['test/acc']:.3f}" for _, r in kaiming.iterrows()),
            bool(worst > 0.5)))
    for bias in sorted(deep["model.bias"].unique()) if "model.bias" in deep else [None]:
        where = {"model.depth": 30, "init": "xavier"} | ({} if bias is None else {"model.bias": bias})
        xavier = _cells(table, **where)
        if not len(xavier):
            continue
        escapes = _escape_step(sweep, _cells(sweep.jobs, **where)["job"], CHANCE_LOSS - 0.1)
        stalled = all(abs(v - CHANCE_LOSS) < 0.05 for v in xavier["train/loss"])
        where = "" if bias is None else f" (bias={bias})"
        claims.append(Claim(
            f"A 30-layer ReLU net stalls with xavier init{where}: its loss stays at chance, ln 10 = {CHANCE_LOSS:.3f}.",
            "final train loss: " + "; ".join(f"{_describe(r, sweep.axes, 'model.depth')}: {r['train/loss']:.4f}"
                                             for _, r in xavier.iterrows())
            + "; first logged step with loss < ln10 - 0.1, per run: "
            + ", ".join("never" if s is None else str(s) for s in escapes),
            stalled))
    if len(shallow):
        claims.append(Claim(
            "At a shallow depth (5 layers) both inits train.",
            "final test accuracy: " + "; ".join(f"{_describe(r, sweep.axes, 'model.depth')}: {r['test/acc']:.3f}"
                                                for _, r in shallow.iterrows()),
            bool(shallow["test/acc"].min() > 0.7)))
    return claims or [Claim("He et al. 2015, Figure 3", "this sweep has no depth-5/30 cells", None)]


@_claims("glorot2010")
def glorot2010(sweep: Sweep) -> list[Claim]:
    act, grad = layer_profile(sweep, "act_var"), layer_profile(sweep, "grad_var")
    cells = {tuple(dict(zip(sweep.axes, k))[a] for a in ("model.activation", "init")): k for k in act
             if {"model.activation", "init"} <= set(sweep.axes)}
    claims = []
    std, xav = cells.get(("tanh", "default")), cells.get(("tanh", "xavier"))
    if std and xav:
        per_layer = {name: _per_layer(profile) for name, profile in
                     (("a_std", act[std]), ("a_xav", act[xav]), ("g_std", 1 / grad[std]), ("g_xav", 1 / grad[xav]))}
        claims += [
            Claim("tanh, Fig. 6: under the standard init U(-1/sqrt(n), 1/sqrt(n)) activations shrink from layer to "
                  "layer (by about 1/3 per layer while tanh is near-linear).",
                  f"Var[y] of the hidden layers changes by a factor {per_layer['a_std']:.3g} per layer",
                  bool(per_layer["a_std"] < 0.5)),
            Claim("tanh, Fig. 6: the normalised (xavier) init keeps the activation variance roughly constant.",
                  f"Var[y] changes by a factor {per_layer['a_xav']:.3g} per layer: far slower than under the standard "
                  "init, but not constant (tanh compresses; the mean-field row below predicts this decay)",
                  bool(0.8 < per_layer["a_xav"] < 1.25)),
            Claim("tanh, Fig. 7: under the standard init back-propagated gradients shrink toward the input layers.",
                  f"Var[dL/dy] shrinks by a factor {per_layer['g_std']:.3g} per layer going down",
                  bool(per_layer["g_std"] < 0.5)),
            Claim("tanh, Fig. 7: the normalised init keeps the back-propagated gradient variance roughly constant.",
                  f"Var[dL/dy] changes by a factor {per_layer['g_xav']:.3g} per layer going down",
                  bool(0.8 < per_layer["g_xav"] < 1.25)),
        ]
    for (activation, init), key in cells.items():
        measured, predicted = _mean_field(sweep, key, activation)
        name = "standard" if init == "default" else "normalised"
        claims.append(Claim(
            f"{activation}, {name} init (mean-field theory, not in the paper): from the first layer's measured "
            "variance, q_(l+1) = fan_in sigma_w^2 E[phi(sqrt(q_l) z)^2] with the weights' measured std predicts "
            "the last hidden layer's Var[y].",
            f"last hidden Var[y]: measured {measured:.3g}, predicted {predicted:.3g}",
            bool(0.8 < measured / predicted < 1.25)))
    return claims or [Claim("Glorot & Bengio 2010, Figs. 6-7", "this sweep has no tanh default/xavier cells", None)]


def _per_layer(profile: np.ndarray) -> float:
    """Geometric-mean factor by which a statistic changes per layer across the hidden layers."""
    hidden = profile[:-1]  # the output layer is not hidden
    return float((hidden[-1] / hidden[0]) ** (1 / (len(hidden) - 1)))


def _mean_field(sweep: Sweep, cell: tuple, activation: str) -> tuple[float, float]:
    """(measured, predicted) Var[y] of the last hidden layer, geometric means over the cell's runs."""
    values = dict(zip(sweep.axes, cell))
    jobs = sweep.jobs[(sweep.jobs[list(values)] == pd.Series(values)).all(axis=1)]["job"]
    measured, predicted = [], []
    for job in jobs:
        step0 = sweep.metrics[job][sweep.metrics[job]["step"] == 0].iloc[0]
        records = sweep.weights[job]
        q = [step0[f"act_var/{r['layer']}"] for r in records]
        scales = [r["fan_in"] * r["std"] ** 2 for r in records[1:]]
        predicted.append(predicted_variances(q[0], scales, activation)[-2])
        measured.append(q[-2])
    return float(np.exp(np.mean(np.log(measured)))), float(np.exp(np.mean(np.log(predicted))))


def _describe(row: pd.Series, axes: list[str], skip: str) -> str:
    return ", ".join(f"{a.split('.')[-1]}={row[a]}" for a in axes if a != skip)
