"""initlab's Hydra launcher plugins."""
