"""The Jacobian's singular values at init: measured on a model, and predicted by free probability.

Which Jacobian. The theory (Pennington, Schoenholz & Ganguli 2017, "Resurrecting the sigmoid in
deep learning through dynamical isometry"; 2018, "The emergence of spectral universality in deep
networks") describes J = D_L W_L ... D_1 W_1, D_l = diag phi'(y_l), the square hidden-to-hidden
part of a wide network. A classifier's full input-output Jacobian (10 x 784) has 10 singular
values and is not that. Measured here by default: the map from the first weight layer's output
y_1 to the last hidden weight layer's output y_(L-1) (weight layers are Linear and Conv; the
output layer is not hidden). For initlab's MLP of width N it is N x N, J = W_(L-1) D_(L-2) ...
W_2 D_1: depth - 2 weight matrices and as many D's, at the pre-activation variances q_1 ... q_(L-2).
For its CNN it is the same between the first and last hidden conv feature maps (C H W values
each; Xiao et al. 2018), for its ResNet from the stem conv to the last block's last conv (every
residual addition but the last inside). Any other sub-map of any nn.Module: name its `start` and
`end` modules; J is d(end's output) / d(start's output), one per example.

How. Exactly where cheap: J row by row (a backward pass per row, batched), then the eigenvalues
of J J^T. Otherwise stochastic Lanczos quadrature (Ubaru, Chen & Saad 2017): Lanczos on J^T J (or
J J^T, the smaller) from random unit vectors, matrix-vector products by backward passes (J^T w)
and double-backward ones (J v). Its Gauss quadrature is exact for polynomials of degree
< 2 * steps, so the mean and variance it gives are Hutchinson estimates u^T A u, u^T A^2 u on a
uniform unit vector u: unbiased, with Var[u^T A u] = 2 Var_spectrum / (k + 2) (k values), zero for
an isometry. Its largest Ritz value bounds the largest sv^2 from below, within a fraction eps with
probability at least 1 - 1.648 sqrt(k) exp(-(2 steps - 1) sqrt(eps)) (Kuczynski & Wozniakowski
1992, Thm 4.2a); quantiles and the histogram come from the quadrature's nodes and weights, a
coarse picture of the density.
"""

import dataclasses
import functools
import math

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from initlab.theory.gauss import Activation, derivative_moment
from initlab.theory.mean_field import variance_map
from initlab.theory.network import run_theory

EXACT_MAX = 256  # J is built exactly up to this many rows (outputs of `end` per example)
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
_MIN_DECADES = 1e-3  # the histogram spans at least this much of log10(sv^2) (0.23%)
# init schemes whose weight matrices are orthogonal (W^T W = sigma_w^2 I), as init.json names them: every
# other zero-mean scheme draws i.i.d. entries, Gaussian or not (Marchenko-Pastur is universal)
ORTHOGONAL_SCHEMES = frozenset({"orthogonal", "delta_orthogonal", "lsuv"})
_WEIGHT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_S1 = {"gaussian": -1.0, "orthogonal": 0.0}  # S_{W^T W}(z) = sigma_w^-2 (1 + s_1 z + ...)


def default_submap(model: nn.Module) -> tuple[str, str]:
    """(start, end): the first weight layer and the last one before the output layer."""
    weights = [name for name, m in model.named_modules() if isinstance(m, _WEIGHT_LAYERS)]
    if len(weights) < 3:
        raise ValueError(f"{len(weights)} weight layers: no hidden-to-hidden map (needs 3: the first, a hidden "
                         "one and the output layer)")
    return weights[0], weights[-2]


