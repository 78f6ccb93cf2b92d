"""Mean-field signal propagation in a wide random MLP (Poole et al. 2016; Schoenholz et al. 2017).

With weights of variance sigma_w^2 / fan_in and biases of variance sigma_b^2, a pre-activation
u ~ N(0, q) passes through phi and the next layer:

    variance map     q' = sigma_w^2 E[phi(sqrt(q) z)^2] + sigma_b^2          -> fixed point q*
    correlation map  c' = (sigma_w^2 E[phi(u1) phi(u2)] + sigma_b^2) / q*     -> fixed point c*
    chi_1  = sigma_w^2 E[phi'(sqrt(q*) z)^2]       (per-layer gradient growth; slope of c' at c = 1)
    chi_c  = slope of the correlation map at c*   (= sigma_w^2 E[phi'(u1) phi'(u2)] at q*, c*)
    xi_q   = -1 / ln(chi_1 + sigma_w^2 E[phi''(sqrt(q*) z) phi(sqrt(q*) z)])   (= -1/ln dq'/dq at q*)
    xi_c   = -1 / ln(chi_c)

chi_1 < 1: ordered (c* = 1, gradients vanish); chi_1 > 1: chaotic (c* < 1, gradients explode).
Schoenholz et al. find that networks train only when their depth is below about 6 xi_c. c* is
the stable fixed point nearest 1, the one two nearby inputs reach: c = 1 while chi_1 < 1, and
the one below 1 as soon as chi_1 > 1, however slightly (in the critical band too, where it is
within ~1e-4 of 1 and xi_c is thousands of layers, not the unstable c = 1 with its slope chi_1).

Positively homogeneous activations (relu, leaky_relu with slope a, linear: phi(s x) = s phi(x),
s > 0) have phi' constant on each half-line, so E[phi'(sqrt(q) z)^2] = (1 + a^2)/2 at every q:
chi_1 = sigma_w^2 (1 + a^2)/2 is defined wherever the weights are, even where q* diverges or every
q is a fixed point (He init: chi_1 = 1 exactly, the critical point). The variance map is linear,
q' = chi_1 q + sigma_b^2, so a finite q* > 0 needs chi_1 < 1: with sigma_b^2 > 0 there is no
critical point at finite q* and no chaotic phase (Pennington et al. 2017: ReLU's only critical
point is sigma_w^2 = 2, sigma_b^2 = 0). Without biases the correlation map is scale-free,
c' = E[phi(z1) phi(z2)] / E[phi(z)^2] for unit-variance z1, z2 of correlation c, whatever q does
(grows, shrinks or stays): c* and chi_c exist there too. Its slope at c = 1 is
E[phi'^2] / E[phi^2] = 1 exactly and it lies above c below 1 (relu, leaky_relu), so c* = 1 is
reached as a power law of depth (1 - c_l ~ 1/l^2) and xi_c diverges; for linear, every c is a
fixed point.
"""

import dataclasses
import functools
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from initlab.theory.gauss import Q_TINY, Activation, derivative_moment, expect, expect_joint

# |chi_1 - 1| below this is "critical": depth scales above ~1000 layers, deeper than any network here.
CRITICAL_TOL = 1e-3
DEPTH_FACTOR = 6.0  # Schoenholz et al.: trainable up to about 6 xi_c
_Q_GRID = np.concatenate([[0.0], np.logspace(-12, 10, 89)])  # where the variance map's fixed points are sought
# 1 - c, where the correlation map's stable fixed point below 1 is sought: down to 1e-14, where the
# decorrelation integral still has ~9 digits (it is computed directly, not as a difference of two
# expectations), enough to place c* for chi_1 - 1 down to ~1e-8.
_DELTA_GRID = np.logspace(-14, math.log10(2.0), 57)
_W_GRID = np.logspace(-2, 4, 61)  # sigma_w^2 searched for the critical line


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
        """Whether `depth` layers are within k xi_c: always at criticality where xi_c diverges,
        unknown where xi_c is undefined otherwise."""
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


def decorrelation(act: Activation, sigma_w2: float, sigma_b2: float, q: float, delta: float | np.ndarray) -> np.ndarray:
    """1 - c' for two inputs of variance q and correlation c = 1 - delta: sigma_w^2 E[(phi(u1) - phi(u2))^2] / (2 q'),
    with q' the variance map at q. Integrated as written, not as 1 minus the correlation map, and
    given 1 - c rather than c, so that it keeps its digits as c -> 1 (where c* sits near
    criticality); it is 0 at c = 1 exactly."""
    spread = expect_joint(lambda u1, u2: (act.phi(u1) - act.phi(u2)) ** 2, q, delta)
    return sigma_w2 * spread / (2 * variance_map(act, sigma_w2, sigma_b2, q))


