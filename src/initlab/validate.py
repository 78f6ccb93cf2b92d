"""Checks that a type cannot express, run before any model, data or step.

Hydra's structured configs already rejected wrong types and enum values; what is left are
relations between values. Every failure is a ConfigError: one line, key, value, choices.
"""

from dataclasses import dataclass

import torch

from initlab.data import shape_of
from initlab.errors import ConfigError
from initlab.init.apply import check_scheme_args
from initlab.init.fan import FanMode
from initlab.init.gain import Gain, resolve_gain
from initlab.models import BUILDERS, ResNet


@dataclass(frozen=True)
class Settings:
    """The validated values the run needs, resolved from the config."""

    device: torch.device
    mode: FanMode | None
    gain: Gain | None
    input_shape: list[int]
    num_classes: int


def validate(cfg) -> Settings:
    gain = resolve_gain(cfg.gain, cfg.model.activation.value, cfg.model.negative_slope)
    check_scheme_args(cfg.init.scheme, cfg.mode, cfg.gain)
    _check_model(cfg.model)
    _check_positive(cfg, ["data.batch_size", "data.eval_batch_size", "train.log_every", "train.eval_every",
                          "train.ckpt_every", "train.diverge_loss", "optim.lr"])
    _check_positive(cfg, ["data.subset", "train.epochs"], optional=True)
    _require(cfg.train.steps >= 0, "train.steps", cfg.train.steps, "must be >= 0 (0: initialise only)")
    input_shape, num_classes = shape_of(cfg.data)
    return Settings(resolve_device(cfg.device), cfg.mode, gain, input_shape, num_classes)


def resolve_device(name: str) -> torch.device:
    """`auto` is CUDA when present, else CPU; an unavailable device is a config error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError("device", name, "valid choices: auto, cpu, cuda, cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", name, "CUDA is not available on this machine; valid choices: auto, cpu")
    if device.type not in ("cpu", "cuda"):
        raise ConfigError("device", name, "valid choices: auto, cpu, cuda, cuda:N")
    return device


def _check_model(model) -> None:
    builder = BUILDERS[model.name]
    minimum = builder.MIN_DEPTH
    _require(model.depth >= minimum, "model.depth", model.depth, f"must be >= {minimum} for model={model.name}")
    if builder is ResNet:
        _require(ResNet.depth_ok(model.depth), "model.depth", model.depth, f"ResNet depth is {ResNet.DEPTHS}")
    size_key = "channels" if model.name == "cnn" else "width"
    _require(model[size_key] > 0, f"model.{size_key}", model[size_key], "must be > 0")
    if model.name == "cnn":
        _require(model.kernel > 0 and model.kernel % 2 == 1, "model.kernel", model.kernel, "must be odd and > 0")


def _check_positive(cfg, keys: list[str], optional: bool = False) -> None:
    for key in keys:
        section, name = key.split(".")
        value = cfg[section][name]
        if not (optional and value is None):
            _require(value is not None and value > 0, key, value, "must be > 0")


def _require(ok: bool, key: str, value, expected: str) -> None:
    if not ok:
        raise ConfigError(key, value, expected)
