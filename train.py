"""Train one model: `python train.py init=kaiming mode=fan_out` (see README.md)."""

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from initlab.config import register_configs
from initlab.data.sources import DatasetNotFound
from initlab.errors import ConfigError
from initlab.run import run

register_configs()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg) -> None:
    try:
        run(cfg)
    except (ConfigError, DatasetNotFound) as err:
        print(f"error: {err}", file=sys.stderr)  # a user mistake: one line, no traceback
        if HydraConfig.get().mode is RunMode.MULTIRUN:
            raise  # fail this job only: Hydra goes on with the others and reports it at the end
        sys.exit(2)


if __name__ == "__main__":
    main()