def correlation_map(act: Activation, sigma_w2: float, sigma_b2: float, q: float, c: float | np.ndarray) -> np.ndarray:
    """c' = (sigma_w^2 E[phi(u1) phi(u2)] + sigma_b^2) / q' for two inputs of variance q (the fixed
    point q*) and correlation c; c = 1 maps to 1 exactly. At q = q*, q' = q*."""
    return 1.0 - decorrelation(act, sigma_w2, sigma_b2, q, 1.0 - np.asarray(c, dtype=np.float64))


def mean_field(activation: str, sigma_w2: float, sigma_b2: float, negative_slope: float = 0.01,
               q_start: float = 1.0) -> MeanField:
    """All mean-field quantities at (sigma_w^2, sigma_b^2); see the module docstring. q* is the
    fixed point the variance map reaches from `q_start` (a network's first-layer variance): where
    the map has several (GELU, SiLU at some sigma_w^2), which one a network settles at depends on it.

    Memoised: a grid's runs share their (activation, sigma_w^2, sigma_b^2, q_start), and each
    computation (a few ms; tens in the chaotic phase, where c* is sought) runs once per process."""
    mf = _mean_field(activation, float(sigma_w2), float(sigma_b2), float(negative_slope), float(q_start))
    return dataclasses.replace(mf, undefined=dict(mf.undefined))  # the cached one stays as computed


@functools.lru_cache(maxsize=4096)
def _mean_field(activation: str, sigma_w2: float, sigma_b2: float, negative_slope: float, q_start: float) -> MeanField:
    act = Activation(activation, negative_slope)
    undefined: dict[str, str] = {}
    q_star, why = fixed_variance(act, sigma_w2, sigma_b2, q_start)
    if q_star is None:
        undefined["q_star"] = why
    scale_free = act.homogeneous and sigma_b2 == 0.0  # the correlation map does not depend on q
    chi_1 = _chi_1(act, sigma_w2, q_star) if q_star is not None or act.homogeneous else None
    phase = _phase(act, chi_1, q_star, scale_free, why, undefined)
    xi_q = _xi_q(act, sigma_w2, q_star, chi_1, phase, why, undefined)
    if scale_free:
        c_star, chi_c = _scale_free_correlation(act, undefined)
    elif q_star is None:
        c_star = chi_c = None
        undefined |= dict.fromkeys(("c_star", "chi_c", "xi_c"), (
            f"{why}; the correlation map depends on q, which has no fixed point" + (
                " (as q grows it tends to the scale-free map of sigma_b^2 = 0, whose c* = 1 is reached as a power law)"
                if act.homogeneous else "")))
    elif q_star == 0.0:
        how = "as a power law" if phase == "critical" else "by chi_1 per layer"
        c_star = chi_c = None
        undefined |= dict.fromkeys(("c_star", "chi_c", "xi_c"), (
            f"q* = 0: the signal itself vanishes with depth ({how}); the correlation of a vanishing signal "
            "is not set by a fixed point"))
    else:
        c_star, chi_c = _stable_correlation(act, sigma_w2, sigma_b2, q_star, chi_1, undefined)
    xi_c = None if chi_c is None else _xi_c(chi_c, undefined)
    return MeanField(activation, sigma_w2, sigma_b2, q_star, c_star, chi_1, chi_c, xi_q, xi_c, phase, undefined,
                     q_start)


def _chi_1(act: Activation, sigma_w2: float, q: float | None) -> float:
    """sigma_w^2 E[phi'(sqrt(q) z)^2]; q does not matter (and may be None) for a homogeneous phi."""
    return sigma_w2 * derivative_moment(act, 0.0 if q is None else q)


def _phase(act: Activation, chi_1: float | None, q_star: float | None, scale_free: bool, why: str,
           undefined: dict[str, str]) -> str | None:
    """ordered / critical / chaotic by chi_1, where the variance settles (a finite q*) or does not
    matter (the scale-free map of a homogeneous phi without biases, up to the critical band)."""
    if chi_1 is None:
        undefined |= {"chi_1": why, "phase": why}
        return None
    if q_star is None and not (scale_free and chi_1 <= 1 + CRITICAL_TOL):
        undefined["phase"] = f"{why}; " + (
            f"chi_1 = {chi_1:.6g} but {act.name} has no chaotic phase: without biases its correlation map does not "
            "depend on q, so inputs do not decorrelate while the variance and the gradients grow by chi_1 per layer"
            if scale_free else
            f"chi_1 = {chi_1:.6g}: with sigma_b^2 > 0, {act.name}'s q* = sigma_b^2 / (1 - chi_1) exists only while "
            "chi_1 < 1, so it has no critical point at finite q* (only at sigma_b^2 = 0) and no chaotic phase")
        return None
    return "critical" if abs(chi_1 - 1) <= CRITICAL_TOL else "ordered" if chi_1 < 1 else "chaotic"


