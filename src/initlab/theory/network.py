"""Mean-field predictions for one concrete network: layer by layer, and a run's phase from init.json.

Reads plain data (per-layer variances, init.json's records as dicts) so that it stays below
the init and model packages in the import graph.

Convolutions (Xiao et al. 2018, "Dynamical isometry and a mean field theory of CNNs"): with
circular padding every pixel of a conv layer's output sums fan_in = in_channels k k inputs of
one translation-invariant layer, so its variance follows the fully connected variance map with
sigma_w^2 = fan_in Var[W], and so do chi_1 and the phase (in their mean field the diagonal of the
pixel-pixel covariance obeys the fully connected recursion). Other paddings put padded values
beside the border pixels, which the map does not know.
"""

import math
from dataclasses import dataclass

from initlab.theory.gauss import Activation, derivative_moment
from initlab.theory.mean_field import DEPTH_FACTOR, find_critical, mean_field, variance_map

SHARED_TOL = 0.05  # hidden layers whose sigma_w^2 differ by more than this (relative) do not share one
INPUT_VAR = 1.0  # E[x^2] of an input feature: initlab standardises every dataset per channel
# A parameter mean beyond 6 standard errors (of the distribution it was drawn from) is not zero-mean. A
# 128-layer net checks 256 tensors: at 4 standard errors of each tensor's own std (noisy for 8 biases)
# half the zero-mean draws of an 8-channel one were refused; at 6 of the drawn std a draw is refused
# with odds below 1e-6, and eye, dirac and constant tensors stay far beyond.
_MEAN_SIGMAS = 6.0


@dataclass(frozen=True)
class LayerPrediction:
    """Per weight layer l = 1..L: act_var[l] = q_l, the second moment of its output (the
    pre-activation y_l, what the probe's act_var measures); grad_var[l] = Var[dL/dy_l] relative
    to the last layer's (grad_var[-1] = 1), since the loss sets the absolute scale."""

    act_var: list[float]
    grad_var: list[float]


def predict_layers(activation: str, weight_vars: list[float], bias_vars: list[float], input_var: float,
                   widths: list[int] | None = None, negative_slope: float = 0.01) -> LayerPrediction:
    """Forward: q_1 = sigma_w1^2 input_var + sigma_b1^2, q_(l+1) = sigma_w^2 E[phi(sqrt(q_l) z)^2] + sigma_b^2.
    Backward (gradients independent of the forward weights, as in Schoenholz et al.):
    Var[dL/dy_l] = sigma_w(l+1)^2 (N_(l+1) / N_l) E[phi'(sqrt(q_l) z)^2] Var[dL/dy_(l+1)].

    weight_vars: sigma_w^2 = fan_in Var[W] per layer; bias_vars: Var[b] per layer; input_var: the
    mean of x^2 over the input features; widths: each layer's output width N_l (None: all equal).
    """
    act = Activation(activation, negative_slope)
    q = [weight_vars[0] * input_var + bias_vars[0]]
    for sigma_w2, sigma_b2 in zip(weight_vars[1:], bias_vars[1:]):
        q.append(float(variance_map(act, sigma_w2, sigma_b2, q[-1])))
    grad = [1.0]
    for layer in reversed(range(len(q) - 1)):
        fan_ratio = 1.0 if widths is None else widths[layer + 1] / widths[layer]
        grad.insert(0, grad[0] * weight_vars[layer + 1] * fan_ratio * derivative_moment(act, q[layer]))
    return LayerPrediction(q, grad)


