"""Which jobs of a grid can train together as one pack (initlab.run.run_pack), and the packs."""

import json

from omegaconf import OmegaConf

from initlab.run import plain

# What may differ inside a pack; everything else fixes tensor shapes or the loop's schedule.
PER_RUN = ("seed", "init", "mode", "gain", "logger")
PER_RUN_OPTIM = ("lr", "momentum", "nesterov", "weight_decay", "betas", "schedule", "warmup_steps")


def pack_key(cfg) -> str | None:
    """Runs with equal keys can train as one stack: every architecture, norm layer, init scheme
    (LSUV too) and augmentation packs. None for a run with nothing to train (init-only)."""
    if not (cfg.train.steps or cfg.train.epochs):
        return None
    values = plain(OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"]))  # a launcher's job config holds hydra too
    shared = {key: value for key, value in values.items() if key not in (*PER_RUN, "optim")}
    shared["optim"] = {k: v for k, v in values["optim"].items() if k not in PER_RUN_OPTIM}
    return json.dumps(shared, sort_keys=True)


def packs(keys: list[str | None], max_pack: int) -> list[list[int]]:
    """Indices of the jobs with `keys`, grouped into packs of equal key and at most `max_pack`
    jobs, in grid order; a job with no key is a pack of its own."""
    groups: dict[object, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key if key is not None else ("alone", i), []).append(i)
    return [ids[i : i + max_pack] for ids in groups.values() for i in range(0, len(ids), max_pack)]
