"""Grids through initlab's sweeper: Hydra's own sweep syntax, each job composed once and as
Hydra's launchers compose it, the whole grid validated first, fail_fast, finished jobs skipped,
and the writes a pack makes together."""

import os
from pathlib import Path

import pytest
import yaml
from hydra import initialize_config_dir
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from omegaconf import OmegaConf, open_dict

import initlab.run as run_module
from cli import summary
from conftest import CONF, compose_config
from initlab.sweep.compose import GridComposer
from initlab.sweep.status import job_table
from initlab.track.records import atomic_write, durable_together
from sweeps import job_dirs, multirun, train_main

FAST = ["train.progress=false", "logger=none"]
SMOKE = ["experiment=smoke", "train.steps=10", *FAST]


def hydra_jobs(overrides: list[str]):
    """(config loader, sweep config, the jobs' overrides) as `train.py -m <overrides>` has Hydra make them."""
    loader = GlobalHydra.instance().config_loader()
    master = loader.load_configuration("train", overrides, run_mode=RunMode.MULTIRUN)
    str(master.hydra.sweep.dir)  # resolved once, as a sweeper does: every job's ${now:...} is this one
    params = [f"{k}={v}" for k, v in (master.hydra.sweeper.params or {}).items()]
    parsed = OverridesParser.create(config_loader=loader).parse_overrides([*params, *master.hydra.overrides.task])
    [jobs] = BasicSweeper.split_arguments(parsed, None)
    return loader, master, jobs


