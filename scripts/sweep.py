"""Launch a named grid, or print a sweep's job table.

    python scripts/sweep.py experiment=<name> [launcher=local|local_gpu|packed|slurm] [launcher.<key>=...]
                            [overrides] [--dry-run] [--no-wait]
    python scripts/sweep.py status results/sweeps/<name> [--follow]

It runs `python train.py -m experiment=<name> ... train.resume=true` (launcher=x is Hydra's
hydra/launcher=x): every job is composed and validated before any starts, a mistake anywhere
in the grid is one line naming the job, and nothing runs. Rerunning the same sweep skips jobs
whose records say completed or diverged and resumes the others from their checkpoints.
--dry-run lists the jobs and their folders; --no-wait submits a SLURM grid and returns at once
(follow it with `status`; rerunning the sweep picks up what is still missing). The exit code
is 1 when any job failed (the table names them), 2 for a mistake in the command line.
"""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from initlab.cli import SWEEP_NAMES, print_error, sweep_folder
from initlab.errors import ConfigError, choices
from initlab.sweep.status import format_table, job_table
from initlab.processes import die_with_parent

REPO = Path(__file__).resolve().parents[1]
TRAIN = REPO / "train.py"
EXPERIMENTS = REPO / "conf" / "experiment"
FLAGS = {"--dry-run": "hydra.sweeper.dry_run=true", "--no-wait": "hydra.launcher.wait=false"}
STATUS_FLAGS = ("--follow",)
FOLLOW_EVERY_S = 10
_LAUNCHER = re.compile(r"^([+~]?)launcher([=.])")  # launcher=slurm, launcher.partition=gpu


def launch(args: list[str]) -> int:
    overrides = [_hydra_name(a) for a in args if a not in FLAGS] + ["train.resume=true"]
    experiments = sorted(p.stem for p in EXPERIMENTS.glob("*.yaml"))
    if not any(o.lstrip("+").startswith("experiment=") for o in overrides):
        raise ConfigError("experiment", None, "name a grid with experiment=<name>; " + choices(experiments))
    if "--no-wait" in args and "hydra/launcher=slurm" not in overrides:
        raise ConfigError("--no-wait", "", "submits a SLURM grid and returns; it needs launcher=slurm")
    flags = [FLAGS[a] for a in args if a in FLAGS]
    return _run_forwarding_signals([sys.executable, str(TRAIN), "-m", *overrides, *flags], {**os.environ, SWEEP_NAMES: "1"})


def _run_forwarding_signals(command: list[str], env: dict) -> int:
    """Run the grid's train.py -m; a SIGTERM or SIGUSR2 sent to sweep.py reaches it too, so its
    running job checkpoints at the next step and stops (rather than running on, orphaned, and
    holding its run directory's lock). So does sweep.py's death by SIGKILL, on Linux."""
    child = subprocess.Popen(command, env=env, preexec_fn=lambda: die_with_parent(signal.SIGTERM))
    forwarded = (signal.SIGTERM, signal.SIGUSR2)
    previous = {s: signal.signal(s, lambda signum, frame: child.send_signal(signum)) for s in forwarded}
    try:
        return child.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def status(args: list[str]) -> int:
    folders = [a for a in args if a not in STATUS_FLAGS]
    if len(folders) != 1:
        raise ConfigError("status", " ".join(args),
                          "takes one sweep folder: python scripts/sweep.py status results/sweeps/<name> [--follow]")
    folder = sweep_folder(folders[0])
    while True:
        table = job_table(folder)
        if table.empty:
            raise ConfigError("sweep folder", folders[0], "holds no job folders (<job>/.hydra/overrides.yaml)")
        print(format_table(table), flush=True)
        if "--follow" not in args or not table["status"].isin(ACTIVE).any():
            return 0
        time.sleep(FOLLOW_EVERY_S)
        print()


ACTIVE = ("running", "pending")  # statuses --follow waits on


def main(argv: list[str]) -> int:
    if {"-h", "--help"} & set(argv):
        print(__doc__)
        return 0
    allowed = STATUS_FLAGS if argv[:1] == ["status"] else tuple(FLAGS)
    unknown = next((a for a in argv if a.startswith("-") and a not in allowed), None)
    try:
        if unknown:
            raise ConfigError("option", unknown, choices(allowed, unknown))
        if argv[:1] == ["status"]:
            return status(argv[1:])
        return launch(argv)
    except ConfigError as err:
        return print_error(str(err))


def _hydra_name(arg: str) -> str:
    """launcher=<name> and launcher.<key>=v, as README writes them, in Hydra's names."""
    return _LAUNCHER.sub(lambda m: f"{m[1]}hydra{'/' if m[2] == '=' else '.'}launcher{m[2]}", arg)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
