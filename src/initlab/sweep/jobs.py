"""Jobs of a grid trained as packs (initlab.run.run_pack), in this process: each job's folder as
Hydra's run_job leaves it, and the JobReturn Hydra expects back.

Hydra's `run_job` costs 20-75 ms a job (two deep copies of the config, logging set up anew, three
files through OmegaConf's pure-Python YAML): minutes for a grid of thousands of short runs. A
packed job never calls its task function, so it needs none of that but the folder and Hydra's
record of the job, `.hydra/{config,hydra,overrides}.yaml`, written here through libyaml (~0.6 ms).
"""

from collections.abc import Sequence
from pathlib import Path

import yaml
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf

from initlab.errors import ConfigError, JobFailed
from initlab.run import earlier_outcome, run_pack
from initlab.sweep.compose import Job
from initlab.track.records import RunRecords
from initlab.train.loop import Outcome


def open_job(job: Job) -> Path:
    """Make the job's folder and write Hydra's record of the job into it, as run_job does;
    return the folder (absolute, as Hydra's hydra.runtime.output_dir)."""
    output_dir = job.dir.absolute()
    hydra = job.hydra | {"runtime": job.hydra["runtime"] | {"output_dir": str(output_dir)}}
    subdir = hydra.get("output_subdir")
    (output_dir / subdir if subdir is not None else output_dir).mkdir(parents=True, exist_ok=True)
    if subdir is not None:
        _dump(output_dir / subdir / "config.yaml", OmegaConf.to_container(job.config, enum_to_str=True))
        _dump(output_dir / subdir / "hydra.yaml", {"hydra": hydra})
        _dump(output_dir / subdir / "overrides.yaml", hydra["overrides"]["task"])
    return output_dir


def run_packed(jobs: Sequence[Job], group: str | None, fail_fast: bool = False) -> dict[int, JobReturn]:
    """Train `jobs` (one pack_key) as one pack into their folders, each made as its run starts:
    a JobReturn per job that started, by job number: COMPLETED with the run's Outcome (diverged
    and interrupted runs too: their records say so), FAILED with the error that ended it (a user
    mistake as one line, JobFailed). With `fail_fast` the jobs after a failure do not start
    (initlab.run.run_pack): they get no folder."""
    dirs = [job.dir.absolute() for job in jobs]
    outcomes = run_pack([job.config for job in jobs], dirs, group, fail_fast, open_dir=lambda i: open_job(jobs[i]),
                        experiments=[job.hydra["runtime"]["choices"].get("experiment") for job in jobs])
    return {job.num: job_return(job, folder, outcome) for job, folder, outcome in zip(jobs, dirs, outcomes)
            if outcome is not None}


def failed(results: dict[int, JobReturn]) -> bool:
    """Whether any of the jobs failed (what stops a fail_fast grid)."""
    return any(r.status is JobStatus.FAILED for r in results.values())


def finished(jobs: Sequence[Job]) -> dict[int, Outcome]:
    """The jobs (by number) whose folder holds this very run, ended `completed` or `diverged`,
    and that resume (train.resume=true, as sweep.py launches): nothing is left to run for them.
    A folder that holds another config is left to the launch, which records the refusal."""
    done = {}
    for job in jobs:
        if not (job.config.train.resume and (job.dir / "summary.json").exists()):
            continue
        try:
            outcome = earlier_outcome(RunRecords(job.dir), job.config)
        except ConfigError:
            continue
        if outcome is not None and outcome.status in ("completed", "diverged"):
            done[job.num] = outcome
    return done


def job_return(job: Job, folder: Path, outcome) -> JobReturn:
    """What Hydra's run_job returns for `job` whose task ended with `outcome` (or raised it)."""
    failed = isinstance(outcome, BaseException)
    return JobReturn(overrides=job.hydra["overrides"]["task"], cfg=job.config, working_dir=str(folder),
                     task_name=job.hydra["job"]["name"], status=JobStatus.FAILED if failed else JobStatus.COMPLETED,
                     _return_value=JobFailed.of(outcome) if failed else outcome)


def _dump(path: Path, data) -> None:
    path.write_text(yaml.dump(data, Dumper=yaml.CSafeDumper, sort_keys=False, allow_unicode=True))
