"""A pack, start to finish: each run locked, validated, initialised and recorded by the same
functions initlab.run.run uses, then all of them trained as one stacked computation.

wandb: one run per packed run, as alone. The mirror is filled from the run's metrics.jsonl
when training ends (or stops), one run after another, because the mirror finishes the previous
wandb run whenever it starts one, and metrics.jsonl is the record wandb mirrors anyway.
"""

import json
import logging
import time
from contextlib import ExitStack
from pathlib import Path

import torch
from omegaconf import OmegaConf

from initlab.data import load_data
from initlab.init.schemes import SCHEMES
from initlab.packed.loop import Member, train_pack
from initlab.run import (build_initialised, close_run, failure_summary, log_outcome, plain, record_failure,
                         run_summary, start, write_init)
from initlab.track.records import RunRecords, read_metrics
from initlab.track.wandb_mirror import NoMirror, WandbMirror
from initlab.train.loop import Outcome
from initlab.train.preemption import StopRequest

log = logging.getLogger("initlab")
# What may differ inside a pack; everything else fixes tensor shapes or the loop's schedule.
PER_RUN = ("seed", "init", "mode", "gain", "logger")
PER_RUN_OPTIM = ("lr", "momentum", "nesterov", "weight_decay", "betas", "schedule", "warmup_steps")


def pack_key(cfg) -> str | None:
    """Runs with equal keys can train as one stack; None for a run that cannot (not an MLP, a
    norm layer, a data-driven init such as LSUV, augmented data, or nothing to train)."""
    values = plain(OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"]))  # a launcher's job config
    model = values["model"]
    if model["name"] != "mlp" or model["norm"] != "none" or SCHEMES[cfg.init.scheme].data_driven or cfg.data.augment:
        return None
    if not (cfg.train.steps or cfg.train.epochs):
        return None
    shared = {key: value for key, value in values.items() if key not in (*PER_RUN, "optim")}
    shared["optim"] = {k: v for k, v in values["optim"].items() if k not in PER_RUN_OPTIM}
    return json.dumps(shared, sort_keys=True)


def run_pack(cfgs: list, run_dirs: list[Path], group: str | None = None) -> list[Outcome | BaseException]:
    """Run `cfgs` (all of one pack_key) into `run_dirs` together; `group` names the wandb group.
    Returns, per run, its Outcome or the exception that ended it: a run's own mistake (a
    ConfigError) fails that run only; an error while training fails every run of the pack.
    Every run leaves the records run() leaves, summary.json on every exit included."""
    results: list[Outcome | BaseException | None] = [None] * len(cfgs)
    started = time.time()
    with ExitStack() as held, StopRequest() as stop:
        members: dict[int, Member] = {}
        for i, (cfg, run_dir) in enumerate(zip(cfgs, run_dirs)):
            try:
                prepared = _prepare(cfg, RunRecords(run_dir), held, started)
            except Exception as err:
                results[i] = err
                continue
            if isinstance(prepared, Outcome):
                results[i] = prepared  # completed or diverged before: nothing to do
            else:
                members[i] = prepared
        if members:
            _train(list(members.values()), group, started, stop)
            results = [members[i].outcome if i in members else r for i, r in enumerate(results)]
            for i, m in members.items():
                if m.outcome.status == "failed":
                    results[i] = m.error
    if any(isinstance(r, Outcome) and r.status == "interrupted" for r in results):
        stop.forward()
    return results


def _prepare(cfg, records: RunRecords, held: ExitStack, started: float) -> Member | Outcome:
    """What run() does before training, for one run of the pack (its lock held in `held`)."""
    held.enter_context(records.locked())
    outcome = Outcome("running", 0)
    try:
        with records.train_log():
            settings = start(cfg, records, outcome)
            if isinstance(settings, Outcome):
                return settings
            model, init_records = build_initialised(cfg, settings)
            write_init(cfg, records, init_records)
        return Member(cfg, records, outcome, model, str(settings.device))
    except BaseException as err:
        record_failure(records, NoMirror(), failure_summary(records, outcome, err, started, None))
        raise


def _train(members: list[Member], group: str | None, started: float, stop: StopRequest) -> None:
    cfg, pack = members[0].cfg, {"pack_size": len(members)}  # each run's wall_s is the pack's
    log.info("training %d runs as one pack: %s", len(members), ", ".join(m.records.dir.name for m in members))
    try:
        torch.use_deterministic_algorithms(cfg.train.deterministic)
        train_pack(members, load_data(cfg.data, torch.device(members[0].device)), stop)
    except BaseException as err:
        for m in members:
            m.error = err
            summary = failure_summary(m.records, m.outcome, err, started, m.device) | pack
            record_failure(m.records, _mirror(m, group), summary)
        if not isinstance(err, Exception):
            raise
        return
    for m in members:
        close_run(m.records, _mirror(m, group), run_summary(m.outcome, started, m.device) | pack)
        with m.records.train_log():
            log_outcome(m.outcome, m.records.dir.name)


def _mirror(m: Member, group: str | None):
    """The run's wandb run, given the metrics it logged in this process (from step m.start on)."""
    if m.cfg.logger.backend.value != "wandb":
        return NoMirror()
    mirror = WandbMirror(m.cfg.logger, m.records.dir, plain(m.cfg), m.records.dir.name, group,
                         resume=m.cfg.train.resume)
    for record in read_metrics(m.records.dir):
        if record["step"] >= m.start:
            mirror.log(record)
    return mirror
