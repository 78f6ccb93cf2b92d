"""Packed grids: K runs trained as one stacked computation write the records each run writes alone,
for every architecture (initlab.models.stack), and a lone run is a pack of one.

Tolerance: with train.deterministic=true on CPU a packed run differs from its lone run only in
the order of float32 reductions (bmm vs addmm, a grouped vs a plain convolution, GroupNorm vs
LayerNorm), so every logged value agrees to rtol 1e-4 (abs 1e-6) over these tens of steps;
init.json is identical.
"""

import json
import math
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import initlab

from cli import REPO, metrics, summary
from conftest import compose_config, run_in_process
from initlab.models import build_model
from initlab.models.stack import STACKED, Stack
from initlab.run import run_pack
from initlab.sweep.packs import pack_key
from sweeps import job_dirs, multirun

BASE = ["dataset=synthetic", "data.train_size=512", "data.test_size=128", "data.batch_size=32", "data.input_shape=[16]",
        "model.depth=3", "model.width=16", "train.steps=30", "train.log_every=10", "train.eval_every=15",
        "train.ckpt_every=10", "train.deterministic=true", "train.progress=false", "logger=none"]
# seed, init scheme and its parameters, mode, gain, bias init, lr and momentum differ
SGD_PACK = [["seed=0", "init=kaiming"],
            ["seed=1", "init=xavier", "gain=relu", "init.bias=normal", "init.bias_std=0.1"],
            ["seed=2", "init=orthogonal", "optim.lr=0.05", "optim.nesterov=true"],
            ["seed=3", "init=kaiming", "mode=fan_out", "optim.momentum=0", "optim.weight_decay=1e-3"]]
ADAM_PACK = [["optim=adam", "seed=0", "optim.lr=1e-3"],
             ["optim=adam", "seed=1", "optim.lr=3e-3", "optim.betas=[0.8,0.99]", "optim.weight_decay=1e-2"]]


def assert_same_records(packed, lone, values_until: float = math.inf) -> None:
    """Records equal within the tolerance; values compared up to step `values_until` (a
    diverging run amplifies float32 noise as it blows up)."""
    assert (packed / "init.json").read_text() == (lone / "init.json").read_text()
    assert (packed / "config.yaml").read_text() == (lone / "config.yaml").read_text()
    rows, expected = metrics(packed), metrics(lone)
    assert [r.keys() for r in rows] == [r.keys() for r in expected]
    for row, want in zip(rows, expected):
        if row["step"] > values_until:
            continue
        for key, value in want.items():
            expect = value if value is None else pytest.approx(value, rel=1e-4, abs=1e-6)  # None: non-finite
            assert row[key] == expect, (row["step"], key)
    s, want = summary(packed), summary(lone)
    where = lambda reason: reason and reason.split(" at ")[-1]  # noqa: E731 -- "loss <value> at step <n> (...)"
    assert (s["status"], s["steps"], where(s["reason"])) == (want["status"], want["steps"], where(want["reason"]))
    for key in () if s["status"] == "diverged" else ("train/loss", "train/acc", "test/loss", "test/acc"):
        assert s[key] == pytest.approx(want[key], rel=1e-4, abs=1e-6)


def lone_and_packed(tmp_path, pack: list[list[str]], base: list[str] = BASE):
    cfgs = [compose_config(*base, *overrides) for overrides in pack]
    assert len({pack_key(c) for c in cfgs}) == 1
    dirs = [tmp_path / f"packed{i}" for i in range(len(pack))]
    outcomes = run_pack(cfgs, dirs)
    for i, overrides in enumerate(pack):
        run_in_process(tmp_path / f"lone{i}", *base, *overrides)
    return outcomes, dirs, [tmp_path / f"lone{i}" for i in range(len(pack))]


