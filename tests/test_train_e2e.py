"""One training run, end to end, through torchvision's readers and the run records.

Runs are composed and called in-process (conftest.run_in_process); `python train.py` runs in a
subprocess only where the process is the point: its exit code and run directory, and (slow)
a SIGKILL and Hydra's multirun.
"""

import json
import logging
import math
import os
import subprocess
import sys
import time

import pytest
import torch
import torch.nn.functional as F
import yaml

from cli import REPO, metrics, summary, train
from conftest import compose_config, run_in_process
from fakedata import write_cifar, write_idx
from sweeps import job_dirs, multirun
from initlab.data import load_data
from initlab.models import build_model
from initlab.validate import validate

SMALL_MLP = ["model.depth=3", "model.width=32", "data.batch_size=64"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_idx(root, "MNIST")
    write_idx(root, "FashionMNIST")
    write_cifar(root, 10)
    write_cifar(root, 100)
    return root


def test_mnist_run_writes_the_run_record_contract(tmp_path, data_root):
    run = tmp_path / "run"
    run_in_process(run, "init=kaiming", "mode=fan_out", f"data.root={data_root}", *SMALL_MLP,
                   "train.steps=60", "train.log_every=20", "train.eval_every=30")
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["init"]["scheme"] == "kaiming" and cfg["mode"] == "fan_out"
    rows = metrics(run)
    assert [r["step"] for r in rows] == [0, 20, 30, 40, 60]
    layers = ["layers.0", "layers.2", "layers.4"]
    for r in (rows[0], rows[1], rows[-1]):
        for layer in layers:
            for key in ("grad_norm", "grad_var", "act_var", "act_mean", "weight_norm"):
                assert math.isfinite(r[f"{key}/{layer}"])
        assert {"train/loss", "train/acc", "dead_frac/layers.0", "dead_frac/layers.2"} <= r.keys()
    assert "update_ratio/layers.0" in rows[0] and "update_ratio/layers.0" not in rows[-1]  # no update after the last step
    assert "test/acc" in rows[2] and "grad_norm/layers.0" not in rows[2]  # step 30: evaluation only
    s = summary(run)
    assert s["status"] == "completed" and s["steps"] == 60
    assert s["test/acc"] == rows[-1]["test/acc"] and s["train/loss"] == rows[-1]["train/loss"]
    assert s["test/acc"] > 0.3  # the fake digits are learnable: well above chance (0.1)
    assert {"git_sha", "versions", "device", "wall_s"} <= s.keys() and s["versions"]["torch"]
    init = json.loads((run / "init.json").read_text())
    assert [(r["layer"], r["param"]) for r in init][:2] == [("layers.0", "weight"), ("layers.0", "bias")]
    assert init[0]["fan_out"] == 32 and init[0]["mode"] == "fan_out"
    assert init[0]["target_std"] == pytest.approx(math.sqrt(2 / 32))
    assert (run / "last.pt").exists()


def test_train_py_runs_in_hydras_run_dir_and_a_diverging_run_exits_zero(tmp_path, data_root):
    proc = train(tmp_path, f"data.root={data_root}", *SMALL_MLP, "optim.lr=1e4", "train.steps=200")
    s = summary(tmp_path)
    assert proc.returncode == 0 and s["status"] == "diverged"
    assert 0 < s["steps"] < 200 and "loss" in s["reason"]
    assert metrics(tmp_path)[0]["step"] == 0  # what was logged before is kept
    assert "diverged after" in (tmp_path / "train.log").read_text()  # Hydra's job log, in the run dir


@pytest.mark.parametrize("dataset, model", [("cifar10", "cnn"), ("cifar100", "resnet"), ("fashion_mnist", "cnn")])
def test_each_dataset_and_conv_model_trains_from_real_formats(tmp_path, data_root, dataset, model):
    sizes = ["model.depth=3", "model.channels=8"] if model == "cnn" else ["model.depth=8", "model.width=4"]
    run_in_process(tmp_path, f"dataset={dataset}", f"model={model}", *sizes, f"data.root={data_root}",
                   "data.batch_size=32", "train.steps=4", "train.log_every=2", "data.augment=true")
    s = summary(tmp_path)
    assert s["status"] == "completed" and math.isfinite(s["train/loss"])
    classes = 100 if dataset == "cifar100" else 10
    assert json.loads((tmp_path / "init.json").read_text())[-1]["shape"][0] == classes or model == "resnet"


def test_lazy_model_trains_and_records_materialised_shapes(tmp_path, data_root):
    run_in_process(tmp_path, "model.lazy=true", f"data.root={data_root}", *SMALL_MLP, "train.steps=5")
    assert json.loads((tmp_path / "init.json").read_text())[0]["shape"] == [32, 784]


def test_init_only_run_needs_no_data(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="initlab"):
        outcome = run_in_process(tmp_path, "init=orthogonal", "gain=relu", "train.steps=0", "data.root=/nonexistent")
    assert "target_std" in caplog.text  # the init table
    assert outcome.status == "completed" and summary(tmp_path)["steps"] == 0
    assert not (tmp_path / "metrics.jsonl").exists() or metrics(tmp_path) == []
    assert json.loads((tmp_path / "init.json").read_text())[0]["gain"] == pytest.approx(math.sqrt(2))


@pytest.mark.parametrize("model", [["model=mlp", "model.norm=batch"], ["model=cnn", "model.norm=layer"], ["model=resnet"]])
def test_init_default_keeps_what_torch_drew_biases_and_norms_included(tmp_path, model):
    """The run's every tensor (init.json's measured std and mean) equals a freshly built model's."""
    overrides = ["init=default", "dataset=synthetic", "data.input_shape=[3,8,8]", "seed=3", *model, "train.steps=0"]
    run_in_process(tmp_path, *overrides)
    recorded = json.loads((tmp_path / "init.json").read_text())
    cfg = compose_config(*overrides)
    settings = validate(cfg)
    torch.manual_seed(3)
    fresh = dict(build_model(cfg.model, settings.input_shape, settings.num_classes).named_parameters())
    assert {r["param"] for r in recorded} == {"weight", "bias"} and any(r["scheme"] == "bias:default" for r in recorded)
    for r in recorded:
        t = fresh[f"{r['layer']}.{r['param']}"].detach().double()
        assert (r["std"], r["mean"]) == (t.std(correction=0).item(), t.mean().item()), (r["layer"], r["param"])


def test_lsuv_init_only_run_takes_a_data_batch(tmp_path, data_root):
    run_in_process(tmp_path, "init=lsuv", "model.activation=tanh", f"data.root={data_root}", *SMALL_MLP,
                   "train.steps=0")
    weights = [r for r in json.loads((tmp_path / "init.json").read_text()) if r["param"] == "weight"]
    assert all(abs(r["lsuv_out_var"] - 1) < 0.1 for r in weights)


def test_synthetic_data_any_input_shape(tmp_path):
    run_in_process(tmp_path, "dataset=synthetic", "data.input_shape=[3,12,12]", "data.num_classes=4", "model=cnn",
                   "model.depth=3", "model.channels=8", "train.steps=20", "data.train_size=256", "data.test_size=64")
    assert summary(tmp_path)["status"] == "completed"
    assert json.loads((tmp_path / "init.json").read_text())[0]["shape"] == [8, 3, 3, 3]


def test_resized_images_are_the_area_averages_of_the_originals_and_the_model_takes_their_shape(tmp_path, data_root):
    full, small = (compose_config("dataset=cifar10", f"data.root={data_root}", *resize).data
                   for resize in ([], ["data.resize=8"]))
    x, x8 = load_data(full, torch.device("cpu")).x_train, load_data(small, torch.device("cpu")).x_train
    assert x8.shape[1:] == (3, 8, 8)
    pooled = F.avg_pool2d(x, 4)  # 32 -> 8: each pixel the mean of a 4 x 4 block (normalised before, and after)
    assert torch.allclose(x8, pooled / pooled.std(dim=(0, 2, 3), keepdim=True), atol=1e-5)
    run_in_process(tmp_path, "dataset=cifar10", f"data.root={data_root}", "data.resize=8", "model=cnn",
                   "model.depth=3", "model.channels=4", "train.steps=3")
    assert summary(tmp_path)["status"] == "completed"


def test_deterministic_rerun_is_bit_identical(tmp_path, data_root):
    args = [f"data.root={data_root}", *SMALL_MLP, "train.steps=20", "train.log_every=5", "train.deterministic=true"]
    run_in_process(tmp_path / "a", *args)
    run_in_process(tmp_path / "b", *args)
    assert metrics(tmp_path / "a") == metrics(tmp_path / "b")


@pytest.mark.slow
def test_resume_after_sigkill_continues_to_the_same_result(tmp_path, data_root):
    args = [f"data.root={data_root}", *SMALL_MLP, "train.steps=400", "train.log_every=10", "train.ckpt_every=20",
            "train.deterministic=true", "optim.schedule=cosine", "optim.warmup_steps=5"]
    run_in_process(tmp_path / "full", *args)
    run = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, str(REPO / "train.py"), f"hydra.run.dir={run}", "logger=none",
                             "train.progress=false", *args], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not ((run / "last.pt").exists() and len(_lines(run)) >= 4) and time.time() < deadline:
        time.sleep(0.005)
    proc.kill()
    proc.wait()
    assert not (run / "summary.json").exists(), "the run finished before it could be killed"
    run_in_process(run, *args, "train.resume=true")
    assert metrics(run) == metrics(tmp_path / "full")
    assert summary(run)["train/loss"] == summary(tmp_path / "full")["train/loss"]


