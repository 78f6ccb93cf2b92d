"""A Hydra launcher that trains the jobs of a grid which share an architecture as packs: one
stacked computation per pack (initlab.run.run_pack), up to `max_pack` runs each, in this process.

Jobs are grouped by initlab.sweep.packs.pack_key (everything that fixes tensor shapes and the
training schedule); a job with nothing to train (init-only) or with no pack mate runs alone,
exactly as Hydra's basic launcher runs it. Every job gets the
folder, .hydra/ files and JobReturn the basic launcher gives it: Hydra's run_job creates them,
with a task that only hands back the job's config and folder; the pack then trains them all.
"""

import dataclasses
import logging
import sys
from pathlib import Path
from typing import Sequence

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from hydra_plugins.initlab_launcher.local_gpu import job_config

log = logging.getLogger(__name__)


class PackedLauncher(Launcher):
    def __init__(self, max_pack: int = 64) -> None:
        self.max_pack = max_pack
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from initlab.sweep.packs import pack_key, packs  # here: Hydra imports every launcher plugin at start-up

        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        configs = {idx: job_config(self.hydra_context, self.config, idx, overrides)
                   for idx, overrides in enumerate(job_overrides, start=initial_job_idx)}
        ids = list(configs)
        grouped = [[ids[i] for i in pack] for pack in packs([pack_key(c) for c in configs.values()], self.max_pack)]
        log.info(f"Launching {len(configs)} jobs as {len(grouped)} pack(s) of up to {self.max_pack}")
        results: dict[int, JobReturn] = {}
        for pack in grouped:
            if len(pack) == 1:
                results[pack[0]] = self._run_job(configs[pack[0]], self.task_function)
            else:
                results |= self._run_pack({idx: configs[idx] for idx in pack})
        return [results[i] for i in sorted(results)]

    def _run_job(self, config: DictConfig, task: TaskFunction) -> JobReturn:
        log.info(f"\t#{config.hydra.job.num} : {' '.join(filter_overrides(config.hydra.overrides.task))}")
        ret = run_job(hydra_context=self.hydra_context, task_function=task, config=config,
                      job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        return ret

    def _run_pack(self, configs: dict[int, DictConfig]) -> dict[int, JobReturn]:
        from initlab.errors import JobFailed
        from initlab.run import run_pack

        prepared = {idx: self._run_job(config, _job_folder) for idx, config in configs.items()}
        ready = {idx: ret for idx, ret in prepared.items() if ret.status is JobStatus.COMPLETED}
        log.info(f"Training jobs {', '.join(f'#{i}' for i in ready)} as one pack")
        outcomes = run_pack([ret.return_value[0] for ret in ready.values()], [ret.return_value[1] for ret in ready.values()],
                            group=Path(str(self.config.hydra.sweep.dir)).name)
        for (idx, ret), outcome in zip(ready.items(), outcomes):
            if isinstance(outcome, BaseException):
                print(f"error: {outcome}", file=sys.stderr)  # as train.py reports a failed job
                prepared[idx] = dataclasses.replace(ret, status=JobStatus.FAILED, _return_value=JobFailed.of(outcome))
            else:
                prepared[idx] = dataclasses.replace(ret, _return_value=outcome)
        return prepared


def _job_folder(cfg: DictConfig) -> tuple[DictConfig, Path]:
    """The task run_job runs for a packed job: Hydra has made its folder; the pack trains it."""
    return cfg, Path(HydraConfig.get().runtime.output_dir)
