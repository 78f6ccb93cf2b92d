"""The Jacobian's spectrum at init: the exact computation against brute force, the randomised
estimator against the exact spectrum within its own variance, and the free-probability
prediction (Pennington et al. 2017, 2018) against wide networks."""

import math

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

import initlab
from initlab.config import CNNConfig, MLPConfig, ResNetConfig
from initlab.init.apply import records_as_dicts
from initlab.models import build_model
from initlab.models.layers import Norm, Padding
from initlab.theory import (critical_sigma_w2, default_submap, jacobian_spectrum, mean_field,
                            predict_jacobian_moments, run_jacobian)


def _model(cfg, input_shape: list[int], activation: str = "tanh", **keys) -> nn.Module:
    cfg = OmegaConf.structured(cfg)
    cfg.activation = activation
    for key, value in keys.items():
        cfg[key] = value
    return build_model(cfg, input_shape, 10).double()


def _init(model: nn.Module, scheme: str, seed: int = 0, **params) -> list[dict]:
    return records_as_dicts(initlab.initialize(model, scheme, generator=torch.Generator().manual_seed(seed), **params))


def _inputs(shape: list[int], n: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, *shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def _brute_force(submap, first, x: torch.Tensor) -> list[np.ndarray]:
    """Each example's sv^2 of submap at first(x): the whole Jacobian by torch.autograd.functional,
    then its singular values; independent of jacobian_spectrum's hooks and batching."""
    values = []
    for example in x:
        start = first(example[None]).detach()
        jacobian = torch.autograd.functional.jacobian(submap, start).reshape(submap(start).numel(), start.numel())
        values.append(torch.linalg.svdvals(jacobian).numpy() ** 2)
    return values


def _tanh_mlp(width: int = 24, depth: int = 5, inputs: int = 10) -> nn.Module:
    model = _model(MLPConfig(width=width, depth=depth), [inputs])
    _init(model, "kaiming", gain=math.sqrt(2.5), bias="normal", bias_std=0.2)
    return model


def _cases():
    """(model, inputs, the sub-map written out by hand, the layers before it): MLP, circular CNN, ResNet."""
    mlp = _tanh_mlp()
    yield "mlp", mlp, _inputs([10]), mlp.layers[1:7], mlp.layers[0]
    cnn = _model(CNNConfig(depth=4, channels=4), [2, 5, 5], padding=Padding.circular)
    _init(cnn, "kaiming", gain=math.sqrt(2.5), bias="normal", bias_std=0.2)
    yield "cnn", cnn, _inputs([2, 5, 5]), cnn.layers[1:5], cnn.layers[0]
    resnet = _model(ResNetConfig(depth=8, width=4), [3, 8, 8], norm=Norm.none)
    _init(resnet, "kaiming", gain=math.sqrt(2.5))
    stages = resnet.stages
    submap = lambda h: stages[2][0].branch(stages[1](stages[0](resnet.stem[1](h))))  # noqa: E731
    yield "resnet", resnet, _inputs([3, 8, 8]), submap, resnet.stem[0]


@pytest.mark.parametrize("case", list(_cases()), ids=lambda case: case[0])
def test_the_exact_spectrum_is_the_squared_singular_values_of_the_hidden_jacobian(case):
    """Default sub-map: first weight layer's output -> last hidden weight layer's output (the ResNet's
    from its stem conv to its last block's last conv: 64 x 256). Moments to 1e-10, the max, quantiles by
    their definition (a fraction >= p at or below, <= p below; to 1e-12 of the max), the histogram holding
    every value."""
    name, model, x, submap, first = case
    spectrum = jacobian_spectrum(model, x)
    brute = np.concatenate(_brute_force(submap, first, x))
    assert spectrum["method"] == "exact" and spectrum["values"] == len(brute)
    assert (spectrum["start"], spectrum["end"]) == default_submap(model)
    assert spectrum["sv2_mean"] == pytest.approx(brute.mean(), rel=1e-10)
    assert spectrum["sv2_var"] == pytest.approx(brute.var(), rel=1e-10)
    assert spectrum["sv2_max"] == pytest.approx(brute.max(), rel=1e-10)
    slack = 1e-12 * brute.max()  # eigenvalues of J J^T are exact to ~1e-16 of the largest, not relatively
    for p, value in spectrum["sv2_quantiles"].items():
        assert (brute <= value + slack).mean() >= float(p) and (brute < value - slack).mean() <= float(p), p
    histogram = spectrum["histogram"]
    assert sum(histogram["counts"]) + histogram["below"] == len(brute) and np.all(np.diff(histogram["edges"]) > 0)
    assert histogram["edges"][-1] == pytest.approx(brute.max(), rel=1e-9)


def test_the_spectrum_of_an_isometry_is_all_ones_in_one_lanczos_step():
    """A deep linear network of orthogonal matrices: every sv^2 is 1. Lanczos closes its Krylov space
    after one step (J^T J u = u) and must stop there rather than divide by a zero residual."""
    layers = [nn.Linear(32, 32, bias=False).double() for _ in range(5)]
    for layer in layers:
        nn.init.orthogonal_(layer.weight)
    model = nn.Sequential(*layers)
    x = _inputs([32])
    for method in ("exact", "lanczos"):
        spectrum = jacobian_spectrum(model, x, method=method)
        assert spectrum["sv2_mean"] == pytest.approx(1.0, abs=1e-12) and spectrum["sv2_var"] < 1e-12, method
        assert spectrum["sv2_max"] == pytest.approx(1.0, abs=1e-12) and max(spectrum["histogram"]["counts"]) == \
            pytest.approx(3 * 32), method


def _submaps():
    """(name, model, inputs, start, end, the layers before start, the sub-map): square, tall, wide."""
    mlp = _tanh_mlp(width=96)
    yield "square", mlp, _inputs([10]), None, None, mlp.layers[0], mlp.layers[1:7]  # 96 x 96
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(12, 40), nn.Tanh(), nn.Linear(40, 24), nn.Tanh(), nn.Linear(24, 64), nn.Tanh(),
                        nn.Linear(64, 5)).double()
    yield "tall", net, _inputs([12]), "0", "4", net[0], net[1:5]  # 64 x 40: Lanczos on J^T J
    yield "wide", net, _inputs([12]), "0", "2", net[0], net[1:3]  # 24 x 40: Lanczos on J J^T


