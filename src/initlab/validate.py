"""Every check a type cannot express, in one place, run before any model, data or step.

Hydra's structured configs reject wrong types and enum values while composing; what is left
are values a type admits but a run cannot use (a negative std, inf epochs, a momentum of 1,
a seed torch cannot take), relations between values, and the preconditions each init scheme
declares (initlab.init.schemes.Rule), checked against the model's weight shapes from a model
built on the `meta` device (no memory, no numbers drawn). Every failure is a ConfigError:
one line naming the key, the value and what is valid.
"""

import dataclasses
import functools
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from torch import nn

from initlab.config import MODEL_SCHEMAS, SYNTHETIC_ONLY, Protocol
from initlab.data import DATASETS, DatasetSpec, spec_of
from initlab.errors import ConfigError, UnknownKey, choices
from initlab.init.apply import check_fit_shapes, check_scheme_args, residual_branches, weight_shapes
from initlab.init.fan import FanMode
from initlab.init.gain import Gain, resolve_gain
from initlab.init.schemes import SCHEMES
from initlab.models import BUILDERS, ResNet, build_model
from initlab.track.records import FINAL_METRICS

SEED_RANGE = (-0x8000_0000_0000_0000, 0xFFFF_FFFF_FFFF_FFFF)  # what torch.manual_seed accepts
INFINITE_OK = {"train.diverge_loss"}  # inf: only a non-finite loss counts as diverged


@dataclass(frozen=True)
class Settings:
    """The validated values the run needs, resolved from the config."""

    device: torch.device
    mode: FanMode | None
    gain: Gain | None
    input_shape: list[int]
    num_classes: int


def validate(cfg, runs_elsewhere: bool = False) -> Settings:
    """Check `cfg` (a composed `train` config, with or without its `hydra` node) for everything
    a run would trip over later. `runs_elsewhere`: the run is for another machine (a SLURM node),
    whose devices and memory are not this one's."""
    values = _check_schema(cfg)
    _check_finite(values)
    cfg = _Plain.of(values)  # the checks below read plain data: a DictConfig's access costs ~10 us a key
    gain = resolve_gain(cfg.gain, cfg.model.activation.value, cfg.model.negative_slope)
    check_scheme_args(cfg.init.scheme, cfg.mode, cfg.gain)
    _check_model(cfg.model)
    spec = _check_data(cfg.data)
    _check_optim(cfg.optim)
    _check_train(cfg.train)
    _require(SEED_RANGE[0] <= cfg.seed <= SEED_RANGE[1], "seed", cfg.seed,
             "must be in [-2**63, 2**64 - 1] (torch.manual_seed)")
    if cfg.logger.backend.value == "wandb":
        _check_wandb_names(cfg.logger)
    device = resolve_device(cfg.device, True if runs_elsewhere else None)
    facts = _check_fit(cfg, spec)
    if not runs_elsewhere:
        _check_memory(cfg, facts.params, device)
    return Settings(device, cfg.mode, gain, spec.input_shape, spec.num_classes)


class _Plain(dict):
    """A resolved config as plain data, read as the config reads (cfg.model.depth, cfg["model"])."""

    def __getattr__(self, key: str):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    @classmethod
    def of(cls, value):
        return cls({k: cls.of(v) for k, v in value.items()}) if isinstance(value, dict) else value


def check_protocol(protocol) -> None:
    """An experiment's declared protocol (`hydra.sweeper.protocol`) against its schema
    (initlab.config.Protocol): known keys, right types, every required field given."""
    if protocol is None:
        return
    prefix = "hydra.sweeper.protocol"
    for part, entries in dict(protocol).items():  # list entries first, one by one: OmegaConf's errors drop the index
        field_type = Protocol.__dataclass_fields__[part].type if part in Protocol.__dataclass_fields__ else None
        if isinstance(entries, (list, ListConfig)) and getattr(field_type, "__origin__", None) is list:
            for i, entry in enumerate(entries):
                _merged(field_type.__args__[0], entry, f"{prefix}.{part}[{i}]")
    checked = _merged(Protocol, protocol, prefix)
    missing = sorted(_missing_keys(checked, prefix))
    if missing:
        raise ConfigError(missing[0], "???", "required: every entry of a protocol says it (initlab.config.Protocol)")
    for i, selection in enumerate(checked.selects):
        if selection.metric not in FINAL_METRICS:
            raise ConfigError(f"{prefix}.selects[{i}].metric", selection.metric, choices(FINAL_METRICS, selection.metric))


