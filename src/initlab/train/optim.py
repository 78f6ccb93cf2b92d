"""Optimizers and learning-rate schedules from `optim.*`: torch's own, one param group per
(cfg, params) pair, so the runs of a pack step together with each part's own settings."""

import math
from collections.abc import Iterable

import torch
from torch import Tensor
from torch.optim.lr_scheduler import LambdaLR

OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


def build_optimizer(groups: list[tuple[object, Iterable[Tensor]]]) -> torch.optim.Optimizer:
    """One optimizer (of the first cfg's `optim.name`, which every group shares) with a param
    group per (optim cfg, params)."""
    name = groups[0][0].name.value
    return OPTIMIZERS[name]([{"params": list(params), **_settings(cfg)} for cfg, params in groups])


def _settings(cfg) -> dict:
    if cfg.name.value == "sgd":
        return dict(lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay)
    return dict(lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)


def build_schedule(cfgs: list, optimizer: torch.optim.Optimizer, total_steps: int, start: int = 0) -> LambdaLR:
    """Per param group (cfgs[i] for group i): linear warmup over `warmup_steps`, then constant
    or cosine decay to zero; at step `start` (torch's own resumption: last_epoch, initial_lr)."""
    for group in optimizer.param_groups:
        group.setdefault("initial_lr", group["lr"])
    return LambdaLR(optimizer, [_factor(cfg, total_steps) for cfg in cfgs], last_epoch=start - 1)


def _factor(cfg, total_steps: int):
    warmup, cosine = cfg.warmup_steps, cfg.schedule.value == "cosine"

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if not cosine:
            return 1.0
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor
