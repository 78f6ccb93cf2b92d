"""He et al. 2015, "Delving Deep into Rectifiers", Figs. 2-3: a 30-layer plain ReLU net trains with
kaiming init and stalls with xavier; a 22-layer one trains with both. "Trains" is the figures' own
contrast, an error that falls against one that does not move: the final training loss well below
chance. Thresholds are constants here, set before the main grid ran."""

import math

import pandas as pd

from initlab.report.aggregate import cell_table, estimate
from initlab.report.claims.base import Claim, cells_where, describe, fewest, register
from initlab.report.load import Sweep
from initlab.report.verdict import Verdict, combined, inside, matches

CHANCE_LOSS = math.log(10)  # cross-entropy of a uniform guess over 10 classes
DEEP, SHALLOW = 30, 22  # the depths the claims are about (Figs. 3 and 2)
TRAINS = CHANCE_LOSS - 0.3  # a net trained when its final train loss is below this (its whole interval)
STALL_TOL = 0.05  # a net stalled when its final train loss is within this of ln 10
ESCAPE = 0.1  # a run left its plateau at the first logged step with loss below ln 10 - ESCAPE


@register("he2015")
def he2015(sweep: Sweep) -> list[Claim]:
    table = cell_table(sweep)
    deep, shallow = cells_where(table, **{"model.depth": DEEP}), cells_where(table, **{"model.depth": SHALLOW})
    claims = []
    kaiming = cells_where(deep, init="kaiming")
    if len(kaiming):
        claims.append(_trains(sweep, kaiming, f"Fig. 3: a {DEEP}-layer plain ReLU net trains with kaiming init."))
    for bias in sorted(deep["model.bias"].unique()) if "model.bias" in deep else [None]:
        where = {"model.depth": DEEP, "init": "xavier"} | ({} if bias is None else {"model.bias": bias})
        if len(xavier := cells_where(table, **where)):
            claims.append(_stalls(sweep, xavier, cells_where(sweep.jobs, **where), bias))
    if len(shallow):
        claims.append(_trains(sweep, shallow, f"Fig. 2: at {SHALLOW} layers both inits train (kaiming sooner)."))
    return claims or [Claim("He et al. 2015, Figure 3", "", f"this sweep has no depth-{SHALLOW}/{DEEP} cells",
                            Verdict.untested)]


def _trains(sweep: Sweep, cells: pd.DataFrame, claim: str) -> Claim:
    found = [(describe(sweep, r, ("model.depth",)), estimate(r, "train/loss"), estimate(r, "test/acc"))
             for r in cells.to_dict("records")]
    jobs = sweep.jobs[(sweep.jobs["model.depth"] == cells["model.depth"].iloc[0])
                      & sweep.jobs["init"].isin(cells["init"])]
    escapes = {init: _escapes(sweep, runs) for init, runs in jobs.groupby("init")}
    return Claim(claim, f"each such cell's final train loss below ln 10 - 0.3 = {TRAINS:.3f} (chance: ln 10)",
                 "final train loss (test accuracy): " + "; ".join(f"{d}: {e.text()} ({a.text(n=False)})"
                                                                  for d, e, a in found)
                 + f"; first logged step with loss < ln 10 - {ESCAPE}, per run: "
                 + "; ".join(f"{init}: {steps}" for init, steps in escapes.items()),
                 combined([inside(e, high=TRAINS) for _, e, _ in found]), fewest(e for _, e, _ in found))


def _stalls(sweep: Sweep, cells: pd.DataFrame, jobs: pd.DataFrame, bias) -> Claim:
    found = [(describe(sweep, r, ("model.depth",)), estimate(r, "train/loss")) for r in cells.to_dict("records")]
    escapes = _escapes(sweep, jobs)
    where = "" if bias is None else f" (biases={bias})"
    return Claim(
        f"A {DEEP}-layer ReLU net stalls with xavier init{where}: its loss stays at chance, ln 10 = {CHANCE_LOSS:.3f}.",
        f"ln 10 inside each such cell's interval of final train loss, or within {STALL_TOL} of its mean",
        "final train loss: " + "; ".join(f"{d}: {e.text()}" for d, e in found)
        + f"; first logged step with loss < ln 10 - {ESCAPE}, per run: {escapes}",
        combined([matches(e, CHANCE_LOSS, STALL_TOL) for _, e in found]), fewest(e for _, e in found))


def _escapes(sweep: Sweep, jobs: pd.DataFrame) -> str:
    return ", ".join("never" if (s := _escape_step(sweep, job)) is None else str(s) for job in jobs["job"])


def _escape_step(sweep: Sweep, job: str) -> int | None:
    """The first logged step whose train loss fell below ln 10 - ESCAPE (None: never)."""
    frame = sweep.metrics[job]
    hit = frame[frame["train/loss"] < CHANCE_LOSS - ESCAPE]["step"] if "train/loss" in frame else []
    return int(hit.iloc[0]) if len(hit) else None
