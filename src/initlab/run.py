"""One run, start to finish: validate, build, initialise, load data, train, record."""

import logging
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch import nn

from initlab.config import unused_data_keys
from initlab.data import Data, load_data
from initlab.errors import ConfigError
from initlab.init.apply import InitRecord, initialize, records_as_dicts
from initlab.init.lsuv import lsuv_rescale
from initlab.init.schemes import SCHEMES
from initlab.init.table import format_table
from initlab.models import build_model
from initlab.theory import run_theory
from initlab.track.identity import OPERATIONAL
from initlab.track.records import FINAL_METRICS, DamagedRecord, RunRecords, provenance, read_config
from initlab.track.wandb_mirror import NoMirror, WandbMirror
from initlab.train.loop import Outcome, train
from initlab.train.preemption import StopRequest
from initlab.validate import Settings, validate

log = logging.getLogger("initlab")


def run(cfg, run_dir: Path, group: str | None = None) -> Outcome:
    """Run the experiment `cfg`, writing its records into `run_dir`; `group` names the wandb group
    (a multirun's sweep folder). Hydra's global state is never read, so a config composed
    in-process (hydra.compose) runs as well as one from train.py.

    The run holds `run_dir` locked: a second run aiming at it stops at once and touches nothing.
    From then on every exit leaves summary.json: `failed` with the error and the steps reached,
    or `interrupted` when SIGTERM/SIGUSR2 stopped it at a step boundary (last.pt saved there;
    the signal is then passed on, see train/preemption.py).
    """
    records = RunRecords(run_dir)
    with records.locked(), StopRequest() as stop:
        outcome, mirror, device, started = Outcome("running", 0), NoMirror(), None, time.time()
        try:
            settings = start(cfg, records, outcome)
            if isinstance(settings, Outcome):
                return settings  # completed or diverged before: nothing to do
            device = str(settings.device)
            model, data = _initialised_model(cfg, settings, records)
            if data is None:
                outcome.status = "completed"
                log.info("train.steps=0: initialised only; records in %s", records.dir)
            else:
                if cfg.logger.backend.value == "wandb":
                    mirror = WandbMirror(cfg.logger, records.dir, plain(cfg), records.dir.name, group,
                                         resume=cfg.train.resume)
                train(cfg, model, data, records, mirror, outcome, stop)
        except BaseException as err:
            record_failure(records, mirror, failure_summary(records, outcome, err, started, device))
            raise
        close_run(records, mirror, run_summary(outcome, started, device))
    log_outcome(outcome)
    if outcome.status == "interrupted":
        stop.forward()
    return outcome


def start(cfg, records: RunRecords, outcome: Outcome) -> Settings | Outcome:
    """What every run (a packed one too) does first, in its locked directory: with train.resume,
    the earlier outcome if it already finished, else `outcome` set to the steps reached before
    (a failure ahead of the resumed loop does not report 0); then config.yaml written, the
    config validated (a mistake is recorded as this run's failure), torch's determinism set."""
    _drop_synthetic_keys(cfg)
    if cfg.train.resume and (earlier := earlier_outcome(records, cfg)):
        if earlier.status in ("completed", "diverged"):
            log.info("already %s at step %s in %s; nothing to resume", earlier.status, earlier.steps, records.dir)
            return earlier
        outcome.steps = earlier.steps
    records.write_config(cfg)
    settings = validate(cfg)
    torch.use_deterministic_algorithms(cfg.train.deterministic)
    return settings


def _drop_synthetic_keys(cfg) -> None:
    """A real dataset's shape and sizes are its own (data.DATASETS): the synthetic-only keys,
    which an experiment such as smoke may set, are recorded as null, with a warning where set."""
    unused = unused_data_keys(cfg.data.name.value)
    given = [f"{key}={OmegaConf.select(cfg, key)}" for key in unused if OmegaConf.select(cfg, key) is not None]
    if given:
        log.warning("%s: for dataset=synthetic only; %s's own shape and sizes are used", " ".join(given),
                    cfg.data.name.value)
    for key in unused:
        OmegaConf.update(cfg, key, None)


def _initialised_model(cfg, settings: Settings, records: RunRecords) -> tuple[nn.Module, Data | None]:
    """Build and initialise the model (before any data: init errors cost nothing), then load
    the data when the run trains or the scheme needs a batch (LSUV); write init.json."""
    model, init_records = build_initialised(cfg, settings)
    data_driven = SCHEMES[cfg.init.scheme].data_driven
    data = load_data(cfg.data, settings.device) if cfg.train.steps or cfg.train.epochs or data_driven else None
    if data_driven:
        lsuv_rescale(model, data.x_train[: cfg.data.batch_size], init_records, cfg.init.tol, cfg.init.max_iter)
    write_init(cfg, records, init_records)
    return model, data