def jacobian_spectrum(model: nn.Module, x: Tensor, start: str | None = None, end: str | None = None, *,
                      method: str = "auto", probes: int = 2, steps: int = 16, bins: int = 32,
                      generator: torch.Generator | None = None) -> dict:
    """Squared singular values of J = d(end's output)/d(start's output) at each example of x, pooled:
    sv2_mean, sv2_var (the population variance), sv2_max, sv2_quantiles and a histogram on log-spaced
    edges (values below its first edge, zero to 1e-12 of the largest, are counted in `below`).

    method: "exact", "lanczos" (`probes` random vectors per example, `steps` Lanczos steps each,
    drawn from `generator`, default seed 0) or "auto": exact where J has at most EXACT_MAX rows.
    The model runs as it is (its mode and dtype); start and end default to default_submap(model).
    ValueError where J is not one example's map: BatchNorm in training mode between them (it
    normalises over the batch), a module that does not run once per forward pass, end before start.
    """
    if method not in ("auto", "exact", "lanczos"):
        raise ValueError(f"method={method!r}: one of auto, exact, lanczos")
    if probes < 1 or steps < 2 or bins < 1:
        raise ValueError(f"probes={probes}, steps={steps}, bins={bins}: at least 1, 2 (the variance is of degree 2), 1")
    if start is None or end is None:
        first, last = default_submap(model)
        start, end = start or first, end or last
    modules = dict(model.named_modules())
    for name in (start, end):
        if name not in modules:
            raise ValueError(f"no module {name!r} in the model")
    with torch.no_grad():
        first, last = _run_to(model, x[:1], modules, start, end)
    rows, columns = last[0].numel(), first[0].numel()
    exact = method == "exact" or (method == "auto" and rows <= EXACT_MAX)
    with torch.enable_grad():
        if exact:
            values, weights, extra = _exact(model, x, modules, start, end, rows), None, {}
        else:
            values, weights = _lanczos(model, x, modules, start, end, probes, steps, generator)
            extra = {"probes": probes, "steps": steps}
    count = len(x) * min(rows, columns)
    return {"start": start, "end": end, "shape": [rows, columns], "inputs": len(x), "values": count,
            "method": "exact" if exact else "lanczos"} | extra | _summary(values, weights, count, bins)


class _Reached(Exception):
    """Raised at `end` to stop the forward pass there: nothing after it is needed."""

    def __init__(self, output: Tensor) -> None:
        super().__init__()
        self.output = output


def _run_to(model: nn.Module, x: Tensor, modules: dict[str, nn.Module], start: str, end: str) -> tuple[Tensor, Tensor]:
    """(start's output as a leaf that requires grad where grad is on, end's output) on x."""
    held: list[Tensor] = []

    def at_start(module: nn.Module, args: tuple, output: Tensor) -> Tensor:
        if held:
            raise ValueError(f"{start} runs more than once per forward pass: its output is not one map's input")
        held.append(output.detach().requires_grad_(torch.is_grad_enabled()))
        return held[0].clone()  # downstream in-place ops may not touch a leaf

    def at_end(module: nn.Module, args: tuple, output: Tensor) -> None:
        if not held:
            raise ValueError(f"{end} runs before {start}: pass start/end in the order the forward pass runs them")
        raise _Reached(output)

    def coupling(module: nn.Module, args: tuple) -> None:
        if held:
            raise ValueError(f"{type(module).__name__} in training mode between {start} and {end} normalises over "
                             "the batch, so one example's Jacobian depends on the others (model.eval() measures "
                             "the network with its running statistics)")

    hooks = [modules[start].register_forward_hook(at_start), modules[end].register_forward_hook(at_end)]
    coupled = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.training]
    hooks += [m.register_forward_pre_hook(coupling) for m in coupled]
    try:
        model(x)
    except _Reached as reached:
        return held[0], reached.output
    finally:
        for hook in hooks:
            hook.remove()
    raise ValueError(f"the forward pass never reached {end}")


