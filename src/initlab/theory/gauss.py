"""Gaussian expectations of an activation and its derivatives, by quadrature split at the kink.

Mean-field theory needs E[f(u)] for u ~ N(0, q) and E[f(u1) g(u2)] for a pair with variance q and
correlation c. Every activation here is analytic except at 0 (relu, leaky_relu, selu, elu have a
kink there, their derivatives a jump), so each integral is split where an argument crosses 0 and
each piece is integrated by Gauss-Legendre with the normal density in the integrand, on
|z| <= 10 (the mass beyond is below 1e-22). Plain Gauss-Hermite converges only like 1/n across a
kink (SELU's xi_c moves from 22 to 31 layers between 40 and 240 nodes per axis); split, every
activation converges exponentially: the ReLU arc-cosine kernel comes out to 1e-11 with 48 nodes
a piece, smooth activations to machine precision.
"""

import math
from collections.abc import Callable

import numpy as np
import torch
from torch.func import grad

from initlab.activations import activation_module

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
        module = activation_module(name, negative_slope)
        d1 = grad(lambda x: module(x).sum())
        d2 = grad(lambda x: d1(x).sum())
        self.phi, self.d1, self.d2 = (_numpy(f) for f in (module, d1, d2))


def _numpy(f: Callable[[torch.Tensor], torch.Tensor]) -> Fn:
    """f on a float64 array, on one thread: quadrature arrays are small, and torch's thread pool
    costs far more than it saves there (15 ms against 16 us per call on a busy 2-core machine)."""
    def apply(x: np.ndarray) -> np.ndarray:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with torch.no_grad():  # torch.func.grad ignores an outer no_grad, as documented
                return f(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))).detach().numpy()
        finally:
            torch.set_num_threads(threads)

    return apply


_REACH = 10.0
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


def expect_pair(f: Fn, g: Fn, q: float, c: float | np.ndarray) -> np.ndarray:
    """E[f(u1) g(u2)] for (u1, u2) Gaussian with variances q and correlation c (scalar or array).

    u1 = sqrt(q) z1, u2 = sqrt(q) (c z1 + s z2), s = sqrt(1 - c^2): the outer integral over z1 is
    split at 0, the inner one over z2 at -c z1 / s, where u2 crosses 0.
    """
    c = np.clip(np.asarray(c, dtype=np.float64), -1.0, 1.0)[..., None]
    s = np.sqrt(1.0 - c**2)
    kink = np.clip(-c * _Z / np.maximum(s, 1e-300), -_REACH, _REACH)  # (..., outer)
    edge = np.full_like(kink, _REACH)
    z2, w2 = _piece(np.stack([-edge, kink], -1), np.stack([kink, edge], -1))  # (..., outer, 2, n)
    z2, w2 = z2.reshape(*kink.shape, -1), w2.reshape(*kink.shape, -1)
    u1 = math.sqrt(q) * _Z[:, None]
    u2 = math.sqrt(q) * (c[..., None] * _Z[:, None] + s[..., None] * z2)
    return np.einsum("...ij,i->...", f(u1) * g(u2) * w2, _W)
