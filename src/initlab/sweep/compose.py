"""Every job of a Hydra multirun composed once, for a few milliseconds a job.

Hydra's launchers compose each job from scratch (`ConfigLoader.load_sweep_config`: defaults
list, config files, merges): 0.1-0.3 s a job on a 2-core CPU, 40 minutes for the 8,190 runs of
a Schoenholz-sized grid before the first step. The jobs of a grid differ mostly in values
(`seed=3`, `model.depth=30`), rarely in which config files make them up (`init=xavier`,
`experiment=he2015`). So Hydra composes each distinct set of config-group choices, a
*structure*, once (`load_sweep_config` itself), and a job's config is its structure's with the
job's value overrides applied by the function Hydra applies them with right after composing
(`ConfigLoaderImpl._apply_overrides_to_config`): the same config, as tests/test_grid.py checks
against `load_sweep_config` job by job. Which overrides choose config files is Hydra's own
test (`defaults_list.Overrides`): a key that names a config group, with a value that is not a dict.

Where a job's remaining cost goes (2-core CPU, initlab's 60-key config): a copy of its
structure's config from a pickle (0.2 ms; `copy.deepcopy` of a DictConfig takes 1 ms), its value
overrides applied (~0.1 ms each) and its hydra node as plain data (~0.05 ms). Each distinct
override string is parsed once, however many jobs share it.
"""

import copy
import pickle
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hydra._internal.config_loader_impl import ConfigLoaderImpl, get_overrides_dirname
from hydra.core.override_parser.types import Override
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from initlab.track.identity import JOB_DIR, job_dir_name, parse_override

HYDRA_JOB_FIELDS = ("num", "id", "override_dirname")  # what Hydra sets per job in hydra.job
_OTHER_THAN_TIME = re.compile(r"\$\{(?!now:)")  # an interpolation other than ${now:...}


@dataclass
class Job:
    """One job of a grid: its place (Hydra's hydra.job.num), overrides as Hydra expanded them,
    config (the task config a job's function receives: no `hydra` node), folder, and its hydra
    node as plain data (what .hydra/hydra.yaml holds)."""

    num: int
    overrides: list[str]
    config: DictConfig
    dir: Path
    hydra: dict
    structure: tuple[str, ...]  # its config-group choices (GridComposer.structures' key)


@dataclass
class Structure:
    """What the jobs of one set of config-group choices share: Hydra's composition of it."""

    full: DictConfig  # the whole config, hydra node included, as load_sweep_config composed it
    task: bytes  # its task part, pickled: every job starts from a copy of it
    hydra: dict  # its hydra node as plain data, unresolved (as Hydra saves hydra.yaml)


class GridComposer:
    """Job configs of one multirun: `master` is the sweep's config (what Hydra hands a sweeper),
    `config_loader` Hydra's (its HydraContext's)."""

    def __init__(self, config_loader: ConfigLoaderImpl, master: DictConfig) -> None:
        self.loader, self.master = config_loader, master
        self.structures: dict[tuple[str, ...], Structure] = {}
        self._groups: dict[str, bool] = {}

    def compose(self, num: int, overrides: Sequence[str]) -> Job:
        """Job `num` with `overrides` (one of Hydra's expanded jobs), composed as Hydra's basic
        launcher composes it (load_sweep_config, then hydra.job.num and id set to `num`)."""
        parsed = [parse_override(o) for o in overrides]
        chooses = [self._chooses_files(o) for o in parsed]
        chosen = tuple(o for o, c in zip(overrides, chooses) if c)
        structure = self._structure(chosen)
        cfg = pickle.loads(structure.task)
        ConfigLoaderImpl._apply_overrides_to_config([o for o, c in zip(parsed, chooses) if not c], cfg)
        hydra = _job_hydra(structure, num, [o for o in parsed if not o.is_hydra_override()])
        job = Job(num, list(overrides), cfg, Path(), hydra, chosen)
        job.dir = self._job_dir(job)
        return job

    def full_config(self, job: Job) -> DictConfig:
        """The job's whole config (hydra node included), as Hydra's launchers hand it to
        hydra.core.utils.run_job: its structure's with the job's task part and hydra fields
        (~4 ms: for jobs that run one by one, where that does not count)."""
        cfg = copy.deepcopy(self._structure(job.structure).full)
        with read_write(cfg), open_dict(cfg):
            for key in job.config:
                cfg[key] = job.config[key]
            _set_hydra_fields(cfg.hydra, job.hydra)
        return cfg

    def _structure(self, chosen: tuple[str, ...]) -> Structure:
        if chosen not in self.structures:
            full = self.loader.load_sweep_config(self.master, list(chosen))
            task = copy.deepcopy(full)  # as run_job makes a job's task config
            with read_write(task), open_dict(task):
                del task["hydra"]
            self.structures[chosen] = Structure(full, pickle.dumps(task), OmegaConf.to_container(full.hydra, enum_to_str=True))
        return self.structures[chosen]

    def _chooses_files(self, override: Override) -> bool:
        """Whether the override changes which config files make up the job, as Hydra's
        defaults_list.Overrides decides it (hydra.* overrides: always, they shape Hydra's node)."""
        if override.is_hydra_override():
            return True
        group = override.key_or_group
        if group not in self._groups:
            self._groups[group] = self.loader.repository.group_exists(group)
        return self._groups[group] and not isinstance(override.value(), dict)

    def _job_dir(self, job: Job) -> Path:
        """hydra.sweep.dir / hydra.sweep.subdir as Hydra's run_job resolves them for this job.
        initlab's own subdir (conf/train.yaml) under a sweep folder that only the time interpolates
        is computed without OmegaConf's interpolation grammar (1 ms a job); any other is resolved
        on the job's whole config (4 ms: it may read the job's own values, `s${seed}`)."""
        structure = self._structure(job.structure)
        sweep = structure.hydra["sweep"]
        if sweep["subdir"] == JOB_DIR and not _OTHER_THAN_TIME.search(sweep["dir"]):
            return Path(str(structure.full.hydra.sweep.dir)) / job_dir_name(job.hydra["overrides"]["task"])
        full = self.full_config(job)
        return Path(str(full.hydra.sweep.dir)) / str(full.hydra.sweep.subdir)


def _job_hydra(structure: Structure, num: int, task: list[Override]) -> dict:
    """The structure's hydra node (plain) with this job's fields, sharing every untouched part."""
    hydra = dict(structure.hydra)
    dirname = hydra["job"]["config"]["override_dirname"]
    hydra["job"] = hydra["job"] | {"num": num, "id": str(num), "override_dirname": get_overrides_dirname(
        task, exclude_keys=dirname["exclude_keys"], item_sep=dirname["item_sep"], kv_sep=dirname["kv_sep"])}
    hydra["overrides"] = hydra["overrides"] | {"task": [o.input_line for o in task]}
    return hydra


def _set_hydra_fields(node: DictConfig, hydra: dict) -> None:
    node.overrides.task = hydra["overrides"]["task"]
    for key in HYDRA_JOB_FIELDS:
        node.job[key] = hydra["job"][key]