@pytest.mark.parametrize("case", list(_submaps()), ids=lambda case: case[0])
def test_lanczos_matches_the_exact_spectrum_within_its_variance(case):
    """P = 8 uniform unit probes u per example, k = min(rows, columns) values, B = 3 examples.
    mean: u^T A u is unbiased with Var = 2 Var_spectrum / (k + 2), so the pooled estimate has
    sd_m^2 = sum_x 2 Var(lambda_x) / (k + 2) / (B^2 P); we allow 5 sd_m. var: the estimate is the
    mean of u^T (A - m)^2 u (sd_v by the same formula with (lambda - m)^2) less (m_hat - m)^2; we allow
    5 sd_v + (5 sd_m)^2. max: the largest Ritz value is at most the largest sv^2 and, after s = 24
    steps, at least (1 - eps) of it with probability >= 1 - 1.648 sqrt(k) exp(-(2s - 1) sqrt(eps))
    (Kuczynski & Wozniakowski 1992): eps for a 1e-6 chance of failing."""
    _, model, x, start, end, first, submap = case
    probes, steps = 8, 24
    estimate = jacobian_spectrum(model, x, start, end, method="lanczos", probes=probes, steps=steps)
    values = _brute_force(submap, first, x)
    pooled = np.concatenate(values)
    m, k, n = pooled.mean(), len(values[0]), len(values) ** 2 * probes
    assert jacobian_spectrum(model, x, start, end, method="exact")["sv2_mean"] == pytest.approx(m, rel=1e-10)
    sd_m = math.sqrt(sum(2 * v.var() / (k + 2) for v in values) / n)
    sd_v = math.sqrt(sum(2 * ((v - m) ** 2).var() / (k + 2) for v in values) / n)
    assert estimate["method"] == "lanczos" and abs(estimate["sv2_mean"] - m) <= 5 * sd_m
    assert abs(estimate["sv2_var"] - pooled.var()) <= 5 * sd_v + (5 * sd_m) ** 2
    eps = (math.log(1.648 * math.sqrt(k) / 1e-6) / (2 * steps - 1)) ** 2
    assert (1 - eps) * pooled.max() <= estimate["sv2_max"] <= pooled.max() * (1 + 1e-9)
    assert sum(estimate["histogram"]["counts"]) + estimate["histogram"]["below"] == pytest.approx(len(pooled))


