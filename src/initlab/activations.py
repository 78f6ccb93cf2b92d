"""The activations initlab offers: the one table that models, gains and theory read (the config
takes its names from a written-out copy, initlab.config.ACTIVATION_NAMES, held equal by a test).

Each entry knows how to build its module, which name `torch.nn.init.calculate_gain` knows
it by (None where torch recommends no gain), whether it is a rectifier (zero for negative
inputs, so units can die), and whether it is positively homogeneous. This module sits at the
bottom of the import graph.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn


class Erf(nn.Module):
    """phi(x) = erf(x), elementwise (torch has the function, not a module). Unscaled, as in the
    signal-propagation papers and neural-tangents' stax.Erf, so their closed forms hold as they
    are written (Williams 1997: E[erf(u1) erf(u2)] = (2/pi) arcsin(2 q12 / sqrt((1+2 q11)(1+2 q22))))."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.erf(x)


@dataclass(frozen=True)
class ActivationSpec:
    name: str
    build: Callable[[float], nn.Module]  # negative_slope -> module (only leaky_relu uses the slope)
    torch_gain: str | None  # calculate_gain's name for it; None: torch has no recommended gain
    rectifier: bool = False  # phi(x) = 0 (or ~0) for x < 0: dead units are possible
    # phi(s x) = s phi(x) for every s > 0: Gaussian expectations of phi^2 and phi'^2 scale with the
    # variance exactly (phi' is constant on each half-line), so the mean-field correlation map
    # without biases does not depend on the variance at all.
    homogeneous: bool = False


ACTIVATIONS: dict[str, ActivationSpec] = {
    spec.name: spec
    for spec in (
        ActivationSpec("relu", lambda s: nn.ReLU(), "relu", rectifier=True, homogeneous=True),
        ActivationSpec("leaky_relu", lambda s: nn.LeakyReLU(s), "leaky_relu", rectifier=True, homogeneous=True),
        ActivationSpec("tanh", lambda s: nn.Tanh(), "tanh"),
        ActivationSpec("sigmoid", lambda s: nn.Sigmoid(), "sigmoid"),
        ActivationSpec("erf", lambda s: Erf(), None),
        ActivationSpec("softsign", lambda s: nn.Softsign(), None),  # x / (1 + |x|): Glorot & Bengio 2010's third
        ActivationSpec("selu", lambda s: nn.SELU(), "selu"),
        ActivationSpec("gelu", lambda s: nn.GELU(), None),
        ActivationSpec("silu", lambda s: nn.SiLU(), None),
        ActivationSpec("elu", lambda s: nn.ELU(), None),
        ActivationSpec("softplus", lambda s: nn.Softplus(), None),
        ActivationSpec("linear", lambda s: nn.Identity(), "linear", homogeneous=True),
    )
}

# Module types of every activation (elementwise, parameterless), and of the rectifiers among them,
# for code that looks for them in a built model.
ACTIVATION_MODULES = tuple({type(spec.build(0.01)) for spec in ACTIVATIONS.values()})
RECTIFIER_MODULES = (nn.ReLU, nn.LeakyReLU)


def activation_module(name: str, negative_slope: float = 0.01) -> nn.Module:
    """The nn.Module for activation `name` (leaky_relu with `negative_slope`)."""
    return ACTIVATIONS[name].build(negative_slope)
