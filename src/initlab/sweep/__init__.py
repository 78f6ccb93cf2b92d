"""Sweeps: plan a grid as Hydra will run it, check every job first, read the results back."""
