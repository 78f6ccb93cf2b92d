"""Theory beside measurement: each run's mean-field predictions per layer.

Per run, the prediction is for the network actually drawn: per-layer sigma_w^2 = fan_in E[W^2]
and sigma_b^2 = E[b^2] of the tensors in its init.json, anchored at the first layer's measured
Var[y_1] (the records do not keep the input's second moment, so it is read back from
Var[y_1] = sigma_w1^2 E[x^2] + sigma_b1^2). Gradients are predicted relative to the output
layer's, which the loss sets, and scaled to its measured value there.

Circular-padded CNNs without norm layers are predicted too (Xiao et al. 2018: each pixel of a conv
layer follows the fully connected map, widths counted in channels), over their conv layers only:
the head averages each channel over the pixels, which correlate in a way the per-pixel map does
not track, so the head's own variance is not predicted (NaN), and the gradients are scaled to the
measured value at the last conv layer instead of the output layer.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from initlab.report.aggregate import Profile, layer_profile
from initlab.report.load import Sweep, read_init
from initlab.report.stats import Estimate
from initlab.theory import predict_layers


@dataclass(frozen=True)
class Overlay:
    """Per predicted cell, act_var and grad_var per weight layer, one row per run."""

    act_var: dict[tuple, Profile]
    grad_var: dict[tuple, Profile]

    def last_hidden_ratio(self, sweep: Sweep) -> dict[tuple, Estimate]:
        """Per predicted cell, measured / predicted Var[y] at the last hidden layer at init, run by
        run, over its runs."""
        measured, ratios = layer_profile(sweep, "act_var"), {}
        for cell, predicted in self.act_var.items():
            found = measured.get(cell)
            if found is not None and found.runs.shape[1] == predicted.runs.shape[1] >= 2:
                ratios[cell] = Estimate.geometric_of([found.per_run(j)[-2] / predicted.per_run(j)[-2]
                                                      for j in predicted.jobs if j in found.jobs])
        return ratios


def predictions(sweep: Sweep) -> Overlay:
    """The cells whose runs the theory describes (MLPs without norm layers), with their profiles."""
    act, grad = {}, {}
    for cell, group in sweep.cells():
        runs = {job: p for job, d in zip(group["job"], group["dir"])
                if (p := _job_prediction(sweep, job, Path(d))) is not None}
        if runs and len({len(a) for a, _ in runs.values()}) == 1:
            key = cell if isinstance(cell, tuple) else (cell,)
            act[key], grad[key] = (Profile(tuple(runs), np.array(p)) for p in zip(*runs.values()))
    return Overlay(act, grad)


def _job_prediction(sweep: Sweep, job, job_dir: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """(act_var, grad_var) predicted for one run, or None where the theory does not describe it."""
    model, frame = sweep.configs[job].get("model", {}), sweep.metrics[job]  # {}: config.yaml damaged
    predicted = _predicted_layers(model)
    if predicted is None or not has_step0(frame):
        return None
    step0, layers = frame[frame["step"] == 0].iloc[0], sweep.weight_layers(job)
    weights = sweep.weights[job][predicted]
    if len(weights) < 2:
        return None
    last = layers[len(weights) - 1]  # where the gradients are anchored
    first_act, last_grad = (step0.get(key, np.nan) for key in (f"act_var/{layers[0]}", f"grad_var/{last}"))
    if not np.isfinite([first_act, last_grad]).all():
        return None
    biases = {r["layer"]: r for r in read_init(job_dir) if r["param"] == "bias"}
    weight_vars = [r["fan_in"] * _second_moment(r) for r in weights]
    bias_vars = [_second_moment(biases[r["layer"]]) if r["layer"] in biases else 0.0 for r in weights]
    input_var = max(first_act - bias_vars[0], 0.0) / weight_vars[0]
    theory = predict_layers(model["activation"], weight_vars, bias_vars, input_var,
                            [r["shape"][0] for r in weights], model["negative_slope"])
    unpredicted = [np.nan] * (len(layers) - len(weights))  # a CNN's head
    return np.array(theory.act_var + unpredicted), np.array(theory.grad_var + unpredicted) * last_grad


def _predicted_layers(model: dict) -> slice | None:
    """The model's weight layers the theory predicts: all of an MLP's, a circular CNN's but its head;
    None for a model it does not describe (norm layers, other paddings, residual nets)."""
    if model.get("norm") != "none":
        return None
    if model.get("name") == "mlp":
        return slice(None)
    if model.get("name") == "cnn" and model.get("padding") == "circular":
        return slice(None, -1)
    return None


def has_step0(metrics: pd.DataFrame) -> bool:
    return "step" in metrics and bool((metrics["step"] == 0).any())


def _second_moment(record: dict) -> float:
    """E[x^2] of the tensor as drawn: what the next layer's variance depends on."""
    return record["std"] ** 2 + record["mean"] ** 2