def assert_same_checkpoint(packed: Path, lone: Path) -> None:
    """last.pt as the lone run writes it: step, model (BatchNorm's running statistics included),
    torch optimizer state and param groups, scheduler."""
    state, want = torch.load(packed / "last.pt"), torch.load(lone / "last.pt")
    assert state["step"] == want["step"] and state["scheduler"]["last_epoch"] == want["scheduler"]["last_epoch"]
    assert state["scheduler"]["_last_lr"] == pytest.approx(want["scheduler"]["_last_lr"])
    assert state["model"].keys() == want["model"].keys()
    for key in want["model"]:
        torch.testing.assert_close(state["model"][key], want["model"][key], rtol=1e-4, atol=1e-6)
    assert state["optimizer"]["param_groups"] == want["optimizer"]["param_groups"]
    assert state["optimizer"]["state"].keys() == want["optimizer"]["state"].keys()
    for i, buffers in want["optimizer"]["state"].items():
        for name, value in buffers.items():
            torch.testing.assert_close(state["optimizer"]["state"][i][name], value, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("pack", [SGD_PACK, ADAM_PACK], ids=["sgd", "adam"])
def test_a_packed_run_records_what_its_lone_run_records(tmp_path, pack):
    outcomes, packed, lone = lone_and_packed(tmp_path, pack)
    assert [o.status for o in outcomes] == ["completed"] * len(pack)
    for p, q in zip(packed, lone):
        assert_same_records(p, q)
        assert (summary(p)["pack_size"], summary(q)["pack_size"]) == (len(pack), 1)  # wall_s: the pack's
        assert_same_checkpoint(p, q)


IMAGES = ["dataset=synthetic", "data.train_size=256", "data.test_size=64", "data.batch_size=16",
          "data.input_shape=[3,8,8]", "data.eval_batch_size=50", "train.steps=12", "train.log_every=4",
          "train.eval_every=6", "train.ckpt_every=6", "train.deterministic=true", "train.progress=false", "logger=none"]
SEEDS_AND_SCHEMES = [["seed=0", "init=kaiming"], ["seed=1", "init=orthogonal", "optim.lr=0.05"],
                     ["seed=2", "init=xavier", "gain=relu", "optim.momentum=0.5"]]
ARCHITECTURES = {
    "cnn": ["model=cnn", "model.depth=4", "model.channels=4"],
    "cnn-circular-augmented-lazy": ["model=cnn", "model.depth=3", "model.channels=4", "data.augment=true",
                                    "model.lazy=true", "model.padding=circular"],
    "cnn-layernorm": ["model=cnn", "model.depth=3", "model.channels=4", "model.norm=layer"],
    "resnet20-batchnorm": ["model=resnet", "model.depth=20", "model.width=4", "init.zero_residual=true"],
    "mlp-layernorm": ["model=mlp", "model.depth=4", "model.width=16", "model.norm=layer"],
    "mlp-batchnorm-lsuv": ["model=mlp", "model.depth=4", "model.width=16", "model.norm=batch", "init=lsuv"],
}


@pytest.mark.parametrize("arch", ARCHITECTURES, ids=list(ARCHITECTURES))
def test_every_architecture_packs_with_the_records_of_its_lone_runs(tmp_path, arch):
    pack = SEEDS_AND_SCHEMES if "lsuv" not in arch else [["seed=0"], ["seed=1", "optim.lr=0.05"]]
    outcomes, packed, lone = lone_and_packed(tmp_path, [[*ARCHITECTURES[arch], *o] for o in pack], IMAGES)
    assert [o.status for o in outcomes] == ["completed"] * len(pack)
    for p, q in zip(packed, lone):
        assert_same_records(p, q)
        assert_same_checkpoint(p, q)
    if "batchnorm" in arch:  # each run's own running statistics, not its pack mates'
        running = [torch.load(p / "last.pt")["model"] for p in packed]
        key = next(k for k in running[0] if k.endswith("running_mean"))
        assert not torch.equal(running[0][key], running[1][key])


@pytest.mark.parametrize("arch", ARCHITECTURES, ids=list(ARCHITECTURES))
def test_a_stack_holds_each_lone_parameter_once_as_k_rows(arch):
    cfg = compose_config(*IMAGES, *ARCHITECTURES[arch])
    models = [build_model(cfg.model, [3, 8, 8], 10) for _ in range(3)]
    stacked = dict(Stack(models).net.named_parameters())
    assert {name: tuple(p.shape) for name, p in stacked.items()} == {
        name: (3, *p.shape) for name, p in models[0].named_parameters()}


def test_a_module_that_holds_parameters_beside_its_children_is_refused():
    """Its own parameters would stay member 0's, shared by every run: refused, not stacked wrongly."""
    class Scaled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body, self.scale = torch.nn.Linear(4, 2), torch.nn.Parameter(torch.ones(2))

        def forward(self, x):
            return self.body(x) * self.scale

    with pytest.raises(TypeError, match="holds parameters or buffers of its own"):
        Stack([Scaled(), Scaled()])


def test_a_stacks_probe_floats_are_a_list_per_statistic():
    models = [torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2)) for _ in range(3)]
    probe = initlab.Probe(Stack(models))
    with probe.capture():
        probe.stack(torch.randn(3, 5, 4)).sum().backward()
    floats = probe.floats()
    assert all(isinstance(v, list) and len(v) == 3 for v in floats.values()) and "act_var/0" in floats


@pytest.mark.parametrize("padding", ["zeros", "circular"])
def test_a_stacked_convolution_is_the_same_grouped_or_per_run(padding):
    """The GPU's grouped form and the CPU's per-run form of one stacked convolution agree."""
    convs = [torch.nn.Conv2d(3, 4, 3, 2, 1, padding_mode=padding) for _ in range(3)]
    stacked = STACKED[torch.nn.Conv2d](convs)
    x = torch.randn(3 * 5, 3, 8, 8)
    torch.testing.assert_close(stacked.grouped(x), stacked.per_run(x))
    torch.testing.assert_close(stacked.per_run(x)[5:10], convs[1](x[5:10]))


def test_a_stacked_batchnorm_is_the_same_grouped_or_per_run():
    """The GPU's and the CPU's form of one stacked BatchNorm: outputs and running statistics agree."""
    norms = [torch.nn.BatchNorm2d(4) for _ in range(3)]
    x = torch.randn(3 * 5, 4, 6, 6)
    grouped, per_run = STACKED[torch.nn.BatchNorm2d](norms), STACKED[torch.nn.BatchNorm2d](norms)
    torch.testing.assert_close(grouped.grouped(x, True, 0.1), per_run.per_run(x, True, 0.1))
    torch.testing.assert_close(grouped.running_var, per_run.running_var)
    torch.testing.assert_close(per_run.per_run(x, True, 0.1)[5:10], norms[1](x[5:10]))


