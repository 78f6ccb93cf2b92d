"""Mean-field theory against closed forms, Monte Carlo, finite differences and simulated wide networks."""

import math
import re

import mpmath
import numpy as np
import pytest
import torch

from initlab.activations import ACTIVATIONS, activation_module
from initlab.theory import (CRITICAL_TOL, correlation_map, critical_sigma_w2, find_critical, mean_field,
                            predict_layers, run_theory, second_moment, variance_map)
from initlab.theory.gauss import Activation, derivative_moment, expect, expect_pair
from initlab.theory.mean_field import _mean_field, fixed_variance

SMOOTH = ("tanh", "sigmoid", "gelu", "silu", "softplus")


@pytest.mark.parametrize("q", [0.1, 1.0, 7.0])
def test_second_moment_closed_forms(q):
    assert second_moment("relu", q) == pytest.approx(q / 2, rel=1e-9)
    assert second_moment("linear", q) == pytest.approx(q, rel=1e-9)
    assert second_moment("leaky_relu", q, negative_slope=0.2) == pytest.approx(q * (1 + 0.04) / 2, rel=1e-9)
    assert second_moment("erf", q) == pytest.approx(2 / math.pi * math.asin(2 * q / (1 + 2 * q)), rel=1e-13)


@pytest.mark.parametrize("q", [0.05, 1.0, 9.0])
def test_softsign_moments_against_mpmath_quadrature(q):
    """softsign(u) = u / (1 + |u|), Glorot & Bengio 2010's third activation: its second moment and
    E[phi'(u)^2] = E[(1 + |u|)^-4], which sets chi_1, by mpmath's adaptive quadrature (split at 0, where
    phi'' jumps) against initlab's split Gauss-Legendre."""
    def gauss(f):
        density = lambda u: mpmath.exp(-u * u / (2 * q)) / mpmath.sqrt(2 * mpmath.pi * q)
        return float(2 * mpmath.quad(lambda u: f(u) * density(u), [0, mpmath.inf]))

    assert second_moment("softsign", q) == pytest.approx(gauss(lambda u: (u / (1 + u)) ** 2), rel=1e-12)
    act = Activation("softsign")
    assert float(expect(lambda u: act.d1(u) ** 2, q)) == pytest.approx(gauss(lambda u: (1 + u) ** -4), rel=1e-12)


@pytest.mark.parametrize("sigma_w2, sigma_b2", [(1.5, 0.1), (0.5, 0.3)])
def test_relu_and_linear_closed_forms(sigma_w2, sigma_b2):
    relu = mean_field("relu", sigma_w2, sigma_b2)
    assert relu.q_star == pytest.approx(sigma_b2 / (1 - sigma_w2 / 2), rel=1e-8)
    assert relu.chi_1 == pytest.approx(sigma_w2 / 2, rel=1e-9)
    assert relu.xi_q == relu.xi_c == pytest.approx(-1 / math.log(sigma_w2 / 2), rel=1e-8)
    assert (relu.phase, relu.c_star) == ("ordered", 1.0)
    slope = 0.3
    leaky = mean_field("leaky_relu", sigma_w2, sigma_b2, negative_slope=slope)
    assert leaky.chi_1 == pytest.approx(sigma_w2 * (1 + slope**2) / 2, rel=1e-9)
    linear = mean_field("linear", sigma_w2 / 2, sigma_b2)
    assert linear.q_star == pytest.approx(sigma_b2 / (1 - sigma_w2 / 2), rel=1e-8)
    assert linear.chi_1 == pytest.approx(sigma_w2 / 2, rel=1e-12)


@pytest.mark.parametrize("c", [-1.0, -0.9, 0.0, 0.5, 0.99, 1 - 1e-4, 1 - 1e-7, 1.0])
def test_relu_correlation_map_is_the_arc_cosine_kernel(c):
    """To 1e-13 at every c up to 1, where the two inputs' kinks meet (Cho & Saul's kernel)."""
    sigma_w2, sigma_b2, q = 1.5, 0.1, 0.4  # q = q* here
    kernel = q / (2 * math.pi) * (math.sqrt(1 - c**2) + (math.pi - math.acos(c)) * c)
    expected = (sigma_w2 * kernel + sigma_b2) / q
    assert float(correlation_map(Activation("relu"), sigma_w2, sigma_b2, q, c)) == pytest.approx(expected, abs=1e-13)
    step = Activation("relu").d1
    assert float(expect_pair(step, step, q, c)) == pytest.approx((math.pi - math.acos(c)) / (2 * math.pi), abs=1e-13)


