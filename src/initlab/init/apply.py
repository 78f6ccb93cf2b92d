"""Apply a scheme to a whole model, module type by module type, and record what was done."""

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm
from torch.nn.parameter import UninitializedParameter

from initlab.errors import ConfigError
from initlab.init.fan import FanMode, fan_for, fans
from initlab.init.gain import Gain
from initlab.init.schemes import SCHEMES, BiasInit, Scheme, Target, scheme_params

# Lazy variants become these classes once materialised.
WEIGHT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
NORM_LAYERS = (_BatchNorm, _InstanceNorm, nn.LayerNorm, nn.GroupNorm)
CONV_ONLY = ("dirac", "delta_orthogonal")


@dataclass
class InitRecord:
    """One initialised tensor, as init.json and the init table show it."""

    layer: str
    param: str
    shape: list[int]
    fan_in: int | None
    fan_out: int | None
    scheme: str
    mode: str | None
    gain: float | None
    gain_source: str | None
    target_std: float | None
    std: float | None = None  # measured after init
    mean: float | None = None
    lsuv_out_var: float | None = None  # LSUV only: output variance reached on the data batch
    lsuv_iters: int | None = None


def check_scheme_args(name: str, mode: FanMode | None, gain: object | None) -> Scheme:
    """Reject a fan mode or gain (as typed) given to a scheme that does not use it (never ignore it)."""
    scheme = SCHEMES[name]
    if mode is not None and scheme.default_mode is None:
        takers = [s.name for s in SCHEMES.values() if s.default_mode is not None]
        raise ConfigError("mode", mode.value, f"init={scheme.name} takes no fan mode; schemes that do: {', '.join(takers)}")
    if gain is not None and scheme.default_gain is None:
        takers = [s.name for s in SCHEMES.values() if s.default_gain is not None]
        raise ConfigError("gain", gain, f"init={scheme.name} takes no gain; schemes that do: {', '.join(takers)}")
    return scheme


def initialize(
    model: nn.Module, cfg, mode: FanMode | None, gain: Gain | None, generator: torch.Generator
) -> list[InitRecord]:
    """Initialise every weight layer with cfg's scheme, biases and norm layers as configured.

    The model must be materialised (run one forward pass through lazy modules first).
    Raises ConfigError, before any data is touched, when the scheme does not fit the model.
    """
    scheme = check_scheme_args(cfg.scheme, mode, gain and gain.value)
    if any(isinstance(p, UninitializedParameter) for p in model.parameters()):
        raise RuntimeError("lazy modules must be materialised (one forward pass) before init")
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, WEIGHT_LAYERS)]
    if scheme.name in CONV_ONLY and not any(m.weight.dim() > 2 for _, m in layers):
        raise ConfigError("init", scheme.name, "needs a model with convolutions (model=cnn or model=resnet)")
    mode = mode or scheme.default_mode
    params = scheme_params(cfg)
    if gain is None and scheme.default_gain is not None:
        gain = Gain(float(scheme.default_gain(cfg)), "scheme default")

    records = []
    for name, module in layers:
        fan_in, fan_out = fans(module.weight)
        target = Target(fan_in, fan_out, mode and fan_for(mode, fan_in, fan_out), gain and gain.value, generator)
        try:
            target_std = scheme.fn(module.weight, target, **params)
        except ValueError as err:
            raise ConfigError("init", scheme.name, str(err)) from None
        records.append(
            InitRecord(name, "weight", list(module.weight.shape), fan_in, fan_out, scheme.name,
                       mode and mode.value, gain and gain.value, gain and gain.source, target_std)
        )
        if module.bias is not None:
            records.append(_init_bias(name, module.bias, cfg, fan_in, fan_out, generator))
    for name, module in model.named_modules():
        if isinstance(module, NORM_LAYERS):
            records += _init_norm(name, module, cfg)
    if cfg.zero_residual:
        _zero_residual_branches(model)
    measure(model, records)
    return records


def _init_bias(layer: str, bias: Tensor, cfg, fan_in: int, fan_out: int, g: torch.Generator) -> InitRecord:
    target_std = {
        BiasInit.zeros: 0.0,
        BiasInit.constant: 0.0,
        BiasInit.normal: cfg.bias_std,
        BiasInit.default: 1.0 / (3.0 * fan_in) ** 0.5,  # torch's U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    }[cfg.bias]
    with torch.no_grad():
        if cfg.bias is BiasInit.zeros:
            bias.zero_()
        elif cfg.bias is BiasInit.constant:
            bias.fill_(cfg.bias_val)
        elif cfg.bias is BiasInit.normal:
            bias.normal_(0.0, cfg.bias_std, generator=g)
    return InitRecord(layer, "bias", list(bias.shape), fan_in, fan_out, f"bias:{cfg.bias.value}",
                      None, None, None, target_std)


def _init_norm(layer: str, module: nn.Module, cfg) -> list[InitRecord]:
    records = []
    for param, value in (("weight", cfg.norm_weight), ("bias", cfg.norm_bias)):
        tensor = getattr(module, param, None)
        if isinstance(tensor, Tensor):
            nn.init.constant_(tensor, value)
            records.append(InitRecord(layer, param, list(tensor.shape), None, None, "norm:constant",
                                      None, None, None, 0.0))
    return records


def _zero_residual_branches(model: nn.Module) -> None:
    """Zero the last parameterised layer of every residual branch (Goyal et al. 2017; Fixup).

    A residual block exposes its branch as `.branch`; with norm layers the last norm's scale
    is zeroed, otherwise the last weight layer, so each block starts as the identity.
    """
    branches = [m.branch for m in model.modules() if isinstance(getattr(m, "branch", None), nn.Module)]
    if not branches:
        raise ConfigError("init.zero_residual", True, "the model has no residual branches (use model=resnet)")
    for branch in branches:
        last = [m for m in branch.modules() if isinstance(m, WEIGHT_LAYERS + NORM_LAYERS)][-1]
        with torch.no_grad():
            last.weight.zero_()


def measure(model: nn.Module, records: list[InitRecord]) -> None:
    """Fill each record's measured std and mean from the model as it is now."""
    modules = dict(model.named_modules())
    with torch.no_grad():
        for r in records:
            t = getattr(modules[r.layer], r.param).detach().double()
            r.std, r.mean = t.std(correction=0).item(), t.mean().item()


def records_as_dicts(records: list[InitRecord]) -> list[dict]:
    return [dataclasses.asdict(r) for r in records]
