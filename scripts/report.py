"""Turn a finished (or partly finished) sweep into report.md plus PNG figures.

    python scripts/report.py results/sweeps/he2015 [--out results/he2015]

Reads only the run records on disk, so it works offline and with wandb disabled.
"""

import argparse
import sys
from pathlib import Path

from initlab.report.load import load_sweep
from initlab.report.markdown import write_report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--out", type=Path, help="where report.md and the figures go (default: the sweep folder)")
    args = parser.parse_args()
    try:
        sweep = load_sweep(args.sweep_dir)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    path = write_report(sweep, args.out or args.sweep_dir)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
