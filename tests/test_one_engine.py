"""One engine: a lone run is a pack of one, trained by the loop every pack trains by.

- A lone run is the plain torch loop a user would write (its own model, torch's optimizer,
  F.cross_entropy, the batches of initlab.data.batches) with nothing added: bit for bit.
- last.pt is one format across the packed/lone boundary: a lone run resumes a packed run's
  checkpoint and a pack resumes lone runs' checkpoints (BatchNorm's running statistics and the
  optimizer's momentum included), ending as the uninterrupted runs end, within test_packed's
  tolerance (the stack and the lone model differ in the order of float32 reductions only).
- The probe measures each member of a Stack as it measures that member alone.
- A pack's update is each run's own torch optimizer and schedule, bit for bit, over 1,000 steps.
"""

import copy
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.nn.modules.module import register_module_forward_hook

import initlab
from cli import metrics, summary
from conftest import compose_config, run_in_process
from initlab.data import load_data
from initlab.data.batches import Batches
from initlab.models import build_model
from initlab.models.stack import Stack
from initlab.run import build_initialised, run_pack
from initlab.sweep.packs import pack_key
from initlab.track.records import RunRecords
from initlab.train.optim import build_optimizer, build_schedule
from initlab.train.pack import Member, Outcome, Pack
from initlab.validate import validate
from test_packed import assert_same_checkpoint, assert_same_records

# ---------------------------------------------------------------------------------------------
# 1. A lone run is a plain torch loop

PLAIN = ["dataset=synthetic", "data.train_size=512", "data.test_size=128", "data.batch_size=32",
         "data.input_shape=[16]", "model.depth=3", "model.width=16", "train.steps=40", "train.log_every=5",
         "train.eval_every=20", "train.ckpt_every=1000", "train.deterministic=true", "device=cpu"]
OPTIMIZERS = {
    "sgd-momentum": ["optim=sgd", "optim.lr=0.05", "optim.momentum=0.9", "optim.weight_decay=1e-3"],
    "adam": ["optim=adam", "optim.lr=3e-3", "optim.betas=[0.8,0.99]", "optim.weight_decay=1e-2"],
}


