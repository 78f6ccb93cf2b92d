"""Runs, start to finish: validate, build, initialise, load data, train, record. A lone run is a
pack of one: every launcher runs its jobs through run_pack."""

import logging
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch import Tensor, nn

from initlab.config import unused_data_keys
from initlab.data import Data, load_data, spec_of
from initlab.errors import ConfigError
from initlab.init.apply import InitRecord, initialize, records_as_dicts
from initlab.init.lsuv import lsuv_rescale
from initlab.init.schemes import SCHEMES
from initlab.init.table import format_table
from initlab.models import build_model
from initlab.theory import run_jacobian, run_theory
from initlab.track.identity import OPERATIONAL
from initlab.track.records import (FINAL_METRICS, DamagedRecord, RunRecords, durable_together, provenance, read_config,
                                   shown)
from initlab.track.wandb_mirror import NoMirror, WandbMirror, run_tags, wait_for_wandb
from initlab.train.loop import Member, Outcome, train
from initlab.train.preemption import StopRequest
from initlab.validate import Settings, validate

log = logging.getLogger("initlab")


def run(cfg, run_dir: Path, group: str | None = None, experiment: str | None = None) -> Outcome:
    """Run the experiment `cfg`, writing its records into `run_dir`; `group` names the wandb group
    (a multirun's sweep folder), `experiment` the named experiment (conf/experiment) it is a job of,
    a wandb tag. A lone run is a pack of one (run_pack); its error is raised."""
    [result] = run_pack([cfg], [run_dir], group, experiments=[experiment])
    if isinstance(result, BaseException):
        raise result
    return result


def run_pack(cfgs: list, run_dirs: list[Path], group: str | None = None, fail_fast: bool = False,
             open_dir: Callable[[int], None] | None = None,
             experiments: list[str | None] | None = None) -> list[Outcome | BaseException | None]:
    """Run `cfgs` (all of one pack_key, initlab.sweep.packs) into `run_dirs`, trained together
    as one stacked computation. Hydra's global state is never read, so configs composed
    in-process (hydra.compose) run as well as train.py's.

    Returns, per run, its Outcome or the exception that ended it: a run's own mistake (a
    ConfigError) fails that run only; an error while loading data or training fails every run
    that has not ended yet.
    Each run holds its directory locked: a second run aiming at it stops at once and touches
    nothing. From then on every exit leaves summary.json: `failed` with the error and the steps
    reached, or `interrupted` when SIGTERM/SIGUSR2 stopped it at a step boundary (last.pt saved
    there; the signal is then passed on, see train/preemption.py) or Ctrl-C stopped it.
    With `fail_fast`, a run that fails before training stops the pack: the runs prepared before
    it end `interrupted` (resumable), and those after it are not started (None). `open_dir(i)`
    is called just before run i starts (the packed launcher makes its folder there). `experiments`
    names each run's experiment (conf/experiment), for its wandb tags.
    """
    results: list[Outcome | BaseException | None] = [None] * len(cfgs)
    started = time.time()
    with ExitStack() as held, StopRequest() as stop:
        members, stopped = _prepare_all(cfgs, run_dirs, results, held, started, fail_fast, open_dir)
        if stopped is not None:
            raise stopped
        for i, m in members.items():
            m.experiment = experiments[i] if experiments else None
        if members:
            try:
                _run(list(members.values()), group, started, stop)
            finally:
                wait_for_wandb()  # the runs' wandb files complete (mirroring runs in the background)
            for i, m in members.items():
                results[i] = m.error if m.error is not None else m.outcome
    if stop.requested:  # whatever the runs' outcomes: the process was asked to stop
        stop.forward()
    return results


def _prepare_all(cfgs: list, run_dirs: list[Path], results: list, held: ExitStack, started: float, fail_fast: bool,
                 open_dir: Callable[[int], None] | None) -> tuple[dict[int, Member], BaseException | None]:
    """Start each run in order, their first records made durable together; `results` gets the
    outcome of each run that ends here (ended before, failed, or stopped by fail_fast). Returns the
    runs to train, and what stopped the start part-way (Ctrl-C: every run started is then
    recorded `interrupted`, before it is raised)."""
    members: dict[int, Member] = {}
    with durable_together():
        for i, (cfg, run_dir) in enumerate(zip(cfgs, run_dirs)):
            if open_dir is not None:
                open_dir(i)
            try:
                prepared = _prepare(cfg, RunRecords(run_dir), held, started, packed=len(cfgs) > 1)
            except Exception as err:
                results[i] = err
                if fail_fast:
                    _interrupt_all(members, results, f"fail_fast: {run_dir.name} failed before training", started)
                    return {}, None
                continue
            except BaseException as err:  # _prepare recorded this run `interrupted`
                _interrupt_all(members, results, f"{type(err).__name__} while {run_dir.name} started", started)
                return {}, err
            if isinstance(prepared, Outcome):
                results[i] = prepared  # completed or diverged before: nothing to do
            else:
                members[i] = prepared
    return members, None