@pytest.mark.parametrize("sigma_w2, q", [(0.5, 0.01), (2.0, 1.0), (3.0, 50.0)])
def test_without_biases_the_relu_correlation_map_does_not_depend_on_q_or_sigma_w2(sigma_w2, q):
    """sigma_b^2 = 0: c' = (sqrt(1 - c^2) + (pi - arccos c) c) / pi whatever the variance does, so
    c* = 1 with slope 1 (correlations reach it as a power law) at every sigma_w^2, He init included."""
    c = np.array([-0.5, 0.3, 0.9, 1 - 1e-6])
    normalised = (np.sqrt(1 - c**2) + (math.pi - np.arccos(c)) * c) / math.pi
    assert correlation_map(Activation("relu"), sigma_w2, 0.0, q, c) == pytest.approx(normalised, abs=1e-13)
    mf = mean_field("relu", sigma_w2, 0.0)
    assert (mf.c_star, mf.chi_c, mf.xi_c) == (1.0, 1.0, None) and "power law" in mf.undefined["xi_c"]


def test_erf_closed_forms():
    """phi = erf, as the papers write it (Williams 1997): for (u1, u2) of variance q and correlation c,
    E[erf(u1) erf(u2)] = (2/pi) arcsin(2qc / (1 + 2q)), and erf'(u) = (2/sqrt(pi)) exp(-u^2) gives
    E[erf'(u1) erf'(u2)] = (4/pi) / sqrt((1 + 2q)^2 - 4 q^2 c^2), E[erf'(u)^4] = (16/pi^2) / sqrt(1 + 8q)."""
    act, q = Activation("erf"), 0.8
    c = np.array([-1.0, -0.3, 0.0, 0.6, 1 - 1e-8, 1.0])
    assert expect_pair(act.phi, act.phi, q, c) == pytest.approx(2 / math.pi * np.arcsin(2 * q * c / (1 + 2 * q)),
                                                                 rel=1e-13, abs=1e-14)
    pair = 4 / math.pi / np.sqrt((1 + 2 * q) ** 2 - 4 * q**2 * c**2)
    assert expect_pair(act.d1, act.d1, q, c) == pytest.approx(pair, rel=1e-13)
    assert derivative_moment(act, q, 4) == pytest.approx(16 / math.pi**2 / math.sqrt(1 + 8 * q), rel=1e-13)
    # d/dq E[erf(sqrt(q) z)^2] = E[erf'^2] + E[erf erf''] = (4/pi) / ((1 + 2q) sqrt(1 + 4q)): xi_q's slope
    assert float(expect(lambda x: act.d1(x) ** 2 + act.d2(x) * act.phi(x), q)) == pytest.approx(
        4 / math.pi / ((1 + 2 * q) * math.sqrt(1 + 4 * q)), rel=1e-13)


def _erf_mean_field(sigma_w2: float, sigma_b2: float) -> dict:
    """q*, c*, chi_1, chi_c, xi_q, xi_c of erf from its closed forms, in 40-digit arithmetic (mpmath)."""
    mpmath.mp.dps = 40
    w, b = mpmath.mpf(sigma_w2), mpmath.mpf(sigma_b2)
    kernel = lambda q, c: 2 / mpmath.pi * mpmath.asin(2 * q * c / (1 + 2 * q))  # noqa: E731
    q = mpmath.findroot(lambda q: w * kernel(q, 1) + b - q, 1)
    chi_1 = w * 4 / mpmath.pi / mpmath.sqrt(1 + 4 * q)
    excess = lambda d: w * (kernel(q, 1) - kernel(q, 1 - d)) / q / d - 1  # (1 - c') / (1 - c) - 1  # noqa: E731
    delta = mpmath.findroot(excess, (mpmath.mpf("1e-12"), mpmath.mpf(2)), solver="bisect") if chi_1 > 1 else 0
    chi_c = w * 4 / mpmath.pi / mpmath.sqrt((1 + 2 * q) ** 2 - 4 * q**2 * (1 - delta) ** 2)
    slope_q = w * 4 / mpmath.pi / ((1 + 2 * q) * mpmath.sqrt(1 + 4 * q))
    return {key: float(value) for key, value in (("q_star", q), ("c_star", 1 - delta), ("chi_1", chi_1),
                                                 ("chi_c", chi_c), ("xi_q", -1 / mpmath.log(slope_q)),
                                                 ("xi_c", -1 / mpmath.log(chi_c)))}


