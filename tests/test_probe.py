"""initlab.Probe's statistics equal their definitions, computed by hand, on a user's model."""

import pytest
import torch
from torch import nn

import initlab


def test_probe_statistics_equal_their_definitions_with_an_in_place_relu():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(inplace=True), nn.Linear(8, 3))
    x = torch.randn(16, 6)
    w0, b0, w1, b1 = (p.detach().clone().requires_grad_() for p in model.parameters())
    y0 = x @ w0.T + b0
    y1 = y0.relu() @ w1.T + b1
    g0, g1, *grads = torch.autograd.grad(y1.square().mean(), [y0, y1, w0, b0, w1, b1])

    probe, optimizer = initlab.Probe(model), torch.optim.SGD(model.parameters(), lr=0.1)
    with probe.capture():
        model(x).square().mean().backward()
    with probe.update():
        optimizer.step()
    stats = probe.floats()

    expected = {
        "act_mean/0": y0.mean(), "act_var/0": y0.var(correction=0), "act_var/2": y1.var(correction=0),
        "grad_var/0": g0.var(correction=0), "grad_var/2": g1.var(correction=0),
        "dead_frac/0": (y0 <= 0).all(0).float().mean(),
        "post_mean/0": y0.relu().mean(), "post_std/0": y0.relu().std(correction=0),
        "post_p98/0": y0.relu().flatten().kthvalue(round(0.98 * y0.numel())).values,
        "grad_norm/0": torch.cat([grads[0].flatten(), grads[1]]).norm(),
        "weight_norm/2": torch.cat([w1.flatten(), b1]).norm(),
        "update_ratio/2": 0.1 * torch.cat([grads[2].flatten(), grads[3]]).norm() / torch.cat([w1.flatten(), b1]).norm(),
    }
    for key, value in expected.items():
        assert stats[key] == pytest.approx(value.item(), rel=1e-5), key
    assert all(isinstance(v, torch.Tensor) and v.dim() == 0 for v in probe.stats.values())


def test_without_a_backward_there_is_no_gradient_statistic():
    model = nn.Sequential(nn.Linear(4, 4))
    probe = initlab.Probe(model)
    with torch.no_grad(), probe.capture():
        model(torch.randn(8, 4))
    assert set(probe.stats) == {"act_mean/0", "act_var/0", "weight_norm/0"}


def test_post_nonlinearity_percentiles_of_a_large_layer_come_from_a_sample_within_its_error():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 512), nn.Tanh(), nn.Linear(512, 2))
    x = torch.randn(256, 32)  # 131,072 entries after the tanh: percentiles from 2**14 of them
    probe = initlab.Probe(model)
    with probe.capture():
        model(x)
    values = torch.tanh(model[0](x)).detach().flatten()
    stats = probe.floats()
    # a 2nd percentile from n = 2**14 draws: standard error sqrt(0.02 * 0.98 / n) = 0.0011 in probability,
    # 0.2 percentile points at 5 standard errors; compared on the exact distribution's own scale
    for key, q in (("post_p02/0", 0.02), ("post_p98/0", 0.98)):
        within = (values <= stats[key]).float().mean().item()
        assert abs(within - q) < 0.0055, (key, within)