def _lines(run) -> list[str]:
    path = run / "metrics.jsonl"
    return path.read_text().splitlines() if path.exists() else []


def test_wandb_offline_mirrors_the_metric_keys(tmp_path, data_root, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    run = tmp_path / "run"
    run_in_process(run, f"data.root={data_root}", *SMALL_MLP, "train.steps=20", "train.log_every=10", "logger=wandb",
                   "logger.project=initlab-test")
    [wandb_dir] = list((run / "wandb").glob("offline-run-*"))
    out = subprocess.run(["wandb", "leet", "inspect", "--json", str(wandb_dir)], capture_output=True, text=True,
                         check=True).stdout
    history = [json.loads(line)["history"]["item"] for line in out.splitlines() if '"history"' in line]
    by_step = {h["_step"]: h for h in history}
    for row in metrics(run):
        mirrored = by_step[row["step"]]
        for key, value in row.items():
            if key != "step":
                assert mirrored[key] == pytest.approx(value, rel=1e-6), key
    state = json.loads(subprocess.run(["wandb", "leet", "inspect", "--summary", "--json", str(wandb_dir)],
                                      capture_output=True, text=True, check=True).stdout)
    assert state["state"] == "finished" and state["project"] == "initlab-test"


def test_a_run_ends_with_one_line_naming_its_status_folder_and_exact_wandb_sync_command(tmp_path, data_root,
                                                                                       monkeypatch, caplog):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.INFO, logger="initlab"):
        run_in_process(tmp_path / "runs" / "a", f"data.root={data_root}", *SMALL_MLP, "train.steps=5", "logger=wandb",
                       "logger.project=initlab-test")
    [offline] = (tmp_path / "runs" / "a" / "wandb").glob("offline-run-*")
    last = _last_line(caplog)
    assert last.startswith("completed after 5 steps: train/loss=") and "; records in runs/a; " in last
    assert last.endswith(f"; upload to wandb with: wandb sync runs/a/wandb/{offline.name}")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="initlab"), pytest.raises(Exception, match="different config"):
        run_in_process(tmp_path / "runs" / "a", f"data.root={data_root}", *SMALL_MLP, "train.steps=5", "seed=1",
                       "train.resume=true")
    last = _last_line(caplog)
    assert last.startswith("failed after 0 steps (NotThisRun: ") and last.endswith("; records in runs/a")


