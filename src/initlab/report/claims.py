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

from initlab.report.aggregate import cell_table, layer_profile
from initlab.report.load import Sweep
from initlab.report.overlay import TrainabilityMap, predictions, trainability
from initlab.theory import CRITICAL_TOL, DEPTH_FACTOR

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
    predicted = predictions(sweep).act_var
    for (activation, init), key in cells.items():
        if key not in predicted:
            continue
        measured, theory = act[key][-2], predicted[key][-2]
        name = "standard" if init == "default" else "normalised"
        claims.append(Claim(
            f"{activation}, {name} init (mean-field theory, not in the paper): from the first layer's measured "
            "variance, q_(l+1) = fan_in E[W^2] E[phi(sqrt(q_l) z)^2] + E[b^2] with the weights as drawn predicts "
            "the last hidden layer's Var[y].",
            f"last hidden Var[y]: measured {measured:.3g}, predicted {theory:.3g}",
            bool(0.8 < measured / theory < 1.25)))
    return claims or [Claim("Glorot & Bengio 2010, Figs. 6-7", "this sweep has no tanh default/xavier cells", None)]


def _per_layer(profile: np.ndarray) -> float:
    """Geometric-mean factor by which a statistic changes per layer across the hidden layers."""
    hidden = profile[:-1]  # the output layer is not hidden
    return float((hidden[-1] / hidden[0]) ** (1 / (len(hidden) - 1)))


def _describe(row: pd.Series, axes: list[str], skip: str) -> str:
    return ", ".join(f"{a.split('.')[-1]}={row[a]}" for a in axes if a != skip)


@_claims("schoenholz2017")
def schoenholz2017(sweep: Sweep) -> list[Claim]:
    tmap = trainability(sweep)
    if tmap is None:
        return [Claim("Schoenholz et al. 2017, trainability", "this sweep has no MLP grid over sigma_w^2 x depth",
                      None)]
    cells, fit = tmap.cells, tmap.best_k()
    n, at_paper = len(cells.dropna(subset="xi_c")), tmap.agreement(DEPTH_FACTOR)
    bound = DEPTH_FACTOR * cells["xi_c"]
    defined = (f"'trained': final test accuracy above {tmap.threshold:.3f}, halfway from chance "
               f"({tmap.chance:.2f}) to the best cell ({cells['acc'].max():.3f}); a diverged run scores chance. ")
    claims = [Claim(
        f"A network trains only when its depth L is below about {DEPTH_FACTOR:g} xi_c (the paper draws the "
        f"{DEPTH_FACTOR:g} xi_c curve over its accuracy maps as the edge of the trainable region).",
        defined + f"L < {DEPTH_FACTOR:g} xi_c says what the runs did in {round(at_paper * n)} of {n} cells "
        f"({at_paper:.0%}). Trained although L >= {DEPTH_FACTOR:g} xi_c: "
        f"{_points(cells[cells['trained'] & (cells['depth'] >= bound)])}. Not trained although L < "
        f"{DEPTH_FACTOR:g} xi_c: {_points(cells[~cells['trained'] & (cells['depth'] < bound)])}.",
        at_paper >= 0.9)]
    if fit is not None:
        k, (low, high) = fit
        claims.append(Claim(
            "The trainable depth is a fixed multiple k of xi_c across sigma_w^2: one k separates the trained from "
            "the untrained cells on both sides of the critical point.",
            f"the best k is {k:.3g} (every k in ({low:.3g}, {high:.3g}) does as well): L < k xi_c says what the "
            f"runs did in {tmap.agreement(k):.0%} of the cells, against {at_paper:.0%} at the paper's k = "
            f"{DEPTH_FACTOR:g}",
            tmap.agreement(k) >= 0.9))
    claims.append(_deepest_at_criticality(tmap))
    claims.append(_gradients_follow_chi_1(tmap))
    return claims


def _deepest_at_criticality(tmap: TrainabilityMap) -> Claim:
    """The critical column trains deepest; the trainable depth falls off on both sides."""
    cells = tmap.cells
    deepest = {s: group.loc[group["trained"], "depth"].max() for s, group in cells.groupby("sigma_w2")}
    deepest = {s: 0 if np.isnan(d) else int(d) for s, d in deepest.items()}
    columns = sorted(deepest)
    critical = min(columns, key=lambda s: abs(s - tmap.critical)) if tmap.critical is not None else None
    evidence = "deepest trained network per sigma_w^2: " + ", ".join(f"{s:g}: {deepest[s] or 'none'}" for s in columns)
    if critical is None:
        return Claim("The deepest networks train at the critical sigma_w^2 (chi_1 = 1).", evidence, None)
    edges = max(deepest[columns[0]], deepest[columns[-1]])
    agrees = deepest[critical] == max(deepest.values()) and edges < deepest[critical]
    return Claim(
        f"The deepest networks train at the critical sigma_w^2 = {tmap.critical:.3f} (chi_1 = 1, where xi_c diverges); "
        "the trainable depth shrinks into the ordered (smaller sigma_w^2) and the chaotic (larger) phase.",
        evidence, bool(agrees))


def _gradients_follow_chi_1(tmap: TrainabilityMap) -> Claim:
    """Off the critical point, the deepest nets' gradients shrink (ordered) or grow (chaotic) going down."""
    depth = tmap.cells["depth"].max()
    deepest = tmap.cells[tmap.cells["depth"] == depth].dropna(subset=["grad_growth", "chi_1"])
    off_critical = deepest[(deepest["chi_1"] - 1).abs() > CRITICAL_TOL]
    agrees = bool(len(off_critical)) and bool(
        (np.sign(np.log(off_critical["grad_growth"])) == np.sign(np.log(off_critical["chi_1"]))).all())
    return Claim(
        "Back-propagated gradients vanish in the ordered phase (chi_1 < 1) and explode in the chaotic phase "
        "(chi_1 > 1), by a factor chi_1 per layer.",
        f"per-layer factor of Var[dL/dy] at init from the last hidden layer down to the first, depth {depth}, "
        "measured vs chi_1: " + ", ".join(f"sigma_w^2 {r.sigma_w2:g}: {r.grad_growth:.3f} vs {r.chi_1:.3f}"
                                          for r in deepest.itertuples()),
        agrees if len(off_critical) else None)


def _points(cells: pd.DataFrame) -> str:
    return ", ".join(f"(sigma_w^2 {r.sigma_w2:g}, L {r.depth}: acc {r.acc:.2f}, {DEPTH_FACTOR:g} xi_c = "
                     f"{DEPTH_FACTOR * r.xi_c:.3g})" for r in cells.itertuples()) or "none"
