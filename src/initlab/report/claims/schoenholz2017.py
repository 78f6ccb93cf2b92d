"""Schoenholz et al. 2017, "Deep Information Propagation": a tanh MLP trains when its depth is below
a few correlation depth scales xi_c, deepest at the order-to-chaos transition; gradients change by
chi_1 per layer."""

import numpy as np
import pandas as pd

from initlab.report.claims.base import Claim, register
from initlab.report.load import Sweep
from initlab.report.protocol import fit_declaration
from initlab.report.trainability import TrainabilityMap, declared_fit, trainability
from initlab.report.verdict import Verdict, combined, finite_width_tolerance, inside, matches
from initlab.theory import DEPTH_FACTOR

AGREEMENT = 0.9  # "L < k xi_c" must say what the runs did in at least this fraction of the cells
SUPPORT = 0.95  # a yes/no claim agrees when it holds in at least this share of bootstrap draws


@register("schoenholz2017")
def schoenholz2017(sweep: Sweep) -> list[Claim]:
    tmap = trainability(sweep)
    if tmap is None:
        return [Claim("Schoenholz et al. 2017, trainability", "", "this sweep has no MLP grid over sigma_w^2 x depth",
                      Verdict.untested)]
    return [_depth_bound(tmap), _fitted_k(sweep, tmap), _deepest_at_criticality(tmap), _gradients_follow_chi_1(tmap)]


def _definition(tmap: TrainabilityMap) -> str:
    return (f"'trained': mean final test accuracy above {tmap.threshold:.2f}, halfway from chance ({tmap.chance:.2f}) "
            f"to the best cell ({tmap.cells['acc'].max():.2f}); a diverged run scores chance")


def _depth_bound(tmap: TrainabilityMap) -> Claim:
    cells, acc = tmap.cells, tmap.estimates("acc")
    share = tmap.over_seeds(lambda trained: tmap.agreement(DEPTH_FACTOR, trained))
    bound = DEPTH_FACTOR * cells["xi_c"]
    return Claim(
        f"A network trains only when its depth L is below about {DEPTH_FACTOR:g} xi_c (the paper draws the "
        f"{DEPTH_FACTOR:g} xi_c curve over its accuracy maps as the edge of the trainable region).",
        f"L < {DEPTH_FACTOR:g} xi_c says whether a cell trained in at least {AGREEMENT:.0%} of the cells; "
        f"{_definition(tmap)}",
        f"L < {DEPTH_FACTOR:g} xi_c says what the runs did in a share {share.text()} of the {len(cells)} cells. "
        f"Trained although L >= {DEPTH_FACTOR:g} xi_c: {_points(cells[cells['trained'] & (cells['depth'] >= bound)], acc)}."
        f" Not trained although L < {DEPTH_FACTOR:g} xi_c: "
        f"{_points(cells[~cells['trained'] & (cells['depth'] < bound)], acc)}.",
        inside(share, low=AGREEMENT), share.n, "bootstrap")


def _fitted_k(sweep: Sweep, tmap: TrainabilityMap) -> Claim:
    claim = ("The trainable depth is a fixed multiple k of xi_c across sigma_w^2: one k separates the trained from the "
             "untrained cells on both sides of the critical point.")
    test = (f"k fitted on the protocol's fit seeds (bootstrap interval over their runs); on its score seeds, L < k xi_c "
            f"says whether a cell trained in at least {AGREEMENT:.0%} of the cells")
    declared = fit_declaration(sweep, "k")
    if declared is None:
        return Claim(claim, test, "the protocol declares no seeds to fit k on and others to score it on", Verdict.untested)
    fit = declared_fit(sweep, tmap)
    if fit is None:
        return Claim(claim, test, f"k is to be fitted on seeds {declared['fit_seeds']} and scored on "
                                  f"{declared['score_seeds']}; these runs have seeds "
                                  f"{sorted(tmap.runs['seed'].unique().tolist())}", Verdict.untested)
    paper = (f"the paper's k = {DEPTH_FACTOR:g} is {'inside' if fit.k.low <= DEPTH_FACTOR <= fit.k.high else 'outside'}"
             " its interval" if fit.k.has_interval else "one run per cell: no interval")
    return Claim(
        claim, test,
        f"k = {fit.k.text()} fitted on seeds {list(fit.fit_seeds)}; {paper}. On the held-out seeds "
        f"{list(fit.score_seeds)}, L < k xi_c says what the runs did in a share {fit.held_out.text()} of the cells",
        inside(fit.held_out, low=AGREEMENT), min(fit.k.n, fit.held_out.n), "bootstrap")


