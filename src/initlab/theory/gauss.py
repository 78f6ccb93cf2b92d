"""Gaussian expectations of an activation and its derivatives, by quadrature split at the kink.

Mean-field theory needs E[f(u)] for u ~ N(0, q) and E[h(u1, u2)] for a pair with variance q and
correlation c. Every activation here is analytic except at 0 (relu, leaky_relu, selu, elu have a
kink there, their derivatives a jump), so each integral is split where an argument crosses 0 and
each piece is integrated by Gauss-Legendre with the normal density in the integrand, on
|z| <= 10 (the mass beyond is below 1e-22). Plain Gauss-Hermite converges only like 1/n across a
kink (SELU's xi_c moves from 22 to 31 layers between 40 and 240 nodes per axis); split, every
activation converges exponentially: the ReLU arc-cosine kernel comes out to 1e-14 with 48 nodes
a piece, at every correlation up to c = 1, smooth activations to machine precision.
"""

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from initlab.activations import ACTIVATIONS, activation_module

Fn = Callable[[np.ndarray], np.ndarray]


class Activation:
    """phi and its first two derivatives as vectorised float64 functions.

    Derivatives come from torch autograd on the activation's own module, so every activation
    initlab offers is covered without a hand-written list. Activations are elementwise, so
    the gradient of sum(phi(x)) is phi'(x) at every x. At a kink autograd gives a one-sided
    derivative and phi'' = 0; the delta there only enters E[phi'' phi], and every kinked
    activation here (relu, leaky_relu, selu, elu) has phi(0) = 0 at its kink, so it adds nothing.
    """

    def __init__(self, name: str, negative_slope: float = 0.01) -> None:
        self.name = name
        self.homogeneous = ACTIVATIONS[name].homogeneous
        module = activation_module(name, negative_slope)
        d1 = _derivative(module)
        self.phi, self.d1, self.d2 = (_numpy(f) for f in (module, d1, _derivative(d1)))


def _derivative(f: Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    """x -> f'(x) for an elementwise f, by reverse-mode autograd (the gradient of sum(f(x))). The
    result keeps its graph (create_graph) so that it can be differentiated again. Plain
    torch.autograd rather than torch.func.grad: importing torch.func's transforms pulls in
    torch._dynamo, over a second of start-up for every script that reads this module."""
    def derivative(x: Tensor) -> Tensor:
        with torch.enable_grad():
            x = x if x.requires_grad else x.detach().requires_grad_()
            y = f(x)
            if not y.requires_grad:  # f does not depend on x (the derivative of linear): f' = 0
                return torch.zeros_like(x)
            return torch.autograd.grad(y.sum(), x, create_graph=True, materialize_grads=True)[0]

    return derivative


def _numpy(f: Callable[[Tensor], Tensor]) -> Fn:
    """f on a float64 array, on one thread: quadrature arrays are small, and torch's thread pool
    costs far more than it saves there (15 ms against 16 us per call on a busy 2-core machine)."""
    def apply(x: np.ndarray) -> np.ndarray:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with torch.no_grad():
                return f(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))).detach().numpy()
        finally:
            torch.set_num_threads(threads)

    return apply


_REACH = 10.0
Q_TINY = 1e-12  # quantities at q = 0 are the limit q -> 0+
_LEGENDRE = np.polynomial.legendre.leggauss(48)  # nodes per piece


def _piece(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nodes z on [lo, hi] (broadcast; a new last axis) and weights that include the N(0, 1) density."""
    x, w = _LEGENDRE
    half, mid = (hi - lo)[..., None] / 2, (hi + lo)[..., None] / 2
    z = mid + half * x
    return z, half * w * np.exp(-z * z / 2) / math.sqrt(2 * math.pi)


_Z, _W = (a.ravel() for a in _piece(np.array([-_REACH, 0.0]), np.array([0.0, _REACH])))


def expect(f: Fn, q: float | np.ndarray) -> np.ndarray:
    """E[f(sqrt(q) z)], z ~ N(0, 1), for a scalar q or an array of them (one result each)."""
    q = np.asarray(q, dtype=np.float64)
    return f(np.sqrt(q)[..., None] * _Z) @ _W


def derivative_moment(act: Activation, q: float, power: int = 2) -> float:
    """E[phi'(sqrt(q) z)^power], z ~ N(0, 1). A positively homogeneous phi has phi' constant on each
    half-line, so this is the mean of phi'(-1)^power and phi'(1)^power exactly, whatever q (ReLU:
    1/2, and chi_1 = 1 at sigma_w^2 = 2 to the last bit); otherwise quadrature at q, and at q = 0
    the limit q -> 0+ (a kinked phi' has no value at 0)."""
    f = lambda x: act.d1(x) ** power  # noqa: E731
    return float(np.mean(f(np.array([-1.0, 1.0])))) if act.homogeneous else float(expect(f, max(q, Q_TINY)))


def expect_joint(h: Callable[[np.ndarray, np.ndarray], np.ndarray], q: float, delta: float | np.ndarray) -> np.ndarray:
    """E[h(u1, u2)] for (u1, u2) Gaussian with variances q and correlation c = 1 - delta (delta scalar
    or array, in [0, 2]). Taking 1 - c rather than c keeps the digits of correlations near 1: 1 - 1e-14
    is 1e-14 only to 1% once written as c.

    u1 = sqrt(q) (a x + b y), u2 = sqrt(q) (a x - b y) with a = sqrt(1 - delta/2), b = sqrt(delta/2) and
    x, y independent N(0, 1). The outer integral over y is split at 0, the inner one over x where
    u1 or u2 crosses 0 (x = -+ (b/a) y). As c -> 1 the two kinks close in on a sliver
    |x| < (b/a)|y| that keeps a piece of its own, so the error stays at 1e-14 up to c = 1 (split in
    u1 and then u2 given u1, as is usual, the sliver falls between nodes: ReLU's kernel was off by
    5e-9 at c = 1 - 1e-4, as large as what decides SELU's c* near criticality).
    """
    delta = np.clip(np.asarray(delta, dtype=np.float64), 0.0, 2.0)[..., None]
    a, b = np.sqrt(1 - delta / 2), np.sqrt(delta / 2)
    kink = np.minimum(b * np.abs(_Z) / np.maximum(a, 1e-300), _REACH)  # (..., outer): |x| where u1 or u2 is 0
    edge = np.full_like(kink, _REACH)
    x, w = _piece(np.stack([-edge, -kink, kink], -1), np.stack([-kink, kink, edge], -1))  # (..., outer, 3, n)
    x, w = x.reshape(*kink.shape, -1), w.reshape(*kink.shape, -1)
    along, across = math.sqrt(q) * a[..., None] * x, math.sqrt(q) * (b * _Z)[..., None]
    return np.einsum("...ij,i->...", h(along + across, along - across) * w, _W)


def expect_pair(f: Fn, g: Fn, q: float, c: float | np.ndarray) -> np.ndarray:
    """E[f(u1) g(u2)] for (u1, u2) Gaussian with variances q and correlation c (scalar or array)."""
    return expect_joint(lambda u1, u2: f(u1) * g(u2), q, 1.0 - np.asarray(c, dtype=np.float64))
