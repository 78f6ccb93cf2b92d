"""Which jobs of a grid can train together as one pack (initlab.run.run_pack), and the packs."""

import json
from collections.abc import Sequence

from omegaconf import OmegaConf

from initlab.sweep.compose import Job

# What may differ inside a pack; everything else fixes tensor shapes or the loop's schedule.
PER_RUN = ("seed", "init", "mode", "gain", "logger")
PER_RUN_OPTIM = ("lr", "momentum", "nesterov", "weight_decay", "betas", "schedule", "warmup_steps")


def pack_key(cfg) -> str:
    """Runs with equal keys can train as one stack: every architecture, norm layer, init scheme
    (LSUV too) and augmentation packs. Init-only runs (train.steps=0) pack too: a pack of them
    shares its data (LSUV's) and its start-up, and stacks nothing."""
    values = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    shared = {key: value for key, value in values.items() if key not in (*PER_RUN, "optim")}
    shared["optim"] = {k: v for k, v in values["optim"].items() if k not in PER_RUN_OPTIM}
    return json.dumps(shared, sort_keys=True)


def packs(jobs: Sequence[Job], max_pack: int) -> list[list[Job]]:
    """`jobs` grouped into packs of equal pack_key and at most `max_pack` jobs, in grid order."""
    groups: dict[str, list[Job]] = {}
    for job in jobs:
        groups.setdefault(pack_key(job.config), []).append(job)
    return [same[i : i + max_pack] for same in groups.values() for i in range(0, len(same), max_pack)]
