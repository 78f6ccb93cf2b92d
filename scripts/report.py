"""Turn a finished (or partly finished) sweep into report.md plus PNG figures.

    python scripts/report.py results/sweeps/he2015 [--out results/he2015]

Reads only the run records on disk, so it works offline and with wandb disabled. The report goes
beside the sweep by default (results/sweeps/he2015-report), never among its job folders.
"""

import sys
from pathlib import Path

from initlab.cli import ArgumentParser, print_error, sweep_folder
from initlab.errors import ConfigError
from initlab.report.load import load_sweep
from initlab.report.markdown import write_report
from initlab.track.records import check_writable, shown


def main(argv: list[str]) -> int:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", help="a sweep folder, e.g. results/sweeps/he2015")
    parser.add_argument("--out", type=Path,
                        help="where report.md and the figures go (default: <sweep>-report, beside the sweep)")
    args = parser.parse_args(argv)
    try:
        folder = sweep_folder(args.sweep_dir)
        out = args.out or beside(folder)
        check_writable("--out", out)
        sweep = load_sweep(folder)
    except (ConfigError, FileNotFoundError) as err:  # FileNotFoundError: a folder without job folders
        return print_error(str(err))
    path = write_report(sweep, out)
    print(f"wrote {shown(path)}")
    return 0


def beside(sweep_dir: Path) -> Path:
    """The default report folder: the sweep's sibling, `<sweep>-report`."""
    sweep_dir = sweep_dir.resolve()  # `.` and `..` have a name
    return sweep_dir.with_name(f"{sweep_dir.name}-report")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