def _interrupt_all(members: dict[int, Member], results: list, reason: str, started: float) -> None:
    """End the started runs that will not train now as `interrupted`: resumable from where they are."""
    for i, m in members.items():
        m.outcome.end("interrupted", m.outcome.steps, reason)
        summary = run_summary(m.outcome, started, m.device)
        close_run(m.records, NoMirror(), summary)
        log_end(m.records, summary, NoMirror(), console=not m.packed)
        results[i] = m.outcome


def _prepare(cfg, records: RunRecords, held: ExitStack, started: float, packed: bool) -> Member | Outcome:
    """One run's start, in its locked directory (the lock held in `held`): the earlier outcome
    if it already finished, else its model built and initialised (before any data: init errors
    cost nothing). A `packed` run's own log lines go to its train.log only, not the console too
    (hundreds of init tables would bury the sweep's own lines)."""
    held.enter_context(records.locked())
    outcome = Outcome("running", 0)
    try:
        with records.train_log(console=not packed):
            settings = start(cfg, records, outcome)
            if isinstance(settings, Outcome):
                return settings
            model, init_records = build_initialised(cfg, settings)
        return Member(cfg, records, outcome, model, str(settings.device), init_records, packed=packed)
    except BaseException as err:
        summary = failure_summary(records, outcome, err, started, None)
        record_failure(records, NoMirror(), summary)
        log_end(records, summary, NoMirror(), console=not packed)
        raise


def _run(members: list[Member], group: str | None, started: float, stop: StopRequest) -> None:
    """Load the data (once: the runs share it), finish each run's init (LSUV on its batch),
    train those that train, and close every run's records with its summary."""
    cfg, device, pack = members[0].cfg, members[0].device, {"pack_size": len(members)}
    data_driven = [SCHEMES[m.cfg.init.scheme].data_driven for m in members]
    trains = bool(cfg.train.steps or cfg.train.epochs)
    try:
        data = load_data(cfg.data, torch.device(device)) if any(loads_data(m.cfg) for m in members) else None
        with durable_together():
            for m, lsuv in zip(members, data_driven):
                with m.records.train_log(console=not m.packed):
                    if lsuv:
                        lsuv_rescale(m.model, data.x_train[: m.cfg.data.batch_size], m.init_records, m.cfg.init.tol,
                                     m.cfg.init.max_iter)
                    write_init(m.cfg, m.records, m.init_records, m.model, _probe_inputs(m, data))
        if trains:
            if len(members) > 1:
                log.info("training %d runs as one pack: %s", len(members), ", ".join(m.records.dir.name for m in members))
            with durable_together():
                for m in members:
                    m.mirror = _mirror(m, group)
            # as torch.use_deterministic_algorithms, which also imports torch._inductor (1.4 s) for its own flag
            torch.set_deterministic_debug_mode("error" if cfg.train.deterministic else "default")
            looped = time.time()
            try:
                train(members, data, stop)
            finally:
                pack["train_s"] = time.time() - looped
        else:
            for m in members:
                m.outcome.status = "completed"
    except BaseException as err:
        for m in members:
            if m.outcome.status in ("completed", "diverged"):  # ended before the error: kept as it ended
                summary = run_summary(m.outcome, started, device) | pack
                close_run(m.records, m.mirror, summary)
            else:
                m.error = err
                summary = failure_summary(m.records, m.outcome, err, started, device) | pack
                record_failure(m.records, m.mirror, summary)
            log_end(m.records, summary, m.mirror, console=not m.packed)
        if not isinstance(err, Exception):
            raise
        return
    summaries = [run_summary(m.outcome, started, device) | pack for m in members]
    with durable_together():
        for m, summary in zip(members, summaries):
            close_run(m.records, m.mirror, summary)
    for m, summary in zip(members, summaries):
        log_end(m.records, summary, m.mirror, console=not m.packed)


