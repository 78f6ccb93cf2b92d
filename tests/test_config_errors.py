"""Every user mistake is one line naming the key, the value and what is valid; exit code 2, no
traceback, before anything runs: Hydra's own composition errors, values no run can use, scheme
preconditions, every job of a grid, and the scripts' arguments.

The checks run in-process on configs composed as train.py composes them; a few subprocess
tests prove the real entry points (train.py, train.py -m, sweep.py) print one line and exit 2.
"""

import os
import runpy
import subprocess
import sys

import pytest
import torch
from hydra import compose, initialize_config_dir

from cli import REPO, train
from initlab.cli import check_train_command
from initlab.compose_errors import COMPOSE_ERRORS, as_config_error
from initlab.config import register_configs
from initlab.data import Data
from initlab.data.batches import Batches
from initlab.data.sources import SYSTEM_ROOT
from initlab.errors import ConfigError
from initlab.init.schemes import SCHEMES
from initlab.sweep.plan import plan_sweep
from initlab.track.records import RunRecords
from initlab.validate import SEED_RANGE, check_protocol, validate
from sweeps import train_main

register_configs()
sweep_script = runpy.run_path(str(REPO / "scripts" / "sweep.py"))
report_script = runpy.run_path(str(REPO / "scripts" / "report.py"))


def composed(*overrides: str):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=True)


def mistake(*overrides: str) -> str:
    """The one line a user sees for `overrides`, whether Hydra or validate() refuses them."""
    try:
        validate(composed(*overrides))
    except (ConfigError, *COMPOSE_ERRORS) as err:
        line = str(as_config_error(err, list(overrides)))
        assert "\n" not in line
        return line
    raise AssertionError(f"{overrides} was accepted")


def one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


# --- Hydra's own errors while composing: one line, with the valid names -----------------


@pytest.mark.parametrize(
    "override, says",
    [
        ("init=kaimnig", "'init': 'kaimnig' — did you mean kaiming? valid choices: constant,"),
        ("model=transformer", "'model': 'transformer' — valid choices: cnn, mlp, resnet"),
        ("experiment=he2016", "did you mean he2015?"),
        ("hydra/launcher=slrum", "'hydra/launcher': 'slrum' — did you mean slurm?"),
        ("model.widht=3", "unknown key 'model.widht' (in model.widht=3) — did you mean model.width? valid keys:"),
        ("+model.widht=3", "unknown key 'model.widht' (in model.widht=3) — did you mean model.width?"),
        ("seedd=1", "unknown key 'seedd' (in seedd=1) — did you mean seed?"),
        ("init.sparsity=0.5", "unknown key 'init.sparsity' (in init.sparsity=0.5) — only init=sparse has it"),
        ("mode=fan_inn", "'mode': 'fan_inn' — did you mean fan_in? valid choices: fan_in, fan_out, fan_avg"),
        ("optim.schedule=step", "'optim.schedule': 'step' — valid choices: constant, cosine"),
        ("seed=", "'seed': '' — must be an integer"),
        ("train.steps=many", "'train.steps': 'many' — must be an integer"),
        ("optim.lr=fast", "'optim.lr': 'fast' — must be a number"),
        ("model.bias=maybe", "must be true or false"),
        ("optim.betas=0.9", "'optim.betas': 0.9 — must be a list, e.g. [0.9, 0.999]"),
        ("model.width=null", "must not be null"),
        ("init=[", "cannot read override 'init=[' — no viable alternative"),
        ("model.width=${nowhere}", "'model.width': '${nowhere}' — Interpolation key 'nowhere' not found"),
        ("~init", "'init': None — valid choices:"),
        ("init.scheme=xavier", "choose the init with init=xavier"),
        ("init=null", "cannot compose a config from 'init=null'"),
    ],
)
def test_hydra_composition_errors_are_one_line_with_the_valid_names(override, says):
    assert says in mistake(override)


# --- values a type admits but no run can use --------------------------------------------


