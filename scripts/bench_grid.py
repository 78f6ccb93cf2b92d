"""Wall time of grids trained serially (initlab.run.run per job, as launcher=local runs them) and
packed (initlab.run.run_pack, as launcher=packed trains them), from one process; with --launch,
what launching a grid costs beyond its training, through the commands a user types.

    python scripts/bench_grid.py [--grids mlp64 mlp256 cnn resnet20 --device auto --root ./data]
    python scripts/bench_grid.py --launch [--runs 1024]

The grids (each run differing in seed, init scheme and learning rate; diagnostics every 50 steps,
test evaluation at the end, every record written into a temporary folder, wandb off):
- mlp64, mlp256: 32 ReLU MLPs of depth 3 on the real Fashion-MNIST (data.root, or
  /usr/share/datasets/fashion-mnist), 500 steps;
- cnn: 32 runs of model=cnn's defaults (depth 6, 32 channels) on synthetic 28x28 images, 10 steps;
- resnet20: 16 ResNet-20s (BatchNorm) on synthetic 32x32x3 images, 10 steps.
The conv grids' synthetic test split is 512 images: on Fashion-MNIST's 10,000 the two test
evaluations would be 80% of a CNN run's time on this CPU.
Both sides pay what a launcher pays per job (config, init, records); the serial side also loads
the data once per job, as each job does, so the ratio without those loads is printed too.
Where packing falls short of its target, the top operators of one packed and one serial step
(torch.profiler, self CPU time) show what bounds it.
"""

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from torch.profiler import profile

from initlab.config import register_configs
from initlab.data import load_data
from initlab.run import run, run_pack
from initlab.sweep.packs import pack_key
from initlab.validate import resolve_device

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
FASHION = ["dataset=fashion_mnist"]
SYNTHETIC = ["dataset=synthetic", "data.train_size=2048", "data.test_size=512"]
# name: (runs, steps, overrides, CPU target, GPU target)
GRIDS = {
    "mlp64": (32, 500, ["model=mlp", "model.width=64", "model.depth=3", *FASHION], 3.0, 10.0),
    "mlp256": (32, 500, ["model=mlp", "model.width=256", "model.depth=3", *FASHION], None, None),
    "cnn": (32, 10, ["model=cnn", *SYNTHETIC, "data.input_shape=[1,28,28]"], 1.5, 5.0),
    "resnet20": (16, 10, ["model=resnet", "model.depth=20", *SYNTHETIC, "data.input_shape=[3,32,32]"], 1.3, None),
}


def grid(name: str, args) -> list:
    runs, steps, overrides, _, _ = GRIDS[name]
    common = [*overrides, f"data.root={args.root}", f"train.steps={steps}", f"device={args.device}",
              "train.progress=false", "logger=none"]
    cells = [[f"seed={i // 4}", f"init={('kaiming', 'xavier')[i % 2]}", f"optim.lr={(0.01, 0.02)[i // 2 % 2]}"]
             for i in range(runs)]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return [compose("train", overrides=common + cell) for cell in cells]


def timed(fn) -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def serial(cfgs: list, folder: Path) -> None:
    for i, cfg in enumerate(cfgs):
        run(cfg, folder / f"serial{i}")


def packed(cfgs: list, folder: Path, max_pack: int) -> None:
    for i in range(0, len(cfgs), max_pack):
        run_pack(cfgs[i : i + max_pack], [folder / f"packed{j}" for j in range(i, min(i + max_pack, len(cfgs)))])


def top_operators(fn, rows: int = 6) -> str:
    with profile() as prof:
        fn()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows, max_name_column_width=40)


