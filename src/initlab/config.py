"""Structured configs: the schema behind every key a user can type.

Hydra validates types and enum values against these dataclasses while it composes the
config, so `mode=fan_inn` or `model.depth=abc` is rejected before any job of a multirun
starts. What a type cannot say (a gain that is a number *or* a name, ResNet depths of the
form 6n+2, a scheme that takes no fan mode) is checked by `initlab.validate`.
"""

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from initlab.init.params import SCHEME_PARAMS, FanMode

# The names model.activation and dataset take, as the tables that own them list them
# (initlab.activations.ACTIVATIONS, initlab.data.DATASETS). Written out here: those tables import
# torch, which composing a config (train.py --help, tab completion) must not wait for;
# tests/test_startup.py holds each list equal to its table.
ACTIVATION_NAMES = ("relu", "leaky_relu", "tanh", "sigmoid", "erf", "softsign", "selu", "gelu", "silu", "elu",
                    "softplus", "linear")
DATASET_NAMES = ("mnist", "fashion_mnist", "cifar10", "cifar100", "synthetic")
Activation = Enum("Activation", {name: name for name in ACTIVATION_NAMES}, type=str, module=__name__)
DatasetName = Enum("DatasetName", {name: name for name in DATASET_NAMES}, type=str, module=__name__)


class Padding(str, Enum):
    """How a 'same' convolution pads: torch's padding_mode values."""

    zeros = "zeros"
    circular = "circular"
    reflect = "reflect"
    replicate = "replicate"


class Norm(str, Enum):
    none = "none"
    batch = "batch"
    layer = "layer"


@dataclass
class ModelBase:
    name: str = MISSING
    depth: int = 3  # weight layers (Linear/Conv), output layer included, as papers count
    activation: Activation = Activation.relu
    negative_slope: float = 0.01  # leaky_relu's slope
    norm: Norm = Norm.none
    bias: bool = True
    lazy: bool = False  # build with Lazy* modules, materialised by the first batch


@dataclass
class MLPConfig(ModelBase):
    name: str = "mlp"
    width: int = 256


@dataclass
class CNNConfig(ModelBase):
    name: str = "cnn"
    depth: int = 6
    channels: int = 32
    kernel: int = 3
    padding: Padding = Padding.zeros  # circular: the setting of convolutional mean field (Xiao et al. 2018)


@dataclass
class ResNetConfig(ModelBase):
    name: str = "resnet"
    depth: int = 20  # see ResNet.DEPTHS
    width: int = 16  # channels of the first stage; doubled at each of the two downsamplings
    norm: Norm = Norm.batch


@dataclass
class DataConfig:
    name: DatasetName = DatasetName.mnist
    root: str = "./data"
    batch_size: int = 128
    eval_batch_size: int = 1000
    subset: int | None = None  # use the first N training examples
    augment: bool = False  # random crop (pad 4) + horizontal flip, on the device (CIFAR)
    resize: int | None = None  # images averaged down to resize x resize as loaded: deep conv nets on a CPU
    download: bool = True  # let torchvision download when no local copy is found
    # dataset=synthetic only (conf/dataset/synthetic.yaml sets them): Gaussian inputs labelled by a
    # fixed random teacher. null for a real dataset, whose shape and sizes data.DATASETS knows.
    input_shape: list[int] | None = None
    num_classes: int | None = None
    train_size: int | None = None
    test_size: int | None = None


SYNTHETIC_ONLY = ("input_shape", "num_classes", "train_size", "test_size")  # the DataConfig keys above


def unused_data_keys(dataset: str | None) -> list[str]:
    """The synthetic-only keys (`data.num_classes`, ...) when `dataset` is not synthetic: they do
    not describe its runs (a real dataset's shape and sizes are its own)."""
    return [] if dataset == "synthetic" else [f"data.{key}" for key in SYNTHETIC_ONLY]


class OptimName(str, Enum):
    sgd = "sgd"
    adam = "adam"
    adamw = "adamw"


class Schedule(str, Enum):
    constant = "constant"
    cosine = "cosine"


@dataclass
class OptimConfig:
    name: OptimName = OptimName.sgd
    lr: float = 0.01
    momentum: float = 0.9  # sgd
    nesterov: bool = False  # sgd
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # adam, adamw
    schedule: Schedule = Schedule.constant
    warmup_steps: int = 0  # linear warmup from 0, before the schedule


class LoggerBackend(str, Enum):
    wandb = "wandb"
    none = "none"


class WandbMode(str, Enum):
    online = "online"
    offline = "offline"
    disabled = "disabled"


