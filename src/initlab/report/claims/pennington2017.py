"""Pennington, Schoenholz & Ganguli 2017, "Resurrecting the sigmoid in deep learning through
dynamical isometry": at criticality, orthogonal weights keep a tanh net's Jacobian spectrum
concentrated and make it train faster than Gaussian weights, more so the deeper it is; ReLU nets
get no such gain (their spectrum widens with depth whatever the weights).

Training speed is the loss after a fixed budget (isometry.LATE), compared between inits seed by
seed: runs of one seed see the same batches.
"""

import numpy as np
import pandas as pd

from initlab.report.claims.base import Claim, register
from initlab.report.isometry import LATE_TEXT, late_loss, paired, per_seed, ratio, spectra
from initlab.report.load import Sweep
from initlab.report.stats import Estimate
from initlab.report.verdict import Verdict, inside

PHASES = {"tanh": "tanh_critical", "relu": "relu_critical"}  # the grid's phase values (conf/phase/)
ORTHOGONAL, GAUSSIAN = "orthogonal", "kaiming"  # kaiming with gain sqrt(sigma_w^2): W ~ N(0, sigma_w^2 / fan_in)
DEPTH = "model.depth"
NO_GAIN = 0.1  # nats of training loss: ReLU's orthogonal gain at the deepest depth is no larger than this
NARROWER = 0.1  # tanh: orthogonal weights' spectral spread below this fraction of Gaussian weights'
NOT_NARROWER = 0.1  # relu: orthogonal weights' spread above this fraction of Gaussian's (theory: 1/2)


@register("pennington2017")
def pennington2017(sweep: Sweep) -> list[Claim]:
    if not {"phase", "init", DEPTH} <= set(sweep.axes):
        return [Claim("Pennington et al. 2017", "", "this sweep has no phase x init x depth grid", Verdict.untested)]
    depths = sorted(sweep.jobs[DEPTH].dropna().unique())
    loss = late_loss(sweep)
    tanh = _gain_claim(sweep, loss, depths, "tanh", dict(low=0.0), "interval above 0",
                       "Figs. 4-5: at criticality a deep tanh net with orthogonal weights trains faster than with "
                       "Gaussian weights.")
    relu = _gain_claim(sweep, loss, depths, "relu", dict(high=NO_GAIN),
                       f"interval below {NO_GAIN} nats (a gain no larger than that)",
                       "Sec. 3 and Fig. 4: ReLU nets cannot reach dynamical isometry, so orthogonal weights give them "
                       "no such gain.")
    return [tanh, _gain_grows(sweep, loss, depths), relu, _tanh_beats_relu(sweep, loss, depths),
            *_spectrum_claims(sweep, depths)]


def _of(values: dict) -> Estimate:
    """The t interval over seeds of per-seed values."""
    return Estimate.of(list(values.values()))


def _gain(sweep: Sweep, loss: pd.Series, activation: str, depth) -> dict:
    """Per seed, Gaussian's loss minus orthogonal's at this depth: > 0 where orthogonal is ahead."""
    at = {"phase": PHASES[activation], DEPTH: depth}
    return paired(per_seed(sweep, loss, init=GAUSSIAN, **at), per_seed(sweep, loss, init=ORTHOGONAL, **at),
                  lambda gaussian, orthogonal: gaussian - orthogonal)


def _gain_claim(sweep: Sweep, loss: pd.Series, depths: list, activation: str, bound: dict, test: str,
                claim: str) -> Claim:
    """Orthogonal weights' gain in loss at the deepest depth, inside `bound`; every depth's as evidence."""
    gains = {d: _of(_gain(sweep, loss, activation, d)) for d in depths}
    deepest = gains[depths[-1]]
    return Claim(
        claim,
        f"{LATE_TEXT}: Gaussian minus orthogonal, paired by seed, at the deepest depth ({depths[-1]}): its 95% {test}",
        f"Gaussian minus orthogonal loss, {activation}: "
        + "; ".join(f"depth {d}: {e.text()}" for d, e in gains.items()),
        inside(deepest, **bound), deepest.n)


def _gain_grows(sweep: Sweep, loss: pd.Series, depths: list) -> Claim:
    shallow, deep = depths[0], depths[-1]
    growth = _of(paired(_gain(sweep, loss, "tanh", shallow), _gain(sweep, loss, "tanh", deep), lambda s, d: d - s))
    return Claim(
        "Fig. 5: the gap grows with depth: orthogonal tanh nets' training time grows more slowly with depth than "
        "Gaussian ones'.",
        f"per seed, the gain (Gaussian minus orthogonal loss) at depth {deep} minus the gain at depth {shallow}; its "
        "95% interval above 0",
        f"gain at depth {deep} minus gain at depth {shallow}: {growth.text()}",
        inside(growth, low=0.0), growth.n)


def _tanh_beats_relu(sweep: Sweep, loss: pd.Series, depths: list) -> Claim:
    at = {DEPTH: depths[-1]}
    tanh = per_seed(sweep, loss, phase=PHASES["tanh"], init=ORTHOGONAL, **at)
    relu = [per_seed(sweep, loss, phase=PHASES["relu"], init=init, **at) for init in (ORTHOGONAL, GAUSSIAN)]
    best = {s: np.nanmin([r.get(s, np.nan) for r in relu]) for s in tanh}
    lead = _of(paired(best, tanh, lambda r, t: r - t))
    return Claim(
        "Abstract and Fig. 4: a deep tanh net at criticality with orthogonal weights outperforms deep ReLU nets.",
        f"{LATE_TEXT} at depth {depths[-1]}: per seed, the better ReLU run's loss minus the orthogonal tanh run's; "
        "its 95% interval above 0",
        f"ReLU (better init) minus orthogonal tanh loss at depth {depths[-1]}: {lead.text()}",
        inside(lead, low=0.0), lead.n)


def _spectrum_claims(sweep: Sweep, depths: list) -> list[Claim]:
    """Orthogonal over Gaussian spectral spread at the deepest depth, per activation, with theory beside."""
    deep, table, claims = depths[-1], spectra(sweep), []
    for name, bound, claim in (
            ("tanh", dict(high=NARROWER), "Sec. 3 (the spectra by free probability): at criticality orthogonal "
                                          "weights keep a tanh net's Jacobian spectrum concentrated as depth grows; "
                                          "Gaussian weights let it spread."),
            ("relu", dict(low=NOT_NARROWER), "Sec. 3: ReLU nets' spectrum spreads with depth whatever the weights: "
                                             "orthogonal weights narrow it by a bounded factor (theory: 2).")):
        at = {"phase": PHASES[name], DEPTH: deep}
        measured, theory = (ratio(sweep, table[column], {"init": ORTHOGONAL}, {"init": GAUSSIAN}, **at)
                            for column in ("spread", "predicted_spread"))
        found = Estimate.geometric_of(list(measured.values()))
        side = f"below {bound['high']}" if "high" in bound else f"above {bound['low']}"
        claims.append(Claim(
            claim,
            f"spread Var[s^2]/E[s^2]^2 of the Jacobian at init, orthogonal over Gaussian, paired by seed, at depth "
            f"{deep}: its 95% interval {side}",
            f"{name}, orthogonal / Gaussian spread at depth {deep}: {found.text()}; free probability: "
            f"{np.nanmean(list(theory.values())) if theory else np.nan:.3g}",
            inside(found, **bound), found.n))
    return claims