def _xi_q(act: Activation, sigma_w2: float, q_star: float | None, chi_1: float | None, phase: str | None, why: str,
          undefined: dict[str, str]) -> float | None:
    """-1 / ln(dq'/dq at q*), dq'/dq = chi_1 + sigma_w^2 E[phi'' phi] (Schoenholz et al. 2017)."""
    if q_star is None:
        undefined["xi_q"] = why
        return None
    if q_star == 0.0 and phase == "critical":  # dq'/dq = 1 at q* = 0: q decays as a power law, not exponentially
        undefined["xi_q"] = "q* = 0 with chi_1 = 1: q decays to 0 as a power law of depth, so xi_q diverges"
        return None
    slope = chi_1 + float(sigma_w2 * expect(lambda x: act.d2(x) * act.phi(x), max(q_star, Q_TINY)))
    return _depth_scale(slope, "xi_q", "dq'/dq at q*", undefined)


def _scale_free_correlation(act: Activation, undefined: dict[str, str]) -> tuple[float | None, float | None]:
    """(c*, chi_c) of a homogeneous phi without biases: c' = K(c) / K(1), K(c) = E[phi(z1) phi(z2)] at unit
    variances. Writing phi(x) = a x + (1 - a) relu(x) (a = phi'(-1) / phi'(1), scaled), K(c) = a c + (1 - a)^2
    K_relu(c) with K_relu(c) > c/2 below c = 1 (the arc-cosine kernel), so c' > c there unless a = 1: c* = 1
    attracts, with slope K'(1) / K(1) = E[phi'^2] / E[phi^2] = 1 exactly (a power law, no exponential
    depth scale). For a = 1 (linear) the map is the identity."""
    left, right = act.d1(np.array([-1.0, 1.0]))
    if left == right:
        undefined |= dict.fromkeys(("c_star", "chi_c", "xi_c"), (
            "every c is a fixed point of the correlation map (a linear network without biases keeps every "
            "correlation): correlations neither approach nor leave any value, over no depth scale"))
        return None, None
    return 1.0, 1.0


def _stable_correlation(act: Activation, sigma_w2: float, sigma_b2: float, q_star: float, chi_1: float,
                        undefined: dict[str, str]) -> tuple[float, float | None]:
    """(c*, chi_c): the stable fixed point of the correlation map at q* nearest c = 1, and the map's
    slope there. chi_1 is its slope at c = 1: below 1, c = 1 attracts. Otherwise c* is where
    1 - c' = delta (delta = 1 - c) first holds going down from c = 1: the secant (1 - c')/delta
    starts at chi_1 >= 1 and falls below 1 there (the map is convex above c = 0: a power series in
    c with non-negative terms, by the Hermite expansion of phi).
    """
    if chi_1 < 1.0:
        return 1.0, chi_1
    excess = decorrelation(act, sigma_w2, sigma_b2, q_star, _DELTA_GRID) / _DELTA_GRID - 1.0
    first = int(np.argmax(excess <= 0))  # exists: 1 - c' <= 2 = delta at c = -1
    if first == 0:  # c' >= c from 1 - 1e-14 down
        undefined |= dict.fromkeys(("chi_c", "xi_c"), (
            f"chi_1 - 1 = {chi_1 - 1:.2g}: the stable c* lies within 1e-14 of 1, closer than the quadrature "
            "resolves; chi_c is 1 to within chi_1 - 1, and xi_c beyond ~1 / (chi_1 - 1) layers"))
        return 1.0, None
    gap = lambda delta: decorrelation(act, sigma_w2, sigma_b2, q_star, delta) / delta - 1.0  # noqa: E731
    delta = _root(gap, _DELTA_GRID[first - 1], _DELTA_GRID[first])
    # the slope there, sigma_w^2 E[phi'(u1) phi'(u2)] (Price's theorem; q' = q* at the fixed point)
    return 1.0 - delta, sigma_w2 * float(expect_joint(lambda u1, u2: act.d1(u1) * act.d1(u2), q_star, delta))


