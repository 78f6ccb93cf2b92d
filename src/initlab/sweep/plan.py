"""A grid planned as Hydra's basic sweeper expands it, every job composed and validated before
any starts.

Hydra checks types while it composes; relations between values (a gain a scheme does not take,
a ResNet depth that is not 6n + 2) would only fail job by job, after earlier jobs ran. The
sweeper (hydra_plugins.initlab.sweeper) plans first: Hydra's own parser and
`BasicSweeper.split_arguments` expand the grid once (glob, range, choice, lists, quoting:
every syntax Hydra's sweeper accepts), initlab.sweep.compose composes each job once, and
initlab.validate checks it. A bad value anywhere is one line naming the job; nothing has run.
"""

import sys
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from hydra import initialize_config_dir
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from initlab.compose_errors import COMPOSE_ERRORS, as_config_error
from initlab.errors import ConfigError
from initlab.sweep.compose import GridComposer, Job
from initlab.track.records import check_run_dir
from initlab.validate import check_protocol, validate

CONF = Path(__file__).resolve().parents[3] / "conf"
# The counts initlab's launchers take (conf/hydra/launcher/*.yaml, untyped yaml): each an integer >= 1.
LAUNCHER_COUNTS = ("workers", "jobs_per_gpu", "max_pack")
BAR_FROM = 200  # jobs: a grid this large shows a progress bar while it is planned (on a terminal)


@dataclass
class Plan:
    sweep_dir: Path
    jobs: list[Job]
    composer: GridComposer

    def check_job_dirs(self, skip: Collection[Path] = ()) -> None:
        """Refuse the grid if a job's folder cannot be written, or a run is still writing into it
        (an earlier launch of this sweep): Hydra would fail there, or rewrite that folder's .hydra/
        before the job's lock stops it. The folders in `skip` are left alone (jobs that ended
        before, and jobs an earlier launch still has queued or running on SLURM: not launched
        again); a folder that does not exist yet is checked through the first one above it that
        does, once."""
        if Path(self.sweep_dir).absolute() == Path.cwd():
            raise ConfigError("hydra.sweep.dir", str(self.sweep_dir), "a folder of its own: the jobs' folders "
                              "would land in the current one")
        writable: set[Path] = set()
        for job in self.jobs:
            if job.dir.absolute() in skip:
                continue
            try:
                check_run_dir(job.dir, writable)
            except ConfigError as err:
                raise err.within(f"job #{job.num}: {' '.join(job.overrides)}") from None

    def listing(self) -> Iterator[str]:
        """The dry run's lines: each job, its folder, then the count."""
        for job in self.jobs:
            yield f"#{job.num:<3} {' '.join(job.overrides)}\n     -> {job.dir}"
        yield f"{len(self.jobs)} jobs in {self.sweep_dir}"


def plan_grid(config_loader: ConfigLoaderImpl, master: DictConfig, arguments: Sequence[str], params: dict,
              protocol: dict | None, runs_elsewhere: bool = False) -> Plan:
    """The jobs of the multirun whose sweep config is `master` and whose command-line overrides
    are `arguments` (sweeps included; the sweeper's `params` add axes), in Hydra's order, each
    composed once and validated, as is the experiment's `protocol`. `runs_elsewhere`: the jobs
    run on other machines (SLURM), whose devices and memory are not this one's."""
    _check_launcher(master.hydra.launcher)
    check_protocol(protocol)
    sweep_dir = Path(str(master.hydra.sweep.dir))  # resolved first: every job's ${now:...} reads this one
    axes = [f"{k}={v}" for k, v in params.items()]
    parsed = OverridesParser.create(config_loader=config_loader).parse_overrides([*axes, *arguments])
    [expanded] = BasicSweeper.split_arguments(parsed, None)
    composer = GridComposer(config_loader, master)
    bar = tqdm(expanded, desc="planning", unit="job", disable=len(expanded) < BAR_FROM or not sys.stderr.isatty())
    jobs = [_planned(composer, num, overrides, runs_elsewhere) for num, overrides in enumerate(bar)]
    _refuse_shared_folders(jobs)
    return Plan(sweep_dir, jobs, composer)


def _refuse_shared_folders(jobs: list[Job]) -> None:
    """Two jobs of one grid aiming at one folder (`seed=1,1`) would overwrite each other's records."""
    first: dict[Path, Job] = {}
    for job in jobs:
        other = first.setdefault(job.dir, job)
        if other is not job:
            raise ConfigError("job folder", str(job.dir), f"jobs #{other.num} and #{job.num} are the same job "
                              f"({' '.join(job.overrides)}); list each value once")


def plan_sweep(overrides: list[str], config_dir: Path = CONF) -> Plan:
    """The plan of `python train.py -m <overrides>`, made in this process as that command makes it."""
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        master = _sweep_config(loader, overrides)
        sweeper, launcher = master.hydra.sweeper, get_class(master.hydra.launcher._target_)
        return plan_grid(loader, master, list(master.hydra.overrides.task), sweeper.params or {},
                         sweeper.get("protocol"), getattr(launcher, "RUNS_ELSEWHERE", False))


def compose_sweep(overrides: list[str], config_dir: Path = CONF) -> DictConfig:
    """The sweep's own config, as `python train.py -m <overrides>` composes it before its sweeper
    expands the grid (Hydra leaves the sweeps out): a mistake every job shares fails here."""
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
        return _sweep_config(GlobalHydra.instance().config_loader(), overrides)


def _sweep_config(loader: ConfigLoaderImpl, overrides: list[str]) -> DictConfig:
    try:
        return loader.load_configuration("train", overrides, run_mode=RunMode.MULTIRUN)
    except COMPOSE_ERRORS as err:
        raise as_config_error(err, overrides) from None


def _planned(composer: GridComposer, num: int, overrides: list[str], runs_elsewhere: bool) -> Job:
    try:
        job = composer.compose(num, overrides)
        validate(job.config, runs_elsewhere=runs_elsewhere)
    except (ConfigError, *COMPOSE_ERRORS) as err:
        raise as_config_error(err, overrides).within(f"job #{num}: {' '.join(overrides)}") from None
    return job


def _check_launcher(launcher) -> None:
    """The launcher's counts and GPU ids, checked before any job is composed from them."""
    for key in LAUNCHER_COUNTS:
        value = launcher.get(key)
        if key in launcher and not (type(value) is int and value >= 1):
            raise ConfigError(f"launcher.{key}", value, "an integer >= 1")
    gpus = launcher.get("gpus")
    if gpus is not None and not (OmegaConf.is_list(gpus) and gpus and all(type(g) is int and g >= 0 for g in gpus)):
        raise ConfigError("launcher.gpus", gpus, "a list of GPU ids such as [0,1], or null for all visible")
