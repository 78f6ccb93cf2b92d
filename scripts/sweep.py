"""Launch a named grid, or print a sweep's job table.

    python scripts/sweep.py experiment=he2015 [launcher=local|local_gpu|slurm] [overrides] [--dry-run]
    python scripts/sweep.py status results/sweeps/he2015

Every job is composed and validated before any starts. Rerunning the same sweep skips
jobs whose records say completed or diverged and resumes the others from their
checkpoints. The exit code is non-zero when any job failed; the table names them.
"""

import subprocess
import sys
from pathlib import Path

from initlab.config import register_configs
from initlab.errors import ConfigError
from initlab.sweep.plan import plan_sweep
from initlab.sweep.status import format_table, job_table

TRAIN = Path(__file__).resolve().parents[1] / "train.py"
USAGE = __doc__.split("\n\n")[1]


def launch(args: list[str]) -> int:
    dry_run = "--dry-run" in args
    overrides = [a for a in args if a != "--dry-run"]
    overrides = [f"hydra/launcher={a.split('=', 1)[1]}" if a.startswith("launcher=") else a for a in overrides]
    if not any(o.startswith("experiment=") for o in overrides):
        print(f"error: name a grid with experiment=<name> (conf/experiment/)\n{USAGE}", file=sys.stderr)
        return 2
    try:
        plan = plan_sweep(overrides + ["train.resume=true"])
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if dry_run:
        for job in plan.jobs:
            print(f"#{job.num:<3} {' '.join(job.overrides)}\n     -> {job.dir}")
        print(f"{len(plan.jobs)} jobs in {plan.sweep_dir}")
        return 0
    proc = subprocess.run([sys.executable, str(TRAIN), "-m", *overrides, "train.resume=true"])
    table = job_table(plan.sweep_dir)
    print(format_table(table))
    return 1 if proc.returncode or (table["status"] == "failed").any() else 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["status"] and len(argv) == 2:
        print(format_table(job_table(Path(argv[1]))))
        return 0
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    register_configs()
    return launch(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
