"""The scheme registry: the single place that knows each scheme's formula.

A scheme is one function ``fn(weight, target, **params) -> target_std | None``. Its
keyword-only parameters are its config keys (torch's names where torch has them), declared
with their types and defaults in initlab.init.params (without torch, so that composing a
config does not import it), so `init=<scheme>` validates its keys and values before anything
runs. Adding a scheme is one function here, its keys in initlab.init.params and one
``conf/init/<scheme>.yaml``.

Where torch.nn.init defines a scheme we either call it or write its arithmetic verbatim
(same expression, same sampler, same generator), so tensors are bit-identical to torch's;
tests/test_init_parity.py proves it.
"""

import dataclasses
import inspect
import math
import typing
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from initlab.init.params import SCHEME_PARAMS, Distribution, FanMode, InitBase

# Std of a standard normal truncated to [-2, 2]: dividing by it makes a truncated normal
# have the intended std (Keras' VarianceScaling, JAX and timm use the same constant).
TRUNCATED_NORMAL_STD = 0.87962566103423978


@dataclass(frozen=True)
class Target:
    """What a scheme may know about the weight it fills."""

    fan_in: int
    fan_out: int
    fan: float | None  # the fan chosen by `mode`, for schemes that take one
    gain: float | None  # resolved gain, for schemes that take one
    generator: torch.Generator | None  # None: torch's global RNG, as torch.nn.init


@dataclass(frozen=True)
class Rule:
    """A precondition of a scheme, declared with it and checked by initlab.validate against the
    model's weight shapes before anything is built or drawn.

    `holds(p, shapes)` gets the `init` config and the shape of every Linear/Conv weight; when
    it is false, the run is refused with `key`'s value and `expected` (formatted with p's keys).
    """

    key: str  # the config key at fault; `init` itself stands for the scheme
    holds: Callable[[typing.Any, list[tuple[int, ...]]], bool]
    expected: str


def param_rule(name: str, holds: Callable[[float], bool], expected: str) -> Rule:
    """A rule on one parameter of the scheme, `init.<name>`."""
    return Rule(f"init.{name}", lambda p, shapes: holds(p[name]), expected)


# Preconditions on the model's weights, shared by several schemes.
LINEAR_ONLY = Rule("init", lambda p, shapes: all(len(s) == 2 for s in shapes),
                   "needs 2-D weights (Linear layers only: model=mlp)")
NEEDS_CONV = Rule("init", lambda p, shapes: any(len(s) > 2 for s in shapes),
                  "needs a model with convolutions (model=cnn or model=resnet)")


@dataclass(frozen=True)
class Scheme:
    name: str
    fn: Callable[..., float | None]
    params: type  # structured-config dataclass built from fn's keyword parameters
    default_mode: FanMode | None  # None: the scheme takes no fan mode
    default_gain: Callable[..., float] | None  # None: the scheme takes no gain
    data_driven: bool = False  # needs a data batch after the weights are drawn (LSUV)
    requires: tuple[Rule, ...] = ()  # preconditions on its parameters and the model's weights


SCHEMES: dict[str, Scheme] = {}


def scheme(
    mode: FanMode | None = None,
    gain: Callable[..., float] | None = None,
    data_driven: bool = False,
    requires: tuple[Rule, ...] = (),
) -> Callable:
    """Register ``fn`` under its own name, with its keys from initlab.init.params; `mode`/`gain`
    are its defaults when it takes them, `requires` its preconditions."""

    def register(fn: Callable) -> Callable:
        params = SCHEME_PARAMS[fn.__name__]
        keys = [p.name for p in inspect.signature(fn).parameters.values() if p.kind is p.KEYWORD_ONLY]
        declared = [f.name for f in dataclasses.fields(params) if f.name not in _BASE_KEYS]
        if keys != declared:
            raise TypeError(f"scheme {fn.__name__}: keyword parameters {keys} differ from its keys {declared} "
                            "in initlab.init.params")
        SCHEMES[fn.__name__] = Scheme(fn.__name__, fn, params, mode, gain, data_driven, requires)
        return fn

    return register


_BASE_KEYS = {f.name for f in dataclasses.fields(InitBase)}


def scheme_params(cfg) -> dict:
    """The keyword arguments of cfg's scheme function, read from an `init` config."""
    keys = inspect.signature(SCHEMES[cfg.scheme].fn).parameters.values()
    return {p.name: getattr(cfg, p.name) for p in keys if p.kind is p.KEYWORD_ONLY}


