"""Training throughput of initlab's loop against the loop a user would otherwise write; start-up times.

    python scripts/bench.py [--widths 256 1024 --depth 3 --batch-size 128 --steps 300 --device auto]
    python scripts/bench.py --startup [--repeats 7]

For each MLP width it prints, from one process (ratios hold on noisy machines, absolute
times do not):
  - initlab's loop with diagnostics at the default logging rate (train.log_every=50),
  - the same loop with diagnostics off,
  - a torchvision DataLoader loop (ToTensor + Normalize transforms), same model/batch/optimizer,
  - achieved FLOP/s of the loop against measured matrix-multiply FLOP/s.
Data: the real Fashion-MNIST (data.root, or /usr/share/datasets/fashion-mnist).

--startup times what a user waits for before anything happens, each in a fresh interpreter as
typed: train.py --help, a Tab press (Hydra's completion query) and a scalar theory.py, against
`import torch` (target: at most 1.2x; the median of --repeats runs, taken in turns).
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from torch.utils.data import DataLoader
from torchvision import transforms

from initlab.config import register_configs
from initlab.data import Data, load_data
from initlab.data.sources import open_split
from initlab.models import build_model
from initlab.track.records import RunRecords
from initlab.train.loop import Member, Outcome, train
from initlab.train.preemption import StopRequest
from initlab.validate import resolve_device

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
YARDSTICK = "import torch"
STARTUP = {YARDSTICK: ["-c", "import torch"],
           "train.py --help": ["train.py", "--help"],
           "Tab after `python train.py init=`": ["train.py", "-sc", "query=bash"],
           "theory.py activation=tanh sigma_w2=1.5": ["scripts/theory.py", "activation=tanh", "sigma_w2=1.5"]}
COMPLETING = "python train.py init="  # the command line bash hands Hydra's completion query
STARTUP_TARGET = 1.2  # x import torch


def config(args, log_every: int):
    overrides = [f"model.width={args.width}", f"model.depth={args.depth}", f"data.batch_size={args.batch_size}",
                 "dataset=fashion_mnist", f"data.root={args.root}", f"train.steps={args.steps}",
                 f"train.log_every={log_every}", f"train.eval_every={10**9}", f"train.ckpt_every={10**9}",
                 "train.progress=false", "logger=none"]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=overrides)


def initlab_loop(args, data: Data, device, log_every: int) -> float:
    """samples/s of initlab's own loop (the test split is cut to one batch: we time training)."""
    cfg = config(args, log_every)
    torch.manual_seed(0)
    model = build_model(cfg.model, [1, 28, 28], 10).to(device)
    small_test = Data(data.x_train, data.y_train, data.x_test[: args.batch_size], data.y_test[: args.batch_size])
    with tempfile.TemporaryDirectory() as tmp:
        lone = lambda folder: [Member(cfg, RunRecords(folder), Outcome("running", 0), model, str(device))]  # noqa: E731
        train(lone(Path(tmp)), small_test, StopRequest())  # warm-up
        synchronize(device)
        start = time.perf_counter()
        train(lone(Path(tmp) / "timed"), small_test, StopRequest())
        synchronize(device)
    return (args.steps + 1) * args.batch_size / (time.perf_counter() - start)


def dataloader_loop(args, device, workers: int) -> float:
    """samples/s of the textbook loop: a torchvision dataset with transforms through a DataLoader."""
    cfg = config(args, 50)
    dataset = open_split("fashion_mnist", args.root, True, download=False)
    dataset.transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.2860,), (0.3530,))])
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, drop_last=True, num_workers=workers)
    torch.manual_seed(0)
    model = build_model(cfg.model, [1, 28, 28], 10).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.optim.lr, momentum=cfg.optim.momentum)
    steps, start = 0, None
    while steps < args.steps + 10:
        for x, y in loader:
            if steps == 10:  # the first batches warm up workers and kernels
                synchronize(device)
                start = time.perf_counter()
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps += 1
            if steps == args.steps + 10:
                break
    synchronize(device)
    return args.steps * args.batch_size / (time.perf_counter() - start)