@pytest.mark.parametrize(
    "overrides, says",
    [
        (["init=normal", "init.std=-1"], "'init.std': -1.0 — must be >= 0"),
        (["init=uniform", "init.a=1", "init.b=0"], "'init.b': 0.0 — must be >= init.a (1.0)"),
        (["init=trunc_normal", "init.a=1", "init.b=-1"], "'init.b': -1.0 — must be > init.a (1.0)"),
        (["init=trunc_normal", "init.mean=10"], "'init.mean': 10.0 — must lie within 2 std"),
        (["init=sparse", "init.sparsity=1"], "'init.sparsity': 1.0 — must be in [0, 1)"),
        (["init=lsuv", "init.tol=0"], "'init.tol': 0.0 — must be > 0"),
        (["init=lsuv", "init.max_iter=0"], "'init.max_iter': 0 — must be >= 1"),
        (["init=variance_scaling", "init.scale=0"], "'init.scale': 0.0 — must be > 0"),
        (["init.bias_std=-0.1"], "'init.bias_std': -0.1 — must be >= 0"),
        (["init=constant", "init.val=nan"], "'init.val': nan — must be a finite number"),
        (["train.epochs=inf"], "'train.epochs': inf — must be a finite number"),
        (["optim.lr=nan"], "'optim.lr': nan — must be a finite number"),
        (["optim.momentum=1"], "'optim.momentum': 1.0 — must be in [0, 1)"),
        (["optim.nesterov=true", "optim.momentum=0"], "'optim.nesterov': True — needs optim.momentum > 0"),
        (["optim=adam", "optim.betas=[0.9,1.0]"], "'optim.betas': [0.9, 1.0] — must be two numbers in [0, 1)"),
        (["optim.warmup_steps=-1"], "'optim.warmup_steps': -1 — must be >= 0"),
        (["optim.weight_decay=-0.01"], "'optim.weight_decay': -0.01 — must be >= 0"),
        ([f"seed={SEED_RANGE[1] + 1}"], f"'seed': {SEED_RANGE[1] + 1} — must be in [-2**63, 2**64 - 1]"),
        (["dataset=synthetic", "data.num_classes=1"], "'data.num_classes': 1 — must be >= 2"),
        (["dataset=synthetic", "data.input_shape=[3,0,8]"], "must be a non-empty list of sizes >= 1"),
        (["dataset=synthetic", "model=cnn", "data.input_shape=[16]"],
         "'data.input_shape': [16] — model=cnn has 2-D convolutions: needs [channels, height, width]"),
        (["data.root=/etc/hostname"], "'data.root': '/etc/hostname' — is a file"),
        (["data.subset=60001"], "'data.subset': 60001 — must be in [1, 60000]: mnist's training split has 60000"),
        (["dataset=synthetic", "data.train_size=100", "data.subset=101"], "must be in [1, 100]"),
        (["model=resnet", "model.depth=21"], "'model.depth': 21 — ResNet depth is 6n + 2"),
        (["model=cnn", "model.kernel=2"], "'model.kernel': 2 — must be odd"),
        (["train.epochs=0"], "'train.epochs': 0.0 — must be > 0"),
        (["init=uniform", "gain=relu"], "init=uniform takes no gain"),
        (["init=normal", "mode=fan_out"], "init=normal takes no fan mode"),
        (["device=tpu"], "'device': 'tpu' — valid choices: auto, cpu, cuda, cuda:N"),
        (["logger.project=a/b"], "'logger.project': 'a/b' — Invalid project name"),
        (["logger.tags=['']"], "'logger.tags'"),
        (["device=cpu", "model.width=100000"], "'model': 'mlp depth=3 width=100000' — 1.01e+10 parameters, 75.1 GiB"),
    ],
)
def test_values_no_run_can_use_are_refused_before_anything_is_built(overrides, says):
    assert says in mistake(*overrides)


@pytest.mark.parametrize(
    "overrides, says",
    [
        (["init=eye", "model=cnn"], "'init': 'eye' — needs 2-D weights"),
        (["init=dirac"], "'init': 'dirac' — needs a model with convolutions"),
        (["init=delta_orthogonal", "model=cnn", "model.channels=2", "dataset=cifar10"],
         "needs out_channels >= in_channels"),
        (["init=dirac", "model=cnn", "init.groups=5"], "'init.groups': 5 — must divide every conv's output channels"),
        (["init.zero_residual=true"], "'init.zero_residual': True — the model has no residual branches"),
        (["init=eye", "model=cnn", "model.lazy=true"], "needs 2-D weights"),
    ],
)
def test_every_scheme_precondition_is_checked_against_the_models_weight_shapes(overrides, says):
    assert says in mistake(*overrides)


