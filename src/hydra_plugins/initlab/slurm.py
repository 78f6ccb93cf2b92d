"""A Hydra launcher that runs a grid on SLURM as an array of packs (initlab.sweep.slurm): up to
`max_pack` jobs a task, each task requeued at its time limit or on preemption and resuming
every run from its own last.pt. `wait=false` submits and returns (sweep.py --no-wait)."""

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn
from omegaconf import OmegaConf

from hydra_plugins.initlab.grid_launcher import GridLauncher

if TYPE_CHECKING:
    from initlab.sweep.compose import GridComposer, Job

log = logging.getLogger(__name__)


@dataclass
class SlurmConf:
    """The launcher's keys, typed: Hydra checks them while composing (conf/hydra/launcher/slurm.yaml
    documents them and sets the defaults)."""

    _target_: str = "hydra_plugins.initlab.slurm.SlurmLauncher"
    max_pack: int = 64
    fail_fast: bool = False
    wait: bool = True
    partition: str | None = None
    timeout_min: int = 60
    cpus_per_task: int | None = None
    gpus_per_node: int | None = None
    mem_gb: int | None = None
    array_parallelism: int = 16
    max_num_timeout: int = 3
    signal_delay_s: int = 30
    setup: list[str] = field(default_factory=list)
    additional_parameters: dict[str, Any] = field(default_factory=dict)
    submitit_folder: str = ".submitit"


ConfigStore.instance().store(group="hydra/launcher", name="slurm_schema", node=SlurmConf, provider="initlab")


class SlurmLauncher(GridLauncher):
    RUNS_ELSEWHERE = True

    def __init__(self, max_pack: int = 64, fail_fast: bool = False, wait: bool = True, submitit_folder: str = ".submitit",
                 timeout_min: int = 60, mem_gb: int | None = None, max_num_timeout: int = 3, **slurm: Any) -> None:
        super().__init__(fail_fast)
        self.max_pack, self.wait, self.folder, self.max_num_timeout = max_pack, wait, submitit_folder, max_num_timeout
        # sbatch's own names (submitit's SlurmExecutor parameters); the two renamed as Hydra's submitit plugin names them
        self.slurm = {"time": timeout_min, "mem": None if mem_gb is None else f"{mem_gb}GB",
                      **{k: OmegaConf.to_container(v) if OmegaConf.is_config(v) else v for k, v in slurm.items()}}

    def in_flight(self, jobs: "list[Job]") -> dict[Path, str]:
        from initlab.sweep.queue import in_queue, submitted

        queued = in_queue(submitted(self.sweep_dir))
        return {job.dir.absolute(): queued[job.dir.name] for job in jobs if job.dir.name in queued}

    def launch_jobs(self, jobs: "list[Job]", composer: "GridComposer") -> dict[int, JobReturn]:
        from initlab.sweep.slurm import submit, wait

        self.begin()
        tasks = submit(jobs, self.sweep_dir, str(self.sweep_dir / self.folder / "%j"),
                       {k: v for k, v in self.slurm.items() if v is not None}, self.max_num_timeout, self.max_pack,
                       self.fail_fast)
        if not self.wait:
            log.info(f"Not waiting: follow it with `python scripts/sweep.py status {self.sweep_dir} --follow`; "
                     "rerunning the sweep submits only what is neither done nor still queued")
            return {}
        return wait(tasks)
