"""Mean-field signal propagation in a wide random MLP (Poole et al. 2016; Schoenholz et al. 2017).

With weights of variance sigma_w^2 / fan_in and biases of variance sigma_b^2, a pre-activation
u ~ N(0, q) passes through phi and the next layer:

    variance map     q' = sigma_w^2 E[phi(sqrt(q) z)^2] + sigma_b^2          -> fixed point q*
    correlation map  c' = (sigma_w^2 E[phi(u1) phi(u2)] + sigma_b^2) / q*     -> fixed point c*
    chi_1  = sigma_w^2 E[phi'(sqrt(q*) z)^2]       (per-layer gradient growth; slope of c' at c = 1)
    chi_c  = sigma_w^2 E[phi'(u1) phi'(u2)] at c*  (slope of the correlation map at c*)
    xi_q   = -1 / ln(chi_1 + sigma_w^2 E[phi''(sqrt(q*) z) phi(sqrt(q*) z)])   (= -1/ln dq'/dq at q*)
    xi_c   = -1 / ln(chi_c)

chi_1 < 1: ordered (c* = 1, gradients vanish); chi_1 > 1: chaotic (c* < 1, gradients explode).
Schoenholz et al. find that networks train only when their depth is below about 6 xi_c.
"""

import functools
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from initlab.theory.gauss import Activation, expect, expect_pair

# |chi_1 - 1| below this is "critical": depth scales above ~1000 layers, deeper than any network here.
CRITICAL_TOL = 1e-3
DEPTH_FACTOR = 6.0  # Schoenholz et al.: trainable up to about 6 xi_c
_Q_GRID = np.concatenate([[0.0], np.logspace(-12, 10, 89)])  # where the variance map's fixed points are sought
_C_GRID = 1.0 - np.logspace(-7, math.log10(2.0), 40)  # correlations from 1 - 1e-7 down to -1
_W_GRID = np.logspace(-2, 4, 61)  # sigma_w^2 searched for the critical line
_Q_TINY = 1e-12  # quantities at q* = 0 are the limit q -> 0+


@dataclass(frozen=True)
class MeanField:
    """The mean-field quantities at one (activation, sigma_w^2, sigma_b^2); None where undefined,
    with the reason in `undefined`."""

    activation: str
    sigma_w2: float
    sigma_b2: float
    q_star: float | None
    c_star: float | None
    chi_1: float | None
    chi_c: float | None
    xi_q: float | None
    xi_c: float | None
    phase: str | None  # "ordered" | "critical" | "chaotic"
    undefined: dict[str, str] = field(default_factory=dict)
    q_start: float = 1.0  # the variance the map is iterated from (a network's first layer's)

    def depth_bound(self, k: float = DEPTH_FACTOR) -> float | None:
        """The deepest network the theory expects to train: k xi_c."""
        return None if self.xi_c is None else k * self.xi_c

    def within_depth_bound(self, depth: int) -> bool | None:
        """Whether `depth` layers are within k xi_c: always at criticality (xi_c diverges), unknown
        where xi_c is undefined otherwise."""
        bound = self.depth_bound()
        return depth <= bound if bound is not None else True if self.phase == "critical" else None

    def as_dict(self) -> dict:
        return asdict(self) | {"depth_bound": self.depth_bound()}


def second_moment(activation: str, q: float, negative_slope: float = 0.01) -> float:
    """E[phi(sqrt(q) z)^2] for z ~ N(0, 1)."""
    phi = Activation(activation, negative_slope).phi
    return float(expect(lambda x: phi(x) ** 2, q))


def variance_map(act: Activation, sigma_w2: float, sigma_b2: float, q: float | np.ndarray) -> np.ndarray:
    """q' = sigma_w^2 E[phi(sqrt(q) z)^2] + sigma_b^2 (elementwise over an array of q)."""
    return sigma_w2 * expect(lambda x: act.phi(x) ** 2, q) + sigma_b2


def correlation_map(act: Activation, sigma_w2: float, sigma_b2: float, q: float, c: float | np.ndarray) -> np.ndarray:
    """c' = q'_12 / q' for two inputs of variance q (the fixed point q*) and correlation c.

    q' comes from the same 2-D rule as q'_12 (its value at c = 1), not from q itself, so that
    c = 1 maps to 1 exactly whatever the quadrature error; at q = q* both are q*.
    """
    return (sigma_w2 * expect_pair(act.phi, act.phi, q, c) + sigma_b2) / (
        sigma_w2 * expect_pair(act.phi, act.phi, q, 1.0) + sigma_b2)


