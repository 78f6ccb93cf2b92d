"""A Hydra launcher that trains a grid's jobs as packs: the jobs that share everything fixing
tensor shapes and the training schedule (initlab.sweep.packs.pack_key) train as one stacked
computation (initlab.run.run_pack), up to `max_pack` runs each, in this process. Every job gets
the folder, .hydra/ files and JobReturn Hydra's launchers give it (initlab.sweep.jobs)."""

import logging
from typing import TYPE_CHECKING

from hydra.core.utils import JobReturn

from hydra_plugins.initlab.grid_launcher import GridLauncher

if TYPE_CHECKING:
    from initlab.sweep.compose import GridComposer, Job

log = logging.getLogger(__name__)


class PackedLauncher(GridLauncher):
    def __init__(self, max_pack: int = 64, fail_fast: bool = False) -> None:
        super().__init__(fail_fast)
        self.max_pack = max_pack

    def launch_jobs(self, jobs: "list[Job]", composer: "GridComposer") -> dict[int, JobReturn]:
        from initlab.sweep.jobs import failed, run_packed  # here: Hydra imports every plugin at start-up
        from initlab.sweep.packs import packs

        self.begin()
        grouped = packs(jobs, self.max_pack)
        log.info(f"Launching {len(jobs)} jobs as {len(grouped)} pack(s) of up to {self.max_pack}")
        results: dict[int, JobReturn] = {}
        for pack in grouped:
            log.info(f"\tpack of {len(pack)}: jobs {_numbers(pack)}")
            results |= run_packed(pack, self.sweep_dir.name, self.fail_fast)
            if self.fail_fast and failed(results):
                break
        return results


def _numbers(pack: "list[Job]") -> str:
    """#3, #4, ... (runs of consecutive numbers as #3-#9)."""
    nums, spans = [job.num for job in pack], []
    for num in nums:
        if spans and num == spans[-1][1] + 1:
            spans[-1][1] = num
        else:
            spans.append([num, num])
    return ", ".join(f"#{a}" if a == b else f"#{a}-#{b}" for a, b in spans)
