"""Glorot & Bengio 2010, Figs. 6-7: per layer at init, activation values and back-propagated
gradients under the standard init U(-1/sqrt(n), 1/sqrt(n)) and the normalised (xavier) init; and
mean-field theory's prediction of each layer's variance (not in the paper)."""

import numpy as np

from initlab.report.aggregate import layer_profile
from initlab.report.claims.base import Claim, register
from initlab.report.load import Sweep
from initlab.report.overlay import predictions
from initlab.report.stats import Estimate
from initlab.report.verdict import Verdict, finite_width_tolerance, inside, matches

STANDARD, NORMALISED = "default", "xavier"  # torch's default Linear init is the paper's standard one
SHRINKS = 0.5  # a per-layer factor below this: the statistic shrinks from layer to layer
CONSTANT = (0.8, 1.25)  # a per-layer factor in this band: the statistic stays roughly constant
SHRINK_TEST = f"per-layer factor (geometric, over the hidden layers) below {SHRINKS}"
CONSTANT_TEST = f"per-layer factor (geometric, over the hidden layers) within [{CONSTANT[0]}, {CONSTANT[1]}]"


@register("glorot2010")
def glorot2010(sweep: Sweep) -> list[Claim]:
    keys = {}  # (activation, init) -> cell
    if {"model.activation", "init"} <= set(sweep.axes):
        for cell, _ in sweep.cells():
            values = dict(zip(sweep.axes, cell))
            keys[values["model.activation"], values["init"]] = cell
    claims = []
    standard, normalised = keys.get(("tanh", STANDARD)), keys.get(("tanh", NORMALISED))
    if standard and normalised:
        acts, what = _activations(sweep)
        grads = {cell: p.runs[:, :-1] for cell, p in layer_profile(sweep, "grad_var").items()}
        if {standard, normalised} <= acts.keys() & grads.keys():
            claims += _paper_claims(acts, grads, what, standard, normalised)
    return claims + _mean_field_claims(sweep, keys) or [
        Claim("Glorot & Bengio 2010, Figs. 6-7", "", "this sweep has no tanh default/xavier cells", Verdict.untested)]


def _paper_claims(acts: dict, grads: dict, what: str, standard: tuple, normalised: tuple) -> list[Claim]:
    rows = [("Fig. 6: under the standard init U(-1/sqrt(n), 1/sqrt(n)) activations shrink from layer to layer.",
             what, _factor(acts[standard]), SHRINK_TEST, (0, SHRINKS)),
            ("Fig. 6: the normalised (xavier) init keeps the activations' spread roughly constant across layers.",
             what, _factor(acts[normalised]), CONSTANT_TEST, CONSTANT),
            ("Fig. 7: under the standard init back-propagated gradients shrink toward the input layers.",
             "Var[dL/dy] (going down)", _factor(grads[standard], down=True), SHRINK_TEST, (0, SHRINKS)),
            ("Fig. 7: the normalised init keeps the back-propagated gradients' spread roughly constant.",
             "Var[dL/dy] (going down)", _factor(grads[normalised], down=True), CONSTANT_TEST, CONSTANT)]
    return [Claim(f"tanh, {claim}", test, f"{statistic}: per-layer factor {factor.text()}",
                  inside(factor, *band), factor.n) for claim, statistic, factor, test, band in rows]


def _activations(sweep: Sweep) -> tuple[dict[tuple, np.ndarray], str]:
    """Per cell, the activations' variance along the hidden layers (one row per run), and what it
    is: after the nonlinearity, as the paper plots it, where the runs recorded it."""
    post = layer_profile(sweep, "post_std", hidden=True)
    if post:
        return {cell: p.runs ** 2 for cell, p in post.items()}, "Var[phi(y)] (after the nonlinearity, as in the paper)"
    pre = layer_profile(sweep, "act_var")
    return ({cell: p.runs[:, :-1] for cell, p in pre.items()},
            "Var[y] (before the nonlinearity: the runs did not record the activation values after it, which the "
            "paper plots)")


def _factor(hidden: np.ndarray, down: bool = False) -> Estimate:
    """Per run, the geometric-mean factor by which a statistic changes per layer across the
    hidden layers (`down`: from the last toward the first); over the runs."""
    ratio = hidden[:, 0] / hidden[:, -1] if down else hidden[:, -1] / hidden[:, 0]
    return Estimate.geometric_of(ratio ** (1 / (hidden.shape[1] - 1)))


def _mean_field_claims(sweep: Sweep, keys: dict) -> list[Claim]:
    overlay, width = predictions(sweep), sweep.shared.get("model.width")
    ratios = overlay.last_hidden_ratio(sweep)
    claims = []
    for (activation, init), cell in keys.items():
        if cell not in ratios or not width:
            continue
        layers = overlay.act_var[cell].runs.shape[1] - 2  # from layer 1, where the prediction is anchored
        tolerance = finite_width_tolerance(layers, width)
        name = "standard" if init == STANDARD else "normalised"
        claims.append(Claim(
            f"{activation}, {name} init (mean-field theory, not in the paper): from the first layer's measured "
            "variance, q_(l+1) = fan_in E[W^2] E[phi(sqrt(q_l) z)^2] + E[b^2] with the weights as drawn predicts "
            "the last hidden layer's Var[y].",
            f"measured / predicted: 1 inside the interval, or |log| within {tolerance:.3f}, the finite-width error "
            f"after {layers} layers at width {width} (l/N + 2 sqrt(2 l / N))",
            f"last hidden Var[y], measured / predicted: {ratios[cell].text()}",
            matches(ratios[cell], 1.0, tolerance, log=True), ratios[cell].n))
    return claims
