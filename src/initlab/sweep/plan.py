"""Expand a sweep exactly as Hydra's basic sweeper will, and validate every job up front.

Hydra checks types while it launches; relations between values (a gain a scheme does not
take, a ResNet depth that is not 6n + 2) would only fail job by job. Planning composes
every job first, so a bad grid is rejected before any job starts.
"""

from dataclasses import dataclass
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from initlab.compose_errors import COMPOSE_ERRORS, as_config_error
from initlab.errors import ConfigError
from initlab.track.records import check_run_dir
from initlab.validate import validate

CONF = Path(__file__).resolve().parents[3] / "conf"


@dataclass(frozen=True)
class Job:
    num: int  # its place in this grid (Hydra's hydra.job.num); not part of its identity
    overrides: list[str]
    dir: Path  # named by the job's identity (initlab.track.identity), as the launchers name it


@dataclass(frozen=True)
class Plan:
    sweep_dir: Path
    jobs: list[Job]

    def check_job_dirs(self) -> None:
        """Refuse the grid if a job's folder cannot be written, or a run is still writing into it
        (an earlier launch of this sweep): Hydra would fail there, or rewrite that folder's .hydra/
        before the job's lock stops it."""
        if Path(self.sweep_dir).absolute() == Path.cwd():
            raise ConfigError("hydra.sweep.dir", str(self.sweep_dir), "a folder of its own: the jobs' folders "
                              "would land in the current one")
        for job in self.jobs:
            try:
                check_run_dir(job.dir)
            except ConfigError as err:
                raise err.within(f"job #{job.num}: {' '.join(job.overrides)}") from None


def plan_sweep(overrides: list[str], config_dir: Path = CONF) -> Plan:
    """The jobs `python train.py -m <overrides>` runs, in Hydra's order, each validated.

    `overrides` may hold Hydra overrides (hydra/launcher=..., hydra.sweep.dir=...) and task
    overrides, sweeps included (seed=0,1,2); the experiment's hydra.sweeper.params add axes.
    """
    hydra_overrides = [o for o in overrides if o.startswith("hydra")]
    task_overrides = [o for o in overrides if not o.startswith("hydra")]
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
        first = _single_valued(overrides)
        try:
            base = compose("train", overrides=first, return_hydra_config=True)
        except COMPOSE_ERRORS as err:  # the first job's values: a key no job has fails here
            job = [o for o in first if not o.startswith("hydra")]
            raise as_config_error(err, first).within(f"job #0: {' '.join(job)}") from None
        axes = [f"{k}={v}" for k, v in (base.hydra.sweeper.params or {}).items()]
        parsed = OverridesParser.create().parse_overrides(axes + task_overrides)
        [job_overrides] = BasicSweeper.split_arguments(parsed, None)
        _check_launcher(base.hydra.launcher)
        sweep_dir = Path(base.hydra.sweep.dir)
        jobs = []
        for num, job in enumerate(job_overrides):
            try:
                cfg = compose("train", overrides=hydra_overrides + job, return_hydra_config=True)
                validate(cfg)
            except (ConfigError, *COMPOSE_ERRORS) as err:
                raise as_config_error(err, job).within(f"job #{num}: {' '.join(job)}") from None
            jobs.append(Job(num, job, sweep_dir / cfg.hydra.sweep.subdir))
    return Plan(sweep_dir, jobs)


# The counts initlab's launchers take (conf/hydra/launcher/{local_gpu,packed}.yaml, untyped yaml): each an integer >= 1.
LAUNCHER_COUNTS = ("workers", "jobs_per_gpu", "max_pack")


def _check_launcher(launcher) -> None:
    """The launcher's counts and GPU ids, checked before Hydra builds the launcher from them."""
    for key in LAUNCHER_COUNTS:
        value = launcher.get(key)
        if key in launcher and not (type(value) is int and value >= 1):
            raise ConfigError(f"launcher.{key}", value, "an integer >= 1")
    gpus = launcher.get("gpus")
    if gpus is not None and not (OmegaConf.is_list(gpus) and gpus and all(type(g) is int and g >= 0 for g in gpus)):
        raise ConfigError("launcher.gpus", gpus, "a list of GPU ids such as [0,1], or null for all visible")


def _single_valued(overrides: list[str]) -> list[str]:
    """The overrides with every sweep (a,b,c) cut to its first value: enough to compose the base."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    return [f"{o.get_key_element()}={next(iter(o.sweep_string_iterator()))}" if o.is_sweep_override()
            else o.input_line for o in parsed]
