"""The processes a grid starts (train.py under sweep.py, wandb's mirroring process) end with
the one that started them."""

import ctypes
import sys

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(signum: int) -> None:
    """Have the kernel send this process `signum` when its parent dies, even by SIGKILL (Linux's
    prctl PR_SET_PDEATHSIG; elsewhere nothing): no process of a grid outlives the one that
    started it, training on or holding a run directory's lock."""
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signum)
