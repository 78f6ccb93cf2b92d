"""Optimizers and learning-rate schedules from `optim.*`."""

import math

import torch
from torch.optim.lr_scheduler import LambdaLR


def build_optimizer(cfg, params) -> torch.optim.Optimizer:
    if cfg.name.value == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                               weight_decay=cfg.weight_decay)
    cls = torch.optim.Adam if cfg.name.value == "adam" else torch.optim.AdamW
    return cls(params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)


def build_schedule(cfg, optimizer: torch.optim.Optimizer, total_steps: int) -> LambdaLR:
    """Linear warmup over `warmup_steps`, then constant or cosine decay to zero."""
    warmup = cfg.warmup_steps
    cosine = cfg.schedule.value == "cosine"

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if not cosine:
            return 1.0
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return LambdaLR(optimizer, factor)