@pytest.mark.parametrize(
    "overrides",
    [
        ["train.diverge_loss=inf"],  # only a non-finite loss diverges
        [f"seed={SEED_RANGE[0]}"], [f"seed={SEED_RANGE[1]}"],
        ["data.subset=60000"],
        ["init=uniform", "init.a=0.5", "init.b=0.5"],
        ["init=normal", "init.std=0"],
        ["model=resnet", "init.zero_residual=true", "dataset=cifar10"],
        ["model=resnet", "model.norm=none", "init.zero_residual=true", "init=delta_orthogonal"],
        ["init=dirac", "model=cnn", "init.groups=2"],
        ["init=eye", "model.lazy=true"],
        ["dataset=synthetic", "data.input_shape=[4,3,2,2]"],  # an MLP takes any rank
    ],
)
def test_legal_edge_values_still_run(overrides):
    validate(composed(*overrides))


def test_a_slurm_grid_planned_here_for_a_gpu_node_is_not_checked_against_this_machines_devices(tmp_path):
    plan = plan_sweep(["hydra/launcher=slurm", "device=cuda", "seed=0,1", f"hydra.sweep.dir={tmp_path}"])
    assert len(plan.jobs) == 2  # planned on a login node without CUDA, to run on a GPU node
    with pytest.raises(ConfigError, match="CUDA is not available"):  # run here, it would not start
        validate(composed("hydra/launcher=slurm", "device=cuda"))


@pytest.mark.parametrize("name", list(SCHEMES))
def test_every_scheme_validates_with_its_defaults_on_a_model_it_fits(name):
    needs_conv = name in ("dirac", "delta_orthogonal")
    validate(composed(f"init={name}", "model=cnn" if needs_conv else "model=mlp"))


def test_any_seed_validate_accepts_feeds_the_batch_sampler():
    data = Data(*[torch.zeros(8, 3, 4, 4), torch.zeros(8, dtype=torch.long)] * 2)
    for seed in SEED_RANGE:
        x, _ = Batches(data, 4, seed, augment=True)(step=3)
        assert x.shape == (4, 3, 4, 4)


# --- the command line: train.py checks every job before Hydra runs one -------------------


def exit_code(main, argv: list[str]) -> int:
    """main's exit code, whether it returns it or exits with it (argparse does)."""
    try:
        return main(argv)
    except SystemExit as exit_:
        return exit_.code


def test_train_checks_every_job_of_a_grid_before_any_starts(tmp_path, capsys):
    args = ["-m", f"hydra.sweep.dir={tmp_path / 'sweep'}", "init=normal", "init.std=1,0.5,-1"]
    assert train_main(*args) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "'init.std': -1.0 — must be >= 0 (job #2: init=normal init.std=-1)" in line
    assert not (tmp_path / "sweep").exists()