def _merged(schema: type, value, prefix: str) -> DictConfig:
    try:
        return OmegaConf.merge(OmegaConf.structured(schema), value)
    except OmegaConfBaseException as err:
        raise ConfigError(f"{prefix}.{err.key if err.key is not None else err.full_key}",
                          err.value if hasattr(err, "value") else None, str(err.msg).splitlines()[0]) from None


def _missing_keys(node, prefix: str):
    """The dotted keys of `node` (a DictConfig or ListConfig) still MISSING."""
    items = enumerate(node) if OmegaConf.is_list(node) else ((k, None) for k in node)
    for key, _ in items:
        full = f"{prefix}[{key}]" if OmegaConf.is_list(node) else f"{prefix}.{key}"
        if OmegaConf.is_missing(node, key):
            yield full
        elif OmegaConf.is_config(node[key]):
            yield from _missing_keys(node[key], full)


def resolve_device(name: str, cuda_available: bool | None = None) -> torch.device:
    """`auto` is CUDA when present, else CPU; an unavailable device is a config error.
    `cuda_available`: on the machine that runs it (None: this one)."""
    here = cuda_available is None
    cuda_available = torch.cuda.is_available() if here else cuda_available
    if name == "auto":
        return torch.device("cuda" if cuda_available else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError("device", name, "valid choices: auto, cpu, cuda, cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise ConfigError("device", name, "valid choices: auto, cpu, cuda, cuda:N")
    if device.type == "cuda" and not cuda_available:
        raise ConfigError("device", name, "CUDA is not available on this machine; valid choices: auto, cpu")
    if here and device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        gpus = ", ".join(f"cuda:{i}" for i in range(torch.cuda.device_count()))
        raise ConfigError("device", name, f"this machine has {torch.cuda.device_count()} GPU(s): {gpus}")
    return device


def _check_schema(cfg) -> dict:
    """Every interpolation resolves, `init`/`model` hold the schema their name says, and no
    section holds a key its schema lacks (`+model.widht=3` composes, but nothing reads it).
    Returns the config (its `hydra` node aside) as plain data, resolved."""
    _check_group(cfg, "init", "scheme", {name: s.params for name, s in SCHEMES.items()})
    _check_group(cfg, "model", "name", MODEL_SCHEMAS)
    try:
        values = _resolved(cfg)
    except OmegaConfBaseException as err:
        raw = OmegaConf.to_container(cfg, resolve=False)
        for part in err.full_key.split("."):
            raw = raw.get(part) if isinstance(raw, dict) else None
        raise ConfigError(err.full_key or "config", raw, str(err.msg).splitlines()[0]) from None
    _check_keys(cfg, "")
    return values


def _resolved(cfg) -> dict:
    """The config as plain data, every interpolation resolved; a `hydra` node (a composed
    command line's) left out: it holds values only Hydra's launch sets."""
    if "hydra" not in cfg:
        return OmegaConf.to_container(cfg, resolve=True)
    sections = {key: cfg[key] for key in cfg if key != "hydra"}  # cfg[key] resolves a value
    return {key: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v for key, v in sections.items()}


def _check_group(cfg, group: str, name_key: str, schemas: dict[str, type]) -> None:
    node = OmegaConf.select(cfg, group, default=None)  # `~init` deletes it
    name = node.get(name_key) if isinstance(node, DictConfig) else node
    if name not in schemas:
        raise ConfigError(group, name, choices(schemas, name))
    if OmegaConf.get_type(node) is not schemas[name]:
        raise ConfigError(f"{group}.{name_key}", name,
                          f"choose the {group} with {group}={name}, not {group}.{name_key}")


def _check_keys(node: DictConfig, prefix: str) -> None:
    schema = OmegaConf.get_type(node)
    fields = [f.name for f in dataclasses.fields(schema)] if dataclasses.is_dataclass(schema) else None
    for key in node:
        if key == "hydra" and not prefix:
            continue
        if fields is not None and key not in fields:
            raise UnknownKey(f"{prefix}{key}", node[key], choices(fields, key, noun="keys", section=prefix.rstrip(".")))
        child = node._get_node(key)
        if isinstance(child, DictConfig):
            _check_keys(child, f"{prefix}{key}.")


def _check_finite(values: dict) -> None:
    """inf and nan pass a float's type check, but no key here can run with them."""
    for key, value in _leaves(values, ""):
        if isinstance(value, float) and not math.isfinite(value):
            _require(key in INFINITE_OK and value == math.inf, key, value, "must be a finite number")


def _leaves(node, prefix: str):
    """(dotted key, value) of every leaf of plain data; list items as key[i]."""
    items = enumerate(node) if isinstance(node, list) else node.items()
    for key, value in items:
        full = f"{prefix}[{key}]" if isinstance(node, list) else f"{prefix}{'.' if prefix else ''}{key}"
        if isinstance(value, (dict, list)):
            yield from _leaves(value, full)
        else:
            yield full, value


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


def _check_data(data) -> DatasetSpec:
    _check_positive(data, "data", ["batch_size", "eval_batch_size"])
    if data.name.value == "synthetic":
        for key in SYNTHETIC_ONLY:
            _require(data[key] is not None, f"data.{key}", None, "dataset=synthetic needs it")
    spec = spec_of(data)
    if data.name.value == "synthetic":
        shape = list(data.input_shape)
        _require(len(shape) >= 1 and min(shape) >= 1, "data.input_shape", shape,
                 "must be a non-empty list of sizes >= 1")
        _require(data.num_classes >= 2, "data.num_classes", data.num_classes, "must be >= 2")
        _check_positive(data, "data", ["train_size", "test_size"])
    else:
        root = Path(data.root).expanduser()
        _require(not root.exists() or root.is_dir(), "data.root", data.root,
                 "is a file; must be a folder (or not exist yet)")
    if data.resize is not None:
        native = DATASETS[data.name.value].input_shape if DATASETS[data.name.value] else list(data.input_shape)
        _require(len(native) == 3, "data.resize", data.resize, f"takes images [C, H, W]; {data.name.value}'s "
                 f"inputs are {native}")
        _require(1 <= data.resize <= min(native[1:]), "data.resize", data.resize,
                 f"must be in [1, {min(native[1:])}]: {data.name.value}'s images are {native[1]}x{native[2]}")
    if data.subset is not None:
        _require(1 <= data.subset <= spec.train_size, "data.subset", data.subset,
                 f"must be in [1, {spec.train_size}]: {data.name.value}'s training split has {spec.train_size}"
                 " examples")
    return spec


def _check_optim(optim) -> None:
    _check_positive(optim, "optim", ["lr"])
    _require(0 <= optim.momentum < 1, "optim.momentum", optim.momentum, "must be in [0, 1)")
    _require(not optim.nesterov or optim.momentum > 0, "optim.nesterov", True, "needs optim.momentum > 0")
    _require(optim.weight_decay >= 0, "optim.weight_decay", optim.weight_decay, "must be >= 0")
    betas = list(optim.betas)
    _require(len(betas) == 2 and all(0 <= b < 1 for b in betas), "optim.betas", betas, "must be two numbers in [0, 1)")
    _require(optim.warmup_steps >= 0, "optim.warmup_steps", optim.warmup_steps, "must be >= 0")


def _check_train(train) -> None:
    _check_positive(train, "train", ["log_every", "eval_every", "ckpt_every", "diverge_loss"])
    _require(train.steps >= 0, "train.steps", train.steps, "must be >= 0 (0: initialise only)")
    _require(train.epochs is None or train.epochs > 0, "train.epochs", train.epochs,
             "must be > 0 (or null: use train.steps)")


def _check_wandb_names(logger) -> None:
    """wandb's own rules for project, group, name and tags (it raises them only at wandb.init,
    after the data is loaded)."""
    import wandb  # here: a run with logger=none never pays for the import

    keys = {"project": "project", "entity": "entity", "run_group": "group", "run_name": "name", "run_tags": "tags"}
    values = {field: logger[key] if key != "tags" else tuple(logger.tags) for field, key in keys.items()}
    try:
        wandb.Settings(**{field: value for field, value in values.items() if value is not None})
    except wandb.errors.UsageError as err:  # the project's validator raises it bare
        raise ConfigError("logger.project", logger.project, str(err)) from None
    except ValueError as err:  # pydantic's ValidationError, one entry per field
        field, detail = err.errors()[0]["loc"][0], err.errors()[0]["msg"]
        raise ConfigError(f"logger.{keys[field]}", values[field], detail.removeprefix("Value error, ")) from None


@dataclass(frozen=True)
class ModelFacts:
    """What validation reads of a model: its weight shapes, residual branches, 2-D convolutions
    and parameter count."""

    shapes: list[tuple[int, ...]]
    residual: bool
    has_conv: bool
    params: int


def _check_fit(cfg, spec: DatasetSpec) -> ModelFacts:
    """The model takes the data's shape, and the scheme's preconditions hold for its weights."""
    model = json.dumps(cfg.model, sort_keys=True, default=lambda e: e.value)  # enums by value
    facts = _model_facts(model, tuple(spec.input_shape), spec.num_classes)
    _require(not facts.has_conv or len(spec.input_shape) == 3, "data.input_shape", list(spec.input_shape),
             f"model={cfg.model.name} has 2-D convolutions: needs [channels, height, width]")
    check_fit_shapes(cfg.init.scheme, cfg.init, facts.shapes, facts.residual)
    _require(cfg.init.bias_std >= 0, "init.bias_std", cfg.init.bias_std, "must be >= 0")
    return facts


@functools.lru_cache(maxsize=64)
def _model_facts(model: str, input_shape: tuple[int, ...], num_classes: int) -> ModelFacts:
    """ModelFacts of initlab's model for the JSON config `model`, built on the meta device (no
    memory, no numbers drawn), once per process for each config and data shape: a grid's jobs
    share a few, and a depth-100 MLP takes 15 ms to build and 1 ms to read."""
    plain = json.loads(model) | {"lazy": False}
    with torch.device("meta"):
        net = build_model(OmegaConf.merge(MODEL_SCHEMAS[plain["name"]], plain), list(input_shape), num_classes)
    return ModelFacts(weight_shapes(net), bool(residual_branches(net)),
                      any(isinstance(m, nn.Conv2d) for m in net.modules()), sum(p.numel() for p in net.parameters()))


def _check_memory(cfg, params: int, device: torch.device) -> None:
    """The weights, and their gradients when it trains, fit in the device's memory: a model too
    large for it would be killed mid-run, leaving no record."""
    need = params * 4 * (2 if cfg.train.steps or cfg.train.epochs else 1)  # float32
    if device.type == "cuda":
        have = torch.cuda.get_device_properties(device).total_memory
    else:
        have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    size_key = "channels" if cfg.model.name == "cnn" else "width"
    _require(need <= have, "model", f"{cfg.model.name} depth={cfg.model.depth} {size_key}={cfg.model[size_key]}",
             f"{params:.3g} parameters, {need / 2**30:.3g} GiB with gradients, more than the "
             f"{have / 2**30:.3g} GiB of {device.type} memory here; choose a smaller model.{size_key} or model.depth")


def _check_positive(section, name: str, keys: list[str]) -> None:
    for key in keys:
        _require(section[key] > 0, f"{name}.{key}", section[key], "must be > 0")


def _require(ok: bool, key: str, value, expected: str) -> None:
    if not ok:
        raise ConfigError(key, value, expected)
