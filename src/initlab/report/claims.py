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
        xavier = _cells(deep, init="xavier") if bias is None else _cells(deep, init="xavier", **{"model.bias": bias})
        if not len(xavier):
            continue
        jobs = sweep.jobs[(sweep.jobs.get("model.depth") == 30) & (sweep.jobs["init"] == "xavier")]
        if bias is not None:
            jobs = jobs[jobs["model.bias"] == bias]
        escapes = _escape_step(sweep, jobs["job"], CHANCE_LOSS - 0.1)
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
    cell = lambda activation, init: next(  # noqa: E731
        (k for k in act if dict(zip(sweep.axes, k)) == {"model.activation": activation, "init": init}), None)
    claims = []
    for activation in ("tanh",):
        std, xav = cell(activation, "default"), cell(activation, "xavier")
        if std is None or xav is None:
            continue
        a_std, a_xav = _hidden_ratio(act[std]), _hidden_ratio(act[xav])
        claims.append(Claim(
            f"{activation}, Fig. 6: under the standard init U(-1/sqrt(n), 1/sqrt(n)) activations shrink from layer "
            "to layer; the normalised (xavier) init keeps their variance roughly constant.",
            f"Var[y] last hidden / first hidden layer: standard {a_std:.3g}, normalised {a_xav:.3g}",
            bool(a_std < 0.1 and 0.3 < a_xav < 3)))
        g_std, g_xav = 1 / _hidden_ratio(grad[std]), 1 / _hidden_ratio(grad[xav])
        claims.append(Claim(
            f"{activation}, Fig. 7: under the standard init back-propagated gradients shrink toward the input "
            "layers; the normalised init keeps their variance roughly constant.",
            f"Var[dL/dy] first hidden / last hidden layer: standard {g_std:.3g}, normalised {g_xav:.3g}",
            bool(g_std < 0.1 and 0.3 < g_xav < 3)))
    for init, var_w_n, name in (("default", 1 / 3, "standard"), ("xavier", 1.0, "normalised")):
        key = cell("relu", init)
        if key is None:
            continue
        hidden = len(act[key]) - 1
        predicted = (var_w_n / 2) ** (hidden - 1)  # Var[y_l+1] = n Var[W] Var[y_l] / 2 for ReLU, width n
        measured = _hidden_ratio(act[key])
        claims.append(Claim(
            f"relu, {name} init (not in the paper; mean-field theory): each square layer multiplies Var[y] by "
            f"n Var[W] / 2 = {var_w_n / 2:.3g}, so across the {hidden} hidden layers the ratio is {predicted:.3g}.",
            f"measured Var[y] last hidden / first hidden: {measured:.3g} (predicted {predicted:.3g})",
            bool(0.5 < measured / predicted < 2)))
    return claims or [Claim("Glorot & Bengio 2010, Figs. 6-7", "this sweep has no tanh/relu default/xavier cells", None)]


def _hidden_ratio(profile: np.ndarray) -> float:
    """Last hidden layer over first (the output layer, profile[-1], is not hidden)."""
    return float(profile[-2] / profile[0])


def _describe(row: pd.Series, axes: list[str], skip: str) -> str:
    return ", ".join(f"{a.split('.')[-1]}={row[a]}" for a in axes if a != skip)
