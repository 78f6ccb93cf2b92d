"""A Hydra launcher that runs a sweep's jobs one after another in this process, as Hydra's basic
launcher does, from the configs initlab's sweeper composed (no second composition per job)."""

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, run_job, setup_globals

from hydra_plugins.initlab.grid_launcher import GridLauncher

if TYPE_CHECKING:
    from initlab.sweep.compose import GridComposer, Job

log = logging.getLogger(__name__)


class LocalLauncher(GridLauncher):
    def launch_jobs(self, jobs: "list[Job]", composer: "GridComposer") -> list[JobReturn]:
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        log.info(f"Launching {len(jobs)} jobs locally")
        results = []
        for job in jobs:
            log.info(f"\t#{job.num} : {' '.join(filter_overrides(job.overrides))}")
            results.append(run_job(hydra_context=self.hydra_context, task_function=self.task_function,
                                   config=composer.full_config(job), job_dir_key="hydra.sweep.dir",
                                   job_subdir_key="hydra.sweep.subdir"))
            configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
            if self.fail_fast and results[-1].status is JobStatus.FAILED:
                break
        return results
