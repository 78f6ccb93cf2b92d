"""Wall time of one grid trained serially (initlab.run.run per job, as launcher=local runs
them) and packed (initlab.packed.run_pack, as launcher=packed trains them), from one process.

    python scripts/bench_grid.py [--widths 64 256 --runs 32 --depth 3 --steps 500 --device auto]

The grid, per width: `runs` ReLU MLPs on the real Fashion-MNIST (data.root, or
/usr/share/datasets/fashion-mnist) that differ in seed, init scheme (kaiming, xavier) and
learning rate (0.01, 0.02); diagnostics every 50 steps, test evaluation at the end, every
record written (into a temporary folder), wandb off. Both sides pay what a launcher pays per
job (config, init, records); the serial side also loads the data once per job, as each job
does, so the time of one load is printed too, and the ratio without those loads.
"""

import argparse
import logging
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from initlab.config import register_configs
from initlab.data import load_data
from initlab.packed import pack_key, run_pack
from initlab.run import run
from initlab.validate import resolve_device

CONF = Path(__file__).resolve().parents[1] / "conf"


def grid(args, width: int) -> list:
    common = [f"model.width={width}", f"model.depth={args.depth}", "dataset=fashion_mnist", f"data.root={args.root}",
              f"train.steps={args.steps}", f"device={args.device}", "train.progress=false", "logger=none"]
    cells = [[f"seed={i // 4}", f"init={('kaiming', 'xavier')[i % 2]}", f"optim.lr={(0.01, 0.02)[i // 2 % 2]}"]
             for i in range(args.runs)]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--runs", type=int, default=32)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--max-pack", type=int, default=64)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--root", default="./data")
    args = parser.parse_args()
    register_configs()
    logging.getLogger("initlab").setLevel(logging.WARNING)  # no per-run init tables in the timing
    print(f"{args.runs} runs x {args.steps} steps, depth {args.depth}, device {args.device}, "
          f"torch threads {torch.get_num_threads()}")
    print(f"{'width':>6} {'serial s':>9} {'packed s':>9} {'ratio':>6} {'1 load s':>9} {'ratio w/o loads':>16}")
    with tempfile.TemporaryDirectory() as tmp:
        for width in args.widths:
            cfgs = grid(args, width)
            assert len({pack_key(cfg) for cfg in cfgs}) == 1
            folder = Path(tmp) / str(width)
            packed(cfgs[:2], folder / "warm-up", args.max_pack)  # first-call costs (allocator, kernels) off the clock
            serial(cfgs[:1], folder / "warm-up")
            t_serial = timed(lambda: serial(cfgs, folder))
            t_packed = timed(lambda: packed(cfgs, folder, args.max_pack))
            t_load = timed(lambda: load_data(cfgs[0].data, resolve_device(args.device)))
            packs = -(-args.runs // args.max_pack)
            without = (t_serial - args.runs * t_load) / (t_packed - packs * t_load)
            print(f"{width:>6} {t_serial:>9.1f} {t_packed:>9.1f} {t_serial / t_packed:>5.1f}x {t_load:>9.2f} {without:>15.1f}x",
                  flush=True)


if __name__ == "__main__":
    main()