@dataclass
class LoggerConfig:
    backend: LoggerBackend = LoggerBackend.wandb
    project: str = "initlab"
    entity: str | None = None
    group: str | None = None
    name: str | None = None
    tags: list[str] = field(default_factory=list)
    mode: WandbMode | None = None  # None: WANDB_MODE, else online with credentials, else offline


@dataclass
class TrainConfig:
    steps: int = 1000
    epochs: float | None = None  # when set, overrides steps
    log_every: int = 50  # diagnostics (per-layer statistics) every N steps, and at step 0
    eval_every: int = 500  # test-split evaluation every N steps, and at the end
    ckpt_every: int = 500  # last.pt every N steps, and at the end
    resume: bool = False  # continue from last.pt in this run directory
    deterministic: bool = False  # bit-identical reruns (torch deterministic algorithms)
    progress: bool = True  # tqdm bar, on an interactive terminal only
    diverge_loss: float = 1000.0  # a loss above this (or non-finite) ends the run as `diverged`


@dataclass
class PaperSetting:
    """A setting taken from the paper, with where the paper states it."""
    what: str = MISSING
    value: str = MISSING
    source: str = MISSING  # section, figure, table or equation
    keys: list[str] = field(default_factory=list)  # config keys that carry it: the report prints the runs' values


@dataclass
class Departure:
    """Something this experiment does differently from the paper, and why."""
    what: str = MISSING
    paper: str = MISSING
    here: str = MISSING
    why: str = MISSING
    keys: list[str] = field(default_factory=list)


@dataclass
class Choice:
    """How a free hyperparameter (one the paper does not fix for this setting) is chosen."""
    key: str = MISSING  # its config key, e.g. optim.lr
    rule: str = MISSING  # e.g. a pre-sweep over candidate values, on seeds the main grid does not use
    criterion: str = MISSING  # what picks the value
    seeds: list[int] = field(default_factory=list)  # the seeds the rule ran on
    before_grid: bool = MISSING  # false: chosen after the main grid's results were seen
    presweep: str | None = None  # the named experiment that ran the rule (its report states the value it picks)


class Goal(str, Enum):
    min = "min"
    max = "max"


@dataclass
class Selection:
    """A pre-sweep's rule, stated before it runs: the value of the grid axis `key` whose runs have the
    best mean final `metric`; a value at which any run diverged or failed is not eligible."""
    key: str = MISSING  # a grid axis of the pre-sweep, e.g. optim.lr
    metric: str = MISSING  # a final metric, e.g. train/loss
    goal: Goal = MISSING
    used_by: str = MISSING  # the named experiment whose grid takes the value


@dataclass
class Fit:
    """A quantity fitted to the runs: fitted on some seeds, scored on the others."""
    quantity: str = MISSING  # its name in the report's claims, e.g. k
    fit_seeds: list[int] = MISSING
    score_seeds: list[int] = MISSING


@dataclass
class Protocol:
    """What a named experiment takes from its paper, what it changes, and how it chooses the rest.
    It describes the grid, not a run: it lives beside the grid's axes, in `hydra.sweeper.protocol`
    (checked against this schema with the grid, initlab.validate.check_protocol); every job's
    .hydra/hydra.yaml records it, and the report prints it."""
    paper: str | None = None
    takes: list[PaperSetting] = field(default_factory=list)
    changes: list[Departure] = field(default_factory=list)
    chooses: list[Choice] = field(default_factory=list)
    fits: list[Fit] = field(default_factory=list)
    selects: list[Selection] = field(default_factory=list)  # a pre-sweep's rules


# One schema per builder in initlab.models.BUILDERS, under the builder's name (tests/test_startup.py).
MODEL_SCHEMAS = {cls.name: cls for cls in (MLPConfig, CNNConfig, ResNetConfig)}


@dataclass
class Config:
    init: Any = MISSING
    model: Any = MISSING
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    mode: FanMode | None = None  # None: the scheme's own default
    gain: str | None = None  # number | nonlinearity name | auto; None: the scheme's default
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N


def register_configs() -> None:
    """Put the schemas in Hydra's ConfigStore; conf/ yaml files build on them (conf/init/kaiming.yaml
    on init_kaiming_schema). Stored outside any config group: a group is something a user sets,
    and Hydra lists every group in --help and offers it on Tab."""
    cs = ConfigStore.instance()
    cs.store(name="config_schema", node=Config)
    for name, cls in MODEL_SCHEMAS.items():
        cs.store(name=f"model_{name}_schema", node=cls)
    for name, cls in SCHEME_PARAMS.items():
        cs.store(name=f"init_{name}_schema", node=cls)