@pytest.mark.parametrize("activation, sigma_w2, depth", [("relu", 1.7, 6), ("linear", 1.3, 5), ("erf", 2.0, 4)])
def test_the_predicted_moments_reduce_to_known_closed_forms(activation, sigma_w2, depth):
    """ReLU: D^2 is 0 or 1 with p = 1/2, so mu_2/mu_1^2 - 1 = 1 and (Gaussian) m_2 = m_1^2 (L + p)/p;
    linear: products of L Wishart matrices, m_2/m_1^2 = 1 + L (Fuss-Catalan), orthogonal exactly 0;
    erf at q*: mu_1 = (4/pi)/sqrt(1 + 4q), mu_2 = (16/pi^2)/sqrt(1 + 8q), m_1 = chi_1^L."""
    q = mean_field(activation, sigma_w2, 0.1).q_star if activation == "erf" else 1.0
    gaussian, orthogonal = (predict_jacobian_moments(activation, sigma_w2, 0.1, depth, weights, q_start=q)
                            for weights in ("gaussian", "orthogonal"))
    if activation == "relu":
        assert gaussian.sv2_mean == pytest.approx((sigma_w2 / 2) ** depth, rel=1e-14)
        assert gaussian.sv2_var + gaussian.sv2_mean**2 == pytest.approx(gaussian.sv2_mean**2 * (depth + 0.5) / 0.5,
                                                                         rel=1e-14)
        assert orthogonal.sv2_var == pytest.approx(orthogonal.sv2_mean**2 * depth, rel=1e-14)
    elif activation == "linear":
        assert gaussian.sv2_var == pytest.approx(sigma_w2 ** (2 * depth) * depth, rel=1e-14)
        assert orthogonal.sv2_var == 0.0
    else:
        mu_1, mu_2 = 4 / math.pi / math.sqrt(1 + 4 * q), 16 / math.pi**2 / math.sqrt(1 + 8 * q)
        assert gaussian.sv2_mean == pytest.approx(mean_field("erf", sigma_w2, 0.1).chi_1 ** depth, rel=1e-12)
        assert orthogonal.sv2_var == pytest.approx(gaussian.sv2_mean**2 * depth * (mu_2 / mu_1**2 - 1), rel=1e-10)
        assert gaussian.sv2_var - orthogonal.sv2_var == pytest.approx(gaussian.sv2_mean**2 * depth, rel=1e-10)


TANH_B2 = 1e-3  # tanh at criticality with a small q* = 0.107: phi' ~ 1, the setting of dynamical isometry
WIDTH = 512


def _wide_mlp(activation: str, weights: str, depth: int, sigma_w2: float, sigma_b2: float, q_1: float):
    """initlab's MLP of width 512, hidden weights of variance sigma_w^2 / N (orthogonal or Gaussian), and an
    input layer of d features chosen so that its output's variance sigma_w^2 d / N + sigma_b^2 is q_1
    (for both schemes: a 512 x d orthogonal matrix scaled by the gain keeps norms times the gain)."""
    features = round(WIDTH * (q_1 - sigma_b2) / sigma_w2)
    model = _model(MLPConfig(width=WIDTH, depth=depth), [features], activation)
    bias = {"bias": "normal", "bias_std": math.sqrt(sigma_b2)} if sigma_b2 else {}
    if weights == "orthogonal":
        records = _init(model, "orthogonal", gain=math.sqrt(sigma_w2), **bias)
    else:
        records = _init(model, "normal", std=math.sqrt(sigma_w2 / WIDTH), **bias)
    x = _inputs([features], n=4)
    return model, records, x / x.pow(2).mean(1, keepdim=True).sqrt()  # each with mean square 1: q_1 for all four


@pytest.mark.parametrize("activation, weights, depth", [
    ("tanh", "orthogonal", 4), ("tanh", "orthogonal", 8), ("tanh", "gaussian", 4), ("tanh", "gaussian", 8),
    ("relu", "orthogonal", 6), ("relu", "gaussian", 6)])
def test_free_probability_predicts_the_spectrum_of_a_wide_mlp(activation, weights, depth):
    """tanh at its critical point (chi_1 = 1, q_1 = q*): orthogonal weights concentrate the spectrum (variance
    depth - 2 times mu_2/mu_1^2 - 1 = 0.044), Gaussian ones do not (that plus 1 per layer); ReLU at He init
    (chi_1 = 1): variance 1 per layer with orthogonal weights, 2 with Gaussian ones: no isometry either way.
    Finite width N: one network's moments sit O(sqrt(v / N)) from the wide limit, v = sv2_var / sv2_mean^2
    (for the mean: the N independent phi'(y) of each D_l give exactly that order); we allow 4 sqrt(v / N)
    (over 5 other seeds the largest error was 2.4 of it)."""
    sigma_w2, sigma_b2 = (critical_sigma_w2("tanh", TANH_B2), TANH_B2) if activation == "tanh" else (2.0, 0.0)
    q_1 = mean_field("tanh", sigma_w2, sigma_b2).q_star if activation == "tanh" else 1.0
    model, records, x = _wide_mlp(activation, weights, depth, sigma_w2, sigma_b2, q_1)
    run = run_jacobian(model, x, "mlp", activation, 0.01, records)
    measured = jacobian_spectrum(model, x, method="exact")
    assert run["measured"] and run["predicted"] and run["weights"] == weights and run["factors"] == depth - 2
    assert run["q_start"] == pytest.approx(q_1, rel=0.01)
    v = run["predicted_sv2_var"] / run["predicted_sv2_mean"] ** 2
    tolerance = 4 * math.sqrt(v / WIDTH)
    assert measured["sv2_mean"] == pytest.approx(run["predicted_sv2_mean"], rel=tolerance)
    assert measured["sv2_var"] == pytest.approx(run["predicted_sv2_var"], rel=tolerance)
    isometric = activation == "tanh" and weights == "orthogonal"
    assert (v < 0.05 * (depth - 2)) if isometric else (v > 0.9 * (depth - 2))


