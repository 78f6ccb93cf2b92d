"""How a claim is decided from numbers that carry their spread over seeds.

A claim states its test before any number is seen: a threshold, a band, or a predicted value
with a tolerance, each a constant in the claim's code and printed beside it. An estimate agrees
with a threshold or band when its whole 95% interval lies inside, does not when the interval lies
wholly outside, and is inconclusive in between; with one seed there is no interval and the value
itself decides. A predicted value agrees when it lies inside the interval or the estimate is
within the tolerance of it.
"""

import math
from enum import Enum

from initlab.report.stats import Estimate


class Verdict(str, Enum):
    agrees = "agrees"
    disagrees = "does not agree"
    inconclusive = "inconclusive"
    untested = "not tested"


def inside(estimate: Estimate, low: float = -math.inf, high: float = math.inf) -> Verdict:
    """Whether the estimate lies in [low, high] (a threshold: one bound infinite)."""
    if not math.isfinite(estimate.mean):
        return Verdict.untested
    lo, hi = (estimate.low, estimate.high) if estimate.has_interval else (estimate.mean, estimate.mean)
    if low <= lo and hi <= high:
        return Verdict.agrees
    if hi < low or lo > high:
        return Verdict.disagrees
    return Verdict.inconclusive


def matches(estimate: Estimate, expected: float, tolerance: float, log: bool = False) -> Verdict:
    """Whether `expected` lies inside the interval or within `tolerance` of the estimate (`log`:
    of log(estimate / expected), for ratios and per-layer factors)."""
    if not math.isfinite(estimate.mean):
        return Verdict.untested
    if estimate.has_interval and estimate.low <= expected <= estimate.high:
        return Verdict.agrees
    gap = abs(math.log(estimate.mean / expected)) if log else abs(estimate.mean - expected)
    return Verdict.agrees if gap <= tolerance else Verdict.disagrees


def combined(verdicts: list[Verdict]) -> Verdict:
    """A claim over several cells: it fails where one cell does, is open where one is, and
    agrees where every tested cell does."""
    tested = [v for v in verdicts if v != Verdict.untested]
    for outcome in (Verdict.disagrees, Verdict.inconclusive, Verdict.agrees):
        if outcome in tested:
            return outcome
    return Verdict.untested


FINITE_WIDTH_SIGMAS = 2


def finite_width_tolerance(layers: int, width: int) -> float:
    """The tolerance on log(measured / predicted) of a variance `layers` layers past where the
    prediction is anchored, in a network `width` units wide. Mean-field theory is the infinite-width
    limit: at width N each layer multiplies a signal's variance by its predicted factor times a
    fluctuation like chi^2_N / N (relative variance 2/N, mean log about -1/N), so after l layers
    the log is off by about l/N in the mean and sqrt(2 l / N) in spread. Tolerance: that offset
    plus two spreads ("about sqrt(depth / width)")."""
    return layers / width + FINITE_WIDTH_SIGMAS * math.sqrt(2 * layers / width)