def mean_field(activation: str, sigma_w2: float, sigma_b2: float, negative_slope: float = 0.01,
               q_start: float = 1.0) -> MeanField:
    """All mean-field quantities at (sigma_w^2, sigma_b^2); see the module docstring. q* is the
    fixed point the variance map reaches from `q_start` (a network's first-layer variance): where
    the map has several (GELU, SiLU at some sigma_w^2), which one a network settles at depends on it."""
    act = Activation(activation, negative_slope)
    undefined: dict[str, str] = {}
    q_star, why = fixed_variance(act, sigma_w2, sigma_b2, q_start)
    if q_star is None:
        names = ("q_star", "c_star", "chi_1", "chi_c", "xi_q", "xi_c", "phase")
        return MeanField(activation, sigma_w2, sigma_b2, *[None] * 7, undefined=dict.fromkeys(names, why),
                         q_start=q_start)
    chi_1 = _chi_1(act, sigma_w2, q_star)
    phase = "critical" if abs(chi_1 - 1) <= CRITICAL_TOL else "ordered" if chi_1 < 1 else "chaotic"
    if q_star == 0.0 and phase == "critical":  # dq'/dq = 1 at q* = 0: q decays as a power law, not exponentially
        undefined["xi_q"] = "q* = 0 with chi_1 = 1: q decays to 0 as a power law of depth, so xi_q diverges"
        xi_q = None
    else:
        slope_q = chi_1 + float(sigma_w2 * expect(lambda x: act.d2(x) * act.phi(x), max(q_star, _Q_TINY)))
        xi_q = _depth_scale(slope_q, "xi_q", "dq'/dq at q*", undefined)
    c_star = chi_c = xi_c = None
    if q_star == 0.0:
        how = "as a power law" if phase == "critical" else "by chi_1 per layer"
        why = (f"q* = 0: the signal itself vanishes with depth ({how}); the correlation "
               "of a vanishing signal is not set by a fixed point")
        undefined |= dict.fromkeys(("c_star", "chi_c", "xi_c"), why)
    elif phase == "chaotic":
        c_star = _fixed_correlation(act, sigma_w2, sigma_b2, q_star)
        chi_c = float(sigma_w2 * expect_pair(act.d1, act.d1, q_star, c_star))
        xi_c = _depth_scale(chi_c, "xi_c", "chi_c*", undefined)
    else:  # c = 1 is stable (or, within CRITICAL_TOL above chi_1 = 1, c* is 1 to many digits): slope chi_1
        c_star, chi_c = 1.0, chi_1
        if chi_1 < 1:
            xi_c = _depth_scale(chi_c, "xi_c", "chi_c*", undefined)
        else:
            undefined["xi_c"] = (f"critical (chi_1 within {CRITICAL_TOL} above 1): xi_c diverges at chi_1 = 1 "
                                 f"and exceeds ~{1 / CRITICAL_TOL:.0f} layers here")
    return MeanField(activation, sigma_w2, sigma_b2, q_star, c_star, chi_1, chi_c, xi_q, xi_c, phase, undefined,
                     q_start)


def _chi_1(act: Activation, sigma_w2: float, q: float) -> float:
    """sigma_w^2 E[phi'(sqrt(q) z)^2]; at q = 0 its limit from above (ReLU's phi'(0) is a convention)."""
    return float(sigma_w2 * expect(lambda x: act.d1(x) ** 2, max(q, _Q_TINY)))


def fixed_variance(act: Activation, sigma_w2: float, sigma_b2: float, q_start: float = 1.0) -> tuple[float | None, str]:
    """(q*, "") for the fixed point that iterating the variance map from q_start reaches, or
    (None, why) when there is none: q grows without bound, or every q is a fixed point."""
    grid = np.union1d(_Q_GRID, [q_start])
    gap = variance_map(act, sigma_w2, sigma_b2, grid) - grid  # > 0: q grows
    if np.all(np.abs(gap) <= 1e-9 * grid):
        return None, ("every q is a fixed point of the variance map (Var[y] neither grows nor shrinks): "
                      "q* is not determined and there is no order-to-chaos transition at finite q*")
    start = int(np.searchsorted(grid, q_start))
    if gap[start] > 0:  # q grows to the first point above q_start where the gap turns negative
        above = np.flatnonzero(gap[start:] <= 0)
        if not len(above):
            return None, (f"q* diverges: sigma_w^2 E[phi(sqrt(q) z)^2] + sigma_b^2 > q from q = {q_start:.3g} up to "
                          f"{grid[-1]:.0e}, so activations grow without bound layer by layer")
        hi = start + above[0]
        lo = hi - 1
    else:  # q shrinks to the last point below q_start where the gap is still non-negative
        below = np.flatnonzero(gap[: start + 1] >= 0)
        lo = below[-1]
        if gap[lo] == 0:
            return float(grid[lo]), ""
        hi = lo + 1
    return _root(lambda q: variance_map(act, sigma_w2, sigma_b2, q) - q, grid[lo], grid[hi]), ""


