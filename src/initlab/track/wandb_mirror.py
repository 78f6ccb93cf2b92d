"""Mirror a run's metrics to wandb; a wandb failure is logged and never stops the run."""

import logging
import netrc
import os
import secrets
from pathlib import Path

from initlab.track.records import atomic_write

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
    return "offline", "wandb: no credentials, logging offline; upload later with `wandb sync <run_dir>/wandb/offline-run-*`"


def _has_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


# What a run of a pack leaves to the pack: the process's console (every run's would hold all of
# it), its system metrics and its installed packages (the same for every run: summary.json has the
# versions). Each costs wandb.init ~3-30 ms; thousands of runs paid it thousands of times.
PACKED_SETTINGS = dict(console="off", x_disable_stats=True, x_save_requirements=False)


class WandbMirror:
    """One wandb run per run directory (`reinit="create_new"`: the runs of a pack are open side by
    side in one wandb service, and Hydra multirun jobs never share one, each finishing its own).
    A resumed run continues the wandb run it started: its id is kept in the run directory, and
    wandb resumes it (`resume="allow"`); a fresh run gets a new one. `packed`: one run of a pack
    (PACKED_SETTINGS)."""

    def __init__(self, cfg, run_dir: Path, config: dict, name: str, group: str | None, resume: bool,
                 packed: bool = False) -> None:
        self.run = None
        mode, hint = choose_mode(cfg.mode.value if cfg.mode else None)
        if hint:
            log.info(hint)
        kwargs = dict(project=cfg.project, entity=cfg.entity, group=cfg.group or group, name=cfg.name or name,
                      tags=list(cfg.tags), config=config, dir=str(run_dir), reinit="create_new")
        try:
            import wandb  # here, not at the top: runs with logger=none never pay for the import

            kwargs |= dict(id=_run_id(run_dir, resume), resume="allow")
            try:
                settings = dict(silent=True, **(PACKED_SETTINGS if packed else {}))
                self.run = wandb.init(mode=mode, settings=wandb.Settings(init_timeout=15, **settings), **kwargs)
            except (wandb.errors.CommError, wandb.errors.UsageError) as err:
                if mode != "online":
                    raise
                log.warning("wandb online failed (%s); falling back to offline", err)
                self.run = wandb.init(mode="offline", settings=wandb.Settings(**settings), **kwargs)
        except Exception as err:
            log.warning("wandb disabled for this run: %s", err)

    def log(self, record: dict) -> None:
        self._call(lambda: self.run.log({k: v for k, v in record.items() if k != "step"}, step=record["step"]))

    def finish(self, summary: dict) -> None:
        def close() -> None:
            self.run.summary.update({k: v for k, v in summary.items() if isinstance(v, (int, float, str))})
            if summary.get("status") == "interrupted":
                self.run.mark_preempting()  # it will be resumed
            self.run.finish(exit_code=0 if summary.get("status") in ("completed", "diverged") else 1)

        self._call(close)
        self.run = None

    def _call(self, fn) -> None:
        if self.run is None:
            return
        try:
            fn()
        except Exception as err:
            log.warning("wandb error, mirroring stopped: %s", err)
            self.run = None


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