def test_hydra_flags_keep_their_meaning(capsys):
    for flags in (["--cfg", "job", "init=normal", "init.std=-1"], ["--help"], ["--hydra-help"], ["--info", "config"]):
        assert check_train_command(flags) is None  # Hydra shows what was asked; only running is refused
    assert exit_code(check_train_command, ["--cfg", "job", "init=kaimnig"]) == 2
    assert "did you mean kaiming" in one_error_line(capsys.readouterr().err)
    assert exit_code(check_train_command, ["seed=0,1"]) == 2  # a sweep without -m
    assert "'seed': '0,1' — a sweep runs only as a multirun" in one_error_line(capsys.readouterr().err)
    assert exit_code(check_train_command, ["--cfg"]) == 2  # argparse's own errors: one line too
    assert "--cfg" in one_error_line(capsys.readouterr().err)
    assert exit_code(check_train_command, ["-m", "--cfg", "job"]) == 2  # Hydra raises these with a traceback
    assert "--multirun and --cfg cannot be combined" in one_error_line(capsys.readouterr().err)
    assert exit_code(check_train_command, ["--resolve"]) == 2
    assert "--resolve works only with --cfg" in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize(
    "args, says",
    [
        (["init=["], "cannot read override 'init=['"),
        (["init=[xavier,kaiming]"], "'init': '[xavier,kaiming]' — one option, not a list; to run each, sweep them: "
                                    "-m init=xavier,kaiming"),
        (["init=normal", "init.std=-1"], "'init.std': -1.0 — must be >= 0"),
        (["-m", "seed=0,1", "model.depth=3,deep"],
         "'model.depth': 'deep' — must be an integer (job #1: seed=0 model.depth=deep)"),
        (["-m", "init=kaiming,uniform", "gain=relu"], "init=uniform takes no gain; schemes that do: xavier, kaiming"),
    ],
)
def test_train_command_mistakes_are_one_line_and_exit_2(tmp_path, capsys, args, says):
    assert train_main(*args, f"hydra.sweep.dir={tmp_path}") == 2
    assert says in one_error_line(capsys.readouterr().err)
    assert not any(tmp_path.iterdir())


def run_script(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / script), *args], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "WANDB_MODE": "disabled"}, timeout=300)


@pytest.mark.parametrize(
    "args, says",
    [
        (["init=kaimnig", "hydra.run.dir={tmp}/run"], "'init': 'kaimnig' — did you mean kaiming?"),
        (["-m", "hydra.sweep.dir={tmp}/sweep", "init=normal", "init.std=1,-1"],
         "'init.std': -1.0 — must be >= 0 (job #1:"),
    ],
)
def test_train_py_prints_one_line_exits_2_and_creates_nothing(tmp_path, args, says):
    proc = run_script("train.py", *[a.format(tmp=tmp_path) for a in args])
    assert proc.returncode == 2
    assert says in one_error_line(proc.stderr)
    assert not any(tmp_path.iterdir())


OFFLINE = {"http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"}  # every download refused


@pytest.mark.skipif((SYSTEM_ROOT / "mnist").exists(), reason="a system copy of MNIST is installed")
def test_a_dataset_found_nowhere_is_one_line_naming_the_offline_choice_and_leaves_nothing(tmp_path):
    """No folder of the run's, no empty folder of torchvision's download: nothing could run."""
    proc = train(tmp_path / "run", "dataset=mnist", f"data.root={tmp_path / 'data'}", env=OFFLINE, check=False)
    assert proc.returncode == 2
    line = one_error_line(proc.stderr)
    assert "dataset 'mnist' not found" in line and "the download failed (urlopen error" in line
    assert "offline, use dataset=fashion_mnist" in line and "/usr/share/datasets" not in line
    assert not any(tmp_path.iterdir())
    train(tmp_path / "init_only", "dataset=mnist", f"data.root={tmp_path / 'data'}", "train.steps=0", env=OFFLINE)
    assert not (tmp_path / "data").exists()  # an init-only run reads no data: it runs offline


def test_the_system_folder_and_debian_package_are_named_only_where_one_exists(tmp_path, monkeypatch):
    from initlab.data import sources
    from initlab.errors import DataError

    system = tmp_path / "system"
    monkeypatch.setattr(sources, "SYSTEM_ROOT", system)  # as on a machine without the package
    with pytest.raises(DataError) as err:
        sources.open_split("fashion_mnist", str(tmp_path / "root"), True, download=False)
    assert f"nor in {system / 'fashion-mnist'}, and data.download=false; apt-get install dataset-fashion-mnist" in str(
        err.value)
    with pytest.raises(DataError) as err:
        sources.open_split("cifar10", str(tmp_path / "root"), True, download=False)
    assert str(system) not in str(err.value)
    assert "offline, use dataset=fashion_mnist (apt-get install dataset-fashion-mnist)" in str(err.value)
    (system / "fashion-mnist").mkdir(parents=True)
    with pytest.raises(DataError, match=r"offline, use dataset=fashion_mnist \(installed\)"):
        sources.open_split("cifar10", str(tmp_path / "root"), True, download=False)