@pytest.mark.parametrize("sigma_w2, phase", [(0.7, "ordered"), (1.2, "ordered"), (1.3765, "critical"),
                                             (3.0, "chaotic")])
def test_erf_mean_field_against_its_closed_forms(sigma_w2, phase):
    """sigma_b^2 = 0.05. 1.3765 is inside the critical band just above chi_1 = 1: c* = 0.99885 is the
    stable fixed point and xi_c ~ 5,000 layers. Agreement to ~1e-12 (xi_c: 1e-7, it is 1 / (1 - chi_c))."""
    mf, closed = mean_field("erf", sigma_w2, 0.05), _erf_mean_field(sigma_w2, 0.05)
    assert mf.phase == phase
    for key, value in closed.items():
        assert getattr(mf, key) == pytest.approx(value, rel=1e-7 if key == "xi_c" else 1e-11), key


def test_erf_critical_line_against_its_closed_form():
    """chi_1 = sigma_w^2 (4/pi) / sqrt(1 + 4 q*) = 1 with
    q* = (1/2) sqrt(1 + 4 q*) arcsin(2 q* / (1 + 2 q*)) + sigma_b^2, and pi/4 at sigma_b^2 = 0 (erf'(0)^2 = 4/pi, at q* = 0)."""
    assert critical_sigma_w2("erf", 0.0) == pytest.approx(math.pi / 4, rel=1e-11)
    mpmath.mp.dps = 40
    q = mpmath.findroot(lambda q: mpmath.sqrt(1 + 4 * q) / 2 * mpmath.asin(2 * q / (1 + 2 * q)) + 0.05 - q, 0.5)
    assert critical_sigma_w2("erf", 0.05) == pytest.approx(float(mpmath.pi / 4 * mpmath.sqrt(1 + 4 * q)), rel=1e-11)


def test_linear_correlation_is_an_affine_map():
    act, sigma_w2, sigma_b2 = Activation("linear"), 0.7, 0.2
    q = sigma_b2 / (1 - sigma_w2)
    c = np.array([-0.5, 0.3, 0.8])
    assert correlation_map(act, sigma_w2, sigma_b2, q, c) == pytest.approx((sigma_w2 * q * c + sigma_b2) / q, rel=1e-12)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_quadrature_matches_monte_carlo(activation):
    """E[phi(u1) phi(u2)] and E[phi'(u1) phi'(u2)] against 200k samples, derivatives by central
    differences (independent of autograd); tolerance: 5 standard errors of the sample mean."""
    q, c, h = 1.3, 0.6, 1e-5
    g = torch.Generator().manual_seed(1)
    z1, z2 = torch.randn(2, 200_000, generator=g, dtype=torch.float64)
    u1, u2 = math.sqrt(q) * z1, math.sqrt(q) * (c * z1 + math.sqrt(1 - c**2) * z2)
    phi = activation_module(activation, 0.2)
    with torch.no_grad():
        d1, d2 = ((phi(u + h) - phi(u - h)) / (2 * h) for u in (u1, u2))
        pairs = {"phi": phi(u1) * phi(u2), "d1": d1 * d2}
    act = Activation(activation, 0.2)
    quadrature = {"phi": expect_pair(act.phi, act.phi, q, c), "d1": expect_pair(act.d1, act.d1, q, c)}
    for name, samples in pairs.items():
        error = 5 * samples.std().item() / math.sqrt(len(samples))
        assert float(quadrature[name]) == pytest.approx(samples.mean().item(), abs=error + 1e-9), name


@pytest.mark.parametrize("activation, sigma_w2, sigma_b2", [
    ("tanh", 1.5, 0.05), ("tanh", 4.0, 0.05), ("tanh", 2.0, 0.0), ("sigmoid", 150.0, 0.5), ("selu", 1.0, 0.0),
    ("gelu", 1.5, 0.1), ("silu", 1.5, 0.3), ("elu", 1.2, 0.05), ("elu", 1.8, 0.05), ("softplus", 1.5, 0.05),
    ("relu", 1.0, 0.2)])
