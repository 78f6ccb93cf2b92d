"""A Hydra launcher that runs a sweep's jobs in parallel worker processes, one GPU slot each.

Hydra's submitit_local cannot pin GPUs and joblib does not assign them. Here every job runs in
a fresh spawned process whose CUDA_VISIBLE_DEVICES names one GPU, set before CUDA starts;
`gpus` x `jobs_per_gpu` slots run at once and the next job starts as soon as a slot frees. With
no GPU, `workers` CPU processes run in parallel, so the same sweep runs anywhere. With
`fail_fast`, the first failed job stops the grid: the running jobs get SIGTERM (each saves
last.pt and records `interrupted`), the queued ones never start.
"""

import logging
import multiprocessing
import os
from collections import deque
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Sequence

import cloudpickle
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, run_job, setup_globals
from hydra.types import HydraContext
from omegaconf import DictConfig

from hydra_plugins.initlab.grid_launcher import GridLauncher

if TYPE_CHECKING:
    from initlab.sweep.compose import GridComposer, Job

log = logging.getLogger(__name__)


class LocalGpuLauncher(GridLauncher):
    def __init__(self, gpus: Sequence[int] | None = None, jobs_per_gpu: int = 1, workers: int = 2,
                 fail_fast: bool = False) -> None:
        super().__init__(fail_fast)
        self.gpus, self.jobs_per_gpu, self.workers = gpus, jobs_per_gpu, workers

    def slots(self) -> list[str | None]:
        """One entry per concurrent job: a GPU id, or None for a CPU worker."""
        gpus = list(self.gpus) if self.gpus is not None else list(range(_visible_gpu_count()))
        if gpus:
            return [str(g) for g in gpus for _ in range(self.jobs_per_gpu)]
        return [None] * self.workers

    def launch_jobs(self, jobs: "list[Job]", composer: "GridComposer") -> dict[int, JobReturn]:
        self.begin()
        free = self.slots()
        where = f"{len(set(free))} GPU(s) x {self.jobs_per_gpu}" if free[0] is not None else f"{len(free)} CPU workers"
        log.info(f"Launching {len(jobs)} jobs on {where}")
        queue = deque(jobs)
        task = cloudpickle.dumps(self.task_function)  # @hydra.main's inner function in __main__: by value
        context = multiprocessing.get_context("spawn")  # fresh interpreters: no CUDA state inherited
        running: dict[Connection, tuple["Job", str | None, multiprocessing.Process]] = {}
        results: dict[int, JobReturn] = {}
        stopping = False
        while running or (queue and not stopping):
            while queue and free and not stopping:
                job, slot = queue.popleft(), free.pop(0)
                log.info(f"\t#{job.num} : {' '.join(filter_overrides(job.overrides))}" + (f" (GPU {slot})" if slot else ""))
                receive, send = context.Pipe(duplex=False)
                worker = context.Process(target=_run_pinned, args=(self.hydra_context, task, composer.full_config(job),
                                                                   slot, send))
                worker.start()
                send.close()
                running[receive] = (job, slot, worker)
            for receive in wait(list(running)):
                job, slot, worker = running.pop(receive)
                results[job.num] = _result(receive, worker)
                free.append(slot)
                if self.fail_fast and results[job.num].status is JobStatus.FAILED and not stopping:
                    stopping = True
                    log.info(f"fail_fast: job #{job.num} failed; stopping the {len(running)} running job(s)")
                    for _, _, other in running.values():
                        other.terminate()  # SIGTERM: the job saves last.pt and records `interrupted`
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        return results


def _result(receive: Connection, worker: multiprocessing.Process) -> JobReturn:
    """The JobReturn a worker sent; a worker that died before sending one (killed, out of memory)
    is a failed job."""
    try:
        result = receive.recv()
    except EOFError:
        worker.join()
        result = JobReturn(status=JobStatus.FAILED,
                           _return_value=RuntimeError(f"the worker process died (exit code {worker.exitcode})"))
    worker.join()
    receive.close()
    return result


def _run_pinned(hydra_context: HydraContext, task: bytes, config: DictConfig, gpu: str | None,
                send: Connection) -> None:
    """Runs in the worker: pin the GPU before anything touches CUDA, run the job, send its JobReturn."""
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    setup_globals()
    try:
        result = run_job(hydra_context=hydra_context, task_function=cloudpickle.loads(task), config=config,
                         job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")
    except SystemExit:  # a stop signal ended the run: it saved last.pt and recorded `interrupted`
        result = JobReturn(status=JobStatus.COMPLETED, _return_value=None)
    send.send(result)


def _visible_gpu_count() -> int:
    import torch  # imported late: the launcher itself must not start CUDA in the parent

    return torch.cuda.device_count()