# --- the scripts -----------------------------------------------------------------------


def test_sweep_py_refuses_a_bad_grid_in_one_line_and_runs_nothing(tmp_path):
    proc = run_script("scripts/sweep.py", "experiment=smoke", "init=normal", "init.std=1,-1",
                      f"hydra.sweep.dir={tmp_path}")
    assert proc.returncode == 2
    assert "'init.std': -1.0 — must be >= 0 (job #" in one_error_line(proc.stderr)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "args, says",
    [
        ([], "'experiment': None — name a grid with experiment=<name>; valid choices: glorot2010, he2015"),
        (["experiment=smok"], "did you mean smoke?"),
        (["experiment=smoke", "--dryrun"], "'option': '--dryrun' — did you mean --dry-run?"),
        (["experiment=smoke", "launcher=slrum", "--dry-run"], "'launcher': 'slrum' — did you mean slurm?"),
        (["experiment=smoke", "launcher=slurm", "launcher.timeout_min=soon", "--dry-run"],
         "'launcher.timeout_min': 'soon' — must be an integer"),
        (["experiment=smoke", "launcher=packed", "launcher.max_pack=0", "--dry-run"],
         "'launcher.max_pack': 0 — an integer >= 1"),
        (["experiment=smoke", "launcher=local_gpu", "launcher.workers=abc", "--dry-run"],
         "'launcher.workers': 'abc' — an integer >= 1"),
        (["experiment=smoke", "launcher=local_gpu", "launcher.gpus=[a]", "--dry-run"], "'launcher.gpus': ['a'] — a list"),
        (["experiment=smoke", "launcher=local", "launcher.partition=gpu", "--dry-run"],
         "unknown key 'launcher.partition'"),
        (["experiment=smoke", "model.widht=8", "--dry-run"], "did you mean model.width?"),
        (["experiment=smoke", "seed=0,x", "--dry-run"], "'seed': 'x' — must be an integer (job #"),
        (["status"], "'status': '' — takes one sweep folder"),
        (["status", "/nonexistent/sweeps/smoke"], "'sweep folder': '/nonexistent/sweeps/smoke' — no such folder"),
        (["status", "/etc/hostname"], "is a file"),
    ],
)
def test_sweep_py_mistakes_are_one_line_and_exit_2(tmp_path, capfd, args, says):
    argv = [*args, f"hydra.sweep.dir={tmp_path}"] if "--dry-run" in args else args
    assert exit_code(sweep_script["main"], argv) == 2
    assert says in one_error_line(capfd.readouterr().err)  # capfd: sweep.py runs train.py -m as a child


def test_sweep_py_passes_launcher_keys_to_hydras_launcher(tmp_path, capfd):
    args = ["experiment=smoke", "launcher=slurm", "launcher.partition=x", "launcher.timeout_min=5"]
    assert sweep_script["main"]([*args, f"hydra.sweep.dir={tmp_path}", "--dry-run"]) == 0
    assert "4 jobs" in capfd.readouterr().out


def test_status_of_a_folder_without_jobs_is_one_line(tmp_path, capsys):
    assert exit_code(sweep_script["main"], ["status", str(tmp_path)]) == 2
    assert "holds no job folders" in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize(
    "args, says",
    [
        ([], "the following arguments are required: sweep_dir"),
        (["/nonexistent/sweep"], "'sweep folder': '/nonexistent/sweep' — no such folder"),
        (["{tmp}"], "no jobs"),
        (["{tmp}", "--out", "/etc/hostname"], "'--out': '/etc/hostname' — /etc/hostname is not a folder"),
        (["{tmp}", "--out", "/proc/x"], "'--out': '/proc/x' — /proc is not writable"),
        (["{tmp}", "--outdir", "x"], "unrecognized arguments: --outdir"),
    ],
)
def test_report_py_mistakes_are_one_line_and_exit_2(tmp_path, capsys, args, says):
    assert exit_code(report_script["main"], [a.format(tmp=tmp_path) for a in args]) == 2
    assert says in one_error_line(capsys.readouterr().err)


