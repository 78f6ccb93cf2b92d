"""Packed grids: runs of one architecture that differ only in seed, init and optimiser
hyperparameters, trained together as one stacked computation, each with its own records.

    keys = [pack_key(cfg) for cfg in cfgs]   # equal keys: one pack; None: run it alone
    run_pack(cfgs, run_dirs)                 # per run: its Outcome, or the error that ended it
"""

from initlab.packed.run import pack_key, run_pack

__all__ = ["pack_key", "run_pack"]