def test_fixed_points_and_depth_scales_against_finite_differences(activation, sigma_w2, sigma_b2):
    """q* and c* are fixed points; chi_1 + sigma_w^2 E[phi'' phi] is the variance map's slope at q*;
    chi_c is the correlation map's slope at c*: each checked by differencing the maps themselves."""
    mf, act = mean_field(activation, sigma_w2, sigma_b2), Activation(activation)
    q, c = mf.q_star, mf.c_star
    assert float(variance_map(act, sigma_w2, sigma_b2, q)) == pytest.approx(q, rel=1e-8)
    assert float(correlation_map(act, sigma_w2, sigma_b2, q, c)) == pytest.approx(c, abs=1e-8)
    slope_q = _slope(lambda x: float(variance_map(act, sigma_w2, sigma_b2, x)), q, 1e-5 * q)
    assert mf.xi_q == pytest.approx(-1 / math.log(slope_q), rel=1e-5)
    slope_c = _slope(lambda x: float(correlation_map(act, sigma_w2, sigma_b2, q, x)), c)
    assert mf.chi_c == pytest.approx(slope_c, rel=1e-3)
    assert mf.phase == ("ordered" if c == 1.0 else "chaotic") and -1 < c <= 1
    assert mf.xi_c == pytest.approx(-1 / math.log(mf.chi_c), rel=1e-12)
    assert mf.depth_bound() == pytest.approx(6 * mf.xi_c)


def _slope(f, x: float, h: float = 1e-5) -> float:
    """Central difference; at x = 1 (a correlation cannot exceed it) the one-sided second-order one."""
    if x == 1.0:
        return (3 * f(1.0) - 4 * f(1.0 - h) + f(1.0 - 2 * h)) / (2 * h)
    return (f(x + h) - f(x - h)) / (2 * h)


def test_tanh_critical_line():
    """sigma_b^2 = 0: chi_1 = sigma_w^2 tanh'(0)^2 at q* = 0, so the transition is at sigma_w^2 = 1;
    sigma_b^2 = 0.05: chi_1 = 1 at the returned value (Schoenholz et al.'s Fig. 2 line, about 1.76)."""
    assert critical_sigma_w2("tanh", 0.0) == pytest.approx(1.0, abs=1e-6)
    critical = critical_sigma_w2("tanh", 0.05)
    assert critical == pytest.approx(1.76, abs=0.01)
    assert mean_field("tanh", critical, 0.05).chi_1 == pytest.approx(1.0, abs=1e-6)
    assert mean_field("tanh", critical, 0.05).phase == "critical"
    assert mean_field("tanh", critical * 0.9, 0.05).phase == "ordered"
    assert mean_field("tanh", critical * 1.1, 0.05).phase == "chaotic"


def test_undefined_quantities_say_why():
    vanishing = mean_field("tanh", 0.5, 0.0)  # q* = 0: no correlation fixed point
    assert vanishing.q_star == 0.0 and vanishing.chi_1 == pytest.approx(0.5) and vanishing.xi_c is None
    assert "q* = 0" in vanishing.undefined["xi_c"] and vanishing.depth_bound() is None
    near = mean_field("tanh", 1.76, 0.05)  # critical, just on the ordered side: xi_c is finite, ~4900 layers
    assert near.phase == "critical" and near.xi_c > 1000 and near.within_depth_bound(10_000)
    power_law = mean_field("tanh", 1.0, 0.0)  # q* = 0 with chi_1 = 1: no exponential depth scale at all
    assert power_law.xi_q is None and "power law" in power_law.undefined["xi_q"]
    assert "power law" in power_law.undefined["xi_c"]
    gelu = mean_field("gelu", 2.2, 0.05, q_start=2.25)  # above its unstable fixed point: q* diverges
    assert set(gelu.undefined) == {"q_star", "chi_1", "phase", "xi_q", "c_star", "chi_c", "xi_c"}
    assert all("diverges" in why for why in gelu.undefined.values())


@pytest.mark.parametrize("activation, slope, sigma_b2", [("relu", 0.01, 0.0), ("relu", 0.01, 0.1),
                                                         ("leaky_relu", 0.2, 0.0), ("leaky_relu", 0.2, 0.3),
                                                         ("linear", 0.01, 0.0), ("linear", 0.01, 0.1)])