def run_theory(model: str, activation: str, negative_slope: float, records: list[dict], *,
               padding: str | None = None) -> dict:
    """theory.json for a run: the mean-field phase of its network from init.json's records, or
    {"predicted": False, "reason": ...} where this theory does not describe the network.

    The phase is set by the hidden-to-hidden layers (weight layers 2 .. L-1; the first sees the
    data, the last has no activation after it): they must share one sigma_w^2 (within SHARED_TOL);
    sigma_b^2 is their biases' mean variance. A CNN (model="cnn") is predicted with
    padding="circular" (its model.padding), as an MLP whose sigma_w^2 is fan_in Var[W]; its head
    (a global average pool, then the Linear output layer) is not hidden and does not enter.
    """
    head = {"model": model, "activation": activation}
    head |= {"negative_slope": negative_slope} if activation == "leaky_relu" else {}
    head |= {"padding": padding} if model == "cnn" else {}
    weights = [r for r in records if r["param"] == "weight" and r["fan_in"] is not None]
    reason = _not_predicted(model, padding, records, weights)
    if reason:
        return head | {"predicted": False, "reason": reason}
    hidden = weights[1:-1]
    sigma_w2 = [r["fan_in"] * _std(r) ** 2 for r in hidden]
    if max(sigma_w2) > (1 + SHARED_TOL) * min(sigma_w2):
        return head | {"predicted": False, "reason": (
            f"the hidden layers' sigma_w^2 differ ({min(sigma_w2):.4g} to {max(sigma_w2):.4g}); the phase "
            "is defined for one shared sigma_w^2")}
    biases = {r["layer"]: r for r in records if r["param"] == "bias"}
    bias_var = lambda layer: _std(biases[layer]) ** 2 if layer in biases else 0.0  # noqa: E731
    sigma_b2 = [bias_var(r["layer"]) for r in hidden]
    w2, b2 = sum(sigma_w2) / len(sigma_w2), sum(sigma_b2) / len(sigma_b2)
    first = weights[0]  # its output's variance is where the hidden layers' variance map starts
    q_1 = first["fan_in"] * _std(first) ** 2 * INPUT_VAR + bias_var(first["layer"])
    mf = mean_field(activation, w2, b2, negative_slope, q_start=q_1)
    return head | {"predicted": True, "depth": len(weights), "layers": [r["layer"] for r in hidden]} | mf.as_dict() | {
        "k": DEPTH_FACTOR, "within_depth_bound": mf.within_depth_bound(len(weights)),
        "critical_sigma_w2": find_critical(activation, b2, negative_slope)[0]}


def _not_predicted(model: str, padding: str | None, records: list[dict], weights: list[dict]) -> str | None:
    """Why the fully connected mean-field theory does not describe this network, or None."""
    if model == "cnn" and padding != "circular":
        return ("model=cnn without its padding: the theory covers circular padding (model.padding=circular)"
                if padding is None else
                f"model=cnn with {padding} padding: at layer l the pixels within l (kernel // 2) of the border "
                "sum padded values, not the signal, so their variance leaves the mean-field map, and with depth "
                "that band reaches every pixel; the theory holds for model.padding=circular (Xiao et al. 2018)")
    if model not in ("mlp", "cnn"):
        return (f"model={model}: residual connections (each block adds its input to its branch's output) and "
                "zero-padded convolutions are outside these maps, where one layer feeds the next")
    if any(r["scheme"].startswith("norm:") for r in records):
        return "norm layers rescale every layer's output; the mean-field maps here have none"
    if len(weights) < 3:
        return f"{len(weights)} weight layers: no hidden-to-hidden layer to set a phase (needs model.depth >= 3)"
    hidden = {r["layer"] for r in weights[1:-1]}
    for r in [r for r in records if r["layer"] in hidden and r["param"] in ("weight", "bias")]:
        if abs(r["mean"]) > _MEAN_SIGMAS * _std(r) / math.sqrt(math.prod(r["shape"])) + 1e-12:
            return (f"{r['layer']}.{r['param']} is not zero-mean (mean {r['mean']:.3g}, std {r['std']:.3g}; "
                    f"init {r['scheme']}): the theory assumes zero-mean i.i.d. parameters")
    return None


def _std(record: dict) -> float:
    """The std of the distribution a tensor was drawn from: the scheme's target, or the measured
    std where there is none or LSUV rescaled the layer afterwards."""
    if record["target_std"] is None or record.get("lsuv_iters") is not None:
        return record["std"]
    return record["target_std"]
