"""Apply a registry scheme to any model, module type by module type, and record what was done.

`initialize` is initlab's public entry point (`initlab.initialize`); the Hydra harness calls it too."""

import dataclasses
import functools
from dataclasses import dataclass

import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException, ValidationError
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm
from torch.nn.parameter import UninitializedParameter

from initlab.activations import ACTIVATIONS
from initlab.errors import ConfigError, choices
from initlab.init.fan import FanMode, fan_for, fans
from initlab.init.gain import Gain, resolve_gain
from initlab.init.params import BiasInit
from initlab.init.schemes import SCHEMES, Scheme, Target, scheme_params

# Lazy variants become these classes once materialised.
WEIGHT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
NORM_LAYERS = (_BatchNorm, _InstanceNorm, nn.LayerNorm, nn.GroupNorm)


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
    model: nn.Module,
    scheme: str,
    *,
    mode: FanMode | str | None = None,
    gain: Gain | float | str | None = None,
    generator: torch.Generator | None = None,
    **params,
) -> list[InitRecord]:
    """Initialise every Linear/Conv layer of any `model` with registry scheme `scheme`, then its
    biases and norm layers; return one record per tensor (what was drawn, and why).

    `mode` (fan_in, fan_out, fan_avg) and `gain` (a number, a torch nonlinearity name, or
    "auto": the gain of the model's own activation) go to the schemes that take them, and are
    refused by those that don't. `params` are the scheme's own keys (e.g. distribution="uniform",
    a=0.1; see initlab.SCHEMES[scheme].params) and the keys every scheme has: bias (zeros, or
    default for init="default": torch's draw kept), bias_val, bias_std, norm_weight, norm_bias,
    zero_residual. With `generator=None` draws come from torch's global RNG, as in torch.nn.init.
    A data-driven scheme (lsuv) draws its first half here; `lsuv_rescale` finishes it on a batch.
    The model must be materialised (one forward pass through lazy modules). A key, value or
    model that does not fit the scheme raises ConfigError (a ValueError) naming it.
    """
    if scheme not in SCHEMES:
        raise ConfigError("init", scheme, choices(SCHEMES))
    if isinstance(mode, str):
        mode = _fan_mode(mode)
    cfg = scheme_config(scheme, params)
    spec = check_scheme_args(scheme, mode, gain.value if isinstance(gain, Gain) else gain)
    if any(isinstance(p, UninitializedParameter) for p in model.parameters()):
        raise RuntimeError("lazy modules must be materialised (one forward pass) before init")
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, WEIGHT_LAYERS)]
    check_fit(scheme, cfg, model)
    mode = mode or spec.default_mode
    gain = _resolve(gain, model)
    if gain is None and spec.default_gain is not None:
        gain = Gain(float(spec.default_gain(cfg)), "scheme default")
    kwargs = scheme_params(cfg)

    records = []
    for name, module in layers:
        fan_in, fan_out = fans(module.weight)
        target = Target(fan_in, fan_out, mode and fan_for(mode, fan_in, fan_out), gain and gain.value, generator)
        target_std = spec.fn(module.weight, target, **kwargs)
        records.append(
            InitRecord(name, "weight", list(module.weight.shape), fan_in, fan_out, scheme,
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


def check_fit(scheme: str, params, model: nn.Module) -> None:
    """The scheme's declared preconditions (schemes.Rule) on its keys and on the model's weight
    shapes, and zero_residual's need for residual branches: the one check, shared by
    `initialize` and the harness's up-front validation (a `meta`-device model costs nothing)."""
    check_fit_shapes(scheme, params, weight_shapes(model), bool(residual_branches(model)))


def check_fit_shapes(scheme: str, params, shapes: list[tuple[int, ...]], residual: bool) -> None:
    """check_fit on what it reads of a model: its weight shapes and whether it has residual branches."""
    if params.zero_residual and not residual:
        raise ConfigError("init.zero_residual", True, "the model has no residual branches (use model=resnet)")
    for rule in SCHEMES[scheme].requires:
        if not rule.holds(params, shapes):
            value = scheme if rule.key == "init" else params[rule.key.removeprefix("init.")]
            raise ConfigError(rule.key, value, rule.expected.format(**params))


def weight_shapes(model: nn.Module) -> list[tuple[int, ...]]:
    return [tuple(m.weight.shape) for m in model.modules() if isinstance(m, WEIGHT_LAYERS)]


def scheme_config(scheme: str, params: dict) -> DictConfig:
    """`params` checked against the scheme's keys, typed and defaulted as Hydra's `init` node is
    (read-only). A grid's runs share a few: each distinct one is merged once (~2 ms)."""
    try:  # keyed with each value's type: True, 1 and 1.0 are equal, and not the same key
        return _scheme_config(scheme, tuple((key, type(value), value) for key, value in params.items()))
    except TypeError:  # a value that cannot be a cache key (a list): merged afresh
        return _merged(scheme, params)


@functools.lru_cache(maxsize=256)
def _scheme_config(scheme: str, params: tuple) -> DictConfig:
    cfg = _merged(scheme, {key: value for key, _, value in params})
    OmegaConf.set_readonly(cfg, True)
    return cfg


def _merged(scheme: str, params: dict) -> DictConfig:
    try:
        return OmegaConf.merge(_schema(scheme), params)
    except OmegaConfBaseException as err:
        keys = [f.name for f in dataclasses.fields(SCHEMES[scheme].params) if f.name != "scheme"]
        expected = str(err.msg).splitlines()[0] if isinstance(err, ValidationError) else f"init={scheme} takes " + ", ".join(keys)
        raise ConfigError(f"init.{err.key}", params.get(err.key), expected) from None


@functools.cache
def _schema(scheme: str) -> DictConfig:
    """The scheme's parameters as an OmegaConf schema, built once (2 ms each; merge copies it)."""
    return OmegaConf.structured(SCHEMES[scheme].params)


def _fan_mode(mode: str) -> FanMode:
    try:
        return FanMode(mode)
    except ValueError:
        raise ConfigError("mode", mode, choices(m.value for m in FanMode)) from None


def _resolve(gain: Gain | float | str | None, model: nn.Module) -> Gain | None:
    """A Gain from what the caller gave; "auto" reads the activation off the model itself."""
    if gain is None or isinstance(gain, Gain):
        return gain
    if str(gain).strip() == "auto":
        return resolve_gain(gain, *_model_activation(model))
    return resolve_gain(gain, "linear", 0.01)  # the activation matters to auto only; leaky_relu: torch's slope


def _model_activation(model: nn.Module) -> tuple[str, float]:
    """(name, negative_slope) of the one kind of activation module the model uses."""
    names = {type(spec.build(0.01)): name for name, spec in ACTIVATIONS.items() if name != "linear"}
    found = {names[type(m)]: getattr(m, "negative_slope", 0.01) for m in model.modules() if type(m) in names}
    if len(found) != 1:
        raise ConfigError("gain", "auto", f"needs one kind of activation in the model, found {sorted(found) or 'none'}; "
                          "pass a number or a nonlinearity name")
    return next(iter(found.items()))


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
    for branch in residual_branches(model):
        last = [m for m in branch.modules() if isinstance(m, WEIGHT_LAYERS + NORM_LAYERS)][-1]
        with torch.no_grad():
            last.weight.zero_()


def residual_branches(model: nn.Module) -> list[nn.Module]:
    """The residual branches of a model: its blocks expose them as `.branch` (models/resnet.py)."""
    return [m.branch for m in model.modules() if isinstance(getattr(m, "branch", None), nn.Module)]


def measure(model: nn.Module, records: list[InitRecord]) -> None:
    """Fill each record's measured std and mean from the model as it is now."""
    modules = dict(model.named_modules())
    with torch.no_grad():
        for r in records:
            t = getattr(modules[r.layer], r.param).detach().double()
            r.std, r.mean = t.std(correction=0).item(), t.mean().item()


def records_as_dicts(records: list[InitRecord]) -> list[dict]:
    """The records as init.json stores them."""
    return [dataclasses.asdict(r) for r in records]