def test_homogeneous_chi_1_is_defined_wherever_the_weights_are(activation, slope, sigma_b2):
    """phi' of relu, leaky_relu (slope a), linear is constant on each half-line: chi_1 = sigma_w^2 (1 + a^2)/2
    (1 for linear) at every q, where q* is finite, zero, diverging, or every q is a fixed point."""
    a = {"relu": 0.0, "leaky_relu": slope, "linear": 1.0}[activation]
    for sigma_w2 in (0.5, 2 / (1 + a**2), 3.0):
        mf = mean_field(activation, sigma_w2, sigma_b2, slope)
        assert mf.chi_1 == pytest.approx(sigma_w2 * (1 + a**2) / 2, rel=1e-15), sigma_w2
    critical, why = find_critical(activation, sigma_b2, slope)
    assert critical == (2 / (1 + a**2) if sigma_b2 == 0 else None)
    onset = f"diverges from sigma_w^2 = {2 / (1 + a**2):.10g} on, exactly where"
    assert (why == "") if sigma_b2 == 0 else (onset in why)


def test_he_init_is_the_critical_point_of_relu():
    """sigma_w^2 = 2, sigma_b^2 = 0: chi_1 = 1 exactly, every q a fixed point (q* undetermined), c* = 1
    with slope 1 (no exponential depth scale); with any bias q* diverges there and there is no phase."""
    he = mean_field("relu", 2.0, 0.0)
    assert he.chi_1 == 1.0 and he.phase == "critical" and he.within_depth_bound(10**6)
    assert he.q_star is None and "every q" in he.undefined["q_star"] and "every q" in he.undefined["xi_q"]
    assert (he.c_star, he.chi_c, he.xi_c) == (1.0, 1.0, None) and "power law" in he.undefined["xi_c"]
    assert mean_field("relu", 1.5, 0.0).phase == "ordered"
    above = mean_field("relu", 3.0, 0.0)  # q grows by chi_1 = 1.5 per layer; correlations still go to 1
    assert above.chi_1 == 1.5 and above.phase is None and "no chaotic phase" in above.undefined["phase"]
    assert above.c_star == 1.0 and above.chi_c == 1.0
    biased = mean_field("relu", 2.0, 0.05)
    assert biased.chi_1 == 1.0 and biased.phase is None
    assert "no critical point at finite q*" in biased.undefined["phase"]
    assert biased.q_star is None and biased.c_star is None and "diverges" in biased.undefined["c_star"]
    identity = mean_field("linear", 1.0, 0.0)  # the correlation map is the identity
    assert identity.c_star is None and "every c" in identity.undefined["c_star"]


def test_in_the_critical_band_c_star_is_the_stable_fixed_point():
    """SELU at sigma_w^2 = 0.5, sigma_b^2 = 0: chi_1 = 1.0003, inside the band above 1, so c = 1 repels and
    inputs settle at c* = 0.999935, where the map's slope is ~1 - (chi_1 - 1)/2 (a kink: 1 - c' has a
    (1 - c)^(3/2) term): xi_c ~ 6,600 layers. Checked by the map itself: c* is fixed, stable, and chi_c is
    its slope there (central difference). tanh just above its critical line, likewise."""
    tanh_above = critical_sigma_w2("tanh", 0.05) * 1.0002
    for activation, sigma_w2, sigma_b2 in (("selu", 0.5, 0.0), ("tanh", tanh_above, 0.05)):
        mf, act = mean_field(activation, sigma_w2, sigma_b2), Activation(activation)
        assert mf.phase == "critical" and 0 < mf.chi_1 - 1 <= CRITICAL_TOL and mf.c_star < 1
        c_next = float(correlation_map(act, sigma_w2, sigma_b2, mf.q_star, mf.c_star))
        assert c_next == pytest.approx(mf.c_star, abs=1e-13)
        h = (1 - mf.c_star) / 100
        assert _slope(lambda c: float(correlation_map(act, sigma_w2, sigma_b2, mf.q_star, c)), mf.c_star, h) == \
            pytest.approx(mf.chi_c, abs=1e-8)
        assert mf.chi_c < 1 and mf.xi_c == pytest.approx(-1 / math.log(mf.chi_c)) and mf.within_depth_bound(1000)
    selu = mean_field("selu", 0.5, 0.0)
    assert selu.c_star == pytest.approx(0.999935, abs=1e-6) and 6000 < selu.xi_c < 7200


def test_the_onset_of_divergence_is_found_precisely():
    """GELU at sigma_b^2 = 0 from q = 1: chi_1 < 1 wherever q* is finite; the reason names the sigma_w^2
    where q* starts to diverge (to 10 digits), not a point of the scan."""
    value, why = find_critical("gelu", 0.0)
    onset = float(re.search(r"from sigma_w\^2 = ([0-9.e+-]+) on", why).group(1))
    assert value is None and why.startswith("chi_1 < 1 wherever q* is finite") and "diverges" in why
    act = Activation("gelu")
    assert fixed_variance(act, onset * (1 - 1e-9), 0.0)[0] is not None
    assert fixed_variance(act, onset * (1 + 1e-9), 0.0)[0] is None