def _sample(w: Tensor, std: float, distribution: Distribution, g: torch.Generator) -> float:
    """Draw zero-mean values with standard deviation `std`, as torch.nn.init does.

    uniform and normal repeat torch's kaiming/xavier sampling line for line; the truncated
    normal is cut at two (uncorrected) standard deviations, the Keras/JAX convention.
    """
    with torch.no_grad():
        if distribution is Distribution.normal:
            w.normal_(0, std, generator=g)
        elif distribution is Distribution.uniform:
            bound = math.sqrt(3.0) * std
            w.uniform_(-bound, bound, generator=g)
        else:
            s = std / TRUNCATED_NORMAL_STD
            nn.init.trunc_normal_(w, 0.0, s, -2 * s, 2 * s, generator=g)
    return std


# --- torch.nn.init --------------------------------------------------------------------


@scheme()
def default(w: Tensor, t: Target) -> float | None:
    """Leave torch's own layer initialisation, biases included: Linear/Conv weights were drawn by
    kaiming_uniform_(a=sqrt(5)), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)), std 1/sqrt(3 fan_in)
    (LeCun et al. 1998's "standard" init, as Glorot & Bengio 2010 call it)."""
    return 1.0 / math.sqrt(3.0 * t.fan_in)


@scheme(requires=(Rule("init.b", lambda p, shapes: p.b >= p.a, "must be >= init.a ({a})"),))
def uniform(w: Tensor, t: Target, *, a: float, b: float) -> float:
    """U(a, b), torch.nn.init.uniform_; std = (b - a) / sqrt(12)."""
    nn.init.uniform_(w, a, b, generator=t.generator)
    return (b - a) / math.sqrt(12.0)


@scheme(requires=(param_rule("std", lambda std: std >= 0, "must be >= 0"),))
def normal(w: Tensor, t: Target, *, mean: float, std: float) -> float:
    """N(mean, std^2), torch.nn.init.normal_."""
    nn.init.normal_(w, mean, std, generator=t.generator)
    return std


@scheme(requires=(
    param_rule("std", lambda std: std > 0, "must be > 0"),
    Rule("init.b", lambda p, shapes: p.b > p.a, "must be > init.a ({a})"),
    # torch.nn.init.trunc_normal_'s own limit: beyond it the values it draws may be wrong
    Rule("init.mean", lambda p, shapes: p.a - 2 * p.std <= p.mean <= p.b + 2 * p.std,
         "must lie within 2 std ({std}) of [init.a, init.b] = [{a}, {b}]"),
))
def trunc_normal(w: Tensor, t: Target, *, mean: float, std: float, a: float, b: float) -> float:
    """N(mean, std^2) redrawn outside [a, b] (absolute bounds), torch.nn.init.trunc_normal_."""
    nn.init.trunc_normal_(w, mean, std, a, b, generator=t.generator)
    return truncated_normal_std(mean, std, a, b)


@scheme()
def constant(w: Tensor, t: Target, *, val: float) -> float:
    """Every entry `val`, torch.nn.init.constant_."""
    nn.init.constant_(w, val)
    return 0.0


@scheme()
def ones(w: Tensor, t: Target) -> float:
    """Every entry 1, torch.nn.init.ones_."""
    nn.init.ones_(w)
    return 0.0


@scheme()
def zeros(w: Tensor, t: Target) -> float:
    """Every entry 0, torch.nn.init.zeros_."""
    nn.init.zeros_(w)
    return 0.0


@scheme(requires=(LINEAR_ONLY,))
def eye(w: Tensor, t: Target) -> None:
    """The identity matrix (2-D weights), torch.nn.init.eye_: y = x on the first min(in, out) units."""
    nn.init.eye_(w)


@scheme(requires=(
    NEEDS_CONV,
    param_rule("groups", lambda groups: groups >= 1, "must be >= 1"),
    Rule("init.groups", lambda p, shapes: all(s[0] % p.groups == 0 for s in shapes if len(s) > 2),
         "must divide every conv's output channels"),
))
def dirac(w: Tensor, t: Target, *, groups: int) -> None:
    """Identity-preserving conv kernels; a Linear layer (kernel size 1) gets the identity."""
    if w.dim() == 2:
        nn.init.eye_(w)
    else:
        nn.init.dirac_(w, groups)


@scheme(mode=FanMode.fan_avg, gain=lambda p: 1.0)
def xavier(w: Tensor, t: Target, *, distribution: Distribution) -> float:
    """Glorot & Bengio 2010: std = gain * sqrt(1 / fan). With fan_avg, torch's xavier_*_ exactly.

    fan_in / fan_out give Caffe's "xavier" filler (variance_norm FAN_IN / FAN_OUT).
    """
    return _sample(w, t.gain * math.sqrt(1.0 / t.fan), distribution, t.generator)