class _Submap:
    """J of one forward pass (to `end`) on a batch, by autograd on its retained graph: J^T w by a
    backward pass; J v by a double-backward one, the gradient of J^T u with respect to u. Not
    torch.autograd.forward_ad: its first use loads decompositions through the deprecated
    torch.jit.script (a FutureWarning, and time)."""

    def __init__(self, model: nn.Module, x: Tensor, modules: dict[str, nn.Module], start: str, end: str) -> None:
        self.input, self.output = _run_to(model, x, modules, start, end)
        self._dual = torch.zeros_like(self.output, requires_grad=True)
        self._transposed: Tensor | None = None  # J^T u, built on the first jvp

    def vjp(self, w: Tensor) -> Tensor:
        """J^T w, per example: w [batch, rows] -> [batch, columns]."""
        grad = torch.autograd.grad(self.output, self.input, w.view_as(self.output), retain_graph=True)[0]
        return grad.flatten(1)

    def jvp(self, v: Tensor) -> Tensor:
        """J v, per example: v [batch, columns] -> [batch, rows]."""
        if self._transposed is None:
            self._transposed = torch.autograd.grad(self.output, self.input, self._dual, create_graph=True)[0]
        grad = torch.autograd.grad(self._transposed, self._dual, v.view_as(self.input), retain_graph=True,
                                   materialize_grads=True, allow_unused=True)[0]
        return grad.flatten(1)


def _exact(model: nn.Module, x: Tensor, modules: dict[str, nn.Module], start: str, end: str, rows: int) -> np.ndarray:
    """All sv^2, [examples, min(rows, columns)]: J's rows by one batched backward pass over x
    repeated `rows` times, then the eigenvalues of the smaller of J J^T and J^T J, in float64."""
    submap = _Submap(model, x.repeat_interleave(rows, 0), modules, start, end)
    eye = torch.eye(rows, dtype=submap.output.dtype, device=x.device).repeat(len(x), 1)
    jacobian = submap.vjp(eye).unflatten(0, (len(x), rows)).double()
    gram = jacobian @ jacobian.mT if rows <= jacobian.shape[-1] else jacobian.mT @ jacobian
    return torch.linalg.eigvalsh(gram).clamp_(min=0).cpu().numpy()


def _lanczos(model: nn.Module, x: Tensor, modules: dict[str, nn.Module], start: str, end: str, probes: int,
             steps: int, generator: torch.Generator | None) -> tuple[np.ndarray, np.ndarray]:
    """Gauss quadrature nodes and weights, [examples * probes, steps] each: `steps` Lanczos steps on
    A = J^T J (or J J^T, the smaller) from uniform random unit vectors, fully reorthogonalised, in
    float64. A probe whose Krylov space closes early (an isometry: one step) keeps zero-weight nodes."""
    submap = _Submap(model, x.repeat_interleave(probes, 0), modules, start, end)
    rows, columns = submap.output[0].numel(), submap.input[0].numel()
    dtype = submap.output.dtype
    if columns <= rows:
        apply = lambda v: submap.vjp(submap.jvp(v.to(dtype))).double()  # noqa: E731
    else:
        apply = lambda v: submap.jvp(submap.vjp(v.to(dtype))).double()  # noqa: E731
    generator = generator or torch.Generator(device=x.device).manual_seed(0)
    v = torch.randn(len(submap.input), min(rows, columns), generator=generator, device=x.device, dtype=torch.float64)
    basis = [v / v.norm(dim=1, keepdim=True)]
    alpha, beta = [], []
    for step in range(steps):
        w = apply(basis[-1])
        alpha.append((w * basis[-1]).sum(1))
        if step == steps - 1:
            break
        stack = torch.stack(basis, 1)  # [probes, j, k]
        for _ in range(2):  # full reorthogonalisation, twice ("twice is enough")
            w = w - torch.einsum("pj,pjk->pk", torch.einsum("pjk,pk->pj", stack, w), stack)
        norm = w.norm(dim=1)
        closed = norm <= 1e-10 * alpha[-1].abs().clamp(min=1e-300)  # the Krylov space is invariant: stop there
        beta.append(torch.where(closed, 0.0, norm))
        basis.append(torch.where(closed[:, None], 0.0, w / norm.clamp(min=1e-300)[:, None]))
    tridiagonal = torch.diag_embed(torch.stack(alpha, 1))
    if beta:
        off = torch.stack(beta, 1)
        tridiagonal = tridiagonal + torch.diag_embed(off, 1) + torch.diag_embed(off, -1)
    nodes, vectors = torch.linalg.eigh(tridiagonal)
    return nodes.clamp(min=0).cpu().numpy(), (vectors[:, 0, :] ** 2).cpu().numpy()


