"""`python train.py ...` in this process: through Hydra and initlab's real sweeper and launchers,
without paying for a new interpreter (and torch import) per command."""

import runpy
import sys
from pathlib import Path

from hydra.core.global_hydra import GlobalHydra

from cli import REPO


def train_main(*argv: str) -> int:
    """Run `python train.py <argv>` here (its command-line check, then Hydra); the exit code it ends with."""
    saved = sys.argv
    sys.argv = ["train.py", *argv]
    try:
        runpy.run_path(str(REPO / "train.py"), run_name="__main__")
    except SystemExit as end:
        return end.code or 0
    finally:
        sys.argv = saved
        GlobalHydra.instance().clear()
    return 0


def multirun(sweep_dir: Path, *overrides: str) -> int:
    """Run train.py's multirun into `sweep_dir` as scripts/sweep.py launches it (train.resume=true);
    the exit code it would end with."""
    return train_main("-m", f"hydra.sweep.dir={sweep_dir}", "train.progress=false", "train.resume=true", *overrides)


def job_dirs(sweep_dir: Path) -> list[Path]:
    """The sweep's job folders, by name."""
    return sorted(p for p in Path(sweep_dir).iterdir() if (p / ".hydra").is_dir())