@pytest.mark.parametrize("launcher", ["local", "packed"])
def test_a_grid_job_is_tagged_in_wandb_with_its_experiment_scheme_and_model(tmp_path, monkeypatch, launcher):
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert multirun(tmp_path, f"hydra/launcher={launcher}", "experiment=smoke", "init=xavier", "seed=0",
                    "train.steps=2", "logger=wandb", "logger.project=initlab-test", "logger.tags=[mine]") == 0
    [job] = job_dirs(tmp_path)
    [wandb_dir] = (job / "wandb").glob("offline-run-*")
    state = json.loads(subprocess.run(["wandb", "leet", "inspect", "--summary", "--json", str(wandb_dir)],
                                      capture_output=True, text=True, check=True).stdout)
    assert state["tags"] == ["mine", "experiment=smoke", "init=xavier", "model=mlp"]


def _last_line(caplog) -> str:
    return [r for r in caplog.records if r.name == "initlab"][-1].getMessage()  # wandb logs records of its own


@pytest.mark.slow  # a Hydra multirun in a subprocess; tests/test_sweep.py runs grids by default
def test_multirun_gives_each_job_its_own_folder_and_wandb_run(tmp_path, data_root):
    proc = subprocess.run(
        [sys.executable, "train.py", "-m", "init=xavier,kaiming", f"data.root={data_root}", *SMALL_MLP,
         "train.steps=4", "train.progress=false", f"hydra.sweep.dir={tmp_path}"],
        cwd=REPO, capture_output=True, text=True, env={**os.environ, "WANDB_MODE": "offline"})
    assert proc.returncode == 0, proc.stderr
    jobs = sorted(p for p in tmp_path.iterdir() if p.is_dir() and (p / "summary.json").exists())
    assert len(jobs) == 2
    runs = [next((j / "wandb").glob("offline-run-*")).name for j in jobs]
    assert len(set(runs)) == 2
