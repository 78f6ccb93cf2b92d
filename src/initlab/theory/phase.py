"""The order-to-chaos phase diagram over (sigma_w^2, sigma_b^2): numbers, then a figure."""

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from initlab.theory.mean_field import DEPTH_FACTOR, mean_field  # noqa: E402


@dataclass(frozen=True)
class PhaseGrid:
    """chi_1 and xi_c on a grid, [sigma_b^2 index, sigma_w^2 index]; NaN where undefined, and chi_1 NaN
    too where q* is (ReLU's chi_1 is defined there, but the diagram greys out where no fixed point exists)."""

    activation: str
    sigma_w2: np.ndarray
    sigma_b2: np.ndarray
    chi_1: np.ndarray
    xi_c: np.ndarray


def phase_grid(activation: str, sigma_w2: np.ndarray, sigma_b2: np.ndarray, negative_slope: float = 0.01) -> PhaseGrid:
    """mean_field at every grid point (a few ms each; tens of ms in the chaotic phase, where c* is
    sought: a 25 x 25 grid takes tens of seconds, so a bar on a terminal counts the points)."""
    points = tqdm([(w, b) for b in sigma_b2 for w in sigma_w2], desc="phase diagram", unit="point", disable=None,
                  leave=False)
    flat = [mean_field(activation, w, b, negative_slope) for w, b in points]
    cells = [flat[i : i + len(sigma_w2)] for i in range(0, len(flat), len(sigma_w2))]
    as_array = np.vectorize(lambda value: np.nan if value is None else value, otypes=[float])
    chi_1 = as_array(np.array([[c.chi_1 if c.q_star is not None else None for c in row] for row in cells],
                              dtype=object))
    xi_c = as_array(np.array([[c.xi_c for c in row] for row in cells], dtype=object))
    return PhaseGrid(activation, np.asarray(sigma_w2), np.asarray(sigma_b2), chi_1, xi_c)


def draw_phase_diagram(grid: PhaseGrid, path: Path) -> Path:
    """xi_c as a log colour map, the chi_1 = 1 line, and grey where no fixed point exists."""
    fig, ax = plt.subplots(figsize=(7, 5), constrained_layout=True)
    undefined = np.isnan(grid.chi_1)
    if undefined.any():
        ax.pcolormesh(grid.sigma_w2, grid.sigma_b2, np.where(undefined, 1.0, np.nan), cmap="Greys", vmin=0, vmax=4,
                      shading="nearest")
    xi = np.ma.masked_invalid(grid.xi_c)
    if xi.count():
        mesh = ax.pcolormesh(grid.sigma_w2, grid.sigma_b2, xi, shading="nearest", cmap="viridis",
                             norm=LogNorm(vmin=max(xi.min(), 1e-2), vmax=xi.max()))
        fig.colorbar(mesh, ax=ax, label=r"$\xi_c$ (layers; trainable depth $\approx$ %g $\xi_c$)" % DEPTH_FACTOR)
    handles = [Patch(color="0.75", label="no finite fixed point q*")] if undefined.any() else []
    chi = np.ma.masked_invalid(grid.chi_1)
    if chi.count() and chi.min() < 1 < chi.max():
        ax.contour(grid.sigma_w2, grid.sigma_b2, chi, levels=[1.0], colors="red", linewidths=2)
        handles.append(plt.Line2D([], [], color="red", lw=2, label=r"$\chi_1 = 1$: ordered (left) | chaotic (right)"))
    ax.set(xlabel=r"$\sigma_w^2$ (fan_in $\cdot$ Var[W])", ylabel=r"$\sigma_b^2$",
           title=f"{grid.activation}: mean-field phase diagram (white: xi_c diverges or is undefined)")
    if handles:
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, frameon=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
