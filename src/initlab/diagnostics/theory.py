"""Mean-field signal propagation: what the variance of each layer's output should be at init.

For a wide network with zero-mean weights of variance sigma_w^2 and zero biases, the
pre-activation variance obeys q_{l+1} = fan_in * sigma_w^2 * E[phi(sqrt(q_l) z)^2], z ~ N(0, 1)
(Poole et al. 2016; for ReLU this is He et al.'s q_{l+1} = fan_in sigma_w^2 q_l / 2).
"""

import math

import numpy as np
import torch

from initlab.activations import activation_module


def second_moment(activation: str, q: float, points: int = 200, negative_slope: float = 0.01) -> float:
    """E[phi(sqrt(q) z)^2] for z ~ N(0, 1), by Gauss-Hermite quadrature."""
    z, w = np.polynomial.hermite_e.hermegauss(points)
    phi = activation_module(activation, negative_slope)
    with torch.no_grad():
        values = phi(torch.from_numpy(math.sqrt(q) * z)).numpy()
    return float(np.sum(w * values**2) / math.sqrt(2 * math.pi))


def predicted_variances(q_first: float, fan_in_times_var_w: list[float], activation: str) -> list[float]:
    """Var[y_l] for every layer after the first, from the first layer's measured variance."""
    q = [q_first]
    for scale in fan_in_times_var_w:
        q.append(scale * second_moment(activation, q[-1]))
    return q
