"""The run's own files: the durable record (wandb only mirrors it).

Writers leave no damage: config.yaml, init.json, summary.json (and last.pt) replace the old
file only once complete and on disk, through a uniquely named temporary file that is removed
on any failure, a full disk included; metrics.jsonl grows one whole line at a time, and an
append that fails is cut back. Readers tolerate what a killed run or a bad disk leaves: a
truncated last metrics line is dropped, an unreadable summary reads as status `damaged`,
an unreadable config.yaml raises DamagedRecord. A lock file keeps a second process out of a
directory while a run writes into it.
"""

import ctypes
import fcntl
import functools
import json
import logging
import math
import os
import platform
import re
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import BinaryIO

import yaml
from omegaconf import OmegaConf

from initlab.errors import ConfigError

log = logging.getLogger(__name__)

# The final metrics every summary.json carries (null where not measured).
FINAL_METRICS = ("train/loss", "train/acc", "test/loss", "test/acc")
PACKAGES = ("initlab", "torch", "torchvision", "hydra-core", "omegaconf", "wandb", "numpy")
LOCK_FILE = ".lock"
HYDRA_LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"  # hydra/job_logging/default


class DamagedRecord(ValueError):
    """A record file that exists but cannot be read (truncated, corrupt)."""


class RunDirBusy(ConfigError):
    """Another process holds the run directory's lock."""

    @classmethod
    def held_by(cls, run_dir: Path, holder: str) -> "RunDirBusy":
        return cls("hydra.run.dir", str(run_dir), f"another run (pid {holder}) is writing into it; "
                   "wait for it to end or choose another directory")


@contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A binary file that replaces `path` once the block ends: readers see the old file or
    the new one, never half of one, and a failure anywhere leaves no temporary file behind.
    Inside durable_together(), the replacement waits for the end of that block."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    # 0o666 and the umask (mkstemp would give 0o600): record files get the user's usual permissions
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    together = _TOGETHER.get()
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            if together is None:
                os.fsync(f.fileno())  # on disk before the rename: never a complete name over missing data
        if together is None:
            os.replace(tmp, path)
        else:
            together.renames.append((tmp, path))
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@dataclass
class _Together:
    renames: list[tuple[Path, Path]] = field(default_factory=list)  # (temporary file, the file it replaces)
    appended: list[Path] = field(default_factory=list)  # files appended to that must reach the disk too

    def flush(self) -> None:
        """Every file on disk: one syncfs per file system for a batch, else an fsync each (a few
        files: a whole file system's flush would wait for other programs' writes too)."""
        files = [tmp for tmp, _ in self.renames] + self.appended
        if len(files) >= SYNCFS_FROM and _SYNCFS:
            for folder in {f.parent.stat().st_dev: f.parent for f in files}.values():
                _syncfs(folder)
            return
        for file in files:
            fd = os.open(file, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


_TOGETHER: ContextVar[_Together | None] = ContextVar("durable_together", default=None)
SYNCFS_FROM = 8  # files: a batch this large is flushed with one syncfs
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
# syncfs(2) reports a failed writeback only since Linux 5.8: before, it cannot stand in for fsync
_SYNCFS = _LIBC is not None and tuple(map(int, re.findall(r"\d+", platform.release())[:2])) >= (5, 8)


@contextmanager
def durable_together() -> Iterator[None]:
    """Atomic writes inside made durable together: at the end every file written inside is put on
    disk at once (metrics appended inside too, through sync_metrics), then each replaces its
    target, in order. A pack's runs write one file of a kind each, at once: 64 fsyncs (~0.6 ms
    each on this machine's disk) become one syncfs. If the block fails, no target is replaced
    and no temporary file stays; a rename that fails (a disk gone) leaves the ones before it done,
    each file whole."""
    if _TOGETHER.get() is not None:
        yield
        return
    together = _Together()
    token = _TOGETHER.set(together)
    try:
        yield
        together.flush()
        for tmp, path in together.renames:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in together.renames:
            tmp.unlink(missing_ok=True)
        raise
    finally:
        _TOGETHER.reset(token)


def _syncfs(folder: Path) -> None:
    """Flush the file system that holds `folder` to disk (Linux's syncfs)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        if _LIBC.syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), str(folder))
    finally:
        os.close(fd)


def atomic_write(path: Path, text: str) -> None:
    with atomic_file(path) as f:
        f.write(text.encode())


def _finite(value):
    """JSON has no NaN/inf: a non-finite number is written as null (the status says why)."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def to_json(obj) -> str:
    if isinstance(obj, dict):
        obj = {k: _finite(v) for k, v in obj.items()}
    return json.dumps(obj, indent=None if isinstance(obj, dict) else 1, default=str)


class RunRecords:
    def __init__(self, run_dir: Path) -> None:
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.dir / "metrics.jsonl"

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the directory's lock while a run writes into it. A second process aiming at the
        same directory gets RunDirBusy at once, before it has written anything."""
        fd = os.open(self.dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunDirBusy.held_by(self.dir, _pid(fd)) from None
            except OSError as err:  # a file system without flock (some Lustre mounts)
                log.warning("cannot lock %s (%s): nothing keeps a second run out of it", self.dir, err)
            else:
                os.ftruncate(fd, 0)
                os.write(fd, str(os.getpid()).encode())
            yield
        finally:
            os.close(fd)  # releases the lock

    @contextmanager
    def train_log(self, console: bool = True) -> Iterator[None]:
        """initlab's log lines emitted inside also go to this run's train.log, where Hydra's job
        logging puts a lone run's: a packed run's own lines (init table, resume, outcome) reach it
        too, and a line reaches it once where Hydra's job logging already writes it. Without
        `console` they go there only (a packed run's: not the sweep's console)."""
        path = os.path.abspath(self.dir / "train.log")  # as logging.FileHandler keeps it (normalised)
        initlab_log = logging.getLogger("initlab")
        if any(isinstance(h, logging.FileHandler) and h.baseFilename == path
               for h in (*logging.getLogger().handlers, *initlab_log.handlers)):
            yield
            return
        handler = logging.FileHandler(path)
        handler.setFormatter(logging.Formatter(HYDRA_LOG_FORMAT))
        initlab_log.addHandler(handler)
        propagate, initlab_log.propagate = initlab_log.propagate, console
        try:
            yield
        finally:
            initlab_log.propagate = propagate
            initlab_log.removeHandler(handler)
            handler.close()

    def write_config(self, cfg) -> None:
        """config.yaml: the config resolved, through libyaml (OmegaConf.to_yaml takes ~7 ms)."""
        plain = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
        atomic_write(self.dir / "config.yaml", yaml.dump(plain, Dumper=yaml.CSafeDumper, sort_keys=False))

    def write_init(self, records: list[dict]) -> None:
        atomic_write(self.dir / "init.json", json.dumps(records, indent=1))

    def write_theory(self, theory: dict) -> dict:
        atomic_write(self.dir / "theory.json", json.dumps(theory, indent=1))
        return theory

    def write_jacobian(self, jacobian: dict) -> dict:
        atomic_write(self.dir / "jacobian.json", json.dumps(jacobian, indent=1))
        return jacobian

    def write_summary(self, summary: dict) -> None:
        atomic_write(self.dir / "summary.json", json.dumps({k: _finite(v) for k, v in summary.items()}, indent=1))

    def read_summary(self) -> dict | None:
        return read_summary(self.dir)

    def append_metrics(self, record: dict) -> None:
        """Append one whole line; a write that fails part-way (a full disk) is cut back off."""
        line = memoryview((to_json(record) + "\n").encode())
        fd = os.open(self.metrics_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            size = os.fstat(fd).st_size
            try:
                while line:
                    line = line[os.write(fd, line):]
            except BaseException:
                os.ftruncate(fd, size)
                raise
        finally:
            os.close(fd)

    def sync_metrics(self) -> None:
        """Force metrics.jsonl to disk: a checkpoint must never be ahead of the metrics it continues.
        (Inside durable_together(), its flush, before any replacement, does it.)"""
        together = _TOGETHER.get()
        if together is not None and self.metrics_path.exists():
            together.appended.append(self.metrics_path)
        elif self.metrics_path.exists():
            fd = os.open(self.metrics_path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def truncate_metrics(self, from_step: int) -> None:
        """Keep only the records before `from_step`: a resumed run logs the others again."""
        try:
            kept = [to_json(r) + "\n" for r in read_metrics(self.dir) if r["step"] < from_step]
        except DamagedRecord as err:
            raise ConfigError("train.resume", True, f"{err}; start afresh with train.resume=false") from None
        atomic_write(self.metrics_path, "".join(kept))


def read_metrics(run_dir: Path) -> list[dict]:
    """metrics.jsonl as records. An unreadable last line (a run killed mid-write, a full disk)
    is dropped with a warning; an unreadable line before it is damage: DamagedRecord."""
    path = Path(run_dir) / "metrics.jsonl"
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except FileNotFoundError:
        return []
    records = []
    for number, line in enumerate(lines, 1):
        try:
            records.append(_metric(line))
        except ValueError as err:
            if number < len(lines):
                raise DamagedRecord(f"{path}: line {number} is unreadable ({err})") from None
            log.warning("%s: dropped its truncated last line (a run stopped mid-write)", path)
    return records


def _metric(line: str) -> dict:
    record = json.loads(line)
    if not isinstance(record, dict) or not isinstance(record.get("step"), int):
        raise ValueError("not a record with an integer step")
    return record


def read_summary(run_dir: Path) -> dict | None:
    """A run's summary.json; None while it has none (still running, or killed); status
    `damaged`, with the reason as `error`, when it cannot be read."""
    path = Path(run_dir) / "summary.json"
    try:
        summary = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        return {"status": "damaged", "error": f"{path.name} unreadable: {err}"}
    if not isinstance(summary, dict) or not isinstance(summary.get("status"), str):
        return {"status": "damaged", "error": f"{path.name} holds no status"}
    return summary


def read_config(run_dir: Path) -> dict | None:
    """A run's config.yaml as a dict; None when it has none; DamagedRecord when unreadable."""
    path = Path(run_dir) / "config.yaml"
    if not path.exists():
        return None
    try:
        config = OmegaConf.to_container(OmegaConf.load(path))  # OmegaConf's YAML reads 1e-05 as a float
    except Exception as err:  # YAML and OmegaConf errors of many types, an unreadable file
        raise DamagedRecord(f"{path} is unreadable: {' '.join(str(err).split())}") from None
    if not isinstance(config, dict) or not config:
        raise DamagedRecord(f"{path} holds no config")
    return config


def run_status(run_dir: Path) -> dict:
    """What a run's records say, for tables: its summary; status `damaged` (and why, as `error`)
    when a record cannot be read; with no summary yet, `running` while a process holds the
    directory's lock, else `stopped` (killed before it could write one), with the step of its
    last metrics line."""
    try:
        config = read_config(run_dir)
        rows = read_metrics(run_dir)
    except DamagedRecord as err:
        return {"status": "damaged", "error": str(err)}
    summary = read_summary(run_dir)
    if summary is not None:
        return _missing_records(summary, config, rows) or summary
    steps = rows[-1]["step"] if rows else None
    if lock_holder(run_dir):
        return {"status": "running", "steps": steps}
    return {"status": "stopped", "steps": steps, "error": "no summary.json and no process writing: killed, or not started"}


def _missing_records(summary: dict, config: dict | None, rows: list[dict]) -> dict | None:
    """`damaged` when a run that trained (by its summary) lacks the config or metrics it wrote
    (a run that failed may have stopped before writing them)."""
    trained = summary["status"] in ("completed", "diverged", "interrupted")
    missing = [name for name, gone in (("config.yaml", config is None),
                                       ("metrics.jsonl", not rows and (summary.get("steps") or 0) > 0)) if gone]
    if trained and missing:
        return {**summary, "status": "damaged", "error": f"{' and '.join(missing)} missing or empty; "
                f"summary.json says {summary['status']} after {summary.get('steps')} steps"}
    return None


def lock_holder(run_dir: Path) -> str | None:
    """The pid of the process holding the run directory's lock (a run writing into it), or None."""
    try:
        fd = os.open(Path(run_dir) / LOCK_FILE, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None
    except BlockingIOError:
        return _pid(fd)
    except OSError:  # no flock on this file system: no run can hold it either
        return None
    finally:
        os.close(fd)


def shown(path: Path) -> str:
    """`path` as a user at this prompt would type it: relative to the current folder when inside it."""
    path = Path(path).absolute()
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


def check_run_dir(run_dir: Path, writable: set[Path] | None = None) -> None:
    """Raise a ConfigError if a run could not write into `run_dir`: another run is writing into
    it (RunDirBusy), or it (not made yet: the folder it would be made in) is not writable.
    Checked before Hydra starts, which writes .hydra/ and train.log into a run directory before
    the run can take its lock, and fails with a traceback where it cannot. `writable`: folders
    found writable already (a grid's jobs share the folder theirs are made in)."""
    if Path(run_dir).absolute() == Path.cwd():  # `hydra.run.dir=` too: Path("") is "."
        raise ConfigError("hydra.run.dir", str(run_dir), "a folder of its own: this would write into the current one")
    check_writable("hydra.run.dir", Path(run_dir), writable)
    if holder := lock_holder(run_dir):
        raise RunDirBusy.held_by(run_dir, holder)


def check_writable(key: str, folder: Path, writable: set[Path] | None = None) -> None:
    """Raise a ConfigError (naming `key`) unless `folder` is, or can be made as, a writable folder;
    the folder it was found writable in is added to `writable`, and one already there is not tried again."""
    existing = next(p for p in (folder.absolute(), *folder.absolute().parents) if p.exists())
    if writable is not None and existing in writable:
        return
    problem = "is not a folder" if not existing.is_dir() else None if _can_make_in(existing) else "is not writable"
    if problem:
        raise ConfigError(key, str(folder), f"{existing} {problem}; choose another folder")
    if writable is not None:
        writable.add(existing)


def _can_make_in(folder: Path) -> bool:
    """Whether a folder can be made in `folder`: tried, as permissions, read-only mounts and
    pseudo file systems (/proc) all answer differently to os.access."""
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".initlab-probe-", dir=folder))
        return True
    except OSError:
        return False


def _pid(fd: int) -> str:
    return os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"


def provenance(device: str) -> dict:
    """Enough to rerun: code version, package versions, machine and time."""
    return {**_process_provenance(), "device": device, "slurm_job_id": _slurm_job_id(),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}


@functools.cache
def _process_provenance() -> dict:
    """What one process's runs share: asked once (two git calls and seven package look-ups cost
    ~10 ms, a pack of 64 runs paid them 64 times). The code cannot change under a running process."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {"git_sha": git_sha(), "versions": {"python": platform.python_version(), **versions},
            "host": platform.node()}


def _slurm_job_id() -> str | None:
    """<array id>_<task> for an array task, else the job id; None outside SLURM."""
    env = os.environ
    if env.get("SLURM_ARRAY_JOB_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    return env.get("SLURM_JOB_ID")


def git_sha() -> str | None:
    """The commit of the initlab checkout that runs (suffix -dirty when it has local changes)."""
    repo = Path(__file__).resolve().parents[3]
    try:
        sha = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return sha + ("-dirty" if dirty else "")
