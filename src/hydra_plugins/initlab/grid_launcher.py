"""The base of initlab's launchers: they launch jobs that are composed already.

Under initlab's sweeper (hydra_plugins.initlab.sweeper) each job was composed once and validated
before any started; the launcher runs those configs as they are. Under another sweeper, Hydra's
`launch(job_overrides)` composes its jobs here, once each, the same way (initlab.sweep.compose).
"""

from abc import abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from hydra.core.utils import JobReturn, configure_log, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

if TYPE_CHECKING:
    from initlab.sweep.compose import GridComposer, Job


class GridLauncher(Launcher):
    RUNS_ELSEWHERE = False  # True: jobs run on other machines (devices and memory are not checked here)

    def __init__(self, fail_fast: bool = False) -> None:
        self.fail_fast = fail_fast  # stop at the first failed job: the running ones interrupted, the rest unstarted
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    @property
    def sweep_dir(self) -> Path:
        return Path(str(self.config.hydra.sweep.dir))

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        """Hydra's launcher API, for a sweeper other than initlab's: compose, then launch; the
        JobReturns of the jobs that started, in job order."""
        from initlab.sweep.compose import GridComposer

        composer = GridComposer(self.hydra_context.config_loader, self.config)
        results = self.launch_jobs([composer.compose(initial_job_idx + i, list(o))
                                    for i, o in enumerate(job_overrides)], composer)
        return [results[num] for num in sorted(results)]

    def begin(self) -> None:
        """What every launch does first, as Hydra's launchers do: Hydra's resolvers and logging,
        and the sweep's folder."""
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        self.sweep_dir.mkdir(parents=True, exist_ok=True)

    def in_flight(self, jobs: "list[Job]") -> dict[Path, str]:
        """The folders of `jobs` an earlier launch of this grid still runs or has queued (SLURM),
        each `running` or `pending`: not launched again, and their folders' locks are theirs."""
        return {}

    @abstractmethod
    def launch_jobs(self, jobs: "list[Job]", composer: "GridComposer") -> dict[int, JobReturn]:
        """Run `jobs` (composed by `composer`); a JobReturn for each job that started, by job
        number. With fail_fast, jobs after the first failure may not start: they get none."""
