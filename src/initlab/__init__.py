"""initlab: how weight initialization decides whether a network trains."""

__version__ = "0.1.0"
