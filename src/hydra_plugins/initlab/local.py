"""A Hydra launcher that runs a sweep's jobs one after another in this process, as Hydra's basic
launcher does, from the configs initlab's sweeper composed (no second composition per job)."""

import logging
from typing import TYPE_CHECKING

from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, run_job

from hydra_plugins.initlab.grid_launcher import GridLauncher

if TYPE_CHECKING:
    from initlab.sweep.compose import GridComposer, Job

log = logging.getLogger(__name__)


class LocalLauncher(GridLauncher):
    def launch_jobs(self, jobs: "list[Job]", composer: "GridComposer") -> dict[int, JobReturn]:
        self.begin()
        log.info(f"Launching {len(jobs)} jobs locally")
        results = {}
        for job in jobs:
            log.info(f"\t#{job.num} : {' '.join(filter_overrides(job.overrides))}")
            results[job.num] = run_job(hydra_context=self.hydra_context, task_function=self.task_function,
                                       config=composer.full_config(job), job_dir_key="hydra.sweep.dir",
                                       job_subdir_key="hydra.sweep.subdir")
            configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
            if self.fail_fast and results[job.num].status is JobStatus.FAILED:
                break
        return results