def build_initialised(cfg, settings: Settings) -> tuple[nn.Module, list[InitRecord]]:
    """The run's model on its device, initialised by its scheme from its seed (a packed run's too)."""
    torch.manual_seed(cfg.seed)  # torch's own layer init (kept by init=default) draws from it
    model = build_model(cfg.model, settings.input_shape, settings.num_classes)
    params = {key: value for key, value in cfg.init.items() if key != "scheme"}
    init_records = initialize(model, cfg.init.scheme, mode=settings.mode, gain=settings.gain,
                              generator=torch.Generator().manual_seed(cfg.seed), **params)
    return model.to(settings.device), init_records


def write_init(cfg, records: RunRecords, init_records: list[InitRecord]) -> None:
    """init.json and theory.json, and the init table in the log."""
    init = records_as_dicts(init_records)
    records.write_init(init)
    theory = records.write_theory(run_theory(cfg.model.name, cfg.model.activation.value,
                                             cfg.model.negative_slope, init))
    log.info("init=%s\n%s", cfg.init.scheme, format_table(init_records, theory))


def log_outcome(outcome: Outcome, run_name: str = "") -> None:
    measured = ", ".join(f"{k}={v:.4g}" for k, v in _final_metrics(outcome.metrics).items() if v is not None)
    log.info("%s%s after %d steps%s", run_name and f"{run_name}: ", outcome.status, outcome.steps,
             f": {measured}" if measured else "")


class NotThisRun(ConfigError):
    """The run directory holds a different run's records: refused, not mixed into."""


def one_line(err: BaseException) -> str:
    return f"{type(err).__name__}: {' '.join(str(err).split())}"


def run_summary(outcome: Outcome, started: float, device: str | None) -> dict:
    return {"status": outcome.status, "steps": outcome.steps, "wall_s": time.time() - started,
            "reason": outcome.reason, **_final_metrics(outcome.metrics), **provenance(device)}


def failure_summary(records: RunRecords, outcome: Outcome, err: BaseException, started: float,
                    device: str | None) -> dict:
    """The summary of a run that raised `err`: `interrupted` for Ctrl-C, else `failed`, with the
    one-line error and the steps reached. Refused for holding a different run, the directory
    keeps that run's own summary under `previous`: nothing it recorded is lost."""
    outcome.status = "interrupted" if isinstance(err, KeyboardInterrupt) else "failed"
    failure = {"error": one_line(err)}
    if isinstance(err, NotThisRun):
        failure["previous"] = records.read_summary()
    return run_summary(outcome, started, device) | failure


def close_run(records: RunRecords, mirror, summary: dict) -> None:
    """The run's last words: summary.json, then its wandb run finished with the same summary."""
    records.write_summary(summary)
    mirror.finish(summary)


def record_failure(records: RunRecords, mirror, summary: dict) -> None:
    """Write the failure's summary; if even that fails (a full disk), say so and let the
    original error be the one raised."""
    try:
        close_run(records, mirror, summary)
    except Exception as err:
        log.error("could not write %s/summary.json (%s)", records.dir, one_line(err))


def earlier_outcome(records: RunRecords, cfg) -> Outcome | None:
    """What this run's directory says an earlier attempt reached (None if it holds no summary).
    A directory that holds a different experiment is refused rather than mixed into."""
    old_path = records.dir / "config.yaml"
    if not old_path.exists():
        return None
    try:
        old, new = OmegaConf.create(read_config(records.dir)), OmegaConf.create(plain(cfg))
    except DamagedRecord as err:
        raise ConfigError("train.resume", True, f"{err}; start afresh with train.resume=false") from None
    # How it was launched may change between a run and its resumption; a real dataset's synthetic-only
    # keys held the synthetic defaults in records written before they were null.
    for key in [*OPERATIONAL, *unused_data_keys(cfg.data.name.value)]:
        for c in (old, new):
            OmegaConf.update(c, key, None, force_add=True)
    if old != new:
        raise NotThisRun("train.resume", True, f"{records.dir} holds a run with a different config; "
                         "resume with the same overrides or use a new hydra.run.dir")
    summary = records.read_summary()
    return Outcome(summary["status"], summary.get("steps") or 0, _final_metrics(summary)) if summary else None


def _final_metrics(metrics: dict) -> dict:
    return {k: metrics.get(k) for k in FINAL_METRICS}


def plain(cfg) -> dict:
    """The config as plain data (what config.yaml and wandb's config hold)."""
    return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
