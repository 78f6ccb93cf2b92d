"""initlab's Hydra plugins: the grid sweeper and its launchers (local, local_gpu, packed, slurm).

Hydra imports every module here when any initlab command starts (--help and tab completion too),
so they import only Hydra at the top and initlab (torch) inside the methods that run jobs.
"""