@pytest.mark.parametrize("overrides", [
    ["experiment=he2015"],  # two structures (init), four value axes
    ["init=glob(*avier*)", "seed=range(2)", "model.depth=choice(3,5)", "gain=relu", "dataset=synthetic"],
    ["experiment=glob(*)"],  # each experiment its own structure and sweep folder
    ["init=normal", "init.std=0.5,2e-1", "+model.note='a,b'", "++seed=3", "dataset=synthetic"],
    ["experiment=smoke", "hydra.sweep.subdir=${hydra.job.num}_${hydra.job.override_dirname}"],
    ["seed=0,1", "model.depth=3,4", "hydra.sweep.subdir=s${seed}_${model.depth}", "dataset=synthetic"],  # job values
])
def test_each_job_is_composed_as_hydras_launchers_compose_it(overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        loader, master, jobs = hydra_jobs(overrides)
        composer = GridComposer(loader, master)
        for num, job_overrides in enumerate(jobs):
            job = composer.compose(num, job_overrides)
            want = loader.load_sweep_config(master, list(job_overrides))  # what Hydra's basic launcher runs
            with open_dict(want):
                want.hydra.job.id, want.hydra.job.num = num, num
            got = composer.full_config(job)
            assert OmegaConf.to_container(got) == OmegaConf.to_container(want)
            assert OmegaConf.get_type(got) is OmegaConf.get_type(want)
            task = OmegaConf.to_container(want)
            hydra = task.pop("hydra")
            assert OmegaConf.to_container(job.config) == task and job.hydra == OmegaConf.to_container(
                want.hydra, enum_to_str=True)
            assert job.dir == Path(str(want.hydra.sweep.dir)) / str(want.hydra.sweep.subdir), hydra["job"]["num"]


def test_each_job_is_composed_once_and_the_grid_validated_before_any_starts(tmp_path, monkeypatch, capsys):
    calls = []
    compose = ConfigLoaderImpl.load_configuration
    monkeypatch.setattr(ConfigLoaderImpl, "load_configuration", lambda self, *a, **k: calls.append(1) or compose(
        self, *a, **k))
    grid = ["init=xavier,kaiming", "seed=range(8)", "train.steps=2", *SMOKE[:1], *FAST]
    assert multirun(tmp_path, *grid) == 0
    # the sweep's own config: initlab's check before Hydra, Hydra's choice of mode, Hydra's sweep (3); then one
    # per structure (init=xavier, init=kaiming): none per job
    assert len(calls) == 3 + 2 and len(job_dirs(tmp_path)) == 16
    calls.clear()
    assert multirun(tmp_path / "bad", *grid, "model.depth=3,0") == 2  # the last 16 jobs cannot run
    assert "'model.depth': 0 — must be >= 1 for model=mlp (job #1: " in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("overrides, jobs", [
    (["init=glob(*avier*)", "seed=range(3)"], 3),
    (["init=xavier,kaiming", "seed=choice(0,5)", "model.depth=range(3,5)"], 8),
    (["experiment=glob(*)", "optim.betas=[0.8,0.99]"], None),  # one job an experiment; a list is one value
    (["logger.name='x,y'", "optim.betas=[0.8,0.99],[0.9,0.999]"], 2),  # quoted: one value; lists as values
])
def test_hydras_sweep_syntax_runs_as_typed(tmp_path, capsys, overrides, jobs):
    jobs = jobs or len(list((CONF / "experiment").glob("*.yaml")))
    sweep_dir = tmp_path / "sweep"
    assert train_main("-m", *overrides, "dataset=synthetic", f"hydra.sweep.dir={sweep_dir}",
                      "hydra.sweeper.dry_run=true", *FAST) == 0
    assert f"{jobs} jobs in {sweep_dir}" in capsys.readouterr().out and not sweep_dir.exists()  # a dry run starts nothing


def test_two_jobs_aiming_at_one_folder_are_refused_whole(tmp_path, capsys):
    assert train_main("-m", "seed=1,1", "dataset=synthetic", f"hydra.sweep.dir={tmp_path / 's'}", *FAST) == 2
    assert "jobs #0 and #1 are the same job" in capsys.readouterr().err and not (tmp_path / "s").exists()


def test_fail_fast_stops_the_grid_at_its_first_failure_and_leaves_the_rest_unstarted(tmp_path, capsys):
    # MNIST is not on this machine and may not be downloaded: those jobs fail as they load it
    nodata = ["dataset=mnist,synthetic", "data.download=false", f"data.root={tmp_path / 'nodata'}"]
    for launcher, failed in (("local", 1), ("packed", 2)):  # a pack's mnist jobs fail together
        sweep_dir = tmp_path / launcher
        assert multirun(sweep_dir, *SMOKE, *nodata, "seed=0", f"hydra/launcher={launcher}",
                        "hydra.launcher.fail_fast=true") == 1
        assert list(job_table(sweep_dir)["status"]) == ["failed"] * failed  # the synthetic jobs never started
        assert f"failed: {failed}  not started: {4 - failed}" in capsys.readouterr().out


def test_a_rerun_launches_only_what_is_not_finished_and_rewrites_nothing_finished(tmp_path, capsys):
    assert multirun(tmp_path, *SMOKE, "seed=0", "hydra/launcher=packed") == 0
    finished = {p: p.stat().st_mtime_ns for job in job_dirs(tmp_path) for p in job.rglob("*") if p.is_file()}
    assert multirun(tmp_path, *SMOKE, "seed=0,1", "hydra/launcher=packed") == 0
    assert "2 of 4 jobs ended before (completed or diverged), 0 still queued or running: launching 2" in \
        capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in finished} == finished  # not one byte touched, .hydra/ included
    assert [summary(job)["status"] for job in job_dirs(tmp_path)] == ["completed"] * 4


def test_packed_runs_log_their_own_lines_to_their_train_log_not_the_sweeps_console(tmp_path, capsys):
    assert multirun(tmp_path, *SMOKE, "seed=0", "hydra/launcher=packed") == 0
    console = capsys.readouterr().out
    assert "layers.0  weight" not in console and "completed after" not in console  # no init tables, no outcomes
    for job in job_dirs(tmp_path):
        log = (job / "train.log").read_text()
        assert "layers.0  weight" in log and "completed after 10 steps" in log  # its own init table and outcome