def _fixed_correlation(act: Activation, sigma_w2: float, sigma_b2: float, q_star: float) -> float:
    """The stable fixed point c* < 1 of the correlation map in the chaotic phase (c = 1 is unstable
    there): the largest c below 1 where c' - c turns from positive to negative."""
    gap = correlation_map(act, sigma_w2, sigma_b2, q_star, _C_GRID) - _C_GRID  # _C_GRID descends
    lo = int(np.flatnonzero(gap >= 0)[0])  # c' >= c at c = -1 always (c' is a correlation)
    if gap[lo] == 0:
        return float(_C_GRID[lo])
    hi = _C_GRID[lo - 1] if lo else 1.0
    return _root(lambda c: correlation_map(act, sigma_w2, sigma_b2, q_star, c) - c, _C_GRID[lo], hi)


def _root(f: Callable[[np.ndarray], np.ndarray], lo: float, hi: float, points: int = 9, rounds: int = 10) -> float:
    """A root of the vectorised f between lo (f >= 0) and hi (f < 0): each round evaluates f on
    `points` points across the bracket in one call and keeps the cell where it turns negative
    (points=3 is bisection). numpy has no root finder, and this is a few lines: not worth scipy."""
    for _ in range(rounds):
        x = np.linspace(lo, hi, points)
        i = int(np.argmax(f(x[1:]) < 0)) + 1  # f(x[-1]) = f(hi) < 0: some point qualifies
        lo, hi = x[i - 1], x[i]
    return float(0.5 * (lo + hi))


def _depth_scale(rate: float, name: str, what: str, undefined: dict[str, str]) -> float | None:
    """-1/ln(rate): the depth over which a perturbation decaying by `rate` per layer fades."""
    if rate <= 0.0:
        return 0.0
    if rate >= 1.0:
        undefined[name] = f"{what} = {rate:.6g} >= 1: the fixed point is not attracting, {name} diverges"
        return None
    return -1.0 / math.log(rate)


def critical_sigma_w2(activation: str, sigma_b2: float, negative_slope: float = 0.01) -> float | None:
    """The sigma_w^2 where chi_1 = 1 at this sigma_b^2; None where chi_1 does not cross 1 at a
    finite q* (ReLU, leaky ReLU, linear: q* diverges first). find_critical says why."""
    return find_critical(activation, sigma_b2, negative_slope)[0]


@functools.lru_cache(maxsize=64)  # a grid's runs share sigma_b^2: the ~1 s search runs once per process
def find_critical(activation: str, sigma_b2: float, negative_slope: float = 0.01) -> tuple[float | None, str]:
    """(critical sigma_w^2, "") or (None, why there is none)."""
    act = Activation(activation, negative_slope)

    def chi_1(sigma_w2: float) -> tuple[float | None, str]:
        q_star, why = fixed_variance(act, sigma_w2, sigma_b2)
        return (None, why) if q_star is None else (_chi_1(act, sigma_w2, q_star), "")

    below = None  # the largest sigma_w^2 seen in the ordered phase
    for w in _W_GRID:
        value, why = chi_1(w)
        if value is None:
            return None, f"chi_1 < 1 wherever q* is finite; from sigma_w^2 = {w:.3g}: {why}"
        if value >= 1.0:
            if below is None:
                return None, f"chi_1 >= 1 already at sigma_w^2 = {w:.3g}"
            chi_below_1 = np.vectorize(lambda s: 1.0 - chi_1(s)[0])
            return _root(chi_below_1, below, w, points=3, rounds=40), ""
        below = w
    return None, f"chi_1 < 1 for every sigma_w^2 up to {_W_GRID[-1]:.3g}"