def bench(name: str, args, folder: Path) -> None:
    cfgs = grid(name, args)
    assert len({pack_key(cfg) for cfg in cfgs}) == 1
    packed(cfgs[:2], folder / "warm-up", args.max_pack)  # first-call costs (allocator, kernels) off the clock
    serial(cfgs[:1], folder / "warm-up")
    t_serial = timed(lambda: serial(cfgs, folder))
    t_packed = timed(lambda: packed(cfgs, folder, args.max_pack))
    t_load = timed(lambda: load_data(cfgs[0].data, resolve_device(args.device)))
    packs = -(-len(cfgs) // args.max_pack)
    without = (t_serial - len(cfgs) * t_load) / (t_packed - packs * t_load)
    cpu_target, gpu_target = GRIDS[name][3:]
    target = gpu_target if torch.cuda.is_available() else cpu_target
    verdict = "" if target is None else f"  target {target:.1f}x: {'met' if t_serial / t_packed >= target else 'missed'}"
    print(f"{name:>9} {len(cfgs):>5} {t_serial:>9.1f} {t_packed:>9.1f} {t_serial / t_packed:>5.1f}x {t_load:>7.2f} "
          f"{without:>12.1f}x{verdict}", flush=True)
    if target is not None and t_serial / t_packed < target:
        one_step = [c.copy() for c in cfgs]
        for c in one_step:
            c.train.steps = 2
        print(f"  what bounds it, two packed steps of {len(cfgs)} runs (self CPU time):")
        print(top_operators(lambda: packed(one_step, folder / "profile", args.max_pack)))
        print(f"  and the same {len(cfgs)} runs serially:")
        print(top_operators(lambda: serial(one_step, folder / "profile-serial")))


# --launch: a Schoenholz-kind grid to plan (sigma_w^2 x depth x seed) and a packed grid to run
PLAN_SMALL = ["init.scale=1.0,1.5", "model.depth=10,20", "seed=range(5)"]  # 20 jobs
PLAN_LARGE = ["init.scale=range(1.0,3.9,0.15)", "model.depth=range(10,110,10)", "seed=range(10)"]  # 2,000 jobs
PACKED_GRID = ["hydra/launcher=packed", "model.width=64", "model.depth=4", "train.steps=50", "dataset=synthetic",
               "train.progress=false"]


def command(args: list[str], env: dict | None = None) -> float:
    """Seconds `python <args>` takes, as a user runs it (a fresh interpreter); it must succeed."""
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                   env={**os.environ, **(env or {})})
    return time.perf_counter() - start


def training_seconds(sweep_dir: Path) -> float:
    """The packs' own training time: each run's summary.json train_s, its pack's, counted once."""
    summaries = [json.loads(p.read_text()) for p in sweep_dir.glob("*/summary.json")]
    return sum(s.get("train_s", 0.0) / s.get("pack_size", 1) for s in summaries)


def launch(args, folder: Path) -> None:
    """Planning cost (--dry-run of 20 vs 2,000 jobs), and a grid of `args.runs` packed runs against
    one init-only train.py run, without and with wandb (offline); the overhead fraction is the
    grid's wall time beyond its packs' training time."""
    plan = [command(["scripts/sweep.py", "experiment=schoenholz2017", *grid, f"hydra.sweep.dir={folder / 'plan'}",
                     "--dry-run"]) for grid in (PLAN_SMALL, PLAN_LARGE)]
    print(f"plan (sweep.py --dry-run): 20 jobs {plan[0]:.1f} s, 2,000 jobs {plan[1]:.1f} s: {plan[1] / plan[0]:.2f}x "
          f"(target <= 3x)", flush=True)
    alone = command(["train.py", "train.steps=0", "dataset=synthetic", "logger=none", f"hydra.run.dir={folder / 'one'}"])
    print(f"one init-only train.py run: {alone:.1f} s", flush=True)
    walls = {}
    for logger in ("none", "wandb"):
        sweep_dir = folder / logger
        walls[logger] = command(["train.py", "-m", *PACKED_GRID, f"logger={logger}", f"seed=range({args.runs})",
                                 f"hydra.sweep.dir={sweep_dir}"], env={"WANDB_MODE": "offline"})
        trained = training_seconds(sweep_dir)
        print(f"{args.runs} packed runs, logger={logger}: {walls[logger]:.1f} s = {walls[logger] / alone:.1f}x one "
              f"init-only run (target <= 5x); packs training {trained:.1f} s, overhead "
              f"{walls[logger] - trained:.1f} s ({1 - trained / walls[logger]:.0%} of the wall time)", flush=True)
    print(f"wandb (offline) / none: {walls['wandb'] / walls['none']:.2f}x (target <= 1.5x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--launch", action="store_true", help="the costs of launching a grid, not of training it")
    parser.add_argument("--runs", type=int, default=1024, help="--launch: runs of the packed grid")
    parser.add_argument("--grids", nargs="+", choices=list(GRIDS), default=list(GRIDS))
    parser.add_argument("--max-pack", type=int, default=64)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--root", default="./data")
    args = parser.parse_args()
    if args.launch:
        with tempfile.TemporaryDirectory() as tmp:
            launch(args, Path(tmp))
        return
    register_configs()
    logging.getLogger("initlab").setLevel(logging.WARNING)  # no per-run init tables in the timing
    print(f"device {args.device}, torch threads {torch.get_num_threads()}")
    print(f"{'grid':>9} {'runs':>5} {'serial s':>9} {'packed s':>9} {'ratio':>6} {'1 load s':>7} {'w/o loads':>13}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.grids:
            bench(name, args, Path(tmp) / name)


if __name__ == "__main__":
    main()