def test_writes_made_durable_together_replace_their_files_only_at_the_end_and_all_or_nothing(tmp_path):
    old = [tmp_path / f"r{i}" for i in range(3)]
    for path in old:
        path.write_text("old")
    with durable_together():
        for path in old:
            atomic_write(path, "new")
        assert [p.read_text() for p in old] == ["old"] * 3  # nothing replaced before the flush
    assert [p.read_text() for p in old] == ["new"] * 3
    with pytest.raises(RuntimeError), durable_together():
        atomic_write(old[0], "newer")
        raise RuntimeError("a failure part-way")
    assert [p.read_text() for p in old] == ["new"] * 3 and sorted(os.listdir(tmp_path)) == ["r0", "r1", "r2"]


def test_a_packed_grid_records_what_hydra_records_for_each_job(tmp_path):
    assert multirun(tmp_path / "packed", *SMOKE, "seed=0", "hydra/launcher=packed") == 0
    assert multirun(tmp_path / "local", *SMOKE, "seed=0", "hydra/launcher=local") == 0
    for packed, local in zip(job_dirs(tmp_path / "packed"), job_dirs(tmp_path / "local"), strict=True):
        for name in ("config.yaml", "overrides.yaml", "hydra.yaml"):
            got, want = (yaml.safe_load((d / ".hydra" / name).read_text()) for d in (packed, local))
            if name == "hydra.yaml":  # the launcher and folders are these sweeps' own
                for hydra in (got, want):
                    del hydra["hydra"]["launcher"], hydra["hydra"]["runtime"]["choices"]["hydra/launcher"]
                    hydra["hydra"]["overrides"]["hydra"] = hydra["hydra"]["sweep"] = hydra["hydra"]["runtime"][
                        "output_dir"] = None
            assert got == want, name


def test_fail_fast_inside_a_pack_leaves_the_runs_after_the_failure_without_a_folder(tmp_path):
    assert multirun(tmp_path, *SMOKE, "init=xavier", "seed=0", "hydra/launcher=packed") == 0
    [tampered] = job_dirs(tmp_path)
    config = tampered / "config.yaml"
    config.write_text(config.read_text().replace("width: 32", "width: 33"))  # now another run's folder
    assert multirun(tmp_path, *SMOKE, "init=xavier", "seed=0,1,2", "hydra/launcher=packed",
                    "hydra.launcher.fail_fast=true") == 1
    assert job_dirs(tmp_path) == [tampered]  # seeds 1 and 2, packed after it, never started
    assert summary(tampered)["status"] == "failed" and "different config" in summary(tampered)["error"]


def test_ctrl_c_while_a_pack_starts_records_every_started_run_interrupted(tmp_path, monkeypatch):
    cfgs = [compose_config(*SMOKE, f"seed={seed}") for seed in range(3)]
    build = run_module.build_initialised
    monkeypatch.setattr(run_module, "build_initialised", lambda cfg, settings: (
        build(cfg, settings) if cfg.seed != 1 else (_ for _ in ()).throw(KeyboardInterrupt)))
    with pytest.raises(KeyboardInterrupt):
        run_module.run_pack(cfgs, [tmp_path / f"r{seed}" for seed in range(3)])
    assert [summary(tmp_path / f"r{seed}")["status"] for seed in (0, 1)] == ["interrupted"] * 2
    assert not (tmp_path / "r2").exists()  # never started
    assert not list(tmp_path.rglob(".*.tmp"))


@pytest.mark.slow  # worker processes start torch anew: ~10 s
def test_fail_fast_stops_the_other_workers_running_jobs_and_starts_no_more(tmp_path):
    nodata = ["dataset=mnist,synthetic", "data.download=false", f"data.root={tmp_path / 'nodata'}"]
    assert multirun(tmp_path / "s", *SMOKE, *nodata, "train.steps=100000", "hydra/launcher=local_gpu",
                    "hydra.launcher.workers=2", "hydra.launcher.fail_fast=true") == 1
    statuses = list(job_table(tmp_path / "s")["status"])
    # two workers: the failing job and one other start; that one is stopped, resumable; no third starts
    assert sorted(statuses) in (["failed", "interrupted"], ["failed"])
