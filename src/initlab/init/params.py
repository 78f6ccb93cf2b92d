"""What the `init` group's keys and the top-level `mode` take: every scheme's keys, types and
defaults, as the structured configs Hydra validates `init=<scheme>` against.

Kept apart from the schemes themselves (initlab.init.schemes) and free of torch: composing a
config (train.py --help, tab completion, every command line's check) then starts in a fraction
of torch's import time. Each scheme function's keyword-only parameters are its keys here, in
this order; the registry refuses a scheme whose parameters differ.
"""

import dataclasses
from dataclasses import dataclass
from enum import Enum


class FanMode(str, Enum):
    """Which fan scales the variance: fan_in keeps the forward pass, fan_out the backward pass."""

    fan_in = "fan_in"
    fan_out = "fan_out"
    fan_avg = "fan_avg"


class Distribution(str, Enum):
    normal = "normal"
    uniform = "uniform"
    truncated_normal = "truncated_normal"


class BiasInit(str, Enum):
    zeros = "zeros"
    default = "default"  # keep torch's layer initialisation
    constant = "constant"
    normal = "normal"


@dataclass
class InitBase:
    """Keys every `init` config has, whatever its scheme."""

    scheme: str = "default"
    bias: BiasInit = BiasInit.zeros  # each scheme's own default (SCHEME_PARAMS); default keeps torch's
    bias_val: float = 0.0  # with bias=constant
    bias_std: float = 0.01  # with bias=normal
    norm_weight: float = 1.0  # BatchNorm/LayerNorm/GroupNorm scale
    norm_bias: float = 0.0
    zero_residual: bool = False  # zero the last layer of every residual branch


def _params(scheme: str, *keys: tuple[str, type, object], bias: BiasInit = BiasInit.zeros) -> type:
    """The structured config of `scheme`: InitBase, then its own `keys` (name, type, default)."""
    fields = [(name, kind, dataclasses.field(default=default)) for name, kind, default in keys]
    fields += [("scheme", str, dataclasses.field(default=scheme)), ("bias", BiasInit, dataclasses.field(default=bias))]
    cls = dataclasses.make_dataclass("".join(p.capitalize() for p in scheme.split("_")) + "Init", fields,
                                     bases=(InitBase,))
    cls.__module__ = __name__
    globals()[cls.__name__] = cls  # importable by name, so configs pickle (submitit)
    return cls


SCHEME_PARAMS: dict[str, type] = {
    "default": _params("default", bias=BiasInit.default),
    "uniform": _params("uniform", ("a", float, 0.0), ("b", float, 1.0)),
    "normal": _params("normal", ("mean", float, 0.0), ("std", float, 1.0)),
    "trunc_normal": _params("trunc_normal", ("mean", float, 0.0), ("std", float, 1.0), ("a", float, -2.0),
                            ("b", float, 2.0)),
    "constant": _params("constant", ("val", float, 0.0)),
    "ones": _params("ones"),
    "zeros": _params("zeros"),
    "eye": _params("eye"),
    "dirac": _params("dirac", ("groups", int, 1)),
    "xavier": _params("xavier", ("distribution", Distribution, Distribution.uniform)),
    "kaiming": _params("kaiming", ("distribution", Distribution, Distribution.normal), ("a", float, 0.0)),
    "orthogonal": _params("orthogonal"),
    "sparse": _params("sparse", ("sparsity", float, 0.1), ("std", float, 0.01)),
    "lecun": _params("lecun", ("distribution", Distribution, Distribution.normal)),
    "variance_scaling": _params("variance_scaling", ("scale", float, 1.0),
                                ("distribution", Distribution, Distribution.truncated_normal)),
    "delta_orthogonal": _params("delta_orthogonal"),
    "lsuv": _params("lsuv", ("tol", float, 0.1), ("max_iter", int, 10)),
}