def _xi_c(chi_c: float, undefined: dict[str, str]) -> float | None:
    """-1 / ln chi_c; diverging (a power law) where the slope at c* is 1."""
    if chi_c == 1.0:
        undefined["xi_c"] = ("the correlation map's slope at c* is 1: correlations approach c* as a power law "
                             "of depth, not exponentially, so xi_c diverges")
        return None
    return _depth_scale(chi_c, "xi_c", "chi_c*", undefined)


def fixed_variance(act: Activation, sigma_w2: float, sigma_b2: float, q_start: float = 1.0) -> tuple[float | None, str]:
    """(q*, "") for the fixed point that iterating the variance map from q_start reaches, or
    (None, why) when there is none: q grows without bound, or every q is a fixed point."""
    grid = np.union1d(_Q_GRID, [q_start])
    gap = variance_map(act, sigma_w2, sigma_b2, grid) - grid  # > 0: q grows
    if np.all(np.abs(gap) <= 1e-9 * grid):
        return None, ("every q is a fixed point of the variance map (Var[y] neither grows nor shrinks): q* is "
                      "not determined, a network keeps its first layer's variance")
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


def _root(f: Callable[[np.ndarray], np.ndarray], lo: float, hi: float, points: int = 9, rounds: int = 14) -> float:
    """A root of the vectorised f between lo (f >= 0) and hi (f < 0): each round evaluates f on
    `points` points across the bracket in one call and keeps the cell where it turns negative
    (points=3 is bisection), so the bracket shrinks (points - 1)^rounds times (4e12 by default).
    numpy has no root finder, and this is a few lines: not worth scipy."""
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
    finite q* (q* diverges first: ReLU-like activations with sigma_b^2 > 0, GELU, SiLU, softplus
    at small sigma_b^2). find_critical says why."""
    return find_critical(activation, sigma_b2, negative_slope)[0]


@functools.lru_cache(maxsize=64)  # a grid's runs share sigma_b^2: the ~1 s search runs once per process
def find_critical(activation: str, sigma_b2: float, negative_slope: float = 0.01) -> tuple[float | None, str]:
    """(critical sigma_w^2, "") or (None, why there is none), from q_start = 1. Where q* diverges
    before chi_1 reaches 1, the reason names the sigma_w^2 where it starts to, to ~1e-12."""
    act = Activation(activation, negative_slope)
    if act.homogeneous:
        return _homogeneous_critical(act, sigma_b2)

    def chi_1(sigma_w2: float) -> tuple[float | None, str]:
        q_star, why = fixed_variance(act, sigma_w2, sigma_b2)
        return (None, why) if q_star is None else (_chi_1(act, sigma_w2, q_star), "")

    below = None  # the largest sigma_w^2 seen in the ordered phase
    for w in _W_GRID:
        value, why = chi_1(w)
        if value is None:
            if below is None:
                return None, f"no finite q* at any sigma_w^2 from {w:.3g}: {why}"
            finite = np.vectorize(lambda s: 1.0 if chi_1(s)[0] is not None else -1.0)
            onset = _root(finite, below, w, points=3, rounds=40)  # to ~1e-13: just below it, q* is finite
            return None, (f"chi_1 < 1 wherever q* is finite (up to {chi_1(onset * (1 - 1e-9))[0]:.4g}, just below "
                          f"sigma_w^2 = {onset:.10g}); from sigma_w^2 = {onset:.10g} on, {why}")
        if value >= 1.0:
            if below is None:
                return None, f"chi_1 >= 1 already at sigma_w^2 = {w:.3g}"
            chi_below_1 = np.vectorize(lambda s: 1.0 - chi_1(s)[0])
            return _root(chi_below_1, below, w, points=3, rounds=40), ""
        below = w
    return None, f"chi_1 < 1 for every sigma_w^2 up to {_W_GRID[-1]:.3g}"


def _homogeneous_critical(act: Activation, sigma_b2: float) -> tuple[float | None, str]:
    """chi_1 = sigma_w^2 E[phi'^2] whatever q, so chi_1 = 1 at sigma_w^2 = 1 / E[phi'^2] exactly;
    a critical point only without biases, since q* = sigma_b^2 / (1 - chi_1) diverges there."""
    critical = 1.0 / derivative_moment(act, 1.0)
    if sigma_b2 == 0.0:
        return critical, ""
    return None, (f"chi_1 < 1 wherever q* is finite: chi_1 = {1 / critical:.6g} sigma_w^2 at every q, and "
                  f"q* = sigma_b^2 / (1 - chi_1) diverges from sigma_w^2 = {critical:.10g} on, exactly where chi_1 "
                  f"reaches 1: with sigma_b^2 > 0 {act.name} has no critical point at finite q* "
                  "(Pennington et al. 2017: ReLU's only one is sigma_w^2 = 2, sigma_b^2 = 0)")