@scheme(mode=FanMode.fan_in, gain=lambda p: nn.init.calculate_gain("leaky_relu", p.a))
def kaiming(w: Tensor, t: Target, *, distribution: Distribution, a: float) -> float:
    """He et al. 2015: std = gain / sqrt(fan); the default gain is leaky_relu's for slope `a`."""
    return _sample(w, t.gain / math.sqrt(t.fan), distribution, t.generator)


@scheme(gain=lambda p: 1.0)
def orthogonal(w: Tensor, t: Target) -> float:
    """Saxe et al. 2013: a (semi-)orthogonal matrix times gain; rms = gain / sqrt(max(rows, cols))."""
    nn.init.orthogonal_(w, t.gain, generator=t.generator)
    return t.gain / math.sqrt(max(w.shape[0], w[0].numel()))


@scheme(requires=(LINEAR_ONLY, param_rule("sparsity", lambda s: 0 <= s < 1, "must be in [0, 1)"),
                  param_rule("std", lambda std: std >= 0, "must be >= 0")))
def sparse(w: Tensor, t: Target, *, sparsity: float, std: float) -> float:
    """Martens 2010: per column, a `sparsity` fraction of the entries is zero, the rest N(0, std^2)."""
    # torch.nn.init.sparse_ draws its zero positions from the global RNG, not `generator`.
    nn.init.sparse_(w, sparsity, std, generator=t.generator)
    return std * math.sqrt(1.0 - math.ceil(sparsity * w.shape[0]) / w.shape[0])


# --- beyond torch.nn.init -------------------------------------------------------------


@scheme()
def lecun(w: Tensor, t: Target, *, distribution: Distribution) -> float:
    """LeCun et al. 1998: variance 1 / fan_in (self-normalising nets use it with SELU)."""
    return _sample(w, math.sqrt(1.0 / t.fan_in), distribution, t.generator)


@scheme(mode=FanMode.fan_in, gain=lambda p: 1.0, requires=(param_rule("scale", lambda s: s > 0, "must be > 0"),))
def variance_scaling(w: Tensor, t: Target, *, scale: float, distribution: Distribution) -> float:
    """Keras/JAX VarianceScaling: std = gain * sqrt(scale / fan), truncated normal by default."""
    return _sample(w, t.gain * math.sqrt(scale / t.fan), distribution, t.generator)


@scheme(gain=lambda p: 1.0, requires=(
    NEEDS_CONV,
    Rule("init", lambda p, shapes: all(s[0] >= s[1] for s in shapes if len(s) > 2),
         "needs out_channels >= in_channels in every conv (model.channels or model.width >= the input's channels)"),
))
def delta_orthogonal(w: Tensor, t: Target) -> float:
    """Xiao et al. 2018: zero kernel except an orthogonal [out, in] matrix at the spatial centre.

    Conv layers then start as orthogonal maps of the centre pixel, the dynamical-isometry
    condition that lets 10,000-layer plain CNNs train. A Linear layer gets plain orthogonal.
    """
    if w.dim() == 2:
        return orthogonal(w, t)
    out_channels, in_channels = w.shape[:2]
    centre = torch.empty(out_channels, in_channels, dtype=w.dtype)
    nn.init.orthogonal_(centre, t.gain, generator=t.generator)
    with torch.no_grad():
        w.zero_()
        w[(slice(None), slice(None), *(k // 2 for k in w.shape[2:]))] = centre
    return t.gain / math.sqrt(out_channels * w[0, 0].numel())


@scheme(data_driven=True, requires=(param_rule("tol", lambda tol: tol > 0, "must be > 0"),
                                    param_rule("max_iter", lambda n: n >= 1, "must be >= 1")))
def lsuv(w: Tensor, t: Target, *, tol: float, max_iter: int) -> float:
    """Mishkin & Matas 2016, first half: orthogonal pre-init. The data half lives in init/lsuv.py."""
    return orthogonal(w, dataclasses.replace(t, gain=1.0))


def truncated_normal_std(mean: float, std: float, a: float, b: float) -> float:
    """Standard deviation of N(mean, std^2) truncated to [a, b] (the textbook formula)."""
    alpha, beta = (a - mean) / std, (b - mean) / std
    pdf = lambda x: math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)  # noqa: E731
    cdf = lambda x: 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))  # noqa: E731
    z = cdf(beta) - cdf(alpha)
    shift = (pdf(alpha) - pdf(beta)) / z
    return std * math.sqrt(1.0 + (alpha * pdf(alpha) - beta * pdf(beta)) / z - shift**2)