def _critical_cnn(scheme: str) -> dict:
    """initlab's CNN, circular padding, 128 channels on 4 x 4 images, 6 weight layers, tanh at criticality;
    11 input channels put q_1 = sigma_w^2 11/128 + sigma_b^2 at q* for both schemes."""
    sigma_w2 = critical_sigma_w2("tanh", TANH_B2)
    model = _model(CNNConfig(depth=6, channels=128), [11, 4, 4], padding=Padding.circular)
    bias = {"bias": "normal", "bias_std": math.sqrt(TANH_B2)}
    params = {"gain": math.sqrt(sigma_w2)} if scheme == "delta_orthogonal" else {"std": math.sqrt(sigma_w2 / (128 * 9))}
    records = _init(model, scheme, **params, **bias)
    x = _inputs([11, 4, 4], n=4)
    x = x / x.pow(2).mean(1, keepdim=True).sqrt()  # mean square 1 at every pixel: q_1 there, not 11 values' spread
    return run_jacobian(model, x, "cnn", "tanh", 0.01, records, padding="circular")


def test_a_delta_orthogonal_cnn_at_criticality_is_predicted_isometric_and_a_gaussian_one_is_not():
    """Xiao et al. 2018: a delta-orthogonal kernel makes each circular conv an orthogonal map of the
    C H W values, so J's spectrum is an orthogonal MLP's; i.i.d. kernels give Marchenko-Pastur factors,
    as a Gaussian MLP's. Measured by Lanczos on the 2048 x 2048 J. Finite size: the C = 128 channels
    (the pixels share their weights), so 4 sqrt(v / C) as for MLPs of width C."""
    orthogonal, gaussian = _critical_cnn("delta_orthogonal"), _critical_cnn("normal")
    for run, weights in ((orthogonal, "orthogonal"), (gaussian, "gaussian")):
        assert run["method"] == "lanczos" and run["shape"] == [2048, 2048] and run["weights"] == weights
        v = run["predicted_sv2_var"] / run["predicted_sv2_mean"] ** 2
        assert run["sv2_mean"] == pytest.approx(run["predicted_sv2_mean"], rel=4 * math.sqrt(v / 128))
        assert run["sv2_var"] == pytest.approx(run["predicted_sv2_var"], rel=4 * math.sqrt(v / 128))
    normalised = lambda run: run["sv2_var"] / run["sv2_mean"] ** 2  # noqa: E731
    assert normalised(orthogonal) < 0.05 * 4 and normalised(gaussian) > 0.9 * 4  # 4 (D, W) factors


@pytest.mark.parametrize("build, scheme, params, measured, why", [
    (lambda: _model(ResNetConfig(depth=8, width=4), [3, 8, 8]), "kaiming", {}, "BatchNorm2d in training mode",
     "residual connections"),
    (lambda: _model(MLPConfig(width=8, depth=2), [3, 8, 8]), "kaiming", {}, "2 weight layers", "2 weight layers"),
    (lambda: _model(CNNConfig(depth=4, channels=4), [3, 8, 8]), "kaiming", {}, None, "with zeros padding"),
    (lambda: _model(CNNConfig(depth=4, channels=4), [3, 8, 8], padding=Padding.circular), "orthogonal", {}, None,
     "does not make the convolution an orthogonal map"),
    (lambda: _model(MLPConfig(width=64, depth=4), [3, 8, 8]), "eye", {}, None, "is not zero-mean"),
])
def test_run_jacobian_says_why_where_it_cannot_measure_or_predict(build, scheme, params, measured, why):
    model = build()
    records = _init(model, scheme, **params)
    name = {"MLP": "mlp", "CNN": "cnn", "ResNet": "resnet"}[type(model).__name__]
    run = run_jacobian(model, _inputs([3, 8, 8]), name, "tanh", 0.01, records,
                       padding=model.layers[0].padding_mode if name == "cnn" else None)
    assert run["measured"] is (measured is None) and (measured is None or measured in run["measure_reason"])
    assert run["predicted"] is (why is None) and (why is None or why in run["reason"])
