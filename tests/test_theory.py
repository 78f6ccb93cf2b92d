"""Mean-field predictions against their closed forms and a simulated wide network."""

import math

import pytest
import torch

from initlab.diagnostics.theory import predicted_variances, second_moment


@pytest.mark.parametrize("q", [0.1, 1.0, 7.0])
def test_second_moment_closed_forms(q):
    assert second_moment("relu", q) == pytest.approx(q / 2, rel=1e-9)
    assert second_moment("linear", q) == pytest.approx(q, rel=1e-9)
    assert second_moment("leaky_relu", q, negative_slope=0.2) == pytest.approx(q * (1 + 0.04) / 2, rel=1e-9)


@pytest.mark.parametrize("activation, sigma_w", [("tanh", 1.0), ("tanh", 5 / 3), ("sigmoid", 1.0), ("relu", 1.2)])
def test_predicted_variances_match_a_simulated_wide_network(activation, sigma_w):
    width, depth = 2000, 6
    g = torch.Generator().manual_seed(0)
    phi = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu}[activation]
    y = torch.randn(512, width, generator=g, dtype=torch.float64)
    measured = [y.var().item()]
    for _ in range(depth - 1):
        w = torch.randn(width, width, generator=g, dtype=torch.float64) * sigma_w / math.sqrt(width)
        y = phi(y) @ w.T
        measured.append(y.var().item())
    predicted = predicted_variances(measured[0], [sigma_w**2] * (depth - 1), activation)
    # sigmoid's shared per-unit offset leaves ~width effective samples: allow 10%
    assert measured == pytest.approx(predicted, rel=0.1)
