"""A job's identity (what it measures, read from its task overrides) and the folder named after it.

The operational keys say how a run was launched, not what it measures. They are this ONE
list, read by the job folder's name, the resume check (run.py), `sweep.py status` and the
report: changing `logger=none` or `device=cpu` on a rerun lands in the same folder.

Hydra's own `hydra.job.override_dirname` cannot name job folders: it keeps `/` and `..` from
values (a job could write outside the sweep directory) and, with keys excluded, lets two jobs
share a folder, so a job number had to prefix it and a rerun of a changed grid renamed
folders. conf/train.yaml names them with the `initlab.job_dir` resolver instead; importing
initlab registers it, so it exists in every process that runs a job (the basic launcher's,
local_gpu's workers, submitit's SLURM workers, where the job config is resolved).
"""

import functools
import hashlib
import re
from collections.abc import Iterable
from urllib.parse import unquote

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import OverrideParseException
from omegaconf import OmegaConf

# How a run was launched, not what it measures: each key and everything under it.
OPERATIONAL = ("logger", "device", "data.root", "data.download", "train.progress", "train.resume")

RESOLVER = "initlab.job_dir"
JOB_DIR = "${%s:${hydra.overrides.task}}" % RESOLVER  # hydra.sweep.subdir in conf/train.yaml
NO_OVERRIDES = "defaults"  # the folder of a job that overrides nothing it measures
MAX_NAME = 200  # characters (all ASCII); file systems allow 255 bytes per path component
_HASHED = re.compile(rf".{{{MAX_NAME - 17}}}-[0-9a-f]{{16}}")  # a name job_dir_name shortened
_ESCAPED = re.compile(r"[^A-Za-z0-9_.=+@:\[\]-]|\.(?=\.)")  # kept as typed: these, but no `..`


def is_operational(key: str) -> bool:
    """True for a config key (`logger.mode`, `device`) that OPERATIONAL lists or nests under."""
    return any(key == op or key.startswith(op + ".") for op in OPERATIONAL)


@functools.lru_cache(maxsize=None)
def parse_override(override: str) -> Override:
    """Hydra's reading of one override string, once per string: a grid of thousands of jobs
    repeats a few dozen strings, and each ANTLR parse takes ~0.1 ms. (Treat it as read-only.)"""
    return OverridesParser.create().parse_override(override)


def drop_operational(overrides: Iterable[str]) -> list[str]:
    """The overrides as typed, in their order, without the operational ones."""
    return [text for text in overrides if not is_operational(parse_override(text).key_or_group)]


def identity(overrides: Iterable[str]) -> dict[str, str | None]:
    """What a job is: its overrides without the operational ones, as {key: value}, one per key
    (the last, as Hydra applies them), in the order typed; each value as Hydra's parser reads it,
    so `optim.lr=5e-2` and `optim.lr=0.05` are one job. `~key` (a deletion) has the value None."""
    kept: dict[str, str | None] = {}
    for text in overrides:
        key, value, operational = _identity_item(text)
        if not operational:
            kept[key] = value
    return kept


@functools.lru_cache(maxsize=None)
def _identity_item(override: str) -> tuple[str, str | None, bool]:
    """(key, canonical value, operational?) of one override string."""
    parsed = parse_override(override)
    return parsed.get_key_element(), _canonical_value(parsed), is_operational(parsed.key_or_group)


def as_overrides(ident: dict[str, str | None]) -> list[str]:
    """An identity written back as overrides: `key=value`, `~key`."""
    return [key if value is None else f"{key}={value}" for key, value in ident.items()]


def job_dir_name(overrides: Iterable[str]) -> str:
    """The job's folder name: its identity as `key=value,key=value`, sorted by key.

    Every character that could leave the folder or blur the separators (`/`, `\\`, `,`, `%`,
    `~`, spaces, ...) is %-encoded as in URLs, and so is a `.` before another `.`: the encoding
    is one-to-one, so two identities never share a name, and no value reaches outside the sweep
    directory. A name longer than MAX_NAME keeps its start and ends in a hash of the identity.
    """
    items = sorted(as_overrides(identity(overrides)), key=lambda item: (item.lstrip("+~"), item))
    name = ",".join(_ESCAPED.sub(_percent, item) for item in items) or NO_OVERRIDES
    if len(name) > MAX_NAME:
        digest = hashlib.sha256("\n".join(items).encode()).hexdigest()[:16]
        name = f"{name[:MAX_NAME - len(digest) - 1]}-{digest}"
    return name


def identity_from_name(name: str) -> list[str] | None:
    """The overrides a job folder is named after (job_dir_name read back), for a job whose
    .hydra/overrides.yaml is damaged; None for a name shortened to a hash."""
    if name == NO_OVERRIDES:
        return []
    if _HASHED.fullmatch(name):
        return None
    return [unquote(item) for item in name.split(",")]


def register_resolver() -> None:
    """`${initlab.job_dir:${hydra.overrides.task}}` -> job_dir_name of the job's task overrides."""
    OmegaConf.register_new_resolver(RESOLVER, _job_dir_of, replace=True)


def _job_dir_of(task) -> str:
    # The overrides as typed: to_container leaves a value such as `${seed}` unresolved.
    return job_dir_name(OmegaConf.to_container(task) if OmegaConf.is_config(task) else task)


def _percent(match: re.Match) -> str:
    return "".join(f"%{byte:02X}" for byte in match.group().encode())


def _canonical_value(override: Override) -> str | None:
    """The value as typed, but without quotes Hydra reads the same without (`gain='relu'` is `gain=relu`)."""
    if override.is_delete() and override.value() is None:
        return None  # `~key`: delete whatever it holds
    value = override.value()
    if isinstance(value, str) and value:
        try:
            plain = OverridesParser.create().parse_override(f"{override.key_or_group}={value}")
        except OverrideParseException:  # quotes it needs (a `,`, a bracket)
            plain = None
        if plain is not None and plain.value() == value and isinstance(plain.value(), str):
            return plain.get_value_element_as_str()
    return override.get_value_element_as_str()
