"""Every named experiment (conf/experiment/*.yaml) composes and validates; so does every job of
its grid (slow: one composition per job)."""

import pytest

from conftest import CONF, compose_config
from initlab.sweep.plan import plan_sweep
from initlab.validate import validate

EXPERIMENTS = sorted(path.stem for path in (CONF / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_composes_and_validates(name):
    cfg = compose_config(f"experiment={name}", hydra_config=True)
    validate(cfg)
    assert cfg.hydra.sweeper.params, f"experiment={name} declares no grid (hydra.sweeper.params)"


@pytest.mark.slow
@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_job_of_the_experiments_grid_validates(name):
    assert plan_sweep([f"experiment={name}"]).jobs  # composes and validates each job, raising ConfigError