def test_mean_field_is_computed_once_per_point():
    """A grid's seeds share their point: the second call is a cache hit, and what it returns is the
    caller's own copy (changing it leaves the cache alone)."""
    _mean_field.cache_clear()
    first = mean_field("tanh", 2.5, 0.05, q_start=1.3)
    first.undefined["c_star"] = "mutated"
    again = mean_field("tanh", 2.5, 0.05, q_start=1.3)
    assert _mean_field.cache_info().hits == 1 and again.undefined == {} and again.c_star == first.c_star


def test_where_the_variance_map_has_two_fixed_points_q_star_is_the_one_the_network_reaches():
    """GELU at sigma_w^2 = 2.2: a stable q* ~ 0.156 below an unstable fixed point near q ~ 1.2."""
    below, above = mean_field("gelu", 2.2, 0.05, q_start=1.0), mean_field("gelu", 2.2, 0.05, q_start=2.25)
    assert below.q_star == pytest.approx(0.1563, abs=1e-3) and below.phase == "ordered"
    assert above.q_star is None and "from q = 2.25" in above.undefined["q_star"]
    layers = predict_layers("gelu", [2.2] * 30, [0.05] * 30, 1.0).act_var  # what a network starting at 2.25 does
    assert layers[-1] > 5 * layers[0]
    records = [{"layer": f"l{i}", "param": "weight", "fan_in": 100, "std": 0.1483, "target_std": 0.1483,
                "mean": 0.0, "shape": [100, 100], "scheme": "kaiming"} for i in range(10)]
    theory = run_theory("mlp", "gelu", 0.01, records)  # its first layer: q_1 = 100 * 0.1483^2 * 1 = 2.2
    assert theory["q_start"] == pytest.approx(2.2, rel=1e-3) and theory["phase"] is None


def _wide_network(activation, weight_vars, bias_vars, widths, input_var, batch=128, seed=0):
    """A real random MLP (torch layers, autograd) in float64: measured Var[y_l] and Var[dL/dy_l]."""
    g = torch.Generator().manual_seed(seed)
    phi = activation_module(activation)
    x = torch.randn(batch, widths[0], generator=g, dtype=torch.float64) * math.sqrt(input_var)
    outputs, h = [], x.requires_grad_(True)
    for l, (sigma_w2, sigma_b2) in enumerate(zip(weight_vars, bias_vars)):
        fan_in, fan_out = widths[l], widths[l + 1]
        w = torch.randn(fan_out, fan_in, generator=g, dtype=torch.float64) * math.sqrt(sigma_w2 / fan_in)
        b = torch.randn(fan_out, generator=g, dtype=torch.float64) * math.sqrt(sigma_b2)
        y = h @ w.T + b
        y.retain_grad()
        outputs.append(y)
        h = phi(y) if l < len(weight_vars) - 1 else y
    probe = torch.randn(h.shape, generator=g, dtype=torch.float64)
    (h * probe).sum().backward()
    return [y.var().item() for y in outputs], [y.grad.var().item() for y in outputs]


@pytest.mark.parametrize("activation, sigma_w2, sigma_b2",
                         [("tanh", 2.5, 0.05), ("relu", 2.0, 0.0), ("gelu", 1.8, 0.1)])
def test_predict_layers_match_a_simulated_wide_network(activation, sigma_w2, sigma_b2):
    """Hidden layers of width 2048: a network's own fluctuations compound over depth (about
    sqrt(depth / width) in an ordered phase, where all inputs look alike), hence 15%. The 10-unit
    output layer's Var[y] rests on 10 numbers and is not compared."""
    widths = [784] + [2048] * 4 + [10]
    layers = len(widths) - 1
    weight_vars, bias_vars = [1.0] + [sigma_w2] * (layers - 1), [sigma_b2] * layers
    act_var, grad_var = _wide_network(activation, weight_vars, bias_vars, widths, input_var=0.5)
    predicted = predict_layers(activation, weight_vars, bias_vars, 0.5, widths=widths[1:])
    assert act_var[:-1] == pytest.approx(predicted.act_var[:-1], rel=0.15)
    assert [v / grad_var[-1] for v in grad_var] == pytest.approx(predicted.grad_var, rel=0.15)
