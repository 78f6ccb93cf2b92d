"""Launch a named grid, or print a sweep's job table.

    python scripts/sweep.py experiment=<name> [launcher=local|local_gpu|packed|slurm] [launcher.<key>=...]
                            [overrides] [--dry-run]
    python scripts/sweep.py status results/sweeps/<name>

Every job is composed and validated before any starts: a mistake anywhere in the grid is one
line naming the job, and nothing runs. Rerunning the same sweep skips jobs whose records say
completed or diverged and resumes the others from their checkpoints. The exit code is 1 when
any job failed (the table names them), 2 for a mistake in the command line.
"""

import ctypes
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from initlab.cli import PLANNED, print_error, sweep_folder
from initlab.compose_errors import COMPOSE_ERRORS, as_config_error
from initlab.config import register_configs
from initlab.errors import ConfigError, choices
from initlab.sweep.plan import CONF, plan_sweep
from initlab.sweep.status import format_table, job_table

TRAIN = Path(__file__).resolve().parents[1] / "train.py"
FLAGS = ("--dry-run", "-h", "--help")
PR_SET_PDEATHSIG = 1  # linux/prctl.h
_LAUNCHER = re.compile(r"^([+~]?)launcher([=.])")  # launcher=slurm, launcher.partition=gpu


def launch(args: list[str]) -> int:
    dry_run = "--dry-run" in args
    overrides = [_hydra_name(a) for a in args if a != "--dry-run"] + ["train.resume=true"]
    experiments = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
    if not any(o.lstrip("+").startswith("experiment=") for o in overrides):
        raise ConfigError("experiment", None, "name a grid with experiment=<name>; " + choices(experiments))
    plan = plan_sweep(overrides)
    if dry_run:
        for job in plan.jobs:
            print(f"#{job.num:<3} {' '.join(job.overrides)}\n     -> {job.dir}")
        print(f"{len(plan.jobs)} jobs in {plan.sweep_dir}")
        return 0
    plan.check_job_dirs()
    # train.py would plan the same grid again before launching it (seconds for a large grid)
    returncode = _run_forwarding_signals([sys.executable, str(TRAIN), "-m", *overrides], {**os.environ, PLANNED: "1"})
    table = job_table(plan.sweep_dir)
    print(format_table(table))
    return 1 if returncode or (table["status"] == "failed").any() else 0


def _run_forwarding_signals(command: list[str], env: dict) -> int:
    """Run the grid's train.py -m; a SIGTERM or SIGUSR2 sent to sweep.py reaches it too, so its
    running job checkpoints at the next step and stops (rather than running on, orphaned, and
    holding its run directory's lock). So does sweep.py's death by SIGKILL, on Linux."""
    child = subprocess.Popen(command, env=env, preexec_fn=_stop_with_parent if sys.platform == "linux" else None)
    forwarded = (signal.SIGTERM, signal.SIGUSR2)
    previous = {s: signal.signal(s, lambda signum, frame: child.send_signal(signum)) for s in forwarded}
    try:
        return child.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _stop_with_parent() -> None:
    """In the child before it runs: SIGTERM it when sweep.py dies (prctl PR_SET_PDEATHSIG)."""
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def status(args: list[str]) -> int:
    if len(args) != 1:
        raise ConfigError("status", " ".join(args),
                          "takes one sweep folder: python scripts/sweep.py status results/sweeps/<name>")
    table = job_table(sweep_folder(args[0]))
    if table.empty:
        raise ConfigError("sweep folder", args[0], "holds no job folders (<job>/.hydra/overrides.yaml)")
    print(format_table(table))
    return 0


def main(argv: list[str]) -> int:
    if {"-h", "--help"} & set(argv):
        print(__doc__)
        return 0
    unknown = next((a for a in argv if a.startswith("-") and a not in FLAGS), None)
    try:
        if unknown:
            raise ConfigError("option", unknown, choices(FLAGS, unknown))
        if argv[:1] == ["status"]:
            return status(argv[1:])
        register_configs()
        return launch(argv)
    except (ConfigError, *COMPOSE_ERRORS) as err:
        return print_error(_typed_names(str(as_config_error(err, argv))))


def _hydra_name(arg: str) -> str:
    """launcher=<name> and launcher.<key>=v, as README writes them, in Hydra's names."""
    return _LAUNCHER.sub(lambda m: f"{m[1]}hydra{'/' if m[2] == '=' else '.'}launcher{m[2]}", arg)


def _typed_names(message: str) -> str:
    """An error message in the names the user typed (launcher, not hydra/launcher)."""
    return message.replace("hydra/launcher", "launcher").replace("hydra.launcher.", "launcher.")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
