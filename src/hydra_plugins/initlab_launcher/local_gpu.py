"""A Hydra launcher that runs a sweep's jobs in parallel worker processes, one GPU slot each.

Hydra's submitit_local cannot pin GPUs and joblib does not assign them. Here every job
runs in a fresh spawned process whose CUDA_VISIBLE_DEVICES names one GPU, set before CUDA
starts; `gpus` x `jobs_per_gpu` slots run at once and the next job starts as soon as a slot
frees. With no GPU, `workers` CPU processes run in parallel, so the same sweep runs anywhere.
(It must live under `hydra_plugins`: Hydra instantiates launchers only from there.)
"""

import logging
import multiprocessing
import os
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Sequence

import cloudpickle
from hydra.core.utils import JobReturn, configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict

log = logging.getLogger(__name__)


class LocalGpuLauncher(Launcher):
    def __init__(self, gpus: Sequence[int] | None = None, jobs_per_gpu: int = 1, workers: int = 2) -> None:
        self.gpus, self.jobs_per_gpu, self.workers = gpus, jobs_per_gpu, workers
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def slots(self) -> list[str | None]:
        """One entry per concurrent job: a GPU id, or None for a CPU worker."""
        gpus = list(self.gpus) if self.gpus is not None else list(range(_visible_gpu_count()))
        if gpus:
            return [str(g) for g in gpus for _ in range(self.jobs_per_gpu)]
        return [None] * self.workers

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        free = self.slots()
        where = f"{len(set(free))} GPU(s) x {self.jobs_per_gpu}" if free[0] is not None else f"{len(free)} CPU workers"
        log.info(f"Launching {len(job_overrides)} jobs on {where}")
        queue = deque(enumerate(job_overrides, start=initial_job_idx))
        # The task function is @hydra.main's inner function in __main__: ship it by value.
        task = cloudpickle.dumps(self.task_function)
        results: dict[int, JobReturn] = {}
        context = multiprocessing.get_context("spawn")  # fresh interpreters: no CUDA state inherited
        with ProcessPoolExecutor(len(free), mp_context=context, max_tasks_per_child=1) as pool:
            running = {}
            while queue or running:
                while queue and free:
                    idx, overrides = queue.popleft()
                    slot = free.pop(0)
                    log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}" + (f" (GPU {slot})" if slot else ""))
                    future = pool.submit(_run_pinned, self.hydra_context, task,
                                         job_config(self.hydra_context, self.config, idx, overrides), slot)
                    running[future] = (idx, slot)
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    idx, slot = running.pop(future)
                    free.append(slot)
                    results[idx] = future.result()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        return [results[i] for i in sorted(results)]


def job_config(hydra_context: HydraContext, sweep_config: DictConfig, idx: int, overrides: Sequence[str]) -> DictConfig:
    """Job `idx` composed as Hydra's basic launcher composes it (here, in the launching process,
    so a bad job fails before any work starts)."""
    config = hydra_context.config_loader.load_sweep_config(sweep_config, list(overrides))
    with open_dict(config):
        config.hydra.job.id = idx
        config.hydra.job.num = idx
    return config


def _run_pinned(hydra_context: HydraContext, task: bytes, config: DictConfig, gpu: str | None) -> JobReturn:
    """Runs in the worker: pin the GPU before anything touches CUDA, then run the job."""
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    setup_globals()
    return run_job(hydra_context=hydra_context, task_function=cloudpickle.loads(task), config=config,
                  job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")


def _visible_gpu_count() -> int:
    import torch  # imported late: the launcher itself must not start CUDA in the parent

    return torch.cuda.device_count()