def loads_data(cfg) -> bool:
    """Whether a run reads its dataset: it trains, or its init is data-driven (LSUV)."""
    return bool(cfg.train.steps or cfg.train.epochs) or SCHEMES[cfg.init.scheme].data_driven


def _mirror(m: Member, group: str | None):
    """The run's wandb run (logger=wandb), else NoMirror."""
    if m.cfg.logger.backend.value != "wandb":
        return NoMirror()
    return WandbMirror(m.cfg.logger, m.records.dir, plain(m.cfg), m.records.dir.name, group, run_tags(m.cfg, m.experiment),
                       resume=m.cfg.train.resume, packed=m.packed)


def start(cfg, records: RunRecords, outcome: Outcome) -> Settings | Outcome:
    """What every run does first, in its locked directory: with train.resume, the earlier
    outcome if it already finished, else `outcome` set to the steps reached before (a failure
    ahead of the resumed loop does not report 0); then config.yaml written and the config
    validated (a mistake is recorded as this run's failure)."""
    _drop_synthetic_keys(cfg)
    if cfg.train.resume and (earlier := earlier_outcome(records, cfg)):
        if earlier.status in ("completed", "diverged"):
            log.info("already %s at step %s in %s; nothing to resume", earlier.status, earlier.steps, records.dir)
            return earlier
        outcome.steps = earlier.steps
    records.write_config(cfg)
    return validate(cfg)


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


def build_initialised(cfg, settings: Settings) -> tuple[nn.Module, list[InitRecord]]:
    """The run's model on its device, initialised by its scheme from its seed."""
    torch.manual_seed(cfg.seed)  # torch's own layer init (kept by init=default) draws from it
    model = build_model(cfg.model, settings.input_shape, settings.num_classes)
    params = {key: value for key, value in cfg.init.items() if key != "scheme"}
    init_records = initialize(model, cfg.init.scheme, mode=settings.mode, gain=settings.gain,
                              generator=torch.Generator().manual_seed(cfg.seed), **params)
    return model.to(settings.device), init_records


def write_init(cfg, records: RunRecords, init_records: list[InitRecord], model: nn.Module, x: Tensor) -> None:
    """init.json, theory.json and jacobian.json (the spectrum of `model`'s Jacobian at init, on
    the inputs `x`), and the init table in the log."""
    init = records_as_dicts(init_records)
    records.write_init(init)
    model_cfg = cfg.model
    padding = model_cfg.padding.value if "padding" in model_cfg else None
    args = (model_cfg.name, model_cfg.activation.value, model_cfg.negative_slope)
    theory = records.write_theory(run_theory(*args, init, padding=padding))
    jacobian = records.write_jacobian(run_jacobian(model, x, *args, init, padding=padding))
    log.info("init=%s\n%s", cfg.init.scheme, format_table(init_records, theory, jacobian))


JACOBIAN_INPUTS = 4  # examples the Jacobian's spectrum is measured on: 4 x width squared singular values


def _probe_inputs(m: Member, data: Data | None) -> Tensor:
    """The first training examples, or where the run loads no data (init only), standard normal
    inputs of the data's shape: what every dataset is standardised to, drawn from the run's seed."""
    if data is not None:
        return data.x_train[:JACOBIAN_INPUTS]
    shape = spec_of(m.cfg.data).input_shape
    return torch.randn(JACOBIAN_INPUTS, *shape, generator=torch.Generator().manual_seed(m.cfg.seed)).to(m.device)


def log_end(records: RunRecords, summary: dict, mirror, console: bool = True) -> None:
    """The run's last line, in its train.log and (unless not `console`: a packed run's) on the
    console: status, steps and why it stopped, final metrics, its folder, and where its wandb run
    is (the exact `wandb sync` command of an offline run). The line a user needs next."""
    status, steps = summary["status"], summary["steps"]
    initialised_only = status == "completed" and steps == 0
    why = summary.get("reason") or summary.get("error") or ("initialised only" if initialised_only else None)
    measured = ", ".join(f"{k}={summary[k]:.4g}" for k in FINAL_METRICS if summary.get(k) is not None)
    parts = [f"{status} after {steps} steps" + (f" ({why})" if why else "") + (f": {measured}" if measured else ""),
             f"records in {shown(records.dir)}", mirror.where()]
    with records.train_log(console=console):
        log.info("; ".join(part for part in parts if part))


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