def _deepest_at_criticality(tmap: TrainabilityMap) -> Claim:
    """The critical column trains deepest; the trainable depth falls off on both sides."""
    deepest = tmap.deepest()
    columns = sorted(deepest)
    evidence = "deepest trained network per sigma_w^2: " + ", ".join(f"{s:g}: {deepest[s] or 'none'}" for s in columns)
    if tmap.critical is None:
        return Claim("The deepest networks train at the critical sigma_w^2 (chi_1 = 1).", "", evidence,
                     Verdict.untested)
    critical = min(columns, key=lambda s: abs(s - tmap.critical))

    def holds(trained: np.ndarray | None = None) -> bool:
        depth = tmap.deepest(trained)
        return depth[critical] == max(depth.values()) and max(depth[columns[0]], depth[columns[-1]]) < depth[critical]

    support = tmap.support(holds)
    verdict = Verdict.agrees if holds() else Verdict.disagrees
    if np.isfinite(support) and (support < SUPPORT if holds() else support > 1 - SUPPORT):
        verdict = Verdict.inconclusive
    return Claim(
        f"The deepest networks train at the critical sigma_w^2 = {tmap.critical:.3f} (chi_1 = 1, where xi_c "
        "diverges); the trainable depth shrinks into the ordered (smaller sigma_w^2) and the chaotic (larger) phase.",
        f"the column nearest the critical sigma_w^2 trains deepest of all, the outermost columns less deep; in at "
        f"least {SUPPORT:.0%} of bootstrap draws of the runs",
        evidence + ("" if np.isnan(support) else f"; it holds in {support:.0%} of {tmap.seeds_per_cell()}-seed "
                                                 "bootstrap draws"),
        verdict, tmap.seeds_per_cell(), "bootstrap")


def _gradients_follow_chi_1(tmap: TrainabilityMap) -> Claim:
    """The deepest nets' per-layer gradient factor against chi_1, within mean-field's finite-width error."""
    claim = ("Back-propagated gradients vanish in the ordered phase (chi_1 < 1) and explode in the chaotic phase "
             "(chi_1 > 1), by a factor chi_1 per layer.")
    depth = int(tmap.cells["depth"].max())
    steps = depth - 3  # hidden layers 2..L-1 (the first and last are left out): L - 3 layer-to-layer steps
    if steps < 1:
        return Claim(claim, "", f"the deepest nets (depth {depth}) have no two hidden layers to compare", Verdict.untested)
    tolerance = finite_width_tolerance(steps, tmap.width) / steps
    growth = tmap.estimates("grad_growth", geometric=True)
    cells = tmap.cells[tmap.cells["depth"] == depth].dropna(subset="chi_1")
    found = [(r.sigma_w2, growth[r.sigma_w2, depth], r.chi_1) for r in cells.itertuples()]
    return Claim(
        claim,
        f"per cell of depth {depth}, chi_1 inside the interval of the measured per-layer factor, or |log(measured / "
        f"chi_1)| within {tolerance:.4f}: mean-field's finite-width error over {steps} layers at width {tmap.width}, "
        "per layer ((l/N + 2 sqrt(2 l / N)) / l)",
        f"per-layer factor of Var[dL/dy] at init from the last hidden layer down to the first, depth {depth}, "
        "measured vs chi_1: " + ", ".join(f"sigma_w^2 {s:g}: {e.text()} vs {chi:.3f}" for s, e, chi in found),
        combined([matches(e, chi, tolerance, log=True) for _, e, chi in found]),
        min((e.n for _, e, _ in found), default=0))


def _points(cells: pd.DataFrame, acc: dict) -> str:
    return ", ".join(f"(sigma_w^2 {r.sigma_w2:g}, L {r.depth}: acc {acc[r.sigma_w2, r.depth].text()}, "
                     f"{DEPTH_FACTOR:g} xi_c = {DEPTH_FACTOR * r.xi_c:.3g})" for r in cells.itertuples()) or "none"
