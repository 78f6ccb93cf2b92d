"""Mean-field theory against closed forms, Monte Carlo, finite differences and simulated wide networks."""

import math

import numpy as np
import pytest
import torch

from initlab.activations import ACTIVATIONS, activation_module
from initlab.theory import (correlation_map, critical_sigma_w2, find_critical, mean_field, predict_layers,
                            run_theory, second_moment, variance_map)
from initlab.theory.gauss import Activation, expect_pair

SMOOTH = ("tanh", "sigmoid", "gelu", "silu", "softplus")


@pytest.mark.parametrize("q", [0.1, 1.0, 7.0])
def test_second_moment_closed_forms(q):
    assert second_moment("relu", q) == pytest.approx(q / 2, rel=1e-9)
    assert second_moment("linear", q) == pytest.approx(q, rel=1e-9)
    assert second_moment("leaky_relu", q, negative_slope=0.2) == pytest.approx(q * (1 + 0.04) / 2, rel=1e-9)


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


@pytest.mark.parametrize("c", [-0.9, 0.0, 0.5, 0.99])
def test_relu_correlation_map_is_the_arc_cosine_kernel(c):
    sigma_w2, sigma_b2, q = 1.5, 0.1, 0.4  # q = q* here
    kernel = q / (2 * math.pi) * (math.sqrt(1 - c**2) + (math.pi - math.acos(c)) * c)
    expected = (sigma_w2 * kernel + sigma_b2) / q
    assert float(correlation_map(Activation("relu"), sigma_w2, sigma_b2, q, c)) == pytest.approx(expected, abs=2e-4)
    step = Activation("relu").d1
    assert float(expect_pair(step, step, q, c)) == pytest.approx((math.pi - math.acos(c)) / (2 * math.pi), abs=2e-3)


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
    marginal = mean_field("relu", 2.0, 0.0)  # He init: every q is a fixed point
    assert marginal.q_star is None and marginal.phase is None and "every q" in marginal.undefined["q_star"]
    exploding = mean_field("relu", 3.0, 0.1)
    assert exploding.chi_1 is None and "diverges" in exploding.undefined["q_star"]
    vanishing = mean_field("tanh", 0.5, 0.0)  # q* = 0: no correlation fixed point
    assert vanishing.q_star == 0.0 and vanishing.chi_1 == pytest.approx(0.5) and vanishing.xi_c is None
    assert "q* = 0" in vanishing.undefined["xi_c"] and vanishing.depth_bound() is None
    for activation in ("relu", "leaky_relu", "linear"):
        value, why = find_critical(activation, 0.05)
        assert value is None and "diverges" in why
    near = mean_field("tanh", 1.76, 0.05)  # critical, just on the ordered side: xi_c is finite, ~4900 layers
    assert near.phase == "critical" and near.xi_c > 1000 and near.within_depth_bound(10_000)
    above = mean_field("tanh", critical_sigma_w2("tanh", 0.05) * 1.0002, 0.05)
    assert above.phase == "critical" and above.undefined["xi_c"].startswith("critical") and above.within_depth_bound(10**6)
    power_law = mean_field("tanh", 1.0, 0.0)  # q* = 0 with chi_1 = 1: no exponential depth scale at all
    assert power_law.xi_q is None and "power law" in power_law.undefined["xi_q"] and "power law" in power_law.undefined["xi_c"]


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
