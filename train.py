"""Train one model: `python train.py init=kaiming mode=fan_out` (see README.md)."""

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from initlab.cli import check_train_command
from initlab.config import register_configs
from initlab.errors import ConfigError, DataError, JobFailed

if TYPE_CHECKING:
    from initlab.train.pack import Outcome

register_configs()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg) -> "Outcome":
    from initlab.run import run  # torch: imported for a run only, never for --help or tab completion

    hc = HydraConfig.get()
    multirun = hc.mode is RunMode.MULTIRUN
    try:
        return run(cfg, Path(hc.runtime.output_dir), group=Path(hc.sweep.dir).name if multirun else None,
                   experiment=hc.runtime.choices.get("experiment"))
    except (ConfigError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)  # a user mistake: one line, no traceback
        if multirun:
            raise JobFailed.of(err) from None  # fail this job only: Hydra goes on with the others
        sys.exit(2)


if __name__ == "__main__":
    check_train_command(sys.argv[1:])  # a mistake is one line, and nothing runs
    main()
