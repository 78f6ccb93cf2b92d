"""Command lines checked before anything runs: every user mistake is one line on stderr, exit code 2.

`check_train_command(argv)` runs before train.py's @hydra.main. It composes the config as
Hydra will and validates it, so no run directory is created and no data loaded for a mistake;
a lone run's dataset is found (or downloaded) there too, so a run that cannot start leaves nothing.
For a multirun it composes the sweep's own config (what every job shares); initlab's sweeper
then composes and validates every job before the first starts (initlab.sweep.plan). Hydra's
own flags keep their meaning: --help, --hydra-help, --info and --shell-completion pass through unchecked, --cfg only has its
overrides composed, and HYDRA_FULL_ERROR=1 shows Hydra's full error instead of the one line.
"""

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

from hydra import compose, initialize_config_dir
from hydra._internal.utils import get_args_parser  # Hydra's own parser: argv read as @hydra.main reads it
from hydra.core.override_parser.overrides_parser import OverridesParser

from initlab.compose_errors import COMPOSE_ERRORS, as_config_error
from initlab.errors import ConfigError, DataError, did_you_mean
from initlab.track.records import check_run_dir

# Set by scripts/sweep.py for the train.py it starts: errors name the launcher as sweep.py's users
# type it (launcher=slurm, launcher.max_pack=8), not as Hydra does (hydra/launcher, hydra.launcher.).
SWEEP_NAMES = "INITLAB_SWEEP_NAMES"
SWEEP_FOLDER = "a sweep folder holds one folder per job, e.g. results/sweeps/<name>"


def check_train_command(argv: list[str]) -> None:
    """Exit with one line (code 2) if `python train.py <argv>` would fail on what was typed."""
    parser = get_args_parser()
    parser.error = fail  # argparse's usage-plus-message becomes one line too
    args = parser.parse_args(argv)
    _check_flags(args)
    hydra_only = args.help or args.hydra_help or args.info or args.shell_completion or args.experimental_rerun
    other_tree = args.config_path or args.config_name or args.config_dir  # Hydra reports on its errors itself
    if hydra_only or other_tree:
        return
    from initlab.sweep.plan import CONF, compose_sweep  # torch: not for --help or tab completion
    from initlab.validate import validate

    with one_line_errors(args.overrides):
        if args.multirun or (not args.run and "hydra.mode=MULTIRUN" in args.overrides):
            compose_sweep(args.overrides)  # the jobs themselves: planned inside Hydra, by initlab's sweeper
            return
        _refuse_sweeps(args.overrides)
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose("train", overrides=args.overrides, return_hydra_config=True)
        if args.cfg is None:
            validate(cfg)
            check_run_dir(Path(cfg.hydra.run.dir))
            _check_data(cfg)


@contextmanager
def one_line_errors(overrides: list[str] = ()) -> Iterator[None]:
    """Turn a user mistake raised inside (a ConfigError, Hydra's error while composing
    `overrides`, a dataset that cannot be read) into `error: <one line>` on stderr and exit code 2."""
    try:
        yield
    except DataError as err:  # a dataset not found (or unsafe): already one line
        fail(str(err))
    except (ConfigError, *COMPOSE_ERRORS) as err:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        fail(str(as_config_error(err, list(overrides))))


def print_error(message: str) -> int:
    """Print `error: <message>` on stderr; return the exit code of a user mistake, 2."""
    if os.environ.get(SWEEP_NAMES) == "1":
        message = message.replace("hydra/launcher", "launcher").replace("hydra.launcher.", "launcher.")
    print(f"error: {message}", file=sys.stderr)
    return 2


def fail(message: str) -> NoReturn:
    sys.exit(print_error(message))


def sweep_folder(path: str) -> Path:
    """`path` as an existing folder, or a ConfigError saying what is there (and the closest folder beside it)."""
    folder = Path(path)
    if folder.is_dir():
        return folder
    if folder.exists():
        raise ConfigError("sweep folder", path, f"is a file; {SWEEP_FOLDER}")
    beside = [str(p) for p in folder.parent.iterdir() if p.is_dir()] if folder.parent.is_dir() else []
    raise ConfigError("sweep folder", path, f"no such folder; {did_you_mean(str(folder), beside)}{SWEEP_FOLDER}")


class ArgumentParser(argparse.ArgumentParser):
    """argparse with its errors on one line (argparse prints the usage first)."""

    def error(self, message: str) -> NoReturn:
        fail(f"{message} (see {self.prog} --help)")


def _check_flags(args: argparse.Namespace) -> None:
    """Hydra's own rules on its flags, which it reports with a traceback."""
    commands = {"--run": args.run, "--multirun": args.multirun, "--cfg": args.cfg is not None,
                "--info": args.info is not None, "--shell-completion": args.shell_completion}
    given = [flag for flag, on in commands.items() if on]
    if len(given) > 1:
        fail(f"{' and '.join(given)} cannot be combined; use one of {', '.join(commands)}")
    if args.resolve and args.cfg is None and not args.help:
        fail("--resolve works only with --cfg or --help")


def _check_data(cfg) -> None:
    """A lone run's dataset, found or downloaded before Hydra makes the run's folder: a run that
    cannot load its data leaves no folder behind. (A grid's jobs each fail on their own: the
    others may run.)"""
    from initlab.data import check_available  # torch: only for a command that runs
    from initlab.run import loads_data

    if loads_data(cfg):
        check_available(cfg.data)


def _refuse_sweeps(overrides: list[str]) -> None:
    """A comma list or a range is a sweep: Hydra runs it only with -m."""
    for override in OverridesParser.create().parse_overrides(overrides):
        if override.is_sweep_override():
            raise ConfigError(override.key_or_group, override.input_line.split("=", 1)[1],
                              "a sweep runs only as a multirun (python train.py -m ...); a list is written key=[a,b]")
