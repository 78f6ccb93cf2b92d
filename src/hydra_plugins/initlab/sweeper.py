"""initlab's Hydra sweeper: Hydra's basic sweeper (its grid syntax and expansion, its
`params`, `max_batch_size`), with the whole grid composed and validated before any job starts
(initlab.sweep.plan), each job composed once, a dry run, and the job table at the end.

    python train.py -m init=xavier,kaiming 'seed=range(3)'        # any sweep Hydra's basic sweeper takes
    python train.py -m 'experiment=glob(*)' hydra.sweeper.dry_run=true   # list the jobs, run nothing

A mistake anywhere in the grid is one line naming the job (exit code 2), and nothing runs. A
failed job never stops the others (unless the launcher's fail_fast says so); the table names
it and the exit code is 1.
"""

import logging
import os
import sys
from pathlib import Path
from typing import Any

from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from hydra_plugins.initlab.grid_launcher import GridLauncher

log = logging.getLogger(__name__)
TABLE_ROWS = 40  # a larger grid's closing table gives the count per status and the problems only
UNFINISHED = ("failed", "stopped", "damaged")  # statuses that make the command's exit code 1


class GridSweeper(Sweeper):
    def __init__(self, max_batch_size: int | None = None, params: dict[str, str] | None = None,
                 dry_run: bool = False, protocol: dict | None = None) -> None:
        self.max_batch_size = max_batch_size  # jobs handed to the launcher at a time (None: all)
        # the grid's axes and the experiment's declared protocol (initlab.config.Protocol), which
        # every job's .hydra/hydra.yaml records beside them
        self.params, self.protocol = params or {}, protocol
        self.dry_run = dry_run
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.launcher = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(hydra_context=hydra_context,
                                                                task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> Any:
        from initlab.sweep.status import format_table, outcome_table  # here: Hydra imports plugins at start-up

        plan, done, in_flight = self._plan(arguments)
        if self.dry_run:
            print("\n".join(plan.listing()))
            return []
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, self.sweep_dir / "multirun.yaml")  # as Hydra's basic sweeper does
        todo = [job for job in plan.jobs if job.num not in done and job.dir.absolute() not in in_flight]
        if len(todo) < len(plan.jobs):
            log.info(f"{len(done)} of {len(plan.jobs)} jobs ended before (completed or diverged), {len(in_flight)} "
                     f"still queued or running: launching {len(todo)}")
        results = self._launch(todo, plan.composer) if todo else {}
        table = outcome_table(plan.jobs, results, done, self._in_flight(plan.jobs))
        print(format_table(table, most=TABLE_ROWS), flush=True)
        problems = int(table["status"].isin(UNFINISHED).sum())
        if problems:
            print(f"{problems} of {len(plan.jobs)} jobs failed, stopped or are damaged (see the table above)",
                  file=sys.stderr)
            sys.exit(1)
        return [list(results.values())]

    @property
    def sweep_dir(self) -> Path:
        return Path(str(self.config.hydra.sweep.dir))

    def _plan(self, arguments: list[str]):
        """The grid composed and validated, the jobs that ended before (by number) and the folders
        of the jobs an earlier launch still runs or has queued; the folders of the others checked.
        A user mistake is one line and exit code 2."""
        from initlab.cli import fail
        from initlab.compose_errors import COMPOSE_ERRORS, as_config_error
        from initlab.errors import ConfigError
        from initlab.sweep.jobs import finished
        from initlab.sweep.plan import plan_grid

        try:
            if not (self.max_batch_size is None or type(self.max_batch_size) is int and self.max_batch_size >= 1):
                raise ConfigError("hydra.sweeper.max_batch_size", self.max_batch_size, "an integer >= 1, or null: all")
            plan = plan_grid(self.hydra_context.config_loader, self.config, arguments, self.params, self.protocol,
                             runs_elsewhere=getattr(self.launcher, "RUNS_ELSEWHERE", False))
            if self.dry_run:
                return plan, {}, {}
            done, in_flight = finished(plan.jobs), self._in_flight(plan.jobs)
            plan.check_job_dirs(skip={*in_flight, *(job.dir.absolute() for job in plan.jobs if job.num in done)})
            return plan, done, in_flight
        except (ConfigError, *COMPOSE_ERRORS) as err:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            fail(str(as_config_error(err, arguments)))

    def _in_flight(self, jobs) -> dict[Path, str]:
        return self.launcher.in_flight(jobs) if isinstance(self.launcher, GridLauncher) else {}

    def _launch(self, jobs, composer) -> dict[int, JobReturn]:
        """Hand the jobs to the launcher, `max_batch_size` at a time; a launcher that is not
        initlab's gets their overrides (Hydra's API) and composes them itself."""
        from initlab.sweep.jobs import failed

        size = self.max_batch_size or len(jobs)
        results: dict[int, JobReturn] = {}
        for start in range(0, len(jobs), size):
            batch = jobs[start : start + size]
            if isinstance(self.launcher, GridLauncher):
                results |= self.launcher.launch_jobs(batch, composer)
            else:
                returned = self.launcher.launch([job.overrides for job in batch], initial_job_idx=batch[0].num)
                results |= {job.num: r for job, r in zip(batch, returned)}
            if getattr(self.launcher, "fail_fast", False) and failed(results):
                break  # the grid stopped at a failed job: the later batches stay unstarted
        return results
