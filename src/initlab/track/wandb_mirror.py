"""Mirror a run's metrics to wandb; a wandb failure is logged and never stops the run."""

import functools
import logging
import multiprocessing
import netrc
import os
import secrets
import signal
from concurrent.futures import BrokenExecutor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

from initlab.track.records import atomic_write, shown
from initlab.processes import die_with_parent

log = logging.getLogger(__name__)
WANDB_ID = "wandb_id"  # in the run directory


def choose_mode(configured: str | None) -> tuple[str, str | None]:
    """(mode, hint). logger.mode, else WANDB_MODE, else online with credentials, else offline.

    wandb.init(mode=...) overrides WANDB_MODE, so the variable is read here, explicitly.
    """
    if configured:
        return configured, None
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"], None
    if _has_credentials():
        return "online", None
    return "offline", "wandb: no credentials, logging offline; each run's last line gives the `wandb sync` command"


def _has_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def run_tags(cfg, experiment: str | None) -> list[str]:
    """A run's wandb tags: the user's logger.tags, then the ones that filter wandb's run table by what
    initlab varies, written as typed: its named experiment, init scheme and model."""
    typed = ([f"experiment={experiment}"] if experiment else []) + [f"init={cfg.init.scheme}", f"model={cfg.model.name}"]
    return list(dict.fromkeys([*cfg.logger.tags, *typed]))


# What a run of a pack leaves to the pack: the process's console (every run's would hold all of
# it), its system metrics and description, its installed packages and its git state (four git
# calls a run): the same for every run, and summary.json (mirrored to wandb's summary) has the git
# SHA and versions. Each cost wandb.init 3-30 ms; thousands of runs paid it thousands of times.
PACKED_SETTINGS = dict(console="off", x_disable_stats=True, x_disable_meta=True, x_save_requirements=False,
                       disable_git=True)


class WandbMirror:
    """One wandb run per run directory (`reinit="create_new"`: the runs of a pack are open side by
    side in one wandb service, and Hydra multirun jobs never share one, each finishing its own).
    A resumed run continues the wandb run it started: its id is kept in the run directory, and
    wandb resumes it (`resume="allow"`); a fresh run gets a new one.

    Calls return at once: wandb works on them in order, in the background (wait_for_wandb() waits).
    wandb spends ~15 ms of CPU a run, a third of it in its service, the rest in Python. A lone run
    mirrors on a thread of its own process (wandb captures that process's console). A `packed` run
    (PACKED_SETTINGS) mirrors in one process for every pack: on a thread, that Python work held the
    GIL against the pack's loop and made a pack 1.6x slower; in a process of its own it costs the
    pack ~2%."""

    def __init__(self, cfg, run_dir: Path, config: dict, name: str, group: str | None, tags: list[str], resume: bool,
                 packed: bool = False) -> None:
        mode, hint = choose_mode(cfg.mode.value if cfg.mode else None)
        if hint:
            _say_once(hint)
        self.key = _run_id(run_dir, resume)
        kwargs = dict(project=cfg.project, entity=cfg.entity, group=cfg.group or group, name=cfg.name or name,
                      tags=tags, config=config, dir=str(run_dir), reinit="create_new", id=self.key,
                      resume="allow")
        self.executor = _mirror_process() if packed else _MIRROR_THREAD
        self.started = self._submit(_start, self.key, mode, kwargs,
                                    dict(silent=True, **(PACKED_SETTINGS if packed else {})))

    def log(self, record: dict) -> None:
        self._submit(_log, self.key, record)

    def finish(self, summary: dict) -> None:
        self._submit(_finish, self.key, summary)

    def where(self) -> str | None:
        """Where the wandb run is, for the run's last line: the exact command that uploads an
        offline run, an online run's page; None where wandb is disabled or failed to start.
        Waits for wandb to have started the run (long done by the time a run ends)."""
        try:
            return self.started.result() if self.started is not None else None
        except BrokenExecutor:
            return None

    def _submit(self, fn, *args) -> Future | None:
        try:
            return self.executor.submit(fn, *args)
        except (BrokenExecutor, RuntimeError) as err:  # the mirroring process died, or the interpreter is ending
            _mirroring_stopped(err)
            return None


@functools.cache
def _say_once(hint: str) -> None:
    """Log a hint once per process: a pack of 64 runs needs it once, not 64 times."""
    log.info(hint)