@pytest.mark.parametrize("activation", ["tanh", "selu", "gelu", "leaky_relu", "sigmoid", "softplus", "linear"])
def test_every_activation_packs(tmp_path, activation):
    _, packed, lone = lone_and_packed(tmp_path, [["seed=0", f"model.activation={activation}"],
                                                 ["seed=1", f"model.activation={activation}", "gain=auto"]])
    for p, q in zip(packed, lone):
        assert_same_records(p, q)


def test_each_packed_run_has_its_own_wandb_run_mirroring_its_metrics(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfgs = [compose_config(*BASE, f"seed={seed}", "logger=wandb", "logger.project=initlab-test") for seed in (0, 1)]
    run_pack(cfgs, [tmp_path / "a", tmp_path / "b"], group="pack")
    for run in (tmp_path / "a", tmp_path / "b"):
        [wandb_dir] = list((run / "wandb").glob("offline-run-*"))
        out = subprocess.run(["wandb", "leet", "inspect", "--json", str(wandb_dir)], capture_output=True, text=True,
                             check=True).stdout
        by_step = {h["_step"]: h for h in (json.loads(line)["history"]["item"] for line in out.splitlines()
                                           if '"history"' in line)}
        for row in metrics(run):
            assert {k: by_step[row["step"]][k] for k in row if k != "step"} == pytest.approx(
                {k: v for k, v in row.items() if k != "step"}, rel=1e-6)
        state = json.loads(subprocess.run(["wandb", "leet", "inspect", "--summary", "--json", str(wandb_dir)],
                                          capture_output=True, text=True, check=True).stdout)
        assert state["state"] == "finished" and state["project"] == "initlab-test"


def test_a_diverging_run_is_recorded_at_its_own_step_and_leaves_the_others_alone(tmp_path):
    pack = [["seed=0"], ["seed=1", "optim.lr=1e4"], ["seed=2", "optim.lr=30", "optim.momentum=0"]]
    outcomes, packed, lone = lone_and_packed(tmp_path, pack)
    assert [o.status for o in outcomes] == ["completed", "diverged", "diverged"]
    assert outcomes[1].steps != outcomes[2].steps
    assert_same_records(packed[0], lone[0])  # unaffected by its diverging pack mates
    for p, q in zip(packed[1:], lone[1:]):
        assert_same_records(p, q, values_until=0)


def test_the_packed_launcher_runs_a_grid_as_the_local_launcher_does(tmp_path):
    grid = [*BASE, "init=xavier,kaiming,lsuv", "seed=0,1"]  # lsuv too: each run rescaled on its own batch
    assert multirun(tmp_path / "local", "hydra/launcher=local", *grid) == 0
    assert multirun(tmp_path / "packed", "hydra/launcher=packed", "hydra.launcher.max_pack=3", *grid) == 0
    local, packed = job_dirs(tmp_path / "local"), job_dirs(tmp_path / "packed")
    assert [d.name for d in packed] == [d.name for d in local] and len(local) == 6
    for p, q in zip(packed, local):
        assert (p / ".hydra" / "overrides.yaml").read_text() == (q / ".hydra" / "overrides.yaml").read_text()
        assert_same_records(p, q)
        assert run_log(p) == run_log(q) and any("completed after 30 steps" in line for line in run_log(p))


def run_log(job_dir: Path) -> list[str]:
    """train.log's lines without their timestamps, or the run's folder in its last line."""
    lines = (job_dir / "train.log").read_text().splitlines()
    return [re.sub(r"^\[[^]]*\]", "", line).replace(str(job_dir.absolute()), "<folder>") for line in lines]


@pytest.mark.slow
def test_a_pack_stopped_part_way_resumes_and_ends_as_if_never_interrupted(tmp_path):
    grid = [*BASE, "train.steps=1500", "train.log_every=50", "train.eval_every=500", "train.ckpt_every=50", "seed=0,1,2"]
    assert multirun(tmp_path / "clean", "hydra/launcher=packed", *grid) == 0
    stopped = tmp_path / "stopped"
    proc = subprocess.Popen([sys.executable, str(REPO / "train.py"), "-m", "hydra/launcher=packed",
                             f"hydra.sweep.dir={stopped}", "train.resume=true", *grid],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and len(list(stopped.glob("*/last.pt"))) < 3:
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=300) == 128 + signal.SIGTERM
    assert {summary(d)["status"] for d in job_dirs(stopped)} == {"interrupted"}
    assert multirun(stopped, "hydra/launcher=packed", *grid) == 0
    for clean, resumed in zip(job_dirs(tmp_path / "clean"), job_dirs(stopped), strict=True):
        assert summary(resumed)["status"] == "completed"
        assert metrics(resumed) == metrics(clean)  # bit for bit: the same stacked arithmetic from last.pt on
