"""Mean-field signal propagation at the command line (Poole et al. 2016; Schoenholz et al. 2017).

    python scripts/theory.py activation=tanh sigma_w2=1.5 sigma_b2=0.05 [negative_slope=0.01] [q_start=1] [--json]
    python scripts/theory.py activation=tanh sigma_b2=0.05 critical=true [--json]
    python scripts/theory.py phase activation=tanh [sigma_w2=[0.5,4]] [sigma_b2=[0,0.5]] [points=25] [out=FILE.png]

Arguments are key=value, as Hydra overrides are typed. sigma_w2 is fan_in * Var[W], sigma_b2 is
Var[b]. The first form prints q*, c*, chi_1, chi_c*, xi_q, xi_c and the phase (--json: one JSON
object); critical=true prints the sigma_w2 where chi_1 = 1, or why there is none (e.g. the sigma_w2
from which q* diverges, found to ~1e-12); `phase` draws xi_c over a grid of (sigma_w2, sigma_b2) in
log colour with the chi_1 = 1 line, to a PNG. Activations: initlab's table (erf included).
"""

import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, ValidationError

from initlab.activations import ACTIVATIONS
from initlab.errors import ConfigError, choices
from initlab.theory import find_critical, mean_field

USAGE = __doc__.split("\n\n")[1]
_LABELS = (("q_star", "q*"), ("c_star", "c*"), ("chi_1", "chi_1"), ("chi_c", "chi_c*"), ("xi_q", "xi_q"),
           ("xi_c", "xi_c"), ("phase", "phase"))


@dataclass
class PointArgs:
    activation: str = "tanh"
    sigma_w2: float | None = None  # required unless critical=true
    sigma_b2: float = 0.0
    negative_slope: float = 0.01
    q_start: float = 1.0  # the variance the map starts from (a network's first layer's): picks q* where there are two
    critical: bool = False


@dataclass
class PhaseArgs:
    activation: str = "tanh"
    sigma_w2: list[float] = field(default_factory=lambda: [0.5, 4.0])  # [low, high]
    sigma_b2: list[float] = field(default_factory=lambda: [0.0, 0.5])
    points: int = 25  # per axis
    negative_slope: float = 0.01
    out: str | None = None  # default: phase_<activation>.png in the current folder


def parse(schema: type, args: list[str]):
    """key=value arguments onto `schema`, typed by OmegaConf; a bad one is a ConfigError."""
    keys = list(schema.__dataclass_fields__)
    for arg in args:
        if "=" not in arg:
            raise ConfigError("arguments", arg, f"key=value pairs; valid keys: {', '.join(keys)}")
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(schema), OmegaConf.from_dotlist(args))
    except ConfigKeyError as err:
        given = next(a.split("=", 1)[1] for a in args if a.split("=", 1)[0] == err.full_key)
        raise ConfigError(err.full_key, given, f"unknown key; valid keys: {', '.join(keys)}") from None
    except ValidationError as err:
        raise ConfigError(err.full_key, err.value, _expected(schema.__dataclass_fields__[err.full_key].type)) from None
    if cfg.activation not in ACTIVATIONS:
        raise ConfigError("activation", cfg.activation, choices(ACTIVATIONS, cfg.activation))
    return cfg


def _expected(kind) -> str:
    return {bool: "true or false", int: "an integer"}.get(kind, "[low,high]" if "list" in str(kind) else "a number")


def point(args: list[str], as_json: bool) -> None:
    cfg = parse(PointArgs, args)
    _non_negative(cfg, "sigma_b2")
    _finite(cfg, "negative_slope")
    if cfg.critical:
        value, why = find_critical(cfg.activation, cfg.sigma_b2, cfg.negative_slope)
        result = {"activation": cfg.activation, "sigma_b2": cfg.sigma_b2, "critical_sigma_w2": value} | (
            {"reason": why} if value is None else {})
        print(json.dumps(result) if as_json else f"{cfg.activation}, sigma_b^2={cfg.sigma_b2:g}: critical sigma_w^2 "
              + (f"= {value:.6g} (chi_1 = 1)" if value is not None else f"does not exist: {why}"))
        return
    if cfg.sigma_w2 is None:
        raise ConfigError("sigma_w2", None, "a number >= 0 (fan_in * Var[W]), or critical=true")
    _non_negative(cfg, "sigma_w2")
    _non_negative(cfg, "q_start")
    mf = mean_field(cfg.activation, cfg.sigma_w2, cfg.sigma_b2, cfg.negative_slope, cfg.q_start)
    if as_json:
        print(json.dumps(mf.as_dict()))
        return
    print(f"{cfg.activation}, sigma_w^2={cfg.sigma_w2:g}, sigma_b^2={cfg.sigma_b2:g}")
    reasons = list(dict.fromkeys(mf.undefined.values()))  # each reason once, as a footnote
    for key, label in _LABELS:
        value = getattr(mf, key)
        text = f"undefined [{reasons.index(mf.undefined[key]) + 1}]" if key in mf.undefined else (
            f"{value:.6g}" if isinstance(value, float) else value)
        print(f"  {label:<7} {text}")
    if mf.depth_bound() is not None:
        print(f"  trainable depth about 6 xi_c = {mf.depth_bound():.4g} layers")
    for number, reason in enumerate(reasons, 1):
        print(f"  [{number}] {reason}")


def phase(args: list[str]) -> None:
    from initlab.theory.phase import draw_phase_diagram, phase_grid  # matplotlib only where it draws
    from initlab.track.records import check_writable  # a point's answer needs neither: it starts sooner

    cfg = parse(PhaseArgs, args)
    for key in ("sigma_w2", "sigma_b2"):
        low_high = list(cfg[key])
        if len(low_high) != 2 or not 0 <= low_high[0] < low_high[1] < math.inf:
            raise ConfigError(key, low_high, "[low,high] with 0 <= low < high, finite")
    if cfg.points < 2:
        raise ConfigError("points", cfg.points, "an integer >= 2")
    _finite(cfg, "negative_slope")
    out = Path(cfg.out or f"phase_{cfg.activation}.png")
    if out.suffix != ".png" or out.is_dir():
        raise ConfigError("out", cfg.out, "a .png file to write the diagram to")
    check_writable("out", out.parent)
    w, b = (np.linspace(*cfg[key], cfg.points) for key in ("sigma_w2", "sigma_b2"))
    grid = phase_grid(cfg.activation, w, b, cfg.negative_slope)
    print(f"wrote {draw_phase_diagram(grid, out)}")


def _non_negative(cfg, key: str) -> None:
    if not 0 <= cfg[key] < math.inf:
        raise ConfigError(key, cfg[key], "a finite number >= 0 (a variance)")


def _finite(cfg, key: str) -> None:
    if not math.isfinite(cfg[key]):
        raise ConfigError(key, cfg[key], "a finite number")


def main(argv: list[str]) -> int:
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    as_json = "--json" in argv
    args = [a for a in argv if a != "--json"]
    try:
        if args[:1] == ["phase"]:
            phase(args[1:])
        else:
            point(args, as_json)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