# --- a run directory in use: refused before Hydra writes into it ----------------------


def test_train_py_aimed_at_a_run_directory_in_use_stops_and_touches_nothing(tmp_path):
    run_dir = tmp_path / "run"
    with RunRecords(run_dir).locked():
        proc = run_script("train.py", f"hydra.run.dir={run_dir}", "experiment=smoke")
    assert proc.returncode == 2
    assert f"'hydra.run.dir': '{run_dir}' — another run (pid {os.getpid()}) is writing" in one_error_line(proc.stderr)
    assert [p.name for p in run_dir.iterdir()] == [".lock"]  # no .hydra/, no train.log


def test_a_grid_with_a_job_folder_in_use_is_refused_whole_but_can_still_be_listed(tmp_path, capfd):
    args = ["experiment=smoke", f"hydra.sweep.dir={tmp_path}"]
    busy = plan_sweep(args).jobs[2]
    with RunRecords(busy.dir).locked():
        assert train_main("-m", *args) == 2
        line = one_error_line(capfd.readouterr().err)
        assert f"'{busy.dir}' — another run (pid {os.getpid()}) is writing into it" in line and "(job #2: " in line
        assert exit_code(sweep_script["main"], args) == 2
        assert "(job #2: " in one_error_line(capfd.readouterr().err)
        assert sweep_script["main"]([*args, "--dry-run"]) == 0
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [".lock"]


@pytest.mark.parametrize("args, says", [
    (["hydra.run.dir={tmp}/taken/run"], "{tmp}/taken is not a folder"),
    (["hydra.run.dir=/proc/x"], "/proc is not writable"),
    (["hydra.run.dir="], "a folder of its own: this would write into the current one"),
    (["-m", "seed=0,1", "hydra.sweep.dir="], "'hydra.sweep.dir': '.' — a folder of its own"),
    (["-m", "seed=0,1", "hydra.sweep.dir={tmp}/taken"], "{tmp}/taken is not a folder"),
])
def test_a_run_or_sweep_folder_that_cannot_be_written_is_one_line(tmp_path, capsys, args, says):
    (tmp_path / "taken").write_text("")
    assert train_main(*[a.format(tmp=tmp_path) for a in args]) == 2
    assert says.format(tmp=tmp_path) in one_error_line(capsys.readouterr().err)
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]


@pytest.fixture
def read_only(tmp_path):
    """A folder on a read-only bind mount (root's write permission ignores chmod), or a skip."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if subprocess.run(["mount", "--bind", folder, folder], capture_output=True).returncode:
        pytest.skip("cannot bind-mount here (needs root)")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", folder, folder], check=True, capture_output=True)
        yield folder
    finally:
        subprocess.run(["umount", folder], check=True)


def test_a_job_folder_that_cannot_be_written_stops_the_grid_before_any_job(read_only, tmp_path, capfd):
    assert exit_code(check_train_command, [f"hydra.run.dir={read_only / 'run'}"]) == 2
    assert f"{read_only} is not writable" in one_error_line(capfd.readouterr().err)
    args = ["experiment=smoke", f"hydra.sweep.dir={read_only}"]
    assert exit_code(sweep_script["main"], args) == 2
    assert "is not writable" in (line := one_error_line(capfd.readouterr().err)) and "(job #0: " in line


def test_a_protocol_is_checked_against_its_schema():
    """Each entry says all it must, and a pre-sweep's rule names a final metric the runs record."""
    selection = {"key": "optim.lr", "metric": "train/los", "goal": "min", "used_by": "he2015"}
    with pytest.raises(ConfigError, match=r"selects\[0\]\.metric.*train/los.*did you mean train/loss"):
        check_protocol({"selects": [selection]})
    with pytest.raises(ConfigError, match=r"selects\[0\]\.goal"):
        check_protocol({"selects": [selection | {"metric": "train/loss", "goal": "lowest"}]})
    with pytest.raises(ConfigError, match=r"chooses\[0\]\.before_grid"):
        check_protocol({"chooses": [{"key": "optim.lr", "rule": "r", "criterion": "c"}]})
    check_protocol({"selects": [selection | {"metric": "train/loss"}]})