def matmul_flops(n: int, device, m: int | None = None, repeats: int = 20) -> float:
    """Measured FLOP/s of an (m x n) @ (n x n) float32 matrix multiply."""
    m = m or n
    a, b = torch.randn(m, n, device=device), torch.randn(n, n, device=device)
    for _ in range(3):
        a @ b
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    synchronize(device)
    return 2 * m * n * n * repeats / (time.perf_counter() - start)


def training_flops_per_sample(args) -> float:
    """~6 FLOPs per weight per sample: forward 2, backward 4 (input and weight gradients)."""
    sizes = [784] + [args.width] * (args.depth - 1) + [10]
    return 6 * sum(a * b for a, b in zip(sizes, sizes[1:]))


def synchronize(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def startup(repeats: int) -> None:
    """Each STARTUP command's median wall time, and its ratio to importing torch. The commands run in
    turns, after one round to warm the file cache, so a noisy machine slows each alike."""
    env = {**os.environ, "COMP_LINE": COMPLETING, "COMP_POINT": str(len(COMPLETING))}
    times: dict[str, list[float]] = {name: [] for name in STARTUP}
    for round_ in range(repeats + 1):
        for name, args in STARTUP.items():
            started = time.perf_counter()
            subprocess.run([sys.executable, *args], cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL)
            if round_:
                times[name].append(time.perf_counter() - started)
    base = statistics.median(times[YARDSTICK])
    print(f"start-up, median of {repeats} (python {sys.version.split()[0]}, torch {torch.__version__}):")
    for name, taken in times.items():
        ratio = statistics.median(taken) / base
        verdict = "" if name == YARDSTICK else f"   target <= {STARTUP_TARGET}x: {'met' if ratio <= STARTUP_TARGET else 'MISSED'}"
        print(f"  {name:42s} {statistics.median(taken):5.2f} s  {ratio:4.2f}x import torch{verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[256, 1024],
                        help="the default model's width, and one >= 512 for the FLOP/s comparison")
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--root", default="./data")
    parser.add_argument("--startup", action="store_true", help="time start-up (--help, Tab, theory.py) instead")
    parser.add_argument("--repeats", type=int, default=7, help="with --startup: runs of each command")
    args = parser.parse_args()
    if args.startup:
        return startup(args.repeats)
    register_configs()
    device = resolve_device(args.device)
    data = load_data(config(argparse.Namespace(**vars(args), width=args.widths[0]), 50).data, device)
    for width in args.widths:
        bench_width(argparse.Namespace(**vars(args), width=width), data, device)


def bench_width(args, data: Data, device) -> None:
    print(f"\n== MLP depth={args.depth} width={args.width} batch={args.batch_size} steps={args.steps} "
          f"device={device} threads={torch.get_num_threads()} torch={torch.__version__}", flush=True)
    rows = {
        "initlab, diagnostics every 50 steps": initlab_loop(args, data, device, 50),
        "initlab, diagnostics off": initlab_loop(args, data, device, 10**9),
        "DataLoader + transforms, 0 workers": dataloader_loop(args, device, 0),
        "DataLoader + transforms, 2 workers": dataloader_loop(args, device, 2),
    }
    best_loader = max(v for k, v in rows.items() if k.startswith("DataLoader"))
    for name, rate in rows.items():
        print(f"{name:40s} {rate:12,.0f} samples/s   x{rate / best_loader:5.2f} vs best DataLoader")
    diag, plain = rows["initlab, diagnostics every 50 steps"], rows["initlab, diagnostics off"]
    print(f"diagnostics cost: {100 * (1 - diag / plain):.1f}% of throughput (target <= 10%)")
    print(f"speed-up over the best DataLoader loop: x{diag / best_loader:.2f} (target >= 5 at the default width)")
    achieved = plain * training_flops_per_sample(args)
    at_shape = matmul_flops(args.width, device, m=args.batch_size)
    peak = max(matmul_flops(n, device) for n in (1024, 2048))
    print(f"loop achieves {achieved / 1e9:,.1f} GFLOP/s; matmul measures {at_shape / 1e9:,.1f} GFLOP/s at the "
          f"layer shape ({args.batch_size}x{args.width}x{args.width}), {peak / 1e9:,.1f} GFLOP/s peak")
    print(f"loop / matmul at layer shape: {achieved / at_shape:.2f}; loop / peak matmul: {achieved / peak:.2f} "
          f"(target >= 0.5 at width >= 512)")


if __name__ == "__main__":
    sys.exit(main())
