"""Shared helpers: configs composed in-process exactly as train.py composes them (the
hydra.compose pattern of lightning-hydra-template), runs called in-process, one-layer models."""

import os
from pathlib import Path

# One intra-op thread, here and in every subprocess a test starts: the tests' models are tiny,
# and threads of parallel processes on two cores spin against each other (5-10x slower steps).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("WANDB_SILENT", "true")

import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig
from torch import nn

from initlab.config import register_configs
from initlab.run import run
from initlab.train.loop import Outcome

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
CONF = Path(__file__).resolve().parents[1] / "conf"
register_configs()


def compose_config(*overrides: str, hydra_config: bool = False) -> DictConfig:
    """conf/train.yaml with `overrides`, as `python train.py <overrides>` would compose it."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=hydra_config)


def run_in_process(run_dir: Path, *overrides: str) -> Outcome:
    """One run into `run_dir`, in this process; wandb off unless an override turns it on."""
    defaults = ["train.progress=false"] + ([] if any(o.startswith("logger") for o in overrides) else ["logger=none"])
    return run(compose_config(*defaults, *overrides), run_dir)


def layer_for(shape: tuple[int, ...]) -> nn.Module:
    """A bias-free Linear or Conv layer whose weight has `shape`, inside a Sequential."""
    if len(shape) == 2:
        layer = nn.Linear(shape[1], shape[0], bias=False)
    else:
        conv = {3: nn.Conv1d, 4: nn.Conv2d, 5: nn.Conv3d}[len(shape)]
        layer = conv(shape[1], shape[0], shape[2:], bias=False)
    return nn.Sequential(layer)