def _summary(values: np.ndarray, weights: np.ndarray | None, count: int, bins: int) -> dict:
    """Moments, max, quantiles and a log-spaced histogram of sv^2 `values`: each value once
    (exact), or quadrature nodes each standing for weight / probes of its example's values
    (lanczos; the histogram's counts are then expected counts out of `count`)."""
    values = values.ravel()
    weights = np.full(values.shape, 1.0 / len(values)) if weights is None else weights.ravel() / len(weights)
    mean = float(weights @ values)
    var = float(weights @ (values - mean) ** 2)
    top = float(values.max())
    order = np.argsort(values)
    ranked, cdf = values[order], np.cumsum(weights[order])
    quantiles = {f"{p:g}": float(ranked[min(np.searchsorted(cdf, p * cdf[-1]), len(ranked) - 1)]) for p in QUANTILES}
    seen = values > max(top * 1e-12, np.finfo(float).tiny)  # the rest is zero to rounding
    logs = np.log10(values[seen])
    low, high = (logs.min(), logs.max()) if seen.any() else (0.0, 0.0)
    if high - low < _MIN_DECADES:  # e.g. an isometry, 1 to rounding: a window around it, centred on a bin
        low = (low + high) / 2 - _MIN_DECADES * (bins // 2 + 0.5) / bins
        high = low + _MIN_DECADES
    counts, edges = np.histogram(logs, bins=bins, range=(low, high), weights=weights[seen] * count)
    return {"sv2_mean": mean, "sv2_var": var, "sv2_max": top, "sv2_quantiles": quantiles,
            "histogram": {"edges": (10.0 ** edges).tolist(), "counts": counts.tolist(),
                          "below": float(weights[~seen].sum() * count)}}


@dataclasses.dataclass(frozen=True)
class JacobianMoments:
    """The first two moments of J J^T's spectrum in the wide limit: sv2_mean = E[sv^2], sv2_var = Var[sv^2]."""

    weights: str  # "gaussian" (i.i.d. entries) or "orthogonal"
    depth: int  # (D, W) factors
    sv2_mean: float
    sv2_var: float


@functools.lru_cache(maxsize=4096)
def predict_jacobian_moments(activation: str, sigma_w2: float, sigma_b2: float, depth: int,
                             weights: str = "gaussian", negative_slope: float = 0.01,
                             q_start: float = 1.0) -> JacobianMoments:
    """Free probability for J = W_depth D_(depth) ... W_1 D_1 (any order of the factors gives the
    same spectrum of J J^T), D_l = diag phi'(y_l), y_l ~ N(0, q_l), q_1 = q_start and q_(l+1) the
    variance map of q_l; W_l of variance sigma_w^2 / N, i.i.d. ("gaussian") or orthogonal.

    S-transforms of free matrices multiply (Pennington et al. 2017, eq. 12): S_(JJ^T) =
    prod_l S_(W_l^T W_l) S_(D_l^2). A matrix with moments m_1, m_2 has S(z) = (1/m_1)(1 - z (m_2/m_1^2 - 1))
    + O(z^2), so the product has m_1 = prod of m_1's and m_2/m_1^2 - 1 = sum of each factor's:
    D_l^2 gives mu_1 = E[phi'(y_l)^2], mu_2 = E[phi'(y_l)^4]; W^T W gives sigma_w^2 and 1 (Wishart:
    S = sigma_w^-2 / (1 + z), s_1 = -1) or 0 (orthogonal: S = sigma_w^-2, s_1 = 0). Hence

        sv2_mean = prod_l sigma_w^2 mu_1(q_l)          (= chi_1^depth at q_l = q*)
        sv2_var  = sv2_mean^2 sum_l (mu_2(q_l) / mu_1(q_l)^2 - 1 - s_1)

    at q_l = q*: the paper's m_1 = (sigma_w^2 mu_1)^L and, at chi = 1, sigma^2_(JJ^T) = L (mu_2/mu_1^2 - 1 - s_1);
    for ReLU with Gaussian weights m_2 = m_1^2 (L + p) / p, p = 1/2. ReLU has mu_2 / mu_1^2 = 2
    whatever q, so its variance grows like depth for either weights: no isometry. ValueError where
    the variance map overflows float64 within `depth` layers.
    """
    if weights not in _S1:
        raise ValueError(f"weights={weights!r}: gaussian or orthogonal")
    act = Activation(activation, negative_slope)
    q, mean, spread = q_start, 1.0, 0.0
    for layer in range(depth):
        mu_1, mu_2 = derivative_moment(act, q, 2), derivative_moment(act, q, 4)
        if not (mu_1 > 0 and math.isfinite(mu_2)):
            raise ValueError(f"the pre-activation variance reaches {q:.3g} by layer {layer + 1}, beyond float64")
        mean *= sigma_w2 * mu_1
        spread += mu_2 / mu_1**2 - 1.0 - _S1[weights]
        q = float(variance_map(act, sigma_w2, sigma_b2, q))
    return JacobianMoments(weights, depth, mean, mean**2 * spread)


def run_jacobian(model: nn.Module, x: Tensor, model_name: str, activation: str, negative_slope: float,
                 init_records: list[dict], *, padding: str | None = None) -> dict:
    """jacobian.json for a run: the measured spectrum of the default sub-map on a few inputs x, and
    beside it the free-probability prediction where the mean-field theory describes the network
    (run_theory's conditions; `padding` as run_theory takes it), with the weights' distribution
    read off the hidden layers' init scheme. Never raises for a model it cannot handle: the dict
    says why ("measured": false, "measure_reason"; "predicted": false, "reason")."""
    try:
        measured = {"measured": True} | jacobian_spectrum(model, x)
    except (ValueError, RuntimeError, NotImplementedError) as err:  # a model this cannot differentiate as asked
        measured = {"measured": False, "measure_reason": f"{type(err).__name__}: {err}"}
    return measured | _prediction(model_name, activation, negative_slope, init_records, padding)


def _prediction(model_name: str, activation: str, negative_slope: float, records: list[dict],
                padding: str | None) -> dict:
    """predicted_sv2_mean and predicted_sv2_var for the default sub-map, or why there are none."""
    theory = run_theory(model_name, activation, negative_slope, records, padding=padding)
    if not theory["predicted"]:
        return {"predicted": False, "reason": theory["reason"]}
    scheme = next(r["scheme"] for r in records if r["layer"] in theory["layers"] and r["param"] == "weight")
    if model_name != "mlp" and scheme in ("orthogonal", "lsuv"):
        return {"predicted": False, "reason": (
            f"init={scheme} makes each conv kernel, flattened to [out, in k k], orthogonal, which does not make "
            "the convolution an orthogonal map (Xiao et al. 2018; delta_orthogonal does), nor i.i.d.")}
    weights = "orthogonal" if scheme in ORTHOGONAL_SCHEMES else "gaussian"
    try:
        moments = predict_jacobian_moments(activation, theory["sigma_w2"], theory["sigma_b2"], theory["depth"] - 2,
                                           weights, negative_slope, theory["q_start"])
    except ValueError as err:
        return {"predicted": False, "reason": str(err)}
    return {"predicted": True, "weights": weights, "factors": moments.depth, "sigma_w2": theory["sigma_w2"],
            "sigma_b2": theory["sigma_b2"], "q_start": theory["q_start"],
            "predicted_sv2_mean": moments.sv2_mean, "predicted_sv2_var": moments.sv2_var}
