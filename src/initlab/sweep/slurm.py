"""Grids on SLURM as arrays of packs, through submitit: each array task trains up to `max_pack`
jobs as one pack on its node (initlab.sweep.jobs.run_packed), so `sacct` shows ceil(N / K)
tasks for N jobs, not N.

Every guarantee of a lone SLURM job holds per pack. At a time limit SLURM warns with SIGUSR2:
the pack saves each run's last.pt at the next step, records it `interrupted`, and submitit's
handler (chained by initlab.train.preemption) requeues the task through PackTask.checkpoint; a
preemption (SIGTERM, requeued by SLURM) stops it the same way. The requeued task (either way)
resumes each run from its own last.pt. Jobs that never started have no folder.

The sweep folder keeps what was submitted (initlab.sweep.queue), so `sweep.py status` shows
jobs still queued, `--no-wait` can return at once, and a rerun of the grid submits only what is
neither done nor still queued or running.
"""

import logging
import os
import subprocess
import time
from pathlib import Path

import submitit
from hydra.core.utils import JobReturn, setup_globals

from initlab.sweep.compose import Job
from initlab.sweep.jobs import failed, run_packed
from initlab.sweep.packs import packs
from initlab.sweep.queue import QueueUnreadable, queue_states, record_submission
from initlab.track.records import HYDRA_LOG_FORMAT

log = logging.getLogger(__name__)
POLL_S = 5  # seconds between looks at the queue while waiting for a grid


class PackTask:
    """One array task: its jobs trained as one pack on the node. With `fail_fast`, a failed job
    cancels the array's other tasks: the running ones record `interrupted` (resumable), the
    queued ones never start."""

    def __init__(self, group: str, fail_fast: bool) -> None:
        self.group, self.fail_fast = group, fail_fast

    def __call__(self, jobs: list[Job]) -> dict[int, JobReturn]:
        logging.basicConfig(level=logging.INFO, format=HYDRA_LOG_FORMAT)  # the task's .out file
        setup_globals()  # Hydra's resolvers (${now:...}), as in a Hydra job
        if int(os.environ.get("SLURM_RESTART_COUNT", 0)):  # requeued (preempted): each run goes on from its last.pt
            _resume(jobs)
        results = run_packed(jobs, self.group, self.fail_fast)
        if self.fail_fast and failed(results):
            _cancel_the_others()
        return results

    def checkpoint(self, jobs: list[Job]) -> submitit.helpers.DelayedSubmission:
        """What submitit requeues at a time limit: the same pack, each run resuming from its last.pt."""
        _resume(jobs)
        return submitit.helpers.DelayedSubmission(self, jobs)


def submit(jobs: list[Job], sweep_dir: Path, folder: str, parameters: dict, max_num_timeout: int,
           max_pack: int, fail_fast: bool) -> list[submitit.Job]:
    """Submit `jobs` as one array of packs; each task's SLURM id is added to the sweep's manifest."""
    executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=max_num_timeout)
    executor.update_parameters(**parameters)
    grouped = packs(jobs, max_pack)
    tasks = executor.map_array(PackTask(sweep_dir.name, fail_fast), grouped)
    record_submission(sweep_dir, [{"slurm_id": task.job_id, "jobs": [_entry(job) for job in pack]}
                                  for task, pack in zip(tasks, grouped)])
    log.info(f"Submitted {len(jobs)} jobs as {len(tasks)} SLURM task(s) of up to {max_pack}: "
             f"array job {tasks[0].job_id.split('_')[0]}")
    return tasks


def wait(tasks: list[submitit.Job]) -> dict[int, JobReturn]:
    """Wait until no task of the array is queued or running; the JobReturns of the tasks that
    returned, by job number (a task stopped or cancelled returns none: its runs' records say how
    they ended). submitit's own result() would wait forever for a pending task that was cancelled.
    A queue that cannot be read (slurmctld restarting) is asked again, not taken for empty."""
    ids = {task.job_id for task in tasks}
    while True:
        try:
            if not ids & set(queue_states(ids)):
                break
        except QueueUnreadable as err:
            log.warning(f"{err}; asking again in {POLL_S} s")
        time.sleep(POLL_S)
    results: dict[int, JobReturn] = {}
    for task in tasks:
        try:
            results |= task.results()[0] if task.paths.result_pickle.exists() else {}
        except Exception as err:  # the task raised (stopped by a signal, or crashed): its runs' records say
            log.info(f"SLURM task {task.job_id}: {' '.join(str(err).split())[:200]}")
    return results


def _resume(jobs: list[Job]) -> None:
    """Have each run continue from its own last.pt (a requeued task's)."""
    for job in jobs:
        job.config.train.resume = True


def _entry(job: Job) -> dict:
    return {"dir": job.dir.name, "num": job.num, "overrides": job.hydra["overrides"]["task"]}


def _cancel_the_others() -> None:
    """Cancel every other task of this task's array (SIGTERM to the running ones: each saves
    last.pt and records `interrupted`; the queued ones leave the queue unstarted)."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if not array:
        return
    others = [i for i in queue_states({f"{array}_{n}" for n in range(_array_size())}) if i != f"{array}_{task}"]
    log.info(f"fail_fast: a job failed; cancelling {len(others)} other task(s) of array {array}")
    if others:
        subprocess.run(["scancel", *others], check=False)


def _array_size() -> int:
    """How many tasks this task's array has (SLURM_ARRAY_TASK_COUNT, else its highest id + 1)."""
    env = os.environ
    return int(env.get("SLURM_ARRAY_TASK_COUNT") or int(env.get("SLURM_ARRAY_TASK_MAX", 0)) + 1)
