"""One run, start to finish: validate, build, initialise, load data, train, record."""

import logging
import time
from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf
from torch import nn

from initlab.data import Data, load_data
from initlab.errors import ConfigError
from initlab.init.apply import initialize, records_as_dicts
from initlab.init.lsuv import lsuv_rescale
from initlab.init.schemes import SCHEMES
from initlab.init.table import format_table
from initlab.models import build_model
from initlab.track.records import FINAL_METRICS, RunRecords, provenance
from initlab.track.wandb_mirror import NoMirror, WandbMirror
from initlab.train.loop import Outcome, train
from initlab.validate import Settings, validate

log = logging.getLogger("initlab")


def run(cfg) -> Outcome:
    """Run the experiment `cfg` in Hydra's run directory; summary.json is written on every exit."""
    settings = validate(cfg)
    hc = HydraConfig.get()
    records = RunRecords(Path(hc.runtime.output_dir))
    if cfg.train.resume:
        finished = _finished_before(records, cfg)
        if finished:
            return finished
    records.write_config(cfg)
    started, mirror = time.time(), NoMirror()
    summary = {"status": "failed", "steps": 0, **provenance(str(settings.device))}
    try:
        torch.use_deterministic_algorithms(cfg.train.deterministic)
        model, data = _initialised_model(cfg, settings, records)
        if data is None:
            outcome = Outcome("completed", 0)
            log.info("train.steps=0: initialised only; records in %s", records.dir)
        else:
            if cfg.logger.backend.value == "wandb":
                mirror = WandbMirror(cfg.logger, records.dir, _plain(cfg), *_wandb_names(hc))
            outcome = train(cfg, model, data, records, mirror)
    except BaseException as err:
        _close(records, mirror, summary | {"error": f"{type(err).__name__}: {err}", "wall_s": time.time() - started})
        raise
    final = _final_metrics(outcome.metrics)
    _close(records, mirror, summary | {"status": outcome.status, "steps": outcome.steps,
                                       "wall_s": time.time() - started, "reason": outcome.reason, **final})
    measured = ", ".join(f"{k}={v:.4g}" for k, v in final.items() if v is not None)
    log.info("%s after %d steps%s", outcome.status, outcome.steps, f": {measured}" if measured else "")
    return outcome


def _initialised_model(cfg, settings: Settings, records: RunRecords) -> tuple[nn.Module, Data | None]:
    """Build and initialise the model (before any data: init errors cost nothing), then load
    the data when the run trains or the scheme needs a batch (LSUV); write init.json."""
    torch.manual_seed(cfg.seed)  # torch's own layer init (kept by init=default) draws from it
    model = build_model(cfg.model, settings.input_shape, settings.num_classes)
    init_records = initialize(model, cfg.init, settings.mode, settings.gain, torch.Generator().manual_seed(cfg.seed))
    model.to(settings.device)
    data_driven = SCHEMES[cfg.init.scheme].data_driven
    data = load_data(cfg.data, settings.device) if cfg.train.steps or cfg.train.epochs or data_driven else None
    if data_driven:
        lsuv_rescale(model, data.x_train[: cfg.data.batch_size], init_records, cfg.init.tol, cfg.init.max_iter)
    records.write_init(records_as_dicts(init_records))
    log.info("init=%s\n%s", cfg.init.scheme, format_table(init_records))
    return model, data


def _close(records: RunRecords, mirror, summary: dict) -> None:
    records.write_summary(summary)
    mirror.finish(summary)


# Keys that may change between an interrupted run and its resumption.
_RESUME_FREE = ("train.resume", "train.progress", "device", "data.root", "logger")


def _finished_before(records: RunRecords, cfg) -> Outcome | None:
    """With train.resume: the earlier outcome if this run directory already completed or
    diverged (nothing to do), None if there is work left. A directory that holds a
    different experiment is refused rather than mixed into."""
    old_path = records.dir / "config.yaml"
    if not old_path.exists():
        return None
    old, new = OmegaConf.load(old_path), OmegaConf.create(_plain(cfg))
    for key in _RESUME_FREE:
        for c in (old, new):
            OmegaConf.update(c, key, None, force_add=True)
    if old != new:
        raise ConfigError("train.resume", True, f"{records.dir} holds a run with a different config; "
                          "resume with the same overrides or use a new hydra.run.dir")
    summary = records.read_summary()
    if summary and summary["status"] in ("completed", "diverged"):
        log.info("already %s at step %s in %s; nothing to resume", summary["status"], summary["steps"], records.dir)
        return Outcome(summary["status"], summary["steps"], _final_metrics(summary))
    return None


def _final_metrics(metrics: dict) -> dict:
    return {k: metrics.get(k) for k in FINAL_METRICS}


def _plain(cfg) -> dict:
    return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)


def _wandb_names(hc) -> tuple[str, str | None]:
    """(run name, group): in a multirun, the job's folder and the sweep's folder."""
    if hc.mode is RunMode.MULTIRUN:
        return Path(hc.runtime.output_dir).name, Path(hc.sweep.dir).name
    return Path(hc.runtime.output_dir).name, None
