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
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from hydra_plugins.initlab.grid_launcher import GridLauncher

log = logging.getLogger(__name__)
TABLE_ROWS = 40  # a larger grid's closing table gives the count per status and the problems only


class GridSweeper(Sweeper):
    def __init__(self, max_batch_size: int | None = None, params: dict[str, str] | None = None,
                 dry_run: bool = False, protocol: dict | None = None) -> None:
        self.max_batch_size = max_batch_size  # jobs handed to the launcher at a time (None: all)
        # the grid's axes, and the experiment's declared protocol (initlab.config.Protocol): both read
        # from the config by initlab.sweep.plan; every job's .hydra/hydra.yaml records them
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
        from initlab.sweep.jobs import finished  # here: Hydra imports plugins at start-up
        from initlab.sweep.status import format_table, outcome_table

        plan, in_flight = self._plan(arguments)
        if self.dry_run:
            print("\n".join(plan.listing()))
            return []
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")  # as Hydra's basic sweeper does
        done = finished(plan.jobs)
        todo = [job for job in plan.jobs if job.num not in done and job.dir.absolute() not in in_flight]
        if len(todo) < len(plan.jobs):
            log.info(f"{len(done)} of {len(plan.jobs)} jobs ended before (completed or diverged), {len(in_flight)} "
                     f"still queued or running: launching {len(todo)}")
        results = self._launch(todo, plan.composer) if todo else []
        table = outcome_table(plan.jobs, results, done, self._in_flight(plan.jobs))
        print(format_table(table, most=TABLE_ROWS), flush=True)
        failed = int((table["status"] == "failed").sum())
        if failed:
            print(f"{failed} of {len(plan.jobs)} jobs failed (see the table above)", file=sys.stderr)
            sys.exit(1)
        return [results]

    def _plan(self, arguments: list[str]):
        """The grid composed and validated, and the folders of its jobs an earlier launch still
        runs or has queued; a user mistake is one line and exit code 2."""
        from initlab.cli import fail
        from initlab.compose_errors import COMPOSE_ERRORS, as_config_error
        from initlab.errors import ConfigError
        from initlab.sweep.plan import plan_grid

        try:
            plan = plan_grid(self.hydra_context.config_loader, self.config, arguments,
                             runs_elsewhere=getattr(self.launcher, "RUNS_ELSEWHERE", False))
            in_flight = self._in_flight(plan.jobs)
            if not self.dry_run:
                plan.check_job_dirs(in_flight)
            return plan, in_flight
        except (ConfigError, *COMPOSE_ERRORS) as err:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            fail(str(as_config_error(err, arguments)))

    def _in_flight(self, jobs) -> dict[Path, str]:
        return self.launcher.in_flight(jobs) if isinstance(self.launcher, GridLauncher) else {}

    def _launch(self, jobs, composer) -> list[JobReturn]:
        """Hand the jobs to the launcher, `max_batch_size` at a time; a launcher that is not
        initlab's gets their overrides (Hydra's API) and composes them itself."""
        size = self.max_batch_size or len(jobs)
        results: list[JobReturn] = []
        for start in range(0, len(jobs), size):
            batch = jobs[start : start + size]
            if isinstance(self.launcher, GridLauncher):
                results += self.launcher.launch_jobs(batch, composer)
            else:
                results += self.launcher.launch([job.overrides for job in batch], initial_job_idx=batch[0].num)
            if getattr(self.launcher, "fail_fast", False) and any(r.status is JobStatus.FAILED for r in results):
                break  # the grid stopped at a failed job: the later batches stay unstarted
        return results