def plain_torch_loop(cfg) -> tuple[dict[int, float], dict[str, torch.Tensor]]:
    """The run of `cfg` as a user writes it by hand: its train/loss by logged step, and its final weights.

    Step s computes the loss at the weights after s updates; the last step (train.steps) is
    measured, not followed by an update."""
    model, _ = build_initialised(cfg, validate(cfg))
    data = load_data(cfg.data, torch.device("cpu"))
    batches = Batches(data, cfg.data.batch_size, cfg.seed, cfg.data.augment)
    o = cfg.optim
    if o.name.value == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=o.lr, momentum=o.momentum, nesterov=o.nesterov,
                                    weight_decay=o.weight_decay)
    else:
        assert o.name.value == "adam"
        optimizer = torch.optim.Adam(model.parameters(), lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)
    steps, losses = cfg.train.steps, {}
    model.train()
    for step in range(steps + 1):
        x, y = batches(step)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if step % cfg.train.log_every == 0 or step == steps:
            losses[step] = loss.item()
        if step < steps:
            optimizer.step()
    return losses, {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("optim", OPTIMIZERS, ids=list(OPTIMIZERS))
def test_a_lone_run_matches_a_plain_torch_loop(tmp_path, optim):
    """Bit-identical: with train.deterministic=true on CPU a lone run does exactly the plain
    loop's float32 arithmetic (its Stack of one is the model itself, the probe only reads, one
    torch optimizer over model.parameters(), the constant schedule multiplies lr by 1.0), so
    every logged train/loss and every final weight is equal, not merely close."""
    overrides = [*PLAIN, *OPTIMIZERS[optim]]
    outcome = run_in_process(tmp_path, *overrides)
    assert outcome.status == "completed" and outcome.steps == 40
    losses, weights = plain_torch_loop(compose_config(*overrides))

    logged = {row["step"]: row["train/loss"] for row in metrics(tmp_path)}
    assert list(logged) == list(range(0, 41, 5))
    assert logged == losses  # exact
    assert losses[40] < losses[0]  # it trained: the comparison is of a moving run
    state = torch.load(tmp_path / "last.pt")
    assert state["step"] == 40 and state["model"].keys() == weights.keys()
    for key, value in weights.items():
        assert torch.equal(state["model"][key], value), key


# ---------------------------------------------------------------------------------------------
# 2. last.pt crosses the packed/lone boundary

# A BatchNorm MLP (its running statistics are in last.pt) of 300 steps (~0.5 s alone), records
# every 10 steps, last.pt every 50; evaluated every 20 (in eval mode, by the running statistics,
# soon after every resume: running statistics lost at a resume would show before they decay);
# train.resume=true from the start, so config.yaml is the same in every attempt.
RESUMABLE = ["dataset=synthetic", "data.train_size=512", "data.test_size=128", "data.batch_size=32",
             "data.input_shape=[16]", "model.depth=3", "model.width=16", "model.norm=batch", "train.steps=300",
             "train.log_every=10", "train.eval_every=20", "train.ckpt_every=50", "train.deterministic=true",
             "train.resume=true", "train.progress=false", "logger=none", "device=cpu"]
TOTAL = 300
# Two parts: runs 0 and 2 share optimiser settings (one stacked leaf per layer), run 1 has its own
# (and a schedule: its LambdaLR's step crosses the boundary too).
MEMBERS = [["seed=0"],
           ["seed=1", "optim.lr=0.05", "optim.momentum=0.8", "optim.schedule=cosine", "optim.warmup_steps=20"],
           ["seed=2", "init=xavier", "gain=relu"]]


def configs():
    cfgs = [compose_config(*RESUMABLE, *m) for m in MEMBERS]
    assert len({pack_key(c) for c in cfgs}) == 1
    return cfgs


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> list[Path]:
    """Each member run alone, start to finish."""
    dirs = [tmp_path_factory.mktemp(f"uninterrupted{i}") for i in range(len(MEMBERS))]
    for d, m in zip(dirs, MEMBERS):
        assert run_in_process(d, *RESUMABLE, *m).status == "completed"
    return dirs


@contextmanager
def sigusr2_chained() -> Iterator[list[int]]:
    """A no-op SIGUSR2 handler (as submitit's would be) for the run to chain; yields its calls."""
    calls = []
    previous = signal.signal(signal.SIGUSR2, lambda signum, frame: calls.append(signum))
    try:
        yield calls
    finally:
        signal.signal(signal.SIGUSR2, previous)


@contextmanager
def sigusr2_once(condition) -> Iterator[None]:
    """A thread sends this process SIGUSR2 once `condition()` holds; joined before leaving, so no
    signal arrives after the handler is gone."""
    done = threading.Event()

    def send():
        deadline = time.time() + 60
        while not done.is_set() and time.time() < deadline:
            if condition():
                os.kill(os.getpid(), signal.SIGUSR2)
                return
            time.sleep(0.005)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


@contextmanager
def sigusr2_in_training_forward(n: int) -> Iterator[None]:
    """SIGUSR2 from the main thread during the n-th training forward of a Stack (step n - 1 of a
    run started at 0): the run stops at that step's boundary, saving last.pt at step n. A
    thread's signal lands at whichever step it lands; lone runs stopped one by one must stop at
    one step for a pack to resume them together (train() packs the runs of one start step)."""
    count = 0

    def hook(module, args, out):
        nonlocal count
        if isinstance(module, Stack) and module.training:
            count += 1
            if count == n:
                os.kill(os.getpid(), signal.SIGUSR2)

    handle = register_module_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def logged_lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def assert_interrupted(run_dir: Path, steps: int | None = None) -> int:
    s = summary(run_dir)
    assert s["status"] == "interrupted" and "SIGUSR2" in s["reason"], s
    assert 0 < s["steps"] < TOTAL and (steps is None or s["steps"] == steps)
    assert torch.load(run_dir / "last.pt")["step"] == s["steps"]
    assert metrics(run_dir)[-1]["step"] < s["steps"]
    return s["steps"]


def assert_ends_as_uninterrupted(resumed: list[Path], reference: list[Path]) -> None:
    for r, u in zip(resumed, reference):
        assert summary(r)["status"] == "completed"
        assert_same_records(r, u)
        assert_same_checkpoint(r, u)
    running = [torch.load(r / "last.pt")["model"]["layers.1.running_mean"] for r in resumed]
    assert not torch.equal(running[0], running[1])  # each run's own BatchNorm statistics


def test_a_lone_run_resumes_a_packed_runs_checkpoint(tmp_path, uninterrupted):
    """A pack of three, stopped by SIGUSR2 from a thread once step 90 is logged (one logged line
    stops it within the first few steps), resumed as three lone runs: they end as the lone runs
    that were never stopped, records and last.pt."""
    dirs = [tmp_path / f"run{i}" for i in range(len(MEMBERS))]
    with sigusr2_chained() as calls, sigusr2_once(lambda: logged_lines(dirs[0] / "metrics.jsonl") >= 10):
        with pytest.raises(SystemExit) as exit_:
            run_pack(configs(), dirs)
    assert exit_.value.code == 128 + signal.SIGUSR2 and calls == [signal.SIGUSR2]
    stopped = {assert_interrupted(d) for d in dirs}
    assert len(stopped) == 1  # one pack, one step
    assert all(summary(d)["pack_size"] == 3 for d in dirs)

    for d, m in zip(dirs, MEMBERS):  # each alone, from its packed last.pt
        outcome = run_in_process(d, *RESUMABLE, *m)
        assert outcome.status == "completed" and outcome.steps == TOTAL
        assert summary(d)["pack_size"] == 1
    assert_ends_as_uninterrupted(dirs, uninterrupted)


def test_a_pack_resumes_lone_runs_checkpoints(tmp_path, uninterrupted):
    """Three lone runs, each stopped by SIGUSR2 at step 143, resumed as one pack (of two parts):
    they end as the lone runs that were never stopped, records and last.pt."""
    dirs = [tmp_path / f"run{i}" for i in range(len(MEMBERS))]
    stop_at = 143  # between checkpoints, logged steps and evaluations
    for d, m in zip(dirs, MEMBERS):  # each alone, stopped at the same step
        with sigusr2_chained() as calls, sigusr2_in_training_forward(stop_at):
            with pytest.raises(SystemExit) as exit_:
                run_in_process(d, *RESUMABLE, *m)
        assert exit_.value.code == 128 + signal.SIGUSR2 and calls == [signal.SIGUSR2]
        assert_interrupted(d, stop_at)
        assert summary(d)["pack_size"] == 1

    outcomes = run_pack(configs(), dirs)  # together, from their lone last.pt
    assert [(o.status, o.steps) for o in outcomes] == [("completed", TOTAL)] * len(MEMBERS)
    assert all(summary(d)["pack_size"] == 3 for d in dirs)
    assert_ends_as_uninterrupted(dirs, uninterrupted)


# ---------------------------------------------------------------------------------------------
# 3. The probe measures each member of a Stack as it measures the member alone

ARCHITECTURES = {  # (model overrides, input shape)
    "mlp-batchnorm": (["model=mlp", "model.depth=3", "model.width=16", "model.norm=batch"], [16]),
    "cnn-relu": (["model=cnn", "model.depth=3", "model.channels=4", "model.activation=relu"], [3, 6, 6]),
}


def with_dead_units(model: torch.nn.Module, k: int) -> torch.nn.Module:
    """Member k's first bias (a Conv's, or the BatchNorm shift after a bias-free Linear) set to -10
    on k + 1 units: those units are dead for the whole batch after the ReLU, so each member's
    dead_frac differs from the others'."""
    bias = next(p for name, p in model.named_parameters() if name.endswith("bias"))
    with torch.no_grad():
        bias[: k + 1] = -10.0
    return model


@pytest.mark.parametrize("arch", ARCHITECTURES, ids=list(ARCHITECTURES))
def test_the_probe_gives_each_member_of_a_stack_its_lone_statistics(arch):
    """Every statistic of a Stack([m0, m1, m2]) under one Probe, at index k, is member k's own
    as its own Probe measures it alone, over two SGD steps (forward, backward, update).

    Tolerance rel 1e-5 (abs 1e-7 for means near 0): the stack differs from the lone models in the
    order of float32 reductions only (bmm vs addmm, a grouped vs a plain convolution, BatchNorm
    over K*C channels); the largest relative difference seen is ~2e-6 (a conv's grad_norm)."""
    overrides, shape = ARCHITECTURES[arch]
    cfg = compose_config(*overrides)
    lone = []
    for k in range(3):
        torch.manual_seed(k)
        lone.append(with_dead_units(build_model(cfg.model, shape, 10), k))
    stack = Stack([copy.deepcopy(m) for m in lone])
    probes = [initlab.Probe(m) for m in lone]
    optimizers = [torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9) for m in lone]
    stack_probe = initlab.Probe(stack)
    stack_optimizer = torch.optim.SGD(stack.parameters(), lr=0.1, momentum=0.9)
    g = torch.Generator().manual_seed(0)
    for step in range(2):  # the second measures weights the first update moved, and a momentum step
        x, y = torch.randn(3, 16, *shape, generator=g), torch.randint(0, 10, (3, 16), generator=g)  # [K, B, ...]
        with stack_probe.capture():
            logits = stack(x)
            stack_optimizer.zero_grad()
            torch.stack([F.cross_entropy(out, target) for out, target in zip(logits, y)]).sum().backward()
        with stack_probe.update():
            stack_optimizer.step()
        expected = []
        for model, probe, optimizer, xk, yk in zip(lone, probes, optimizers, x, y):
            with probe.capture():
                optimizer.zero_grad()
                F.cross_entropy(model(xk), yk).backward()
            with probe.update():
                optimizer.step()
            assert all(v.dim() == 0 for v in probe.stats.values())
            expected.append(probe.floats())

        got = stack_probe.stats
        for statistic in ("act_mean", "act_var", "grad_var", "dead_frac", "grad_norm", "weight_norm", "update_ratio"):
            assert any(key.startswith(statistic + "/") for key in got), statistic
        for want in expected:
            assert got.keys() == want.keys()
        for key, values in got.items():
            assert values.shape == (3,), key
            assert values.tolist() == pytest.approx([e[key] for e in expected], rel=1e-5, abs=1e-7), (step, key)
        dead = next(key for key in got if key.startswith("dead_frac/"))
        assert len(set(got[dead].tolist())) == 3, got[dead]  # each member's own, not one shared
    stack.sync()  # the stack's parameters and running statistics are the lone models' as well
    for member, model in zip(stack.members, lone):
        want = model.state_dict()
        for key, value in member.state_dict().items():
            torch.testing.assert_close(value, want[key], rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# 4. The pack's optimizer is torch's, per run


PARTS = {  # per optimizer (one per pack: pack_key), two parts of different settings and schedules
    "sgd": [["optim.momentum=0.9", "optim.nesterov=true", "optim.weight_decay=1e-3"],
            ["optim.lr=0.05", "optim.momentum=0", "optim.schedule=cosine", "optim.warmup_steps=100"]],
    "adam": [["optim.lr=3e-3", "optim.betas=[0.8,0.99]", "optim.weight_decay=1e-2"],
             ["optim.lr=1e-3", "optim.schedule=cosine", "optim.warmup_steps=100"]],
    "adamw": [["optim.lr=1e-3", "optim.weight_decay=0.1", "optim.schedule=cosine"], ["optim.lr=3e-3"]],
}


@pytest.mark.parametrize("kind", PARTS)
def test_a_packs_update_is_each_runs_own_torch_optimizer_over_1000_steps(tmp_path, kind):
    """Given the same gradients, every run of a pack (parts with different settings and schedules,
    runs sharing a part) moves exactly as its own torch.optim optimizer and LambdaLR move its lone
    model: torch's update is elementwise, and each part's views are rows of the stack's leaves."""
    total = 1000
    cfgs = [compose_config(*PLAIN, f"optim={kind}", *PARTS[kind][i % 2], f"seed={i}") for i in range(4)]  # two runs a part
    members = []
    for i, cfg in enumerate(cfgs):
        model, _ = build_initialised(cfg, validate(cfg))
        members.append(Member(cfg, RunRecords(tmp_path / str(i)), Outcome("running", 0), model, "cpu"))
    lone = [copy.deepcopy(m.model) for m in members]
    optimizers = [build_optimizer([(c.optim, m.parameters())]) for c, m in zip(cfgs, lone)]
    schedules = [build_schedule([c.optim], o, total) for c, o in zip(cfgs, optimizers)]
    pack = Pack(members, total, 0)
    g = torch.Generator().manual_seed(0)
    for _ in range(total):
        grads = [torch.randn(p.shape, generator=g) for p in pack.stack.parameters()]  # [K, ...] each
        for p, grad in zip(pack.stack.parameters(), grads):
            p.grad = grad.clone()
        for k, model in enumerate(lone):
            order = pack.members.index(members[k])
            for p, grad in zip(model.parameters(), grads):
                p.grad = grad[order].clone()
        pack.step()
        for optimizer, schedule in zip(optimizers, schedules):
            optimizer.step()
            schedule.step()
    pack.stack.sync()
    for m, model in zip(members, lone):
        for ours, theirs in zip(m.model.parameters(), model.parameters()):
            assert torch.equal(ours, theirs)