def wait_for_wandb() -> None:
    """Return once every wandb call made so far is done (the runs' files are on disk)."""
    for executor in (_MIRROR_THREAD, _MIRROR_PROCESS):
        if executor is not None:
            try:
                executor.submit(_noop).result()
            except BrokenExecutor as err:
                _mirroring_stopped(err)


def _mirroring_stopped(err: Exception) -> None:
    """The mirroring process is gone (killed): say so once, and let the next packed run start
    another. The runs' own records are complete without it."""
    global _MIRROR_PROCESS
    if _MIRROR_PROCESS is not None:
        log.warning("wandb mirroring stopped: %s; the run records on disk are complete", err)
        _MIRROR_PROCESS = None


_MIRROR_THREAD = ThreadPoolExecutor(1, thread_name_prefix="initlab-wandb")
_MIRROR_PROCESS: ProcessPoolExecutor | None = None  # started by the first packed run
MIRROR_NICENESS = 10
_RUNS: dict[str, object] = {}  # the open wandb runs by id, in whichever thread or process mirrors them


def _mirror_process() -> ProcessPoolExecutor:
    """The process that mirrors every packed run, in order (one worker), started once."""
    global _MIRROR_PROCESS
    if _MIRROR_PROCESS is None:
        # spawned: no torch threads or CUDA state inherited (it re-imports the __main__ module, train.py,
        # as spawn does: a second or two of CPU once per process)
        _MIRROR_PROCESS = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                              initializer=_mirroring_process)
    return _MIRROR_PROCESS


def _mirroring_process() -> None:
    """The mirroring process, before any call: at a lower priority (its work waits for the cores
    the pack leaves idle, not the pack for it); deaf to the signals meant for the runs (Ctrl-C,
    SLURM's SIGTERM and SIGUSR2: the runs' own process stops them and finishes their wandb runs
    through it); gone with that process (even SIGKILLed, on Linux)."""
    os.nice(MIRROR_NICENESS)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2):
        signal.signal(signum, signal.SIG_IGN)
    die_with_parent(signal.SIGKILL)


def _start(key: str, mode: str, kwargs: dict, settings: dict) -> str | None:
    """Open the wandb run; return where it is (WandbMirror.where)."""
    try:
        import wandb  # here, not at the top: runs with logger=none never pay for the import

        try:
            run = wandb.init(mode=mode, settings=wandb.Settings(init_timeout=15, **settings), **kwargs)
        except (wandb.errors.CommError, wandb.errors.UsageError) as err:
            if mode != "online":
                raise
            log.warning("wandb online failed (%s); falling back to offline", err)
            run = wandb.init(mode="offline", settings=wandb.Settings(**settings), **kwargs)
    except Exception as err:
        log.warning("wandb disabled for this run: %s", err)
        return None
    _RUNS[key] = run
    if run.disabled:
        return None
    return f"upload to wandb with: wandb sync {shown(Path(run.settings.sync_dir))}" if run.offline else f"wandb: {run.url}"


def _log(key: str, record: dict) -> None:
    _call(key, lambda run: run.log({k: v for k, v in record.items() if k != "step"}, step=record["step"]))


def _finish(key: str, summary: dict) -> None:
    def close(run) -> None:
        run.summary.update({k: v for k, v in summary.items() if isinstance(v, (int, float, str))})
        if summary.get("status") == "interrupted":
            run.mark_preempting()  # it will be resumed
        run.finish(exit_code=0 if summary.get("status") in ("completed", "diverged") else 1)
        del _RUNS[key]

    _call(key, close)


def _call(key: str, fn) -> None:
    """`fn` on the run's wandb run, if it is (still) open; a wandb error ends its mirroring only."""
    run = _RUNS.get(key)
    if run is None:
        return
    try:
        fn(run)
    except Exception as err:
        log.warning("wandb error, mirroring stopped: %s", err)
        _RUNS.pop(key, None)


def _noop() -> None:
    pass


def _run_id(run_dir: Path, resume: bool) -> str:
    """The wandb run id kept in `run_dir`/wandb_id: reused when resuming, new for a fresh run."""
    path = run_dir / WANDB_ID
    if resume and path.exists() and (run_id := path.read_text().strip()):
        return run_id
    run_id = secrets.token_hex(6)  # wandb ids are [a-z0-9]+
    atomic_write(path, run_id)
    return run_id


class NoMirror:
    """The mirror for logger=none (and benchmarks): the run's own files are the record."""

    def log(self, record: dict) -> None:
        pass

    def finish(self, summary: dict) -> None:
        pass

    def where(self) -> None:
        return None
